//! Books without a container: plain text (Project Gutenberg style chapter headings, or a
//! pattern), Markdown (`#`/`##` headings, read with pulldown-cmark) and a lone HTML page
//! (its headings).
//!
//! Not responsible for EPUB (see `epub`).

use pulldown_cmark::{Event, HeadingLevel, MetadataBlockKind, Options, Parser, Tag, TagEnd};

use super::html::{HtmlOptions, read_page};
use super::tree::{self, Node, Role};
use super::{Book, Choice, ImportOptions, Part, chapters, clean};

/// The Gutenberg header's fields before `*** START OF`.
fn gutenberg_field<'a>(header: &'a str, name: &str) -> Option<&'a str> {
    header.lines().find_map(|l| {
        l.strip_prefix(name)
            .and_then(|r| r.strip_prefix(':'))
            .map(str::trim)
            .filter(|v| !v.is_empty())
    })
}

/// Lines of one paragraph joined: a word hyphenated across a line end is joined when the next
/// line goes on in lowercase; `_emphasis_` markers are removed.
fn join_lines(lines: &[&str]) -> String {
    let mut out = String::new();
    for line in lines {
        let line = line.trim();
        if out.ends_with('-')
            && out[..out.len() - 1]
                .chars()
                .next_back()
                .is_some_and(char::is_alphabetic)
            && line.chars().next().is_some_and(char::is_lowercase)
        {
            out.pop();
        } else if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(line);
    }
    let out = out.replace("_", "");
    clean(&out)
}

const NUMBER_WORDS: &[&str] = &[
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
    "twenty",
    "first",
    "second",
    "third",
    "fourth",
    "fifth",
    "sixth",
    "seventh",
    "eighth",
    "ninth",
    "tenth",
    "last",
];

/// A Gutenberg-style chapter heading: `CHAPTER I.`, `Chapter 1`, `Chapter One: A Title`,
/// `PART II`, `BOOK 3.`, or a lone roman numeral `IV.`.
fn is_heading(line: &str) -> bool {
    let line = line.trim();
    if line.is_empty() || line.chars().count() > 80 {
        return false;
    }
    let mut words = line.split_whitespace();
    let first = words.next().unwrap_or("");
    let numeral = |w: &str| {
        let w = w.trim_end_matches(['.', ':', ',']);
        !w.is_empty()
            && (w.chars().all(|c| c.is_ascii_digit())
                || w.chars().all(|c| "IVXLCDM".contains(c))
                || NUMBER_WORDS.contains(&w.to_lowercase().as_str()))
    };
    if ["chapter", "part", "book"].contains(&first.to_lowercase().as_str()) {
        let upper_or_title = first.chars().next().is_some_and(|c| c.is_ascii_uppercase());
        return upper_or_title && words.next().is_some_and(numeral);
    }
    let w = first.trim_end_matches('.');
    words.next().is_none()
        && first.ends_with('.')
        && !w.is_empty()
        && w.chars().all(|c| "IVXLCDM".contains(c))
}

/// Plain text: paragraphs at blank lines; a paragraph whose first line is a heading starts a
/// chapter (with the rest of that paragraph, or a short next paragraph, as its title).
pub(crate) fn read_plain(
    source: &str,
    pattern: Option<&str>,
    options: &ImportOptions,
) -> Result<Book, String> {
    let pattern = pattern
        .map(|p| regex_lite::Regex::new(p).map_err(|e| format!("--chapter-pattern: {e}")))
        .transpose()?;
    let mut book = Book {
        format: "text",
        ..Book::default()
    };
    let source = source.trim_start_matches('\u{feff}').replace("\r\n", "\n");
    let body = gutenberg_body(&source, &mut book);
    let paragraphs: Vec<Vec<&str>> = body
        .split("\n\n")
        .map(|p| p.lines().filter(|l| !l.trim().is_empty()).collect())
        .filter(|p: &Vec<&str>| !p.is_empty())
        .collect();
    let heading = |line: &str| match &pattern {
        Some(re) => re.is_match(line.trim()),
        None => is_heading(line),
    };
    let mut parts: Vec<Part> = Vec::new();
    let mut front = Part {
        title: "Front matter".into(),
        ..Part::default()
    };
    let mut i = 0;
    while i < paragraphs.len() {
        let p = &paragraphs[i];
        i += 1;
        if p.len() <= 2 && heading(p[0]) {
            let mut title = join_lines(p);
            // `CHAPTER I.` alone, its title in the next short paragraph.
            if p.len() == 1
                && let Some(next) = paragraphs.get(i)
                && is_title_line(next)
                && !heading(next[0])
            {
                title = format!("{title} {}", join_lines(next));
                i += 1;
            }
            parts.push(Part {
                title: title.clone(),
                heading: Some(title),
                ..Part::default()
            });
            continue;
        }
        let text = join_lines(p);
        if text.chars().all(|c| "*-=_~#. ".contains(c)) {
            continue; // a scene divider
        }
        match parts.last_mut() {
            Some(part) => part.paragraphs.push(text),
            None => front.paragraphs.push(text),
        }
    }
    place_front_matter(&mut parts, front, &mut book, &options.choice);
    chapters(parts, &options.choice, &mut book);
    Ok(book)
}

/// The text between Project Gutenberg's `*** START` and `*** END` lines (all of it without
/// them), with the header's title, author and language put in `book`.
fn gutenberg_body<'s>(source: &'s str, book: &mut Book) -> &'s str {
    let mut body = source;
    if let Some(start) = body.find("*** START OF") {
        let header = &body[..start];
        book.meta.title = gutenberg_field(header, "Title").map(str::to_string);
        book.meta.author = gutenberg_field(header, "Author").map(str::to_string);
        book.meta.language = gutenberg_field(header, "Language").and_then(language_code);
        body = body[start..].split_once('\n').map_or("", |(_, rest)| rest);
        book.skipped.push(super::Skipped {
            title: "Project Gutenberg's header".into(),
            reason: super::reason("pg-header").into(),
            characters: clean(header).chars().count(),
        });
    }
    if let Some(end) = body.find("*** END OF") {
        book.skipped.push(super::Skipped {
            title: "Project Gutenberg's licence".into(),
            reason: super::reason("licence").into(),
            characters: clean(&body[end..]).chars().count(),
        });
        body = &body[..end];
    }
    body
}

/// A paragraph that can be the title under a lone `CHAPTER I.`: one short line that does not
/// end a sentence.
fn is_title_line(paragraph: &[&str]) -> bool {
    paragraph.len() == 1
        && paragraph[0].trim().chars().count() <= 60
        && !paragraph[0]
            .trim_end()
            .ends_with(['.', '!', '?', '"', '\'', ','])
}

/// The text before the first heading: the whole book when there is no heading, else kept
/// with `keep_all` or skipped with its reason.
fn place_front_matter(parts: &mut Vec<Part>, mut front: Part, book: &mut Book, choice: &Choice) {
    if parts.is_empty() {
        front.title = book.meta.title.clone().unwrap_or_else(|| "Text".into());
        parts.push(front);
    } else if !front.paragraphs.is_empty() {
        if choice.keeps("frontmatter") {
            parts.insert(0, front);
        } else {
            book.skipped.push(super::Skipped {
                title: "Front matter".into(),
                reason: "before the first chapter heading".into(),
                characters: front.paragraphs.iter().map(|p| p.chars().count()).sum(),
            });
        }
    }
}

/// A language name or tag as a BCP 47 tag (the Gutenberg header says `English`).
fn language_code(name: &str) -> Option<String> {
    let known = [
        ("english", "en"),
        ("french", "fr"),
        ("german", "de"),
        ("spanish", "es"),
        ("italian", "it"),
        ("portuguese", "pt"),
        ("dutch", "nl"),
    ];
    let lower = name.trim().to_lowercase();
    known
        .iter()
        .find(|(n, _)| *n == lower)
        .map(|(_, c)| c.to_string())
        .or_else(|| (lower.len() == 2).then_some(lower))
}

fn level(l: HeadingLevel) -> u8 {
    match l {
        HeadingLevel::H1 => 1,
        HeadingLevel::H2 => 2,
        HeadingLevel::H3 => 3,
        HeadingLevel::H4 => 4,
        HeadingLevel::H5 => 5,
        HeadingLevel::H6 => 6,
    }
}

/// A block of a Markdown or HTML book: a heading (level) or a paragraph.
type Blocks = Vec<(Option<u8>, String)>;

/// The only top heading, when deeper headings follow it: the book's title, not a part.
fn take_title(blocks: &mut Blocks, book: &mut Book) {
    let count = |l: u8| blocks.iter().filter(|(h, _)| *h == Some(l)).count();
    if let Some(t) = (1..=6).find(|l| count(*l) > 0)
        && count(t) == 1
        && count(t + 1) > 0
        && let Some(i) = blocks.iter().position(|(h, _)| *h == Some(t))
    {
        let (_, title) = blocks.remove(i);
        book.meta.title.get_or_insert(title);
    }
}

/// Blocks into chapters at their headings, chosen as a nested table of contents' are (see
/// `tree`): parts name their chapters and their own text opens their first one. The only
/// top heading is the book's title when deeper headings follow it; the text under it before
/// the next heading is front matter.
fn split_at_headings(mut blocks: Blocks, book: &mut Book, choice: &Choice) {
    take_title(&mut blocks, book);
    let heads: Vec<usize> = (0..blocks.len())
        .filter(|&i| blocks[i].0.is_some())
        .collect();
    let size = |from: usize, to: usize| -> usize {
        blocks[from..to]
            .iter()
            .map(|(_, t)| t.chars().count())
            .sum()
    };
    let ends: Vec<usize> = heads
        .iter()
        .skip(1)
        .copied()
        .chain([blocks.len()])
        .collect();
    let nodes: Vec<Node> = heads
        .iter()
        .zip(&ends)
        .map(|(&i, &end)| Node {
            depth: usize::from(blocks[i].0.unwrap_or(1)),
            own: size(i, end),
        })
        .collect();
    let roles = tree::roles(&nodes, choice.toc_depth);
    let front = Part {
        title: "Front matter".into(),
        paragraphs: blocks[..heads.first().map_or(blocks.len(), |&i| i)]
            .iter()
            .map(|(_, t)| t.clone())
            .collect(),
        ..Part::default()
    };
    let mut parts: Vec<Part> = Vec::new();
    let mut open: Vec<(usize, String)> = Vec::new();
    let mut waiting: Vec<String> = Vec::new();
    for (n, &i) in heads.iter().enumerate() {
        let depth = nodes[n].depth;
        let title = blocks[i].1.clone();
        let next = (n + 1..heads.len())
            .find(|&m| roles[m] != Role::Inside)
            .map_or(blocks.len(), |m| heads[m]);
        match roles[n] {
            Role::Inside => continue,
            Role::Part if nodes[n].own <= tree::PART_OWN_MAX => {
                while open.last().is_some_and(|(d, _)| *d >= depth) {
                    open.pop();
                }
                waiting.extend(blocks[i..next].iter().map(|(_, t)| t.clone()));
                open.push((depth, title));
                continue;
            }
            _ => {}
        }
        while open.last().is_some_and(|(d, _)| *d >= depth) {
            open.pop();
        }
        let names: Vec<String> = open.iter().map(|(_, l)| l.clone()).collect();
        waiting.push(title.clone());
        parts.push(Part {
            title: names.iter().map(|p| format!("{p}: ")).collect::<String>() + &title,
            heading: Some(std::mem::take(&mut waiting).join("\n\n")),
            paragraphs: blocks[i + 1..next].iter().map(|(_, t)| t.clone()).collect(),
            parts: names,
            kinds: Vec::new(),
        });
        if roles[n] == Role::Part {
            open.push((depth, title));
        }
    }
    place_front_matter(&mut parts, front, book, choice);
    chapters(parts, choice, book);
}

/// A pandoc `%` title block (title, then author): read into `book` and cut from the source.
fn title_block(source: &str, book: &mut Book) -> String {
    if !source.starts_with('%') {
        return source.to_string();
    }
    let mut lines = source.lines();
    book.meta.title = lines
        .next()
        .map(|l| l.trim_start_matches('%').trim().to_string());
    book.meta.author = lines
        .next()
        .filter(|l| l.starts_with('%'))
        .map(|l| l.trim_start_matches('%').trim().to_string())
        .filter(|a| !a.is_empty());
    let skip = 1 + usize::from(book.meta.author.is_some());
    source.lines().skip(skip).collect::<Vec<_>>().join("\n")
}

/// The fields of a YAML front matter block narrate knows, read line by line into `book`.
fn front_matter(text: &str, book: &mut Book) {
    for line in text.lines() {
        if let Some((k, v)) = line.split_once(':') {
            let v = v.trim().trim_matches(['"', '\'']).to_string();
            match k.trim() {
                "title" => book.meta.title = Some(v),
                "author" | "creator" => book.meta.author = Some(v),
                "lang" | "language" => book.meta.language = Some(v),
                "description" => book.meta.description = Some(v),
                "date" | "year" => book.meta.year = Some(v.chars().take(4).collect()),
                _ => {}
            }
        }
    }
}

/// Markdown: YAML front matter (`title`, `author`, `lang`, `description`, `date`) or a pandoc
/// `%` title block; headings, paragraphs, list items and quotes as blocks; images, tables,
/// code and footnotes left out.
pub(crate) fn read_markdown(source: &str, choice: &Choice) -> Book {
    let mut book = Book {
        format: "Markdown",
        ..Book::default()
    };
    let source = title_block(source.trim_start_matches('\u{feff}'), &mut book);
    let options = Options::ENABLE_YAML_STYLE_METADATA_BLOCKS
        | Options::ENABLE_FOOTNOTES
        | Options::ENABLE_TABLES
        | Options::ENABLE_STRIKETHROUGH;
    let mut blocks: Blocks = Vec::new();
    let mut text = String::new();
    let mut skip = 0usize;
    // Inside an inline `<script>` or `<style>` element.
    let mut inline_code = 0usize;
    let mut metadata = false;
    let mut left: Vec<(&'static str, usize)> = Vec::new();
    let mut count = |what: &'static str| match left.iter_mut().find(|(w, _)| *w == what) {
        Some((_, n)) => *n += 1,
        None => left.push((what, 1)),
    };
    let flush = |text: &mut String, blocks: &mut Blocks, h: Option<u8>| {
        let t = clean(text);
        text.clear();
        if !t.is_empty() {
            blocks.push((h, t));
        }
    };
    for event in Parser::new_ext(&source, options) {
        match event {
            Event::Start(Tag::MetadataBlock(MetadataBlockKind::YamlStyle)) => metadata = true,
            Event::End(TagEnd::MetadataBlock(_)) => metadata = false,
            Event::Text(t) if metadata => front_matter(&t, &mut book),
            Event::Start(Tag::Image { .. }) => {
                count("image");
                skip += 1;
            }
            Event::Start(Tag::Table(_)) => {
                count("table");
                skip += 1;
            }
            Event::Start(Tag::FootnoteDefinition(_)) => {
                count("footnote");
                skip += 1;
            }
            Event::End(TagEnd::Image | TagEnd::Table | TagEnd::FootnoteDefinition) => {
                skip = skip.saturating_sub(1);
            }
            Event::FootnoteReference(_) => count("footnote marker"),
            _ if skip > 0 => {}
            Event::Start(Tag::Heading { .. } | Tag::Paragraph | Tag::Item | Tag::CodeBlock(_)) => {
                flush(&mut text, &mut blocks, None);
            }
            Event::End(TagEnd::Heading(l)) => flush(&mut text, &mut blocks, Some(level(l))),
            Event::End(TagEnd::Paragraph | TagEnd::Item | TagEnd::CodeBlock) => {
                flush(&mut text, &mut blocks, None);
            }
            Event::InlineHtml(html) => {
                // Inline `<script>` or `<style>`: what is inside is code, not prose.
                let tag = html.trim_start_matches('<').to_ascii_lowercase();
                if tag.starts_with("script") || tag.starts_with("style") {
                    count("script");
                    inline_code += 1;
                } else if tag.starts_with("/script") || tag.starts_with("/style") {
                    inline_code = inline_code.saturating_sub(1);
                }
            }
            _ if inline_code > 0 => {}
            Event::Text(t) | Event::Code(t) => text.push_str(&t),
            Event::SoftBreak | Event::HardBreak => text.push(' '),
            Event::Html(_) => {}
            _ => {}
        }
    }
    flush(&mut text, &mut blocks, None);
    book.left_out = left;
    split_at_headings(blocks, &mut book, choice);
    book
}

/// A lone HTML page: its `<title>` and its headings, as Markdown's.
pub(crate) fn read_html(
    source: &str,
    choice: &Choice,
    options: HtmlOptions,
) -> Result<Book, String> {
    let page = read_page(source, options).map_err(|e| format!("the HTML does not parse: {e}"))?;
    let mut book = Book {
        format: "HTML",
        meta: crate::book::Metadata {
            title: page.title.clone(),
            ..Default::default()
        },
        left_out: page.left_out.clone(),
        ..Book::default()
    };
    let blocks = page
        .blocks
        .into_iter()
        .map(|b| (b.heading, b.text))
        .collect();
    split_at_headings(blocks, &mut book, choice);
    Ok(book)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gutenberg_headings() {
        for yes in [
            "CHAPTER I.",
            "Chapter 1",
            "CHAPTER XII. Alice's Evidence",
            "Chapter One: The Beginning",
            "PART II",
            "IV.",
        ] {
            assert!(is_heading(yes), "{yes}");
        }
        for no in [
            "chapter one was dull",
            "I.e. not this",
            "Chapter and verse were quoted",
            "The End.",
            "I",
        ] {
            assert!(!is_heading(no), "{no}");
        }
    }

    #[test]
    fn plain_text_chapters_hyphens_and_front_matter() {
        let source = "Title: A Book\nAuthor: Someone\nLanguage: English\n\n*** START OF THE PROJECT GUTENBERG EBOOK X ***\n\nContents\n\nCHAPTER I.\n\nThe Start\n\nIt was a won-\nderful day,\nand _very_ warm.\n\n* * *\n\nMore.\n\nCHAPTER II. The End\n\nDone\u{a0}now.\n\n*** END OF THE PROJECT GUTENBERG EBOOK X ***\nLicence text.";
        let book = read_plain(source, None, &ImportOptions::default()).unwrap();
        assert_eq!(book.meta.title.as_deref(), Some("A Book"));
        assert_eq!(book.meta.author.as_deref(), Some("Someone"));
        assert_eq!(book.meta.language.as_deref(), Some("en"));
        let titles: Vec<_> = book.chapters.iter().map(|c| c.title.as_str()).collect();
        assert_eq!(titles, ["CHAPTER I. The Start", "CHAPTER II. The End"]);
        assert_eq!(
            book.chapters[0].paragraphs,
            ["It was a wonderful day, and very warm.", "More."]
        );
        assert_eq!(book.chapters[1].paragraphs, ["Done now."]);
        let skipped: Vec<(&str, &str, usize)> = book
            .skipped
            .iter()
            .map(|s| (s.title.as_str(), s.reason.as_str(), s.characters))
            .collect();
        assert_eq!(
            skipped,
            [
                (
                    "Project Gutenberg's header",
                    "Project Gutenberg's header",
                    "Title: A Book Author: Someone Language: English".len()
                ),
                (
                    "Project Gutenberg's licence",
                    "licence",
                    "*** END OF THE PROJECT GUTENBERG EBOOK X *** Licence text.".len()
                ),
                (
                    "Front matter",
                    "before the first chapter heading",
                    "Contents".len()
                ),
            ]
        );
    }

    #[test]
    fn markdown_title_chapters_and_left_out() {
        let md = "---\ntitle: T\nauthor: A\n---\n\n# T\n\nA foreword.\n\n## One\n\nFirst *para*[^1].\n\n![map](m.png)\n\n| a |\n|---|\n| b |\n\n## Two\n\n- item\n\n[^1]: A note.\n";
        let book = read_markdown(md, &Choice::default());
        assert_eq!(book.meta.title.as_deref(), Some("T"));
        let got: Vec<_> = book
            .chapters
            .iter()
            .map(|c| (c.title.as_str(), c.paragraphs.clone()))
            .collect();
        assert_eq!(
            got,
            vec![
                ("One", vec!["First para.".to_string()]),
                ("Two", vec!["item".to_string()])
            ]
        );
        let left: std::collections::HashMap<_, _> = book.left_out.iter().cloned().collect();
        assert_eq!((left["image"], left["table"], left["footnote"]), (1, 1, 1));
        assert_eq!(book.skipped[0].reason, "before the first chapter heading");
    }

    #[test]
    fn inline_script_and_style_are_not_narrated() {
        let md = "# One\n\nHello <script>alert('owned')</script>world, <style>p{}</style>again.\n";
        let book = read_markdown(md, &Choice::default());
        let text = book.chapters[0].paragraphs.join(" ");
        assert!(!text.contains("alert") && !text.contains("p{}"), "{text}");
        assert!(text.contains("Hello") && text.contains("world") && text.contains("again"));
        assert!(
            book.left_out
                .iter()
                .any(|(what, n)| *what == "script" && *n == 2)
        );
    }
}

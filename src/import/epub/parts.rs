//! The book's text cut into parts at its entries: the table of contents' entries at every
//! depth (or, without one, its headings), placed in the reading order; the chapters chosen
//! among them (see `tree`); each chapter's span cut again where the book marks its own back
//! or front matter (a colophon after the last chapter, a bibliography at the end of one), so
//! that matter is told apart from the chapter it follows.
//!
//! Not responsible for which parts are kept (see `import::chapters`).

use super::toc::Entry;
use crate::import::html::{Block, Page};
use crate::import::tree::{self, Node, Role};
use crate::import::{Book, Part, Skipped, matter_type};

/// A place in the reading order: (spine index, block index).
type At = (usize, usize);

/// An entry placed in the reading order.
#[derive(Clone, Debug)]
pub(super) struct Mark {
    at: At,
    label: String,
    depth: usize,
}

/// The book's files in reading order, with what the package says each file is.
pub(super) struct Files<'a> {
    pub(super) spine: &'a [(String, bool)],
    pub(super) pages: &'a [Page],
    /// Per spine file: the kinds the landmarks, the guide and the navigation document give it.
    pub(super) kinds: Vec<Vec<String>>,
}

impl Files<'_> {
    /// The blocks from `from` up to `to`, each with its spine index; non-linear files (notes)
    /// are passed over unless the span starts in one.
    fn blocks(&self, from: At, to: At) -> Vec<(usize, &Block)> {
        let mut out = Vec::new();
        for k in from.0..=to.0.min(self.pages.len().saturating_sub(1)) {
            if !self.spine[k].1 && k != from.0 {
                continue;
            }
            let blocks = &self.pages[k].blocks;
            let start = if k == from.0 { from.1 } else { 0 };
            let end = if k == to.0 { to.1 } else { blocks.len() };
            let range = blocks.get(start..end.max(start)).unwrap_or_default();
            out.extend(range.iter().map(|b| (k, b)));
        }
        out
    }

    /// What a block is, as the book marks it: its own kinds and its file's.
    fn matter_of(&self, k: usize, block: &Block) -> Option<&'static str> {
        matter_type(block.kinds.iter().chain(&self.kinds[k]))
    }

    fn end(&self) -> At {
        (self.pages.len(), 0)
    }
}

/// The table of contents' entries placed in the reading order (an entry whose file is not in
/// it is skipped with its reason), in reading order.
pub(super) fn marks_of_toc(entries: &[Entry], files: &Files<'_>, book: &mut Book) -> Vec<Mark> {
    use std::collections::HashMap;
    // Each file's place in the reading order, each anchor's block, and the deepest entry at
    // each place: looked up, so a table of thousands of entries stays linear.
    let spine: HashMap<&str, usize> = files
        .spine
        .iter()
        .enumerate()
        .rev()
        .map(|(k, (p, _))| (p.as_str(), k))
        .collect();
    let mut anchors: HashMap<(usize, &str), usize> = HashMap::new();
    for (k, page) in files.pages.iter().enumerate() {
        for (b, block) in page.blocks.iter().enumerate() {
            for a in &block.anchors {
                anchors.entry((k, a.as_str())).or_insert(b);
            }
        }
        for a in &page.trailing_anchors {
            anchors.entry((k, a.as_str())).or_insert(page.blocks.len());
        }
    }
    let mut deepest: HashMap<At, usize> = HashMap::new();
    let mut marks: Vec<Mark> = Vec::new();
    // Entries without a link wait for the next entry's place.
    let mut unplaced: Vec<&Entry> = Vec::new();
    for e in entries {
        if e.path.is_empty() {
            unplaced.push(e);
            continue;
        }
        let Some(&k) = spine.get(e.path.as_str()) else {
            book.skipped.push(Skipped {
                title: e.label.clone(),
                reason: format!("its file {} is not in the reading order", e.path),
                characters: 0,
            });
            continue;
        };
        let block = e
            .fragment
            .as_deref()
            .and_then(|f| anchors.get(&(k, f)).copied())
            .unwrap_or(0);
        for u in unplaced.drain(..) {
            marks.push(Mark {
                at: (k, block),
                label: u.label.clone(),
                depth: u.depth,
            });
        }
        // Two entries at one place: a part and its first chapter are both kept; a second
        // entry for the same place at the same level is not.
        let deepest = deepest.entry((k, block)).or_insert(0);
        if e.depth > *deepest {
            *deepest = e.depth;
            marks.push(Mark {
                at: (k, block),
                label: e.label.clone(),
                depth: e.depth,
            });
        }
    }
    marks.sort_by_key(|m| m.at);
    marks
}

/// Without a table of contents: the headings of the files in the reading order, at their
/// levels; a file that does not start with a heading starts an entry titled by its `<title>`
/// (at the level of its first heading), and a file without headings goes on with the entry
/// before it.
pub(super) fn marks_of_headings(files: &Files<'_>) -> Vec<Mark> {
    let mut marks = Vec::new();
    for (k, page) in files.pages.iter().enumerate() {
        if !files.spine[k].1 {
            continue;
        }
        let Some(first) = page.blocks.iter().find_map(|b| b.heading) else {
            if marks.is_empty() && !page.blocks.is_empty() {
                marks.push(untitled(page, k, 1));
            }
            continue;
        };
        if page.blocks.first().is_some_and(|b| b.heading.is_none()) {
            marks.push(untitled(page, k, usize::from(first)));
        }
        for (b, block) in page.blocks.iter().enumerate() {
            if let Some(level) = block.heading {
                marks.push(Mark {
                    at: (k, b),
                    label: block.text.clone(),
                    depth: usize::from(level),
                });
            }
        }
    }
    marks
}

fn untitled(page: &Page, k: usize, depth: usize) -> Mark {
    Mark {
        at: (k, 0),
        label: page
            .title
            .clone()
            .unwrap_or_else(|| format!("Part {}", k + 1)),
        depth,
    }
}

/// The parts the marks cut the book into, the text before the first mark first; `toc_depth`
/// is `--toc-depth`.
pub(super) fn parts(marks: &[Mark], files: &Files<'_>, toc_depth: Option<usize>) -> Vec<Part> {
    let mut out = Vec::new();
    let Some(first) = marks.first() else {
        return out;
    };
    let front = files.blocks((0, 0), first.at);
    if !front.is_empty() {
        let mut part = part_of("Front matter", &front);
        part.kinds.insert(0, "frontmatter-before-toc".into());
        part.kinds
            .extend(front.iter().flat_map(|(k, _)| &files.kinds[*k]).cloned());
        out.push(part);
    }
    let ends: Vec<At> = marks.iter().skip(1).map(|m| m.at).collect();
    let nodes: Vec<Node> = marks
        .iter()
        .zip(ends.iter().chain([files.end()].iter()))
        .map(|(m, &end)| Node {
            depth: m.depth,
            own: chars(&files.blocks(m.at, end)),
        })
        .collect();
    let roles = tree::roles(&nodes, toc_depth);
    // The parts open above the mark being read: (depth, label); and a part's own text waiting
    // for its first chapter.
    let mut open: Vec<(usize, String)> = Vec::new();
    let mut waiting: Vec<String> = Vec::new();
    let cuts: Vec<usize> = (0..marks.len())
        .filter(|&i| roles[i] != Role::Inside)
        .collect();
    // A lone part wrapping the whole book (its title) does not name the chapters.
    let wrapper = roles[0] == Role::Part && marks[1..].iter().all(|m| m.depth > marks[0].depth);
    for (n, &i) in cuts.iter().enumerate() {
        let mark = &marks[i];
        let end = cuts.get(n + 1).map_or(files.end(), |&j| marks[j].at);
        while open.last().is_some_and(|(d, _)| *d >= mark.depth) {
            open.pop();
        }
        let blocks = files.blocks(mark.at, end);
        let part = roles[i] == Role::Part;
        // A part's heading and a few lines are read before its first chapter; more than that
        // (a book's introduction under its title) is a chapter of its own.
        if part && chars(&blocks) <= tree::PART_OWN_MAX {
            waiting.extend(blocks.iter().map(|(_, b)| b.text.clone()));
            open.push((mark.depth, mark.label.clone()));
            continue;
        }
        let names: Vec<String> = open
            .iter()
            .skip(usize::from(wrapper))
            .map(|(_, l)| l.clone())
            .collect();
        out.extend(chapter_parts(mark, &blocks, files, names, &mut waiting));
        if part {
            open.push((mark.depth, mark.label.clone()));
        }
    }
    out
}

/// One chapter's span: the chapter, then the spans inside it that the book marks as other
/// matter than the chapter's start, each a part of its own.
fn chapter_parts(
    mark: &Mark,
    blocks: &[(usize, &Block)],
    files: &Files<'_>,
    names: Vec<String>,
    waiting: &mut Vec<String>,
) -> Vec<Part> {
    let mut out: Vec<Part> = Vec::new();
    let mut from = 0;
    for j in 1..=blocks.len() {
        let cut = j == blocks.len() || {
            let (k0, b0) = blocks[j - 1];
            let (k1, b1) = blocks[j];
            files.matter_of(k0, b0) != files.matter_of(k1, b1)
        };
        if !cut {
            continue;
        }
        let piece = &blocks[from..j];
        let title = if from == 0 {
            mark.label.clone()
        } else {
            let (k, b) = piece[0];
            match (b.heading, &files.pages[k].title) {
                (Some(_), _) => b.text.clone(),
                (None, Some(t)) => t.clone(),
                (None, None) => format!("{} (continued)", mark.label),
            }
        };
        let mut part = part_of(&title, piece);
        if from == 0 {
            if !waiting.is_empty() {
                let mut heading = std::mem::take(waiting);
                heading.extend(part.heading.take());
                part.heading = Some(heading.join("\n\n"));
            }
            if !names.is_empty() {
                part.title = format!("{}: {}", names.join(": "), part.title);
                part.parts = names.clone();
            }
        }
        part.kinds.extend(files.kinds[piece[0].0].iter().cloned());
        out.push(part);
        from = j;
    }
    if out.is_empty() {
        let mut part = part_of(&mark.label, &[]);
        part.kinds
            .extend(files.kinds.get(mark.at.0).into_iter().flatten().cloned());
        out.push(part);
    }
    out
}

/// A part of these blocks: a first heading is its heading, the rest its paragraphs, and the
/// kinds of its first block are its kinds.
fn part_of(title: &str, blocks: &[(usize, &Block)]) -> Part {
    let mut iter = blocks.iter().peekable();
    let heading = iter
        .next_if(|(_, b)| b.heading.is_some())
        .map(|(_, b)| b.text.clone());
    let title = if title.is_empty() {
        heading.clone().unwrap_or_else(|| "(untitled)".into())
    } else {
        title.to_string()
    };
    Part {
        title,
        heading,
        kinds: blocks
            .first()
            .map(|(_, b)| b.kinds.clone())
            .unwrap_or_default(),
        paragraphs: iter.map(|(_, b)| b.text.clone()).collect(),
        parts: Vec::new(),
    }
}

fn chars(blocks: &[(usize, &Block)]) -> usize {
    blocks.iter().map(|(_, b)| b.text.chars().count()).sum()
}

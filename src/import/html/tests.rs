//! The XHTML reader against small pages: blocks, headings, what is left out and why.

use super::*;

fn texts(page: &Page) -> Vec<(Option<u8>, &str)> {
    page.blocks
        .iter()
        .map(|b| (b.heading, b.text.as_str()))
        .collect()
}

#[test]
fn blocks_headings_and_what_is_left_out() {
    let page = read_page(
        r##"<?xml version="1.0"?><html xmlns:epub="http://www.idpf.org/2007/ops"><head><title>One &amp; Two</title></head>
        <body epub:type="bodymatter"><h1 id="c1">Chapter&#160;One</h1>
        <p>It was a <em>dark</em> night<a href="#n1" epub:type="noteref">1</a>, co&shy;ld.</p>
        <span epub:type="pagebreak" title="12">12</span>
        <p id="p2">Next<sup>2</sup> line<br/>and more.</p>
        <table><tr><td>x</td></tr></table><img src="a.png" alt="A map"/>
        <aside epub:type="footnote" id="n1"><p>The note.</p></aside></body></html>"##,
        HtmlOptions::default(),
    )
    .unwrap();
    assert_eq!(
        texts(&page),
        vec![
            (Some(1), "Chapter One"),
            (None, "It was a dark night, cold."),
            (None, "Next line and more."),
        ]
    );
    assert_eq!(page.title.as_deref(), Some("One & Two"));
    assert_eq!(page.kinds, vec!["bodymatter"]);
    assert_eq!(page.blocks[0].anchors, vec!["c1"]);
    assert_eq!(page.blocks[2].anchors, vec!["p2"]);
    let left: std::collections::HashMap<_, _> = page.left_out.iter().cloned().collect();
    assert_eq!(left["footnote marker"], 2);
    assert_eq!(left["page number"], 1);
    assert_eq!(left["table"], 1);
    assert_eq!(left["image"], 1);
    assert_eq!(left["footnote"], 1);
}

#[test]
fn lenient_html_and_alt_text() {
    let page = read_page(
        "<html><body><p>One<br>two<p>Three <img src=x alt='A fox'> four</body>",
        HtmlOptions { alt_text: true },
    )
    .unwrap();
    assert_eq!(
        texts(&page),
        vec![
            (None, "One two"),
            (None, "Three"),
            (None, "A fox"),
            (None, "four")
        ]
    );
}

#[test]
fn navigation_links_with_depth() {
    let page = read_page(
        r#"<html xmlns:epub="http://www.idpf.org/2007/ops"><body>
        <nav epub:type="toc"><ol><li><a href="a.xhtml">Part</a><ol>
        <li><a href="a.xhtml#c1">One</a></li></ol></li></ol></nav>
        <nav epub:type="landmarks"><ol><li><a epub:type="cover" href="cover.xhtml">Cover</a></li></ol></nav>
        </body></html>"#,
        HtmlOptions::default(),
    )
    .unwrap();
    let links: Vec<_> = page
        .nav
        .iter()
        .map(|l| (l.nav.as_str(), l.depth, l.href.as_str(), l.label.as_str()))
        .collect();
    assert_eq!(
        links,
        vec![
            ("toc", 1, "a.xhtml", "Part"),
            ("toc", 2, "a.xhtml#c1", "One"),
            ("landmarks", 1, "cover.xhtml", "Cover"),
        ]
    );
    assert_eq!(page.nav[2].kind.as_deref(), Some("cover"));
}

#[test]
fn ruby_formulas_svg_and_gutenbergs_boilerplate() {
    let source = r#"<html xmlns:epub="http://www.idpf.org/2007/ops"><body>
        <section id="pg-header"><p>The Project Gutenberg eBook of Things</p></section>
        <p><ruby>漢<rp>(</rp><rt>かん</rt><rp>)</rp>字</ruby> is read once.</p>
        <p>So <math alttext="x squared"><msup><mi>x</mi><mn>2</mn></msup></math> grows.</p>
        <p>A tree <svg><text>label</text></svg> stands.</p>
        <section id="pg-footer"><p>End of the Project Gutenberg eBook</p></section></body></html>"#;
    let page = read_page(source, HtmlOptions::default()).unwrap();
    assert_eq!(
        texts(&page),
        vec![
            (None, "The Project Gutenberg eBook of Things"),
            (None, "漢字 is read once."),
            (None, "So grows."),
            (None, "A tree stands."),
            (None, "End of the Project Gutenberg eBook"),
        ]
    );
    assert_eq!(page.blocks[0].kinds, vec!["pg-header"]);
    assert!(page.blocks[1].kinds.is_empty());
    assert_eq!(page.blocks[4].kinds, vec!["pg-footer"]);
    let left: std::collections::HashMap<_, _> = page.left_out.iter().cloned().collect();
    assert_eq!(left["formula"], 1);
    assert_eq!(left["image"], 1);
    // With --alt-text, a formula's alttext is read in its place.
    let page = read_page(source, HtmlOptions { alt_text: true }).unwrap();
    assert_eq!(texts(&page)[2], (None, "So x squared grows."));
    assert!(!page.left_out.iter().any(|(w, _)| *w == "formula"));
}

//! A podcast feed: RSS 2.0 with Apple's `itunes:` tags and the Podcasting 2.0 `podcast:`
//! namespace (transcripts, JSON chapters), and the JSON chapters file an episode links to.
//! Every text from a manifest is escaped and kept on one line; characters XML cannot carry are
//! dropped.
//!
//! Not responsible for which episodes a feed holds (see `commands::feed`).

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

/// The podcast itself.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Channel {
    pub(crate) title: String,
    pub(crate) description: String,
    /// The podcast's web page (the files' base URL when none is given).
    pub(crate) link: String,
    pub(crate) author: Option<String>,
    /// The cover's URL (Apple asks for 1400 to 3000 pixels square).
    pub(crate) image: String,
    pub(crate) language: String,
    pub(crate) category: String,
    pub(crate) explicit: bool,
}

/// One episode.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Item {
    /// Stable across runs: made from the audio file's path within the feed's folder.
    pub(crate) guid: String,
    pub(crate) title: String,
    pub(crate) url: String,
    pub(crate) length: u64,
    pub(crate) mime: String,
    pub(crate) seconds: f64,
    /// RFC 2822 (`Sun, 06 Dec 2026 02:00:00 GMT`): when it first appeared in the feed.
    pub(crate) published: String,
    /// Seconds since the Unix epoch of `published`, for the order (newest first).
    pub(crate) published_unix: u64,
    /// The captions' URL and type.
    pub(crate) transcript: Option<(String, String)>,
    /// The JSON chapters' URL.
    pub(crate) chapters: Option<String>,
}

/// Text for an element or an attribute: on one line, without the characters XML 1.0 cannot
/// carry, escaped.
fn text(s: &str) -> String {
    let clean: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .filter(|c| !matches!(*c, '\u{FFFE}' | '\u{FFFF}'))
        .collect();
    quick_xml::escape::escape(clean.trim()).into_owned()
}

/// `itunes:duration` as `H:MM:SS`.
fn duration(seconds: f64) -> String {
    let s = seconds.max(0.0).round() as u64;
    format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
}

/// The feed's XML: the channel, then its items newest first.
pub(crate) fn rss(channel: &Channel, items: &[Item]) -> String {
    let mut out = String::from(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<rss version=\"2.0\" xmlns:itunes=\"http://www.itunes.com/dtds/podcast-1.0.dtd\" xmlns:podcast=\"https://podcastindex.org/namespace/1.0\">\n<channel>\n",
    );
    let c = channel;
    let _ = write!(
        out,
        "<title>{}</title>\n<link>{}</link>\n<description>{}</description>\n<language>{}</language>\n<generator>narrate</generator>\n<itunes:image href=\"{}\"/>\n<itunes:category text=\"{}\"/>\n<itunes:explicit>{}</itunes:explicit>\n",
        text(&c.title),
        text(&c.link),
        text(&c.description),
        text(&c.language),
        text(&c.image),
        text(&c.category),
        c.explicit,
    );
    if let Some(author) = &c.author {
        let _ = writeln!(out, "<itunes:author>{}</itunes:author>", text(author));
    }
    let mut sorted: Vec<&Item> = items.iter().collect();
    sorted.sort_by(|a, b| {
        b.published_unix
            .cmp(&a.published_unix)
            .then(a.title.cmp(&b.title))
    });
    for item in sorted {
        let _ = write!(
            out,
            "<item>\n<title>{}</title>\n<guid isPermaLink=\"false\">{}</guid>\n<pubDate>{}</pubDate>\n<enclosure url=\"{}\" length=\"{}\" type=\"{}\"/>\n<itunes:duration>{}</itunes:duration>\n",
            text(&item.title),
            text(&item.guid),
            text(&item.published),
            text(&item.url),
            item.length,
            text(&item.mime),
            duration(item.seconds),
        );
        if let Some((url, mime)) = &item.transcript {
            let _ = writeln!(
                out,
                "<podcast:transcript url=\"{}\" type=\"{}\"/>",
                text(url),
                text(mime)
            );
        }
        if let Some(url) = &item.chapters {
            let _ = writeln!(
                out,
                "<podcast:chapters url=\"{}\" type=\"application/json+chapters\"/>",
                text(url)
            );
        }
        out.push_str("</item>\n");
    }
    out.push_str("</channel>\n</rss>\n");
    out
}

/// The Podcasting 2.0 JSON chapters of an episode: each chapter's start (seconds) and title.
pub(crate) fn chapters_json(chapters: &[(f64, String)]) -> Vec<u8> {
    let chapters: Vec<serde_json::Value> = chapters
        .iter()
        .map(|(start, title)| serde_json::json!({"startTime": start, "title": title}))
        .collect();
    serde_json::to_vec_pretty(&serde_json::json!({"version": "1.2.0", "chapters": chapters}))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn titles_cannot_carry_markup_or_lines_into_the_feed() {
        assert_eq!(
            text("A <b>bold</b> & \"quoted\"\nline\u{0}"),
            "A &lt;b&gt;bold&lt;/b&gt; &amp; &quot;quoted&quot; line"
        );
        assert_eq!(duration(3725.4), "1:02:05");
    }
}

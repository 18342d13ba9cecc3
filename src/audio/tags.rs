//! ID3v2.4 tags for MP3 output: title, artist, album, and chapters (`CHAP` with a `CTOC`) that
//! players show as chapter marks.
//!
//! Not responsible for the MP3 Info frame (see `codec::mp3`).

/// What the ID3 tag says.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct TagSpec {
    /// The book's metadata, with the title of the file (a chapter's, when split).
    #[serde(flatten)]
    pub book: crate::book::Metadata,
    /// ID3 TALB, MP4 album.
    pub album: Option<String>,
    /// Chapters in order: title, and the index of the output piece where its audio starts.
    pub chapters: Vec<(String, usize)>,
}

/// A value in ffmpeg's FFMETADATA: `=`, `;`, `#`, `\\` and newlines escaped.
pub(crate) fn ffmetadata_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '=' | ';' | '#' | '\\' | '\n') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// A chapter with its times in milliseconds.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct ChapterTime {
    pub title: String,
    pub start_ms: u32,
    pub end_ms: u32,
}

pub(crate) fn syncsafe(n: usize) -> [u8; 4] {
    let n = n as u32;
    [
        ((n >> 21) & 0x7F) as u8,
        ((n >> 14) & 0x7F) as u8,
        ((n >> 7) & 0x7F) as u8,
        (n & 0x7F) as u8,
    ]
}

pub(crate) fn frame(id: &[u8; 4], body: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(10 + body.len());
    f.extend_from_slice(id);
    f.extend_from_slice(&syncsafe(body.len()));
    f.extend_from_slice(&[0, 0]);
    f.extend_from_slice(body);
    f
}

/// A UTF-8 text frame such as TIT2.
pub(crate) fn text_frame(id: &[u8; 4], text: &str) -> Vec<u8> {
    let mut body = vec![3u8]; // UTF-8
    body.extend_from_slice(text.as_bytes());
    frame(id, &body)
}

/// An ID3v2.4 tag; its length is the same for any chapter times.
pub(crate) fn id3v2(spec: &TagSpec, chapters: &[ChapterTime]) -> Vec<u8> {
    let mut frames = Vec::new();
    if let Some(t) = &spec.book.title {
        frames.extend(text_frame(b"TIT2", t));
    }
    if let Some(a) = &spec.book.author {
        frames.extend(text_frame(b"TPE1", a));
    }
    if let Some(a) = &spec.album {
        frames.extend(text_frame(b"TALB", a));
    }
    if let Some(n) = &spec.book.narrator {
        frames.extend(text_frame(b"TCOM", n));
    }
    if let Some(y) = &spec.book.year {
        frames.extend(text_frame(b"TDRC", y));
    }
    if let Some(image) = spec
        .book
        .cover
        .as_deref()
        .and_then(|p| crate::files::read_bytes(p, 16 * 1024 * 1024).ok())
    {
        let mime: &[u8] = if image.starts_with(b"\x89PNG") {
            b"image/png"
        } else {
            b"image/jpeg"
        };
        let mut body = vec![0u8]; // Latin-1 description (empty)
        body.extend_from_slice(mime);
        body.extend_from_slice(&[0, 0x03, 0]); // front cover, no description
        body.extend_from_slice(&image);
        frames.extend(frame(b"APIC", &body));
    }
    frames.extend(text_frame(
        b"TSSE",
        concat!("narrate ", env!("CARGO_PKG_VERSION")),
    ));
    if !chapters.is_empty() {
        let mut toc = b"toc\0".to_vec();
        toc.push(0x03); // top-level, ordered
        toc.push(chapters.len().min(255) as u8);
        for i in 0..chapters.len().min(255) {
            toc.extend_from_slice(format!("chp{i}\0").as_bytes());
        }
        frames.extend(frame(b"CTOC", &toc));
        for (i, c) in chapters.iter().enumerate().take(255) {
            let mut body = format!("chp{i}\0").into_bytes();
            body.extend_from_slice(&c.start_ms.to_be_bytes());
            body.extend_from_slice(&c.end_ms.to_be_bytes());
            body.extend_from_slice(&[0xFF; 8]); // no byte offsets
            body.extend(text_frame(b"TIT2", &c.title));
            frames.extend(frame(b"CHAP", &body));
        }
    }
    let mut tag = b"ID3\x04\x00\x00".to_vec();
    tag.extend_from_slice(&syncsafe(frames.len()));
    tag.extend(frames);
    tag
}

/// The ID3 tag of an MP3 output with its chapters placed by `placement`: each starts where its
/// first audio starts (the first at the very beginning) and runs to the next. Its size does
/// not depend on the times, so a tag made from an empty placement holds the place of the final
/// one while the audio is written.
use super::Placement;

pub(crate) fn id3_tag(
    spec: &crate::audio::tags::TagSpec,
    rate: u32,
    placement: &Placement,
) -> Vec<u8> {
    crate::audio::tags::id3v2(spec, &chapter_times(spec, rate, placement))
}

/// The chapters of `spec` placed by `placement`, in milliseconds.
pub(crate) fn chapter_times(spec: &TagSpec, rate: u32, placement: &Placement) -> Vec<ChapterTime> {
    let ms = |samples: u64| (samples * 1000 / u64::from(rate)).min(u64::from(u32::MAX)) as u32;
    let start = |i: usize| match i {
        0 => 0,
        _ => spec
            .chapters
            .get(i)
            .map_or(placement.total_samples, |(_, piece)| {
                placement
                    .spans
                    .get(*piece)
                    .map_or(placement.total_samples, |s| s.start)
            }),
    };
    spec.chapters
        .iter()
        .enumerate()
        .map(|(i, (title, _))| ChapterTime {
            title: title.clone(),
            start_ms: ms(start(i)),
            end_ms: ms(start(i + 1)),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tag_size_does_not_depend_on_the_times() {
        let spec = TagSpec {
            book: crate::book::Metadata {
                title: Some("Book".into()),
                author: Some("Lewis Carroll".into()),
                ..Default::default()
            },
            chapters: vec![("One".into(), 0), ("Two".into(), 3)],
            ..TagSpec::default()
        };
        let zero = vec![
            ChapterTime {
                title: "One".into(),
                start_ms: 0,
                end_ms: 0,
            },
            ChapterTime {
                title: "Two".into(),
                start_ms: 0,
                end_ms: 0,
            },
        ];
        let real = vec![
            ChapterTime {
                title: "One".into(),
                start_ms: 0,
                end_ms: 61_000,
            },
            ChapterTime {
                title: "Two".into(),
                start_ms: 61_000,
                end_ms: 3_600_000,
            },
        ];
        let a = id3v2(&spec, &zero);
        let b = id3v2(&spec, &real);
        assert_eq!(a.len(), b.len());
        assert_eq!(&a[..3], b"ID3");
        assert!(b.windows(4).any(|w| w == b"CHAP") && b.windows(4).any(|w| w == b"CTOC"));
    }
}

//! `--library DIR`: the output placed where Audiobookshelf looks for a book, one folder a book,
//! `DIR/<Author>/<Title>/<Title>.<ext>` (its "{Author}/{Book}" folder structure), with the
//! metadata files its scanner reads beside the audio: `cover.jpg` (or `.png`), `desc.txt`
//! (the description) and `reader.txt` (the narrator).
//!
//! Not responsible for the audio (see `audio`).

use std::path::{Path, PathBuf};

use crate::manifest::Job;

/// One path component from a title or a name: no separators or control characters, no
/// leading or trailing dots or spaces, at most 120 characters; `fallback` when nothing is left.
pub(crate) fn component(name: &str, fallback: &str) -> String {
    let cleaned: String = name
        .chars()
        .map(|c| {
            if c.is_control() || matches!(c, '/' | '\\' | ':' | '*' | '?' | '"' | '<' | '>' | '|') {
                ' '
            } else {
                c
            }
        })
        .collect();
    let words: Vec<&str> = cleaned.split_whitespace().collect();
    let joined: String = words.join(" ").chars().take(120).collect();
    let trimmed = joined.trim_matches(|c: char| c == '.' || c == ' ');
    if trimmed.is_empty() {
        fallback.to_string()
    } else {
        trimmed.to_string()
    }
}

/// The book's folder in the library, and its audio path there.
pub(crate) fn place(job: &Job, library: &Path) -> (PathBuf, PathBuf) {
    let stem = job
        .manifest
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let title = component(job.book.title.as_deref().unwrap_or(&stem), "Untitled");
    let author = component(job.book.author.as_deref().unwrap_or(""), "Unknown Author");
    let folder = library.join(author).join(&title);
    let ext = job
        .output
        .extension()
        .map(|e| e.to_string_lossy().into_owned())
        .unwrap_or_else(|| "mp3".into());
    let audio = folder.join(format!("{title}.{ext}"));
    (folder, audio)
}

/// The metadata files written beside the audio in the book's folder.
pub(crate) fn metadata_files(job: &Job, folder: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    if let Some(cover) = &job.book.cover {
        let ext = cover
            .extension()
            .map(|e| e.to_string_lossy().to_ascii_lowercase())
            .unwrap_or_else(|| "jpg".into());
        files.push(folder.join(format!("cover.{ext}")));
    }
    if job.book.description.is_some() {
        files.push(folder.join("desc.txt"));
    }
    if job.book.narrator.is_some() {
        files.push(folder.join("reader.txt"));
    }
    files
}

/// Writes the cover, `desc.txt` and `reader.txt` beside the audio (atomically; a cover that is
/// already there is left as it is).
pub(crate) fn write_metadata(job: &Job, folder: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut written = Vec::new();
    for path in metadata_files(job, folder) {
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
        let data = match name.as_deref() {
            Some("desc.txt") => job.book.description.clone().map(String::into_bytes),
            Some("reader.txt") => job.book.narrator.clone().map(String::into_bytes),
            _ => match &job.book.cover {
                Some(c) if crate::files::identity(c) != crate::files::identity(&path) => Some(
                    crate::files::read_bytes(c, 16 * 1024 * 1024).map_err(std::io::Error::other)?,
                ),
                _ => None,
            },
        };
        if let Some(mut data) = data {
            if !name.as_deref().is_some_and(|n| n.starts_with("cover.")) {
                data.push(b'\n');
            }
            crate::files::write_atomic(&path, &data)?;
            written.push(path);
        }
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::component;

    #[test]
    fn names_become_safe_folder_names() {
        assert_eq!(
            component("Alice's Adventures: in Wonderland", "x"),
            "Alice's Adventures in Wonderland"
        );
        assert_eq!(component("../../etc", "x"), "etc");
        assert_eq!(component(" .. ", "Untitled"), "Untitled");
        assert_eq!(component("a/b\\c\nd", "x"), "a b c d");
    }
}

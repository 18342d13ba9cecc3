//! The files a job writes: its output, or one per chapter with `--split chapters`, named after
//! the chapter (`<stem>-NN-<chapter>.<ext>`), and the safe slug such names are made of.
//!
//! Not responsible for what goes into the files (see `publish`).

use std::path::PathBuf;

use crate::manifest::Job;

/// One file a job's audio goes into.
#[derive(Clone, Debug)]
pub(crate) struct OutputFile {
    pub(crate) path: PathBuf,
    /// The run of segments it holds.
    pub(crate) segments: std::ops::Range<usize>,
    /// The chapter it holds, when split by chapter.
    pub(crate) chapter: Option<String>,
}

/// The output files of a job: the whole job in its `output`, or with `--split chapters` one
/// file per chapter, `<stem>-NN-<chapter>.<ext>` beside it. Each is a run of segments.
pub(crate) fn output_files(job: &Job, split: bool) -> Vec<OutputFile> {
    if !split {
        return vec![OutputFile {
            path: job.output.clone(),
            segments: 0..job.segments.len(),
            chapter: None,
        }];
    }
    let runs = crate::manifest::chapters::runs(job);
    // A subset of the chapters keeps the whole job's file names and numbers.
    let (whole, numbers, total) = match &job.subset {
        Some(sub) => (&sub.whole_output, Some(&sub.numbers), sub.total),
        None => (&job.output, None, runs.len()),
    };
    let stem = whole
        .file_stem()
        .unwrap_or_default()
        .to_string_lossy()
        .into_owned();
    let ext = whole
        .extension()
        .unwrap_or_default()
        .to_string_lossy()
        .into_owned();
    let dir = whole
        .parent()
        .unwrap_or(std::path::Path::new(""))
        .to_path_buf();
    let width = total.to_string().len().max(2);
    runs.into_iter()
        .enumerate()
        .map(|(k, (chapter, range))| {
            let number = numbers.and_then(|n| n.get(k)).copied().unwrap_or(k + 1);
            let name = format!(
                "{stem}-{:0width$}-{}.{ext}",
                number,
                slug(chapter.as_deref().unwrap_or("part"))
            );
            OutputFile {
                path: dir.join(name),
                segments: range,
                chapter,
            }
        })
        .collect()
}

/// A file-system-safe name from a chapter title: lowercase ASCII letters and digits, words
/// joined by '-', at most 60 characters.
pub(crate) fn slug(title: &str) -> String {
    let mut out = String::new();
    for c in title.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
    }
    let mut out: String = out.trim_end_matches('-').chars().take(60).collect();
    out = out.trim_end_matches('-').to_string();
    if out.is_empty() {
        "part".to_string()
    } else {
        out
    }
}

#[cfg(test)]
mod tests {
    use super::slug;

    #[test]
    fn chapter_file_names_are_safe() {
        assert_eq!(
            slug("Chapter I. Down the Rabbit-Hole!"),
            "chapter-i-down-the-rabbit-hole"
        );
        assert_eq!(slug("../../etc/passwd"), "etc-passwd");
        assert_eq!(slug("Ünïcödé"), "n-c-d");
        assert_eq!(slug("!!!"), "part");
        assert!(slug(&"word ".repeat(40)).len() <= 60);
    }
}

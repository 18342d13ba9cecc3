//! The files a job writes: its output, or one per chapter with `--split chapters`, named after
//! the chapter (`<stem>-NN-<chapter>.<ext>`), or one per segment with `--split segments`, named
//! after the segment's id in a folder named after the output (`<stem>/<id>.<ext>`); and the
//! safe names such files get.
//!
//! Not responsible for what goes into the files (see `publish`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::error::UsageError;
pub(crate) use crate::files::slug;
use crate::manifest::Job;

/// How a job's audio is split into files (`--split`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Split {
    /// One output file.
    #[default]
    None,
    /// One file per chapter, named after it: OUTPUT-STEM-01-chapter-title.EXT.
    Chapters,
    /// One file per segment, named after its id: OUTPUT-STEM/ID.EXT.
    Segments,
}

/// The longest file name a segment's id may give (most file systems allow 255 bytes; the
/// extension and the temporary file's affixes need the rest).
const MAX_ID_NAME: usize = 200;

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
/// file per chapter, `<stem>-NN-<chapter>.<ext>` beside it, or with `--split segments` one file
/// per segment, `<stem>/<id>.<ext>`. Each is a run of segments.
pub(crate) fn output_files(job: &Job, split: Split) -> Vec<OutputFile> {
    match split {
        Split::None => vec![OutputFile {
            path: job.output.clone(),
            segments: 0..job.segments.len(),
            chapter: None,
        }],
        Split::Chapters => chapter_files(job),
        Split::Segments => {
            let (dir, ext) = segment_folder(job);
            job.segments
                .iter()
                .enumerate()
                .map(|(si, s)| OutputFile {
                    path: dir.join(format!("{}.{ext}", id_name(&s.id))),
                    segments: si..si + 1,
                    chapter: None,
                })
                .collect()
        }
    }
}

/// The folder of a job's segment files (named after the whole output's stem, beside it) and
/// their extension.
fn segment_folder(job: &Job) -> (PathBuf, String) {
    let whole = job.subset.as_ref().map_or(&job.output, |s| &s.whole_output);
    let stem = whole.file_stem().unwrap_or_default();
    let ext = whole.extension().unwrap_or_default().to_string_lossy();
    (crate::files::parent_dir(whole).join(stem), ext.into_owned())
}

/// A segment's file name from its id: letters, digits, '.', '-' and '_' are kept, anything
/// else becomes '_' (see [`check_segment_names`] for the ids refused).
fn id_name(id: &str) -> String {
    id.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Refuses, before anything is sent, a segment id that cannot name its own file with
/// `--split segments`: one with a path separator or that is `.` or `..` (it would leave the
/// output folder), one that starts with '.' (a hidden file), an empty or overlong one, and two
/// ids that give the same name once made safe (compared without case, as macOS and Windows
/// do).
pub(crate) fn check_segment_names(job: &Job) -> Result<(), UsageError> {
    let where_ = |si: usize| {
        let s = &job.segments[si];
        format!("{}:{}: segment {:?}", job.manifest.display(), s.line, s.id)
    };
    let mut seen: HashMap<String, usize> = HashMap::with_capacity(job.segments.len());
    for (si, segment) in job.segments.iter().enumerate() {
        let id = segment.id.as_str();
        let why = if id.contains(['/', '\\']) || id == "." || id == ".." {
            Some("its id would name a file outside the output folder")
        } else if id.starts_with('.') {
            Some("its id would name a hidden file")
        } else if id.is_empty() || id.len() > MAX_ID_NAME {
            Some("its id cannot name a file (empty, or over 200 bytes)")
        } else {
            None
        };
        if let Some(why) = why {
            return Err(UsageError(format!(
                "{}: {why} with --split segments; give it an id of letters, digits, '-', '_' and '.'",
                where_(si)
            )));
        }
        let name = id_name(id).to_lowercase();
        if let Some(&other) = seen.get(&name) {
            return Err(UsageError(format!(
                "{}: its file {name:?} would be the file of {} too (ids are made safe for file names and compared without case); give them distinct ids",
                where_(si),
                where_(other)
            )));
        }
        seen.insert(name, si);
    }
    Ok(())
}

/// One file per chapter, `<stem>-NN-<chapter>.<ext>` beside the output.
fn chapter_files(job: &Job) -> Vec<OutputFile> {
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
    let dir = whole.parent().unwrap_or(Path::new("")).to_path_buf();
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

#[cfg(test)]
mod tests {
    use super::{id_name, slug};

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

    #[test]
    fn split_files_are_named_after_the_output_and_their_chapter_or_id() {
        use super::{Split, output_files};
        let dir = tempfile::tempdir().unwrap();
        let job = crate::manifest::from_yaml(
            &dir.path().join("book.yaml"),
            "output: out/book.mp3\ndefaults: {voice_id: JBFqnCBsd6RMkjVDRZzb}\nsegments:\n  - {id: a-1, chapter: Down the Hole, text: One.}\n  - {id: b.2, chapter: The Pool, text: Two.}\n",
        );
        let out = dir.path().join("out");
        let names = |split| -> Vec<_> {
            output_files(&job, split)
                .into_iter()
                .map(|f| (f.path, f.segments))
                .collect()
        };
        assert_eq!(names(Split::None), [(out.join("book.mp3"), 0..2)]);
        assert_eq!(
            names(Split::Segments),
            [
                (out.join("book/a-1.mp3"), 0..1),
                (out.join("book/b.2.mp3"), 1..2)
            ]
        );
        assert_eq!(
            names(Split::Chapters),
            [
                (out.join("book-01-down-the-hole.mp3"), 0..1),
                (out.join("book-02-the-pool.mp3"), 1..2)
            ]
        );
    }

    #[test]
    fn a_segment_id_of_200_bytes_names_a_file_and_one_of_201_does_not() {
        let dir = tempfile::tempdir().unwrap();
        let check = |id: String| {
            let job = crate::manifest::from_yaml(
                &dir.path().join("ids.yaml"),
                &format!(
                    "output: out/b.mp3\ndefaults: {{voice_id: JBFqnCBsd6RMkjVDRZzb}}\nsegments:\n  - {{id: {id}, text: One.}}\n"
                ),
            );
            super::check_segment_names(&job)
        };
        assert!(check("a".repeat(200)).is_ok());
        let refused = check("a".repeat(201)).unwrap_err().to_string();
        assert!(refused.contains("over 200 bytes"), "{refused}");
    }

    #[test]
    fn segment_file_names_keep_only_safe_characters() {
        assert_eq!(id_name("item-0042_v2.final"), "item-0042_v2.final");
        assert_eq!(id_name("a b:c*d?é"), "a_b_c_d__");
    }
}

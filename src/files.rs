//! Every file narrate reads from the user and every file it writes goes through here.
//!
//! - Reads are bounded: an input must be a regular file (not a FIFO, a device or a directory)
//!   no larger than a documented limit, so `text_file: /dev/zero` or a named pipe is an error
//!   naming the file instead of gigabytes read or a hang.
//! - Writes are atomic and link-safe: a temporary file in the destination's directory, synced,
//!   then renamed over the destination. A rename replaces a symlink planted at the destination
//!   instead of writing through it, and a reader never sees a partial file. New files take their
//!   mode from the umask (the temporary file is created with 0666 before the umask).
//! - File identity: the same file reached through symlinks, `..` or hard links is recognised,
//!   so an output never overwrites an input.
//!
//! Not responsible for what is written (see `report`, `sidefiles`, `audio`, `cache`).

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// The largest manifest, `text_file` or CSV narrate reads: a whole book is about 1 MB of text.
pub const MAX_INPUT_BYTES: u64 = 64 * 1024 * 1024;
/// The largest API key file.
pub const MAX_KEY_FILE_BYTES: u64 = 64 * 1024;
/// The largest JSON file narrate reads back from its own state (cache metadata, models.json).
pub const MAX_STATE_JSON_BYTES: u64 = 16 * 1024 * 1024;

/// Why an input could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("not a regular file ({0}); narrate reads only regular files")]
    NotRegular(&'static str),
    #[error("{size} bytes is more than the limit of {limit} bytes")]
    TooLarge { size: u64, limit: u64 },
    #[error("not UTF-8 text")]
    NotUtf8,
}

fn kind(meta: &std::fs::Metadata) -> &'static str {
    let t = meta.file_type();
    if t.is_dir() {
        return "a directory";
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if t.is_fifo() {
            return "a named pipe";
        }
        if t.is_char_device() || t.is_block_device() {
            return "a device";
        }
        if t.is_socket() {
            return "a socket";
        }
    }
    "not a regular file"
}

/// Reads a regular file of at most `limit` bytes. The type is checked before opening (so a
/// FIFO is never opened, which would block) and again on the open handle.
pub fn read_bytes(path: &Path, limit: u64) -> Result<Vec<u8>, ReadError> {
    let meta = std::fs::metadata(path)?;
    if !meta.is_file() {
        return Err(ReadError::NotRegular(kind(&meta)));
    }
    if meta.len() > limit {
        return Err(ReadError::TooLarge {
            size: meta.len(),
            limit,
        });
    }
    let file = std::fs::File::open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(ReadError::NotRegular(kind(&meta)));
    }
    let mut data = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
    file.take(limit + 1).read_to_end(&mut data)?;
    if data.len() as u64 > limit {
        return Err(ReadError::TooLarge {
            size: data.len() as u64,
            limit,
        });
    }
    Ok(data)
}

/// Reads a regular UTF-8 text file of at most `limit` bytes.
pub fn read_text(path: &Path, limit: u64) -> Result<String, ReadError> {
    String::from_utf8(read_bytes(path, limit)?).map_err(|_| ReadError::NotUtf8)
}

/// The directory a path's file lives in (`.` for a bare name).
pub fn parent_dir(path: &Path) -> &Path {
    path.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

/// A temporary file beside `path`, named after it so that a later run can find and remove it
/// if this process is killed: `.NAME.narrate-XXXXXX.part`. Created with mode 0666 less the
/// umask, like any new file.
pub fn temp_beside(path: &Path) -> std::io::Result<tempfile::NamedTempFile> {
    let dir = parent_dir(path);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let prefix = format!(".{name}.narrate-");
    let mut builder = tempfile::Builder::new();
    builder.prefix(&prefix).suffix(".part");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        builder.permissions(std::fs::Permissions::from_mode(0o666));
    }
    builder.tempfile_in(dir)
}

/// Syncs and renames a finished temporary file over `path` (replacing a symlink there, never
/// following it), then syncs the directory so the rename survives a crash.
pub fn commit(temp: tempfile::NamedTempFile, path: &Path) -> std::io::Result<()> {
    temp.as_file().sync_all()?;
    temp.persist(path).map_err(|e| e.error)?;
    if let Ok(dir) = std::fs::File::open(parent_dir(path)) {
        let _ = dir.sync_all();
    }
    Ok(())
}

/// Writes `data` to `path` atomically: a temporary file in the same directory, synced and
/// renamed into place. The directory must exist.
pub fn write_atomic(path: &Path, data: &[u8]) -> std::io::Result<()> {
    let mut temp = temp_beside(path)?;
    temp.write_all(data)?;
    commit(temp, path)
}

/// Writes `path` atomically like [`write_atomic`], from a writer (buffered) that `fill` writes
/// to: a large file is never held in memory whole.
pub fn write_atomic_with(
    path: &Path,
    fill: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
) -> std::io::Result<()> {
    let temp = temp_beside(path)?;
    let mut w = std::io::BufWriter::with_capacity(256 * 1024, temp);
    fill(&mut w)?;
    let temp = w
        .into_inner()
        .map_err(std::io::IntoInnerError::into_error)?;
    commit(temp, path)
}

/// Removes the temporary files a killed run left beside each of `paths` (see
/// [`temp_beside`]), reading each directory once however many of its files are listed.
/// Returns how many were removed.
pub fn remove_leftovers<'a>(paths: impl IntoIterator<Item = &'a Path>) -> usize {
    use std::collections::{HashMap, HashSet};
    let mut by_dir: HashMap<&Path, HashSet<String>> = HashMap::new();
    for path in paths {
        if let Some(name) = path.file_name() {
            by_dir
                .entry(parent_dir(path))
                .or_default()
                .insert(name.to_string_lossy().into_owned());
        }
    }
    let mut removed = 0;
    for (dir, names) in by_dir {
        let Ok(entries) = std::fs::read_dir(dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let file_name = entry.file_name().to_string_lossy().into_owned();
            let ours = file_name
                .strip_prefix('.')
                .and_then(|n| n.rsplit_once(".narrate-"))
                .is_some_and(|(name, rest)| rest.ends_with(".part") && names.contains(name));
            if ours
                && entry.file_type().is_ok_and(|t| t.is_file())
                && std::fs::remove_file(entry.path()).is_ok()
            {
                removed += 1;
            }
        }
    }
    removed
}

/// What identifies a file on disk, for telling whether two paths are the same file.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Identity {
    /// An existing file: device and inode (hard links and symlinks compare equal).
    Inode(u64, u64),
    /// A file that does not exist yet: its canonical directory and its name.
    Path(PathBuf),
}

/// The identity of `path` after resolving symlinks and `..`: the file's own when it exists,
/// otherwise its canonical directory joined with its name (or the path as given, when even the
/// directory does not exist yet).
pub fn identity(path: &Path) -> Identity {
    #[cfg(unix)]
    if let Ok(meta) = std::fs::metadata(path) {
        use std::os::unix::fs::MetadataExt;
        return Identity::Inode(meta.dev(), meta.ino());
    }
    if let Ok(full) = std::fs::canonicalize(path) {
        return Identity::Path(full);
    }
    let dir = std::fs::canonicalize(parent_dir(path)).unwrap_or_else(|_| {
        std::env::current_dir()
            .map(|d| d.join(parent_dir(path)))
            .unwrap_or_else(|_| parent_dir(path).to_path_buf())
    });
    Identity::Path(dir.join(path.file_name().unwrap_or_default()))
}

/// Why a file cannot be written where it should go.
#[derive(Debug, thiserror::Error)]
pub enum NotWritable {
    #[error("{} is not a file name", .0.display())]
    NotAFileName(PathBuf),
    #[error("{} is a directory", .0.display())]
    Directory(PathBuf),
    #[error("cannot create the directory {}: {source}", dir.display())]
    CannotCreateDir {
        dir: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write in {}: {source}", dir.display())]
    CannotWrite {
        dir: PathBuf,
        source: std::io::Error,
    },
}

/// Checks, before anything is paid for, that `path` can be written: it is not a directory, its
/// directory can be created, and a temporary file can be created there (and is removed again).
pub fn check_writable(path: &Path) -> Result<(), NotWritable> {
    check_writable_among(path, &mut std::collections::HashSet::new())
}

/// [`check_writable`] for one of many paths: a directory in `checked` is not created and tried
/// again, so a thousand files in one folder cost one trial file.
pub fn check_writable_among<'a>(
    path: &'a Path,
    checked: &mut std::collections::HashSet<&'a Path>,
) -> Result<(), NotWritable> {
    if path.as_os_str().is_empty() || path.file_name().is_none() {
        return Err(NotWritable::NotAFileName(path.to_path_buf()));
    }
    if let Ok(meta) = std::fs::metadata(path)
        && meta.is_dir()
    {
        return Err(NotWritable::Directory(path.to_path_buf()));
    }
    let dir = parent_dir(path);
    if checked.contains(dir) {
        return Ok(());
    }
    std::fs::create_dir_all(dir).map_err(|source| NotWritable::CannotCreateDir {
        dir: dir.to_path_buf(),
        source,
    })?;
    temp_beside(path)
        .map(drop)
        .map_err(|source| NotWritable::CannotWrite {
            dir: dir.to_path_buf(),
            source,
        })?;
    checked.insert(dir);
    Ok(())
}

/// Whether a key file can be read by other users (group or world bits), with its mode.
pub fn readable_by_others(path: &Path) -> Option<u32> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path).ok()?.permissions().mode() & 0o777;
        (mode & 0o044 != 0).then_some(mode)
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        None
    }
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
    use super::*;

    #[test]
    fn reads_refuse_what_is_not_a_bounded_regular_file() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(
            read_bytes(dir.path(), 10),
            Err(ReadError::NotRegular("a directory"))
        ));
        let big = dir.path().join("big");
        std::fs::write(&big, vec![b'a'; 11]).unwrap();
        assert!(matches!(
            read_bytes(&big, 10),
            Err(ReadError::TooLarge {
                size: 11,
                limit: 10
            })
        ));
        assert_eq!(read_bytes(&big, 11).unwrap().len(), 11);
        #[cfg(unix)]
        assert!(matches!(
            read_bytes(Path::new("/dev/zero"), 10),
            Err(ReadError::NotRegular("a device"))
        ));
    }

    #[test]
    fn a_path_without_a_file_name_is_refused_and_nothing_is_created_for_it() {
        let dir = tempfile::tempdir().unwrap();
        let up = dir.path().join("new").join("..");
        assert!(matches!(
            check_writable(&up),
            Err(NotWritable::NotAFileName(_))
        ));
        assert!(!dir.path().join("new").exists());
        assert!(matches!(
            check_writable(Path::new("")),
            Err(NotWritable::NotAFileName(_))
        ));
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_file_longer_than_its_size_says_is_refused_past_the_limit_never_cut_short() {
        // /proc's files say they are empty and are not: as a file still being written is,
        // between the size check and the read.
        let status = Path::new("/proc/self/status");
        assert_eq!(std::fs::metadata(status).unwrap().len(), 0);
        assert!(matches!(
            read_bytes(status, 10),
            Err(ReadError::TooLarge {
                size: 11,
                limit: 10
            })
        ));
    }

    #[test]
    fn state_files_of_a_long_book_read_back_whole() {
        // A delivery record lists every take of the book: thousands of them for a long one,
        // a megabyte of JSON. Refusing it would build the delivery again on every run.
        let dir = tempfile::tempdir().unwrap();
        let record = dir.path().join("delivery.json");
        let takes: Vec<String> = (0..9000).map(|i| format!("{:0>120}", i)).collect();
        let json = serde_json::to_vec(&takes).unwrap();
        assert!(json.len() > 1_000_000);
        std::fs::write(&record, &json).unwrap();
        assert_eq!(read_bytes(&record, MAX_STATE_JSON_BYTES).unwrap(), json);
    }

    #[cfg(unix)]
    #[test]
    fn a_key_file_is_readable_by_others_when_its_group_or_world_may_read_it() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("key");
        std::fs::write(&key, "sk_x\n").unwrap();
        for (mode, others) in [
            (0o600, None),
            (0o700, None),
            (0o622, None),
            (0o640, Some(0o640)),
            (0o604, Some(0o604)),
            (0o444, Some(0o444)),
        ] {
            std::fs::set_permissions(&key, std::fs::Permissions::from_mode(mode)).unwrap();
            assert_eq!(readable_by_others(&key), others, "{mode:o}");
        }
    }

    #[cfg(unix)]
    #[test]
    fn atomic_writes_replace_planted_links_and_follow_the_umask() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "keep").unwrap();
        let link = dir.path().join("report.json");
        std::os::unix::fs::symlink(&victim, &link).unwrap();
        write_atomic(&link, b"new").unwrap();
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep");
        assert!(!std::fs::symlink_metadata(&link).unwrap().is_symlink());
        assert_eq!(std::fs::read_to_string(&link).unwrap(), "new");
        // The test process's umask applies to 0666, as for any new file.
        let mode = std::fs::metadata(&link).unwrap().permissions().mode() & 0o777;
        let probe = dir.path().join("probe");
        std::fs::write(&probe, "").unwrap();
        let expected = std::fs::metadata(&probe).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, expected);
    }

    #[cfg(unix)]
    #[test]
    fn identity_sees_through_links_and_dot_dot() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("a.yaml");
        std::fs::write(&real, "x").unwrap();
        let link = dir.path().join("b.yaml");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        let dotted = dir.path().join("sub/../a.yaml");
        assert_eq!(identity(&real), identity(&link));
        assert_eq!(identity(&real), identity(&dotted));
        let new = dir.path().join("sub/../new.wav");
        assert_eq!(identity(&new), identity(&dir.path().join("new.wav")));
        assert_ne!(identity(&new), identity(&real));
    }

    #[test]
    fn leftovers_of_a_killed_run_are_removed_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("book.mp3");
        let left = temp_beside(&out).unwrap().keep().unwrap().1;
        let other = dir.path().join(".other.mp3.narrate-abc.part");
        std::fs::write(&other, "").unwrap();
        assert_eq!(remove_leftovers([out.as_path()]), 1);
        assert!(!left.exists());
        assert!(other.exists());
    }
}

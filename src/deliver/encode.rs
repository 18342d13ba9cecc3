//! Encoding a joined WAV into a store's format with ffmpeg (its LAME MP3 encoder at a constant
//! bitrate, or its AAC encoder into an MPEG-4 audio file), resampled and with the channels the
//! store wants, tagged, written beside its name and renamed into place.
//!
//! Not responsible for joining (see `publish`) or measuring (see `measure`).

use std::ffi::OsString;
use std::path::Path;
use std::process::{Command, Stdio};

use crate::audio::ffmpeg;
use crate::manifest::Job;
use crate::stores::{Container, Store};

/// The tags of one delivered file.
pub(super) struct Tags {
    pairs: Vec<(&'static str, String)>,
}

impl Tags {
    /// The file's title (its chapter's), the book's author, title and narrator, and its number
    /// in play order; control characters (a newline from a title) left out.
    pub(super) fn of(job: &Job, title: Option<&str>, number: usize) -> Tags {
        let clean = |s: &str| s.chars().filter(|c| !c.is_control()).collect::<String>();
        let book = &job.book;
        let mut pairs = vec![("track", number.to_string())];
        let fields = [
            ("title", title.or(book.title.as_deref())),
            ("artist", book.author.as_deref()),
            ("album_artist", book.author.as_deref()),
            ("album", job.album.as_deref().or(book.title.as_deref())),
            ("composer", book.narrator.as_deref()),
            ("genre", Some("Audiobook")),
        ];
        for (key, value) in fields {
            if let Some(v) = value {
                pairs.push((key, clean(v)));
            }
        }
        Tags { pairs }
    }
}

/// Whether the ffmpeg narrate runs has both encoders the stores need.
pub(crate) fn check_encoders() -> Result<(), String> {
    let out = Command::new(ffmpeg::ffmpeg())
        .args(["-hide_banner", "-encoders"])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .map_err(|e| {
            format!("--profile needs ffmpeg, which does not run ({e}); install it (Debian/Ubuntu: apt-get install ffmpeg; macOS: brew install ffmpeg)")
        })?;
    let listed = String::from_utf8_lossy(&out.stdout);
    let has = |name: &str| {
        listed
            .lines()
            .any(|l| l.split_whitespace().nth(1) == Some(name))
    };
    match (has("libmp3lame"), has("aac")) {
        (true, true) => Ok(()),
        _ => Err("--profile needs ffmpeg with its libmp3lame and aac encoders, and this ffmpeg lacks one (`ffmpeg -encoders` lists them)".into()),
    }
}

/// Encodes `wav` into `path` as `store` wants it.
pub(super) fn encode(store: &Store, wav: &Path, path: &Path, tags: &Tags) -> Result<(), String> {
    let temp = crate::files::temp_beside(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut args: Vec<OsString> = ffmpeg::words(&["-nostdin", "-i"]);
    args.push(wav.into());
    args.extend(ffmpeg::words(&[
        "-map",
        "0:a",
        "-map_metadata",
        "-1",
        "-ac",
    ]));
    args.push(store.channels.to_string().into());
    args.push("-ar".into());
    args.push(store.sample_rate.to_string().into());
    let kbps = format!("{}k", store.kbps);
    let codec: Vec<&str> = match store.container {
        Container::Mp3 => vec!["-c:a", "libmp3lame", "-b:a", &kbps, "-id3v2_version", "3"],
        Container::M4a => vec!["-c:a", "aac", "-b:a", &kbps],
    };
    args.extend(ffmpeg::words(&codec));
    for (key, value) in &tags.pairs {
        args.push("-metadata".into());
        args.push(format!("{key}={value}").into());
    }
    args.push("-f".into());
    args.push(match store.container {
        Container::Mp3 => "mp3".into(),
        Container::M4a => "ipod".into(),
    });
    args.push(temp.path().into());
    let what = format!("encoding {}", path.display());
    let (child, log) = ffmpeg::spawn(&args, Stdio::null()).map_err(|e| format!("{what}: {e}"))?;
    ffmpeg::finish(child, log, &what).map_err(|e| e.to_string())?;
    crate::files::commit(temp, path).map_err(|e| format!("{}: {e}", path.display()))
}

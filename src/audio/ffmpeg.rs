//! Running ffmpeg: which one (`NARRATE_FFMPEG`, or `ffmpeg` on the PATH), whether it runs,
//! and a run whose error carries what it said. Not responsible for what it is asked to do
//! (see `m4b`, `aac`).

use std::ffi::OsString;
use std::io::{Read, Seek};
use std::process::{Child, Command, Stdio};

use super::AudioError;

/// The ffmpeg narrate runs: `NARRATE_FFMPEG`, or `ffmpeg` on the PATH.
pub(crate) fn ffmpeg() -> OsString {
    std::env::var_os("NARRATE_FFMPEG").unwrap_or_else(|| "ffmpeg".into())
}

/// Whether ffmpeg runs, with the message to show when it does not.
pub(crate) fn check_ffmpeg() -> Result<(), AudioError> {
    let ok = Command::new(ffmpeg())
        .arg("-version")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if ok {
        Ok(())
    } else {
        Err(AudioError::MissingTool(
            "an .m4b output needs ffmpeg (its AAC encoder and MP4 muxer), which is not on the PATH; install it (Debian/Ubuntu: apt-get install ffmpeg; macOS: brew install ffmpeg) or choose an .mp3 or .wav output",
        ))
    }
}

pub(crate) fn words(list: &[&str]) -> Vec<OsString> {
    list.iter().map(OsString::from).collect()
}

/// Runs ffmpeg with `args`, its stderr kept (bounded) for the error message.
pub(crate) fn spawn(args: &[OsString], stdin: Stdio) -> Result<(Child, std::fs::File), AudioError> {
    let log = tempfile::tempfile().map_err(|e| AudioError::Encode(format!("ffmpeg: {e}")))?;
    let err = log
        .try_clone()
        .map_err(|e| AudioError::Encode(format!("ffmpeg: {e}")))?;
    let child = Command::new(ffmpeg())
        .args(["-hide_banner", "-nostats", "-loglevel", "error", "-y"])
        .args(args)
        .stdin(stdin)
        .stdout(Stdio::null())
        .stderr(err)
        .spawn()
        .map_err(|e| AudioError::Encode(format!("cannot run ffmpeg: {e}")))?;
    Ok((child, log))
}

/// Waits for ffmpeg; a failure carries the first 4 KB of what it said.
pub(crate) fn finish(
    mut child: Child,
    mut log: std::fs::File,
    what: &str,
) -> Result<(), AudioError> {
    let status = child
        .wait()
        .map_err(|e| AudioError::Encode(format!("ffmpeg ({what}): {e}")))?;
    if status.success() {
        return Ok(());
    }
    let mut said = String::new();
    let _ = log.rewind();
    let _ = log.take(4096).read_to_string(&mut said);
    Err(AudioError::Encode(format!(
        "ffmpeg ({what}) failed with {status}: {}",
        said.trim()
    )))
}

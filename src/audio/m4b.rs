//! `.m4b` output: the joined samples encoded to AAC by ffmpeg, then the chapters, tags and
//! cover put around that audio by a second ffmpeg pass that copies it. With one core to use
//! (or one thread for this file, when several files are assembled at once), the samples are
//! streamed to one encoder (memory stays flat); with more, they are spilled beside the output
//! and cut into spans that an encoder per core turns into AAC at once (see `aac`).
//!
//! ffmpeg is required for this output only; [`check_ffmpeg`] tells the user before anything is
//! sent. Not responsible for the join (see `pcm`).

use std::io::{BufWriter, Write};
use std::path::Path;
use std::process::{ChildStdin, Stdio};

use super::aac;
pub(crate) use super::ffmpeg::check_ffmpeg;
use super::ffmpeg::{finish, spawn, words};
use super::gapless::join_encoded;
use super::pcm::{Sink, write_le};
use super::tags::{chapter_times, ffmetadata_escape as escape};
use super::{AudioError, Options, Piece, Placement};
use crate::format::{Codec, OutputFormat};

/// The AAC bitrate: the responses' MP3 bitrate (64 to 192 kbps), else 128 kbps.
fn aac_kbps(format: OutputFormat) -> u32 {
    match format.codec {
        Codec::Mp3 { kbps } => kbps.clamp(64, 192),
        _ => 128,
    }
}

struct FfmpegSink {
    stdin: BufWriter<ChildStdin>,
    bytes: Vec<u8>,
}

impl Sink for FfmpegSink {
    fn samples(&mut self, samples: &[i16]) -> Result<(), AudioError> {
        write_le(&mut self.stdin, samples, &mut self.bytes)
            .map_err(|e| AudioError::Encode(format!("ffmpeg stopped reading: {e}")))
    }
}

/// The FFMETADATA of the output: tags and chapters.
fn metadata(options: &Options, rate: u32, placement: &Placement) -> String {
    use std::fmt::Write as _;
    let spec = &options.tags;
    let mut meta = String::from(";FFMETADATA1\n");
    for (key, value) in [
        ("title", &spec.book.title),
        ("artist", &spec.book.author),
        ("album_artist", &spec.book.author),
        ("album", &spec.album),
        ("composer", &spec.book.narrator),
        ("date", &spec.book.year),
        ("description", &spec.book.description),
        ("comment", &spec.book.description),
    ] {
        if let Some(v) = value {
            let _ = writeln!(meta, "{key}={}", escape(v));
        }
    }
    let _ = writeln!(meta, "genre=Audiobook");
    let _ = writeln!(meta, "encoder=narrate {}", env!("CARGO_PKG_VERSION"));
    for c in chapter_times(spec, rate, placement) {
        let _ = write!(
            meta,
            "\n[CHAPTER]\nTIMEBASE=1/1000\nSTART={}\nEND={}\ntitle={}\n",
            c.start_ms,
            c.end_ms,
            escape(&c.title)
        );
    }
    meta
}

/// How many AAC encoders run at once: one per core (up to 8), or the threads this file may
/// take when several files are assembled at once.
fn encoders(options: &Options) -> usize {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    options.decode_threads.unwrap_or(cores).clamp(1, 8)
}

/// The AAC audio of `.m4b` output, and where it came from.
struct Encoded {
    file: tempfile::NamedTempFile,
    /// ADTS from several encoders (its priming is skipped in the mux), or one MP4.
    adts: bool,
    placement: Placement,
}

/// One encoder fed as the samples are joined (memory and disk stay flat).
fn encode_streaming(
    pieces: &[Piece<'_>],
    format: OutputFormat,
    output: &Path,
    options: &Options,
    measure: bool,
) -> Result<Encoded, AudioError> {
    let io = |source: std::io::Error| AudioError::Io {
        path: output.to_path_buf(),
        source,
    };
    let aac = crate::files::temp_beside(output).map_err(io)?;
    let rate_arg = format.sample_rate.to_string();
    let kbps = format!("{}k", aac_kbps(format));
    let mut args = words(&["-f", "s16le", "-ar", &rate_arg, "-ac", "1", "-i", "pipe:0"]);
    args.extend(words(&["-c:a", "aac", "-b:a", &kbps, "-f", "mp4"]));
    args.push(aac.path().into());
    let (mut child, log) = spawn(&args, Stdio::piped())?;
    let Some(stdin) = child.stdin.take() else {
        let _ = child.kill();
        return Err(AudioError::Encode("ffmpeg: no standard input".into()));
    };
    let mut sink = FfmpegSink {
        stdin: BufWriter::with_capacity(1 << 20, stdin),
        bytes: Vec::new(),
    };
    let scratch = crate::files::parent_dir(output);
    let joined = join_encoded(pieces, format, &mut sink, options, measure, scratch);
    let flushed = sink.stdin.flush();
    drop(sink);
    let placement = match joined {
        Ok(p) => p,
        Err(e) => {
            let _ = child.kill();
            let _ = child.wait();
            return Err(e);
        }
    };
    finish(child, log, "AAC encoding")?;
    flushed.map_err(|e| AudioError::Encode(format!("ffmpeg stopped reading: {e}")))?;
    Ok(Encoded {
        file: aac,
        adts: false,
        placement,
    })
}

/// The joined samples spilled beside the output, cut in silences as they come and encoded
/// by `n` encoders at once (see `aac`).
fn encode_parallel(
    pieces: &[Piece<'_>],
    format: OutputFormat,
    output: &Path,
    (options, measure): (&Options, bool),
    n: usize,
) -> Result<Encoded, AudioError> {
    let io = |source: std::io::Error| AudioError::Io {
        path: output.to_path_buf(),
        source,
    };
    let scratch = crate::files::parent_dir(output);
    // Named like every temporary file beside an output, so that a run after this one was
    // killed removes them.
    let raw = crate::files::temp_beside(output).map_err(io)?;
    let mut file = crate::files::temp_beside(output).map_err(io)?;
    let how = (format.sample_rate, aac_kbps(format), n);
    let placement = aac::encode(&raw, how, file.as_file_mut(), output, |sink| {
        join_encoded(pieces, format, sink, options, measure, scratch)
    })?;
    Ok(Encoded {
        file,
        adts: true,
        placement,
    })
}

/// `.m4b` output into `temp` (a file beside `output`).
pub(crate) fn write_m4b(
    pieces: &[Piece<'_>],
    format: OutputFormat,
    temp: &Path,
    output: &Path,
    options: &Options,
    measure: bool,
) -> Result<Placement, AudioError> {
    let io = |source: std::io::Error| AudioError::Io {
        path: output.to_path_buf(),
        source,
    };
    let rate = format.sample_rate;
    let encoded = match encoders(options) {
        1 => encode_streaming(pieces, format, output, options, measure)?,
        n => encode_parallel(pieces, format, output, (options, measure), n)?,
    };
    let placement = encoded.placement;
    let meta = crate::files::temp_beside(output).map_err(io)?;
    std::fs::write(meta.path(), metadata(options, rate, &placement)).map_err(io)?;
    let mut args = Vec::new();
    if encoded.adts {
        // The first encoder's priming frame, skipped by the MP4's edit list.
        let skip = format!("{:.6}", aac::FRAME as f64 / f64::from(rate));
        args.extend(words(&["-ss", &skip, "-f", "aac"]));
    }
    args.extend(words(&["-i"]));
    args.push(encoded.file.path().into());
    args.extend(words(&["-f", "ffmetadata", "-i"]));
    args.push(meta.path().into());
    if let Some(cover) = &options.tags.book.cover {
        args.extend(words(&["-i"]));
        args.push(cover.into());
    }
    args.extend(words(&[
        "-map",
        "0:a",
        "-map_metadata",
        "1",
        "-map_chapters",
        "1",
    ]));
    if options.tags.book.cover.is_some() {
        args.extend(words(&["-map", "2:v", "-disposition:v:0", "attached_pic"]));
    }
    args.extend(words(&[
        "-c",
        "copy",
        "-movflags",
        "+faststart",
        "-f",
        "ipod",
    ]));
    args.push(temp.into());
    let (child, log) = spawn(&args, Stdio::null())?;
    finish(child, log, "chapters and tags")?;
    Ok(placement)
}

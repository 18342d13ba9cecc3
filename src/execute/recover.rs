//! Recovery from the speech history: a request that was sent but whose answer never arrived
//! whole (a crash, a timeout, a cut delivery) was generated and charged all the same, and the
//! API keeps it in the history with its text, voice, model and audio. Before paying for it
//! again, narrate looks for it there and takes its audio.
//!
//! A match has the same text, voice and model, `state: created`, was created at or after the
//! first send (less a margin for clocks), and was not taken by another request of this run or
//! state directory. Its audio is checked like any response, and must be in the requested
//! format: never a silent re-encode. Not responsible for sending (see `request`).

use std::sync::atomic::Ordering;

use super::estimate::RequestKey;
use super::{Request, check_audio};
use crate::api::{ApiError, HistoryItem, TtsBody};
use crate::codec::mp3_frames;
use crate::format::{Codec, OutputFormat};
use crate::state::journal::Entry;

/// How far before the first send a history item may have been created (clock skew between
/// this machine and the API).
const MARGIN_SECS: f64 = 30.0;
/// The most history pages looked through for one request.
const MAX_PAGES: usize = 20;

/// What the history gave for a request.
pub(super) enum Found {
    /// Its audio, checked, and the item it came from.
    Audio {
        audio: Vec<u8>,
        item: Box<HistoryItem>,
    },
    /// Why it could not be recovered (and is paid for again).
    Missing(String),
}

/// Looks for request `key`, first sent at `sent_unix`, in the speech history.
pub(super) async fn from_history(
    req: &Request<'_>,
    key: &RequestKey,
    body: &TtsBody,
    sent_unix: f64,
) -> Found {
    let runner = req.runner;
    let request = &req.plan.requests[req.r];
    let segment = &req.job.segments[request.segment];
    if !segment.enable_logging {
        return Found::Missing(
            "enable_logging is false: zero-retention generations are not kept in the history, so it could not be recovered".into(),
        );
    }
    if runner.history_unavailable.load(Ordering::SeqCst) {
        return Found::Missing("the speech history is not available to this key".into());
    }
    let after = (sent_unix - MARGIN_SECS).floor();
    // A generation still `processing` (its request lost while the API went on) is waited for.
    for _ in 0..MAX_WAITS {
        match look(req, key, body, after).await {
            Look::Found(found) => return found,
            Look::Processing => {
                let waited = runner.stopping.unless_stopped(tokio::time::sleep(WAIT));
                if waited.await.is_none() {
                    return Found::Missing(
                        "the run was stopped while the take was processing".into(),
                    );
                }
            }
        }
    }
    Found::Missing("still processing in the speech history; rendered again".into())
}

/// How long to wait between looks at a generation that is still processing, and how often.
const WAIT: std::time::Duration = std::time::Duration::from_millis(250);
const MAX_WAITS: usize = 240;

/// What one look through the history gave.
enum Look {
    Found(Found),
    /// Only a matching item still `processing`: look again.
    Processing,
}

async fn look(req: &Request<'_>, key: &RequestKey, body: &TtsBody, after: f64) -> Look {
    let request = &req.plan.requests[req.r];
    let segment = &req.job.segments[request.segment];
    let format = req.job.output_format.to_string();
    let mut processing = false;
    // Why a take of the same text was not this request's, for the report.
    let mut refused: Option<String> = None;
    let mut start: Option<String> = None;
    'pages: for _ in 0..MAX_PAGES {
        let mut query = vec![
            ("voice_id", segment.voice_id.clone()),
            ("model_id", segment.model_id.clone()),
            ("source", "TTS".to_string()),
            ("date_after_unix", format!("{after}")),
            ("page_size", "100".to_string()),
        ];
        if let Some(s) = &start {
            query.push(("start_after_history_item_id", s.clone()));
        }
        let page = match req.runner.client.history(&query).await {
            Ok(page) => page,
            Err(e) => return Look::Found(unavailable(req, &e)),
        };
        for item in &page.history {
            if (item.date_unix as f64) < after {
                // Newest first: everything further is older than the send.
                break 'pages;
            }
            if item.voice_id.as_deref() != Some(segment.voice_id.as_str()) {
                continue;
            }
            if let Err(why) = super::take::same_take(item, body, &format) {
                if item.text.as_deref() == Some(request.text.as_str()) {
                    refused = Some(format!(
                        "the speech history's take of the same text ({}) {why}",
                        item.history_item_id
                    ));
                }
                continue;
            }
            if item.state == "processing" {
                processing = true;
            } else if item.state == "created" && claim(req, key, &item.history_item_id) {
                return Look::Found(download(req, key, item).await);
            }
        }
        match (&page.last_history_item_id, page.has_more) {
            (Some(last), true) => start = Some(last.clone()),
            _ => break,
        }
    }
    if processing {
        Look::Processing
    } else {
        let why = refused.unwrap_or_else(|| "not in the speech history".into());
        Look::Found(Found::Missing(why))
    }
}

/// A history that cannot be read: 403/404 (no permission, no such endpoint) turn recovery off
/// for the run with one warning; anything else fails this lookup only.
fn unavailable(req: &Request<'_>, e: &ApiError) -> Found {
    if matches!(e.status(), Some(403 | 404)) {
        if !req.runner.history_unavailable.swap(true, Ordering::SeqCst) {
            tracing::warn!(
                "the speech history cannot be read ({e}); requests whose answer was lost are paid for again"
            );
        }
        return Found::Missing(format!("the speech history is not available ({e})"));
    }
    Found::Missing(format!("the speech history could not be read ({e})"))
}

/// Takes a history item for request `key` unless another request already did (this run, or
/// an earlier run on the same state directory).
fn claim(req: &Request<'_>, key: &RequestKey, history_item_id: &str) -> bool {
    if req
        .cache
        .journal()
        .used_by(history_item_id)
        .is_some_and(|k| k != key.key)
    {
        return false;
    }
    let Ok(mut used) = req.runner.used_history.lock() else {
        return false;
    };
    if !used.insert(history_item_id.to_string()) {
        return false;
    }
    let entry = Entry::Used {
        key: key.key.clone(),
        history_item_id: history_item_id.to_string(),
        at_unix: crate::execute::unix_now(),
    };
    if let Err(e) = req.cache.journal().append(entry) {
        tracing::warn!("cannot write the journal: {e}");
    }
    true
}

/// The item's audio, if it is what was asked for.
async fn download(req: &Request<'_>, key: &RequestKey, item: &HistoryItem) -> Found {
    let format = req.job.output_format;
    let limit = crate::api::audio_body_limit(key.characters, format.bytes_per_second(), false);
    let (audio, content_type) = match req
        .runner
        .client
        .history_audio(&item.history_item_id, limit)
        .await
    {
        Ok(a) => a,
        Err(e) => {
            return Found::Missing(format!(
                "history item {}: its audio could not be read ({e})",
                item.history_item_id
            ));
        }
    };
    match check_recovered(&audio, &content_type, item, format) {
        Ok(()) => Found::Audio {
            audio,
            item: Box::new(item.clone()),
        },
        Err(why) => Found::Missing(format!(
            "history item {} {why}; narrate does not re-encode, so the request was rendered again",
            item.history_item_id
        )),
    }
}

/// Whether recovered audio is the requested format: the item's format, the content type, the
/// audio itself (and for MP3 its sample rate and bitrate).
fn check_recovered(
    audio: &[u8],
    content_type: &str,
    item: &HistoryItem,
    format: OutputFormat,
) -> Result<(), String> {
    if let Some(kept) = &item.output_format
        && *kept != format.to_string()
    {
        return Err(format!("is kept as {kept}, not {format}"));
    }
    let mime = content_type.split(';').next().unwrap_or("").trim();
    if !mime.is_empty() && mime != format.mime() {
        return Err(format!("is served as {mime}, not {}", format.mime()));
    }
    check_audio(audio, format).map_err(|e| format!("is not {format} audio ({e})"))?;
    if let Codec::Mp3 { kbps } = format.codec {
        let (_, header) = mp3_frames(audio).map_err(|e| e.to_string())?;
        if header.sample_rate != format.sample_rate || header.kbps != kbps {
            return Err(format!(
                "is MP3 at {} Hz and {} kbps, not {format}",
                header.sample_rate, header.kbps
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::check_recovered;
    use crate::api::HistoryItem;
    use crate::format::OutputFormat;

    /// A second of a tone, MP3 at `rate` and `kbps`.
    fn mp3(rate: u32, kbps: u32) -> Vec<u8> {
        let tone: Vec<i16> = (0..rate)
            .map(|i| ((i as f64 * 0.05).sin() * 8000.0) as i16)
            .collect();
        crate::codec::lame::mp3(&tone, rate, kbps).unwrap()
    }

    #[test]
    fn a_recovered_take_is_used_only_when_its_format_mime_and_audio_are_what_was_asked() {
        let asked: OutputFormat = "mp3_44100_128".parse().unwrap();
        let item = |format: &str| HistoryItem {
            history_item_id: "h1".into(),
            output_format: Some(format.into()),
            ..Default::default()
        };
        let right = mp3(44_100, 128);
        assert_eq!(
            check_recovered(&right, "audio/mpeg", &item("mp3_44100_128"), asked),
            Ok(())
        );
        let refused = [
            // Kept in another format by the history.
            (right.clone(), "audio/mpeg", "mp3_22050_32", "kept as"),
            // Served as something else than what the bytes claim to be.
            (right.clone(), "audio/wav", "mp3_44100_128", "served as"),
            // MP3 of the right rate and the wrong bitrate, or the wrong rate.
            (mp3(44_100, 64), "audio/mpeg", "mp3_44100_128", "kbps"),
            (mp3(22_050, 128), "audio/mpeg", "mp3_44100_128", "Hz"),
            // Not audio at all.
            (
                b"<html>gone</html>".to_vec(),
                "audio/mpeg",
                "mp3_44100_128",
                "not",
            ),
        ];
        for (audio, mime, kept, says) in refused {
            let why = check_recovered(&audio, mime, &item(kept), asked).unwrap_err();
            assert!(why.contains(says), "{kept} {mime}: {why}");
        }
    }
}

//! Injected faults and the delivery of a body: seeded draws of 429/500/503 answers, and bodies
//! that are cut (reset, truncated) or slow. A request id counts as complete only once its last
//! byte is handed to the connection.
//!
//! Not responsible for the audio (see `synth`).

use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use super::auth::api_error;
use super::{Emulator, Fault};

/// A well-mixed 64-bit hash of a counter (SplitMix64's finaliser).
pub(crate) fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// What an injected fault does: answer at once, or spoil the delivery of the audio.
pub(crate) enum Injected {
    Answer(Response),
    Delivery(Fault),
}

/// Draws this request's fault, if any.
pub(crate) fn inject_fault(state: &Emulator, content: &str) -> Option<Injected> {
    let faults = &state.config.faults;
    if faults.kinds.is_empty() || faults.rate <= 0.0 {
        return None;
    }
    // Drawn from what is asked and how often it was asked before, not from the order requests
    // arrive in: a seed gives the same faults however parallel chains interleave.
    let content_hash = super::synth::fnv(content.as_bytes());
    let attempt = {
        let mut seen = state.attempts_seen.lock().expect("attempts lock");
        let n = seen.entry(content_hash).or_insert(0);
        *n += 1;
        *n
    };
    let h = splitmix64(
        faults.seed ^ content_hash.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ u64::from(attempt),
    );
    let draw = (h >> 11) as f64 / (1u64 << 53) as f64;
    if draw >= faults.rate {
        return None;
    }
    let kind = faults.kinds[(h % faults.kinds.len() as u64) as usize];
    let busy = "We are sorry, the system is experiencing heavy traffic, please try again. Higher subscriptions have higher priority.";
    Some(Injected::Answer(match kind {
        Fault::Reset | Fault::Truncated | Fault::Slow => return Some(Injected::Delivery(kind)),
        Fault::Busy => api_error(
            state,
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limit_error",
            "system_busy",
            busy,
        ),
        Fault::BusyRetryAfter => {
            let mut r = api_error(
                state,
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limit_error",
                "system_busy",
                busy,
            );
            r.headers_mut()
                .insert("retry-after", HeaderValue::from_static("1"));
            r
        }
        Fault::Internal => api_error(
            state,
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            "internal_error",
            "An internal server error occurred.",
        ),
        Fault::UnavailableHtml => {
            let html = "<html><head><title>503 Service Temporarily Unavailable</title></head><body><center><h1>503 Service Temporarily Unavailable</h1></center></body></html>";
            let mut r = (StatusCode::SERVICE_UNAVAILABLE, html).into_response();
            r.headers_mut()
                .insert("content-type", HeaderValue::from_static("text/html"));
            r
        }
    }))
}

/// How the audio of a successful request is delivered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Delivery {
    /// One body with `content-length`.
    Whole,
    /// Chunked transfer (`/stream`).
    Chunked,
    Fault(Fault),
}

/// Marks a request id complete when dropped after its body's last chunk was taken: the body
/// is dropped once the server has written it, so an id is never usable as context before its
/// audio went out whole.
struct Completion {
    state: Arc<Emulator>,
    request_id: String,
    all_taken: bool,
    /// The answer's room among the undelivered ones, held until the body is dropped.
    _room: Option<tokio::sync::OwnedSemaphorePermit>,
}

impl Drop for Completion {
    fn drop(&mut self) {
        if self.all_taken
            && let Ok(mut issued) = self.state.issued.lock()
            && let Some(entry) = issued.get_mut(&self.request_id)
        {
            entry.complete = true;
        }
    }
}

/// The response body for `audio` (or a `/with-timestamps` answer). The request id counts as
/// complete once its last byte has gone to the connection; cut deliveries never complete it.
pub(crate) fn deliver(
    state: &Arc<Emulator>,
    audio: Vec<u8>,
    request_id: &str,
    delivery: Delivery,
    room: Option<tokio::sync::OwnedSemaphorePermit>,
) -> Response {
    let audio = Bytes::from(audio);
    let total_len = audio.len();
    let chunk_size = match delivery {
        Delivery::Fault(Fault::Slow) => total_len.div_ceil(20).max(1),
        _ => 64 * 1024,
    };
    // Slices of one buffer, not copies.
    let pieces = |len: usize, size: usize| -> Vec<Bytes> {
        (0..len)
            .step_by(size)
            .map(|a| audio.slice(a..(a + size).min(len)))
            .collect()
    };
    let chunks: Vec<Bytes> = match delivery {
        Delivery::Fault(Fault::Reset) => Vec::new(),
        Delivery::Fault(Fault::Truncated) => pieces(total_len / 2, 4096),
        _ => pieces(total_len, chunk_size),
    };
    let cut = matches!(delivery, Delivery::Fault(Fault::Reset | Fault::Truncated));
    let slow = delivery == Delivery::Fault(Fault::Slow);
    let count = chunks.len();
    let completion = Completion {
        state: state.clone(),
        request_id: request_id.to_string(),
        all_taken: count == 0 && !cut,
        _room: room,
    };
    let stream = futures::stream::unfold(
        (chunks.into_iter().enumerate(), completion),
        move |(mut iter, mut completion)| async move {
            match iter.next() {
                Some((i, chunk)) => {
                    if slow {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                    if i + 1 == count && !cut {
                        completion.all_taken = true;
                    }
                    Some((Ok(chunk), (iter, completion)))
                }
                None if cut => {
                    // Let the headers and the first half reach the client before the drop; a
                    // reset with nothing sent drops before any answer.
                    if count > 0 {
                        tokio::time::sleep(Duration::from_millis(30)).await;
                    }
                    let error =
                        std::io::Error::new(std::io::ErrorKind::ConnectionReset, "injected fault");
                    Some((Err(error), (iter, completion)))
                }
                None => None,
            }
        },
    );
    let mut response = Response::new(Body::from_stream(stream));
    if delivery != Delivery::Chunked {
        response.headers_mut().insert(
            "content-length",
            HeaderValue::from_str(&total_len.to_string()).expect("a number is a valid header"),
        );
    }
    response
}

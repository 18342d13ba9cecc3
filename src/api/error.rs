//! Why an API call failed ([`ApiError`]), parsed from every body shape the API uses, and what
//! to do about it ([`Disposition`]).
//!
//! Not responsible for retrying (see `execute`).

use std::time::Duration;

/// Why one API call failed.
#[derive(Clone, Debug, thiserror::Error)]
pub enum ApiError {
    /// The API answered with an error status.
    #[error("HTTP {status}{}: {message}", code.as_ref().map(|c| format!(" {c}")).unwrap_or_default())]
    Status {
        status: u16,
        /// `detail.status` or `detail.code`, such as `quota_exceeded`.
        code: Option<String>,
        message: String,
        /// The `Retry-After` header, when given.
        retry_after: Option<Duration>,
    },
    /// No answer: connection refused or reset, or a timeout.
    #[error("connection error: {0}")]
    Transport(String),
    /// The body ended before `content-length` bytes arrived.
    #[error("truncated body: {got} of {expected} bytes")]
    Truncated { expected: u64, got: u64 },
    /// The audio could not be decoded.
    #[error("undecodable audio: {0}")]
    BadAudio(String),
    /// The body grew past what the request can produce: a server that never stops talking.
    #[error(
        "the response body passed {limit} bytes, more than this request can produce; the server is not behaving"
    )]
    TooLarge { limit: u64 },
}

/// A failed text-to-speech attempt, with the credits it cost: an answer whose headers arrived
/// with status 200 was generated and charged even if its body was then cut or spoiled.
#[derive(Clone, Debug)]
pub struct TtsFailure {
    pub error: ApiError,
    /// The `character-cost` of a 200 whose body was not usable (the estimate when the header was
    /// missing); `None` when nothing was charged.
    pub charged: Option<f64>,
}

impl From<ApiError> for TtsFailure {
    fn from(error: ApiError) -> Self {
        TtsFailure {
            error,
            charged: None,
        }
    }
}

/// A 3xx answer that was not followed: it pointed to another origin (or went round too often).
pub(super) fn redirect_error(status: u16, location: Option<String>) -> ApiError {
    ApiError::Status {
        status,
        code: Some("redirect_refused".into()),
        message: format!(
            "the server redirected to {}; narrate follows redirects only within the base URL's scheme, host and port, so the key is never sent elsewhere",
            location.as_deref().unwrap_or("(no Location)")
        ),
        retry_after: None,
    }
}

/// What to do after an error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Disposition {
    /// Try again after a backoff.
    Retry,
    /// 429 `too_many_concurrent_requests`: lower the concurrency cap, then retry.
    RetryLessConcurrency,
    /// Give up on this request.
    Fail,
    /// Stop the whole run (401: bad key, quota).
    Fatal,
}

impl ApiError {
    /// What to do after this error: retry, retry with less concurrency, give up, or stop.
    pub fn disposition(&self) -> Disposition {
        match self {
            ApiError::Status { status: 401, .. } => Disposition::Fatal,
            ApiError::Status {
                status: 429, code, ..
            } if code.as_deref() == Some("too_many_concurrent_requests")
                || code.as_deref() == Some("concurrent_limit_exceeded") =>
            {
                Disposition::RetryLessConcurrency
            }
            ApiError::Status {
                status: 408 | 409 | 429 | 500..=599,
                ..
            } => Disposition::Retry,
            ApiError::Status { .. } => Disposition::Fail,
            ApiError::Transport(_)
            | ApiError::Truncated { .. }
            | ApiError::BadAudio(_)
            | ApiError::TooLarge { .. } => Disposition::Retry,
        }
    }

    /// The HTTP status, when there was one.
    pub fn status(&self) -> Option<u16> {
        match self {
            ApiError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    fn retry_after(&self) -> Option<Duration> {
        match self {
            ApiError::Status { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// Whether the answer says the key itself is refused (401 `invalid_api_key` and its kin).
    pub fn is_refused_key(&self) -> bool {
        matches!(self, ApiError::Status {
            status: 401,
            code,
            ..
        } if matches!(
            code.as_deref(),
            Some("invalid_api_key" | "needs_authorization" | "unauthorized")
        ))
    }

    /// The server's requested wait, if any.
    pub fn requested_wait(&self) -> Option<Duration> {
        self.retry_after()
    }
}

/// Parses an error body of any of the API's shapes into `(code, message)`.
pub fn parse_error_body(body: &[u8]) -> (Option<String>, String) {
    let Ok(json) = serde_json::from_slice::<serde_json::Value>(body) else {
        let text = String::from_utf8_lossy(body);
        let text: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
        let text: String = text.chars().take(200).collect();
        return (
            None,
            if text.is_empty() {
                "(empty body)".into()
            } else {
                text
            },
        );
    };
    let detail = json.get("detail").unwrap_or(&json);
    match detail {
        serde_json::Value::Object(map) => {
            let get = |k: &str| map.get(k).and_then(|v| v.as_str()).map(str::to_string);
            let code = get("status").or_else(|| get("code"));
            let message = get("message").unwrap_or_else(|| detail.to_string());
            (code, message)
        }
        serde_json::Value::Array(items) => {
            let parts: Vec<String> = items
                .iter()
                .map(|item| {
                    let loc = item
                        .get("loc")
                        .and_then(|l| l.as_array())
                        .map(|l| {
                            l.iter()
                                .map(|p| p.as_str().map_or_else(|| p.to_string(), str::to_string))
                                .collect::<Vec<_>>()
                                .join(".")
                        })
                        .unwrap_or_default();
                    let msg = item
                        .get("msg")
                        .and_then(|m| m.as_str())
                        .unwrap_or("invalid");
                    format!("{loc}: {msg}")
                })
                .collect();
            (Some("validation_error".into()), parts.join("; "))
        }
        serde_json::Value::String(s) => (None, s.clone()),
        other => (None, other.to_string()),
    }
}

pub(super) fn transport(e: reqwest::Error) -> ApiError {
    // reqwest's message names the URL but never headers, so the key cannot leak here.
    let kind = if e.is_timeout() {
        "timed out"
    } else {
        "failed"
    };
    let mut message = format!("request {kind}");
    let mut source: Option<&dyn std::error::Error> = std::error::Error::source(&e);
    while let Some(s) = source {
        message.push_str(&format!(": {s}"));
        source = s.source();
    }
    ApiError::Transport(message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_all_three_error_shapes() {
        let legacy = br#"{"detail":{"status":"quota_exceeded","message":"no credits"}}"#;
        assert_eq!(
            parse_error_body(legacy),
            (Some("quota_exceeded".into()), "no credits".into())
        );
        let newer = br#"{"detail":{"type":"authentication_error","code":"unauthorized","message":"Invalid API key","request_id":"ab"}}"#;
        assert_eq!(
            parse_error_body(newer),
            (Some("unauthorized".into()), "Invalid API key".into())
        );
        let list = br#"{"detail":[{"type":"missing","loc":["body","text"],"msg":"Field required","input":null}]}"#;
        assert_eq!(
            parse_error_body(list),
            (
                Some("validation_error".into()),
                "body.text: Field required".into()
            )
        );
        let html = b"<html><body>503 Service Unavailable</body></html>";
        assert_eq!(
            parse_error_body(html).1,
            "<html><body>503 Service Unavailable</body></html>"
        );
    }
}

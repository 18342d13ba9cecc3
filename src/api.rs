//! The ElevenLabs HTTP API client: the text-to-speech call and the JSON endpoints narrate reads,
//! with errors parsed from every body shape the API uses into [`ApiError`].
//!
//! Not responsible for retrying or scheduling (see `execute`): one call, one attempt.

use std::fmt;
use std::time::Duration;

use bytes::Bytes;
use serde::Serialize;

use crate::manifest::{DictionaryLocator, VoiceSettings};

/// An API key. It is sent in `xi-api-key` and nowhere else: never printed, logged or stored.
#[derive(Clone)]
pub struct ApiKey(String);

impl ApiKey {
    pub fn new(key: impl Into<String>) -> Self {
        ApiKey(key.into().trim().to_string())
    }

    /// The key itself, for the request header only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("(redacted)")
    }
}

/// The JSON body of a text-to-speech request. Unset fields are omitted, never sent as `null`.
#[derive(Clone, Debug, Serialize)]
pub struct TtsBody {
    pub text: String,
    pub model_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub language_code: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub voice_settings: Option<VoiceSettings>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub pronunciation_dictionary_locators: Vec<DictionaryLocator>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seed: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous_text: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_text: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub previous_request_ids: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub next_request_ids: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub apply_text_normalization: Option<String>,
}

/// A successful text-to-speech response, body read to the end.
#[derive(Clone, Debug)]
pub struct TtsResponse {
    pub audio: Bytes,
    /// The `request-id` header: what later requests send in `previous_request_ids`.
    pub request_id: Option<String>,
    /// The `character-cost` header: credits charged.
    pub character_cost: Option<f64>,
    /// The `maximum-concurrent-requests` header.
    pub max_concurrency: Option<usize>,
    /// Character timings, from `/with-timestamps`.
    pub alignment: Option<Alignment>,
}

/// When each character of a request's text is spoken, in seconds from the start of its audio
/// (the `alignment` of a `/with-timestamps` answer).
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Alignment {
    pub characters: Vec<String>,
    pub character_start_times_seconds: Vec<f64>,
    pub character_end_times_seconds: Vec<f64>,
}

/// A `/with-timestamps` answer.
#[derive(serde::Deserialize)]
struct Timed {
    audio_base64: String,
    alignment: Option<Alignment>,
}

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

/// The most bytes an error body is read to: enough for any message the API writes.
pub const MAX_ERROR_BODY: u64 = 64 * 1024;
/// The most bytes a JSON answer (voices, models, subscription) is read to.
pub const MAX_JSON_BODY: u64 = 32 * 1024 * 1024;
/// The most bytes any one audio answer is read to, whatever the request.
pub const MAX_AUDIO_BODY: u64 = 512 * 1024 * 1024;
/// The longest `Retry-After` honoured as given; longer ones are cut to it.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// The largest audio answer a request of `characters` characters can honestly produce in a
/// format of `bytes_per_second`: speech at its slowest (speed 0.7 of about 15 characters a
/// second) with a fourfold margin and a minute to spare, base64 and character timings on top
/// for `/with-timestamps`; never above [`MAX_AUDIO_BODY`].
pub fn audio_body_limit(characters: usize, bytes_per_second: u64, timestamps: bool) -> u64 {
    let chars = characters as u64;
    // 15 chars/s × 0.7 ≈ 10.5 chars/s; ÷ 4 for the margin: about 2.6 characters a second.
    let seconds = chars * 10 / 26 + 60;
    let mut limit = seconds.saturating_mul(bytes_per_second.max(1_000)) + 64 * 1024;
    if timestamps {
        limit = limit.saturating_mul(4) / 3 + chars.saturating_mul(256);
    }
    limit.min(MAX_AUDIO_BODY)
}

/// Parses `Retry-After`: seconds (an integer or a decimal), or an HTTP date. Absurd values are
/// capped at [`MAX_RETRY_AFTER`]; what cannot be read is ignored.
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<f64>() {
        if !(secs.is_finite() && secs >= 0.0) {
            return None;
        }
        return Some(
            Duration::try_from_secs_f64(secs)
                .unwrap_or(MAX_RETRY_AFTER)
                .min(MAX_RETRY_AFTER),
        );
    }
    let when = httpdate::parse_http_date(value).ok()?;
    let wait = when
        .duration_since(std::time::SystemTime::now())
        .unwrap_or(Duration::ZERO);
    Some(wait.min(MAX_RETRY_AFTER))
}

/// Reads a body chunk by chunk, stopping with [`ApiError::TooLarge`] past `limit` bytes, so a
/// server that never stops talking costs at most `limit` bytes of memory.
async fn read_bounded(mut response: reqwest::Response, limit: u64) -> Result<Vec<u8>, ApiError> {
    let mut body = Vec::with_capacity(
        usize::try_from(response.content_length().unwrap_or(0).min(limit)).unwrap_or(0),
    );
    while let Some(chunk) = response.chunk().await.map_err(transport)? {
        if (body.len() + chunk.len()) as u64 > limit {
            return Err(ApiError::TooLarge { limit });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// An error answer's body, read to at most [`MAX_ERROR_BODY`] bytes (the rest is dropped).
async fn error_body(mut response: reqwest::Response) -> Vec<u8> {
    let mut body = Vec::new();
    while let Ok(Some(chunk)) = response.chunk().await {
        let room = usize::try_from(MAX_ERROR_BODY).unwrap_or(usize::MAX) - body.len();
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if body.len() as u64 >= MAX_ERROR_BODY {
            break;
        }
    }
    body
}

/// A 3xx answer that was not followed: it pointed to another origin (or went round too often).
fn redirect_error(status: u16, location: Option<String>) -> ApiError {
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

/// The HTTP client of one run.
#[derive(Clone, Debug)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    key: Option<ApiKey>,
}

impl Client {
    pub fn new(base_url: &str, key: Option<ApiKey>, timeout: Duration) -> anyhow::Result<Self> {
        let origin = reqwest::Url::parse(base_url)
            .map_err(|e| anyhow::anyhow!("bad base URL {base_url:?}: {e}"))?
            .origin();
        // The key travels in a header of our own, which reqwest does not strip on a redirect to
        // another host: follow redirects only within the base URL's origin.
        let policy = reqwest::redirect::Policy::custom(move |attempt| {
            if attempt.previous().len() < 5 && attempt.url().origin() == origin {
                attempt.follow()
            } else {
                attempt.stop()
            }
        });
        let http = reqwest::Client::builder()
            .redirect(policy)
            .timeout(timeout)
            .connect_timeout(Duration::from_secs(10))
            // Below the emulator's (and common servers') idle timeout, so a pooled connection
            // is never reused just as the server closes it.
            .pool_idle_timeout(Duration::from_secs(20))
            .user_agent(concat!("narrate/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Client {
            http,
            base: base_url.trim_end_matches('/').to_string(),
            key,
        })
    }

    /// `base + path?query`, with the query percent-encoded.
    fn url(&self, path: &str, query: &[(&str, String)]) -> Result<reqwest::Url, ApiError> {
        let mut url = reqwest::Url::parse(&format!("{}{path}", self.base))
            .map_err(|e| ApiError::Transport(format!("bad URL {}{path}: {e}", self.base)))?;
        if !query.is_empty() {
            let mut pairs = url.query_pairs_mut();
            for (k, v) in query {
                pairs.append_pair(k, v);
            }
        }
        Ok(url)
    }

    fn with_key(&self, builder: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.key {
            Some(key) => builder.header("xi-api-key", key.expose()),
            None => builder,
        }
    }

    /// `POST /v1/text-to-speech/{voice_id}?output_format=…`, body read to the end but never past
    /// `body_limit` bytes; with `timestamps`, `…/with-timestamps`, whose JSON answer carries the
    /// audio and its timings. `estimate` is what a 200 costs when it carries no `character-cost`.
    #[allow(clippy::too_many_arguments)]
    pub async fn text_to_speech(
        &self,
        voice_id: &str,
        output_format: &str,
        enable_logging: bool,
        body: &TtsBody,
        timestamps: bool,
        body_limit: u64,
        estimate: f64,
    ) -> Result<TtsResponse, TtsFailure> {
        let mut query = vec![("output_format", output_format.to_string())];
        if !enable_logging {
            query.push(("enable_logging", "false".into()));
        }
        let path = if timestamps {
            format!("/v1/text-to-speech/{voice_id}/with-timestamps")
        } else {
            format!("/v1/text-to-speech/{voice_id}")
        };
        let url = self.url(&path, &query)?;
        let request = self.with_key(self.http.post(url).json(body));
        let response = request.send().await.map_err(transport)?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let header = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        if (300..400).contains(&status) {
            return Err(redirect_error(status, header("location")).into());
        }
        if status != 200 {
            let retry_after = header("retry-after").and_then(|v| parse_retry_after(&v));
            let body = error_body(response).await;
            let (code, message) = parse_error_body(&body);
            return Err(ApiError::Status {
                status,
                code,
                message,
                retry_after,
            }
            .into());
        }
        // From here on the audio was generated and charged, whatever happens to its delivery.
        let character_cost = header("character-cost")
            .and_then(|v| v.trim().parse::<f64>().ok())
            .filter(|c| c.is_finite() && *c >= 0.0);
        let charged = Some(character_cost.unwrap_or(estimate));
        let failed = |error: ApiError| TtsFailure { error, charged };
        let expected = response.content_length();
        let bytes = read_bounded(response, body_limit).await.map_err(failed)?;
        if let Some(expected) = expected
            && bytes.len() as u64 != expected
        {
            return Err(failed(ApiError::Truncated {
                expected,
                got: bytes.len() as u64,
            }));
        }
        let (audio, alignment) = if timestamps {
            use base64::Engine as _;
            // A body cut short without a length is JSON that does not parse: sent again.
            let timed: Timed = serde_json::from_slice(&bytes).map_err(|e| {
                failed(ApiError::Transport(format!(
                    "unreadable /with-timestamps answer: {e}"
                )))
            })?;
            let audio = base64::engine::general_purpose::STANDARD
                .decode(timed.audio_base64.as_bytes())
                .map_err(|e| failed(ApiError::BadAudio(format!("audio_base64: {e}"))))?;
            (Bytes::from(audio), timed.alignment)
        } else {
            (Bytes::from(bytes), None)
        };
        Ok(TtsResponse {
            alignment,
            audio,
            request_id: header("request-id"),
            character_cost,
            max_concurrency: header("maximum-concurrent-requests")
                .and_then(|v| v.trim().parse::<usize>().ok())
                .filter(|n| (1..=10_000).contains(n)),
        })
    }

    /// A GET of a JSON endpoint, such as `/v1/models`.
    pub async fn get_json(
        &self,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<serde_json::Value, ApiError> {
        let url = self.url(path, query)?;
        let response = self
            .with_key(self.http.get(url))
            .send()
            .await
            .map_err(transport)?;
        let status = response.status().as_u16();
        if (300..400).contains(&status) {
            let location = response
                .headers()
                .get("location")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            return Err(redirect_error(status, location));
        }
        if status != 200 {
            let body = error_body(response).await;
            let (code, message) = parse_error_body(&body);
            return Err(ApiError::Status {
                status,
                code,
                message,
                retry_after: None,
            });
        }
        let body = read_bounded(response, MAX_JSON_BODY).await?;
        serde_json::from_slice(&body).map_err(|e| ApiError::Status {
            status,
            code: None,
            message: format!("response is not JSON: {e}"),
            retry_after: None,
        })
    }
}

fn transport(e: reqwest::Error) -> ApiError {
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

    #[test]
    fn retry_after_is_read_in_seconds_or_as_a_date_and_capped() {
        assert_eq!(parse_retry_after("3"), Some(Duration::from_secs(3)));
        assert_eq!(parse_retry_after(" 0.5 "), Some(Duration::from_millis(500)));
        assert_eq!(parse_retry_after("1e20"), Some(MAX_RETRY_AFTER));
        assert_eq!(parse_retry_after("-1"), None);
        assert_eq!(parse_retry_after("NaN"), None);
        assert_eq!(parse_retry_after("soon"), None);
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(Duration::ZERO)
        );
        let later = std::time::SystemTime::now() + Duration::from_secs(120);
        let wait = parse_retry_after(&httpdate::fmt_http_date(later)).unwrap();
        assert!(wait > Duration::from_secs(100) && wait <= Duration::from_secs(120));
        let far = std::time::SystemTime::now() + Duration::from_secs(86_400 * 365);
        assert_eq!(
            parse_retry_after(&httpdate::fmt_http_date(far)),
            Some(MAX_RETRY_AFTER)
        );
    }

    #[test]
    fn audio_limits_grow_with_the_text_and_stop_at_the_cap() {
        // 2,500 characters of 44.1 kHz PCM: about 160 s of speech at normal speed.
        let pcm = audio_body_limit(2_500, 88_200, false);
        assert!(pcm > 160 * 88_200 * 3, "{pcm}");
        assert!(audio_body_limit(10, 16_000, false) < 2_000_000);
        assert_eq!(audio_body_limit(1_000_000, 88_200, true), MAX_AUDIO_BODY);
    }

    #[test]
    fn key_is_redacted_in_debug() {
        let key = ApiKey::new("sk_secret");
        assert_eq!(format!("{key:?}"), "(redacted)");
    }
}

//! The ElevenLabs HTTP API client: the text-to-speech call and the JSON endpoints narrate reads.
//!
//! - `key`: the redacted [`ApiKey`]; `types`: bodies and typed replies.
//! - `error`: [`ApiError`] from every body shape, and its [`Disposition`].
//! - `body`: bounded reads and `Retry-After`; `account`: voices, models, balance;
//!   `dictionaries`: the pronunciation dictionary narrate keeps for a manifest.
//!
//! The key goes only to the base URL's origin: redirects elsewhere are refused. Not
//! responsible for retrying or scheduling (see `execute`): one call, one attempt.

use std::time::Duration;

use bytes::Bytes;
use reqwest::header::HeaderMap;

pub(crate) mod account;
pub(crate) mod body;
pub(crate) mod dictionaries;
pub(crate) mod error;
pub(crate) mod key;
pub(crate) mod types;

pub use body::{MAX_AUDIO_BODY, audio_body_limit, parse_retry_after};
use body::{MAX_JSON_BODY, error_body, read_bounded};
pub use error::{ApiError, Disposition, TtsFailure, parse_error_body};
use error::{redirect_error, transport};
pub use key::ApiKey;
use types::Timed;
pub use types::{
    Alignment, HistoryItem, HistoryPage, Model, Subscription, TtsBody, TtsResponse, Voice,
};

/// One text-to-speech call: where, what, and how much of an answer to accept.
#[derive(Clone, Copy, Debug)]
pub struct TtsRequest<'a> {
    pub voice_id: &'a str,
    pub output_format: &'a str,
    /// `false` is zero-retention mode (`enable_logging=false`).
    pub enable_logging: bool,
    pub body: &'a TtsBody,
    /// Through `/with-timestamps`: the audio comes base64 in JSON with its timings.
    pub timestamps: bool,
    /// The most bytes the answer may have (see [`audio_body_limit`]).
    pub body_limit: u64,
    /// What a 200 costs when it carries no `character-cost`.
    pub estimate: f64,
}

/// A header's value as text.
pub(crate) fn header(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// An answer that is not a 200: a refused redirect, or an error with its parsed body.
pub(crate) async fn failure(response: reqwest::Response, retry_after: bool) -> ApiError {
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    if (300..400).contains(&status) {
        return redirect_error(status, header(&headers, "location"));
    }
    let body = error_body(response).await;
    let (code, message) = parse_error_body(&body);
    ApiError::Status {
        status,
        code,
        message,
        retry_after: header(&headers, "retry-after")
            .filter(|_| retry_after)
            .and_then(|v| parse_retry_after(&v)),
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
    /// A client for `base_url` sending `key`, each attempt bounded by `timeout`; redirects are
    /// followed only within the base URL's origin.
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

    /// `POST /v1/text-to-speech/{voice_id}?output_format=…`, the answer read to the end but
    /// never past `body_limit` bytes; with `timestamps`, `…/with-timestamps`, whose JSON answer
    /// carries the audio and its timings.
    pub async fn text_to_speech(&self, tts: TtsRequest<'_>) -> Result<TtsResponse, TtsFailure> {
        let voice_id = tts.voice_id;
        let mut query = vec![("output_format", tts.output_format.to_string())];
        if !tts.enable_logging {
            query.push(("enable_logging", "false".into()));
        }
        let path = if tts.timestamps {
            format!("/v1/text-to-speech/{voice_id}/with-timestamps")
        } else {
            format!("/v1/text-to-speech/{voice_id}")
        };
        let url = self.url(&path, &query)?;
        let request = self.with_key(self.http.post(url).json(tts.body));
        let response = request.send().await.map_err(transport)?;
        if response.status().as_u16() != 200 {
            return Err(failure(response, true).await.into());
        }
        // From here on the audio was generated and charged, whatever happens to its delivery.
        let headers = response.headers().clone();
        let character_cost = header(&headers, "character-cost")
            .and_then(|v| v.trim().parse::<f64>().ok())
            .filter(|c| c.is_finite() && *c >= 0.0);
        let charged = Some(character_cost.unwrap_or(tts.estimate));
        let (audio, alignment) = read_audio(response, &tts)
            .await
            .map_err(|error| TtsFailure { error, charged })?;
        Ok(TtsResponse {
            alignment,
            audio,
            request_id: header(&headers, "request-id"),
            history_item_id: header(&headers, "history-item-id"),
            character_cost,
            max_concurrency: header(&headers, "maximum-concurrent-requests")
                .and_then(|v| v.trim().parse::<usize>().ok())
                .filter(|n| (1..=10_000).contains(n)),
        })
    }

    /// A GET of a binary answer (audio), read to at most `limit` bytes, with its content type.
    pub async fn get_bytes(&self, path: &str, limit: u64) -> Result<(Vec<u8>, String), ApiError> {
        let url = self.url(path, &[])?;
        let response = self
            .with_key(self.http.get(url))
            .send()
            .await
            .map_err(transport)?;
        if response.status().as_u16() != 200 {
            return Err(failure(response, false).await);
        }
        let content_type = header(response.headers(), "content-type").unwrap_or_default();
        let expected = response.content_length();
        let bytes = read_bounded(response, limit).await?;
        if let Some(expected) = expected
            && bytes.len() as u64 != expected
        {
            return Err(ApiError::Truncated {
                expected,
                got: bytes.len() as u64,
            });
        }
        Ok((bytes, content_type))
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
        Self::json_answer(response).await
    }

    /// A POST of a JSON body to a JSON endpoint, such as a dictionary's `set-rules`.
    pub async fn post_json(
        &self,
        path: &str,
        body: &serde_json::Value,
    ) -> Result<serde_json::Value, ApiError> {
        let url = self.url(path, &[])?;
        let response = self
            .with_key(self.http.post(url).json(body))
            .send()
            .await
            .map_err(transport)?;
        Self::json_answer(response).await
    }

    /// A 200's JSON, read within its bound; any other status as an error.
    async fn json_answer(response: reqwest::Response) -> Result<serde_json::Value, ApiError> {
        let status = response.status().as_u16();
        if status != 200 {
            return Err(failure(response, false).await);
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

/// The audio of a 200: the body read within its bound and checked against `content-length`;
/// for `/with-timestamps`, decoded from its JSON with the character timings.
pub(crate) async fn read_audio(
    response: reqwest::Response,
    tts: &TtsRequest<'_>,
) -> Result<(Bytes, Option<Alignment>), ApiError> {
    let expected = response.content_length();
    let bytes = read_bounded(response, tts.body_limit).await?;
    if let Some(expected) = expected
        && bytes.len() as u64 != expected
    {
        return Err(ApiError::Truncated {
            expected,
            got: bytes.len() as u64,
        });
    }
    if !tts.timestamps {
        return Ok((Bytes::from(bytes), None));
    }
    use base64::Engine as _;
    // A body cut short without a length is JSON that does not parse: sent again.
    let timed: Timed = serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::Transport(format!("unreadable /with-timestamps answer: {e}")))?;
    let audio = base64::engine::general_purpose::STANDARD
        .decode(timed.audio_base64.as_bytes())
        .map_err(|e| ApiError::BadAudio(format!("audio_base64: {e}")))?;
    Ok((Bytes::from(audio), timed.alignment))
}

/// Whether an id the API gave may go into a URL path: 1 to 128 ASCII letters, digits, `-` and
/// `_`, as the API's ids are. Anything else (`../../v1/user/subscription?x=`) could address
/// another endpoint with the key.
pub(crate) fn plain_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_plain_ids_go_into_a_url() {
        assert!(super::plain_id("OC6wybolpiQDhzjCRd1o"));
        for hostile in [
            "",
            "../../v1/user/subscription?x=",
            "a/b",
            "a%2Fb",
            "a b",
            "é",
        ] {
            assert!(!super::plain_id(hostile), "{hostile:?}");
        }
        assert!(!super::plain_id(&"a".repeat(129)));
    }
}

//! Bounded reads of answers: every body has a ceiling (audio: what its text can produce; errors:
//! 64 KiB; JSON: 32 MiB), so a server that never stops talking costs bounded memory; and
//! `Retry-After`, read as seconds or an HTTP date, capped.
//!
//! Not responsible for what the bodies mean (see `Client`, `error`).

use std::time::Duration;

use super::error::{ApiError, transport};

/// The most bytes an error body is read to: enough for any message the API writes.
pub(crate) const MAX_ERROR_BODY: u64 = 64 * 1024;

/// The most bytes a JSON answer (voices, models, subscription) is read to.
pub(crate) const MAX_JSON_BODY: u64 = 32 * 1024 * 1024;

/// The most bytes any one audio answer is read to, whatever the request.
pub const MAX_AUDIO_BODY: u64 = 512 * 1024 * 1024;

/// The longest `Retry-After` honoured as given; longer ones are cut to it.
pub(crate) const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

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
/// capped at `MAX_RETRY_AFTER`; what cannot be read is ignored.
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
pub(super) async fn read_bounded(
    mut response: reqwest::Response,
    limit: u64,
) -> Result<Vec<u8>, ApiError> {
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
pub(super) async fn error_body(mut response: reqwest::Response) -> Vec<u8> {
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

#[cfg(test)]
mod tests {
    use super::*;

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
}

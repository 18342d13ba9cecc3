//! The API key in a redacting type: sent in `xi-api-key` and nowhere else, never printed,
//! logged or stored (`Debug` shows `(redacted)`).

use std::fmt;

/// An API key. It is sent in `xi-api-key` and nowhere else: never printed, logged or stored.
#[derive(Clone)]
pub struct ApiKey(String);

impl ApiKey {
    /// A key, without the whitespace around it.
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_is_redacted_in_debug() {
        let key = ApiKey::new("sk_secret");
        assert_eq!(format!("{key:?}"), "(redacted)");
    }
}

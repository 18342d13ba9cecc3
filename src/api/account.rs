//! The account endpoints narrate reads, typed: every page of the voices, the models' limits and
//! the remaining balance.
//!
//! Not responsible for what a command does with them (see `commands`).

use super::types::{HistoryPage, Model, Subscription, Voice, VoicesPage};
use super::{ApiError, Client};
use crate::models::{Limits, plausible_limits};

impl Client {
    /// Every voice of the account, all pages of `GET /v2/voices`, as the API wrote them.
    pub async fn voices(&self, search: Option<&str>) -> Result<Vec<serde_json::Value>, ApiError> {
        let mut voices = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut query = vec![("page_size", "100".to_string())];
            if let Some(s) = search {
                query.push(("search", s.to_string()));
            }
            if let Some(t) = &token {
                query.push(("next_page_token", t.clone()));
            }
            let page = self.get_json("/v2/voices", &query).await?;
            let page: VoicesPage = serde_json::from_value(page).unwrap_or_default();
            voices.extend(page.voices);
            token = page.next_page_token;
            if !page.has_more || token.is_none() {
                return Ok(voices);
            }
        }
    }

    /// `GET /v1/models`, typed (models that do not parse are left out).
    pub async fn models(&self) -> Result<Vec<Model>, ApiError> {
        let models = self.get_json("/v1/models", &[]).await?;
        Ok(models
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|m| serde_json::from_value(m.clone()).ok())
            .collect())
    }

    /// Per-request character limits from `GET /v1/models` (the implausible ones left out with a
    /// warning), or `None` when it cannot be read.
    pub async fn limits(&self) -> Option<Limits> {
        match self.models().await {
            Ok(models) => Some(plausible_limits(
                models.into_iter().filter_map(|m| {
                    let max = m.maximum_text_length_per_request?;
                    Some((m.model_id, max))
                }),
                "GET /v1/models",
            )),
            Err(e) => {
                tracing::info!(error = %e, "GET /v1/models failed; using the remembered or built-in limits");
                None
            }
        }
    }

    /// One page of the speech history (`GET /v1/history`) with `query`'s filters.
    pub async fn history(&self, query: &[(&str, String)]) -> Result<HistoryPage, ApiError> {
        let page = self.get_json("/v1/history", query).await?;
        serde_json::from_value(page).map_err(|e| ApiError::Status {
            status: 200,
            code: None,
            message: format!("unreadable history page: {e}"),
            retry_after: None,
        })
    }

    /// The audio of a history item and its content type, read to at most `limit` bytes.
    pub async fn history_audio(
        &self,
        history_item_id: &str,
        limit: u64,
    ) -> Result<(Vec<u8>, String), ApiError> {
        if !super::plain_id(history_item_id) {
            return Err(ApiError::Status {
                status: 200,
                code: None,
                message: format!(
                    "the API listed a history item id narrate will not put in a URL: {history_item_id:?}"
                ),
                retry_after: None,
            });
        }
        self.get_bytes(&format!("/v1/history/{history_item_id}/audio"), limit)
            .await
    }

    /// `GET /v1/user/subscription`, typed.
    pub async fn subscription(&self) -> Result<Subscription, ApiError> {
        let sub = self.get_json("/v1/user/subscription", &[]).await?;
        Ok(serde_json::from_value(sub).unwrap_or_default())
    }
}

/// Voices as `(voice_id, name)` pairs, for resolving names.
pub(crate) fn id_and_name(voices: &[serde_json::Value]) -> Vec<(String, String)> {
    voices
        .iter()
        .filter_map(|v| serde_json::from_value::<Voice>(v.clone()).ok())
        .filter(|v| !v.voice_id.is_empty() && !v.name.is_empty())
        .map(|v| (v.voice_id, v.name))
        .collect()
}

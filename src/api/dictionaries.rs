//! The pronunciation dictionary endpoints narrate uses: create one from rules, replace its
//! rules (each change is a new version), and look one up.
//!
//! Not responsible for deciding when (see `commands::dictionary`).

use super::{ApiError, Client};
use crate::pronounce::Rule;

/// A dictionary version: what a request's locator names.
#[derive(Clone, Debug, PartialEq)]
pub struct Version {
    pub id: String,
    pub version_id: String,
}

fn field(v: &serde_json::Value, name: &str, what: &str) -> Result<String, ApiError> {
    v.get(name)
        .and_then(|x| x.as_str())
        .map(str::to_string)
        .ok_or_else(|| ApiError::Status {
            status: 200,
            code: None,
            message: format!("{what}: the answer has no {name}"),
            retry_after: None,
        })
}

impl Client {
    /// `POST /v1/pronunciation-dictionaries/add-from-rules`.
    pub async fn create_dictionary(&self, name: &str, rules: &[Rule]) -> Result<Version, ApiError> {
        let body = serde_json::json!({
            "name": name,
            "description": "Kept by narrate for one manifest; narrate replaces its rules when the manifest's change.",
            "rules": rules.iter().map(Rule::api).collect::<Vec<_>>(),
        });
        let what = "POST /v1/pronunciation-dictionaries/add-from-rules";
        let answer = self
            .post_json("/v1/pronunciation-dictionaries/add-from-rules", &body)
            .await?;
        Ok(Version {
            id: field(&answer, "id", what)?,
            version_id: field(&answer, "version_id", what)?,
        })
    }

    /// `POST /v1/pronunciation-dictionaries/{id}/set-rules`: the rules replaced, a new version.
    pub async fn set_dictionary_rules(
        &self,
        id: &str,
        rules: &[Rule],
    ) -> Result<Version, ApiError> {
        let body = serde_json::json!({ "rules": rules.iter().map(Rule::api).collect::<Vec<_>>() });
        let path = format!("/v1/pronunciation-dictionaries/{id}/set-rules");
        let answer = self.post_json(&path, &body).await?;
        Ok(Version {
            id: id.to_string(),
            version_id: field(&answer, "version_id", &format!("POST {path}"))?,
        })
    }

    /// `GET /v1/pronunciation-dictionaries/{id}`: its latest version, or `None` when the
    /// account has no such dictionary (404).
    pub async fn dictionary(&self, id: &str) -> Result<Option<Version>, ApiError> {
        let path = format!("/v1/pronunciation-dictionaries/{id}");
        match self.get_json(&path, &[]).await {
            Ok(answer) => Ok(Some(Version {
                id: id.to_string(),
                version_id: field(&answer, "latest_version_id", &format!("GET {path}"))?,
            })),
            Err(e) if e.status() == Some(404) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

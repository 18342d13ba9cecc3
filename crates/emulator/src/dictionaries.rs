//! Pronunciation dictionaries: `add-from-rules`, `add-from-file` (a multipart PLS),
//! `{id}/set-rules`, `add-rules`, `remove-rules`
//! (each change a new version), `GET {id}`, the listing with cursor paging, and `{id}/{version}/
//! download` as a PLS lexicon; and, for text-to-speech, the locators checked and their alias
//! rules applied to the text before synthesis, so durations change as they would.
//!
//! Where the API's documentation is silent, the emulator chooses (and says so in its messages):
//! an unknown dictionary or version in a locator is a 400; a rule matches its whole word with
//! its case unless the rule says `word_boundaries: false` or `case_sensitive: false`; phoneme
//! rules change nothing in the synthetic audio. Its own code, written from the API's
//! description, not the client's.

use std::sync::Arc;

use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::Emulator;
use super::auth::{api_error, authorize, query_pairs, validation_error};
use super::state::Dictionary;

impl Dictionary {
    fn metadata(&self) -> Value {
        let (version, rules) = self.latest();
        json!({
            "id": self.id,
            "latest_version_id": version,
            "latest_version_rules_num": rules.len(),
            "name": self.name,
            "permission_on_resource": "admin",
            "created_by": "emulator-user",
            "creation_time_unix": self.created,
            "archived_time_unix": null,
            "description": self.description,
        })
    }
}

/// A 422 in FastAPI's shape for a body field (a missing one has a null input, as the API's
/// answers show).
fn invalid(loc: &[&str], kind: &str, msg: &str, input: &Value) -> Response {
    let mut location = vec![json!("body")];
    location.extend(loc.iter().map(|l| json!(l)));
    let input = if kind == "missing" {
        &Value::Null
    } else {
        input
    };
    validation_error(vec![
        json!({"type": kind, "loc": location, "msg": msg, "input": input}),
    ])
}

/// The rules of a body, checked as the API's models describe them.
#[allow(clippy::result_large_err)] // the error is the answer itself
fn rules_of(body: &Value) -> Result<Vec<Value>, Response> {
    let Some(list) = body.get("rules") else {
        return Err(invalid(&["rules"], "missing", "Field required", body));
    };
    let Some(list) = list.as_array() else {
        return Err(invalid(
            &["rules"],
            "list_type",
            "Input should be a valid list",
            list,
        ));
    };
    for (i, rule) in list.iter().enumerate() {
        let index = i.to_string();
        let text = |name: &str| rule.get(name).and_then(Value::as_str);
        if text("string_to_replace").is_none() {
            return Err(invalid(
                &["rules", &index, "string_to_replace"],
                "missing",
                "Field required",
                rule,
            ));
        }
        let needed: &[&str] = match text("type") {
            Some("alias") => &["alias"],
            Some("phoneme") => &["phoneme", "alphabet"],
            _ => {
                return Err(invalid(
                    &["rules", &index],
                    "union_tag_invalid",
                    "Input tag does not match any of the expected tags: 'alias', 'phoneme'",
                    rule,
                ));
            }
        };
        for name in needed {
            if text(name).is_none() {
                return Err(invalid(
                    &["rules", &index, name],
                    "missing",
                    "Field required",
                    rule,
                ));
            }
        }
    }
    Ok(list.clone())
}

fn not_found(state: &Emulator, id: &str) -> Response {
    api_error(
        state,
        StatusCode::NOT_FOUND,
        "not_found",
        "pronunciation_dictionary_not_found",
        &format!("A pronunciation dictionary with the id {id} was not found."),
    )
}

/// The answer: a refusal is an answer too.
fn answer(result: Result<Response, Response>) -> Response {
    let (Ok(response) | Err(response)) = result;
    response
}

/// A JSON object body, read as FastAPI reads it (see `pydantic::read_body`), or its 422.
async fn json_body(headers: &HeaderMap, body: axum::body::Bytes) -> Result<Value, Response> {
    match super::pydantic::read_body(headers, &body) {
        Ok(Some(v)) if v.is_object() => Ok(v),
        Ok(Some(v)) => Err(validation_error(vec![json!({
            "type": "model_attributes_type",
            "loc": ["body"],
            "msg": "Input should be a valid dictionary or object to extract fields from",
            "input": v,
        })])),
        Ok(None) => Err(validation_error(vec![json!({
            "type": "missing", "loc": ["body"], "msg": "Field required", "input": null,
        })])),
        Err(items) => Err(validation_error(items)),
    }
}

/// `POST /v1/pronunciation-dictionaries/add-from-rules`.
pub(crate) async fn add_from_rules(
    State(state): State<Arc<Emulator>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let result = create(&state, &headers, body).await;
    answer(result)
}

async fn create(
    state: &Emulator,
    headers: &HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, Response> {
    authorize(state, headers).map_err(|r| *r)?;
    let body = json_body(headers, body).await?;
    let rules = rules_of(&body)?;
    let Some(name) = body.get("name").and_then(Value::as_str) else {
        return Err(invalid(&["name"], "missing", "Field required", &body));
    };
    let description = body.get("description").and_then(Value::as_str);
    Ok(insert(state, name, description, rules))
}

/// A new dictionary with its first version, answered as the API does.
fn insert(state: &Emulator, name: &str, description: Option<&str>, rules: Vec<Value>) -> Response {
    let dictionary = Dictionary {
        id: state.next_id("dictionary"),
        name: name.to_string(),
        description: description.map(str::to_string),
        created: super::state::unix_now() as i64,
        versions: vec![(state.next_id("version"), rules)],
    };
    let (version, rules) = dictionary.latest().clone();
    let answer = json!({
        "id": dictionary.id,
        "name": dictionary.name,
        "created_by": "emulator-user",
        "creation_time_unix": dictionary.created,
        "version_id": version,
        "version_rules_num": rules.len(),
        "description": dictionary.description,
        "permission_on_resource": "admin",
    });
    state.dictionaries().push(dictionary);
    axum::Json(answer).into_response()
}

/// `POST /v1/pronunciation-dictionaries/add-from-file`: a multipart form with `name`,
/// `description` and the PLS `file`.
pub(crate) async fn add_from_file(
    State(state): State<Arc<Emulator>>,
    headers: HeaderMap,
    multipart: axum::extract::Multipart,
) -> Response {
    let result = from_file(&state, &headers, multipart).await;
    answer(result)
}

async fn from_file(
    state: &Emulator,
    headers: &HeaderMap,
    mut multipart: axum::extract::Multipart,
) -> Result<Response, Response> {
    authorize(state, headers).map_err(|r| *r)?;
    let (mut name, mut description, mut file) = (None, None, None);
    while let Ok(Some(field)) = multipart.next_field().await {
        let key = field.name().unwrap_or_default().to_string();
        let Ok(bytes) = field.bytes().await else {
            break;
        };
        let text = String::from_utf8_lossy(&bytes).into_owned();
        match key.as_str() {
            "name" => name = Some(text),
            "description" => description = Some(text),
            "file" => file = Some(text),
            _ => {}
        }
    }
    let Some(name) = name else {
        return Err(invalid(
            &["name"],
            "missing",
            "Field required",
            &json!(null),
        ));
    };
    let rules = match file.as_deref().map(crate::pls::rules) {
        Some(Ok(rules)) => rules,
        Some(Err(e)) => {
            return Err(super::auth::bad(
                state,
                "invalid_pls",
                &format!(
                    "The lexicon file is not valid PLS: line {}: {} (the emulator's wording).",
                    e.line, e.message
                ),
            ));
        }
        None => Vec::new(),
    };
    Ok(insert(state, &name, description.as_deref(), rules))
}

/// What `set-rules`, `add-rules` and `remove-rules` do to a version's rules.
enum Change {
    Set(Vec<Value>),
    /// A rule for a word already there replaces it.
    Add(Vec<Value>),
    /// The `rule_strings` to remove.
    Remove(Vec<Value>),
}

impl Change {
    fn apply(self, rules: &mut Vec<Value>) {
        match self {
            Change::Set(new) => *rules = new,
            Change::Add(new) => {
                for rule in new {
                    rules.retain(|r| r["string_to_replace"] != rule["string_to_replace"]);
                    rules.push(rule);
                }
            }
            Change::Remove(strings) => {
                rules.retain(|r| !strings.contains(&r["string_to_replace"]));
            }
        }
    }
}

/// `POST /v1/pronunciation-dictionaries/{id}/{set-rules|add-rules|remove-rules}`.
pub(crate) async fn change(
    State(state): State<Arc<Emulator>>,
    Path((id, action)): Path<(String, String)>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let result = change_rules(&state, &id, &action, &headers, body).await;
    answer(result)
}

async fn change_rules(
    state: &Emulator,
    id: &str,
    action: &str,
    headers: &HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, Response> {
    authorize(state, headers).map_err(|r| *r)?;
    if !matches!(action, "set-rules" | "add-rules" | "remove-rules") {
        return Err(super::auth::not_found().await);
    }
    let body = json_body(headers, body).await?;
    let change = match action {
        "remove-rules" => {
            let Some(strings) = body.get("rule_strings").and_then(Value::as_array) else {
                return Err(invalid(
                    &["rule_strings"],
                    "missing",
                    "Field required",
                    &body,
                ));
            };
            Change::Remove(strings.clone())
        }
        "add-rules" => Change::Add(rules_of(&body)?),
        _ => Change::Set(rules_of(&body)?),
    };
    let version = state.next_id("version");
    let mut all = state.dictionaries();
    let Some(d) = all.iter_mut().find(|d| d.id == id) else {
        drop(all);
        return Err(not_found(state, id));
    };
    let mut rules = d.latest().1.clone();
    change.apply(&mut rules);
    let count = rules.len();
    d.versions.push((version.clone(), rules));
    Ok(
        axum::Json(json!({"id": id, "version_id": version, "version_rules_num": count}))
            .into_response(),
    )
}

/// `GET /v1/pronunciation-dictionaries/{id}`: its metadata and latest rules.
pub(crate) async fn get(
    State(state): State<Arc<Emulator>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    match authorize(&state, &headers) {
        Err(r) => *r,
        Ok(()) => {
            let all = state.dictionaries();
            match all.iter().find(|d| d.id == id) {
                Some(d) => {
                    let mut v = d.metadata();
                    v["rules"] = Value::Array(d.latest().1.clone());
                    axum::Json(v).into_response()
                }
                None => {
                    drop(all);
                    not_found(&state, &id)
                }
            }
        }
    }
}

/// `GET /v1/pronunciation-dictionaries?cursor=&page_size=`: newest first, at most 100 a page
/// (30 by default); the cursor is the id of the next one.
pub(crate) async fn list(
    State(state): State<Arc<Emulator>>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    match authorize(&state, &headers) {
        Err(r) => *r,
        Ok(()) => list_page(&state, &query_pairs(&query)),
    }
}

fn list_page(state: &Emulator, query: &[(String, String)]) -> Response {
    let get = |k: &str| query.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    let page_size = match super::pydantic::page_size(query, 30, 100) {
        Ok(n) => n,
        Err(e) => return validation_error(vec![e]),
    };
    let all = state.dictionaries();
    let newest: Vec<&Dictionary> = all.iter().rev().collect();
    let start = match get("cursor") {
        None => 0,
        Some(c) => match newest.iter().position(|d| d.id == c) {
            Some(i) => i,
            None => {
                drop(all);
                return api_error(
                    state,
                    StatusCode::BAD_REQUEST,
                    "validation_error",
                    "invalid_cursor",
                    "The cursor is not one this listing gave (the emulator's choice of answer).",
                );
            }
        },
    };
    let page: Vec<Value> = newest
        .iter()
        .skip(start)
        .take(page_size)
        .map(|d| d.metadata())
        .collect();
    let next = newest.get(start + page_size).map(|d| d.id.clone());
    axum::Json(json!({
        "pronunciation_dictionaries": page,
        "next_cursor": next,
        "has_more": next.is_some(),
    }))
    .into_response()
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// `GET /v1/pronunciation-dictionaries/{id}/{version_id}/download`: the version as a PLS.
pub(crate) async fn download(
    State(state): State<Arc<Emulator>>,
    Path((id, version)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    match authorize(&state, &headers) {
        Err(r) => *r,
        Ok(()) => {
            let all = state.dictionaries();
            let rules = all
                .iter()
                .find(|d| d.id == id)
                .and_then(|d| d.versions.iter().find(|(v, _)| *v == version))
                .map(|(_, r)| r.clone());
            drop(all);
            match rules {
                None => not_found(&state, &format!("{id} (version {version})")),
                Some(rules) => {
                    let mut pls = String::from(
                        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<lexicon version=\"1.0\" xmlns=\"http://www.w3.org/2005/01/pronunciation-lexicon\" alphabet=\"ipa\" xml:lang=\"en-US\">\n",
                    );
                    for r in &rules {
                        let text = |k: &str| escape(r.get(k).and_then(Value::as_str).unwrap_or(""));
                        let how = if r["type"] == "alias" {
                            format!("<alias>{}</alias>", text("alias"))
                        } else {
                            format!(
                                "<phoneme alphabet=\"{}\">{}</phoneme>",
                                text("alphabet"),
                                text("phoneme")
                            )
                        };
                        pls.push_str(&format!(
                            "  <lexeme>\n    <grapheme>{}</grapheme>\n    {how}\n  </lexeme>\n",
                            text("string_to_replace")
                        ));
                    }
                    pls.push_str("</lexicon>\n");
                    ([("content-type", "application/pls+xml")], pls).into_response()
                }
            }
        }
    }
}

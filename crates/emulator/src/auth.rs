//! What every endpoint shares: the key check (`xi-api-key`), the API's error shapes (with
//! `x-trace-id`), FastAPI's 404 and 422 bodies, query parsing, and the request log of reads.
//!
//! Not responsible for what an endpoint answers (see `tts`, `account`).

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::Emulator;

/// An error in the API's `{"detail":{...}}` shape, with legacy `status` and newer fields.
pub(crate) fn api_error(
    state: &Emulator,
    status: StatusCode,
    kind: &str,
    code: &str,
    message: &str,
) -> Response {
    let trace = state.trace_id();
    let body = json!({"detail": {
        "type": kind,
        "code": code,
        "status": code,
        "message": message,
        "request_id": trace,
    }});
    let mut response = (status, axum::Json(body)).into_response();
    response.headers_mut().insert(
        "x-trace-id",
        HeaderValue::from_str(&trace).expect("hex is a valid header"),
    );
    response
}

/// The CORS headers the API sends on every answer.
const CORS: [(&str, &str); 4] = [
    ("access-control-allow-origin", "*"),
    ("access-control-allow-headers", "*"),
    (
        "access-control-allow-methods",
        "POST, PATCH, OPTIONS, DELETE, GET, PUT",
    ),
    ("access-control-max-age", "600"),
];

/// What every answer gets on its way out: the CORS headers; on an error, an `x-trace-id` (the
/// 422s, the 404 of an unknown path and the 405 of a wrong method included); and for a 405,
/// FastAPI's JSON body.
pub(crate) async fn finish(
    axum::extract::State(state): axum::extract::State<std::sync::Arc<Emulator>>,
    response: Response,
) -> Response {
    let mut response = if response.status() == StatusCode::METHOD_NOT_ALLOWED {
        let (mut parts, _) = response.into_parts();
        parts.headers.remove("content-length");
        parts
            .headers
            .insert("content-type", HeaderValue::from_static("application/json"));
        Response::from_parts(
            parts,
            axum::body::Body::from(r#"{"detail":"Method Not Allowed"}"#),
        )
    } else {
        response
    };
    if response.status().as_u16() >= 400
        && !response.headers().contains_key("x-trace-id")
        && let Ok(v) = HeaderValue::from_str(&state.trace_id())
    {
        response.headers_mut().insert("x-trace-id", v);
    }
    for (name, value) in CORS {
        response
            .headers_mut()
            .insert(name, HeaderValue::from_static(value));
    }
    response
}

/// The largest request body read (a PLS file for `add-from-file` is the largest there is).
const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;

/// Reads a request's whole body within the configured time (and size) before anything else
/// sees it: a client that trickles its body gets a 408 and its connection closed, so it holds
/// neither a connection nor a handler.
pub(crate) async fn body_in_time(
    State(state): State<Arc<Emulator>>,
    request: Request,
    next: Next,
) -> Response {
    let (parts, body) = request.into_parts();
    let limit = state.config.body_timeout;
    let refused = |status: StatusCode, message: &str| {
        let mut response = (status, axum::Json(json!({"detail": message}))).into_response();
        response
            .headers_mut()
            .insert("connection", HeaderValue::from_static("close"));
        response
    };
    match tokio::time::timeout(limit, axum::body::to_bytes(body, MAX_BODY_BYTES)).await {
        Ok(Ok(bytes)) => {
            next.run(Request::from_parts(parts, axum::body::Body::from(bytes)))
                .await
        }
        Ok(Err(_)) => refused(
            StatusCode::PAYLOAD_TOO_LARGE,
            "The request body is too large (the emulator's limit).",
        ),
        Err(_) => refused(
            StatusCode::REQUEST_TIMEOUT,
            "The request body did not arrive in time (the emulator's limit).",
        ),
    }
}

/// A browser's CORS preflight (`OPTIONS` with `Access-Control-Request-Method`) is answered
/// `200 OK` on any path, as the API's CORS layer does, before routing.
pub(crate) async fn preflight(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    if request.method() == Method::OPTIONS
        && request
            .headers()
            .contains_key("access-control-request-method")
    {
        let mut response = (StatusCode::OK, "OK").into_response();
        for (name, value) in CORS {
            response
                .headers_mut()
                .insert(name, HeaderValue::from_static(value));
        }
        return response;
    }
    next.run(request).await
}

/// A 422 in FastAPI's list shape.
pub(crate) fn validation_error(items: Vec<Value>) -> Response {
    (
        StatusCode::UNPROCESSABLE_ENTITY,
        axum::Json(json!({"detail": items})),
    )
        .into_response()
}

pub(crate) async fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        axum::Json(json!({"detail": "Not Found"})),
    )
        .into_response()
}

/// Checks `xi-api-key`; `Err` is the 401 to send.
pub(crate) fn authorize(state: &Emulator, headers: &HeaderMap) -> Result<(), Box<Response>> {
    let key = headers
        .get("xi-api-key")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .unwrap_or("");
    if key.is_empty() {
        return Err(Box::new(api_error(
            state,
            StatusCode::UNAUTHORIZED,
            "authentication_error",
            "needs_authorization",
            "Neither authorization header nor xi-api-key received, please provide one.",
        )));
    }
    if let Some(expected) = &state.config.api_key
        && key != expected
    {
        return Err(Box::new(api_error(
            state,
            StatusCode::UNAUTHORIZED,
            "authentication_error",
            "invalid_api_key",
            "Invalid API key",
        )));
    }
    Ok(())
}

pub(crate) fn query_pairs(raw: &Option<String>) -> Vec<(String, String)> {
    raw.as_deref()
        .map(|q| {
            form_urlencoded::parse(q.as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect()
        })
        .unwrap_or_default()
}

/// Logs every answer of the account, history and dictionary endpoints (the text-to-speech
/// endpoints log their own, with what was generated): method, path, query, whether a key was
/// given, and the status. One layer, so no handler takes the request's parts just to log.
pub(crate) async fn log_reads(
    State(state): State<Arc<Emulator>>,
    request: Request,
    next: Next,
) -> Response {
    let method = request.method().as_str().to_string();
    let path = request.uri().path().to_string();
    let query = request.uri().query().map(str::to_string);
    let key_present = request.headers().contains_key("xi-api-key");
    let response = next.run(request).await;
    state.log(json!({
        "time": state.now(),
        "method": method,
        "path": path,
        "query": query,
        "key_present": key_present,
        "status": response.status().as_u16(),
    }));
    response
}

/// A 400 in the API's shape.
pub(crate) fn bad(state: &Emulator, code: &str, message: &str) -> Response {
    api_error(
        state,
        StatusCode::BAD_REQUEST,
        "validation_error",
        code,
        message,
    )
}

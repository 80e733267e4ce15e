//! Refusals as `{"error": "…"}` with their status, and the small response helpers.

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use srpc_registry_kit::{Url, validate_publication, validate_registration};

use crate::api::{ErrorResponse, INDEX_HEADER, MAX_BODY};

/// Unknown routes: 404 naming the method and path.
pub(super) async fn no_route(request: Request) -> ApiError {
    error(
        StatusCode::NOT_FOUND,
        format!(
            "no route {} {}: see docs/http-registry.md",
            request.method(),
            request.uri().path()
        ),
    )
}

/// Turns every error response that is not JSON yet into `{"error": "…"}`, keeping its status
/// and headers (`Allow` on 405). The message is the original body, or the status and route.
pub(super) async fn json_errors(request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let response = next.run(request).await;
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, MAX_BODY)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_owned())
        .unwrap_or_default();
    let reason = status
        .canonical_reason()
        .unwrap_or("error")
        .to_ascii_lowercase();
    let message = if text.is_empty() {
        format!("{reason}: {method} {path}")
    } else {
        format!("{reason}: {text}")
    };
    let body = serde_json::to_string(&ErrorResponse { error: message })
        .unwrap_or_else(|_| format!("{{\"error\":\"{reason}\"}}"));
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Response::from_parts(parts, Body::from(body))
}

/// A refused request: its status and a message quoting the bad input, sent as
/// `{"error": "…"}`.
#[derive(Debug)]
pub(super) struct ApiError(pub(super) StatusCode, pub(super) String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, json_body(&ErrorResponse { error: self.1 })).into_response()
    }
}

/// A refusal for a limit: names it (as its `srpc registry serve` flag), its value, and what
/// crossed it.
pub(super) fn limit(status: StatusCode, name: &str, value: usize, what: String) -> ApiError {
    error(
        status,
        format!("limit {name} ({value}) reached: {what}; nothing was changed"),
    )
}

pub(super) fn error(status: StatusCode, message: String) -> ApiError {
    ApiError(status, message)
}

pub(super) fn json_body(
    value: &impl serde::Serialize,
) -> ([(header::HeaderName, HeaderValue); 1], String) {
    let body = serde_json::to_string(value).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"));
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body,
    )
}

pub(super) fn with_index(mut response: Response, revision: u64) -> Response {
    if let Ok(value) = HeaderValue::from_str(&revision.to_string()) {
        response.headers_mut().insert(INDEX_HEADER, value);
    }
    response
}

/// Reads a JSON body, answering 400 with a JSON error that says what is wrong.
pub(super) fn parse_body<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| error(StatusCode::BAD_REQUEST, format!("invalid JSON body: {e}")))
}

/// An instance URL to register: also refused when it could never work (see
/// [`validate_publication`]).
pub(super) fn parse_publication(text: &str) -> Result<Url, ApiError> {
    let url = parse_instance(text)?;
    validate_publication(&url).map_err(|e| error(StatusCode::BAD_REQUEST, e.to_string()))?;
    Ok(url)
}

pub(super) fn parse_instance(text: &str) -> Result<Url, ApiError> {
    let url = Url::parse(text).map_err(|e| error(StatusCode::BAD_REQUEST, e.to_string()))?;
    validate_registration(&url).map_err(|e| error(StatusCode::BAD_REQUEST, e.to_string()))?;
    Ok(url)
}

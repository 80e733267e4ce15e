//! The write actions: override rules that disable, enable or weigh a provider (the way Dubbo
//! Admin writes them, and the way Java Dubbo's and srpc's consumers read them), and
//! unregistering a provider that no longer answers. Off unless a token is configured, and
//! each request must carry it.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use dubbo_url::Url;
use serde::{Deserialize, Serialize};
use tracing::{info, warn};

use crate::Inner;
use crate::api::{json, problem};

/// How long the liveness probe before an unregister waits for a TCP connection.
const PROBE: Duration = Duration::from_secs(1);

/// Largest weight a rule may set (Dubbo's weights are `int`s; srpc's selectors `u32`).
const MAX_WEIGHT: u32 = 1_000_000;

#[derive(Debug, Deserialize)]
pub(crate) struct OverrideRequest {
    /// `disable`, `enable` or `weight`.
    action: String,
    /// The provider's URL, as the service page lists it.
    url: String,
    /// The weight, for `weight`.
    #[serde(default)]
    weight: Option<u32>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct UnregisterRequest {
    url: String,
}

#[derive(Serialize)]
struct Done {
    done: String,
}

/// Why a write was refused: its status and message.
#[derive(Debug)]
pub(crate) struct Refusal(StatusCode, String);

impl Refusal {
    fn new(status: StatusCode, message: impl Into<String>) -> Refusal {
        Refusal(status, message.into())
    }

    fn registry(error: &srpc_registry::Error) -> Refusal {
        Refusal::new(
            StatusCode::BAD_GATEWAY,
            format!("the registry refused: {error}"),
        )
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        problem(self.0, &self.1)
    }
}

/// What every write starts with: the token, then the provider the request names, as the
/// registry lists it now.
fn authorized_provider(inner: &Inner, headers: &HeaderMap, url: &str) -> Result<Url, Refusal> {
    authorize(inner, headers)?;
    listed_provider(inner, url)
}

fn done(what: String) -> Response {
    json(StatusCode::OK, &Done { done: what })
}

/// Whether `headers` carry the write token; the error answer when not.
fn authorize(inner: &Inner, headers: &HeaderMap) -> Result<(), Refusal> {
    let Some(token) = &inner.options.write_token else {
        return Err(Refusal::new(
            StatusCode::FORBIDDEN,
            "write actions are off; start the dashboard with --write",
        ));
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    if constant_time_eq(given.as_bytes(), token.as_bytes()) {
        Ok(())
    } else {
        Err(Refusal::new(
            StatusCode::UNAUTHORIZED,
            "a write needs the dashboard's token (Authorization: Bearer …)",
        ))
    }
}

/// Compares without stopping at the first difference.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The provider `text` names, if the registry lists it now.
fn listed_provider(inner: &Inner, text: &str) -> Result<Url, Refusal> {
    let url: Url = text
        .parse()
        .map_err(|e| Refusal::new(StatusCode::BAD_REQUEST, format!("not a URL: {e}")))?;
    let snapshot = inner.sub.snapshot();
    if !snapshot.providers().contains(&url) {
        return Err(Refusal::new(
            StatusCode::NOT_FOUND,
            "the registry does not list this provider (any more)",
        ));
    }
    Ok(url)
}

/// The override rule for one provider, with the group and version consumers of it select.
fn rule_for(provider: &Url, setting: (&str, String)) -> Result<Url, Refusal> {
    let mut builder = Url::builder("override")
        .host(provider.host())
        .port(provider.port())
        .path(provider.service_interface())
        .param("category", "configurators")
        .param("dynamic", "false")
        .param("enabled", "true");
    for key in ["group", "version"] {
        if let Some(value) = provider.param(key) {
            builder = builder.param(key, value);
        }
    }
    builder.param(setting.0, setting.1).build().map_err(|e| {
        Refusal::new(
            StatusCode::BAD_REQUEST,
            format!("cannot write the rule: {e}"),
        )
    })
}

/// The rules in the registry now for this provider's address and interface that set `key`.
fn rules_setting(inner: &Inner, provider: &Url, key: &str) -> Vec<Url> {
    inner
        .sub
        .snapshot()
        .category("configurators")
        .iter()
        .filter(|rule| rule.protocol() == "override")
        .filter(|rule| rule.host() == provider.host() && rule.port() == provider.port())
        .filter(|rule| rule.service_interface() == provider.service_interface())
        .filter(|rule| rule.param(key).is_some())
        .cloned()
        .collect()
}

pub(crate) async fn override_rule(
    State(inner): State<Arc<Inner>>,
    headers: HeaderMap,
    Json(request): Json<OverrideRequest>,
) -> Result<Response, Refusal> {
    let provider = authorized_provider(&inner, &headers, &request.url)?;
    let (key, value) = match (request.action.as_str(), request.weight) {
        ("disable", _) => ("disabled", "true".to_owned()),
        ("enable", _) => ("disabled", String::new()),
        ("weight", Some(weight)) if weight <= MAX_WEIGHT => ("weight", weight.to_string()),
        ("weight", _) => {
            return Err(Refusal::new(
                StatusCode::BAD_REQUEST,
                format!("weight needs a number from 0 to {MAX_WEIGHT}"),
            ));
        }
        (other, _) => {
            return Err(Refusal::new(
                StatusCode::BAD_REQUEST,
                format!("unknown action {other:?}: disable, enable or weight"),
            ));
        }
    };
    // One rule per provider and setting: the ones there were go first.
    for old in rules_setting(&inner, &provider, key) {
        inner.registry.unregister(&old).await.map_err(|error| {
            warn!(rule = %old, %error, "could not remove an override rule");
            Refusal::registry(&error)
        })?;
    }
    if value.is_empty() {
        info!(provider = %provider, "provider enabled (its disable rules removed)");
        return Ok(done("enabled".into()));
    }
    let rule = rule_for(&provider, (key, value))?;
    inner
        .registry
        .register(&rule)
        .await
        .map_err(|error| Refusal::registry(&error))?;
    info!(%rule, "override rule written");
    Ok(done(rule.to_full_string()))
}

pub(crate) async fn unregister(
    State(inner): State<Arc<Inner>>,
    headers: HeaderMap,
    Json(request): Json<UnregisterRequest>,
) -> Result<Response, Refusal> {
    let provider = authorized_provider(&inner, &headers, &request.url)?;
    // The check `srpc unregister` makes: a provider that accepts connections is alive, and
    // taking it out would only hide it until it registers again.
    if provider.port() > 0 && srpc_registry_kit::probe(&provider, PROBE).await {
        return Err(Refusal::new(
            StatusCode::CONFLICT,
            "the provider accepts connections: it is alive; stop it, or disable it instead",
        ));
    }
    inner
        .registry
        .unregister(&provider)
        .await
        .map_err(|error| Refusal::registry(&error))?;
    info!(%provider, "provider unregistered from the dashboard");
    Ok(done("unregistered".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_compare_whole() {
        assert!(constant_time_eq(b"s3cret", b"s3cret"));
        assert!(!constant_time_eq(b"s3cret", b"s3creT"));
        assert!(!constant_time_eq(b"s3cret", b"s3cre"));
    }

    #[test]
    fn a_rule_names_the_provider_and_what_consumers_select() {
        let provider: Url = "dubbo://10.0.0.5:20880/com.acme.Echo?version=1.0&group=g&weight=100"
            .parse()
            .unwrap();
        let rule = rule_for(&provider, ("disabled", "true".into())).unwrap();
        assert_eq!(
            rule.to_full_string(),
            "override://10.0.0.5:20880/com.acme.Echo?category=configurators&disabled=true\
             &dynamic=false&enabled=true&group=g&version=1.0"
        );
    }
}

//! A small typed client of the Consul HTTP API, for the endpoints this backend needs: agent
//! service register / deregister, TTL check pass, the health of one service and the catalog's
//! services, both as blocking queries. No existing crate fits: one lacks agent registration
//! and TTL checks, another is unmaintained.
//!
//! The ACL token goes in the `X-Consul-Token` header, never in a query string.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// A client of one Consul agent.
#[derive(Debug)]
pub(crate) struct Client {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
    timeout: Duration,
}

/// A failed call.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConsulError {
    /// The agent could not be reached.
    #[error("cannot reach the Consul agent at {base}: {source}{}", srpc_registry_kit::tls_hint(.source))]
    Unreachable {
        /// `http://host:port`.
        base: String,
        /// The HTTP client's error.
        #[source]
        source: reqwest::Error,
    },
    /// The agent answered with an error status; Consul's error bodies are plain text.
    #[error("the Consul agent answered {status} to {call}: {message}")]
    Status {
        /// What was asked, e.g. `PUT /v1/agent/check/pass/service:ab12`.
        call: String,
        /// The HTTP status.
        status: u16,
        /// The body, trimmed.
        message: String,
    },
    /// The body is not what the API documents.
    #[error("invalid answer from the Consul agent to {call}: {source}")]
    InvalidAnswer {
        /// What was asked.
        call: String,
        /// The JSON error.
        #[source]
        source: serde_json::Error,
    },
}

/// `PUT /v1/agent/service/register`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct Registration {
    #[serde(rename = "ID")]
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) tags: Vec<String>,
    pub(crate) address: String,
    pub(crate) port: u16,
    pub(crate) meta: BTreeMap<String, String>,
    pub(crate) check: TtlCheck,
}

/// The TTL check embedded in a registration; Consul names it `service:<ID>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct TtlCheck {
    #[serde(rename = "TTL")]
    pub(crate) ttl: String,
    pub(crate) deregister_critical_service_after: String,
    /// `passing`: visible at once instead of after the first pass.
    pub(crate) status: String,
}

/// One entry of `GET /v1/health/service/<name>`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub(crate) struct HealthEntry {
    pub(crate) node: Node,
    pub(crate) service: Service,
}

/// The node of a health entry.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub(crate) struct Node {
    pub(crate) address: String,
}

/// The service of a health entry.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub(crate) struct Service {
    #[serde(rename = "ID")]
    pub(crate) id: String,
    pub(crate) service: String,
    pub(crate) tags: Option<Vec<String>>,
    pub(crate) address: String,
    pub(crate) port: u16,
    pub(crate) meta: Option<BTreeMap<String, String>>,
}

/// The answer of a blocking query: the data, and the index to wait from next.
#[derive(Debug)]
pub(crate) struct Indexed<T> {
    pub(crate) index: u64,
    pub(crate) value: T,
}

impl ConsulError {
    /// The agent does not know the service or check: it forgot it (restarted without its data,
    /// or reaped it). A 500 "does not have associated TTL" means the same on older agents.
    pub(crate) fn is_forgotten(&self) -> bool {
        matches!(self, ConsulError::Status { status: 404, .. })
            || matches!(self, ConsulError::Status { status: 500, message, .. }
                if message.contains("does not have associated TTL"))
    }

    /// The request itself was refused: bad input or a wrong token. Retrying cannot help.
    pub(crate) fn is_refused(&self) -> bool {
        matches!(
            self,
            ConsulError::Status {
                status: 400 | 403,
                ..
            }
        )
    }
}

impl Client {
    /// A client of the agent at `base` (`http://host:port`).
    pub(crate) fn new(
        base: String,
        token: Option<String>,
        timeout: Duration,
        tls: &srpc_registry_kit::TlsConfig,
    ) -> srpc_registry_kit::Result<Client> {
        let mut builder = reqwest::Client::builder()
            .connect_timeout(timeout)
            .no_proxy();
        if tls.enabled {
            // The files are read here, so a missing or broken one fails `connect`, named.
            builder = builder.use_preconfigured_tls((*tls.client_config()?).clone());
        }
        let http = builder
            .build()
            .map_err(|e| srpc_registry_kit::Error::backend(crate::SCHEME, e))?;
        Ok(Client {
            http,
            base,
            token,
            timeout,
        })
    }

    /// Registers (or replaces) a service with its TTL check.
    pub(crate) async fn register(&self, registration: &Registration) -> Result<(), ConsulError> {
        let body = serde_json::to_vec(registration).unwrap_or_default();
        self.put("/v1/agent/service/register", body).await
    }

    /// Deregisters a service; one the agent does not know is fine.
    pub(crate) async fn deregister(&self, id: &str) -> Result<(), ConsulError> {
        match self
            .put(
                &format!("/v1/agent/service/deregister/{}", segment(id)),
                Vec::new(),
            )
            .await
        {
            Err(error) if error.is_forgotten() => Ok(()),
            other => other,
        }
    }

    /// Passes a TTL check.
    pub(crate) async fn pass(&self, check_id: &str) -> Result<(), ConsulError> {
        self.put(
            &format!("/v1/agent/check/pass/{}", segment(check_id)),
            Vec::new(),
        )
        .await
    }

    /// The passing instances of `name` tagged `tag`, blocking while the index is `index`
    /// (0: answer at once) for at most `wait`.
    pub(crate) async fn health(
        &self,
        name: &str,
        tag: &str,
        index: u64,
        wait: Duration,
    ) -> Result<Indexed<Vec<HealthEntry>>, ConsulError> {
        let path = format!(
            "/v1/health/service/{}?passing=1&tag={}{}",
            segment(name),
            segment(tag),
            blocking(index, wait)
        );
        self.get(&path, wait).await
    }

    /// The IDs of the services this agent has registered (`GET /v1/agent/services`).
    pub(crate) async fn agent_service_ids(
        &self,
    ) -> Result<std::collections::BTreeSet<String>, ConsulError> {
        let services: Indexed<BTreeMap<String, serde_json::Value>> =
            self.get("/v1/agent/services", Duration::ZERO).await?;
        Ok(services.value.into_keys().collect())
    }

    /// Every service of the catalog with its tags, blocking like [`Client::health`].
    pub(crate) async fn services(
        &self,
        index: u64,
        wait: Duration,
    ) -> Result<Indexed<BTreeMap<String, Vec<String>>>, ConsulError> {
        let path = format!(
            "/v1/catalog/services?{}",
            blocking(index, wait).trim_start_matches('&')
        );
        self.get(&path, wait).await
    }

    async fn put(&self, path: &str, body: Vec<u8>) -> Result<(), ConsulError> {
        let call = format!("PUT {path}");
        let mut request = self
            .http
            .put(format!("{}{path}", self.base))
            .timeout(self.timeout)
            .body(body);
        if let Some(token) = &self.token {
            request = request.header("X-Consul-Token", token);
        }
        let response = request.send().await.map_err(|e| self.unreachable(e))?;
        check(call, response).await.map(|_| ())
    }

    async fn get<T: DeserializeOwned>(
        &self,
        path: &str,
        wait: Duration,
    ) -> Result<Indexed<T>, ConsulError> {
        let call = format!("GET {path}");
        // Consul adds up to wait/16 of jitter to a blocking query.
        let mut request = self
            .http
            .get(format!("{}{path}", self.base))
            .timeout(self.timeout + wait + wait / 16);
        if let Some(token) = &self.token {
            request = request.header("X-Consul-Token", token);
        }
        let response = request.send().await.map_err(|e| self.unreachable(e))?;
        let index = response
            .headers()
            .get("X-Consul-Index")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let bytes = check(call.clone(), response).await?;
        let value = serde_json::from_slice(&bytes)
            .map_err(|source| ConsulError::InvalidAnswer { call, source })?;
        Ok(Indexed { index, value })
    }

    fn unreachable(&self, source: reqwest::Error) -> ConsulError {
        ConsulError::Unreachable {
            base: self.base.clone(),
            source,
        }
    }
}

/// The body of a successful answer, or the error it carries.
async fn check(call: String, response: reqwest::Response) -> Result<Vec<u8>, ConsulError> {
    let status = response.status();
    let bytes = response
        .bytes()
        .await
        .map_err(|source| ConsulError::Unreachable {
            base: call.clone(),
            source,
        })?;
    if status.is_success() {
        Ok(bytes.to_vec())
    } else {
        Err(ConsulError::Status {
            call,
            status: status.as_u16(),
            message: String::from_utf8_lossy(&bytes).trim().to_owned(),
        })
    }
}

/// `&index=N&wait=Xms` for a blocking query, nothing for index 0.
fn blocking(index: u64, wait: Duration) -> String {
    if index == 0 {
        String::new()
    } else {
        format!("&index={index}&wait={}ms", wait.as_millis().max(1))
    }
}

/// Percent-encodes one path segment or query value.
fn segment(text: &str) -> String {
    dubbo_url::encode(text).replace('+', "%20")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_register_body_is_consuls() {
        let registration = Registration {
            id: "ab12".into(),
            name: "com.acme.Echo".into(),
            tags: vec!["side=provider".into(), "dubbo".into()],
            address: "10.0.0.5".into(),
            port: 20880,
            meta: BTreeMap::from([("url".into(), "dubbo://10.0.0.5:20880/com.acme.Echo".into())]),
            check: TtlCheck {
                ttl: "16s".into(),
                deregister_critical_service_after: "1m".into(),
                status: "passing".into(),
            },
        };
        assert_eq!(
            serde_json::to_string(&registration).unwrap(),
            r#"{"ID":"ab12","Name":"com.acme.Echo","Tags":["side=provider","dubbo"],"Address":"10.0.0.5","Port":20880,"Meta":{"url":"dubbo://10.0.0.5:20880/com.acme.Echo"},"Check":{"TTL":"16s","DeregisterCriticalServiceAfter":"1m","Status":"passing"}}"#
        );
    }

    #[test]
    fn health_entries_read_with_missing_fields() {
        let body = r#"[{"Node":{"Node":"n1","Address":"10.0.0.9"},"Service":{"ID":"x","Service":"web","Tags":null,"Address":"","Port":80,"Meta":null},"Checks":[]}]"#;
        let entries: Vec<HealthEntry> = serde_json::from_str(body).unwrap();
        assert_eq!(entries[0].node.address, "10.0.0.9");
        assert_eq!(entries[0].service.port, 80);
        assert!(entries[0].service.meta.is_none());
    }

    #[test]
    fn forgotten_registrations_are_recognised() {
        let status = |status, message: &str| ConsulError::Status {
            call: "PUT /v1/agent/check/pass/service:x".into(),
            status,
            message: message.into(),
        };
        assert!(status(404, "Unknown check ID").is_forgotten());
        assert!(status(500, "CheckID \"service:x\" does not have associated TTL").is_forgotten());
        assert!(!status(500, "rpc error").is_forgotten());
        assert!(status(403, "ACL not found").is_refused());
        assert!(!status(429, "too many requests").is_refused());
        assert_eq!(blocking(0, Duration::from_secs(60)), "");
        assert_eq!(
            blocking(7, Duration::from_secs(60)),
            "&index=7&wait=60000ms"
        );
    }
}

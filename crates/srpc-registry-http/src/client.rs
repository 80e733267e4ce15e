//! [`HttpBackend`]: registers with heartbeats that never give up, and watches by long-poll.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use reqwest::StatusCode;
use serde::de::DeserializeOwned;
use srpc_registry::{Backend, Context, Error, FailbackConfig, Result, Url};
use tokio::task::AbortHandle;
use tracing::{debug, info, warn};

use crate::api::{
    ErrorResponse, InstanceRequest, InstancesResponse, RegisterRequest, ServiceResponse,
};

const BACKEND: &str = crate::SCHEME;

/// Settings of the client backend, from `http://host:port[?ttl=30s&wait=30s&token=…]`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct HttpConfig {
    /// `http://host:port`.
    pub base: String,
    /// TTL asked for each registration (default 30 s); heartbeats go every third of it.
    pub ttl: Duration,
    /// Long-poll wait (default 30 s).
    pub wait: Duration,
    /// Bearer token for writes.
    pub token: Option<String>,
    /// Retry and `check` settings.
    pub failback: FailbackConfig,
}

impl HttpConfig {
    /// Reads a registry URL.
    pub fn from_url(url: &Url) -> Result<HttpConfig> {
        let invalid = |reason: String| Error::invalid("registry url", url, reason);
        if url.protocol() != crate::SCHEME {
            return Err(invalid(format!(
                "the http backend serves {}:// only",
                crate::SCHEME
            )));
        }
        if url.host().is_empty() || url.port() == 0 {
            return Err(invalid("name the server: http://host:port".to_owned()));
        }
        let ttl = url.param_duration("ttl", Duration::from_secs(30))?;
        if ttl < crate::server::MIN_TTL {
            return Err(invalid(format!(
                "ttl must be at least {:?}",
                crate::server::MIN_TTL
            )));
        }
        let wait = url
            .param_duration("wait", Duration::from_secs(30))?
            .min(crate::server::MAX_WAIT);
        Ok(HttpConfig {
            base: format!("http://{}", url.address()),
            ttl,
            wait,
            token: url
                .param("token")
                .filter(|t| !t.is_empty())
                .map(str::to_owned),
            failback: FailbackConfig::from_url(url)?,
        })
    }
}

/// The HTTP registry [`Backend`].
#[derive(Debug)]
pub struct HttpBackend {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    config: HttpConfig,
    http: reqwest::Client,
    ctx: Context,
    heartbeats: Mutex<HashMap<Url, AbortHandle>>,
    watches: Mutex<HashMap<String, (AbortHandle, HashSet<Url>)>>,
}

/// What a watch follows: one service key, or every instance (for wildcard queries).
fn scope_of(query: &Url) -> String {
    let exact = |v: Option<&str>| v.is_none_or(|v| !v.contains(['*', ',']));
    if query.service_interface() != "*"
        && exact(query.param("group"))
        && exact(query.param("version"))
    {
        format!("service:{}", query.service_key())
    } else {
        "all".to_owned()
    }
}

fn backoff() -> impl Iterator<Item = Duration> {
    srpc_registry::retry_delays(Duration::from_millis(100), Duration::from_secs(5))
}

impl HttpBackend {
    /// A backend for `config`; no request is made until it is used.
    pub fn new(config: HttpConfig, ctx: Context) -> Result<HttpBackend> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(2))
            .no_proxy()
            .build()
            .map_err(|e| Error::backend(BACKEND, e))?;
        Ok(HttpBackend {
            inner: Arc::new(Inner {
                config,
                http,
                ctx,
                heartbeats: Mutex::default(),
                watches: Mutex::default(),
            }),
        })
    }
}

impl Inner {
    fn heartbeats(&self) -> MutexGuard<'_, HashMap<Url, AbortHandle>> {
        self.heartbeats.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn watches(&self) -> MutexGuard<'_, HashMap<String, (AbortHandle, HashSet<Url>)>> {
        self.watches.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// POSTs a JSON body; `Ok(None)` for 404.
    async fn post(&self, path: &str, body: &impl serde::Serialize) -> Result<Option<()>> {
        let url = format!("{}{path}", self.config.base);
        let mut request = self.http.post(&url).timeout(Duration::from_secs(5));
        if let Some(token) = &self.config.token {
            request = request.bearer_auth(token);
        }
        let body = serde_json::to_vec(body).map_err(|e| Error::backend(BACKEND, e))?;
        let response = request
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body)
            .send()
            .await
            .map_err(|e| not_connected(&url, &e))?;
        match response.status() {
            s if s.is_success() => Ok(Some(())),
            StatusCode::NOT_FOUND => Ok(None),
            status => Err(refusal(&url, status, response).await),
        }
    }

    async fn get<T: DeserializeOwned>(
        &self,
        path: &str,
        wait: Option<(u64, Duration)>,
    ) -> Result<T> {
        let mut url = format!("{}{path}", self.config.base);
        let mut timeout = Duration::from_secs(5);
        if let Some((index, wait)) = wait {
            url.push_str(&format!("?index={index}&wait={}ms", wait.as_millis()));
            timeout += wait;
        }
        let response = self
            .http
            .get(&url)
            .timeout(timeout)
            .send()
            .await
            .map_err(|e| not_connected(&url, &e))?;
        if !response.status().is_success() {
            return Err(refusal(&url, response.status(), response).await);
        }
        let bytes = response
            .bytes()
            .await
            .map_err(|e| not_connected(&url, &e))?;
        serde_json::from_slice(&bytes)
            .map_err(|e| Error::backend(BACKEND, format!("invalid answer from {url}: {e}")))
    }

    /// Lists a scope once: its revision and instances (unreadable ones skipped).
    async fn list(&self, scope: &str, wait: Option<(u64, Duration)>) -> Result<(u64, Vec<Url>)> {
        let (revision, texts) = match scope.strip_prefix("service:") {
            Some(key) => {
                let path = format!("/v1/services/{}", encode_path_segment(key));
                let r: ServiceResponse = self.get(&path, wait).await?;
                (r.revision, r.instances)
            }
            None => {
                let r: InstancesResponse = self.get("/v1/instances", wait).await?;
                (r.revision, r.instances)
            }
        };
        let urls = texts
            .iter()
            .filter_map(|text| match Url::parse(text) {
                Ok(url) => Some(url),
                Err(error) => {
                    warn!(backend = BACKEND, %error, "skipping unreadable instance");
                    None
                }
            })
            .collect();
        Ok((revision, urls))
    }

    async fn register_once(&self, url: &Url) -> Result<()> {
        let request = RegisterRequest {
            url: url.to_full_string(),
            ttl_ms: Some(self.config.ttl.as_millis() as u64),
        };
        self.post("/v1/register", &request).await?.ok_or_else(|| {
            Error::backend(
                BACKEND,
                format!(
                    "{} has no /v1/register: is it an srpc registry?",
                    self.config.base
                ),
            )
        })
    }

    /// Heartbeats every third of the TTL, forever: a failure is retried with backoff (not
    /// after a full period), and a server that forgot the instance (restarted) gets it again.
    async fn heartbeat(self: Arc<Self>, url: Url) {
        let period = self.config.ttl / 3;
        let request = InstanceRequest {
            url: url.to_full_string(),
        };
        let mut delays = backoff();
        let mut failing = false;
        tokio::time::sleep(period).await;
        loop {
            let outcome = match self.post("/v1/heartbeat", &request).await {
                Ok(Some(())) => Ok(()),
                Ok(None) => {
                    info!(backend = BACKEND, %url, "the registry forgot this instance; registering again");
                    self.register_once(&url).await
                }
                Err(error) => Err(error),
            };
            match outcome {
                Ok(()) => {
                    if failing {
                        info!(backend = BACKEND, %url, "heartbeats go through again");
                    }
                    failing = false;
                    delays = backoff();
                    tokio::time::sleep(period).await;
                }
                Err(error) => {
                    if !failing {
                        warn!(backend = BACKEND, %url, %error, "heartbeat failed; retrying until it goes through");
                    }
                    failing = true;
                    tokio::time::sleep(delays.next().unwrap_or(period).min(period)).await;
                }
            }
        }
    }

    /// Long-polls a scope forever, replacing its catalog scope with every answer. While the
    /// server is unreachable the last state stays, marked not connected.
    async fn watch(self: Arc<Self>, scope: String, mut index: u64) {
        let mut delays = backoff();
        loop {
            match self.list(&scope, Some((index, self.config.wait))).await {
                Ok((revision, urls)) => {
                    if !self.ctx.catalog().is_connected() {
                        info!(backend = BACKEND, %scope, "registry reachable again");
                        self.ctx.set_connected(true);
                    }
                    delays = backoff();
                    index = revision;
                    self.ctx.catalog().replace(&scope, urls);
                }
                Err(error) => {
                    if self.ctx.catalog().is_connected() {
                        warn!(backend = BACKEND, %scope, %error, "registry unreachable; keeping the last known instances");
                        self.ctx.set_connected(false);
                    }
                    debug!(backend = BACKEND, %scope, %error, "watch failed");
                    tokio::time::sleep(delays.next().unwrap_or(Duration::from_secs(5))).await;
                }
            }
        }
    }
}

/// Percent-encodes a service key for one path segment (`/` and `:` included).
fn encode_path_segment(text: &str) -> String {
    dubbo_url::encode(text).replace('+', "%20")
}

fn not_connected(url: &str, error: &reqwest::Error) -> Error {
    Error::NotConnected {
        backend: BACKEND,
        detail: format!("{url}: {error}"),
    }
}

async fn refusal(url: &str, status: StatusCode, response: reqwest::Response) -> Error {
    let text = response.text().await.unwrap_or_default();
    let message = serde_json::from_str::<ErrorResponse>(&text)
        .map(|e| e.error)
        .unwrap_or(text);
    let detail = format!("{url} answered {status}: {message}");
    if status.is_client_error() {
        Error::invalid("request", url, detail)
    } else {
        Error::backend(BACKEND, detail)
    }
}

#[async_trait]
impl Backend for HttpBackend {
    fn name(&self) -> &'static str {
        BACKEND
    }

    async fn register(&self, url: &Url) -> Result<()> {
        let inner = &self.inner;
        inner.register_once(url).await?;
        let task = tokio::spawn(inner.clone().heartbeat(url.clone())).abort_handle();
        if let Some(old) = inner.heartbeats().insert(url.clone(), task) {
            old.abort();
        }
        Ok(())
    }

    async fn unregister(&self, url: &Url) -> Result<()> {
        if let Some(task) = self.inner.heartbeats().remove(url) {
            task.abort();
        }
        let request = InstanceRequest {
            url: url.to_full_string(),
        };
        self.inner
            .post("/v1/deregister", &request)
            .await
            .map(|_| ())
    }

    async fn subscribe(&self, query: &Url) -> Result<()> {
        let inner = &self.inner;
        let scope = scope_of(query);
        let (revision, urls) = inner.list(&scope, None).await?;
        inner.ctx.catalog().replace(&scope, urls);
        let mut watches = inner.watches();
        match watches.get_mut(&scope) {
            Some((_, queries)) => {
                queries.insert(query.clone());
            }
            None => {
                let task =
                    tokio::spawn(inner.clone().watch(scope.clone(), revision)).abort_handle();
                watches.insert(scope, (task, HashSet::from([query.clone()])));
            }
        }
        Ok(())
    }

    async fn unsubscribe(&self, query: &Url) -> Result<()> {
        let mut released = Vec::new();
        self.inner.watches().retain(|scope, (task, queries)| {
            queries.remove(query);
            if queries.is_empty() {
                task.abort();
                released.push(scope.clone());
                false
            } else {
                true
            }
        });
        for scope in released {
            self.inner.ctx.catalog().clear_scope(&scope);
        }
        Ok(())
    }

    async fn lookup(&self, query: &Url) -> Result<Vec<Url>> {
        Ok(self.inner.list(&scope_of(query), None).await?.1)
    }

    async fn close(&self) -> Result<()> {
        for (_, task) in self.inner.heartbeats().drain() {
            task.abort();
        }
        for (_, (task, _)) in self.inner.watches().drain() {
            task.abort();
        }
        Ok(())
    }
}

impl Drop for HttpBackend {
    fn drop(&mut self) {
        for (_, task) in self.inner.heartbeats().drain() {
            task.abort();
        }
        for (_, (task, _)) in self.inner.watches().drain() {
            task.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    #[test]
    fn exact_queries_watch_their_service_and_wildcards_watch_everything() {
        assert_eq!(
            scope_of(&url("consumer://h/a.B?group=g&version=1")),
            "service:g/a.B:1"
        );
        assert_eq!(scope_of(&url("consumer://h/a.B")), "service:a.B");
        assert_eq!(scope_of(&url("consumer://h/a.B?group=*")), "all");
        assert_eq!(scope_of(&url("consumer://h/a.B?group=a,b")), "all");
        assert_eq!(scope_of(&url("consumer://h/a.B?version=*")), "all");
        assert_eq!(scope_of(&url("consumer://h/*")), "all");
    }

    #[test]
    fn config_from_url() {
        let c =
            HttpConfig::from_url(&url("http://127.0.0.1:9999?ttl=3s&wait=10s&token=t")).unwrap();
        assert_eq!(c.base, "http://127.0.0.1:9999");
        assert_eq!(
            (c.ttl, c.wait),
            (Duration::from_secs(3), Duration::from_secs(10))
        );
        assert_eq!(c.token.as_deref(), Some("t"));
        assert!(HttpConfig::from_url(&url("http://127.0.0.1")).is_err());
        assert!(HttpConfig::from_url(&url("http://127.0.0.1:1?ttl=10")).is_err());
        assert_eq!(encode_path_segment("g/a.B:1 x"), "g%2Fa.B%3A1%20x");
    }
}

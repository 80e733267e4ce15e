//! [`HttpBackend`]: registers with heartbeats that never give up, and watches by long-poll.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use reqwest::StatusCode;
use serde::de::DeserializeOwned;
use srpc_registry_kit::{
    Backend, Context, Error, FailbackConfig, Keepalive, RegistryParams, Renew, Renewal, Result,
    TlsConfig, Url, WatchScope, Watches, http_base, require_positive,
};
use tracing::{debug, warn};

use crate::api::{
    ANY_HOLDER, ErrorResponse, HolderRequest, HolderResponse, InstanceRequest, InstancesResponse,
    MAX_WAIT, MIN_TTL, RegisterRequest, RegisterResponse, ServiceResponse,
};

const BACKEND: &str = crate::SCHEME;

/// Settings of the client backend, from `http://host:port[?ttl=30s&wait=30s&token=…]`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct HttpConfig {
    /// `http://host:port` or `https://host:port`.
    pub base: String,
    /// TTL asked for each registration (default 30 s); heartbeats go every third of it.
    pub ttl: Duration,
    /// Long-poll wait (default 30 s).
    pub wait: Duration,
    /// Bearer token, sent with every request (a registry that protects reads accepts its
    /// write token for them).
    pub token: Option<String>,
    /// TLS to the server (`https://`, or `tls`, `cacert`, `cert`, `key`, `tls-server-name`,
    /// `insecure-skip-tls-verify`).
    pub tls: TlsConfig,
    /// Retry and `check` settings.
    pub failback: FailbackConfig,
}

/// The URL parameters an `http://` registry URL reads, besides the kit's
/// [`COMMON_PARAMS`](srpc_registry_kit::COMMON_PARAMS).
pub const PARAMS: &[&str] = &[
    "ttl",
    "wait",
    "token",
    "tls",
    "cacert",
    "cert",
    "key",
    "tls-server-name",
    "insecure-skip-tls-verify",
];

impl Default for HttpConfig {
    /// A server on this machine (`http://127.0.0.1:9999`), a 30 s TTL and long-poll, no token.
    /// Unlike [`HttpConfig::from_url`], reads no environment variable.
    fn default() -> HttpConfig {
        HttpConfig {
            base: "http://127.0.0.1:9999".to_owned(),
            ttl: Duration::from_secs(30),
            wait: Duration::from_secs(30),
            token: None,
            tls: TlsConfig::default(),
            failback: FailbackConfig::default(),
        }
    }
}

/// Builds an [`HttpConfig`] without a URL:
/// `HttpConfig::builder().server("10.0.0.5:9999").ttl(…).build()?`.
#[derive(Debug, Clone, Default)]
pub struct HttpConfigBuilder {
    config: HttpConfig,
}

impl HttpConfigBuilder {
    /// The server, `host:port`, `http://host:port` or `https://host:port` (TLS on).
    pub fn server(mut self, address: &str) -> Self {
        self.config.base = http_base(address);
        self
    }

    /// The TTL asked for each registration (at least [`MIN_TTL`]); heartbeats go every third
    /// of what the server grants.
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.config.ttl = ttl;
        self
    }

    /// The long-poll wait (cut to [`MAX_WAIT`]).
    pub fn wait(mut self, wait: Duration) -> Self {
        self.config.wait = wait;
        self
    }

    /// The bearer token for writes.
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.config.token = Some(token.into()).filter(|t| !t.is_empty());
        self
    }

    /// TLS settings (CA, client certificate, server name); with TLS on the server is
    /// reached over `https://`.
    pub fn tls(mut self, tls: TlsConfig) -> Self {
        self.config.tls = tls;
        self
    }

    /// Retry, `check` and cache file settings.
    pub fn failback(mut self, failback: FailbackConfig) -> Self {
        self.config.failback = failback;
        self
    }

    /// The config, once it can work. An `https://` server turns TLS on, and with TLS on
    /// the server is `https://`.
    pub fn build(self) -> Result<HttpConfig> {
        let mut config = self.config;
        let invalid = |value: String, reason: String| Error::invalid("http config", value, reason);
        if config.base.starts_with("https://") {
            config.tls.enabled = true;
        } else if !config.base.starts_with("http://") {
            return Err(invalid(
                config.base,
                "the server is http:// or https://".to_owned(),
            ));
        }
        if config.tls.enabled {
            if let Some(rest) = config.base.strip_prefix("http://") {
                config.base = format!("https://{rest}");
            }
        }
        if config.ttl < MIN_TTL {
            return Err(invalid(
                format!("ttl {:?}", config.ttl),
                format!("ttl must be at least {MIN_TTL:?}"),
            ));
        }
        require_positive("http config", &[("wait", config.wait)])?;
        config.wait = config.wait.min(MAX_WAIT);
        config.failback.validate()?;
        Ok(config)
    }
}

impl HttpConfig {
    /// A builder starting from the defaults ([`HttpConfig::default`]).
    pub fn builder() -> HttpConfigBuilder {
        HttpConfigBuilder::default()
    }

    /// Opens a client with this config (no request is made until it is used).
    pub async fn connect(self) -> Result<crate::HttpRegistry> {
        crate::open(self)
    }

    /// Reads a registry URL (its scheme was checked by whoever chose this backend).
    pub fn from_url(url: &Url) -> Result<HttpConfig> {
        let params = RegistryParams::new(url);
        if url.host().is_empty() || url.port() == 0 {
            return Err(params.invalid("name the server: http://host:port"));
        }
        let mut tls = TlsConfig::from_params(&params)?;
        if url.protocol() == "https" {
            tls.enabled = true;
        }
        let ttl = params.positive_duration("ttl", Duration::from_secs(30))?;
        if ttl < MIN_TTL {
            return Err(params.invalid(format!("ttl must be at least {MIN_TTL:?}")));
        }
        let mut builder = HttpConfig::builder()
            .server(&url.address())
            .ttl(ttl)
            .wait(params.positive_duration("wait", Duration::from_secs(30))?)
            .tls(tls)
            .failback(params.failback()?);
        // From the URL, else from the environment, so that a token need not stand in a
        // command line that `ps` shows.
        if let Some(token) = url
            .param("token")
            .filter(|t| !t.is_empty())
            .map(str::to_owned)
            .or_else(|| std::env::var(TOKEN_ENV).ok().filter(|t| !t.is_empty()))
        {
            builder = builder.token(token);
        }
        builder.build()
    }
}

/// Where the bearer token comes from when the registry URL has no `token=`.
pub const TOKEN_ENV: &str = "SRPC_REGISTRY_TOKEN";

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
    /// What this handle registered, and the one keepalive that renews it all.
    held: Mutex<Held>,
    /// This handle's holder id: its registrations are its own leases, whoever else
    /// registers the same URL.
    holder: String,
    /// One long-poll per scope (a service key, or `all`).
    watches: Watches,
}

/// A handle's registrations and their heartbeats: one holder heartbeat renews every lease
/// the handle has, however many services it registered (one request per period, not one
/// per registration).
#[derive(Debug, Default)]
struct Held {
    urls: HashSet<Url>,
    /// Running while there is a registration, with its period.
    keepalive: Option<(Duration, Keepalive)>,
}

/// The heartbeats of one handle: `POST /v1/holders/heartbeat`, or one `POST /v1/heartbeat`
/// per registration against a server that predates holder heartbeats.
struct HolderHeartbeat {
    inner: Arc<Inner>,
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

/// The longest wait before a failed long-poll is tried again, whatever `retry.max.period`
/// says: consumers should see a restarted registry soon.
const WATCH_RETRY_CAP: Duration = Duration::from_secs(5);

impl HttpBackend {
    /// A backend for `config`; no request is made until it is used.
    pub fn new(config: HttpConfig, ctx: Context) -> Result<HttpBackend> {
        let mut builder = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(2))
            .no_proxy();
        if config.tls.enabled {
            // The files are read here, so a missing or broken one fails `connect`, named.
            builder = builder.use_preconfigured_tls((*config.tls.client_config()?).clone());
        }
        let http = builder.build().map_err(|e| Error::backend(BACKEND, e))?;
        let watches = Watches::with_retry(BACKEND, &ctx, ctx.retry().capped(WATCH_RETRY_CAP));
        Ok(HttpBackend {
            inner: Arc::new(Inner {
                config,
                http,
                ctx,
                held: Mutex::default(),
                holder: format!("{:016x}", fastrand::u64(..)),
                watches,
            }),
        })
    }
}

impl Inner {
    fn held(&self) -> MutexGuard<'_, Held> {
        self.held.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn held_urls(&self) -> Vec<Url> {
        self.held().urls.iter().cloned().collect()
    }

    /// POSTs a JSON body; `Ok(None)` for 404, else the answer's body.
    async fn post(&self, path: &str, body: &impl serde::Serialize) -> Result<Option<Vec<u8>>> {
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
            .map_err(|e| not_connected(&url, e))?;
        match response.status() {
            s if s.is_success() => {
                let bytes = response.bytes().await.map_err(|e| not_connected(&url, e))?;
                Ok(Some(bytes.to_vec()))
            }
            StatusCode::NOT_FOUND => Ok(None),
            status => Err(refusal(&url, status, response).await),
        }
    }

    /// The TTL the server granted, from a register or heartbeat answer; the asked one when
    /// the answer does not say (an older server).
    /// A grant below [`MIN_TTL`] is raised to it, with a warning: a server (broken or hostile)
    /// granting 3 ms must not make this client heartbeat every millisecond.
    fn granted(&self, body: &[u8]) -> Duration {
        let granted = serde_json::from_slice::<RegisterResponse>(body)
            .map(|r| Duration::from_millis(r.ttl_ms))
            .ok()
            .filter(|ttl| !ttl.is_zero())
            .unwrap_or(self.config.ttl);
        at_least_the_floor(granted, &self.config.base)
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
        let mut request = self.http.get(&url).timeout(timeout);
        // The same token for reads: a registry that protects reads accepts its write token.
        if let Some(token) = &self.config.token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.map_err(|e| not_connected(&url, e))?;
        if !response.status().is_success() {
            return Err(refusal(&url, response.status(), response).await);
        }
        let bytes = response.bytes().await.map_err(|e| not_connected(&url, e))?;
        serde_json::from_slice(&bytes).map_err(|source| {
            Error::backend(
                BACKEND,
                InvalidAnswer {
                    url: url.clone(),
                    source,
                },
            )
        })
    }

    /// Lists a scope once: its revision, instances (unreadable ones skipped), and whether
    /// the server is still warming up after a restart (the listing may lack some).
    async fn list(
        &self,
        scope: &str,
        wait: Option<(u64, Duration)>,
    ) -> Result<(u64, Vec<Url>, bool)> {
        let (revision, texts, warming) = match scope.strip_prefix("service:") {
            Some(key) => {
                let path = format!("/v1/services/{}", encode_path_segment(key));
                let r: ServiceResponse = self.get(&path, wait).await?;
                (r.revision, r.instances, r.warming)
            }
            None => {
                let r: InstancesResponse = self.get("/v1/instances", wait).await?;
                (r.revision, r.instances, r.warming)
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
        Ok((revision, urls, warming))
    }

    /// Registers `url` under this handle's holder; returns the TTL granted.
    async fn register_once(&self, url: &Url) -> Result<Duration> {
        let request = RegisterRequest {
            url: url.to_full_string(),
            ttl_ms: Some(self.config.ttl.as_millis() as u64),
            holder: Some(self.holder.clone()),
        };
        let body = self.post("/v1/register", &request).await?.ok_or_else(|| {
            Error::backend(
                BACKEND,
                format!(
                    "{} has no /v1/register: is it an srpc registry?",
                    self.config.base
                ),
            )
        })?;
        let granted = self.granted(&body);
        if granted < self.config.ttl {
            debug!(backend = BACKEND, %url, asked = ?self.config.ttl, ?granted, "the server grants a shorter TTL");
        }
        Ok(granted)
    }

    /// One holder heartbeat: what the server renewed, or `None` from a server without the
    /// route (it answered 404).
    async fn holder_heartbeat(&self) -> Result<Option<HolderResponse>> {
        let request = HolderRequest {
            holder: self.holder.clone(),
        };
        let Some(body) = self.post("/v1/holders/heartbeat", &request).await? else {
            return Ok(None);
        };
        serde_json::from_slice(&body).map(Some).map_err(|source| {
            Error::backend(
                BACKEND,
                InvalidAnswer {
                    url: format!("{}/v1/holders/heartbeat", self.config.base),
                    source,
                },
            )
        })
    }

    fn instance(&self, url: &Url) -> InstanceRequest {
        InstanceRequest {
            url: url.to_full_string(),
            holder: Some(self.holder.clone()),
        }
    }

    /// Long-polls a scope until it fails, replacing the catalog scope with every answer. The
    /// index to wait from is shared with the next run, so a restarted watch asks from where
    /// it left off (an index the server no longer knows answers at once).
    async fn watch(self: Arc<Self>, scope: WatchScope, index: Arc<AtomicU64>) -> Result<()> {
        loop {
            let since = index.load(Ordering::Acquire);
            let (revision, urls, warming) = self
                .list(scope.name(), Some((since, self.config.wait)))
                .await?;
            index.store(revision, Ordering::Release);
            if warming {
                // Restarted without its state: what it lacks may only be late. Keep it all.
                debug!(
                    backend = BACKEND,
                    scope = scope.name(),
                    "the registry is warming up; keeping every instance known"
                );
                scope.add_unconfirmed(urls);
            } else {
                scope.replace(urls);
            }
        }
    }
}

#[async_trait]
impl Renew for HolderHeartbeat {
    async fn renew(&self) -> Result<Renewal> {
        let inner = &self.inner;
        let held = inner.held_urls();
        let Some(answer) = inner.holder_heartbeat().await? else {
            // A server without holder heartbeats: one heartbeat per registration.
            for url in &held {
                if inner
                    .post("/v1/heartbeat", &inner.instance(url))
                    .await?
                    .is_none()
                {
                    return Ok(Renewal::Lost);
                }
            }
            return Ok(Renewal::Renewed);
        };
        if answer.renewed >= held.len() as u64 {
            Ok(Renewal::Renewed)
        } else {
            warn!(
                backend = BACKEND,
                server = %inner.config.base,
                renewed = answer.renewed,
                registered = held.len(),
                "the server lost registrations of this handle (restarted, or they expired); registering them again"
            );
            Ok(Renewal::Lost)
        }
    }

    async fn restore(&self) -> Result<()> {
        let inner = &self.inner;
        for url in inner.held_urls() {
            inner.register_once(&url).await?;
            // Unregistered meanwhile: take back what was just written again, or it would
            // live on under this holder's heartbeats.
            if !inner.held().urls.contains(&url) {
                inner.post("/v1/deregister", &inner.instance(&url)).await?;
            }
        }
        Ok(())
    }
}

/// Percent-encodes a service key for one path segment (`/` and `:` included).
fn encode_path_segment(text: &str) -> String {
    dubbo_url::encode(text).replace('+', "%20")
}

fn not_connected(url: &str, error: reqwest::Error) -> Error {
    // What a TLS failure needs changed, when it is one.
    let hint = srpc_registry_kit::tls_hint(&error);
    Error::not_connected_by(BACKEND, format!("{url}{hint}"), error)
}

/// A server answer that is not the JSON the API promises, with the parser's error.
#[derive(Debug, thiserror::Error)]
#[error("invalid answer from {url}: {source}")]
struct InvalidAnswer {
    url: String,
    source: serde_json::Error,
}

/// `granted`, or [`MIN_TTL`] (with a warning naming `server`) when it is shorter.
fn at_least_the_floor(granted: Duration, server: &str) -> Duration {
    if granted < MIN_TTL {
        warn!(
            backend = BACKEND,
            %server,
            ?granted,
            floor = ?MIN_TTL,
            "the server granted a TTL below the floor; heartbeating as if it had granted the floor"
        );
        return MIN_TTL;
    }
    granted
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
    const NAME: &'static str = BACKEND;

    async fn register(&self, url: &Url) -> Result<()> {
        let inner = &self.inner;
        let granted = inner.register_once(url).await?;
        // A third of what the server granted, which may be less than what was asked.
        let period = Keepalive::period_for(granted);
        let mut held = inner.held();
        held.urls.replace(url.clone());
        // One keepalive for the handle, at the shortest period any grant asks for.
        if held.keepalive.as_ref().is_none_or(|(p, _)| period < *p) {
            let heartbeat = HolderHeartbeat {
                inner: inner.clone(),
            };
            let what = format!("the registrations of holder {}", inner.holder);
            let keepalive = Keepalive::start(BACKEND, what, &inner.ctx, period, heartbeat)?;
            held.keepalive = Some((period, keepalive));
        }
        Ok(())
    }

    async fn unregister(&self, url: &Url) -> Result<()> {
        let ours = {
            let mut held = self.inner.held();
            let ours = held.urls.remove(url);
            if held.urls.is_empty() {
                held.keepalive = None;
            }
            ours
        };
        let mut request = self.inner.instance(url);
        if !ours {
            // Not registered through this handle: take it back for everyone (an operator
            // removing what a crashed provider left). A live holder registers it again on
            // its next heartbeat.
            request.holder = Some(ANY_HOLDER.to_owned());
        }
        self.inner
            .post("/v1/deregister", &request)
            .await
            .map(|_| ())
    }

    /// One holder heartbeat (a renewal too): when the server renewed fewer leases than this
    /// handle holds, some were deleted (or lost), and every registration is written again
    /// (a registration the server has is only refreshed).
    async fn missing(&self, registered: &[Url]) -> Result<Vec<Url>> {
        let Some(answer) = self.inner.holder_heartbeat().await? else {
            return Ok(Vec::new()); // A server without holder heartbeats: its keepalive checks.
        };
        if answer.renewed >= registered.len() as u64 {
            Ok(Vec::new())
        } else {
            Ok(registered.to_vec())
        }
    }

    async fn subscribe(&self, query: &Url) -> Result<()> {
        let inner = &self.inner;
        let scope = scope_of(query);
        let (revision, urls, warming) = inner.list(&scope, None).await?;
        let catalog = inner.ctx.catalog();
        if warming {
            // Not authoritative yet: what is known stays, and the subscription says so.
            catalog.set_scope_connected(&scope, false);
            catalog.update(&scope, urls, Vec::new());
        } else {
            catalog.replace(&scope, urls);
        }
        let index = Arc::new(AtomicU64::new(revision));
        let watcher = inner.clone();
        inner.watches.watch(&scope, query, move |scope| {
            watcher.clone().watch(scope, index.clone())
        })?;
        Ok(())
    }

    async fn unsubscribe(&self, query: &Url) -> Result<()> {
        self.inner.watches.release(query);
        Ok(())
    }

    async fn lookup(&self, query: &Url) -> Result<Vec<Url>> {
        Ok(self.inner.list(&scope_of(query), None).await?.1)
    }

    async fn close(&self) -> Result<()> {
        // The heartbeat and the long-polls were stopped with the handle's tasks.
        *self.inner.held() = Held::default();
        Ok(())
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

    #[tokio::test]
    async fn connection_errors_keep_the_reqwest_error_as_their_source() {
        use srpc_registry_kit::Registry;
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = closed.local_addr().unwrap();
        drop(closed);
        let registry = crate::connect(&url(&format!("http://{addr}")))
            .await
            .unwrap();
        let err = registry
            .register(&url("dubbo://127.0.0.1:1/a.B"))
            .await
            .unwrap_err();
        assert!(matches!(err, Error::NotConnected { .. }), "{err}");
        let source = std::error::Error::source(&err).expect("a typed source");
        assert!(
            source.downcast_ref::<reqwest::Error>().is_some(),
            "{source:?}"
        );
    }

    #[test]
    fn a_granted_ttl_below_the_floor_is_raised_to_it() {
        let server = "http://127.0.0.1:9";
        assert_eq!(
            at_least_the_floor(Duration::from_millis(3), server),
            MIN_TTL
        );
        assert_eq!(
            at_least_the_floor(Duration::from_secs(7), server),
            Duration::from_secs(7)
        );
    }
}

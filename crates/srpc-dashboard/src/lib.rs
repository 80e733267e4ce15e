//! A web dashboard for any srpc registry: every service with its providers and consumers,
//! searchable and filtered, live as the registry changes, and (when allowed) the operator's
//! actions Dubbo Admin offers: disable, enable and weigh a provider with override rules, and
//! unregister one that no longer answers.
//!
//! One page of HTML, CSS and JavaScript embedded in the binary (no CDN, nothing fetched at
//! run time) over a small JSON API, with a server-sent event stream that says when the
//! registry changed. The page builds its tables with `textContent` only and is served under a
//! content security policy that allows no inline script: registry data is untrusted, and a
//! parameter holding `<script>` renders as text.
//!
//! ```no_run
//! # async fn demo(registry: std::sync::Arc<dyn srpc_registry::Registry>) -> Result<(), Box<dyn std::error::Error>> {
//! use srpc_dashboard::{Dashboard, Options};
//!
//! let dashboard = Dashboard::start(registry, Options::new("zookeeper://127.0.0.1:2181")).await?;
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! axum::serve(listener, dashboard.router()).await?;
//! # Ok(()) }
//! ```

mod api;
mod metrics;
mod model;
mod writes;

use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use dubbo_url::Url;
use srpc_registry::{Registry, Subscription};
use tokio::sync::Semaphore;
use tokio::task::AbortHandle;

pub use crate::model::mask_secrets;

/// At most this many pages follow the registry's changes at once (event streams); more get
/// `503` and poll instead.
pub const MAX_STREAMS: usize = 64;

/// How a dashboard presents its registry and what it allows.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Options {
    /// The registry URL as shown: passwords and tokens are masked when it is set with
    /// [`Options::new`].
    pub registry: String,
    /// The bearer token write actions need; `None`: no write action (the default).
    pub write_token: Option<String>,
    /// Event streams open at once, at most.
    pub max_streams: usize,
    /// The `/metrics` of an srpc HTTP registry (`http://…/metrics`), shown on the registry
    /// page: instances, expirations, heartbeats per second, memory.
    pub metrics: Option<String>,
}

impl Options {
    /// Read-only, showing `registry` with its secrets masked.
    pub fn new(registry: &str) -> Options {
        Options {
            registry: mask_secrets(registry),
            write_token: None,
            max_streams: MAX_STREAMS,
            metrics: None,
        }
    }

    /// Shows the figures of an srpc HTTP registry's `/metrics` at `url` (plain HTTP).
    #[must_use]
    pub fn with_metrics(mut self, url: impl Into<String>) -> Options {
        self.metrics = Some(url.into());
        self
    }

    /// Allows the write actions to requests that carry `Authorization: Bearer <token>`. An
    /// empty token allows nothing.
    #[must_use]
    pub fn with_write_token(mut self, token: impl Into<String>) -> Options {
        let token = token.into();
        self.write_token = (!token.is_empty()).then_some(token);
        self
    }
}

/// A dashboard following one registry; [`Dashboard::router`] serves it.
#[derive(Clone)]
pub struct Dashboard {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Dashboard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dashboard")
            .field("registry", &self.inner.options.registry)
            .field("writes", &self.inner.options.write_token.is_some())
            .finish_non_exhaustive()
    }
}

pub(crate) struct Inner {
    pub(crate) registry: Arc<dyn Registry>,
    /// Everything: every interface, group and version, providers, consumers and rules.
    pub(crate) sub: Subscription,
    pub(crate) options: Options,
    /// When a snapshot last changed what the registry holds.
    pub(crate) last_change: Mutex<Option<SystemTime>>,
    pub(crate) streams: Arc<Semaphore>,
    /// Reads `/metrics`, when there is one.
    pub(crate) metrics: Option<metrics::Metrics>,
    follower: AbortHandle,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.follower.abort();
    }
}

/// The query for everything a registry holds that the dashboard shows.
pub(crate) fn everything() -> srpc_registry::Result<Url> {
    Ok(Url::builder("consumer")
        .host("127.0.0.1")
        .path("*")
        .param("interface", "*")
        .param("category", "providers,consumers,configurators,routers")
        .param("group", "*")
        .param("version", "*")
        .param("classifier", "*")
        .param("enabled", "*")
        // Up while the registry is down: the page says so, and the entries come when it is
        // back.
        .param("check", "false")
        .build()?)
}

impl Dashboard {
    /// Subscribes to everything `registry` holds (read-only: nothing is written until an
    /// operator acts) and keeps following it.
    pub async fn start(
        registry: Arc<dyn Registry>,
        options: Options,
    ) -> srpc_registry::Result<Dashboard> {
        let sub = registry.subscribe(&everything()?).await?;
        let last_change = Mutex::new(None);
        let mut follow = sub.clone();
        let streams = Arc::new(Semaphore::new(options.max_streams));
        let inner = Arc::new_cyclic(|weak: &std::sync::Weak<Inner>| {
            let weak = weak.clone();
            let follower = tokio::spawn(async move {
                let mut last = follow.snapshot();
                while let Ok(snapshot) = follow.changed().await {
                    let Some(inner) = weak.upgrade() else { break };
                    if !same_content(&last, &snapshot) {
                        *inner.lock_last_change() = Some(SystemTime::now());
                    }
                    last = snapshot;
                }
            })
            .abort_handle();
            Inner {
                registry,
                sub,
                metrics: options.metrics.clone().and_then(metrics::Metrics::new),
                options,
                last_change,
                streams,
                follower,
            }
        });
        Ok(Dashboard { inner })
    }

    /// The web application: the page at `/`, its API under `/api/`.
    pub fn router(&self) -> Router {
        self.routes("").fallback(api::not_found)
    }

    /// The web application under `prefix` (`/ui`): the page at `prefix/`, where `prefix`
    /// itself redirects, for merging into another application's router (it sets no
    /// fallback). The page asks for everything relative to where it was loaded.
    pub fn nested(&self, prefix: &str) -> Router {
        let prefix = prefix.trim_end_matches('/');
        let slash = format!("{prefix}/");
        let router = self.routes(prefix);
        if prefix.is_empty() {
            return router;
        }
        router.route(
            prefix,
            get(move || {
                let slash = slash.clone();
                async move { Redirect::permanent(&slash) }
            }),
        )
    }

    fn routes(&self, prefix: &str) -> Router {
        let at = |path: &str| format!("{prefix}{path}");
        Router::new()
            .route(&at("/"), get(index))
            .route(&at("/index.html"), get(index))
            .route(&at("/app.js"), get(script))
            .route(&at("/app.css"), get(style))
            .route(&at("/api/registry"), get(api::registry))
            .route(&at("/api/services"), get(api::services))
            .route(&at("/api/service"), get(api::service))
            .route(&at("/api/events"), get(api::events))
            .route(&at("/api/override"), post(writes::override_rule))
            .route(&at("/api/unregister"), post(writes::unregister))
            .with_state(self.inner.clone())
    }
}

impl Inner {
    pub(crate) fn lock_last_change(&self) -> std::sync::MutexGuard<'_, Option<SystemTime>> {
        self.last_change.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Whether two snapshots hold the same URLs (a change of `connected` alone is not a change
/// of content).
fn same_content(a: &srpc_registry::Snapshot, b: &srpc_registry::Snapshot) -> bool {
    a.len() == b.len() && a.urls().all(|url| b.contains(url))
}

const INDEX: &str = include_str!("../assets/index.html");
const SCRIPT: &str = include_str!("../assets/app.js");
const STYLE: &str = include_str!("../assets/app.css");

/// No inline script or style, nothing from elsewhere, not framed.
const POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                      connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

fn asset(body: &'static str, content_type: &'static str) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    secure(headers);
    response
}

/// The headers every answer carries.
pub(crate) fn secure(headers: &mut axum::http::HeaderMap) {
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
}

async fn index() -> Response {
    asset(INDEX, "text/html; charset=utf-8")
}

async fn script() -> Response {
    asset(SCRIPT, "text/javascript; charset=utf-8")
}

async fn style() -> Response {
    asset(STYLE, "text/css; charset=utf-8")
}

//! [`HttpRegistryServer`]: the srpc registry server (axum). Instances are Dubbo URLs under
//! their service key, kept alive by heartbeats; watchers long-poll on revisions.
//!
//! `book` holds the state (services, instances, leases by holder), `sweep` expires what
//! stopped heartbeating, `write` and `read` are the handlers, `reply` turns refusals into
//! JSON errors, `metrics` the Prometheus page. This file wires them into a router.

mod bare_errors;
mod book;
mod config;
mod metrics;
mod read;
mod reply;
mod serve;
mod state;
mod sweep;
mod write;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::middleware;
use axum::routing::{get, post};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tower_http::limit::RequestBodyLimitLayer;
use tracing::info;

pub use self::config::{Limits, ServerConfig};
pub use self::serve::raise_open_files_limit;
pub use srpc_tls::{RELOAD_CHECK, ServerTls};

use self::book::Shared;
use self::metrics::metrics;
use self::read::{compat_get, get_service, list_instances, list_services};
use self::reply::{json_errors, no_route};
use self::sweep::sweep;
use self::write::{compat_post, deregister, heartbeat, holder_heartbeat, register};
use crate::api::MAX_BODY;

/// How often expired instances are swept.
const SWEEP: Duration = Duration::from_millis(200);

/// A running registry server. Dropping the handle leaves it running (until its runtime
/// ends); [`HttpRegistryServer::shutdown`] stops it gracefully.
pub struct HttpRegistryServer {
    addr: SocketAddr,
    stop: watch::Sender<bool>,
    serve: JoinHandle<std::io::Result<()>>,
    state: Arc<Shared>,
    /// The certificate served over HTTPS, when it is.
    tls: Option<Arc<srpc_tls::ReloadingCert>>,
}

impl std::fmt::Debug for HttpRegistryServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpRegistryServer")
            .field("addr", &self.addr)
            .field("state_file", &self.state.config.state_file)
            .finish_non_exhaustive()
    }
}

impl HttpRegistryServer {
    /// Binds `addr` (`"127.0.0.1:9999"`, a `SocketAddr`, or `(ip, port)`: what
    /// `srpc_core::Server::bind` takes too), restores the state file when there is one, and
    /// starts serving in the background.
    pub async fn bind(
        addr: impl tokio::net::ToSocketAddrs,
        config: ServerConfig,
    ) -> std::io::Result<HttpRegistryServer> {
        HttpRegistryServer::bind_with(addr, config, Router::new()).await
    }

    /// [`HttpRegistryServer::bind`], serving the routes of `extra` too (the CLI mounts the
    /// dashboard at `/ui` this way). They get the server's limits and TLS, not its tokens:
    /// `extra` guards its own.
    pub async fn bind_with(
        addr: impl tokio::net::ToSocketAddrs,
        config: ServerConfig,
        extra: Router,
    ) -> std::io::Result<HttpRegistryServer> {
        config
            .validate()
            .map_err(|reason| std::io::Error::new(std::io::ErrorKind::InvalidInput, reason))?;
        // The certificate is read before anything binds: a bad file stops the start, named.
        let tls = config
            .tls
            .as_ref()
            .map(|tls| srpc_tls::server_config(tls, true))
            .transpose()?;
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let state = start(config)?;
        let stop = state.stop.clone();
        let limits = state.config.limits.clone();
        let app = router(state.clone()).merge(extra);
        let (acceptor, reloading) = match tls {
            Some((config, reloading)) => {
                let watching = tokio::spawn(reloading.clone().watch());
                let mut stopping = stop.subscribe();
                tokio::spawn(async move {
                    let _ = stopping.wait_for(|stopping| *stopping).await;
                    watching.abort();
                });
                (
                    Some(tokio_rustls::TlsAcceptor::from(config)),
                    Some(reloading),
                )
            }
            None => (None, None),
        };
        let scheme = if acceptor.is_some() { "https" } else { "http" };
        let serve = tokio::spawn(serve::serve(
            listener,
            app,
            limits,
            stop.subscribe(),
            acceptor,
        ));
        info!(backend = "http", %addr, scheme, "registry server listening");
        Ok(HttpRegistryServer {
            addr,
            stop,
            serve,
            state,
            tls: reloading,
        })
    }

    /// Reads the TLS certificate and key again (what SIGHUP does to `srpc registry serve`);
    /// they are also read again when their files change. New connections get the new
    /// certificate, open ones keep theirs. On an error the certificate in use stays. Without
    /// TLS, nothing to do.
    pub fn reload_tls(&self) -> std::io::Result<()> {
        match &self.tls {
            Some(reloading) => reloading.reload(),
            None => Ok(()),
        }
    }

    /// The address it listens on (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting, lets requests in flight finish (long-polls answer at once; at most
    /// `shutdown_grace`), writes the state file a last time, and waits for the server to end.
    pub async fn shutdown(self) -> std::io::Result<()> {
        self.stop.send_replace(true);
        let served = self
            .serve
            .await
            .unwrap_or_else(|e| Err(std::io::Error::other(e)));
        let saved = match &self.state.config.state_file {
            Some(path) => state::save(&self.state, path).await,
            None => Ok(()),
        };
        // The sweep and the state file's writer end with the state.
        drop(self.state);
        served.and(saved)
    }
}

/// The server's state, restored from the state file when there is one, with its sweep and
/// state writer started (both end when the state is dropped). A start that restored nothing
/// warms up (see [`ServerConfig::warm_up`]).
fn start(config: ServerConfig) -> std::io::Result<Arc<Shared>> {
    let state = Arc::new(Shared::new(config));
    let restored = match &state.config.state_file {
        Some(path) => Some(state::restore(&state, path)?),
        None => None,
    };
    let warm_up = state.config.warm_up();
    if restored.is_none() && !warm_up.is_zero() {
        *state.warm_until.lock().unwrap_or_else(|p| p.into_inner()) =
            Some(tokio::time::Instant::now() + warm_up);
        info!(
            backend = "http",
            ?warm_up,
            "no state restored: listings say warming until clients registered before a restart have heartbeated"
        );
    }
    tokio::spawn(sweep(Arc::downgrade(&state)));
    if let Some(path) = &state.config.state_file {
        tokio::spawn(state::writer(
            Arc::downgrade(&state),
            path.clone(),
            state.dirty.clone(),
        ));
    }
    Ok(state)
}

/// Builds the axum router over fresh state (for embedding in another server). Its expiry
/// sweep (and state file writer) run on the current tokio runtime for as long as the router
/// (or a clone of it) exists, and stop when the last one is dropped. The config is checked
/// as [`HttpRegistryServer::bind`] checks it; the connection limits (`connections`,
/// `header_timeout`, `shutdown_grace`) are then the embedding server's to keep.
pub fn app(config: ServerConfig) -> std::io::Result<Router> {
    config
        .validate()
        .map_err(|reason| std::io::Error::new(std::io::ErrorKind::InvalidInput, reason))?;
    Ok(router(start(config)?))
}

fn router(state: Arc<Shared>) -> Router {
    Router::new()
        .route("/srpc/registry", get(compat_get).post(compat_post))
        .route("/v1/register", post(register))
        .route("/v1/heartbeat", post(heartbeat))
        .route("/v1/holders/heartbeat", post(holder_heartbeat))
        .route("/v1/deregister", post(deregister))
        .route("/v1/services", get(list_services))
        .route("/v1/services/{key}", get(get_service))
        .route("/v1/instances", get(list_instances))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/metrics", get(metrics))
        .fallback(no_route)
        // One limit for every route, enforced before any handler runs, whether or not the
        // handler reads the body; axum's own per-extractor limit is replaced by it.
        .layer(DefaultBodyLimit::disable())
        .layer(RequestBodyLimitLayer::new(MAX_BODY))
        // Outermost: every error leaves as `{"error": "…"}`, including those made by axum
        // and tower-http (405, 413, rejected query strings).
        .layer(middleware::from_fn(json_errors))
        .with_state(state)
}

/// See `crate::fuzzing::query_and_instance`.
#[cfg(fuzzing)]
pub(crate) fn fuzz_query_and_instance(text: &str) {
    let uri = format!("/v1/watch?{text}");
    if let Ok(uri) = uri.parse::<axum::http::Uri>() {
        if let Ok(axum::extract::Query(params)) =
            axum::extract::Query::<read::WatchParams>::try_from_uri(&uri)
        {
            let _ = params.wait();
        }
    }
    let _ = reply::parse_instance(text);
}

//! `srpc dashboard`: the web dashboard (crate `srpc-dashboard`) over any registry.

use std::io::{self, Write};
use std::net::SocketAddr;

use srpc_dashboard::{Dashboard, Options};

use crate::Failure;
use crate::registry_cmds::{connect, failure_of, registry_or_env};
use crate::shutdown::Shutdown;

/// The environment variable that gives the write token instead of a new random one.
pub(crate) const TOKEN_ENV: &str = "SRPC_DASHBOARD_TOKEN";

/// The write token: `SRPC_DASHBOARD_TOKEN` when set, else 128 random bits in hex.
pub(crate) fn write_token() -> Result<String, Failure> {
    if let Some(token) = std::env::var(TOKEN_ENV)
        .ok()
        .filter(|t| !t.trim().is_empty())
    {
        return Ok(token.trim().to_owned());
    }
    let mut bytes = [0u8; 16];
    getrandom::getrandom(&mut bytes).map_err(|e| {
        Failure::Registry(format!(
            "cannot make a write token (no system randomness: {e}); set {TOKEN_ENV}"
        ))
    })?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// The `/metrics` of an srpc HTTP registry over plain HTTP (`http://host:port?…`).
fn metrics_of(registry: &str) -> Option<String> {
    let url: srpc::url::Url = registry.parse().ok()?;
    if url.protocol() != "http" || url.param("tls") == Some("true") {
        return None;
    }
    let port = if url.port() == 0 { 80 } else { url.port() };
    let host = url.host();
    let host = if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]")
    } else {
        host.to_owned()
    };
    Some(format!("http://{host}:{port}/metrics"))
}

/// Serves the dashboard of `registry` on `addr` until SIGINT or SIGTERM.
pub(crate) async fn dashboard(
    registry: Option<String>,
    addr: SocketAddr,
    write: bool,
) -> Result<(), Failure> {
    let shutdown = Shutdown::listen();
    let registry_url = registry_or_env(registry)?;
    let registry = connect(&registry_url).await?;
    let mut options = Options::new(&registry_url);
    if let Some(metrics) = metrics_of(&registry_url) {
        options = options.with_metrics(metrics);
    }
    let token = if write { Some(write_token()?) } else { None };
    if let Some(token) = &token {
        options = options.with_write_token(token.clone());
    }
    let dashboard = Dashboard::start(registry.clone(), options)
        .await
        .map_err(failure_of(&registry_url))?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| Failure::Registry(format!("cannot listen on {addr}: {e}")))?;
    let bound = listener
        .local_addr()
        .map_err(|e| Failure::Registry(format!("cannot listen on {addr}: {e}")))?;
    {
        let mut err = io::stderr().lock();
        let _ = writeln!(
            err,
            "srpc: dashboard of {} at http://{bound}/",
            srpc_dashboard::mask_secrets(&registry_url)
        );
        if !bound.ip().is_loopback() {
            let _ = writeln!(
                err,
                "srpc: warning: listening on {} : anyone who reaches it reads the registry",
                bound.ip()
            );
        }
        match (&token, std::env::var_os(TOKEN_ENV).is_some()) {
            (Some(_), true) => {
                let _ = writeln!(
                    err,
                    "srpc: write actions on, with the token from {TOKEN_ENV}"
                );
            }
            (Some(token), false) => {
                let _ = writeln!(
                    err,
                    "srpc: write actions on; the page asks for this token: {token}"
                );
            }
            (None, _) => {}
        }
    }
    let served = axum::serve(listener, dashboard.router())
        .with_graceful_shutdown(shutdown.wait(None))
        .await;
    drop(dashboard);
    registry.close().await.map_err(failure_of(&registry_url))?;
    served.map_err(|e| Failure::Registry(format!("dashboard server failed: {e}")))
}

#[cfg(feature = "http")]
/// The dashboard's place at `/ui` in `srpc registry serve`: its routes exist before the
/// server starts (they answer 503, saying why, until then or when it does not run), and
/// the dashboard, a client of that very server, is mounted once the server listens.
pub(crate) struct UiSlot {
    /// The dashboard, or what `/ui` answers (503) instead.
    slot: std::sync::Arc<std::sync::RwLock<Result<axum::Router, &'static str>>>,
}

/// What `/ui` says over TLS, where the server does not run its dashboard.
#[cfg(feature = "http")]
pub(crate) const OFF_OVER_TLS: &str =
    "the dashboard is not running here (it is off over TLS: run `srpc dashboard https://…`)\n";

/// What `/ui` says when `srpc registry serve --no-dashboard` turned it off.
#[cfg(feature = "http")]
pub(crate) const OFF_BY_FLAG: &str = "the dashboard is off here (`srpc registry serve --no-dashboard`): run `srpc dashboard http://…` elsewhere\n";

#[cfg(feature = "http")]
impl UiSlot {
    pub(crate) fn new() -> UiSlot {
        UiSlot {
            slot: std::sync::Arc::new(std::sync::RwLock::new(Err("the dashboard is starting\n"))),
        }
    }

    /// No dashboard here: `/ui` answers `why`.
    pub(crate) fn off(&self, why: &'static str) {
        *self.slot.write().unwrap_or_else(|p| p.into_inner()) = Err(why);
    }

    /// The routes `/ui`, `/ui/` and under, for the registry server.
    pub(crate) fn router(&self) -> axum::Router {
        use axum::extract::Request;
        use axum::response::IntoResponse;
        use tower::ServiceExt;
        let slot = self.slot.clone();
        let handler = move |request: Request| {
            let router = slot.read().unwrap_or_else(|p| p.into_inner()).clone();
            async move {
                match router {
                    Ok(router) => match router.oneshot(request).await {
                        Ok(response) => response,
                        Err(never) => match never {},
                    },
                    Err(why) => (axum::http::StatusCode::SERVICE_UNAVAILABLE, why).into_response(),
                }
            }
        };
        axum::Router::new()
            .route("/ui", axum::routing::any(handler.clone()))
            .route("/ui/", axum::routing::any(handler.clone()))
            .route("/ui/{*rest}", axum::routing::any(handler))
    }

    /// Starts the dashboard as a client of the registry at `addr` (read-only) and serves it;
    /// the client registry, to close at shutdown. `None` (with a warning) when it cannot.
    pub(crate) async fn mount(
        &self,
        addr: SocketAddr,
        token: Option<&str>,
    ) -> Option<std::sync::Arc<dyn srpc::registry::Registry>> {
        let mut url = format!("http://{addr}");
        if let Some(token) = token {
            url.push_str("?token=");
            url.push_str(&srpc::url::encode(token));
        }
        let started = async {
            let registry = srpc::registry::connect(&url).await?;
            let options = Options::new(&url).with_metrics(format!("http://{addr}/metrics"));
            let dashboard = Dashboard::start(registry.clone(), options).await?;
            Ok::<_, srpc::registry::Error>((registry, dashboard))
        };
        match started.await {
            Ok((registry, dashboard)) => {
                *self.slot.write().unwrap_or_else(|p| p.into_inner()) = Ok(dashboard.nested("/ui"));
                Some(registry)
            }
            Err(e) => {
                let _ = writeln!(
                    io::stderr().lock(),
                    "srpc: warning: no dashboard at /ui: {e}"
                );
                self.off("the dashboard did not start: the server's log says why\n");
                None
            }
        }
    }

    /// Stops serving the dashboard (before the server shuts down).
    pub(crate) fn clear(&self) {
        self.off("the registry is shutting down\n");
    }
}

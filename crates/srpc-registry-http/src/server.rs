//! [`HttpRegistryServer`]: the srpc registry server (axum). Instances are Dubbo URLs under
//! their service key, kept alive by heartbeats; watchers long-poll on revisions.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;
use std::future::IntoFuture;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use srpc_registry_kit::{Url, validate_registration};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tower_http::limit::RequestBodyLimitLayer;
use tracing::{debug, info};

use crate::api::{
    ANY_HOLDER, ErrorResponse, HolderRequest, HolderResponse, INDEX_HEADER, InstanceRequest,
    InstancesResponse, MAX_BODY, MAX_WAIT, MIN_TTL, RegisterRequest, RegisterResponse,
    SERVERS_HEADER, ServiceResponse, ServiceSummary, ServicesResponse,
};

/// How often expired instances are swept.
const SWEEP: Duration = Duration::from_millis(200);

/// Server settings.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ServerConfig {
    /// Where to listen; loopback by default.
    pub addr: SocketAddr,
    /// The longest TTL granted (default 5 min): instances that ask for more, or name none,
    /// get this; compatibility-endpoint entries live this long.
    pub ttl: Duration,
    /// Bearer token required for writes, when set.
    pub token: Option<String>,
}

impl Default for ServerConfig {
    fn default() -> ServerConfig {
        ServerConfig {
            addr: SocketAddr::from(([127, 0, 0, 1], 9999)),
            ttl: Duration::from_secs(300),
            token: None,
        }
    }
}

impl ServerConfig {
    /// Defaults, listening on `addr`.
    pub fn new(addr: SocketAddr) -> ServerConfig {
        ServerConfig {
            addr,
            ..ServerConfig::default()
        }
    }

    /// With another default TTL.
    #[must_use]
    pub fn with_ttl(mut self, ttl: Duration) -> ServerConfig {
        self.ttl = ttl;
        self
    }

    /// With a bearer token for writes.
    #[must_use]
    pub fn with_token(mut self, token: impl Into<String>) -> ServerConfig {
        self.token = Some(token.into());
        self
    }
}

/// A running registry server. Dropping the handle leaves it running (until its runtime
/// ends); [`HttpRegistryServer::shutdown`] stops it gracefully.
#[derive(Debug)]
pub struct HttpRegistryServer {
    addr: SocketAddr,
    stop: watch::Sender<bool>,
    serve: JoinHandle<std::io::Result<()>>,
    sweeper: JoinHandle<()>,
}

impl HttpRegistryServer {
    /// Binds `config.addr` and starts serving in the background.
    pub async fn bind(config: ServerConfig) -> std::io::Result<HttpRegistryServer> {
        if config.ttl < MIN_TTL {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!(
                    "ttl {:?} is below the least a registry can keep an instance, {MIN_TTL:?}",
                    config.ttl
                ),
            ));
        }
        let listener = TcpListener::bind(config.addr).await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(Shared::new(config));
        let sweeper = tokio::spawn(sweep(Arc::downgrade(&state)));
        let stop = state.stop.clone();
        let mut stopped = stop.subscribe();
        let app = router(state);
        let server = axum::serve(listener, app).with_graceful_shutdown(async move {
            let _ = stopped.wait_for(|s| *s).await;
        });
        let serve = tokio::spawn(server.into_future());
        info!(backend = "http", %addr, "registry server listening");
        Ok(HttpRegistryServer {
            addr,
            stop,
            serve,
            sweeper,
        })
    }

    /// The address it listens on (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting, lets requests in flight finish (long-polls answer at once), and
    /// waits for the server to end.
    pub async fn shutdown(self) -> std::io::Result<()> {
        self.stop.send_replace(true);
        let result = self
            .serve
            .await
            .unwrap_or_else(|e| Err(std::io::Error::other(e)));
        self.sweeper.abort();
        result
    }
}

/// Builds the axum router over fresh state (for embedding in another server). Its expiry
/// sweep runs on the current tokio runtime for as long as the router (or a clone of it)
/// exists, and stops when the last one is dropped.
pub fn app(config: ServerConfig) -> Router {
    let state = Arc::new(Shared::new(config));
    tokio::spawn(sweep(Arc::downgrade(&state)));
    router(state)
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

/// Unknown routes: 404 naming the method and path.
async fn no_route(request: Request) -> ApiError {
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
async fn json_errors(request: Request, next: Next) -> Response {
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

struct Shared {
    config: ServerConfig,
    /// Set on shutdown: parked long-polls answer at once instead of holding it up.
    stop: watch::Sender<bool>,
    book: Mutex<Book>,
    /// The global revision, for watchers of everything.
    revision: watch::Sender<u64>,
    registrations: AtomicU64,
    heartbeats: AtomicU64,
    expirations: AtomicU64,
    watchers: AtomicU64,
}

#[derive(Default)]
struct Book {
    revision: u64,
    services: BTreeMap<String, Service>,
    /// Compatibility endpoint: address → expiry.
    servers: BTreeMap<String, Instant>,
    /// Which instances each holder has a lease on (service key, URL), so that one request
    /// renews them all.
    holders: HashMap<String, HashSet<(String, Url)>>,
}

impl Book {
    fn hold(&mut self, holder: &str, key: &str, url: &Url) {
        let held = (key.to_owned(), url.clone());
        match self.holders.get_mut(holder) {
            Some(set) => {
                // A newer copy (another timestamp) replaces the one held.
                set.replace(held);
            }
            None => {
                self.holders
                    .insert(holder.to_owned(), HashSet::from([held]));
            }
        }
    }

    fn release(&mut self, holder: &str, key: &str, url: &Url) {
        if let Some(set) = self.holders.get_mut(holder) {
            set.remove(&(key.to_owned(), url.clone()));
            if set.is_empty() {
                self.holders.remove(holder);
            }
        }
    }
}

struct Service {
    revision: watch::Sender<u64>,
    instances: HashMap<Url, Instance>,
}

/// A registered URL and who holds it: it lives while any holder's lease does.
struct Instance {
    url: Url,
    holders: HashMap<String, Lease>,
}

struct Lease {
    ttl: Duration,
    expires: Instant,
}

/// Counts a long-poll while it waits.
struct Watching<'a>(&'a AtomicU64);

impl Drop for Watching<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Shared {
    fn new(config: ServerConfig) -> Shared {
        Shared {
            config,
            stop: watch::Sender::new(false),
            book: Mutex::default(),
            revision: watch::Sender::new(0),
            registrations: AtomicU64::new(0),
            heartbeats: AtomicU64::new(0),
            expirations: AtomicU64::new(0),
            watchers: AtomicU64::new(0),
        }
    }

    fn book(&self) -> MutexGuard<'_, Book> {
        self.book.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn authorize(&self, headers: &HeaderMap) -> Result<(), ApiError> {
        let Some(token) = &self.config.token else {
            return Ok(());
        };
        // `Bearer`, `bearer`, `BEARER`: the scheme is case-insensitive (RFC 9110 §11.1).
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim());
        if given == Some(token.as_str()) {
            Ok(())
        } else {
            Err(error(
                StatusCode::UNAUTHORIZED,
                "missing or wrong bearer token".into(),
            ))
        }
    }

    /// Bumps the global revision and stamps `key` with it; wakes that service's and the
    /// global watchers.
    fn changed(&self, book: &mut Book, key: &str) {
        book.revision += 1;
        let revision = book.revision;
        if let Some(service) = book.services.get(key) {
            service.revision.send_replace(revision);
        }
        self.revision.send_replace(revision);
    }

    /// Drops expired instances and compatibility entries, and service entries nobody needs.
    fn sweep_once(&self) {
        let now = Instant::now();
        let mut book = self.book();
        book.servers.retain(|_, expires| *expires > now);
        let mut expired_keys = Vec::new();
        let mut lapsed = Vec::new();
        let Book {
            services, holders, ..
        } = &mut *book;
        for (key, service) in services.iter_mut() {
            let before = service.instances.len();
            service.instances.retain(|_, i| {
                i.holders.retain(|holder, lease| {
                    let alive = lease.expires > now;
                    if !alive {
                        lapsed.push((holder.clone(), key.clone(), i.url.clone()));
                    }
                    alive
                });
                !i.holders.is_empty()
            });
            let gone = before - service.instances.len();
            if gone > 0 {
                self.expirations.fetch_add(gone as u64, Ordering::Relaxed);
                expired_keys.push(key.clone());
            }
        }
        for (holder, key, url) in lapsed {
            if let Some(set) = holders.get_mut(&holder) {
                set.remove(&(key, url));
                if set.is_empty() {
                    holders.remove(&holder);
                }
            }
        }
        // Entries made by GETs of unknown keys, or left by services that went away, are
        // dropped once nobody watches them, so that such requests cannot grow the map.
        book.services.retain(|_, service| {
            !service.instances.is_empty() || service.revision.receiver_count() > 0
        });
        for key in expired_keys {
            info!(backend = "http", service = %key, "instances expired without heartbeat");
            self.changed(&mut book, &key);
        }
    }
}

/// Expires instances every [`SWEEP`] until the server state is gone (the server shut down,
/// or the router of [`app`] was dropped).
async fn sweep(state: Weak<Shared>) {
    let mut ticker = tokio::time::interval(SWEEP);
    loop {
        ticker.tick().await;
        let Some(state) = state.upgrade() else { return };
        state.sweep_once();
    }
}

/// A refused request: its status and a message quoting the bad input, sent as
/// `{"error": "…"}`.
#[derive(Debug)]
struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, json_body(&ErrorResponse { error: self.1 })).into_response()
    }
}

fn error(status: StatusCode, message: String) -> ApiError {
    ApiError(status, message)
}

fn json_body(value: &impl serde::Serialize) -> ([(header::HeaderName, HeaderValue); 1], String) {
    let body = serde_json::to_string(value).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"));
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body,
    )
}

fn with_index(mut response: Response, revision: u64) -> Response {
    if let Ok(value) = HeaderValue::from_str(&revision.to_string()) {
        response.headers_mut().insert(INDEX_HEADER, value);
    }
    response
}

/// Reads a JSON body, answering 400 with a JSON error that says what is wrong.
fn parse_body<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| error(StatusCode::BAD_REQUEST, format!("invalid JSON body: {e}")))
}

fn parse_instance(text: &str) -> Result<Url, ApiError> {
    let url = Url::parse(text).map_err(|e| error(StatusCode::BAD_REQUEST, e.to_string()))?;
    validate_registration(&url).map_err(|e| error(StatusCode::BAD_REQUEST, e.to_string()))?;
    Ok(url)
}

async fn register(
    State(state): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    state.authorize(&headers)?;
    let request: RegisterRequest = parse_body(&body)?;
    let url = parse_instance(&request.url)?;
    // What was asked, capped by the server's `--ttl`: a client cannot keep a dead instance
    // longer than the operator allows.
    let ttl = request
        .ttl_ms
        .map_or(state.config.ttl, Duration::from_millis)
        .min(state.config.ttl);
    if ttl < MIN_TTL {
        return Err(error(
            StatusCode::BAD_REQUEST,
            format!(
                "ttl_ms {} is below {} ms",
                ttl.as_millis(),
                MIN_TTL.as_millis()
            ),
        ));
    }
    // Everything is checked: from here on nothing can fail half-way.
    let key = url.service_key();
    let mut book = state.book();
    let service = book.services.entry(key.clone()).or_insert_with(|| Service {
        revision: watch::Sender::new(0),
        instances: HashMap::new(),
    });
    let holder = request.holder.unwrap_or_default();
    if holder == ANY_HOLDER {
        return Err(error(
            StatusCode::BAD_REQUEST,
            format!("holder {ANY_HOLDER:?} stands for every holder; it can only deregister"),
        ));
    }
    let lease = Lease {
        ttl,
        expires: Instant::now() + ttl,
    };
    let changed = match service.instances.get_mut(&url) {
        Some(instance) => {
            // Equal URLs may still differ in their timestamp: keep the newest form.
            let newer = instance.url.as_full_str() != url.as_full_str();
            instance.url = url.clone();
            instance.holders.insert(holder.clone(), lease);
            newer
        }
        None => {
            let instance = Instance {
                url: url.clone(),
                holders: HashMap::from([(holder.clone(), lease)]),
            };
            service.instances.insert(url.clone(), instance);
            true
        }
    };
    book.hold(&holder, &key, &url);
    if changed {
        state.changed(&mut book, &key);
    }
    drop(book);
    state.registrations.fetch_add(1, Ordering::Relaxed);
    debug!(backend = "http", service = %key, %url, "registered");
    Ok((
        StatusCode::OK,
        json_body(&RegisterResponse {
            service: key,
            ttl_ms: ttl.as_millis() as u64,
        }),
    )
        .into_response())
}

async fn heartbeat(
    State(state): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    state.authorize(&headers)?;
    let request: InstanceRequest = parse_body(&body)?;
    let url = parse_instance(&request.url)?;
    let key = url.service_key();
    let mut book = state.book();
    let holder = request.holder.unwrap_or_default();
    let Some(lease) = book
        .services
        .get_mut(&key)
        .and_then(|s| s.instances.get_mut(&url))
        .and_then(|i| i.holders.get_mut(&holder))
    else {
        return Err(error(
            StatusCode::NOT_FOUND,
            format!("unknown instance {url} (or not registered by this holder): register it again"),
        ));
    };
    lease.expires = Instant::now() + lease.ttl;
    let ttl_ms = lease.ttl.as_millis() as u64;
    drop(book);
    state.heartbeats.fetch_add(1, Ordering::Relaxed);
    Ok((
        StatusCode::OK,
        json_body(&RegisterResponse {
            service: key,
            ttl_ms,
        }),
    )
        .into_response())
}

/// Renews every lease of one holder: one request for all of a client's instances, however
/// many services it provides. Always 200: the count tells the holder whether the server
/// still has everything it registered.
async fn holder_heartbeat(
    State(state): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    state.authorize(&headers)?;
    let request: HolderRequest = parse_body(&body)?;
    if request.holder == ANY_HOLDER {
        return Err(error(
            StatusCode::BAD_REQUEST,
            format!("holder {ANY_HOLDER:?} stands for every holder; it can only deregister"),
        ));
    }
    let now = Instant::now();
    let mut book = state.book();
    let Book {
        services, holders, ..
    } = &mut *book;
    let mut renewed = 0u64;
    let mut shortest: Option<Duration> = None;
    for (key, url) in holders.get(&request.holder).into_iter().flatten() {
        let lease = services
            .get_mut(key)
            .and_then(|s| s.instances.get_mut(url))
            .and_then(|i| i.holders.get_mut(&request.holder));
        if let Some(lease) = lease {
            lease.expires = now + lease.ttl;
            renewed += 1;
            shortest = Some(shortest.map_or(lease.ttl, |t| t.min(lease.ttl)));
        }
    }
    drop(book);
    state.heartbeats.fetch_add(1, Ordering::Relaxed);
    Ok((
        StatusCode::OK,
        json_body(&HolderResponse {
            renewed,
            ttl_ms: shortest.map_or(0, |t| t.as_millis() as u64),
        }),
    )
        .into_response())
}

async fn deregister(
    State(state): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    state.authorize(&headers)?;
    let request: InstanceRequest = parse_body(&body)?;
    let url =
        Url::parse(&request.url).map_err(|e| error(StatusCode::BAD_REQUEST, e.to_string()))?;
    let key = url.service_key();
    let mut book = state.book();
    // Only this holder's lease goes; the instance goes with its last holder.
    let holder = request.holder.unwrap_or_default();
    let mut released = Vec::new();
    let removed = book.services.get_mut(&key).is_some_and(|s| {
        let Some(instance) = s.instances.get_mut(&url) else {
            return false;
        };
        if holder == ANY_HOLDER {
            released.extend(instance.holders.drain().map(|(h, _)| h));
        } else if instance.holders.remove(&holder).is_some() {
            released.push(holder);
        }
        if instance.holders.is_empty() {
            s.instances.remove(&url);
            true
        } else {
            false
        }
    });
    for holder in released {
        book.release(&holder, &key, &url);
    }
    if removed {
        state.changed(&mut book, &key);
        debug!(backend = "http", service = %key, %url, "deregistered");
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// See `crate::fuzzing::query_and_instance`.
#[cfg(fuzzing)]
pub(crate) fn fuzz_query_and_instance(text: &str) {
    let uri = format!("/v1/watch?{text}");
    if let Ok(uri) = uri.parse::<axum::http::Uri>() {
        if let Ok(Query(params)) = Query::<WatchParams>::try_from_uri(&uri) {
            let _ = params.wait();
        }
    }
    let _ = parse_instance(text);
}

/// `?index=N&wait=30s`.
#[derive(Debug, Deserialize)]
struct WatchParams {
    index: Option<u64>,
    wait: Option<String>,
}

impl WatchParams {
    fn wait(&self) -> Result<Option<(u64, Duration)>, ApiError> {
        let Some(index) = self.index else {
            return Ok(None);
        };
        let wait = match &self.wait {
            None => Duration::from_secs(30),
            Some(text) => match text.parse::<u64>() {
                Ok(ms) => Duration::from_millis(ms),
                Err(_) => humantime::parse_duration(text).map_err(|e| {
                    error(
                        StatusCode::BAD_REQUEST,
                        format!("invalid wait {text:?}: {e}"),
                    )
                })?,
            },
        };
        Ok(Some((index, wait.min(MAX_WAIT))))
    }
}

/// Waits until `revision` passes `index` (or went backwards: a restarted server), for at
/// most `wait`.
async fn long_poll(
    state: &Shared,
    mut revision: watch::Receiver<u64>,
    watch: Option<(u64, Duration)>,
) {
    let Some((index, wait)) = watch else { return };
    if *revision.borrow() != index {
        return;
    }
    state.watchers.fetch_add(1, Ordering::Relaxed);
    let _watching = Watching(&state.watchers);
    let mut stop = state.stop.subscribe();
    tokio::select! {
        _ = tokio::time::timeout(wait, revision.wait_for(|r| *r != index)) => {}
        _ = stop.wait_for(|stopping| *stopping) => {}
    }
}

async fn get_service(
    State(state): State<Arc<Shared>>,
    Path(key): Path<String>,
    Query(params): Query<WatchParams>,
) -> Result<Response, ApiError> {
    let watch = params.wait()?;
    let revision = {
        let mut book = state.book();
        book.services
            .entry(key.clone())
            .or_insert_with(|| Service {
                revision: watch::Sender::new(0),
                instances: HashMap::new(),
            })
            .revision
            .subscribe()
    };
    long_poll(&state, revision, watch).await;
    let book = state.book();
    let (revision, instances) = match book.services.get(&key) {
        Some(service) => (
            *service.revision.borrow(),
            sorted(service.instances.values()),
        ),
        None => (0, Vec::new()),
    };
    drop(book);
    let body = json_body(&ServiceResponse {
        service: key,
        revision,
        instances,
    });
    Ok(with_index((StatusCode::OK, body).into_response(), revision))
}

async fn list_instances(
    State(state): State<Arc<Shared>>,
    Query(params): Query<WatchParams>,
) -> Result<Response, ApiError> {
    let watch = params.wait()?;
    long_poll(&state, state.revision.subscribe(), watch).await;
    let book = state.book();
    let revision = book.revision;
    let instances = sorted(book.services.values().flat_map(|s| s.instances.values()));
    drop(book);
    Ok(with_index(
        (
            StatusCode::OK,
            json_body(&InstancesResponse {
                revision,
                instances,
            }),
        )
            .into_response(),
        revision,
    ))
}

async fn list_services(
    State(state): State<Arc<Shared>>,
    Query(params): Query<WatchParams>,
) -> Result<Response, ApiError> {
    let watch = params.wait()?;
    long_poll(&state, state.revision.subscribe(), watch).await;
    let book = state.book();
    let revision = book.revision;
    let services = book
        .services
        .iter()
        .filter(|(_, s)| !s.instances.is_empty())
        .map(|(key, s)| ServiceSummary {
            service: key.clone(),
            instances: s.instances.len(),
            revision: *s.revision.borrow(),
        })
        .collect();
    drop(book);
    Ok(with_index(
        (
            StatusCode::OK,
            json_body(&ServicesResponse { revision, services }),
        )
            .into_response(),
        revision,
    ))
}

fn sorted<'a>(instances: impl Iterator<Item = &'a Instance>) -> Vec<String> {
    let mut urls: Vec<String> = instances.map(|i| i.url.to_full_string()).collect();
    urls.sort();
    urls
}

/// `GET /srpc/registry`: the alive addresses, comma-joined and sorted, in `Srpc-servers`.
async fn compat_get(State(state): State<Arc<Shared>>) -> Result<Response, ApiError> {
    let now = Instant::now();
    let mut book = state.book();
    book.servers.retain(|_, expires| *expires > now);
    let alive: Vec<&str> = book.servers.keys().map(String::as_str).collect();
    let joined = alive.join(",");
    drop(book);
    match HeaderValue::from_str(&joined) {
        Ok(value) => {
            let mut response = StatusCode::OK.into_response();
            response.headers_mut().insert(SERVERS_HEADER, value);
            Ok(response)
        }
        Err(_) => Err(error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "stored address is not a header value".into(),
        )),
    }
}

/// `POST /srpc/registry` with `Srpc-servers: <addr>`: registers or refreshes it.
async fn compat_post(
    State(state): State<Arc<Shared>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    state.authorize(&headers)?;
    let Some(addr) = headers
        .get(SERVERS_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
    else {
        return Err(error(
            StatusCode::BAD_REQUEST,
            format!("missing header {SERVERS_HEADER}: <address>"),
        ));
    };
    if addr.is_empty() || addr.contains(',') || addr.len() > 1024 {
        return Err(error(
            StatusCode::BAD_REQUEST,
            format!("invalid address {addr:?} in {SERVERS_HEADER}"),
        ));
    }
    let expires = Instant::now() + state.config.ttl;
    state.book().servers.insert(addr.to_owned(), expires);
    state.heartbeats.fetch_add(1, Ordering::Relaxed);
    Ok(StatusCode::OK.into_response())
}

/// Prometheus text format.
async fn metrics(State(state): State<Arc<Shared>>) -> Response {
    let book = state.book();
    let services = book
        .services
        .values()
        .filter(|s| !s.instances.is_empty())
        .count();
    let instances: usize = book.services.values().map(|s| s.instances.len()).sum();
    let servers = book.servers.len();
    let entries = book.services.len();
    drop(book);
    let mut text = String::new();
    let mut metric = |name: &str, kind: &str, help: &str, value: u64| {
        let _ = writeln!(
            text,
            "# HELP srpc_registry_{name} {help}\n# TYPE srpc_registry_{name} {kind}\nsrpc_registry_{name} {value}"
        );
    };
    metric(
        "services",
        "gauge",
        "Services with at least one live instance.",
        services as u64,
    );
    metric(
        "instances",
        "gauge",
        "Live instances of the JSON API.",
        instances as u64,
    );
    metric(
        "service_entries",
        "gauge",
        "Service entries kept (with instances or watchers).",
        entries as u64,
    );
    metric(
        "compat_servers",
        "gauge",
        "Live addresses of the /srpc/registry endpoint.",
        servers as u64,
    );
    metric(
        "registrations_total",
        "counter",
        "Accepted registrations.",
        state.registrations.load(Ordering::Relaxed),
    );
    metric(
        "heartbeats_total",
        "counter",
        "Accepted heartbeats (both APIs).",
        state.heartbeats.load(Ordering::Relaxed),
    );
    metric(
        "expirations_total",
        "counter",
        "Instances removed for missing heartbeats.",
        state.expirations.load(Ordering::Relaxed),
    );
    metric(
        "watchers",
        "gauge",
        "Long-polls waiting now.",
        state.watchers.load(Ordering::Relaxed),
    );
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}

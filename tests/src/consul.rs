//! A fake Consul agent, written from Consul's documented HTTP API (`shared/reference/
//! etcd-consul-mdns.md` §3), for the endpoints Dubbo uses: agent service register and
//! deregister, TTL check pass / warn / fail / update, the health of a service and the
//! catalog's services as blocking queries, and the agent's services.
//!
//! It behaves as an agent does where srpc depends on it: service IDs unique per agent, the
//! embedded check named `service:<ID>`, checks starting critical unless a `Status` is given,
//! TTL expiry to critical, the deregister-critical reaper (1 m minimum, shortened by a knob),
//! `X-Consul-Index` per service, `wait` with units (400 without), 404 for unknown checks and
//! services, 400 for `Meta` values over 512 characters, 403 for a wrong token, plain-text error
//! bodies. Test hooks move the index backwards or answer 0, inject 429s, and forget
//! everything (an agent restarted without its data).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// A running fake agent on loopback; stopped when dropped.
#[derive(Debug)]
pub struct FakeConsul {
    addr: SocketAddr,
    shared: Arc<Shared>,
    tasks: Vec<JoinHandle<()>>,
}

#[derive(Debug)]
struct Shared {
    /// Health queries answered, for tests that check a client does not busy-loop.
    health_requests: std::sync::atomic::AtomicU64,
    state: Mutex<AgentState>,
    /// The raft index: blocking queries wait on it.
    raft: watch::Sender<u64>,
}

#[derive(Debug)]
struct AgentState {
    services: BTreeMap<String, Service>,
    /// The raft index of each service name's last change.
    index: HashMap<String, u64>,
    token: Option<String>,
    reject_429: u32,
    reaper_min: Duration,
    index_override: Option<u64>,
    /// The register bodies as received, by service ID.
    bodies: HashMap<String, Value>,
}

#[derive(Debug, Clone)]
struct Service {
    id: String,
    name: String,
    tags: Vec<String>,
    address: String,
    port: u64,
    meta: BTreeMap<String, String>,
    /// Embedded checks: `service:<ID>` for one, `service:<ID>:1`, `:2`… for several.
    checks: Vec<Check>,
}

#[derive(Debug, Clone)]
struct Check {
    id: String,
    ttl: Duration,
    status: String,
    output: String,
    expires: Instant,
    deregister_after: Option<Duration>,
    critical_since: Option<Instant>,
}

/// Consul's limit on a `Meta` value.
const META_VALUE_MAX: usize = 512;
/// Consul's minimum `DeregisterCriticalServiceAfter`.
const REAPER_MIN: Duration = Duration::from_secs(60);
/// The longest `wait`, and the default.
const WAIT_MAX: Duration = Duration::from_secs(600);
const WAIT_DEFAULT: Duration = Duration::from_secs(300);

impl FakeConsul {
    /// Starts an empty agent on a free loopback port.
    pub async fn start() -> std::io::Result<FakeConsul> {
        FakeConsul::start_on(SocketAddr::from(([127, 0, 0, 1], 0))).await
    }

    /// Starts an empty agent on `addr` (`127.0.0.1:8500` is where Consul's tools look).
    pub async fn start_on(addr: SocketAddr) -> std::io::Result<FakeConsul> {
        FakeConsul::start_with(addr, None).await
    }

    /// Starts an empty agent on a free loopback port serving HTTPS with `pki`'s server
    /// certificate, and requiring a client certificate from `pki`'s CA (Consul's
    /// `verify_incoming`).
    pub async fn start_tls(pki: &crate::tls::TestPki) -> std::io::Result<FakeConsul> {
        let acceptor = crate::tls::acceptor(pki, true)?;
        FakeConsul::start_with(SocketAddr::from(([127, 0, 0, 1], 0)), Some(acceptor)).await
    }

    async fn start_with(
        addr: SocketAddr,
        tls: Option<tokio_rustls::TlsAcceptor>,
    ) -> std::io::Result<FakeConsul> {
        let listener = tokio::net::TcpListener::bind(addr).await.map_err(|error| {
            std::io::Error::new(
                error.kind(),
                format!("the fake Consul agent cannot listen on {addr}: {error}"),
            )
        })?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            health_requests: std::sync::atomic::AtomicU64::new(0),
            state: Mutex::new(AgentState {
                services: BTreeMap::new(),
                index: HashMap::new(),
                token: None,
                reject_429: 0,
                reaper_min: REAPER_MIN,
                index_override: None,
                bodies: HashMap::new(),
            }),
            raft: watch::Sender::new(1),
        });
        let app = Router::new()
            .route("/v1/agent/service/register", put(register))
            .route("/v1/agent/service/deregister/{id}", put(deregister))
            // pass, warn and fail; `update` is the static route below, which wins.
            .route("/v1/agent/check/{verb}/{id}", put(set_by_verb))
            .route("/v1/agent/check/update/{id}", put(update))
            .route("/v1/agent/services", get(agent_services))
            .route("/v1/health/service/{name}", get(health))
            .route("/v1/catalog/services", get(catalog_services))
            .with_state(shared.clone());
        let server = tokio::spawn(async move {
            match tls {
                Some(acceptor) => {
                    let listener = crate::tls::TlsListener::new(listener, acceptor);
                    let _ = axum::serve(listener, app).await;
                }
                None => {
                    let _ = axum::serve(listener, app).await;
                }
            }
        });
        let ticker = tokio::spawn(tick(Arc::downgrade(&shared)));
        Ok(FakeConsul {
            addr,
            shared,
            tasks: vec![server, ticker],
        })
    }

    /// `127.0.0.1:<port>`.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Requires `X-Consul-Token: <token>` on every request (403 otherwise).
    pub fn require_token(&self, token: &str) {
        self.state().token = Some(token.to_owned());
    }

    /// Answers the next `n` requests with 429.
    pub fn reject_next(&self, n: u32) {
        self.state().reject_429 = n;
    }

    /// Reaps services critical for this long, whatever `DeregisterCriticalServiceAfter` they
    /// asked for (Consul's minimum is 1 m, too long for tests). Applies to later
    /// registrations.
    pub fn reap_after(&self, after: Duration) {
        self.state().reaper_min = after;
    }

    /// Answers every blocking query with this `X-Consul-Index` (a snapshot restore moves it
    /// backwards; a broken agent answers 0), or the real one again with `None`.
    pub fn override_index(&self, index: Option<u64>) {
        self.state().index_override = index;
        self.shared.bump_raft();
    }

    /// Forgets every service and check, as an agent restarted without its data does.
    pub fn forget_all(&self) {
        let mut state = self.state();
        let names: Vec<String> = state.services.values().map(|s| s.name.clone()).collect();
        state.services.clear();
        state.bodies.clear();
        for name in names {
            self.shared.changed(&mut state, &name);
        }
    }

    /// Stops passing: every check goes critical at once (as after a missed TTL).
    pub fn expire_all_checks(&self) {
        let mut state = self.state();
        let now = Instant::now();
        for check in state
            .services
            .values_mut()
            .flat_map(|s| s.checks.iter_mut())
        {
            check.expires = now;
        }
        drop(state);
        tick_once(&self.shared);
    }

    /// The registered services: (ID, name, check status).
    pub fn services(&self) -> Vec<(String, String, String)> {
        self.state()
            .services
            .values()
            .map(|s| (s.id.clone(), s.name.clone(), s.status().to_owned()))
            .collect()
    }

    /// How many health queries it has answered (or refused).
    pub fn health_requests(&self) -> u64 {
        self.shared
            .health_requests
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Sends `body` to `PUT path` over plain HTTP/1.1, as any peer would; the status.
    pub async fn put(&self, path: &str, body: &str) -> u16 {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream = tokio::net::TcpStream::connect(self.addr)
            .await
            .unwrap_or_else(|e| panic!("connect to the fake agent: {e}"));
        let request = format!(
            "PUT {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            self.addr,
            body.len()
        );
        let mut answer = String::new();
        let _ = stream.write_all(request.as_bytes()).await;
        let _ = stream.read_to_string(&mut answer).await;
        answer
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0)
    }

    /// The register body received for service `id`, as JSON.
    pub fn register_body(&self, id: &str) -> Option<Value> {
        self.state().bodies.get(id).cloned()
    }

    fn state(&self) -> MutexGuard<'_, AgentState> {
        self.shared.state()
    }
}

impl Drop for FakeConsul {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, AgentState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn bump_raft(&self) -> u64 {
        let mut next = 0;
        self.raft.send_modify(|raft| {
            *raft += 1;
            next = *raft;
        });
        next
    }

    /// Records a change of service `name`.
    fn changed(&self, state: &mut AgentState, name: &str) {
        let raft = self.bump_raft();
        state.index.insert(name.to_owned(), raft);
    }
}

/// An error answer: a status and a plain-text message.
struct Refusal(StatusCode, String);

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        text(self.0, &self.1)
    }
}

/// Checks the token and the 429 injection; `Err` is the answer to send instead.
fn admit(shared: &Shared, headers: &HeaderMap) -> Result<(), Refusal> {
    let mut state = shared.state();
    if state.reject_429 > 0 {
        state.reject_429 -= 1;
        return Err(Refusal(
            StatusCode::TOO_MANY_REQUESTS,
            "Your IP is issuing too many concurrent connections, please rate limit your calls"
                .into(),
        ));
    }
    if let Some(token) = &state.token {
        let given = headers.get("X-Consul-Token").and_then(|v| v.to_str().ok());
        if given != Some(token.as_str()) {
            return Err(Refusal(StatusCode::FORBIDDEN, "ACL not found".into()));
        }
    }
    Ok(())
}

/// A plain-text error, as Consul sends them.
fn text(status: StatusCode, message: &str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        message.to_owned(),
    )
        .into_response()
}

/// A field in CamelCase or snake_case (Consul accepts both).
fn field<'a>(value: &'a Value, names: &[&str]) -> Option<&'a Value> {
    names.iter().find_map(|n| value.get(*n))
}

fn duration(value: Option<&Value>) -> Result<Option<Duration>, String> {
    match value.and_then(Value::as_str) {
        None | Some("") => Ok(None),
        Some(text) => humantime::parse_duration(text)
            .map(Some)
            .map_err(|e| format!("invalid duration {text:?}: {e}")),
    }
}

async fn register(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    if let Err(answer) = admit(&shared, &headers) {
        return answer.into_response();
    }
    let Ok(body): Result<Value, _> = serde_json::from_slice(&body) else {
        return text(StatusCode::BAD_REQUEST, "Request decode failed");
    };
    let Some(name) = field(&body, &["Name", "name"])
        .and_then(Value::as_str)
        .map(str::to_owned)
    else {
        return text(StatusCode::BAD_REQUEST, "Missing service name");
    };
    let id = field(&body, &["ID", "Id", "id"])
        .and_then(Value::as_str)
        .unwrap_or(&name)
        .to_owned();
    let address = field(&body, &["Address", "address"])
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    if address == "0.0.0.0" || address == "::" || address == "[::]" {
        return text(StatusCode::BAD_REQUEST, "Invalid service address");
    }
    let mut meta = BTreeMap::new();
    if let Some(Value::Object(pairs)) = field(&body, &["Meta", "meta"]) {
        for (key, value) in pairs {
            let value = value.as_str().unwrap_or_default().to_owned();
            if value.chars().count() > META_VALUE_MAX {
                return text(
                    StatusCode::BAD_REQUEST,
                    &format!(
                        "Invalid Service Meta: Couldn't load metadata pair ('{key}', '{value}'): Value is too long (limit: {META_VALUE_MAX} characters)"
                    ),
                );
            }
            meta.insert(key.clone(), value);
        }
    }
    let tags = field(&body, &["Tags", "tags"])
        .and_then(Value::as_array)
        .map(|tags| {
            tags.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    let port = field(&body, &["Port", "port"])
        .and_then(Value::as_u64)
        .unwrap_or(0);
    // `Check` (one) or `Checks` (several), in either spelling.
    let mut check_bodies: Vec<Value> = Vec::new();
    if let Some(check) = field(&body, &["Check", "check"]).filter(|c| !c.is_null()) {
        check_bodies.push(check.clone());
    }
    if let Some(Value::Array(checks)) = field(&body, &["Checks", "checks"]) {
        check_bodies.extend(checks.iter().cloned());
    }
    let mut state = shared.state();
    let reaper_min = state.reaper_min;
    let now = Instant::now();
    let mut checks = Vec::new();
    for (n, check_body) in check_bodies.iter().enumerate() {
        let check_id = if check_bodies.len() == 1 {
            format!("service:{id}")
        } else {
            format!("service:{id}:{}", n + 1)
        };
        match parse_check(check_body, check_id, now, reaper_min) {
            Ok(check) => checks.push(check),
            Err(message) => return text(StatusCode::BAD_REQUEST, &message),
        }
    }
    let service = Service {
        id: id.clone(),
        name: name.clone(),
        tags,
        address,
        port,
        meta,
        checks,
    };
    state.services.insert(id.clone(), service);
    state.bodies.insert(id, body);
    shared.changed(&mut state, &name);
    StatusCode::OK.into_response()
}

/// One TTL check of a registration body.
fn parse_check(
    body: &Value,
    id: String,
    now: Instant,
    reaper_min: Duration,
) -> Result<Check, String> {
    let ttl = match duration(field(body, &["TTL", "ttl"])) {
        Ok(Some(ttl)) => ttl,
        Ok(None) => return Err("Invalid check: TTL must be > 0 for TTL checks".into()),
        Err(e) => return Err(format!("Invalid check: {e}")),
    };
    let deregister_after = duration(field(
        body,
        &[
            "DeregisterCriticalServiceAfter",
            "deregister_critical_service_after",
        ],
    ))
    .map_err(|e| format!("Invalid check: {e}"))?;
    let status = field(body, &["Status", "status"])
        .and_then(Value::as_str)
        .unwrap_or("critical")
        .to_owned();
    if !matches!(status.as_str(), "passing" | "warning" | "critical") {
        return Err("Invalid check status".into());
    }
    let critical = status == "critical";
    Ok(Check {
        id,
        ttl,
        status,
        output: String::new(),
        expires: now + ttl,
        // Consul raises anything below its minimum (a test may have shortened it).
        deregister_after: deregister_after.map(|d| {
            if reaper_min < REAPER_MIN {
                reaper_min
            } else {
                d.max(reaper_min)
            }
        }),
        critical_since: critical.then_some(now),
    })
}

impl Service {
    /// `critical` if any check is, else `warning` if any is, else `passing`.
    fn status(&self) -> &str {
        let has = |status: &str| self.checks.iter().any(|c| c.status == status);
        if has("critical") {
            "critical"
        } else if has("warning") {
            "warning"
        } else {
            "passing"
        }
    }
}

async fn deregister(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    if let Err(answer) = admit(&shared, &headers) {
        return answer.into_response();
    }
    let mut state = shared.state();
    match state.services.remove(&id) {
        Some(service) => {
            state.bodies.remove(&id);
            shared.changed(&mut state, &service.name);
            StatusCode::OK.into_response()
        }
        None => text(
            StatusCode::NOT_FOUND,
            &format!(
                "Unknown service ID {id:?}. Ensure that the service ID is passed, not the service name."
            ),
        ),
    }
}

fn set_check(
    shared: &Shared,
    headers: &HeaderMap,
    check_id: &str,
    status: &str,
    output: &str,
) -> Response {
    if let Err(answer) = admit(shared, headers) {
        return answer.into_response();
    }
    let mut state = shared.state();
    let now = Instant::now();
    let Some((name, check)) = state.services.values_mut().find_map(|s| {
        let name = s.name.clone();
        s.checks
            .iter_mut()
            .find(|c| c.id == check_id)
            .map(|c| (name, c))
    }) else {
        return text(
            StatusCode::NOT_FOUND,
            &format!(
                "Unknown check ID {check_id:?}. Ensure that the check ID is passed, not the check name."
            ),
        );
    };
    let changed = check.status != status || check.output != output;
    check.status = status.to_owned();
    check.output = output.to_owned();
    check.expires = now + check.ttl;
    check.critical_since = (status == "critical").then(|| check.critical_since.unwrap_or(now));
    if changed {
        shared.changed(&mut state, &name);
    }
    StatusCode::OK.into_response()
}

/// `PUT /v1/agent/check/{pass,warn,fail}/<id>[?note=]`.
async fn set_by_verb(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Path((verb, id)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let status = match verb.as_str() {
        "pass" => "passing",
        "warn" => "warning",
        "fail" => "critical",
        _ => return text(StatusCode::NOT_FOUND, "404 page not found"),
    };
    let note = q.get("note").map_or("", String::as_str);
    set_check(&shared, &headers, &id, status, note)
}

async fn update(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let status = field(&body, &["Status", "status"])
        .and_then(Value::as_str)
        .unwrap_or("");
    if !matches!(status, "passing" | "warning" | "critical") {
        return text(StatusCode::BAD_REQUEST, "Invalid check status");
    }
    let output = field(&body, &["Output", "output"])
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    set_check(&shared, &headers, &id, status, &output)
}

async fn agent_services(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    if let Err(answer) = admit(&shared, &headers) {
        return answer.into_response();
    }
    let state = shared.state();
    let body: serde_json::Map<String, Value> = state
        .services
        .values()
        .map(|s| (s.id.clone(), service_json(s)))
        .collect();
    axum::Json(Value::Object(body)).into_response()
}

/// Reads `index` and `wait` of a blocking query; `Err` is a 400 to send.
fn blocking(query: &HashMap<String, String>) -> Result<Option<(u64, Duration)>, Refusal> {
    let Some(index) = query.get("index") else {
        return Ok(None);
    };
    let Ok(index) = index.parse::<u64>() else {
        return Err(Refusal(StatusCode::BAD_REQUEST, "Invalid index".into()));
    };
    let wait = match query.get("wait") {
        None => WAIT_DEFAULT,
        // A bare number has no unit: Consul refuses it.
        Some(w) if w.chars().all(|c| c.is_ascii_digit()) => {
            return Err(Refusal(
                StatusCode::BAD_REQUEST,
                format!("Invalid wait time: {w:?} has no unit"),
            ));
        }
        Some(w) => match humantime::parse_duration(w) {
            Ok(wait) => wait.min(WAIT_MAX),
            Err(_) => {
                return Err(Refusal(
                    StatusCode::BAD_REQUEST,
                    format!("Invalid wait time: {w:?}"),
                ));
            }
        },
    };
    Ok(Some((index, wait)))
}

/// Waits until `current` (the index of what is asked) differs from `index`, or `wait` passed.
async fn block(shared: &Shared, index: u64, wait: Duration, current: impl Fn(&AgentState) -> u64) {
    let mut raft = shared.raft.subscribe();
    let deadline = Instant::now() + wait;
    while current(&shared.state()) == index {
        if tokio::time::timeout_at(deadline, raft.changed())
            .await
            .is_err()
        {
            return;
        }
    }
}

async fn health(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Path(name): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    shared
        .health_requests
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    if let Err(answer) = admit(&shared, &headers) {
        return answer.into_response();
    }
    let blocking = match blocking(&query) {
        Ok(b) => b,
        Err(answer) => return answer.into_response(),
    };
    let index_of = |state: &AgentState| state.index.get(&name).copied().unwrap_or(1);
    if let Some((index, wait)) = blocking {
        block(&shared, index, wait, index_of).await;
    }
    let passing = query
        .get("passing")
        .is_some_and(|v| v.is_empty() || v == "1" || v.eq_ignore_ascii_case("true"));
    let tag = query.get("tag");
    let state = shared.state();
    let entries: Vec<Value> = state
        .services
        .values()
        .filter(|s| s.name == name)
        .filter(|s| !passing || s.status() == "passing")
        .filter(|s| tag.is_none_or(|t| s.tags.contains(t)))
        .map(|s| {
            let mut checks = vec![json!({"Node": "fake-consul", "CheckID": "serfHealth", "Name": "Serf Health Status", "Status": "passing", "Output": "Agent alive and reachable", "ServiceID": "", "ServiceName": ""})];
            checks.extend(s.checks.iter().map(|c| json!({"Node": "fake-consul", "CheckID": c.id, "Name": format!("Service '{}' check", s.name), "Status": c.status, "Output": c.output, "ServiceID": s.id, "ServiceName": s.name})));
            json!({
                "Node": {"ID": "00000000-0000-0000-0000-000000000001", "Node": "fake-consul", "Address": "127.0.0.1", "Datacenter": "dc1", "TaggedAddresses": {}, "Meta": {}},
                "Service": service_json(s),
                "Checks": checks,
            })
        })
        .collect();
    let index = state.index_override.unwrap_or_else(|| index_of(&state));
    drop(state);
    with_index(axum::Json(Value::Array(entries)).into_response(), index)
}

async fn catalog_services(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    if let Err(answer) = admit(&shared, &headers) {
        return answer.into_response();
    }
    let blocking = match blocking(&query) {
        Ok(b) => b,
        Err(answer) => return answer.into_response(),
    };
    let index_of = |state: &AgentState| state.index.values().copied().max().unwrap_or(1);
    if let Some((index, wait)) = blocking {
        block(&shared, index, wait, index_of).await;
    }
    let state = shared.state();
    let mut services: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for s in state.services.values() {
        services
            .entry(s.name.clone())
            .or_default()
            .extend(s.tags.iter().cloned());
    }
    let body: serde_json::Map<String, Value> = services
        .into_iter()
        .map(|(name, tags)| (name, json!(tags)))
        .collect();
    let index = state.index_override.unwrap_or_else(|| index_of(&state));
    drop(state);
    with_index(axum::Json(Value::Object(body)).into_response(), index)
}

fn service_json(s: &Service) -> Value {
    json!({
        "ID": s.id, "Service": s.name, "Tags": s.tags, "Address": s.address,
        "Meta": s.meta, "Port": s.port, "Weights": {"Passing": 1, "Warning": 1},
        "EnableTagOverride": false, "Namespace": "default",
    })
}

fn with_index(mut response: Response, index: u64) -> Response {
    if let Ok(value) = HeaderValue::from_str(&index.to_string()) {
        response.headers_mut().insert("X-Consul-Index", value);
    }
    response
        .headers_mut()
        .insert("X-Consul-KnownLeader", HeaderValue::from_static("true"));
    response
}

/// Expires TTL checks and reaps services critical for longer than their limit, every 100 ms.
async fn tick(shared: std::sync::Weak<Shared>) {
    let mut ticker = tokio::time::interval(Duration::from_millis(100));
    loop {
        ticker.tick().await;
        let Some(shared) = shared.upgrade() else {
            return;
        };
        tick_once(&shared);
    }
}

fn tick_once(shared: &Shared) {
    let now = Instant::now();
    let mut state = shared.state();
    let mut changed = Vec::new();
    let mut reaped = Vec::new();
    for service in state.services.values_mut() {
        for check in &mut service.checks {
            if check.status != "critical" && now >= check.expires {
                check.status = "critical".into();
                check.output = "TTL expired".into();
                check.critical_since = Some(now);
                changed.push(service.name.clone());
            }
            if let (Some(since), Some(after)) = (check.critical_since, check.deregister_after) {
                if now.duration_since(since) >= after {
                    reaped.push((service.id.clone(), service.name.clone()));
                }
            }
        }
    }
    for (id, name) in reaped {
        state.services.remove(&id);
        state.bodies.remove(&id);
        changed.push(name);
    }
    for name in changed {
        shared.changed(&mut state, &name);
    }
}

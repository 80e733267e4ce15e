//! A small typed client of etcd's JSON gateway (`/v3/...`): range, put, put-if-absent, delete,
//! lease grant / keepalive / revoke / time-to-live, the streaming watch, and authentication.
//!
//! The gateway's encoding stops here: keys and values are base64, 64-bit integers travel as
//! JSON strings, default enum values are omitted (a PUT event has no `type`), and streaming
//! calls answer `{"result": …}` or `{"error": …}` objects. Callers see bytes, `i64`s and enums.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::EtcdError;

/// A client of one etcd cluster through its gateway, with failover between endpoints.
#[derive(Debug)]
pub(crate) struct Gateway {
    http: reqwest::Client,
    endpoints: Vec<String>,
    /// The endpoint that answered last: tried first next time.
    current: AtomicUsize,
    credentials: Option<(String, String)>,
    token: Mutex<Option<String>>,
    timeout: Duration,
    /// Unary requests in flight, at most [`MAX_UNARY_IN_FLIGHT`]: 200 registrations at once
    /// then share a few connections instead of opening (and, with TLS, handshaking) 200, and
    /// a request's timeout starts when it is sent, not while it waits its turn here.
    unary: tokio::sync::Semaphore,
}

/// Unary requests one handle has in flight at most (watches are not counted).
pub(crate) const MAX_UNARY_IN_FLIGHT: usize = 32;

/// One key-value pair as stored.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub(crate) struct KeyValue {
    #[serde(deserialize_with = "de_bytes")]
    pub(crate) key: Vec<u8>,
    #[serde(deserialize_with = "de_bytes")]
    pub(crate) value: Vec<u8>,
    #[serde(deserialize_with = "de_int")]
    pub(crate) mod_revision: i64,
    #[serde(deserialize_with = "de_int")]
    pub(crate) lease: i64,
}

/// What a range read.
#[derive(Debug, Default)]
pub(crate) struct Range {
    /// The store revision the listing is at: watch from the next one.
    pub(crate) revision: i64,
    pub(crate) kvs: Vec<KeyValue>,
}

/// A watch event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Event {
    Put(KeyValue),
    Delete(KeyValue),
}

/// One message of a watch stream.
#[derive(Debug, Default)]
pub(crate) struct WatchMessage {
    /// The store revision when it was sent (a progress notification promises that every
    /// later event is newer).
    pub(crate) revision: i64,
    pub(crate) created: bool,
    pub(crate) canceled: bool,
    /// Set when the watch was canceled because its start revision was compacted: the oldest
    /// revision still available.
    pub(crate) compact_revision: i64,
    pub(crate) cancel_reason: String,
    pub(crate) events: Vec<Event>,
}

/// A watch stream: messages as the server sends them.
#[derive(Debug)]
pub(crate) struct WatchStream {
    response: reqwest::Response,
    endpoint: String,
    buffer: Vec<u8>,
    /// A message read ahead (the creation answer, checked for an auth refusal).
    first: Option<WatchMessage>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Header {
    #[serde(deserialize_with = "de_int")]
    revision: i64,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RangeResponse {
    header: Header,
    kvs: Vec<KeyValue>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RevisionResponse {
    header: Header,
    #[serde(deserialize_with = "de_int")]
    deleted: i64,
    succeeded: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct LeaseResponse {
    #[serde(rename = "ID", deserialize_with = "de_int")]
    id: i64,
    #[serde(rename = "TTL", deserialize_with = "de_int")]
    ttl: i64,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct AuthResponse {
    token: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct WireWatchResponse {
    header: Header,
    created: bool,
    canceled: bool,
    #[serde(deserialize_with = "de_int")]
    compact_revision: i64,
    cancel_reason: String,
    events: Vec<WireEvent>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct WireEvent {
    /// `PUT` is the default and therefore omitted; `DELETE` is spelled out.
    #[serde(rename = "type")]
    kind: String,
    kv: KeyValue,
}

/// What a streaming call answers: one result, or an error.
#[derive(Debug, Deserialize)]
struct Envelope<T> {
    result: Option<T>,
    error: Option<ErrorBody>,
}

/// The gateway's error body: `{"error": "…", "code": 5, "message": "…"}`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ErrorBody {
    error: String,
    code: i32,
    message: String,
}

#[derive(Serialize)]
struct RangeRequest<'a> {
    #[serde(serialize_with = "ser_bytes")]
    key: &'a [u8],
    #[serde(serialize_with = "ser_bytes")]
    range_end: &'a [u8],
    keys_only: bool,
}

#[derive(Serialize)]
struct PutRequest<'a> {
    #[serde(serialize_with = "ser_bytes")]
    key: &'a [u8],
    #[serde(serialize_with = "ser_bytes")]
    value: &'a [u8],
    #[serde(serialize_with = "ser_int")]
    lease: i64,
}

#[derive(Serialize)]
struct DeleteRequest<'a> {
    #[serde(serialize_with = "ser_bytes")]
    key: &'a [u8],
}

#[derive(Serialize)]
struct TxnRequest<'a> {
    compare: [Compare<'a>; 1],
    success: [RequestOp<'a>; 1],
}

#[derive(Serialize)]
struct Compare<'a> {
    #[serde(serialize_with = "ser_bytes")]
    key: &'a [u8],
    target: &'static str,
    result: &'static str,
    #[serde(serialize_with = "ser_int")]
    create_revision: i64,
}

#[derive(Serialize)]
struct RequestOp<'a> {
    request_put: PutRequest<'a>,
}

/// A transaction of count-only ranges, one per key: which keys exist, in one request.
#[derive(Serialize)]
struct CountTxn<'a> {
    success: Vec<CountOp<'a>>,
}

#[derive(Serialize)]
struct CountOp<'a> {
    request_range: CountRequest<'a>,
}

#[derive(Serialize)]
struct CountRequest<'a> {
    #[serde(serialize_with = "ser_bytes")]
    key: &'a [u8],
    count_only: bool,
}

#[derive(Deserialize)]
struct CountTxnResponse {
    #[serde(default)]
    responses: Vec<CountOpResponse>,
}

#[derive(Deserialize)]
struct CountOpResponse {
    #[serde(default)]
    response_range: Option<CountResponse>,
}

#[derive(Deserialize)]
struct CountResponse {
    // Absent when 0 (proto3's JSON leaves zeros out).
    #[serde(default, deserialize_with = "de_int")]
    count: i64,
}

#[derive(Serialize)]
struct LeaseRequest {
    #[serde(rename = "ID", serialize_with = "ser_int")]
    id: i64,
}

#[derive(Serialize)]
struct GrantRequest {
    #[serde(rename = "TTL", serialize_with = "ser_int")]
    ttl: i64,
}

#[derive(Serialize)]
struct AuthRequest<'a> {
    name: &'a str,
    password: &'a str,
}

#[derive(Serialize)]
struct WatchRequest<'a> {
    create_request: WatchCreate<'a>,
}

#[derive(Serialize)]
struct WatchCreate<'a> {
    #[serde(serialize_with = "ser_bytes")]
    key: &'a [u8],
    #[serde(serialize_with = "ser_bytes")]
    range_end: &'a [u8],
    #[serde(serialize_with = "ser_int")]
    start_revision: i64,
    progress_notify: bool,
}

impl Gateway {
    /// A client of `endpoints` (`http://host:port` each), authenticating with `credentials`
    /// when given; `timeout` bounds each unary call.
    pub(crate) fn new(
        endpoints: Vec<String>,
        credentials: Option<(String, String)>,
        timeout: Duration,
        tls: &srpc_registry_kit::TlsConfig,
    ) -> srpc_registry_kit::Result<Gateway> {
        let mut builder = reqwest::Client::builder()
            .connect_timeout(timeout)
            // A watch on a silent network must still notice, some day, that it is dead.
            .tcp_keepalive(Duration::from_secs(15))
            .no_proxy();
        if tls.enabled {
            // The files are read here, so a missing or broken one fails `connect`, named.
            builder = builder.use_preconfigured_tls((*tls.client_config()?).clone());
        }
        let http = builder
            .build()
            .map_err(|e| srpc_registry_kit::Error::backend(crate::SCHEME, e))?;
        Ok(Gateway {
            http,
            endpoints,
            current: AtomicUsize::new(0),
            credentials,
            token: Mutex::new(None),
            timeout,
            unary: tokio::sync::Semaphore::new(MAX_UNARY_IN_FLIGHT),
        })
    }

    /// Every key that starts with `prefix`, with the revision of the listing.
    pub(crate) async fn range_prefix(
        &self,
        prefix: &str,
        keys_only: bool,
    ) -> Result<Range, EtcdError> {
        let request = RangeRequest {
            key: prefix.as_bytes(),
            range_end: &prefix_end(prefix.as_bytes()),
            keys_only,
        };
        let r: RangeResponse = self.call("/v3/kv/range", &request).await?;
        Ok(Range {
            revision: r.header.revision,
            kvs: r.kvs,
        })
    }

    /// Writes `key` (attached to `lease` unless it is 0); returns the new revision.
    pub(crate) async fn put(&self, key: &[u8], value: &[u8], lease: i64) -> Result<i64, EtcdError> {
        let request = PutRequest { key, value, lease };
        let r: RevisionResponse = self.call("/v3/kv/put", &request).await?;
        Ok(r.header.revision)
    }

    /// Writes `key` without a lease unless it exists; whether it wrote.
    pub(crate) async fn put_if_absent(&self, key: &[u8], value: &[u8]) -> Result<bool, EtcdError> {
        let request = TxnRequest {
            compare: [Compare {
                key,
                target: "CREATE",
                result: "EQUAL",
                create_revision: 0,
            }],
            success: [RequestOp {
                request_put: PutRequest {
                    key,
                    value,
                    lease: 0,
                },
            }],
        };
        let r: RevisionResponse = self.call("/v3/kv/txn", &request).await?;
        Ok(r.succeeded)
    }

    /// Which of `keys` exist, in one transaction per 64 keys (etcd's default limit is 128
    /// operations per transaction).
    pub(crate) async fn exist(&self, keys: &[&[u8]]) -> Result<Vec<bool>, EtcdError> {
        let mut exist = Vec::with_capacity(keys.len());
        for chunk in keys.chunks(64) {
            let request = CountTxn {
                success: chunk
                    .iter()
                    .map(|key| CountOp {
                        request_range: CountRequest {
                            key,
                            count_only: true,
                        },
                    })
                    .collect(),
            };
            let r: CountTxnResponse = self.call("/v3/kv/txn", &request).await?;
            let mut counts = r
                .responses
                .into_iter()
                .map(|op| op.response_range.map_or(0, |range| range.count));
            // An answer with fewer responses than asked counts the rest as present: never
            // write again on a doubt.
            exist.extend(
                chunk
                    .iter()
                    .map(|_| counts.next().is_none_or(|count| count > 0)),
            );
        }
        Ok(exist)
    }

    /// Deletes `key`; how many keys went (0 or 1).
    pub(crate) async fn delete(&self, key: &[u8]) -> Result<i64, EtcdError> {
        let r: RevisionResponse = self
            .call("/v3/kv/deleterange", &DeleteRequest { key })
            .await?;
        Ok(r.deleted)
    }

    /// Grants a lease of `ttl` seconds; its ID and the TTL etcd gave (it raises short ones).
    pub(crate) async fn grant(&self, ttl: i64) -> Result<(i64, i64), EtcdError> {
        let r: LeaseResponse = self.call("/v3/lease/grant", &GrantRequest { ttl }).await?;
        Ok((r.id, r.ttl))
    }

    /// Renews a lease once; the TTL it has again, ≤ 0 when the lease is gone.
    pub(crate) async fn keep_alive(&self, id: i64) -> Result<i64, EtcdError> {
        let r: LeaseResponse = self
            .call_stream_once("/v3/lease/keepalive", &LeaseRequest { id })
            .await?;
        Ok(r.ttl)
    }

    /// The seconds a lease has left; −1 when it is gone.
    pub(crate) async fn time_to_live(&self, id: i64) -> Result<i64, EtcdError> {
        let r: LeaseResponse = self
            .call("/v3/lease/timetolive", &LeaseRequest { id })
            .await?;
        Ok(r.ttl)
    }

    /// Revokes a lease, deleting every key attached to it; a lease already gone is fine.
    pub(crate) async fn revoke(&self, id: i64) -> Result<(), EtcdError> {
        match self
            .call::<_, RevisionResponse>("/v3/lease/revoke", &LeaseRequest { id })
            .await
        {
            Ok(_) => Ok(()),
            Err(error) if error.is_lease_not_found() => Ok(()),
            Err(error) => Err(error),
        }
    }

    /// Watches every key that starts with `prefix` from `start_revision` (inclusive), with
    /// progress notifications.
    pub(crate) async fn watch_prefix(
        &self,
        prefix: &str,
        start_revision: i64,
    ) -> Result<WatchStream, EtcdError> {
        let request = WatchRequest {
            create_request: WatchCreate {
                key: prefix.as_bytes(),
                range_end: &prefix_end(prefix.as_bytes()),
                start_revision,
                progress_notify: true,
            },
        };
        let body = to_json(&request);
        let mut reauthenticated = false;
        loop {
            let (endpoint, response) = self.send("/v3/watch", &body, None).await?;
            let mut stream = WatchStream {
                response,
                endpoint,
                buffer: Vec::new(),
                first: None,
            };
            if self.credentials.is_none() {
                return Ok(stream);
            }
            // A token the server no longer knows (it restarted, or the token idled past its
            // TTL) is not refused with an error status here as in unary calls: the watch is
            // created and cancelled at once, "permission denied". Authenticate again once,
            // or the watch would be opened with the same token forever.
            match tokio::time::timeout(self.timeout, stream.next()).await {
                Ok(Ok(Some(message)))
                    if !reauthenticated
                        && message.canceled
                        && is_auth_refusal(&message.cancel_reason) =>
                {
                    tracing::info!(backend = crate::SCHEME, reason = %message.cancel_reason,
                        "watch refused with the auth token; authenticating again");
                    *self.lock_token() = None;
                    reauthenticated = true;
                }
                Ok(Ok(message)) => {
                    stream.first = message;
                    return Ok(stream);
                }
                Ok(Err(error)) => return Err(error),
                // Not answered yet: the caller reads on, with its own idle limit.
                Err(_) => return Ok(stream),
            }
        }
    }

    /// A unary call: one JSON request, one JSON answer.
    async fn call<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        path: &'static str,
        request: &Req,
    ) -> Result<Resp, EtcdError> {
        let (endpoint, bytes) = self.exchange(path, request).await?;
        serde_json::from_slice(&bytes).map_err(|e| invalid(&endpoint, path, e))
    }

    /// A streaming call sent one request: its first answer.
    async fn call_stream_once<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        path: &'static str,
        request: &Req,
    ) -> Result<Resp, EtcdError> {
        let (endpoint, bytes) = self.exchange(path, request).await?;
        let first = serde_json::Deserializer::from_slice(&bytes)
            .into_iter::<Envelope<Resp>>()
            .next();
        match first {
            Some(Ok(envelope)) => open(envelope, &endpoint, path),
            Some(Err(e)) => Err(invalid(&endpoint, path, e)),
            None => Err(invalid(&endpoint, path, "an empty answer")),
        }
    }

    /// Sends one JSON request (with failover and authentication) and reads the whole answer.
    async fn exchange(
        &self,
        path: &'static str,
        request: &impl Serialize,
    ) -> Result<(String, Vec<u8>), EtcdError> {
        let body = to_json(request);
        // The semaphore is never closed; without a permit the request would still go.
        let _turn = self.unary.acquire().await.ok();
        let (endpoint, response) = self.send(path, &body, Some(self.timeout)).await?;
        let bytes = read_body(&endpoint, response).await?;
        Ok((endpoint, bytes))
    }

    /// Sends a request to the endpoints in turn, starting with the one that answered last,
    /// authenticating first when credentials are set and again when the token expired.
    /// Returns the endpoint that answered and its successful response.
    async fn send(
        &self,
        path: &'static str,
        body: &[u8],
        timeout: Option<Duration>,
    ) -> Result<(String, reqwest::Response), EtcdError> {
        let mut reauthenticated = false;
        loop {
            let token = self.token().await?;
            match self
                .send_failover(path, body, timeout, token.as_deref())
                .await
            {
                Err(error) if error.is_auth_expired() && self.credentials.is_some() => {
                    if reauthenticated {
                        return Err(error);
                    }
                    tracing::info!(backend = crate::SCHEME, %error, "auth token refused; authenticating again");
                    *self.lock_token() = None;
                    reauthenticated = true;
                }
                other => return other,
            }
        }
    }

    async fn send_failover(
        &self,
        path: &'static str,
        body: &[u8],
        timeout: Option<Duration>,
        token: Option<&str>,
    ) -> Result<(String, reqwest::Response), EtcdError> {
        let first = self.current.load(Ordering::Relaxed);
        let count = self.endpoints.len().max(1);
        let mut last_error = None;
        for step in 0..count {
            let index = (first + step) % count;
            let Some(endpoint) = self.endpoints.get(index) else {
                break;
            };
            match self.send_once(endpoint, path, body, timeout, token).await {
                Ok(response) => {
                    if index != first {
                        tracing::info!(backend = crate::SCHEME, %endpoint, "failed over to another etcd endpoint");
                        self.current.store(index, Ordering::Relaxed);
                    }
                    return Ok((endpoint.clone(), response));
                }
                Err(error) if error.try_next_endpoint() => {
                    tracing::debug!(backend = crate::SCHEME, %endpoint, %error, "etcd endpoint failed");
                    last_error = Some(error);
                }
                Err(error) => return Err(error),
            }
        }
        Err(last_error.unwrap_or(EtcdError::NoEndpoint))
    }

    async fn send_once(
        &self,
        endpoint: &str,
        path: &'static str,
        body: &[u8],
        timeout: Option<Duration>,
        token: Option<&str>,
    ) -> Result<reqwest::Response, EtcdError> {
        let mut request = self
            .http
            .post(format!("{endpoint}{path}"))
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body.to_vec());
        if let Some(timeout) = timeout {
            request = request.timeout(timeout);
        }
        if let Some(token) = token {
            request = request.header(reqwest::header::AUTHORIZATION, token);
        }
        let unreachable = |source| EtcdError::Unreachable {
            endpoint: endpoint.to_owned(),
            source,
        };
        let response = request.send().await.map_err(unreachable)?;
        if response.status().is_success() {
            return Ok(response);
        }
        let status = response.status();
        let bytes = response.bytes().await.map_err(unreachable)?;
        let body: ErrorBody = serde_json::from_slice(&bytes).unwrap_or_else(|_| ErrorBody {
            error: String::from_utf8_lossy(&bytes).into_owned(),
            code: 0,
            message: String::new(),
        });
        Err(refused(endpoint, path, body, status.as_u16()))
    }

    /// The auth token, authenticating first when credentials are set and there is none.
    async fn token(&self) -> Result<Option<String>, EtcdError> {
        let Some((name, password)) = &self.credentials else {
            return Ok(None);
        };
        if let Some(token) = self.lock_token().clone() {
            return Ok(Some(token));
        }
        let body = to_json(&AuthRequest { name, password });
        let (endpoint, response) = self
            .send_failover("/v3/auth/authenticate", &body, Some(self.timeout), None)
            .await?;
        let bytes = read_body(&endpoint, response).await?;
        let auth: AuthResponse = serde_json::from_slice(&bytes)
            .map_err(|e| invalid(&endpoint, "/v3/auth/authenticate", e))?;
        *self.lock_token() = Some(auth.token.clone());
        Ok(Some(auth.token))
    }

    fn lock_token(&self) -> std::sync::MutexGuard<'_, Option<String>> {
        self.token.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl WatchStream {
    /// The next message; `None` when the server closed the stream.
    pub(crate) async fn next(&mut self) -> Result<Option<WatchMessage>, EtcdError> {
        if let Some(first) = self.first.take() {
            return Ok(Some(first));
        }
        loop {
            let mut objects = serde_json::Deserializer::from_slice(&self.buffer)
                .into_iter::<Envelope<WireWatchResponse>>();
            match objects.next() {
                Some(Ok(envelope)) => {
                    let used = objects.byte_offset();
                    self.buffer.drain(..used);
                    let wire = open(envelope, &self.endpoint, "/v3/watch")?;
                    return Ok(Some(WatchMessage::from(wire)));
                }
                // Half an object so far: read on.
                Some(Err(e)) if e.is_eof() => {}
                Some(Err(e)) => return Err(invalid(&self.endpoint, "/v3/watch", e)),
                None => self.buffer.clear(), // Only white space.
            }
            match self.response.chunk().await {
                Ok(Some(chunk)) => self.buffer.extend_from_slice(&chunk),
                Ok(None) => return Ok(None),
                Err(source) => {
                    return Err(EtcdError::Unreachable {
                        endpoint: self.endpoint.clone(),
                        source,
                    });
                }
            }
        }
    }
}

impl From<WireWatchResponse> for WatchMessage {
    fn from(wire: WireWatchResponse) -> WatchMessage {
        WatchMessage {
            revision: wire.header.revision,
            created: wire.created,
            canceled: wire.canceled,
            compact_revision: wire.compact_revision,
            cancel_reason: wire.cancel_reason,
            events: wire
                .events
                .into_iter()
                .map(|e| match e.kind.as_str() {
                    "DELETE" => Event::Delete(e.kv),
                    _ => Event::Put(e.kv),
                })
                .collect(),
        }
    }
}

/// The end of the range of every key that starts with `prefix`: its last byte below 0xff
/// incremented (etcd's rule; `\0` means "to the end of the keyspace").
/// Whether a watch was cancelled for its credentials rather than for what it watches.
fn is_auth_refusal(reason: &str) -> bool {
    reason.contains("permission denied") || reason.contains("invalid auth token")
}

fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

/// The whole body of a successful answer.
async fn read_body(endpoint: &str, response: reqwest::Response) -> Result<Vec<u8>, EtcdError> {
    response
        .bytes()
        .await
        .map(|b| b.to_vec())
        .map_err(|source| EtcdError::Unreachable {
            endpoint: endpoint.to_owned(),
            source,
        })
}

fn open<T>(envelope: Envelope<T>, endpoint: &str, path: &'static str) -> Result<T, EtcdError> {
    match (envelope.result, envelope.error) {
        (_, Some(error)) => Err(refused(endpoint, path, error, 0)),
        (Some(result), None) => Ok(result),
        (None, None) => Err(invalid(endpoint, path, "neither a result nor an error")),
    }
}

fn refused(endpoint: &str, path: &'static str, body: ErrorBody, status: u16) -> EtcdError {
    let message = if body.message.is_empty() {
        body.error
    } else {
        body.message
    };
    EtcdError::Refused {
        endpoint: endpoint.to_owned(),
        path,
        code: body.code,
        message: if message.is_empty() {
            format!("HTTP status {status}")
        } else {
            message
        },
    }
}

fn invalid(
    endpoint: &str,
    path: &'static str,
    source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
) -> EtcdError {
    EtcdError::InvalidAnswer {
        endpoint: endpoint.to_owned(),
        path,
        source: source.into(),
    }
}

fn to_json(value: &impl Serialize) -> Vec<u8> {
    // Serializing these plain structs cannot fail; an empty object would be refused by etcd.
    serde_json::to_vec(value).unwrap_or_else(|_| b"{}".to_vec())
}

fn ser_bytes<S: Serializer>(bytes: &&[u8], serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&BASE64.encode(bytes))
}

fn ser_int<S: Serializer>(value: &i64, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&value.to_string())
}

fn de_bytes<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<u8>, D::Error> {
    let text = Option::<String>::deserialize(deserializer)?.unwrap_or_default();
    BASE64
        .decode(text.as_bytes())
        .map_err(serde::de::Error::custom)
}

/// 64-bit integers come as strings; accept numbers too.
fn de_int<'de, D: Deserializer<'de>>(deserializer: D) -> Result<i64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Int {
        Text(String),
        Number(i64),
    }
    match Option::<Int>::deserialize(deserializer)? {
        None => Ok(0),
        Some(Int::Number(n)) => Ok(n),
        Some(Int::Text(text)) => text.parse().map_err(serde::de::Error::custom),
    }
}

/// Decodes `bytes` as every gateway answer the backend reads: a watch stream (a sequence of
/// envelopes, as `WatchStream::next` reads them), a range, a revision, a lease and an error
/// body. Returns the key-values met, for the backend's key reader.
#[cfg(fuzzing)]
pub(crate) fn fuzz_decode(bytes: &[u8]) -> Vec<KeyValue> {
    let mut kvs = Vec::new();
    let objects =
        serde_json::Deserializer::from_slice(bytes).into_iter::<Envelope<WireWatchResponse>>();
    for envelope in objects {
        let Ok(envelope) = envelope else { break };
        if let Ok(wire) = open(envelope, "fuzz", "/v3/watch") {
            for event in WatchMessage::from(wire).events {
                match event {
                    Event::Put(kv) | Event::Delete(kv) => kvs.push(kv),
                }
            }
        }
    }
    if let Ok(range) = serde_json::from_slice::<RangeResponse>(bytes) {
        kvs.extend(range.kvs);
    }
    let _ = serde_json::from_slice::<RevisionResponse>(bytes);
    let _ = serde_json::from_slice::<LeaseResponse>(bytes);
    let _ = serde_json::from_slice::<AuthResponse>(bytes);
    let _ = serde_json::from_slice::<ErrorBody>(bytes);
    kvs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watch_messages_decode_as_the_gateway_sends_them() {
        // Taken from etcd 3.4.23: a PUT has no `type`; a DELETE says so; integers are text.
        let put = r#"{"result":{"header":{"cluster_id":"1","revision":"2","raft_term":"2"},"events":[{"kv":{"key":"L2EveA==","create_revision":"2","mod_revision":"2","version":"1","value":"dg=="}}]}}"#;
        let envelope: Envelope<WireWatchResponse> = serde_json::from_str(put).unwrap();
        let message = WatchMessage::from(open(envelope, "e", "/v3/watch").unwrap());
        assert_eq!(message.revision, 2);
        let Event::Put(kv) = &message.events[0] else {
            panic!("a put: {message:?}")
        };
        assert_eq!(
            (kv.key.as_slice(), kv.value.as_slice()),
            (&b"/a/x"[..], &b"v"[..])
        );
        assert_eq!(kv.mod_revision, 2);

        let delete = r#"{"result":{"header":{"revision":"3"},"events":[{"type":"DELETE","kv":{"key":"L2EveA==","mod_revision":"3"}}]}}"#;
        let envelope: Envelope<WireWatchResponse> = serde_json::from_str(delete).unwrap();
        let message = WatchMessage::from(open(envelope, "e", "/v3/watch").unwrap());
        assert!(matches!(&message.events[0], Event::Delete(kv) if kv.key == b"/a/x"));

        let compacted =
            r#"{"result":{"header":{"raft_term":"2"},"canceled":true,"compact_revision":"3"}}"#;
        let envelope: Envelope<WireWatchResponse> = serde_json::from_str(compacted).unwrap();
        let message = WatchMessage::from(open(envelope, "e", "/v3/watch").unwrap());
        assert!(message.canceled && message.compact_revision == 3);
    }

    #[test]
    fn errors_and_lease_answers_decode() {
        let lost = r#"{"result":{"header":{"revision":"2"},"ID":"12345"}}"#;
        let envelope: Envelope<LeaseResponse> = serde_json::from_str(lost).unwrap();
        let lease = open(envelope, "e", "/v3/lease/keepalive").unwrap();
        assert_eq!(
            (lease.id, lease.ttl),
            (12345, 0),
            "an omitted TTL is a lost lease"
        );

        let error = r#"{"error":"etcdserver: requested lease not found","message":"etcdserver: requested lease not found","code":5}"#;
        let body: ErrorBody = serde_json::from_str(error).unwrap();
        let error = refused("e", "/v3/kv/put", body, 404);
        assert!(error.is_lease_not_found(), "{error}");
        assert!(!error.is_auth_expired());

        assert!(serde_json::from_str::<KeyValue>(r#"{"key":"!!"}"#).is_err());
        assert!(serde_json::from_str::<KeyValue>(r#"{"mod_revision":"x"}"#).is_err());
    }

    #[test]
    fn watches_refused_for_their_token_are_told_apart() {
        // 3.4 and 3.5 cancel a watch created with a token they no longer know thus.
        assert!(is_auth_refusal(
            "rpc error: code = Unauthenticated desc = etcdserver: invalid auth token"
        ));
        assert!(is_auth_refusal(
            "rpc error: code = PermissionDenied desc = etcdserver: permission denied"
        ));
        assert!(!is_auth_refusal(
            "mvcc: required revision has been compacted"
        ));
    }

    #[test]
    fn prefix_ends() {
        assert_eq!(prefix_end(b"/a/"), b"/a0");
        assert_eq!(prefix_end(b"a\xff"), b"b");
        assert_eq!(prefix_end(b"\xff"), b"\0");
    }
}

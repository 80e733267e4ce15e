//! Dubbo's `jsonrpc` protocol: JSON-RPC 2.0 over HTTP POST to `http://host:port/<path>`, as
//! Dubbo 2.x's `dubbo-rpc-jsonrpc` exports a service (through jsonrpc4j), for providers
//! registered as `jsonrpc://host:port/<interface>`.
//!
//! ```no_run
//! use std::sync::Arc;
//! use srpc_xclient::jsonrpc::JsonRpcTransport;
//! use srpc_xclient::{Discovery, FailMode, Options, XClient};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let (discovery, _list) = Discovery::servers([
//!     "jsonrpc://10.0.0.5:8080/com.acme.Echo",
//!     "jsonrpc://10.0.0.6:8080/com.acme.Echo",
//! ])?;
//! let options = Options::default()
//!     .with_transport(Arc::new(JsonRpcTransport::new()?))
//!     .with_fail_mode(FailMode::Failover, 1);
//! let xclient = XClient::new(discovery, options);
//! // POST http://10.0.0.5:8080/com.acme.Echo
//! // {"jsonrpc":"2.0","method":"echo","params":["hi"],"id":1}
//! let reply: String = xclient.call("com.acme.Echo.echo", &("hi",)).await?;
//! # Ok(()) }
//! ```
//!
//! - **Method.** The JSON-RPC method is the part of the called name after its last `.`
//!   (`com.acme.Echo.echo` calls `echo`); Java method names hold no `.`.
//! - **Arguments** are positional: a tuple, array or `Vec` is the parameter list as it is
//!   (`&("hi", 2)` sends `["hi",2]`, `&()` sends `[]`); any other value is the only
//!   argument (`&"hi"` sends `["hi"]`).
//! - **Errors.** JSON-RPC error objects become [`srpc_core::Error::Remote`]: -32601 is
//!   `NotFound`, -32700/-32600/-32602 `BadRequest`, -32603 `Internal`, any other code
//!   `Handler` (not retried). Their message keeps the code and at most 200 bytes of the
//!   server's text. Connection failures and answers that are not JSON-RPC are retryable;
//!   deadlines and oversized replies are not.
//! - **Metadata** (`CallOptions::with_metadata`) goes as HTTP headers, one per entry.
//! - **Connections.** One HTTP/1.1 client for the transport, with keep-alive: calls to an
//!   endpoint reuse its idle connections (at most 32 kept per endpoint, closed after 90 s
//!   idle). No proxy from the environment is used.
//! - **Bounds.** At most `max_in_flight` calls (64 unless set) are on the wire to one
//!   endpoint at a time, so at most that many HTTP/1.1 connections are open to it; further
//!   calls wait, within their deadline, for one to end, and time out when none does. Replies
//!   over `max_reply` (16 MiB unless set) are refused as they stream in; each call has the
//!   XClient's deadline, its wait for a turn included.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use dubbo_url::Url;
use serde::Deserialize;
use serde_json::value::RawValue;
use srpc_core::{Error, RemoteCode, shorten};
use srpc_registry::with_root_cause;

use crate::transport::{Call, Connection, Transport};

/// The protocol name in provider URLs.
pub const PROTOCOL: &str = "jsonrpc";
/// The default largest reply accepted.
pub const DEFAULT_MAX_REPLY: usize = 16 << 20;
/// The default for how many calls may be on the wire to one endpoint at once.
pub const DEFAULT_MAX_IN_FLIGHT: usize = 64;
/// How much of a server's error text is kept in an error.
const QUOTE: usize = 200;

/// Calls `jsonrpc://` providers (see the [module](self) docs).
#[derive(Debug, Clone)]
pub struct JsonRpcTransport {
    http: reqwest::Client,
    max_reply: usize,
    max_in_flight: usize,
}

impl JsonRpcTransport {
    /// A transport with a 3 s connect timeout, replies up to 16 MiB, and at most 64 calls
    /// on the wire per endpoint.
    pub fn new() -> srpc_core::Result<JsonRpcTransport> {
        JsonRpcTransport::with_limits(Duration::from_secs(3), DEFAULT_MAX_REPLY)
    }

    /// A transport with this connect timeout and largest reply.
    pub fn with_limits(
        connect_timeout: Duration,
        max_reply: usize,
    ) -> srpc_core::Result<JsonRpcTransport> {
        let http = reqwest::Client::builder()
            .no_proxy()
            .connect_timeout(connect_timeout)
            .pool_idle_timeout(Duration::from_secs(90))
            .pool_max_idle_per_host(32)
            .tcp_nodelay(true)
            .build()
            .map_err(|e| Error::Protocol(format!("cannot make the JSON-RPC HTTP client: {e}")))?;
        Ok(JsonRpcTransport {
            http,
            max_reply,
            max_in_flight: DEFAULT_MAX_IN_FLIGHT,
        })
    }

    /// At most `calls` (at least 1) on the wire to one endpoint at once: HTTP/1.1 carries one
    /// call per connection, so this also bounds the connections open to it. Calls past it
    /// wait for a turn within their deadline.
    #[must_use]
    pub fn with_max_in_flight(mut self, calls: usize) -> JsonRpcTransport {
        self.max_in_flight = calls.clamp(1, tokio::sync::Semaphore::MAX_PERMITS);
        self
    }
}

#[async_trait]
impl Transport for JsonRpcTransport {
    fn protocols(&self) -> &[&str] {
        &[PROTOCOL]
    }

    async fn connect(&self, endpoint: &Url) -> srpc_core::Result<Arc<dyn Connection>> {
        if endpoint.param_bool("tls", false).unwrap_or(false) {
            return Err(Error::Protocol(format!(
                "{} asks for TLS (tls=true): the jsonrpc transport calls plain HTTP only",
                endpoint.address()
            )));
        }
        let path = endpoint.path().trim_start_matches('/');
        Ok(Arc::new(JsonRpcConnection {
            http: self.http.clone(),
            addr: endpoint.address(),
            target: format!("http://{}/{path}", endpoint.address()),
            max_reply: self.max_reply,
            next_id: AtomicU64::new(1),
            turns: tokio::sync::Semaphore::new(self.max_in_flight),
        }))
    }
}

/// One endpoint: its POST target and the shared HTTP client.
#[derive(Debug)]
struct JsonRpcConnection {
    http: reqwest::Client,
    addr: String,
    target: String,
    max_reply: usize,
    next_id: AtomicU64,
    /// One per call on the wire to this endpoint.
    turns: tokio::sync::Semaphore,
}

#[derive(Deserialize)]
struct Answer<'a> {
    #[serde(default, borrow)]
    id: Option<&'a RawValue>,
    #[serde(default, borrow)]
    result: Option<&'a RawValue>,
    #[serde(default)]
    error: Option<RpcError>,
}

#[derive(Deserialize)]
struct RpcError {
    code: i64,
    #[serde(default)]
    message: String,
    #[serde(default)]
    data: Option<serde_json::Value>,
}

#[async_trait]
impl Connection for JsonRpcConnection {
    async fn call(&self, call: Call<'_>) -> srpc_core::Result<Vec<u8>> {
        let (method, timeout) = (call.method, call.timeout);
        let started = tokio::time::Instant::now();
        // Our own bound, not the server's doing: waiting for it is part of the deadline.
        let Ok(Ok(_turn)) = tokio::time::timeout(timeout, self.turns.acquire()).await else {
            return Err(Error::Timeout {
                method: method.to_owned(),
                after: timeout,
            });
        };
        let left = timeout.saturating_sub(started.elapsed());
        let name = method.rsplit('.').next().unwrap_or(method);
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let body = envelope(name, &call.request, id)?;
        let mut post = self
            .http
            .post(&self.target)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(reqwest::header::ACCEPT, "application/json")
            .timeout(left);
        // Metadata keys are header tokens already; values were checked for control
        // characters. A value HTTP still refuses fails the call, never silently dropped.
        for (key, value) in call.metadata.iter() {
            let value = reqwest::header::HeaderValue::from_str(value).map_err(|_| {
                Error::Codec(format!("metadata {key:?}: not a valid HTTP header value"))
            })?;
            post = post.header(key, value);
        }
        let sent = post.body(body).send().await;
        let mut response = sent.map_err(|e| self.http_error(method, timeout, &e))?;
        let status = response.status();
        if let Some(length) = response.content_length() {
            if length > self.max_reply as u64 {
                return Err(self.too_large(method, length));
            }
        }
        let mut bytes = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| self.http_error(method, timeout, &e))?
        {
            if bytes.len() + chunk.len() > self.max_reply {
                return Err(self.too_large(method, (bytes.len() + chunk.len()) as u64));
            }
            bytes.extend_from_slice(&chunk);
        }
        let answer: Answer<'_> = match serde_json::from_slice(&bytes) {
            Ok(answer) => answer,
            Err(e) if status == reqwest::StatusCode::NOT_FOUND => {
                return Err(Error::Remote {
                    method: method.to_owned(),
                    code: RemoteCode::NotFound,
                    message: format!("HTTP 404: nothing is exported at {} ({e})", self.target),
                });
            }
            Err(e) => {
                return Err(Error::Protocol(format!(
                    "{} answered HTTP {status} that is not JSON-RPC ({e}): {}",
                    self.addr,
                    quote(&String::from_utf8_lossy(&bytes))
                )));
            }
        };
        if let Some(error) = answer.error {
            return Err(remote(method, error));
        }
        if let Some(their) = answer.id.filter(|i| i.get() != "null") {
            if their.get() != id.to_string() {
                return Err(Error::Protocol(format!(
                    "{} answered id {} to request id {id}",
                    self.addr,
                    quote(their.get())
                )));
            }
        }
        Ok(answer
            .result
            .map_or_else(|| b"null".to_vec(), |r| r.get().as_bytes().to_vec()))
    }
}

impl JsonRpcConnection {
    fn http_error(&self, method: &str, timeout: Duration, e: &reqwest::Error) -> Error {
        if e.is_timeout() {
            if e.is_connect() {
                return Error::ConnectTimeout {
                    addr: self.addr.clone(),
                    after: timeout,
                };
            }
            return Error::Timeout {
                method: method.to_owned(),
                after: timeout,
            };
        }
        if e.is_connect() {
            return Error::Connect {
                addr: self.addr.clone(),
                source: std::io::Error::other(with_root_cause(e)),
            };
        }
        Error::Closed {
            addr: self.addr.clone(),
            reason: with_root_cause(e),
        }
    }

    fn too_large(&self, method: &str, size: u64) -> Error {
        Error::ReplyTooLarge {
            method: method.to_owned(),
            size: u32::try_from(size).unwrap_or(u32::MAX),
            limit: u32::try_from(self.max_reply).unwrap_or(u32::MAX),
        }
    }
}

/// The request object. Arguments encoded as a JSON array are the parameter list; `null`
/// (a unit) is no parameter; anything else is the one parameter.
fn envelope(method: &str, request: &[u8], id: u64) -> srpc_core::Result<Vec<u8>> {
    let args = request.trim_ascii();
    let method = serde_json::to_string(method).map_err(|e| Error::Codec(e.to_string()))?;
    let mut body = Vec::with_capacity(args.len() + method.len() + 64);
    body.extend_from_slice(b"{\"jsonrpc\":\"2.0\",\"method\":");
    body.extend_from_slice(method.as_bytes());
    body.extend_from_slice(b",\"params\":");
    match args.first() {
        Some(b'[') => body.extend_from_slice(args),
        _ if args == b"null" || args.is_empty() => body.extend_from_slice(b"[]"),
        _ => {
            body.push(b'[');
            body.extend_from_slice(args);
            body.push(b']');
        }
    }
    body.extend_from_slice(format!(",\"id\":{id}}}").as_bytes());
    Ok(body)
}

/// A JSON-RPC error object as a remote error.
fn remote(method: &str, error: RpcError) -> Error {
    let code = match error.code {
        -32601 => RemoteCode::NotFound,
        -32700 | -32600 | -32602 => RemoteCode::BadRequest,
        -32603 => RemoteCode::Internal,
        _ => RemoteCode::Handler,
    };
    let mut message = format!("{} (JSON-RPC error {})", quote(&error.message), error.code);
    if let Some(data) = error.data.filter(|d| !d.is_null()) {
        message.push_str(": ");
        message.push_str(&quote(&data.to_string()));
    }
    Error::Remote {
        method: method.to_owned(),
        code,
        message,
    }
}

/// At most about [`QUOTE`] bytes of `text` (head and tail, as `srpc_core::shorten` cuts),
/// with control characters escaped (the server's text is untrusted and ends up in logs and
/// terminals).
fn quote(text: &str) -> String {
    shorten(text, QUOTE).escape_debug().collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn arguments_become_positional_parameters() {
        let body = |args: &str| String::from_utf8(envelope("echo", args.as_bytes(), 7).unwrap());
        assert_eq!(
            body("[\"hi\",2]").unwrap(),
            r#"{"jsonrpc":"2.0","method":"echo","params":["hi",2],"id":7}"#
        );
        assert_eq!(
            body("null").unwrap(),
            r#"{"jsonrpc":"2.0","method":"echo","params":[],"id":7}"#
        );
        assert_eq!(
            body("{\"a\":1}").unwrap(),
            r#"{"jsonrpc":"2.0","method":"echo","params":[{"a":1}],"id":7}"#
        );
        assert_eq!(
            body("\"x\"").unwrap(),
            r#"{"jsonrpc":"2.0","method":"echo","params":["x"],"id":7}"#
        );
        let quoted = String::from_utf8(envelope("a\"b", b"[]", 1).unwrap()).unwrap();
        assert!(quoted.contains(r#""method":"a\"b""#), "{quoted}");
    }

    #[test]
    fn error_objects_map_to_remote_codes_and_are_quoted() {
        let e = |code, message: &str| {
            remote(
                "S.m",
                RpcError {
                    code,
                    message: message.into(),
                    data: None,
                },
            )
        };
        let code = |e: Error| match e {
            Error::Remote { code, .. } => code,
            other => panic!("{other:?}"),
        };
        assert_eq!(code(e(-32601, "no")), RemoteCode::NotFound);
        assert_eq!(code(e(-32602, "no")), RemoteCode::BadRequest);
        assert_eq!(code(e(-32603, "no")), RemoteCode::Internal);
        assert_eq!(code(e(-32000, "no")), RemoteCode::Handler);
        assert!(!e(-32000, "no").is_retryable());
        let long = "x\n".repeat(5_000);
        let text = e(1, &long).to_string();
        assert!(
            text.len() < 600 && text.contains("\\n") && !text.contains('\n'),
            "{text}"
        );
    }
}

//! Transports: how an XClient calls the endpoints of one protocol.
//!
//! An XClient calls an endpoint only if it has a transport for the protocol of the
//! endpoint's URL. srpc's own protocol (`srpc://`, and a bare `host:port` in a static list) is
//! built in; [`Options::with_transport`](crate::Options::with_transport) adds others (the
//! `jsonrpc` feature's [`JsonRpcTransport`](crate::jsonrpc::JsonRpcTransport), or your own).
//! Endpoints of any other protocol are never picked, and a call that finds only those says
//! what it found ([`Error::Uncallable`](crate::Error::Uncallable)).
//!
//! A transport is two small traits: [`Transport`] opens a [`Connection`] to an endpoint, and
//! the connection carries calls. The XClient encodes the argument with the transport's
//! [`Codec`] before [`Connection::call`] and decodes the reply with it after, so selectors,
//! fail modes, retries and hedging are the same for every protocol.
//!
//! ```
//! use std::sync::Arc;
//! use async_trait::async_trait;
//! use srpc_xclient::{Call, Connection, Discovery, Options, Transport, XClient};
//!
//! /// A protocol `echo://` whose "calls" answer with their argument.
//! #[derive(Debug)]
//! struct Echo;
//!
//! #[async_trait]
//! impl Transport for Echo {
//!     fn protocols(&self) -> &[&str] {
//!         &["echo"]
//!     }
//!     async fn connect(&self, _endpoint: &dubbo_url::Url) -> srpc_core::Result<Arc<dyn Connection>> {
//!         Ok(Arc::new(EchoConnection))
//!     }
//! }
//!
//! #[derive(Debug)]
//! struct EchoConnection;
//!
//! #[async_trait]
//! impl Connection for EchoConnection {
//!     async fn call(&self, call: Call<'_>) -> srpc_core::Result<Vec<u8>> {
//!         Ok(call.request)
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let (discovery, _list) = Discovery::servers(["echo://127.0.0.1:7/Echo"])?;
//! let xclient = XClient::new(discovery, Options::default().with_transport(Arc::new(Echo)));
//! let reply: String = xclient.call("Echo.say", "hello").await?;
//! assert_eq!(reply, "hello");
//! # Ok(()) }
//! ```

use std::any::Any;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use dubbo_url::Url;
use srpc_core::{Codec, Metadata};

/// The protocol of srpc's own providers.
pub const SRPC_PROTOCOL: &str = "srpc";

/// The networks rpcx registers its servers under (`tcp@host:port`, read as
/// `tcp://host:port/<Service>`). rpcx's `http@` records read as `http://` and are not
/// counted here: plain HTTP providers use that protocol too.
pub const RPCX_NETWORKS: [&str; 7] = ["tcp", "kcp", "quic", "unix", "reuseport", "ws", "wss"];

/// How an XClient calls the endpoints of some protocols.
#[async_trait]
pub trait Transport: Send + Sync + fmt::Debug + 'static {
    /// The URL protocols this transport calls (`["jsonrpc"]`), compared without case.
    fn protocols(&self) -> &[&str];

    /// How arguments are encoded before [`Connection::call`] and replies decoded after it
    /// (JSON unless the transport says otherwise).
    fn codec(&self) -> Codec {
        Codec::Json
    }

    /// Opens a connection to `endpoint`. The XClient keeps one per endpoint, opened on the
    /// first call, shared by every call, dropped when the endpoint leaves, and opened again
    /// when [`Connection::is_closed`] says so. Errors are the transport's to choose;
    /// [`srpc_core::Error::is_retryable`] decides whether failover tries another endpoint.
    async fn connect(&self, endpoint: &Url) -> srpc_core::Result<Arc<dyn Connection>>;
}

/// One call, as the XClient hands it to a [`Connection`].
#[derive(Debug)]
#[non_exhaustive]
pub struct Call<'a> {
    /// The method as the caller named it (`Service.Method` by srpc's convention).
    pub method: &'a str,
    /// The argument, encoded by the transport's codec.
    pub request: Vec<u8>,
    /// How long the caller waits.
    pub timeout: Duration,
    /// The call's metadata (`CallOptions::with_metadata`); a transport that cannot carry
    /// it must fail the call rather than drop it.
    pub metadata: &'a Metadata,
}

/// One endpoint's connection, as a [`Transport`] opened it.
#[async_trait]
pub trait Connection: Send + Sync + fmt::Debug + 'static {
    /// Carries `call`; returns the reply encoded by the transport's codec.
    async fn call(&self, call: Call<'_>) -> srpc_core::Result<Vec<u8>>;

    /// Whether the connection has ended and a new one must be opened (never, by default).
    fn is_closed(&self) -> bool {
        false
    }

    /// The connection as `Any`, for code that knows its type and carries calls over it
    /// itself ([`Endpoint::connection`](crate::Endpoint::connection)). `None` by default.
    fn as_any(&self) -> Option<&dyn Any> {
        None
    }
}

/// The transports of an XClient: srpc's own (unless turned off) and the added ones.
#[derive(Clone)]
pub(crate) struct Transports {
    pub(crate) srpc: bool,
    pub(crate) added: Vec<Arc<dyn Transport>>,
}

impl Default for Transports {
    fn default() -> Transports {
        Transports {
            srpc: true,
            added: Vec::new(),
        }
    }
}

impl fmt::Debug for Transports {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.names()).finish()
    }
}

impl PartialEq for Transports {
    fn eq(&self, other: &Transports) -> bool {
        self.srpc == other.srpc
            && self.added.len() == other.added.len()
            && self
                .added
                .iter()
                .zip(&other.added)
                .all(|(a, b)| Arc::ptr_eq(a, b))
    }
}

impl Eq for Transports {}

/// How one endpoint is called.
#[derive(Clone)]
pub(crate) enum Route {
    /// srpc's own protocol, through `srpc_core::Client`.
    Srpc,
    /// An added transport.
    Other(Arc<dyn Transport>),
}

impl fmt::Debug for Route {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Route::Srpc => f.write_str("srpc"),
            Route::Other(t) => write!(f, "{t:?}"),
        }
    }
}

impl Transports {
    /// The transport for `url`'s protocol. The first added transport that names it wins, so
    /// an added transport can take over `srpc` too.
    pub(crate) fn route(&self, url: &Url) -> Option<Route> {
        let protocol = url.protocol();
        if let Some(t) = self.added.iter().find(|t| {
            t.protocols()
                .iter()
                .any(|p| p.eq_ignore_ascii_case(protocol))
        }) {
            return Some(Route::Other(t.clone()));
        }
        (self.srpc && protocol.eq_ignore_ascii_case(SRPC_PROTOCOL)).then_some(Route::Srpc)
    }

    /// The protocols these transports call, for messages.
    pub(crate) fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = Vec::new();
        if self.srpc {
            names.push(SRPC_PROTOCOL.to_owned());
        }
        for t in &self.added {
            for p in t.protocols() {
                let p = p.to_ascii_lowercase();
                if !names.contains(&p) {
                    names.push(p);
                }
            }
        }
        names
    }
}

/// How a protocol is named in messages: rpcx's networks as rpcx records, others as URLs.
pub(crate) fn describe_protocol(protocol: &str) -> String {
    if RPCX_NETWORKS
        .iter()
        .any(|n| n.eq_ignore_ascii_case(protocol))
    {
        format!("rpcx (`{protocol}@`)")
    } else {
        format!("`{protocol}://`")
    }
}

/// What to do about providers of a protocol no transport calls, when srpc knows.
pub(crate) fn advice(protocol: &str) -> Option<&'static str> {
    let p = protocol.to_ascii_lowercase();
    Some(match p.as_str() {
        "tri" | "grpc" => {
            "gRPC/Triple providers are called through a tonic client over \
             srpc_tonic::BalancedChannel (facade feature `tonic`)"
        }
        "jsonrpc" => {
            "add srpc_xclient::jsonrpc::JsonRpcTransport (feature `jsonrpc`) with \
             Options::with_transport"
        }
        "dubbo" => "srpc has no transport for Dubbo's binary protocol (hessian2 over dubbo://)",
        _ if RPCX_NETWORKS.contains(&p.as_str()) => "srpc has no transport for rpcx's protocol",
        _ => return None,
    })
}

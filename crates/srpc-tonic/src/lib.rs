//! gRPC and Dubbo's Triple protocol through [tonic]: a channel whose endpoints follow an srpc
//! subscription of `tri://` and `grpc://` providers, picked per call by srpc's selectors
//! ([`BalancedChannel`]), and the URL a tonic server registers under so that Java Dubbo 3
//! consumers of the same IDL find it ([`triple_url`]).
//!
//! Consumer: generated tonic clients take a [`BalancedChannel`] where they take a
//! `tonic::transport::Channel`.
//!
//! ```no_run
//! use srpc_tonic::{BalancedChannel, BalanceOptions};
//! use srpc_xclient::Selector;
//! # async fn run(registry: std::sync::Arc<dyn srpc_registry::Registry>)
//! #     -> Result<(), Box<dyn std::error::Error>> {
//! let query = srpc_registry::Url::parse("consumer://127.0.0.1/helloworld.Greeter")?;
//! let channel = BalancedChannel::new(
//!     registry.subscribe(&query).await?,
//!     BalanceOptions::default().with_selector(Selector::RoundRobin),
//! );
//! // let mut client = GreeterClient::new(channel);   // a tonic-generated client
//! // client.say_hello(HelloRequest { name: "srpc".into() }).await?;
//! # Ok(()) }
//! ```
//!
//! Provider: serve with tonic, then register [`triple_url`]'s URL once the listener is
//! bound, and unregister it before shutting the server down.
//!
//! What the channel does and does not do:
//! - Each provider gets one HTTP/2 connection (a lazily connected `Channel`), shared by
//!   every call and closed when the provider leaves the subscription.
//! - Selectors: all of srpc's ([`srpc_xclient::Selector`]); `ConsistentHash` hashes the
//!   value of a request header named by [`BalanceOptions::with_hash_header`] (random when
//!   the header is absent); `WeightedRoundRobin` reads each URL's `weight`; `LeastLoaded`
//!   counts calls until their response headers arrive.
//! - No retries: a gRPC request body is a stream that may already be consumed, so a failed
//!   call returns its status (tonic's `Status`); the caller decides.
//! - Calls when no provider can be called fail with `UNAVAILABLE` and the XClient's
//!   message ("2 providers of helloworld.Greeter, all `dubbo://`: this XClient calls tri,
//!   grpc").
//! - TLS (feature `tls`): providers whose URL says `tls=true` are dialled over TLS with the
//!   [`BalanceOptions::with_tls`] settings (tonic's `ClientTlsConfig`: the CA, a client
//!   identity, a server name); the others in plain HTTP/2, as srpc's XClient does. A
//!   `tls=true` provider without those settings, or in a build without the feature, is
//!   refused with an error that says which.

use std::any::Any;
use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use async_trait::async_trait;
use dubbo_url::{ProviderUrl, Url};
use srpc_core::ClientOptions;
use srpc_registry::Subscription;
use srpc_xclient::{
    Call, CallOptions, Connection, Discovery, Options, Selector, Transport, XClient,
};
use tonic::body::Body;
use tonic::codegen::{BoxFuture, StdError};
use tonic::transport::Channel;
use tower::ServiceExt;

/// The protocols of gRPC providers: Dubbo 3's Triple (`tri`) and plain `grpc`.
pub const PROTOCOLS: [&str; 2] = ["tri", "grpc"];

/// How a [`BalancedChannel`] picks and connects. Its `Debug` says whether TLS settings are
/// set, never what they hold (tonic's own `Debug` prints a client key's bytes).
#[derive(Clone)]
#[non_exhaustive]
pub struct BalanceOptions {
    /// How a provider is picked per call (default random).
    pub selector: Selector,
    /// The request header whose value is the consistent-hash key.
    pub hash_header: Option<http::HeaderName>,
    /// Connect timeout of each provider's connection (default 3 s).
    pub connect_timeout: Duration,
    /// Only providers whose `group` parameter is this.
    pub group: Option<String>,
    /// TLS settings for providers registered with `tls=true` (feature `tls`).
    #[cfg(feature = "tls")]
    pub tls: Option<tonic::transport::ClientTlsConfig>,
}

impl fmt::Debug for BalanceOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = f.debug_struct("BalanceOptions");
        out.field("selector", &self.selector)
            .field("hash_header", &self.hash_header)
            .field("connect_timeout", &self.connect_timeout)
            .field("group", &self.group);
        #[cfg(feature = "tls")]
        out.field("tls", &self.tls.as_ref().map(|_| "set"));
        out.finish()
    }
}

impl Default for BalanceOptions {
    fn default() -> BalanceOptions {
        BalanceOptions {
            selector: Selector::Random,
            hash_header: None,
            connect_timeout: Duration::from_secs(3),
            group: None,
            #[cfg(feature = "tls")]
            tls: None,
        }
    }
}

impl BalanceOptions {
    /// With a selector.
    #[must_use]
    pub fn with_selector(mut self, selector: Selector) -> BalanceOptions {
        self.selector = selector;
        self
    }

    /// Hash the value of this request header (gRPC metadata, e.g. `x-user-id`) for
    /// [`Selector::ConsistentHash`].
    #[must_use]
    pub fn with_hash_header(mut self, header: http::HeaderName) -> BalanceOptions {
        self.hash_header = Some(header);
        self
    }

    /// With a connect timeout.
    #[must_use]
    pub fn with_connect_timeout(mut self, timeout: Duration) -> BalanceOptions {
        self.connect_timeout = timeout;
        self
    }

    /// Only providers of this group.
    #[must_use]
    pub fn with_group(mut self, group: impl Into<String>) -> BalanceOptions {
        self.group = Some(group.into());
        self
    }

    /// Dial providers registered with `tls=true` over TLS with these settings (the CA that
    /// signed their certificates, a client identity when they ask for one). The server name
    /// checked is the provider's host as registered (its IP address, usually) unless
    /// `domain_name` says another. Providers without `tls=true` stay plain.
    ///
    /// ```no_run
    /// # fn run(ca_pem: &[u8]) {
    /// use srpc_tonic::BalanceOptions;
    /// use tonic::transport::{Certificate, ClientTlsConfig};
    /// let options = BalanceOptions::default()
    ///     .with_tls(ClientTlsConfig::new().ca_certificate(Certificate::from_pem(ca_pem)));
    /// # }
    /// ```
    #[cfg(feature = "tls")]
    #[must_use]
    pub fn with_tls(mut self, tls: tonic::transport::ClientTlsConfig) -> BalanceOptions {
        self.tls = Some(tls);
        self
    }
}

/// A tower service over HTTP/2 that generated tonic clients accept in place of a
/// `Channel`: each call goes to the provider srpc's selector picks among the current `tri://`
/// and `grpc://` providers of a subscription. Cheap to clone; clones share the providers and
/// their connections.
#[derive(Debug, Clone)]
pub struct BalancedChannel {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    xclient: XClient,
    hash_header: Option<http::HeaderName>,
}

impl BalancedChannel {
    /// Follows the providers of `subscription`. Must run inside a tokio runtime.
    pub fn new(subscription: Subscription, options: BalanceOptions) -> BalancedChannel {
        BalancedChannel::from_discovery(Discovery::subscription(subscription), options)
    }

    /// Follows any discovery source (a static list of `tri://` URLs, say).
    pub fn from_discovery(discovery: Discovery, options: BalanceOptions) -> BalancedChannel {
        let mut xoptions = Options::default()
            .without_srpc()
            .with_transport(Arc::new(GrpcTransport {
                connect_timeout: options.connect_timeout,
                #[cfg(feature = "tls")]
                tls: options.tls,
            }))
            .with_selector(options.selector);
        if let Some(group) = options.group {
            xoptions = xoptions.with_group(group);
        }
        BalancedChannel {
            inner: Arc::new(Inner {
                xclient: XClient::new(discovery, xoptions),
                hash_header: options.hash_header,
            }),
        }
    }

    /// The XClient that holds the providers (to look at them, or wait for them with
    /// [`XClient::wait_for_endpoints`]).
    pub fn xclient(&self) -> &XClient {
        &self.inner.xclient
    }
}

impl tower::Service<http::Request<Body>> for BalancedChannel {
    type Response = http::Response<Body>;
    type Error = StdError;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // Each call waits for its own provider's channel (in the future below).
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        let call = match self
            .inner
            .hash_header
            .as_ref()
            .and_then(|h| request.headers().get(h))
        {
            Some(key) => CallOptions::default().with_key(key.as_bytes()),
            None => CallOptions::default(),
        };
        let picked = self.inner.xclient.select(&call);
        let unavailable = picked
            .is_none()
            .then(|| self.inner.xclient.no_endpoint_error().to_string());
        Box::pin(async move {
            let Some(endpoint) = picked else {
                let message = unavailable.unwrap_or_default();
                return Err(Box::new(tonic::Status::unavailable(message)) as StdError);
            };
            let _load = endpoint.track();
            let connection = endpoint
                .connection(&ClientOptions::default())
                .await
                .map_err(|e| Box::new(tonic::Status::unavailable(e.to_string())) as StdError)?;
            let channel = connection
                .as_ref()
                .and_then(|c| c.as_any())
                .and_then(|c| c.downcast_ref::<GrpcConnection>())
                .map(|c| c.channel.clone())
                .ok_or_else(|| {
                    Box::new(tonic::Status::internal(format!(
                        "{} has no gRPC connection",
                        endpoint.addr()
                    ))) as StdError
                })?;
            let response = channel.oneshot(request).await.map_err(StdError::from)?;
            Ok(response)
        })
    }
}

/// Opens a lazily connected tonic `Channel` per provider (the XClient keeps it).
struct GrpcTransport {
    connect_timeout: Duration,
    #[cfg(feature = "tls")]
    tls: Option<tonic::transport::ClientTlsConfig>,
}

impl fmt::Debug for GrpcTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = f.debug_struct("GrpcTransport");
        out.field("connect_timeout", &self.connect_timeout);
        // Whether there are TLS settings, not their keys.
        #[cfg(feature = "tls")]
        out.field("tls", &self.tls.as_ref().map(|_| "set"));
        out.finish()
    }
}

impl GrpcTransport {
    /// The endpoint to dial: `https://` with the TLS settings for a `tls=true` provider,
    /// `http://` for the others.
    fn endpoint(&self, url: &Url) -> srpc_core::Result<tonic::transport::Endpoint> {
        let address = url.address();
        let wants_tls = url.param_bool("tls", false).unwrap_or(false);
        let scheme = if wants_tls { "https" } else { "http" };
        let endpoint = tonic::transport::Endpoint::from_shared(format!("{scheme}://{address}"))
            .map_err(|e| {
                srpc_core::Error::Protocol(format!("{address} is no gRPC address: {e}"))
            })?;
        if !wants_tls {
            return Ok(endpoint);
        }
        #[cfg(feature = "tls")]
        {
            let Some(tls) = self.tls.clone() else {
                return Err(srpc_core::Error::Protocol(format!(
                    "{address} asks for TLS (tls=true): give the channel TLS settings \
                     (BalanceOptions::with_tls)"
                )));
            };
            endpoint.tls_config(tls).map_err(|e| {
                srpc_core::Error::Protocol(format!(
                    "{address}: the TLS settings cannot be used: {}",
                    srpc_registry::with_root_cause(&e)
                ))
            })
        }
        #[cfg(not(feature = "tls"))]
        {
            Err(srpc_core::Error::Protocol(format!(
                "{address} asks for TLS (tls=true): this build of srpc-tonic has no TLS \
                 (the `tls` feature)"
            )))
        }
    }
}

#[async_trait]
impl Transport for GrpcTransport {
    fn protocols(&self) -> &[&str] {
        &PROTOCOLS
    }

    async fn connect(&self, endpoint: &Url) -> srpc_core::Result<Arc<dyn Connection>> {
        let channel = self
            .endpoint(endpoint)?
            .connect_timeout(self.connect_timeout)
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(30))
            .keep_alive_timeout(Duration::from_secs(10))
            .connect_lazy();
        Ok(Arc::new(GrpcConnection { channel }))
    }
}

/// One provider's tonic channel.
#[derive(Debug)]
struct GrpcConnection {
    channel: Channel,
}

#[async_trait]
impl Connection for GrpcConnection {
    async fn call(&self, call: Call<'_>) -> srpc_core::Result<Vec<u8>> {
        Err(srpc_core::Error::Codec(format!(
            "{}: gRPC providers are called through a tonic client over BalancedChannel, \
             not XClient::call",
            call.method
        )))
    }

    fn as_any(&self) -> Option<&dyn Any> {
        Some(self)
    }
}

/// The URL a gRPC/Triple provider registers under, in the form Java Dubbo 3 writes for an
/// IDL (protobuf) service: `tri://host:port/<package.Service>?interface=<package.Service>&…`.
/// `service` is the gRPC service name (a tonic server's
/// `<S as tonic::server::NamedService>::NAME`), `methods` its method names as the IDL writes
/// them (`SayHello`). Add `version`, `group`, `weight` or `application` on the result, then
/// [`ProviderUrl::build`] with the address consumers dial.
pub fn triple_url<'a>(
    service: impl Into<String>,
    methods: impl IntoIterator<Item = &'a str>,
) -> ProviderUrl {
    ProviderUrl::new(service).protocol("tri").methods(methods)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[cfg(feature = "tls")]
    #[test]
    fn debug_output_never_shows_tls_keys() {
        use tonic::transport::{ClientTlsConfig, Identity};
        let key = "-----BEGIN PRIVATE KEY-----\nc2VjcmV0\n-----END PRIVATE KEY-----\n";
        let tls = ClientTlsConfig::new().identity(Identity::from_pem("cert", key));
        assert!(
            format!("{tls:?}").contains("45, 45, 45"),
            "tonic prints the key's bytes"
        );
        let options = BalanceOptions::default().with_tls(tls.clone());
        let transport = GrpcTransport {
            connect_timeout: Duration::from_secs(1),
            tls: Some(tls),
        };
        for text in [format!("{options:?}"), format!("{transport:?}")] {
            assert!(text.contains("tls: Some(\"set\")"), "{text}");
            assert!(
                !text.contains("45, 45, 45") && !text.contains("PRIVATE"),
                "{text}"
            );
        }
    }

    #[test]
    fn a_triple_url_is_the_form_java_dubbo_writes() {
        let url = triple_url("helloworld.Greeter", ["SayHello", "SayBye", "SayHello"])
            .application("greeter")
            .version("1.0.0")
            .build("127.0.0.1:50051".parse().unwrap())
            .unwrap();
        let text = url.to_full_string();
        assert!(
            text.starts_with(
                "tri://127.0.0.1:50051/helloworld.Greeter?anyhost=false&application=greeter\
                 &deprecated=false&dubbo=2.0.2&dynamic=true&generic=false\
                 &interface=helloworld.Greeter&methods=SayBye,SayHello&pid="
            ),
            "{text}"
        );
        assert!(text.contains("&side=provider&timestamp="), "{text}");
        assert!(text.ends_with("&version=1.0.0"), "{text}");
        assert_eq!(url.service_interface(), "helloworld.Greeter");
    }
}

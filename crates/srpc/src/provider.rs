//! A provider in one call: bind, work out the address to advertise, build the Dubbo URL,
//! register once listening; on shutdown, unregister first, give consumers a grace to see it,
//! then drain the calls in flight.
//!
//! ```
//! use std::time::Duration;
//! use srpc::provider::{Provider, Service};
//! use srpc::rpc::{HandlerError, Server};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let registry = srpc::registry::connect("inprocess://provider-doc").await?;
//! let server = Server::new()
//!     .handle("com.acme.Echo.echo", |text: String| async move { Ok::<_, HandlerError>(text) });
//! let running = Provider::new(server, Service::new("com.acme.Echo").version("1.0"))
//!     .grace(Duration::from_millis(100))
//!     .serve(&registry, "127.0.0.1:0")
//!     .await?;
//! // srpc://127.0.0.1:PORT/com.acme.Echo?…&methods=echo&…&side=provider&…&version=1.0
//! println!("serving {}", running.url());
//! running.shutdown().await?; // unregister, wait the grace, drain
//! # Ok(()) }
//! ```

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use dubbo_url::Url;
use srpc_core::{RunningServer, Server};
use srpc_registry::Registry;
use tracing::{info, warn};

/// How long consumers get to see a provider leave before it stops taking calls, by default.
/// Push registries tell their consumers within milliseconds; raise it for registries that
/// are polled (the HTTP registry's long-poll is immediate too, Consul's blocking queries
/// are, mDNS goodbyes are).
pub const DEFAULT_GRACE: Duration = Duration::from_secs(2);

/// What a provider offers: its interface and the parameters of its URL (`version`, `group`,
/// `weight`, `application`, …). The provider fills in the protocol (`srpc`), the address and
/// the `methods` (the server's handlers named `<interface>.<method>`).
pub use dubbo_url::ProviderUrl as Service;

/// Where consumers reach the provider when it binds the unspecified address.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Advertise {
    /// The bound address (the default; refused when it is `0.0.0.0` or `::`).
    Bound,
    /// This address.
    Address(IpAddr),
    /// The first address of this network interface, of the bound address's IP version.
    Interface(String),
}

/// Why a provider could not start or stop cleanly.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProviderError {
    /// Binding the listener failed (address in use, not local, no permission).
    #[error("cannot bind {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: String,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// Bound to `0.0.0.0` or `::` with nothing to advertise, or an interface without an
    /// address of the bound version.
    #[error("{0}")]
    Advertise(String),
    /// The server has no handler for the service (no `<interface>.<method>` name).
    #[error(
        "the server has no handler named {interface}.<method>: register them with \
         Server::handle(\"{interface}.method\", …)"
    )]
    NoMethods {
        /// The service.
        interface: String,
    },
    /// The URL could not be built or the registry refused it.
    #[error(transparent)]
    Registry(#[from] srpc_registry::Error),
    /// The URL could not be built.
    #[error(transparent)]
    Url(#[from] dubbo_url::Error),
    /// The server failed while stopping (its task panicked).
    #[error("the server failed: {0}")]
    Server(#[source] std::io::Error),
}

/// A server and the service it provides, to [`Provider::serve`].
#[derive(Debug)]
pub struct Provider {
    server: Server,
    service: Service,
    advertise: Advertise,
    grace: Duration,
}

impl Provider {
    /// `server` provides `service`.
    pub fn new(server: Server, service: Service) -> Provider {
        Provider {
            server,
            service,
            advertise: Advertise::Bound,
            grace: DEFAULT_GRACE,
        }
    }

    /// Advertise this address instead of the bound one (needed when binding `0.0.0.0`).
    #[must_use]
    pub fn advertise(mut self, address: IpAddr) -> Provider {
        self.advertise = Advertise::Address(address);
        self
    }

    /// Advertise the address of this network interface (`eth0`), of the bound address's IP
    /// version.
    #[must_use]
    pub fn advertise_interface(mut self, name: impl Into<String>) -> Provider {
        self.advertise = Advertise::Interface(name.into());
        self
    }

    /// The time between unregistering and draining at shutdown (default 2 s).
    #[must_use]
    pub fn grace(mut self, grace: Duration) -> Provider {
        self.grace = grace;
        self
    }

    /// Binds `addr` (`"0.0.0.0:20880"`, or a `SocketAddr`: what `Server::bind` takes),
    /// starts serving, and then registers the provider URL in `registry`: nobody finds the
    /// provider before it accepts connections.
    pub async fn serve(
        self,
        registry: &Arc<dyn Registry>,
        addr: impl tokio::net::ToSocketAddrs + std::fmt::Display,
    ) -> Result<RunningProvider, ProviderError> {
        let methods = methods_of(&self.server, self.service.interface());
        if methods.is_empty() {
            return Err(ProviderError::NoMethods {
                interface: self.service.interface().to_owned(),
            });
        }
        let asked = addr.to_string();
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| ProviderError::Bind {
                addr: asked.clone(),
                source,
            })?;
        let bound = listener
            .local_addr()
            .map_err(|source| ProviderError::Bind {
                addr: asked.clone(),
                source,
            })?;
        let host = advertised(&self.advertise, bound)?;
        let url = self
            .service
            .protocol(srpc_xclient::transport::SRPC_PROTOCOL)
            .methods(methods)
            .build(SocketAddr::new(host, bound.port()))?;
        let server = self.server.serve(listener);
        if let Err(error) = registry.register(&url).await {
            if let Err(stopping) = server.shutdown().await {
                warn!(%stopping, "the server failed while stopping after a refused registration");
            }
            return Err(error.into());
        }
        info!(%url, "provider registered");
        Ok(RunningProvider {
            server,
            registry: registry.clone(),
            url,
            grace: self.grace,
        })
    }
}

/// A provider serving and registered; [`RunningProvider::shutdown`] takes it out cleanly.
pub struct RunningProvider {
    server: RunningServer,
    registry: Arc<dyn Registry>,
    url: Url,
    grace: Duration,
}

impl std::fmt::Debug for RunningProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunningProvider")
            .field("url", &self.url.to_full_string())
            .field("server", &self.server)
            .field("grace", &self.grace)
            .finish_non_exhaustive()
    }
}

impl RunningProvider {
    /// The URL it registered.
    pub fn url(&self) -> &Url {
        &self.url
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.server.local_addr()
    }

    /// Unregisters, waits the grace so that consumers stop picking it, then stops the
    /// server: it takes no new connection, and every call in flight finishes (within the
    /// server's shutdown deadline). The server stops even when unregistering failed; that
    /// error is returned after.
    pub async fn shutdown(self) -> Result<(), ProviderError> {
        let unregistered = self.registry.unregister(&self.url).await;
        match &unregistered {
            Ok(()) => tokio::time::sleep(self.grace).await,
            Err(error) => {
                warn!(url = %self.url, %error, "could not unregister; stopping anyway");
            }
        }
        let stopped = self.server.shutdown().await;
        info!(url = %self.url, "provider stopped");
        unregistered?;
        stopped.map_err(ProviderError::Server)
    }
}

/// The server's methods of `interface`: handler names `<interface>.<method>`, sorted.
fn methods_of(server: &Server, interface: &str) -> Vec<String> {
    let mut methods: Vec<String> = server
        .methods()
        .filter_map(|m| m.strip_prefix(interface)?.strip_prefix('.'))
        .filter(|m| !m.is_empty() && !m.contains('.'))
        .map(str::to_owned)
        .collect();
    methods.sort();
    methods
}

fn advertised(advertise: &Advertise, bound: SocketAddr) -> Result<IpAddr, ProviderError> {
    match advertise {
        Advertise::Address(address) => Ok(*address),
        Advertise::Bound if !bound.ip().is_unspecified() => Ok(bound.ip()),
        Advertise::Bound => Err(ProviderError::Advertise(format!(
            "bound to {bound}, which no consumer can dial: give Provider::advertise(address) \
             or Provider::advertise_interface(\"eth0\"), or bind one address"
        ))),
        Advertise::Interface(name) => {
            let interfaces = if_addrs::get_if_addrs().map_err(|e| {
                ProviderError::Advertise(format!("cannot list network interfaces: {e}"))
            })?;
            interfaces
                .iter()
                .filter(|i| i.name == *name)
                .map(if_addrs::Interface::ip)
                .find(|ip| ip.is_ipv4() == bound.is_ipv4())
                .ok_or_else(|| {
                    let names: Vec<&str> = interfaces.iter().map(|i| i.name.as_str()).collect();
                    ProviderError::Advertise(format!(
                        "interface {name:?} has no {} address (interfaces here: {})",
                        if bound.is_ipv4() { "IPv4" } else { "IPv6" },
                        names.join(", ")
                    ))
                })
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn methods_are_the_handlers_of_the_interface() {
        let server = Server::new()
            .handle("com.acme.Echo.say", |(): ()| async {
                Ok::<_, srpc_core::HandlerError>(())
            })
            .handle("com.acme.Echo.ping", |(): ()| async {
                Ok::<_, srpc_core::HandlerError>(())
            })
            .handle("com.acme.EchoTwo.x", |(): ()| async {
                Ok::<_, srpc_core::HandlerError>(())
            })
            .handle("Other.y", |(): ()| async {
                Ok::<_, srpc_core::HandlerError>(())
            });
        assert_eq!(methods_of(&server, "com.acme.Echo"), ["ping", "say"]);
        assert!(methods_of(&server, "com.acme").is_empty());
    }

    #[test]
    fn the_unspecified_address_needs_something_to_advertise() {
        let any: SocketAddr = "0.0.0.0:7000".parse().unwrap();
        let error = advertised(&Advertise::Bound, any).unwrap_err().to_string();
        assert!(error.contains("Provider::advertise"), "{error}");
        let lo: IpAddr = "127.0.0.1".parse().unwrap();
        assert_eq!(advertised(&Advertise::Address(lo), any).unwrap(), lo);
        assert_eq!(
            advertised(&Advertise::Interface("lo".into()), any).unwrap(),
            lo
        );
        let error = advertised(&Advertise::Interface("nope0".into()), any)
            .unwrap_err()
            .to_string();
        assert!(error.contains("nope0") && error.contains("lo"), "{error}");
    }
}

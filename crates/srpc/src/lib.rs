//! srpc: service registration, service discovery and client-side load balancing that speaks
//! the formats Java Dubbo and rpcx already write.
//!
//! This facade re-exports the pieces and picks a registry backend from a URL
//! ([`registry::connect`]) or opens one from a typed config ([`registry::open`]):
//!
//! ```
//! use std::time::Duration;
//! use srpc::registry::{self, Url};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> srpc::registry::Result<()> {
//! let registry = registry::connect("inprocess://facade-doc").await?;
//! let provider: Url = "dubbo://127.0.0.1:20880/com.acme.Echo?weight=10".parse()?;
//! registry.register(&provider).await?;
//!
//! let mut sub = registry.subscribe(&"consumer://127.0.0.1/com.acme.Echo".parse()?).await?;
//! let snapshot = sub.wait_for(|s| !s.providers().is_empty(), Duration::from_secs(1)).await?;
//! assert_eq!(snapshot.providers()[0].param("weight"), Some("10"));
//! registry.close().await?;
//! # Ok(()) }
//! ```
//!
//! ## Feature flags
//!
//! One feature per registry backend; a scheme whose feature is off gives
//! [`registry::Error::Unsupported`], never a panic.
//!
//! - `inprocess` (default): `inprocess://<hub-name>`, the in-memory registry.
//! - `multicast`: `multicast://224.5.6.7:1234?interface=<address>`, Dubbo's multicast
//!   registry (UDP, no server).
//! - `zookeeper`: `zookeeper://127.0.0.1:2181`, ZooKeeper in Dubbo's node layout (or rpcx's
//!   with `layout=rpcx&base=…`).
//! - `etcd`: `etcd://127.0.0.1:2379`, etcd v3 in Dubbo's key layout (or rpcx's), through
//!   etcd's JSON gateway.
//! - `consul`: `consul://127.0.0.1:8500`, Consul agent services with TTL checks, as Java
//!   Dubbo writes them.
//! - `mdns`: `mdns://local?interface=<address or name>`, DNS-SD over mDNS on one interface
//!   (default loopback), read and written by avahi, Bonjour and python-zeroconf too.
//! - `http`: `http://127.0.0.1:9999`, the srpc HTTP registry's client (heartbeats,
//!   long-poll); [`http`] re-exports its crate.
//! - `http-server`: `http` plus the registry's embeddable server
//!   (`srpc::http::HttpRegistryServer`, axum).
//! - `jsonrpc`: `srpc::xclient::jsonrpc::JsonRpcTransport`, for `jsonrpc://` providers
//!   (Dubbo's `jsonrpc` protocol).
//! - `tonic`: [`tonic`] re-exports `srpc-tonic`: gRPC and Dubbo Triple, a tonic channel
//!   balanced over a subscription of `tri://`/`grpc://` providers, and Triple provider URLs.
//! - `tower`: `srpc::xclient::tower`, a `tower::discover::Discover` over any subscription.

/// The Dubbo URL model ([`dubbo_url`]).
pub use dubbo_url as url;

pub mod provider;
pub mod registry;
pub mod typed;

/// Makes a trait a typed srpc service: `serve_<trait>(server, impl)` registers its methods,
/// `<Trait>Client::new(caller)` calls them (see [`typed`] and docs/provider.md).
pub use srpc_macros::service;

/// The srpc RPC protocol: server, client, codecs ([`srpc_core`]).
pub use srpc_core as rpc;
/// Client-side load balancing over discovered endpoints ([`srpc_xclient`]).
pub use srpc_xclient as xclient;

/// gRPC and Dubbo Triple through tonic ([`srpc_tonic`]).
#[cfg(feature = "tonic")]
pub use srpc_tonic as tonic;

/// The srpc HTTP registry: its embeddable server and client backend.
#[cfg(feature = "http")]
pub use srpc_registry_http as http;

/// docs/provider.md's provider and consumer, compiled as doc tests so that they stay true.
#[cfg(doctest)]
#[doc = include_str!("../../../docs/provider.md")]
struct ProviderDoctests;

/// The README's example, compiled and run as a doc test so that it stays true.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
struct ReadmeDoctests;

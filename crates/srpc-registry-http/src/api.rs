//! The JSON bodies of the HTTP registry's API, shared by server and client.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The largest request body accepted (413 above it).
pub const MAX_BODY: usize = 64 * 1024;
/// The longest long-poll wait a watcher may ask for.
pub const MAX_WAIT: Duration = Duration::from_secs(300);
/// The shortest TTL an instance may ask for, and the shortest a client accepts from a server
/// (a shorter grant is raised to it, with a warning).
pub const MIN_TTL: Duration = Duration::from_secs(1);
/// The longest TTL a server grants (`--ttl` above it is refused at start): a provider that
/// died stays listed at most this long.
pub const MAX_TTL: Duration = Duration::from_secs(24 * 60 * 60);

/// Response header carrying the revision a listing reflects; pass it back as `?index=`.
pub const INDEX_HEADER: &str = "Srpc-Index";

/// Header of the compatibility endpoint (`/srpc/registry`), as in the heartbeat protocol
/// srpc started from.
pub const SERVERS_HEADER: &str = "Srpc-servers";

/// `POST /v1/register`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegisterRequest {
    /// The instance: a Dubbo URL (decoded form).
    pub url: String,
    /// How long the instance lives without a heartbeat, in milliseconds (server default
    /// when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_ms: Option<u64>,
    /// Who holds this registration (one id per client handle): two clients registering the
    /// same URL each hold their own lease, and the instance lives while any of them
    /// heartbeats. Absent: one anonymous holder.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub holder: Option<String>,
}

/// The holder that stands for every holder in `POST /v1/deregister`: the instance goes,
/// whoever holds it.
pub const ANY_HOLDER: &str = "*";

/// `POST /v1/heartbeat` and `POST /v1/deregister`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceRequest {
    /// The instance's URL, as registered.
    pub url: String,
    /// The holder given at registration, if one was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub holder: Option<String>,
}

/// `POST /v1/holders/heartbeat`: renews every lease one holder has, whatever its instances.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HolderRequest {
    /// The holder given at registration (empty: the anonymous holder).
    pub holder: String,
}

/// Answer to a holder's heartbeat.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HolderResponse {
    /// How many leases were renewed: fewer than the holder registered means the server lost
    /// some (it restarted, or they expired), and the holder should register them again.
    pub renewed: u64,
    /// The shortest TTL among them, in milliseconds (0 when none was renewed). Heartbeat at a
    /// third of it.
    pub ttl_ms: u64,
}

/// Answer to a registration or heartbeat.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegisterResponse {
    /// The service key the instance is listed under.
    pub service: String,
    /// The TTL granted, in milliseconds: what was asked, capped by the server's `--ttl`.
    /// Heartbeat at a third of it.
    pub ttl_ms: u64,
}

/// `GET /v1/services/{key}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceResponse {
    /// The service key.
    pub service: String,
    /// The service's revision.
    pub revision: u64,
    /// Its live instances, full URLs, sorted.
    pub instances: Vec<String>,
    /// True while the server warms up after a restart that restored no state: instances
    /// registered before it may be missing until their next heartbeat, so a client keeps
    /// what it had (marked not connected) and only adds what this listing has.
    #[serde(default, skip_serializing_if = "is_false")]
    pub warming: bool,
}

/// `GET /v1/instances`: every live instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstancesResponse {
    /// The registry's revision.
    pub revision: u64,
    /// Every live instance, full URLs, sorted.
    pub instances: Vec<String>,
    /// True while the server warms up after a restart that restored no state: instances
    /// registered before it may be missing until their next heartbeat, so a client keeps
    /// what it had (marked not connected) and only adds what this listing has.
    #[serde(default, skip_serializing_if = "is_false")]
    pub warming: bool,
}

/// One entry of `GET /v1/services`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceSummary {
    /// The service key.
    pub service: String,
    /// How many live instances it has.
    pub instances: usize,
    /// Its revision.
    pub revision: u64,
}

/// `GET /v1/services`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServicesResponse {
    /// The registry's revision.
    pub revision: u64,
    /// Services with at least one live instance, sorted by key.
    pub services: Vec<ServiceSummary>,
    /// True while the server warms up after a restart that restored no state: instances
    /// registered before it may be missing until their next heartbeat, so a client keeps
    /// what it had (marked not connected) and only adds what this listing has.
    #[serde(default, skip_serializing_if = "is_false")]
    pub warming: bool,
}

/// Every error answer: `{"error": "…"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorResponse {
    /// What was wrong, quoting the input.
    pub error: String,
}

fn is_false(value: &bool) -> bool {
    !*value
}

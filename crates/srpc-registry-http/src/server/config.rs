//! [`ServerConfig`] and its [`Limits`]: what the server grants and holds at most, checked
//! when it starts so that nothing fails later on a value that could never work.

use std::path::PathBuf;
use std::time::Duration;

use crate::api::{MAX_TTL, MIN_TTL};

/// Server settings.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ServerConfig {
    /// The longest TTL granted (default 5 min, at most [`MAX_TTL`]): instances that ask for
    /// more, or name none, get this; compatibility-endpoint entries live this long.
    pub ttl: Duration,
    /// Bearer token required for writes, when set (never empty).
    pub token: Option<String>,
    /// Bearer token required for reads too, when set (never empty). The write token is
    /// accepted for reads as well. Unset, reads are open, as a Consul agent or etcd without
    /// ACLs is.
    pub read_token: Option<String>,
    /// What the server holds at most.
    pub limits: Limits,
    /// HTTPS instead of HTTP (certificate, key, and a client CA to require client
    /// certificates); `None`: plain HTTP.
    pub tls: Option<srpc_tls::ServerTls>,
    /// Where the server keeps its state across restarts (docs/http-registry.md,
    /// "Restarts"); `None`: in memory only.
    pub state_file: Option<PathBuf>,
    /// How long listings are marked not authoritative after a start that restored no state
    /// (`warming: true`: clients keep what they had, marked not connected), so that clients
    /// registered before a restart can heartbeat and register again first. `None`: a third
    /// of `ttl` plus 2 s, the longest heartbeat period any client of this server has;
    /// `Some(ZERO)`: none.
    pub warm_up: Option<Duration>,
}

impl Default for ServerConfig {
    fn default() -> ServerConfig {
        ServerConfig {
            ttl: Duration::from_secs(300),
            token: None,
            read_token: None,
            limits: Limits::default(),
            tls: None,
            state_file: None,
            warm_up: None,
        }
    }
}

impl ServerConfig {
    /// The defaults. Where to listen is given to
    /// [`HttpRegistryServer::bind`](crate::HttpRegistryServer::bind), as to every srpc server.
    pub fn new() -> ServerConfig {
        ServerConfig::default()
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

    /// With a bearer token for reads (the write token works for reads too).
    #[must_use]
    pub fn with_read_token(mut self, token: impl Into<String>) -> ServerConfig {
        self.read_token = Some(token.into());
        self
    }

    /// With other limits.
    #[must_use]
    pub fn with_limits(mut self, limits: Limits) -> ServerConfig {
        self.limits = limits;
        self
    }

    /// With a state file, written after changes and read back at start.
    #[must_use]
    pub fn with_state_file(mut self, path: impl Into<PathBuf>) -> ServerConfig {
        self.state_file = Some(path.into());
        self
    }

    /// Serving HTTPS with these settings.
    #[must_use]
    pub fn with_tls(mut self, tls: srpc_tls::ServerTls) -> ServerConfig {
        self.tls = Some(tls);
        self
    }

    /// With another warm-up after a start that restored no state (`ZERO`: none).
    #[must_use]
    pub fn with_warm_up(mut self, warm_up: Duration) -> ServerConfig {
        self.warm_up = Some(warm_up);
        self
    }

    /// The warm-up this config asks for: [`ServerConfig::warm_up`], else a third of the
    /// TTL plus 2 s.
    pub fn warm_up(&self) -> Duration {
        self.warm_up
            .unwrap_or(self.ttl / 3 + Duration::from_secs(2))
    }

    /// Whether this config can work: a TTL in [`MIN_TTL`]..=[`MAX_TTL`], tokens that are
    /// not empty, limits above zero. The error is a sentence for an operator.
    pub fn validate(&self) -> Result<(), String> {
        if self.ttl < MIN_TTL {
            return Err(format!(
                "ttl {:?} is below the least a registry can keep an instance, {MIN_TTL:?}",
                self.ttl
            ));
        }
        if self.ttl > MAX_TTL {
            return Err(format!(
                "ttl {} is above the most this registry grants, {}: a provider that died \
                 would stay listed that long",
                humantime::format_duration(self.ttl),
                humantime::format_duration(MAX_TTL)
            ));
        }
        for (flag, token) in [("token", &self.token), ("read token", &self.read_token)] {
            if token.as_deref().is_some_and(|t| t.trim().is_empty()) {
                return Err(format!(
                    "the {flag} is empty, which no request can present: give a token, or none \
                     for an open registry (check SRPC_REGISTRY_TOKEN and \
                     SRPC_REGISTRY_READ_TOKEN)"
                ));
            }
        }
        if self.warm_up.is_some_and(|w| w > MAX_TTL) {
            return Err(format!(
                "warm-up {} is above {}",
                humantime::format_duration(self.warm_up()),
                humantime::format_duration(MAX_TTL)
            ));
        }
        self.limits.validate()
    }
}

/// What the server holds and allows at most. The defaults are far above what a small
/// estate uses; each has a flag of `srpc registry serve` named as in [`Limits::NAMES`], and
/// a refusal names the limit it hit.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Limits {
    /// Instances in total (`max-instances`, default 100 000).
    pub instances: usize,
    /// Instances of one service key (`max-instances-per-service`, default 10 000).
    pub instances_per_service: usize,
    /// Instances one holder (one client handle) holds a lease on
    /// (`max-instances-per-holder`, default 10 000).
    pub instances_per_holder: usize,
    /// The longest instance URL, in bytes (`max-url-len`, default 8 KiB).
    pub url_len: usize,
    /// Connections open at once (`max-connections`, default 4 096); more wait in the
    /// listen backlog until one closes.
    pub connections: usize,
    /// How long a connection may take to send a request's headers, and how long an idle
    /// keep-alive connection stays open (`header-timeout`, default 30 s).
    pub header_timeout: Duration,
    /// How long a graceful shutdown waits for requests in flight before it closes what is
    /// left (`shutdown-grace`, default 5 s).
    pub shutdown_grace: Duration,
    /// The longest `Srpc-servers` answer of `GET /srpc/registry`, in bytes
    /// (`max-compat-header`, default 8 KiB): a `POST` that would make it longer is refused.
    pub compat_header: usize,
    /// How fast large listings (256 KiB and more: `GET /v1/instances` of a big estate) are
    /// written, in bytes a second, all of them together (`max-listing-rate`, default 128 MiB,
    /// what a 1 Gb/s link carries): readers across a network never notice it, while readers
    /// on the same machine cannot turn all its CPU into copies that heartbeats then wait for.
    pub listing_rate: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            instances: 100_000,
            instances_per_service: 10_000,
            instances_per_holder: 10_000,
            url_len: 8 * 1024,
            connections: 4096,
            header_timeout: Duration::from_secs(30),
            shutdown_grace: Duration::from_secs(5),
            compat_header: 8 * 1024,
            listing_rate: 128 * 1024 * 1024,
        }
    }
}

impl Limits {
    /// The names of the limits, as flags and refusals spell them.
    pub const NAMES: [&'static str; 9] = [
        "max-instances",
        "max-instances-per-service",
        "max-instances-per-holder",
        "max-url-len",
        "max-connections",
        "header-timeout",
        "shutdown-grace",
        "max-compat-header",
        "max-listing-rate",
    ];

    fn validate(&self) -> Result<(), String> {
        let counts = [
            ("max-instances", self.instances),
            ("max-instances-per-service", self.instances_per_service),
            ("max-instances-per-holder", self.instances_per_holder),
            ("max-url-len", self.url_len),
            ("max-connections", self.connections),
            ("max-compat-header", self.compat_header),
            ("max-listing-rate", self.listing_rate),
        ];
        for (name, value) in counts {
            if value == 0 {
                return Err(format!("limit {name} is 0: nothing could be served"));
            }
        }
        for (name, value) in [
            ("header-timeout", self.header_timeout),
            ("shutdown-grace", self.shutdown_grace),
        ] {
            if value.is_zero() {
                return Err(format!("limit {name} is 0: give a duration above zero"));
            }
            if value > MAX_TTL {
                return Err(format!(
                    "limit {name} {} is above {}",
                    humantime::format_duration(value),
                    humantime::format_duration(MAX_TTL)
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_at_start_what_could_never_work() {
        let base = ServerConfig::default();
        assert_eq!(base.validate(), Ok(()));
        let cases = [
            (base.clone().with_ttl(Duration::from_millis(10)), "below"),
            (
                base.clone()
                    .with_ttl(Duration::from_secs(300_000_000_000 * 365 * 86_400)),
                "above the most",
            ),
            (
                base.clone().with_ttl(MAX_TTL + Duration::from_secs(1)),
                "above the most",
            ),
            (base.clone().with_token(""), "token is empty"),
            (base.clone().with_read_token("  "), "read token is empty"),
            (
                base.clone().with_limits(Limits {
                    instances_per_holder: 0,
                    ..Limits::default()
                }),
                "max-instances-per-holder is 0",
            ),
            (
                base.clone().with_limits(Limits {
                    header_timeout: Duration::ZERO,
                    ..Limits::default()
                }),
                "header-timeout is 0",
            ),
            (
                base.clone().with_limits(Limits {
                    listing_rate: 0,
                    ..Limits::default()
                }),
                "max-listing-rate is 0",
            ),
        ];
        for (config, needle) in cases {
            let err = config.validate().unwrap_err();
            assert!(err.contains(needle), "{needle}: {err}");
        }
        assert_eq!(base.with_ttl(MAX_TTL).validate(), Ok(()));
    }
}

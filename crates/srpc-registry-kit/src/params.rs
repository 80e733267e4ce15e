//! What every backend reads alike from its registry URL: [`FailbackConfig`] (`check`, retry
//! periods, cache `file`) and [`RegistryParams`] (servers, credentials, durations).

use std::path::PathBuf;
use std::time::Duration;

use dubbo_url::Url;

use crate::prober::{DEFAULT_PROBE_CONCURRENCY, MAX_PROBE_CONCURRENCY};
use crate::retry::RetryPolicy;
use crate::{Error, Result};

/// Failback settings, usually read from the registry URL with [`FailbackConfig::from_url`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct FailbackConfig {
    /// Registry-wide `check`: when false, every failed register or subscribe is retried in
    /// the background instead of returned. A URL's own `check=false` does the same for it.
    pub check: bool,
    /// First retry delay (`retry.period`, default 200 ms).
    pub retry_min: Duration,
    /// Longest retry delay (`retry.max.period`, default 30 s); retries never stop.
    pub retry_max: Duration,
    /// The local cache file (`file`, Java Dubbo's): every subscription's latest providers are
    /// saved there, and a subscription that cannot list with `check=false` starts from them.
    /// None by default.
    pub file: Option<PathBuf>,
    /// How often this handle checks that the registry still holds its registrations, and
    /// writes again those someone else deleted (`restore.period`, default 1 s; 0 turns it
    /// off). Only backends that can tell ([`crate::Backend::missing`]) are checked.
    pub restore_period: Duration,
}

/// Reads the parameters every backend reads alike from its registry URL: `check` and the
/// retry policy, the server list (`host:port` plus `backup=`), credentials, and positive
/// durations, with errors that quote the URL and say what to write instead.
///
/// The scheme is not checked here: the facade's scheme table chose the backend by it.
///
/// ```
/// use std::time::Duration;
/// use srpc_registry_kit::{RegistryParams, Url};
///
/// let url: Url = "zookeeper://u:p@a:2181?backup=b&session=30s&check=false".parse()?;
/// let params = RegistryParams::new(&url);
/// assert_eq!(params.servers(2181, "zookeeper://host:port")?, ["a:2181", "b:2181"]);
/// assert_eq!(params.credentials(), Some(("u", "p")));
/// assert_eq!(params.positive_duration("session", Duration::from_secs(60))?, Duration::from_secs(30));
/// assert!(!params.failback()?.check);
/// # Ok::<(), srpc_registry_kit::Error>(())
/// ```
#[derive(Debug, Clone, Copy)]
pub struct RegistryParams<'a> {
    url: &'a Url,
}

impl Default for FailbackConfig {
    fn default() -> FailbackConfig {
        FailbackConfig {
            check: true,
            retry_min: Duration::from_millis(200),
            retry_max: Duration::from_secs(30),
            file: None,
            restore_period: Duration::from_secs(1),
        }
    }
}

/// The registry URL parameters every backend reads (through [`FailbackConfig::from_url`]);
/// each backend crate's `PARAMS` lists its own beside these.
pub const COMMON_PARAMS: &[&str] = &[
    "check",
    "retry.period",
    "retry.max.period",
    "file",
    "restore.period",
];

/// Checks a config's durations for a builder's `build()`: each must be above zero. `what` names
/// the config (`"etcd config"`), each pair a duration by its parameter name.
pub fn require_positive(what: &'static str, durations: &[(&str, Duration)]) -> Result<()> {
    match durations.iter().find(|(_, value)| value.is_zero()) {
        Some((name, _)) => Err(Error::invalid(
            what,
            format!("{name} 0s"),
            format!("{name} must be greater than zero"),
        )),
        None => Ok(()),
    }
}

/// `address` as the base URL of an HTTP server: `host:port` gains `http://`, a URL with a
/// scheme stays as written, a trailing `/` goes.
pub fn http_base(address: &str) -> String {
    let address = address.trim_end_matches('/');
    if address.contains("://") {
        address.to_owned()
    } else {
        format!("http://{address}")
    }
}

impl FailbackConfig {
    /// With registry-wide `check` set to `check`.
    pub fn with_check(mut self, check: bool) -> FailbackConfig {
        self.check = check;
        self
    }

    /// With background retries backing off from `min` to at most `max`.
    pub fn with_retry(mut self, min: Duration, max: Duration) -> FailbackConfig {
        self.retry_min = min;
        self.retry_max = max;
        self
    }

    /// With registrations checked every `period` and written again when deleted behind this
    /// handle's back (`ZERO`: never).
    pub fn with_restore_period(mut self, period: Duration) -> FailbackConfig {
        self.restore_period = period;
        self
    }

    /// With the local cache file at `file`.
    pub fn with_file(mut self, file: impl Into<PathBuf>) -> FailbackConfig {
        self.file = Some(file.into());
        self
    }

    /// Checks what no registry URL could say either: retries need a first delay above zero
    /// and no larger than the longest.
    pub fn validate(&self) -> Result<()> {
        if self.retry_min.is_zero() || self.retry_max < self.retry_min {
            return Err(Error::invalid(
                "failback config",
                format!("{:?}..{:?}", self.retry_min, self.retry_max),
                "retry.period must be > 0 and no larger than retry.max.period",
            ));
        }
        Ok(())
    }

    /// The retry policy these settings describe.
    pub fn retry(&self) -> RetryPolicy {
        RetryPolicy::new(self.retry_min, self.retry_max)
    }

    /// Reads `check`, `retry.period`, `retry.max.period`, `file` and `restore.period` from a
    /// registry URL.
    pub fn from_url(registry: &Url) -> Result<FailbackConfig> {
        let default = FailbackConfig::default();
        let config = FailbackConfig {
            check: registry.param_bool("check", default.check)?,
            retry_min: registry.param_duration("retry.period", default.retry_min)?,
            retry_max: registry.param_duration("retry.max.period", default.retry_max)?,
            file: registry
                .param("file")
                .map(str::trim)
                .filter(|f| !f.is_empty())
                .map(PathBuf::from),
            restore_period: registry.param_duration("restore.period", default.restore_period)?,
        };
        if config.retry_min.is_zero() || config.retry_max < config.retry_min {
            return Err(Error::invalid(
                "registry url",
                registry,
                "retry.period must be > 0 and no larger than retry.max.period",
            ));
        }
        Ok(config)
    }
}

impl<'a> RegistryParams<'a> {
    /// Reads `url`.
    pub fn new(url: &'a Url) -> RegistryParams<'a> {
        RegistryParams { url }
    }

    /// The registry URL.
    pub fn url(&self) -> &'a Url {
        self.url
    }

    /// An [`Error::InvalidInput`] about this registry URL.
    pub fn invalid(&self, reason: impl Into<String>) -> Error {
        Error::invalid("registry url", self.url, reason)
    }

    /// `check`, `retry.period` and `retry.max.period`.
    pub fn failback(&self) -> Result<FailbackConfig> {
        FailbackConfig::from_url(self.url)
    }

    /// The servers: the URL's `host[:port]` (which may itself be a comma list) and those of
    /// `backup=`, each with `default_port` when it names none. At least one is required;
    /// `example` shows the user the form, e.g. `zookeeper://host:port`.
    pub fn servers(&self, default_port: u16, example: &str) -> Result<Vec<String>> {
        let servers = self.url.backup_addresses(default_port);
        if servers.is_empty() || self.url.host().is_empty() {
            return Err(self.invalid(format!("name at least one server: {example}")));
        }
        if servers.iter().any(|s| s.contains(['/', '@', ' '])) {
            return Err(self.invalid(format!(
                "server list {servers:?} is not host:port,host:port"
            )));
        }
        Ok(servers)
    }

    /// `user:password@`, when the URL has a user name.
    pub fn credentials(&self) -> Option<(&'a str, &'a str)> {
        let user = self.url.username();
        (!user.is_empty()).then(|| (user, self.url.password()))
    }

    /// A duration parameter (`30s`, `1500ms`, or milliseconds as Java writes them) that must
    /// be above zero.
    pub fn positive_duration(&self, key: &str, default: Duration) -> Result<Duration> {
        let value = self.url.param_duration(key, default)?;
        if value.is_zero() {
            return Err(self.invalid(format!("{key} must be greater than zero")));
        }
        Ok(value)
    }

    /// `probe.concurrency`, the prober's probes in flight at once: 1 to
    /// [`MAX_PROBE_CONCURRENCY`], [`DEFAULT_PROBE_CONCURRENCY`] when absent.
    pub fn probe_concurrency(&self) -> Result<usize> {
        let value = self
            .url
            .param_u64("probe.concurrency", DEFAULT_PROBE_CONCURRENCY as u64)?;
        usize::try_from(value)
            .ok()
            .filter(|n| (1..=MAX_PROBE_CONCURRENCY).contains(n))
            .ok_or_else(|| {
                self.invalid(format!(
                    "probe.concurrency {value} is outside 1..={MAX_PROBE_CONCURRENCY}"
                ))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    #[test]
    fn builder_checks_name_the_zero_duration_and_bases_gain_a_scheme() {
        let second = Duration::from_secs(1);
        assert!(require_positive("x config", &[("session", second)]).is_ok());
        let err = require_positive(
            "x config",
            &[("session", second), ("timeout", Duration::ZERO)],
        )
        .unwrap_err();
        assert!(
            err.to_string()
                .contains("timeout must be greater than zero"),
            "{err}"
        );
        assert_eq!(http_base("a:1/"), "http://a:1");
        assert_eq!(http_base("http://a:1"), "http://a:1");
    }

    #[test]
    fn servers_need_a_host_and_refuse_junk() {
        let u = url("etcd://?backup=b");
        let err = RegistryParams::new(&u)
            .servers(2379, "etcd://host:port")
            .unwrap_err();
        assert!(err.to_string().contains("etcd://host:port"), "{err}");
        let u = url("zookeeper://a:1?backup=b/c");
        assert!(RegistryParams::new(&u).servers(2181, "x").is_err());
    }

    #[test]
    fn zero_durations_are_refused_by_name() {
        let u = url("zookeeper://a:1?session=0");
        let err = RegistryParams::new(&u)
            .positive_duration("session", Duration::from_secs(1))
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("session must be greater than zero"),
            "{err}"
        );
        assert!(RegistryParams::new(&url("x://a")).credentials().is_none());
    }
}

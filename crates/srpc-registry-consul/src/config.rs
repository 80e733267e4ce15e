//! [`ConsulConfig`]: everything a `consul://` registry URL can say, as Java Dubbo reads it.

use std::time::Duration;

use srpc_registry_kit::{
    Error, FailbackConfig, RegistryParams, Result, Url, http_base, require_positive,
};

/// The HTTP port of a Consul agent by default.
pub const DEFAULT_PORT: u16 = 8500;

/// Consul's minimum for `DeregisterCriticalServiceAfter`: it raises anything shorter.
pub const MIN_DEREGISTER_AFTER: Duration = Duration::from_secs(60);

/// The longest blocking query Consul serves.
pub const MAX_WATCH_TIMEOUT: Duration = Duration::from_secs(600);

/// Settings of a Consul registry.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConsulConfig {
    /// The agent, `http://host:port`: the URL's, else `CONSUL_HTTP_ADDR`, else 127.0.0.1:8500.
    pub base: String,
    /// The ACL token: the URL's `token`, else `CONSUL_HTTP_TOKEN`. Sent as `X-Consul-Token`.
    pub token: Option<String>,
    /// The TTL of each registration's check (`consul-check-pass-interval`, milliseconds as
    /// Java writes it, default 16 000); passed every third of it.
    pub check_ttl: Duration,
    /// `DeregisterCriticalServiceAfter` (`consul-deregister-critical-service-after`, default
    /// and minimum 1 m, Consul's minimum): how long Consul keeps a registration whose check
    /// went critical.
    pub deregister_after: Duration,
    /// The wait of each blocking query (`consul-watch-timeout`, milliseconds, default 60 000,
    /// at most 10 min).
    pub watch_timeout: Duration,
    /// How long one non-blocking request may take (`timeout`, default 5 s).
    pub timeout: Duration,
    /// Retry and `check` settings.
    pub failback: FailbackConfig,
}

/// The URL parameters a `consul://` registry URL reads, besides the kit's
/// [`COMMON_PARAMS`](srpc_registry_kit::COMMON_PARAMS).
pub const PARAMS: &[&str] = &[
    "token",
    "timeout",
    "consul-check-pass-interval",
    "consul-deregister-critical-service-after",
    "consul-watch-timeout",
];

impl Default for ConsulConfig {
    /// The agent on this machine (`http://127.0.0.1:8500`), Java Dubbo's defaults, no token.
    /// Unlike [`ConsulConfig::from_url`], reads no environment variable.
    fn default() -> ConsulConfig {
        ConsulConfig {
            base: format!("http://127.0.0.1:{DEFAULT_PORT}"),
            token: None,
            check_ttl: Duration::from_secs(16),
            deregister_after: MIN_DEREGISTER_AFTER,
            watch_timeout: Duration::from_secs(60),
            timeout: Duration::from_secs(5),
            failback: FailbackConfig::default(),
        }
    }
}

/// Builds a [`ConsulConfig`] without a URL:
/// `ConsulConfig::builder().agent("10.0.0.5:8500").token("…").build()?`.
#[derive(Debug, Clone, Default)]
pub struct ConsulConfigBuilder {
    config: ConsulConfig,
}

impl ConsulConfigBuilder {
    /// The agent, `host:port` or `http://host:port`.
    pub fn agent(mut self, address: &str) -> Self {
        self.config.base = http_base(address);
        self
    }

    /// The ACL token, sent as `X-Consul-Token`.
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.config.token = Some(token.into()).filter(|t| !t.is_empty());
        self
    }

    /// The TTL of each registration's check (at least 1 s); passed every third of it.
    pub fn check_ttl(mut self, ttl: Duration) -> Self {
        self.config.check_ttl = ttl;
        self
    }

    /// `DeregisterCriticalServiceAfter`; raised to Consul's minimum, 1 m.
    pub fn deregister_after(mut self, after: Duration) -> Self {
        self.config.deregister_after = after;
        self
    }

    /// The wait of each blocking query; cut to Consul's maximum, 10 min.
    pub fn watch_timeout(mut self, wait: Duration) -> Self {
        self.config.watch_timeout = wait;
        self
    }

    /// How long one non-blocking request may take.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.config.timeout = timeout;
        self
    }

    /// Retry, `check` and cache file settings.
    pub fn failback(mut self, failback: FailbackConfig) -> Self {
        self.config.failback = failback;
        self
    }

    /// The config, once it can work.
    pub fn build(self) -> Result<ConsulConfig> {
        let mut config = self.config;
        let invalid = |value: String, reason: &str| Error::invalid("consul config", value, reason);
        if !config.base.starts_with("http://") {
            return Err(invalid(
                config.base,
                "only http:// agents are supported yet: use http://",
            ));
        }
        if config.check_ttl < Duration::from_secs(1) {
            return Err(invalid(
                format!("check ttl {:?}", config.check_ttl),
                "consul-check-pass-interval must be at least 1000 ms",
            ));
        }
        require_positive(
            "consul config",
            &[
                ("consul-watch-timeout", config.watch_timeout),
                ("timeout", config.timeout),
            ],
        )?;
        config.deregister_after = config.deregister_after.max(MIN_DEREGISTER_AFTER);
        config.watch_timeout = config.watch_timeout.min(MAX_WATCH_TIMEOUT);
        config.failback.validate()?;
        Ok(config)
    }
}

impl ConsulConfig {
    /// A builder starting from the defaults ([`ConsulConfig::default`]).
    pub fn builder() -> ConsulConfigBuilder {
        ConsulConfigBuilder::default()
    }

    /// Opens a registry handle with this config (no request is made until it is used).
    pub async fn connect(self) -> Result<crate::ConsulRegistry> {
        crate::open(self)
    }

    /// Reads `consul://[host:port][?token=…&consul-check-pass-interval=…&consul-deregister-critical-service-after=…&consul-watch-timeout=…]`.
    pub fn from_url(url: &Url) -> Result<ConsulConfig> {
        ConsulConfig::from_url_and_env(url, |name| std::env::var(name).ok())
    }

    /// [`ConsulConfig::from_url`] with the environment given (for tests).
    pub fn from_url_and_env(
        url: &Url,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<ConsulConfig> {
        let params = RegistryParams::new(url);
        let address = if url.host().is_empty() {
            env("CONSUL_HTTP_ADDR")
                .map(|a| {
                    a.trim_start_matches("http://")
                        .trim_end_matches('/')
                        .to_owned()
                })
                .filter(|a| !a.is_empty())
                .unwrap_or_else(|| format!("127.0.0.1:{DEFAULT_PORT}"))
        } else if url.port() == 0 {
            format!("{}:{DEFAULT_PORT}", url.host())
        } else {
            url.address()
        };
        if address.starts_with("https://") {
            return Err(params.invalid("https agents are not supported yet: use http://"));
        }
        let check_ttl =
            params.positive_duration("consul-check-pass-interval", Duration::from_secs(16))?;
        if check_ttl < Duration::from_secs(1) {
            return Err(params.invalid("consul-check-pass-interval must be at least 1000 ms"));
        }
        let mut builder = ConsulConfig::builder()
            .agent(&address)
            .check_ttl(check_ttl)
            .deregister_after(params.positive_duration(
                "consul-deregister-critical-service-after",
                MIN_DEREGISTER_AFTER,
            )?)
            .watch_timeout(
                params.positive_duration("consul-watch-timeout", Duration::from_secs(60))?,
            )
            .timeout(params.positive_duration("timeout", Duration::from_secs(5))?)
            .failback(params.failback()?);
        if let Some(token) = url
            .param("token")
            .map(str::to_owned)
            .or_else(|| env("CONSUL_HTTP_TOKEN"))
        {
            builder = builder.token(token);
        }
        builder.build()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(url: &str, env: &[(&str, &str)]) -> Result<ConsulConfig> {
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        ConsulConfig::from_url_and_env(&Url::parse(url).unwrap(), move |name| {
            env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
        })
    }

    #[test]
    fn javas_registry_url() {
        let c = config(
            "consul://127.0.0.1:8500?token=t&consul-check-pass-interval=16000&consul-deregister-critical-service-after=1m&consul-watch-timeout=60000",
            &[("CONSUL_HTTP_TOKEN", "other")],
        )
        .unwrap();
        assert_eq!(c.base, "http://127.0.0.1:8500");
        assert_eq!(c.token.as_deref(), Some("t"));
        assert_eq!(c.check_ttl, Duration::from_secs(16));
        assert_eq!(c.deregister_after, Duration::from_secs(60));
        assert_eq!(c.watch_timeout, Duration::from_secs(60));
    }

    #[test]
    fn the_environment_fills_what_the_url_leaves_out() {
        let c = config(
            "consul://",
            &[
                ("CONSUL_HTTP_ADDR", "http://10.1.2.3:8501"),
                ("CONSUL_HTTP_TOKEN", "secret"),
            ],
        )
        .unwrap();
        assert_eq!(c.base, "http://10.1.2.3:8501");
        assert_eq!(c.token.as_deref(), Some("secret"));
        let c = config("consul://", &[]).unwrap();
        assert_eq!(c.base, "http://127.0.0.1:8500");
        assert_eq!(c.token, None);
        assert_eq!(config("consul://h", &[]).unwrap().base, "http://h:8500");
    }

    #[test]
    fn consuls_limits_are_applied() {
        let c = config(
            "consul://h?consul-deregister-critical-service-after=20s&consul-watch-timeout=1h",
            &[],
        )
        .unwrap();
        assert_eq!(c.deregister_after, MIN_DEREGISTER_AFTER, "Consul's minimum");
        assert_eq!(c.watch_timeout, MAX_WATCH_TIMEOUT);
        assert!(config("consul://h?consul-check-pass-interval=500", &[]).is_err());
        assert!(config("consul://h?consul-watch-timeout=0", &[]).is_err());
    }
}

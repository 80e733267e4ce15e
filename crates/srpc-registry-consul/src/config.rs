//! [`ConsulConfig`]: everything a `consul://` registry URL can say, as Java Dubbo reads it.

use std::time::Duration;

use srpc_registry_kit::{
    Error, FailbackConfig, Pem, RegistryParams, Result, TLS_PARAMS, TlsConfig, Url, http_base,
    require_positive,
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
    /// The agent, `http://host:port` or `https://host:port`: the URL's, else
    /// `CONSUL_HTTP_ADDR`, else 127.0.0.1:8500.
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
    /// TLS to the agent: the URL's `tls`, `cacert`, `cert`, `key`, `tls-server-name`,
    /// `insecure-skip-tls-verify`, else Consul's environment (`CONSUL_HTTP_SSL`,
    /// `CONSUL_CACERT`, `CONSUL_CLIENT_CERT`, `CONSUL_CLIENT_KEY`, `CONSUL_TLS_SERVER_NAME`,
    /// `CONSUL_HTTP_SSL_VERIFY=false`); on with an `https://` agent.
    pub tls: TlsConfig,
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
    "tls",
    "cacert",
    "cert",
    "key",
    "tls-server-name",
    "insecure-skip-tls-verify",
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
            tls: TlsConfig::default(),
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
    /// The agent, `host:port`, `http://host:port` or `https://host:port` (TLS on).
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

    /// TLS settings (CA, client certificate, server name); with TLS on the agent is
    /// reached over `https://`.
    pub fn tls(mut self, tls: TlsConfig) -> Self {
        self.config.tls = tls;
        self
    }

    /// Retry, `check` and cache file settings.
    pub fn failback(mut self, failback: FailbackConfig) -> Self {
        self.config.failback = failback;
        self
    }

    /// The config, once it can work. An `https://` agent turns TLS on, and with TLS on the
    /// agent is `https://`.
    pub fn build(self) -> Result<ConsulConfig> {
        let mut config = self.config;
        let invalid = |value: String, reason: &str| Error::invalid("consul config", value, reason);
        if config.base.starts_with("https://") {
            config.tls.enabled = true;
        } else if !config.base.starts_with("http://") {
            return Err(invalid(config.base, "the agent is http:// or https://"));
        }
        if config.tls.enabled {
            if let Some(rest) = config.base.strip_prefix("http://") {
                config.base = format!("https://{rest}");
            }
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
            // Consul's own: `https://host:port` (TLS on), `http://host:port` or `host:port`.
            env("CONSUL_HTTP_ADDR")
                .map(|a| a.trim_end_matches('/').to_owned())
                .filter(|a| !a.is_empty())
                .unwrap_or_else(|| format!("127.0.0.1:{DEFAULT_PORT}"))
        } else if url.port() == 0 {
            format!("{}:{DEFAULT_PORT}", url.host())
        } else {
            url.address()
        };
        let tls = tls_from(&params, &env)?;
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
            .tls(tls)
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

/// The URL's TLS parameters; where it gives none, Consul's environment variables, as the
/// `consul` command and the Go client read them.
fn tls_from(
    params: &RegistryParams<'_>,
    env: &impl Fn(&str) -> Option<String>,
) -> Result<TlsConfig> {
    let from_url = TlsConfig::from_params(params)?;
    let url = params.url();
    if TLS_PARAMS.iter().any(|name| url.param(name).is_some()) {
        return Ok(from_url);
    }
    let var = |name: &str| {
        env(name)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    };
    let flag = |name: &str| -> Result<Option<bool>> {
        match var(name) {
            None => Ok(None),
            Some(v) if v.eq_ignore_ascii_case("true") || v == "1" => Ok(Some(true)),
            Some(v) if v.eq_ignore_ascii_case("false") || v == "0" => Ok(Some(false)),
            Some(v) => Err(params.invalid(format!("{name}={v:?} is not true or false"))),
        }
    };
    let mut tls = TlsConfig::default();
    if let Some(ca) = var("CONSUL_CACERT") {
        tls = tls.with_ca(Pem::File(ca.into()));
    }
    match (var("CONSUL_CLIENT_CERT"), var("CONSUL_CLIENT_KEY")) {
        (Some(cert), Some(key)) => {
            tls = tls.with_identity(Pem::File(cert.into()), Pem::File(key.into()));
        }
        (None, None) => {}
        _ => {
            return Err(params.invalid(
                "CONSUL_CLIENT_CERT and CONSUL_CLIENT_KEY go together: set both, or neither",
            ));
        }
    }
    if let Some(name) = var("CONSUL_TLS_SERVER_NAME") {
        tls = tls.with_server_name(name);
    }
    if flag("CONSUL_HTTP_SSL_VERIFY")? == Some(false) {
        tls = tls.with_insecure_skip_verify();
    }
    if let Some(ssl) = flag("CONSUL_HTTP_SSL")? {
        tls.enabled = ssl || tls.enabled;
    }
    Ok(tls)
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
    fn tls_from_the_url_or_consuls_environment() {
        let c = config("consul://a:8501?cacert=/ca.pem&cert=/c.pem&key=/k.pem", &[]).unwrap();
        assert!(c.tls.enabled);
        assert_eq!(c.base, "https://a:8501");
        let env = [
            ("CONSUL_HTTP_ADDR", "https://agent:8501"),
            ("CONSUL_CACERT", "/env-ca.pem"),
            ("CONSUL_CLIENT_CERT", "/env-c.pem"),
            ("CONSUL_CLIENT_KEY", "/env-k.pem"),
            ("CONSUL_TLS_SERVER_NAME", "consul.local"),
        ];
        let c = config("consul://", &env).unwrap();
        assert_eq!(c.base, "https://agent:8501");
        assert_eq!(c.tls.ca, Some(Pem::File("/env-ca.pem".into())));
        assert_eq!(c.tls.server_name.as_deref(), Some("consul.local"));
        assert!(c.tls.identity.is_some());
        // CONSUL_HTTP_SSL turns TLS on for a host:port address.
        let c = config(
            "consul://",
            &[
                ("CONSUL_HTTP_ADDR", "agent:8501"),
                ("CONSUL_HTTP_SSL", "true"),
            ],
        )
        .unwrap();
        assert_eq!(c.base, "https://agent:8501");
        // The URL's settings win over the environment's, whole.
        let c = config("consul://a:8500?tls=true", &env).unwrap();
        assert!(c.tls.enabled && c.tls.ca.is_none());
        let err = config("consul://", &[("CONSUL_CLIENT_CERT", "/c.pem")]).unwrap_err();
        assert!(err.to_string().contains("CONSUL_CLIENT_KEY"), "{err}");
        assert!(!config("consul://a:8500", &[]).unwrap().tls.enabled);
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

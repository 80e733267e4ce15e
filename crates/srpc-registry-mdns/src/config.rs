//! [`MdnsConfig`]: everything an `mdns://` registry URL can say.

use std::net::IpAddr;
use std::time::Duration;

use srpc_registry_kit::{
    DEFAULT_PROBE_CONCURRENCY, Error, FailbackConfig, Interface, MAX_PROBE_CONCURRENCY,
    RegistryParams, Result, Url, is_interface_name, require_positive,
};

/// The DNS-SD service type srpc uses unless told otherwise.
pub const DEFAULT_TYPE: &str = "_srpc._tcp";

/// Settings of an mDNS registry.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct MdnsConfig {
    /// The one interface it joins, announces and answers on (`interface`).
    pub interface: Interface,
    /// The service type, `_name._tcp` or `_name._udp` (`type`, default `_srpc._tcp`).
    pub service_type: String,
    /// A provider that stops accepting TCP connections leaves every subscription within this
    /// (`session`, default 60 s): the prober checks it every third of it.
    pub session: Duration,
    /// How long `subscribe` and `lookup` wait for the first answers to their query
    /// (`timeout`, default 1 s); once one came, they return 150 ms after the last.
    pub timeout: Duration,
    /// Probes in flight at once (`probe.concurrency`, default 32).
    pub probe_concurrency: usize,
    /// Retry and `check` settings.
    pub failback: FailbackConfig,
}

/// The URL parameters an `mdns://` registry URL reads, besides the kit's
/// [`COMMON_PARAMS`](srpc_registry_kit::COMMON_PARAMS).
pub const PARAMS: &[&str] = &[
    "interface",
    "type",
    "session",
    "timeout",
    "probe.concurrency",
];

impl Default for MdnsConfig {
    /// `mdns://local` on loopback, type `_srpc._tcp`, probing every 60 s.
    fn default() -> MdnsConfig {
        MdnsConfig {
            interface: Interface::Addr(IpAddr::from([127, 0, 0, 1])),
            service_type: DEFAULT_TYPE.to_owned(),
            session: Duration::from_secs(60),
            timeout: Duration::from_secs(1),
            probe_concurrency: DEFAULT_PROBE_CONCURRENCY,
            failback: FailbackConfig::default(),
        }
    }
}

/// Builds an [`MdnsConfig`] without a URL:
/// `MdnsConfig::builder().interface(Interface::Name("eth0".into())).build()?`.
#[derive(Debug, Clone, Default)]
pub struct MdnsConfigBuilder {
    config: MdnsConfig,
}

impl MdnsConfigBuilder {
    /// The one interface to join and send on, an address or [`Interface::Name`] (loopback
    /// by default).
    pub fn interface(mut self, interface: impl Into<Interface>) -> Self {
        self.config.interface = interface.into();
        self
    }

    /// The RFC 6763 service type, `_name._tcp` or `_name._udp`.
    pub fn service_type(mut self, service_type: impl Into<String>) -> Self {
        self.config.service_type = service_type.into();
        self
    }

    /// The probe period, and what TTL records carry.
    pub fn session(mut self, session: Duration) -> Self {
        self.config.session = session;
        self
    }

    /// How long `subscribe` and `lookup` wait for the first answers.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.config.timeout = timeout;
        self
    }

    /// Probes in flight at once (1 to 1024).
    pub fn probe_concurrency(mut self, probes: usize) -> Self {
        self.config.probe_concurrency = probes;
        self
    }

    /// Retry, `check` and cache file settings.
    pub fn failback(mut self, failback: FailbackConfig) -> Self {
        self.config.failback = failback;
        self
    }

    /// The config, once it can work.
    pub fn build(self) -> Result<MdnsConfig> {
        let config = self.config;
        let invalid = |value: String, reason: String| Error::invalid("mdns config", value, reason);
        if let Interface::Name(name) = &config.interface {
            if !is_interface_name(name) {
                return Err(invalid(
                    format!("interface {name:?}"),
                    "not an interface name".to_owned(),
                ));
            }
        }
        check_service_type(&config.service_type)
            .map_err(|reason| invalid(format!("type {:?}", config.service_type), reason))?;
        if !(1..=MAX_PROBE_CONCURRENCY).contains(&config.probe_concurrency) {
            return Err(invalid(
                format!("probe concurrency {}", config.probe_concurrency),
                format!("outside 1..={MAX_PROBE_CONCURRENCY}"),
            ));
        }
        require_positive(
            "mdns config",
            &[("session", config.session), ("timeout", config.timeout)],
        )?;
        config.failback.validate()?;
        Ok(config)
    }
}

impl MdnsConfig {
    /// A builder starting from the defaults ([`MdnsConfig::default`]).
    pub fn builder() -> MdnsConfigBuilder {
        MdnsConfigBuilder::default()
    }

    /// Joins mDNS on the interface and opens a registry handle with this config.
    pub async fn connect(self) -> Result<crate::MdnsRegistry> {
        crate::open(self).await
    }

    /// Reads `mdns://local[?interface=127.0.0.1&type=_srpc._tcp&session=60000&timeout=1000]`.
    pub fn from_url(url: &Url) -> Result<MdnsConfig> {
        let params = RegistryParams::new(url);
        if !matches!(url.host(), "" | "local") || url.port() != 0 {
            return Err(params.invalid(
                "mDNS has no server to name: write mdns://local (the interface goes in interface=)",
            ));
        }
        let interface = match url.param("interface").map(str::trim) {
            None | Some("") => Interface::Addr(IpAddr::from([127, 0, 0, 1])),
            Some(text) => Interface::parse(text).map_err(|reason| params.invalid(reason))?,
        };
        let service_type = url.param_or("type", DEFAULT_TYPE).trim().to_owned();
        check_service_type(&service_type).map_err(|reason| params.invalid(reason))?;
        MdnsConfig::builder()
            .interface(interface)
            .service_type(service_type)
            .session(params.positive_duration("session", Duration::from_secs(60))?)
            .timeout(params.positive_duration("timeout", Duration::from_secs(1))?)
            .probe_concurrency(params.probe_concurrency()?)
            .failback(params.failback()?)
            .build()
    }

    /// The type with its domain, as DNS-SD libraries take it: `_srpc._tcp.local.`.
    pub fn type_domain(&self) -> String {
        format!("{}.local.", self.service_type)
    }

    /// Whether providers of this type speak TCP (`_tcp`), so the prober can check them.
    pub fn is_tcp(&self) -> bool {
        self.service_type.ends_with("._tcp")
    }
}

/// RFC 6763 §7 and RFC 6335: `_name._tcp` or `_name._udp`; the name 1–15 letters, digits and
/// hyphens, starting and ending with a letter or digit, with a letter, and no `--`. This is
/// also what python-zeroconf and avahi accept in strict mode.
fn check_service_type(service_type: &str) -> std::result::Result<(), String> {
    let shape = || {
        format!(
            "type {service_type:?} is not an RFC 6763 service type: write _name._tcp or _name._udp"
        )
    };
    let (name, protocol) = service_type.rsplit_once('.').ok_or_else(shape)?;
    if !matches!(protocol, "_tcp" | "_udp") {
        return Err(shape());
    }
    let name = name.strip_prefix('_').ok_or_else(shape)?;
    let valid = (1..=15).contains(&name.len())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        && name.chars().any(|c| c.is_ascii_alphabetic())
        && !name.starts_with('-')
        && !name.ends_with('-')
        && !name.contains("--");
    if valid {
        Ok(())
    } else {
        Err(format!(
            "service name {name:?} of type {service_type:?} must be 1-15 letters, digits and \
             hyphens, with a letter, starting and ending with a letter or digit (RFC 6335)"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(s: &str) -> Result<MdnsConfig> {
        MdnsConfig::from_url(&Url::parse(s).unwrap())
    }

    #[test]
    fn defaults_keep_everything_on_loopback() {
        let c = config("mdns://local").unwrap();
        assert_eq!(c.interface, Interface::Addr(IpAddr::from([127, 0, 0, 1])));
        assert_eq!(c.service_type, "_srpc._tcp");
        assert_eq!(c.type_domain(), "_srpc._tcp.local.");
        assert_eq!(c.session, Duration::from_secs(60));
        assert_eq!(c.timeout, Duration::from_secs(1));
    }

    #[test]
    fn parameters() {
        let c = config("mdns://local?interface=veth0&type=_acme-rpc._udp&session=5000").unwrap();
        assert_eq!(c.interface, Interface::Name("veth0".into()));
        assert_eq!(c.service_type, "_acme-rpc._udp");
        assert_eq!(c.session, Duration::from_secs(5));
        assert_eq!(c.probe_concurrency, 32);
        let c = config("mdns://local?probe.concurrency=4").unwrap();
        assert_eq!(c.probe_concurrency, 4);
        let c = config("mdns://local?interface=[fd77::1]").unwrap();
        assert_eq!(c.interface, Interface::Addr("fd77::1".parse().unwrap()));
    }

    #[test]
    fn refuses_what_cannot_work() {
        for (bad, needle) in [
            ("mdns://224.0.0.251:5353", "mdns://local"),
            (
                "mdns://local?interface=not an interface!",
                "neither an IP address",
            ),
            (
                "mdns://local?type=_rpcxservices",
                "not an RFC 6763 service type",
            ),
            (
                "mdns://local?type=srpc._tcp",
                "not an RFC 6763 service type",
            ),
            ("mdns://local?type=_a-very-long-service._tcp", "1-15"),
            ("mdns://local?type=_a--b._tcp", "1-15"),
            ("mdns://local?type=_123._tcp", "with a letter"),
            ("mdns://local?probe.concurrency=0", "1..=1024"),
            (
                "mdns://local?session=0",
                "session must be greater than zero",
            ),
        ] {
            let err = config(bad).unwrap_err().to_string();
            assert!(err.contains(needle), "{bad}: {err}");
        }
    }
}

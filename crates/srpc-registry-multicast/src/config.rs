//! [`MulticastConfig`]: everything a `multicast://` registry URL can say.

use std::net::IpAddr;
use std::time::Duration;

use srpc_registry_kit::{
    Error, FailbackConfig, Interface, MAX_PROBE_CONCURRENCY, RegistryParams, Result, Url,
    is_interface_name, require_positive,
};

/// The port Java Dubbo uses when the registry URL has none.
pub const DEFAULT_PORT: u16 = 1234;

/// The probe period when none is given (Java's).
const DEFAULT_SESSION: Duration = Duration::from_secs(60);
/// How long `subscribe` and `lookup` wait for first answers when not told.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1);
/// Registrations heard for services no subscription asks for, kept at most (by default).
const DEFAULT_UNSUBSCRIBED_MAX: usize = 10_000;
/// How long such a registration is kept after it was last heard (by default).
const DEFAULT_UNSUBSCRIBED_TTL: Duration = Duration::from_secs(600);
/// Registrations heard on the group, kept at most (by default), subscribed or not.
const DEFAULT_CATALOG_MAX: usize = 100_000;

/// Settings of a multicast registry.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct MulticastConfig {
    /// The multicast group (224.0.0.0/4 or ff00::/8).
    pub group: IpAddr,
    /// The group port; the socket binds it so that datagrams leave from it, as Java's do.
    pub port: u16,
    /// The local interface to join and send on, by address or name. Defaults to loopback
    /// (127.0.0.1 or ::1): set it to a LAN address or interface to reach other hosts.
    pub interface: Interface,
    /// Multicast TTL / hop limit (default 1: the local segment only).
    pub ttl: u32,
    /// Whether this process receives its own datagrams (default true, as Java).
    pub loopback: bool,
    /// Whether providers may answer this registry's subscriptions by unicast (default true).
    /// `false` is sent along in `subscribe` messages, as Java's consumer parameter.
    pub unicast: bool,
    /// Whether subscribers probe providers and drop those that stop answering (default true).
    pub clean: bool,
    /// Probe period (default 60 s).
    pub session: Duration,
    /// Probes in flight at once (`probe.concurrency`, default 32).
    pub probe_concurrency: usize,
    /// How long `subscribe` and `lookup` wait for the first answers (default 1 s).
    pub timeout: Duration,
    /// Registrations heard for services no subscription of this handle asks for, kept at
    /// most (`unsubscribed.max`, default 10,000); past it the oldest heard goes first.
    pub unsubscribed_max: usize,
    /// How long such a registration is kept after it was last heard (`unsubscribed.ttl`,
    /// default 10 min).
    pub unsubscribed_ttl: Duration,
    /// Registrations heard on the group, kept at most (`catalog.max`, default 100,000):
    /// unsubscribed ones are dropped first, oldest first; past that a new registration is
    /// skipped with a warning.
    pub catalog_max: usize,
    /// Retry and `check` settings.
    pub failback: FailbackConfig,
}

/// The URL parameters a `multicast://` registry URL reads, besides the kit's
/// [`COMMON_PARAMS`](srpc_registry_kit::COMMON_PARAMS).
pub const PARAMS: &[&str] = &[
    "interface",
    "ttl",
    "loopback",
    "unicast",
    "clean",
    "session",
    "probe.concurrency",
    "timeout",
    "unsubscribed.max",
    "unsubscribed.ttl",
    "catalog.max",
];

/// Builds a [`MulticastConfig`] without a URL:
/// `MulticastConfig::builder(group, 1234).interface(lan_address).build()?`.
#[derive(Debug)]
pub struct MulticastConfigBuilder {
    config: Result<MulticastConfig>,
}

impl MulticastConfigBuilder {
    fn map(mut self, set: impl FnOnce(&mut MulticastConfig)) -> Self {
        if let Ok(config) = &mut self.config {
            set(config);
        }
        self
    }

    /// The local interface to join and send on, an address or [`Interface::Name`]
    /// (loopback by default).
    pub fn interface(self, interface: impl Into<Interface>) -> Self {
        let interface = interface.into();
        self.map(|c| c.interface = interface)
    }

    /// Multicast TTL / hop limit, 1..=255.
    pub fn ttl(self, ttl: u32) -> Self {
        self.map(|c| c.ttl = ttl)
    }

    /// Whether this process receives its own datagrams.
    pub fn loopback(self, loopback: bool) -> Self {
        self.map(|c| c.loopback = loopback)
    }

    /// Whether providers may answer by unicast.
    pub fn unicast(self, unicast: bool) -> Self {
        self.map(|c| c.unicast = unicast)
    }

    /// Whether subscribers probe providers and drop those that stop answering.
    pub fn clean(self, clean: bool) -> Self {
        self.map(|c| c.clean = clean)
    }

    /// The probe period.
    pub fn session(self, session: Duration) -> Self {
        self.map(|c| c.session = session)
    }

    /// Probes in flight at once (1 to 1024).
    pub fn probe_concurrency(self, probes: usize) -> Self {
        self.map(|c| c.probe_concurrency = probes)
    }

    /// How long `subscribe` and `lookup` wait for the first answers.
    pub fn timeout(self, timeout: Duration) -> Self {
        self.map(|c| c.timeout = timeout)
    }

    /// Registrations heard for unsubscribed services, kept at most (0 keeps none).
    pub fn unsubscribed_max(self, max: usize) -> Self {
        self.map(|c| c.unsubscribed_max = max)
    }

    /// How long a registration heard for an unsubscribed service is kept.
    pub fn unsubscribed_ttl(self, ttl: Duration) -> Self {
        self.map(|c| c.unsubscribed_ttl = ttl)
    }

    /// Registrations heard on the group, kept at most (at least 1).
    pub fn catalog_max(self, max: usize) -> Self {
        self.map(|c| c.catalog_max = max)
    }

    /// Retry, `check` and cache file settings.
    pub fn failback(self, failback: FailbackConfig) -> Self {
        self.map(|c| c.failback = failback)
    }

    /// The config, once it can work: a multicast group, an interface of its IP version, a
    /// TTL in 1..=255, a session above zero.
    pub fn build(self) -> Result<MulticastConfig> {
        let config = self.config?;
        let invalid =
            |value: String, reason: &str| Error::invalid("multicast config", value, reason);
        match &config.interface {
            Interface::Addr(address) if address.is_ipv4() != config.group.is_ipv4() => {
                return Err(invalid(
                    format!("interface {} and group {}", config.interface, config.group),
                    "they are of different IP versions",
                ));
            }
            Interface::Name(name) if !is_interface_name(name) => {
                return Err(invalid(
                    format!("interface {name:?}"),
                    "not an interface name",
                ));
            }
            _ => {}
        }
        if !(1..=255).contains(&config.ttl) {
            return Err(invalid(format!("ttl {}", config.ttl), "outside 1..=255"));
        }
        if !(1..=MAX_PROBE_CONCURRENCY).contains(&config.probe_concurrency) {
            return Err(invalid(
                format!("probe concurrency {}", config.probe_concurrency),
                "outside 1..=1024",
            ));
        }
        require_positive(
            "multicast config",
            &[
                ("session", config.session),
                ("unsubscribed.ttl", config.unsubscribed_ttl),
            ],
        )?;
        if config.catalog_max == 0 {
            return Err(invalid("catalog.max 0".to_owned(), "must be at least 1"));
        }
        config.failback.validate()?;
        Ok(config)
    }
}

impl MulticastConfig {
    /// A builder starting from [`MulticastConfig::new`]'s defaults for `group` and `port`.
    pub fn builder(group: IpAddr, port: u16) -> MulticastConfigBuilder {
        MulticastConfigBuilder {
            config: MulticastConfig::new(group, port),
        }
    }

    /// Joins the group and opens a registry handle with this config.
    pub async fn connect(self) -> Result<crate::MulticastRegistry> {
        crate::open(self).await
    }

    /// Defaults for a group and port, joined on loopback.
    pub fn new(group: IpAddr, port: u16) -> Result<MulticastConfig> {
        if !group.is_multicast() {
            return Err(Error::invalid(
                "multicast group",
                group,
                "not a multicast address (224.0.0.0/4 or ff00::/8)",
            ));
        }
        Ok(MulticastConfig {
            group,
            port,
            interface: Interface::loopback_for(group),
            ttl: 1,
            loopback: true,
            unicast: true,
            clean: true,
            session: DEFAULT_SESSION,
            probe_concurrency: srpc_registry_kit::DEFAULT_PROBE_CONCURRENCY,
            timeout: DEFAULT_TIMEOUT,
            unsubscribed_max: DEFAULT_UNSUBSCRIBED_MAX,
            unsubscribed_ttl: DEFAULT_UNSUBSCRIBED_TTL,
            catalog_max: DEFAULT_CATALOG_MAX,
            failback: FailbackConfig::default(),
        })
    }

    /// Reads `multicast://<group>[:port]?interface=…&ttl=…&loopback=…&unicast=…&clean=…&session=…&timeout=…`.
    pub fn from_url(url: &Url) -> Result<MulticastConfig> {
        let params = RegistryParams::new(url);
        let invalid = |reason: String| params.invalid(reason);
        let host = url.host();
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        let group: IpAddr = bare.parse().map_err(|_| {
            invalid(format!(
                "host {host:?} is not an IP multicast group address"
            ))
        })?;
        if !group.is_multicast() {
            return Err(invalid(format!(
                "host {host:?} is not a multicast group address (224.0.0.0/4 or ff00::/8)"
            )));
        }
        let port = if url.port() == 0 {
            DEFAULT_PORT
        } else {
            url.port()
        };
        let mut builder = MulticastConfig::builder(group, port);
        if let Some(text) = url.param("interface").filter(|s| !s.trim().is_empty()) {
            let interface = Interface::parse(text).map_err(invalid)?;
            if let Interface::Addr(address) = interface {
                if address.is_ipv4() != group.is_ipv4() {
                    return Err(invalid(format!(
                        "interface {address} and group {group} are of different IP versions"
                    )));
                }
            }
            builder = builder.interface(interface);
        }
        let ttl = url.param_u64("ttl", 1)?;
        if !(1..=255).contains(&ttl) {
            return Err(invalid(format!("ttl {ttl} is outside 1..=255")));
        }
        let session = url.param_duration("session", DEFAULT_SESSION)?;
        if session.is_zero() {
            return Err(invalid("session must be > 0".to_owned()));
        }
        builder
            // In 1..=255, checked above.
            .ttl(ttl as u32)
            .loopback(url.param_bool("loopback", true)?)
            .unicast(url.param_bool("unicast", true)?)
            .clean(url.param_bool("clean", true)?)
            .session(session)
            .probe_concurrency(params.probe_concurrency()?)
            .timeout(url.param_duration("timeout", DEFAULT_TIMEOUT)?)
            .unsubscribed_max(count(url, "unsubscribed.max", DEFAULT_UNSUBSCRIBED_MAX)?)
            .unsubscribed_ttl(url.param_duration("unsubscribed.ttl", DEFAULT_UNSUBSCRIBED_TTL)?)
            .catalog_max(count(url, "catalog.max", DEFAULT_CATALOG_MAX)?)
            .failback(params.failback()?)
            .build()
    }
}

/// A count parameter.
fn count(url: &Url, name: &str, default: usize) -> Result<usize> {
    let value = url.param_u64(name, default as u64)?;
    usize::try_from(value)
        .map_err(|_| RegistryParams::new(url).invalid(format!("{name} {value} is too large")))
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use super::*;

    fn config(s: &str) -> Result<MulticastConfig> {
        MulticastConfig::from_url(&Url::parse(s).unwrap())
    }

    #[test]
    fn defaults_follow_java_and_stay_on_loopback() {
        let c = config("multicast://224.5.6.7").unwrap();
        assert_eq!(c.port, 1234);
        assert_eq!(c.interface, Interface::Addr(Ipv4Addr::LOCALHOST.into()));
        assert_eq!(
            (c.ttl, c.loopback, c.unicast, c.clean),
            (1, true, true, true)
        );
        assert_eq!(c.session, Duration::from_secs(60));
        assert_eq!(c.timeout, Duration::from_secs(1));
        assert_eq!(c.probe_concurrency, 32);
        assert_eq!(
            (c.unsubscribed_max, c.unsubscribed_ttl, c.catalog_max),
            (10_000, Duration::from_secs(600), 100_000)
        );
        let v6 = config("multicast://[ff02::1234]:5000").unwrap();
        assert_eq!(v6.interface, Interface::Addr(Ipv6Addr::LOCALHOST.into()));
        assert_eq!(v6.port, 5000);
    }

    #[test]
    fn parameters() {
        let c = config("multicast://239.1.2.3:4000?interface=127.0.0.1&ttl=4&loopback=false&unicast=false&clean=false&session=250&timeout=2s&probe.concurrency=8").unwrap();
        assert_eq!(c.probe_concurrency, 8);
        assert_eq!(c.ttl, 4);

        assert!(!c.loopback && !c.unicast && !c.clean);
        assert_eq!(c.session, Duration::from_millis(250));
        assert_eq!(c.timeout, Duration::from_secs(2));
        let bounds =
            config("multicast://239.1.2.3?unsubscribed.max=0&unsubscribed.ttl=30s&catalog.max=500")
                .unwrap();
        assert_eq!(
            (
                bounds.unsubscribed_max,
                bounds.unsubscribed_ttl,
                bounds.catalog_max
            ),
            (0, Duration::from_secs(30), 500)
        );
        let named = config("multicast://239.1.2.3?interface=eth0").unwrap();
        assert_eq!(named.interface, Interface::Name("eth0".into()));
    }

    #[test]
    fn refuses_what_cannot_work() {
        for (bad, needle) in [
            ("multicast://10.0.0.1:1234", "not a multicast group"),
            ("multicast://example.com", "not an IP multicast group"),
            (
                "multicast://224.5.6.7?interface=eth0!",
                "neither an IP address",
            ),
            (
                "multicast://224.5.6.7?interface=::1",
                "different IP versions",
            ),
            ("multicast://224.5.6.7?ttl=0", "ttl"),
            ("multicast://224.5.6.7?session=0", "session"),
            (
                "multicast://224.5.6.7?probe.concurrency=0",
                "probe.concurrency",
            ),
            ("multicast://224.5.6.7?probe.concurrency=5000", "1..=1024"),
            ("multicast://224.5.6.7?loopback=maybe", "loopback"),
            ("multicast://224.5.6.7?catalog.max=0", "catalog.max"),
            (
                "multicast://224.5.6.7?unsubscribed.ttl=0",
                "unsubscribed.ttl",
            ),
        ] {
            let err = config(bad).unwrap_err().to_string();
            assert!(err.contains(needle), "{bad}: {err}");
        }
    }
}

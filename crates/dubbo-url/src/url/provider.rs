//! [`ProviderUrl`]: the URL a provider registers, with the parameters Java Dubbo writes.

use std::net::SocketAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use super::Url;
use crate::error::Result;

/// The URL a provider registers: `protocol://host:port/<interface>?anyhost=false
/// &deprecated=false&dubbo=2.0.2&dynamic=true&generic=false&interface=…&methods=…&pid=…
/// &side=provider&timestamp=…`, plus `version`,
/// `group`, `weight`, `application` and any other parameter given. Parameters come out
/// sorted, as Java writes them.
///
/// ```
/// use dubbo_url::ProviderUrl;
///
/// let url = ProviderUrl::new("com.acme.Echo")
///     .protocol("tri")
///     .methods(["say", "ping"])
///     .version("1.0")
///     .build("127.0.0.1:50051".parse()?)?;
/// assert!(url.to_full_string().starts_with(
///     "tri://127.0.0.1:50051/com.acme.Echo?anyhost=false&deprecated=false&dubbo=2.0.2\
///      &dynamic=true&generic=false&interface=com.acme.Echo&methods=ping,say&pid="
/// ));
/// assert_eq!(url.param("version"), Some("1.0"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub struct ProviderUrl {
    protocol: String,
    interface: String,
    methods: Vec<String>,
    params: Vec<(String, String)>,
}

impl ProviderUrl {
    /// A provider of `interface` (`com.acme.Echo`), protocol `dubbo` until
    /// [`ProviderUrl::protocol`] says otherwise.
    pub fn new(interface: impl Into<String>) -> ProviderUrl {
        ProviderUrl {
            protocol: "dubbo".to_owned(),
            interface: interface.into(),
            methods: Vec::new(),
            params: Vec::new(),
        }
    }

    /// The service interface.
    pub fn interface(&self) -> &str {
        &self.interface
    }

    /// With this protocol (`srpc`, `tri`, `jsonrpc`…).
    pub fn protocol(mut self, protocol: impl Into<String>) -> ProviderUrl {
        self.protocol = protocol.into();
        self
    }

    /// With these method names (sorted and deduplicated in the URL).
    pub fn methods<S: Into<String>>(mut self, methods: impl IntoIterator<Item = S>) -> ProviderUrl {
        self.methods = methods.into_iter().map(Into::into).collect();
        self
    }

    /// With a `version`.
    pub fn version(self, version: impl Into<String>) -> ProviderUrl {
        self.param("version", version)
    }

    /// With a `group`.
    pub fn group(self, group: impl Into<String>) -> ProviderUrl {
        self.param("group", group)
    }

    /// With a `weight` (Dubbo's default is 100).
    pub fn weight(self, weight: u32) -> ProviderUrl {
        self.param("weight", weight.to_string())
    }

    /// With Dubbo's `application`.
    pub fn application(self, application: impl Into<String>) -> ProviderUrl {
        self.param("application", application)
    }

    /// With any other parameter (the last value of a key wins).
    pub fn param(mut self, key: impl Into<String>, value: impl Into<String>) -> ProviderUrl {
        self.params.push((key.into(), value.into()));
        self
    }

    /// The URL of a provider that consumers dial at `addr` (not `0.0.0.0`), with this
    /// process's `pid` and the current `timestamp`.
    pub fn build(&self, addr: SocketAddr) -> Result<Url> {
        let mut methods = self.methods.clone();
        methods.sort();
        methods.dedup();
        let timestamp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis());
        let mut builder = Url::builder(self.protocol.clone())
            .host(addr.ip().to_string())
            .port(addr.port())
            .path(&self.interface)
            .param("anyhost", "false")
            .param("deprecated", "false")
            .param("dubbo", "2.0.2")
            .param("dynamic", "true")
            .param("generic", "false")
            .param("interface", self.interface.clone())
            .param("methods", methods.join(","))
            .param("pid", std::process::id().to_string())
            .param("side", "provider")
            .param("timestamp", timestamp.to_string());
        for (key, value) in &self.params {
            builder = builder.param(key.clone(), value.clone());
        }
        builder.build()
    }
}

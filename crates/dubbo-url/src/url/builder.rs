//! [`UrlBuilder`]: a [`Url`] field by field, checked on `build`.

use super::{Parts, Url, bracket_ipv6};
use crate::error::Result;

/// Builds a [`Url`] field by field and checks on [`UrlBuilder::build`] that the result can be
/// written and read back unchanged.
///
/// ```
/// use dubbo_url::Url;
///
/// let url = Url::builder("dubbo")
///     .host("::1") // IPv6 hosts are bracketed for you
///     .port(20880)
///     .path("com.acme.Echo")
///     .param("side", "provider")
///     .build()?;
/// assert_eq!(url.to_full_string(), "dubbo://[::1]:20880/com.acme.Echo?side=provider");
/// # Ok::<(), dubbo_url::Error>(())
/// ```
#[derive(Debug, Clone, Default)]
#[must_use]
pub struct UrlBuilder {
    parts: Parts,
}

impl Url {
    /// Starts a builder for a URL with this protocol.
    pub fn builder(protocol: impl Into<String>) -> UrlBuilder {
        UrlBuilder {
            parts: Parts {
                protocol: protocol.into(),
                ..Parts::default()
            },
        }
    }
}

impl UrlBuilder {
    /// Sets user name and password (an empty password is left out).
    pub fn userinfo(mut self, username: impl Into<String>, password: impl Into<String>) -> Self {
        self.parts.username = username.into();
        self.parts.password = password.into();
        self
    }

    /// Sets the host; an IPv6 address is bracketed.
    pub fn host(mut self, host: impl Into<String>) -> Self {
        self.parts.host = bracket_ipv6(host.into());
        self
    }

    /// Sets the port (0 = none).
    pub fn port(mut self, port: u16) -> Self {
        self.parts.port = port;
        self
    }

    /// Sets the path (leading `/` stripped).
    pub fn path(mut self, path: impl AsRef<str>) -> Self {
        self.parts.path = path.as_ref().trim_start_matches('/').to_owned();
        self
    }

    /// Adds a parameter; the last value for a key wins.
    pub fn param(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.parts.params.insert(key.into(), value.into());
        self
    }

    /// Checks the URL with [`Url::validate`] and returns it.
    pub fn build(self) -> Result<Url> {
        let url = self.parts.into_url();
        url.validate()?;
        Ok(url)
    }
}

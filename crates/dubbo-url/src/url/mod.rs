//! The [`Url`] type: its fields in one shared buffer, typed getters, changes, equality.
//!
//! Reading a URL is in `parse`, writing it (and `validate`, which checks that what is written
//! reads back) in `write`, building one field by field in `builder`.

mod builder;
mod parse;
mod provider;
mod write;

pub use self::builder::UrlBuilder;
pub use self::provider::ProviderUrl;
pub use self::write::java_cmp;

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::net::Ipv6Addr;
use std::sync::Arc;
use std::time::Duration;

use crate::error::{Error, Result};

/// The parameter that carries a registration's export time; equality and hashing ignore its value.
pub const TIMESTAMP_KEY: &str = "timestamp";
/// The protocol of a URL that stands for "this category has no entries".
pub const EMPTY_PROTOCOL: &str = "empty";
/// The category a URL belongs to when it has no `category` parameter.
pub const DEFAULT_CATEGORY: &str = "providers";
/// The wildcard value of `interface`, `group`, `version`, `classifier`, `category`, `enabled`.
pub const ANY_VALUE: &str = "*";

/// A Dubbo URL: `protocol://[username[:password]@]host[:port][/path][?k=v&…]`.
///
/// This is the registration record of every srpc registry. It follows Java Dubbo's `URL` class:
/// the path is stored without its leading `/`, a port of 0 means "no port", and the parameters
/// are a map whose last duplicate wins. [`Url::to_full_string`] (and `Display`) reproduce Java's
/// `toFullString()` byte for byte.
///
/// Equality and hashing ignore the value of the `timestamp` parameter (its presence still
/// counts), as Java Dubbo 2.7 and later do, so a re-export with a new timestamp is the same
/// registration.
///
/// ```
/// use dubbo_url::Url;
///
/// let url: Url = "dubbo://10.0.0.5:20880/com.acme.Echo?version=1.0&interface=com.acme.Echo"
///     .parse()?;
/// assert_eq!(url.host(), "10.0.0.5");
/// assert_eq!(url.port(), 20880);
/// assert_eq!(url.service_key(), "com.acme.Echo:1.0");
/// // Parameters come out sorted, as Java writes them.
/// assert_eq!(
///     url.to_full_string(),
///     "dubbo://10.0.0.5:20880/com.acme.Echo?interface=com.acme.Echo&version=1.0"
/// );
/// # Ok::<(), dubbo_url::Error>(())
/// ```
///
/// A `Url` is immutable and shared: cloning it costs one reference count, and every clone
/// points at the same text. Registries hold many copies of each provider's URL (the catalog,
/// every snapshot, the backend's listing), so this is what keeps a subscriber to 100 000
/// providers small. The `with_*`/`set_*` methods make a new one.
#[derive(Clone, Default)]
pub struct Url {
    inner: Arc<Inner>,
}

/// A URL's text in one buffer: protocol, username, password, host and path, then every
/// parameter's key and value, sorted by key (byte order), one after another.
#[derive(Default)]
struct Inner {
    buf: Box<str>,
    /// Where protocol, username, password, host and path end in `buf`.
    ends: [usize; 5],
    port: u16,
    /// Where each parameter's key and value end in `buf`; a key starts where the previous
    /// value ends (the first where the path ends).
    params: Box<[(usize, usize)]>,
    /// `to_full_string()`, made the first time it is asked for and shared by every clone:
    /// registries sort and key by it over and over.
    full: std::sync::OnceLock<Box<str>>,
}

/// The fields of a URL being built or changed.
#[derive(Debug, Clone, Default)]
struct Parts {
    protocol: String,
    username: String,
    password: String,
    host: String,
    port: u16,
    path: String,
    params: BTreeMap<String, String>,
}

/// The parameters of a [`Url`] as `(key, value)` pairs, in byte order of their keys.
#[derive(Clone)]
pub struct Params<'a> {
    buf: &'a str,
    start: usize,
    ends: std::slice::Iter<'a, (usize, usize)>,
}

impl<'a> Iterator for Params<'a> {
    type Item = (&'a str, &'a str);

    fn next(&mut self) -> Option<(&'a str, &'a str)> {
        let &(key_end, value_end) = self.ends.next()?;
        let key = self.buf.get(self.start..key_end).unwrap_or_default();
        let value = self.buf.get(key_end..value_end).unwrap_or_default();
        self.start = value_end;
        Some((key, value))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.ends.size_hint()
    }
}

impl ExactSizeIterator for Params<'_> {}

impl fmt::Debug for Params<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.clone()).finish()
    }
}

impl Inner {
    /// Lays out a URL; `params` must be sorted by key and free of duplicate keys.
    fn assemble<'a>(
        protocol: &str,
        username: &str,
        password: &str,
        host: &str,
        port: u16,
        path: &str,
        params: impl Iterator<Item = (&'a str, &'a str)> + Clone,
    ) -> Inner {
        let fixed = [protocol, username, password, host, path];
        let len = fixed.iter().map(|s| s.len()).sum::<usize>()
            + params
                .clone()
                .map(|(k, v)| k.len() + v.len())
                .sum::<usize>();
        let mut buf = String::with_capacity(len);
        let mut ends = [0; 5];
        for (end, text) in ends.iter_mut().zip(fixed) {
            buf.push_str(text);
            *end = buf.len();
        }
        let (count, _) = params.size_hint();
        let mut offsets = Vec::with_capacity(count);
        for (key, value) in params {
            buf.push_str(key);
            let key_end = buf.len();
            buf.push_str(value);
            offsets.push((key_end, buf.len()));
        }
        Inner {
            buf: buf.into_boxed_str(),
            ends,
            port,
            params: offsets.into_boxed_slice(),
            full: std::sync::OnceLock::new(),
        }
    }

    fn field(&self, i: usize) -> &str {
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        self.buf.get(start..self.ends[i]).unwrap_or_default()
    }

    fn params(&self) -> Params<'_> {
        Params {
            buf: &self.buf,
            start: self.ends[4],
            ends: self.params.iter(),
        }
    }

    /// The key of parameter `i`.
    fn key(&self, i: usize) -> &str {
        let start = if i == 0 {
            self.ends[4]
        } else {
            self.params[i - 1].1
        };
        self.buf.get(start..self.params[i].0).unwrap_or_default()
    }

    /// The value of parameter `key`: a binary search over the sorted keys.
    fn get(&self, key: &str) -> Option<&str> {
        self.get_prefixed("", key)
    }

    /// The value of parameter `<prefix><key>`, found without building the name (an
    /// allocation on every lookup of a `default.` fallback otherwise).
    fn get_prefixed(&self, prefix: &str, key: &str) -> Option<&str> {
        let (mut lo, mut hi) = (0, self.params.len());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let name = self.key(mid);
            let order = if prefix.is_empty() {
                name.cmp(key)
            } else {
                name.bytes().cmp(prefix.bytes().chain(key.bytes()))
            };
            match order {
                Ordering::Less => lo = mid + 1,
                Ordering::Greater => hi = mid,
                Ordering::Equal => {
                    let (key_end, value_end) = self.params[mid];
                    return self.buf.get(key_end..value_end);
                }
            }
        }
        None
    }

    fn parts(&self) -> Parts {
        Parts {
            protocol: self.field(0).to_owned(),
            username: self.field(1).to_owned(),
            password: self.field(2).to_owned(),
            host: self.field(3).to_owned(),
            port: self.port,
            path: self.field(4).to_owned(),
            params: self
                .params()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
        }
    }
}

impl Parts {
    fn into_url(self) -> Url {
        Url {
            inner: Arc::new(Inner::assemble(
                &self.protocol,
                &self.username,
                &self.password,
                &self.host,
                self.port,
                &self.path,
                self.params.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            )),
        }
    }
}

impl Url {
    /// The protocol (`dubbo`, `consumer`, `empty`, …); empty when the URL has none.
    pub fn protocol(&self) -> &str {
        self.inner.field(0)
    }

    /// The user name; empty when there is none.
    pub fn username(&self) -> &str {
        self.inner.field(1)
    }

    /// The password; empty when there is none.
    pub fn password(&self) -> &str {
        self.inner.field(2)
    }

    /// The host as written: a name, an IPv4 address, or a bracketed IPv6 address `[::1]`.
    pub fn host(&self) -> &str {
        self.inner.field(3)
    }

    /// The port; 0 means the URL has none.
    pub fn port(&self) -> u16 {
        self.inner.port
    }

    /// The path, without its leading `/`.
    pub fn path(&self) -> &str {
        self.inner.field(4)
    }

    /// `host:port`, or just `host` when there is no port.
    pub fn address(&self) -> String {
        if self.port() > 0 {
            format!("{}:{}", self.host(), self.port())
        } else {
            self.host().to_owned()
        }
    }

    /// All parameters as `(key, value)` pairs, in byte order of their keys.
    pub fn params(&self) -> Params<'_> {
        self.inner.params()
    }

    /// The value of parameter `key`, falling back to `default.<key>` as Java does.
    pub fn param(&self, key: &str) -> Option<&str> {
        if let Some(value) = self.inner.get(key) {
            return Some(value);
        }
        if key.starts_with("default.") {
            return None;
        }
        self.inner.get_prefixed("default.", key)
    }

    /// The value of parameter `key`, or `default` when it is absent.
    pub fn param_or<'a>(&'a self, key: &str, default: &'a str) -> &'a str {
        self.param(key).unwrap_or(default)
    }

    /// Parameter `key` as a boolean (`true`/`false`, any case), or `default` when absent or empty.
    pub fn param_bool(&self, key: &str, default: bool) -> Result<bool> {
        match self.param(key).map(str::trim) {
            None | Some("") => Ok(default),
            Some(v) if v.eq_ignore_ascii_case("true") => Ok(true),
            Some(v) if v.eq_ignore_ascii_case("false") => Ok(false),
            Some(v) => Err(invalid_param(key, v, "a boolean")),
        }
    }

    /// Parameter `key` as an unsigned integer, or `default` when absent or empty.
    pub fn param_u64(&self, key: &str, default: u64) -> Result<u64> {
        match self.param(key).map(str::trim) {
            None | Some("") => Ok(default),
            Some(v) => v
                .parse()
                .map_err(|_| invalid_param(key, v, "an unsigned integer")),
        }
    }

    /// Parameter `key` as a signed integer, or `default` when absent or empty.
    pub fn param_i64(&self, key: &str, default: i64) -> Result<i64> {
        match self.param(key).map(str::trim) {
            None | Some("") => Ok(default),
            Some(v) => v.parse().map_err(|_| invalid_param(key, v, "an integer")),
        }
    }

    /// Parameter `key` as a duration, or `default` when absent or empty.
    ///
    /// A plain number is milliseconds, as in every Dubbo timeout; a number with a unit
    /// (`250ms`, `5s`, `1m`) is read by `humantime`.
    pub fn param_duration(&self, key: &str, default: Duration) -> Result<Duration> {
        match self.param(key).map(str::trim) {
            None | Some("") => Ok(default),
            Some(v) => {
                if let Ok(ms) = v.parse::<u64>() {
                    return Ok(Duration::from_millis(ms));
                }
                humantime::parse_duration(v).map_err(|_| {
                    invalid_param(key, v, "a duration in milliseconds or with a unit (5s)")
                })
            }
        }
    }

    /// The method-level parameter `<method>.<key>`, falling back to `key`.
    pub fn method_param(&self, method: &str, key: &str) -> Option<&str> {
        self.inner
            .get(&format!("{method}.{key}"))
            .or_else(|| self.param(key))
    }

    /// The interface: parameter `interface`, else the path (Java's `getServiceInterface`).
    pub fn service_interface(&self) -> &str {
        match self.param("interface") {
            Some(iface) if !iface.is_empty() => iface,
            _ => self.path(),
        }
    }

    /// The category: parameter `category`, else `providers`.
    pub fn category(&self) -> &str {
        match self.param("category") {
            Some(c) if !c.is_empty() => c,
            _ => DEFAULT_CATEGORY,
        }
    }

    /// `[group/]interface[:version]`, group and version left out when absent or empty.
    ///
    /// ```
    /// let url: dubbo_url::Url = "dubbo://h:1/x?interface=a.B&group=g&version=2".parse()?;
    /// assert_eq!(url.service_key(), "g/a.B:2");
    /// # Ok::<(), dubbo_url::Error>(())
    /// ```
    pub fn service_key(&self) -> String {
        let mut key = String::new();
        if let Some(group) = self.param("group").filter(|g| !g.is_empty()) {
            key.push_str(group);
            key.push('/');
        }
        key.push_str(self.service_interface());
        if let Some(version) = self.param("version").filter(|v| !v.is_empty()) {
            key.push(':');
            key.push_str(version);
        }
        key
    }

    /// Every address this URL names, as Java's `getBackupAddress(defaultPort)`: the URL's own
    /// `host:port` first, then each entry of the `backup` parameter. Comma lists in the host
    /// (`zookeeper://a:2181,b:2181`) are split too. Entries without a port get `default_port`
    /// (unless it is 0).
    ///
    /// ```
    /// let url: dubbo_url::Url = "zookeeper://a:2181?backup=b:2182,c".parse()?;
    /// assert_eq!(url.backup_addresses(2181), ["a:2181", "b:2182", "c:2181"]);
    /// # Ok::<(), dubbo_url::Error>(())
    /// ```
    pub fn backup_addresses(&self, default_port: u16) -> Vec<String> {
        let own = self.address();
        let backup = self.param("backup").unwrap_or("");
        own.split(',')
            .chain(backup.split(','))
            .map(str::trim)
            .filter(|a| !a.is_empty())
            .map(|a| {
                if default_port == 0 || has_port(a) {
                    a.to_owned()
                } else {
                    format!("{a}:{default_port}")
                }
            })
            .collect()
    }

    /// Whether the protocol is `empty` (a "this category has no entries" marker).
    pub fn is_empty_protocol(&self) -> bool {
        self.protocol() == EMPTY_PROTOCOL
    }

    /// The `empty://` marker Java registries send for a subscription whose `category` has no
    /// entries: the subscription URL with protocol `empty` and `category=<category>`.
    pub fn to_empty(&self, category: &str) -> Url {
        self.clone()
            .with_protocol(EMPTY_PROTOCOL)
            .with_param("category", category)
    }

    /// Java's `UrlUtils.getEmptyUrl`: `empty://0.0.0.0/<interface>?category=…[&group=…][&version=…]`
    /// for a service key `[group/]interface[:version]`.
    ///
    /// ```
    /// let url = dubbo_url::Url::empty_for_service("g/a.B:1.0", "providers");
    /// assert_eq!(url.to_full_string(), "empty://0.0.0.0/a.B?category=providers&group=g&version=1.0");
    /// ```
    pub fn empty_for_service(service_key: &str, category: &str) -> Url {
        let (group, rest) = match service_key.split_once('/') {
            Some((group, rest)) => (group, rest),
            None => ("", service_key),
        };
        let (interface, version) = rest.split_once(':').unwrap_or((rest, ""));
        let mut parts = Parts {
            protocol: EMPTY_PROTOCOL.to_owned(),
            host: "0.0.0.0".to_owned(),
            path: interface.to_owned(),
            ..Parts::default()
        };
        parts
            .params
            .insert("category".to_owned(), category.to_owned());
        if !group.is_empty() {
            parts.params.insert("group".to_owned(), group.to_owned());
        }
        if !version.is_empty() {
            parts
                .params
                .insert("version".to_owned(), version.to_owned());
        }
        parts.into_url()
    }

    /// Returns this URL with another protocol.
    #[must_use]
    pub fn with_protocol(self, protocol: impl Into<String>) -> Url {
        self.change(|p| p.protocol = protocol.into())
    }

    /// Returns this URL with another host (an unbracketed IPv6 address is bracketed).
    #[must_use]
    pub fn with_host(self, host: impl Into<String>) -> Url {
        self.change(|p| p.host = bracket_ipv6(host.into()))
    }

    /// Returns this URL with another port (0 = none).
    #[must_use]
    pub fn with_port(self, port: u16) -> Url {
        self.change(|p| p.port = port)
    }

    /// Returns this URL with another path (leading `/` stripped).
    #[must_use]
    pub fn with_path(self, path: impl AsRef<str>) -> Url {
        self.change(|p| p.path = path.as_ref().trim_start_matches('/').to_owned())
    }

    /// Returns this URL with parameter `key` set to `value`.
    #[must_use]
    pub fn with_param(mut self, key: impl Into<String>, value: impl Into<String>) -> Url {
        self.set_param(key, value);
        self
    }

    /// Returns this URL without parameter `key`.
    #[must_use]
    pub fn without_param(mut self, key: &str) -> Url {
        self.remove_param(key);
        self
    }

    /// Sets parameter `key` to `value`; an empty key is ignored, as in Java.
    pub fn set_param(&mut self, key: impl Into<String>, value: impl Into<String>) {
        let key = key.into();
        if !key.is_empty() {
            let value = value.into();
            *self = std::mem::take(self).change(|p| {
                p.params.insert(key, value);
            });
        }
    }

    /// Removes parameter `key` and returns its value.
    pub fn remove_param(&mut self, key: &str) -> Option<String> {
        let value = self.inner.get(key)?.to_owned();
        *self = std::mem::take(self).change(|p| {
            p.params.remove(key);
        });
        Some(value)
    }

    /// This URL with its fields changed by `f` (laid out anew: URLs are shared, not edited).
    fn change(self, f: impl FnOnce(&mut Parts)) -> Url {
        let mut parts = self.inner.parts();
        f(&mut parts);
        parts.into_url()
    }
}

impl fmt::Display for Url {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_full_str())
    }
}

impl fmt::Debug for Url {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Url({self})")
    }
}

impl std::str::FromStr for Url {
    type Err = Error;

    fn from_str(s: &str) -> Result<Url> {
        Url::parse(s)
    }
}

impl TryFrom<&str> for Url {
    type Error = Error;

    fn try_from(s: &str) -> Result<Url> {
        Url::parse(s)
    }
}

impl PartialEq for Url {
    fn eq(&self, other: &Url) -> bool {
        let (a, b) = (&*self.inner, &*other.inner);
        if Arc::ptr_eq(&self.inner, &other.inner) {
            return true;
        }
        (0..5).all(|i| a.field(i) == b.field(i))
            && a.port == b.port
            && a.params.len() == b.params.len()
            && a.params()
                .zip(b.params())
                .all(|((ka, va), (kb, vb))| ka == kb && (ka == TIMESTAMP_KEY || va == vb))
    }
}

impl Eq for Url {}

impl Hash for Url {
    fn hash<H: Hasher>(&self, state: &mut H) {
        let inner = &*self.inner;
        for i in 0..5 {
            inner.field(i).hash(state);
        }
        inner.port.hash(state);
        inner.params.len().hash(state);
        for (key, value) in inner.params() {
            key.hash(state);
            if key != TIMESTAMP_KEY {
                value.hash(state);
            }
        }
    }
}

fn has_port(address: &str) -> bool {
    match address.rsplit_once(':') {
        Some((host, port)) => {
            !port.is_empty()
                && port.bytes().all(|b| b.is_ascii_digit())
                && (!host.starts_with('[') || host.ends_with(']'))
        }
        None => false,
    }
}

fn invalid_param(key: &str, value: &str, expected: &'static str) -> Error {
    Error::InvalidParam {
        key: key.to_owned(),
        value: value.to_owned(),
        expected,
    }
}

fn bracket_ipv6(host: String) -> String {
    let bare = host.split_once('%').map_or(host.as_str(), |(a, _)| a);
    if bare.parse::<Ipv6Addr>().is_ok() {
        format!("[{host}]")
    } else {
        host
    }
}

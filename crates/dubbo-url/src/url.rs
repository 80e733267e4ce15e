//! The [`Url`] type: fields, Java-compatible parsing and formatting, typed getters, equality.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::net::Ipv6Addr;
use std::sync::Arc;
use std::time::Duration;

use crate::codec;
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

    /// Parses either form a registry may hold: the decoded form (`dubbo://…`, as multicast
    /// datagrams and cache files carry it) or the encoded form (`dubbo%3A%2F%2F…`, as ZooKeeper
    /// child names carry it). The encoded form is recognised by `%3A%2F%2F` (any case) in an
    /// input that has no literal `://`.
    pub fn parse(input: &str) -> Result<Url> {
        let text = trim(input);
        if find_scheme_end(text, "://").is_none() && contains_ignore_ascii_case(text, "%3A%2F%2F") {
            Url::parse_encoded(text)
        } else {
            Url::parse_decoded(text)
        }
    }

    /// Parses the encoded form: the whole text is `URLDecoder`-decoded, then read as the
    /// decoded form. Separators are therefore recognised after decoding, as Java's
    /// `URLStrParser.parseEncodedStr` does.
    pub fn parse_encoded(input: &str) -> Result<Url> {
        Url::parse_decoded(&codec::decode(trim(input))?)
    }

    /// Parses the decoded form, following Java Dubbo's `URL.valueOf`.
    ///
    /// Policy where Java versions differ: parameters split on `&` and `;`; each part is
    /// trimmed and empty parts are skipped; the name ends at the first `=`; a part without
    /// `=` (`flag`) and a part with nothing after it (`k=`) both give an empty value (as Dubbo
    /// 3 does); a part with an empty name (`=v`) is dropped, since it could never be written
    /// back; the last duplicate wins; `default.X=v` also sets `X=v` when `X` is absent.
    /// IPv6 hosts must be bracketed (`[fe80::1]:20880`); a bare IPv6 host is an error.
    pub fn parse_decoded(input: &str) -> Result<Url> {
        let whole = trim(input);
        if whole.is_empty() {
            return Err(Error::Empty);
        }
        let (body, query) = match whole.split_once('?') {
            Some((body, query)) => (body, Some(query)),
            None => (whole, None),
        };
        // White space before a `?` or `#` would end the written URL, where reading trims it:
        // drop it here so that what is read is what is written (found by fuzzing:
        // `x://h/p ?` read a path `p ` that wrote back as `p`).
        let body = body
            .split_once('#')
            .map_or(body, |(before, _)| before)
            .trim_end_matches(|c: char| c <= ' ');

        let (protocol, rest) = if let Some(i) = find_scheme_end(body, "://") {
            (&body[..i], &body[i + 3..])
        } else if let Some(i) = find_scheme_end(body, ":/") {
            (&body[..i], &body[i + 1..])
        } else {
            ("", body)
        };
        if protocol.is_empty() && rest.len() != body.len() {
            return Err(Error::MissingProtocol {
                url: whole.to_owned(),
            });
        }

        let (authority, path) = match rest.split_once('/') {
            Some((authority, path)) => (authority, path.trim_start_matches('/')),
            None => (rest, ""),
        };
        let (userinfo, hostport) = match authority.rfind('@') {
            Some(i) => (&authority[..i], &authority[i + 1..]),
            None => ("", authority),
        };
        let (username, password) = userinfo.split_once(':').unwrap_or((userinfo, ""));
        // Java writes a password only after a user name, so `:pw@h` is written `h`: read it
        // as written (found by fuzzing: the password was kept, then lost on writing).
        let password = if username.is_empty() { "" } else { password };
        let (host, port) = split_host_port(hostport, whole)?;
        let params = query.map(parse_params).unwrap_or_default();
        if protocol.is_empty() && host.is_empty() && path.is_empty() && params.is_empty() {
            // Nothing but separators, e.g. `#` or `?&`: there is no URL here.
            return Err(Error::Empty);
        }
        let params = params.iter().copied();
        Ok(Url {
            inner: Arc::new(Inner::assemble(
                protocol, username, password, host, port, path, params,
            )),
        })
    }

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

    /// Java's `toFullString()`: protocol, user info, host, port, path and parameters sorted by
    /// Java string order, values trimmed, nothing escaped.
    pub fn to_full_string(&self) -> String {
        self.as_full_str().to_owned()
    }

    /// [`Url::to_full_string`] without a copy: made once per URL (on first use) and shared by
    /// its clones. Sorting or keying many URLs by it costs no formatting.
    pub fn as_full_str(&self) -> &str {
        self.inner.full.get_or_init(|| {
            let mut text =
                String::with_capacity(self.inner.buf.len() + 16 + 2 * self.inner.params.len());
            // Writing to a String cannot fail.
            let _ = self.write_to(&mut text);
            text.into_boxed_str()
        })
    }

    /// The encoded form, as ZooKeeper child names carry it: `encode(to_full_string())`.
    pub fn to_encoded_string(&self) -> String {
        codec::encode(&self.to_full_string())
    }

    /// Checks that this URL reads back unchanged after [`Url::to_full_string`]: no parameter
    /// name is empty or holds `&`, `;` or `=`, no value holds `&` or `;`, no path holds `?` or
    /// `#`, and the host is not a bare IPv6 address. Registries call this before writing.
    pub fn validate(&self) -> Result<()> {
        let url = || self.to_full_string();
        for (key, value) in self.params() {
            if key.is_empty()
                || key.trim() != key
                || key.contains(['&', ';', '=', '#'])
                || value.contains(['&', ';'])
            {
                return Err(Error::Unrepresentable {
                    what: format!("parameter {key:?}={value:?}"),
                    url: url(),
                });
            }
        }
        if self.path().contains(['?', '#']) {
            return Err(Error::Unrepresentable {
                what: format!("path {:?}", self.path()),
                url: url(),
            });
        }
        if self.protocol().contains([':', '/', '?', '#', '@']) {
            return Err(Error::Unrepresentable {
                what: format!("protocol {:?}", self.protocol()),
                url: url(),
            });
        }
        if self.username().contains([':', '@', '/', '?', '#'])
            || self.password().contains(['/', '?', '#'])
        {
            return Err(Error::Unrepresentable {
                what: "user info".to_owned(),
                url: url(),
            });
        }
        check_host(self.host(), &url())
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

    fn write_to(&self, out: &mut impl fmt::Write) -> fmt::Result {
        if !self.protocol().is_empty() {
            out.write_str(self.protocol())?;
            out.write_str("://")?;
        }
        if !self.username().is_empty() {
            out.write_str(self.username())?;
            if !self.password().is_empty() {
                out.write_char(':')?;
                out.write_str(self.password())?;
            }
            out.write_char('@')?;
        }
        out.write_str(self.host())?;
        if self.port() > 0 {
            write!(out, ":{}", self.port())?;
        }
        if !self.path().is_empty() {
            out.write_char('/')?;
            out.write_str(self.path())?;
        }
        let mut sep = '?';
        for (key, value) in java_sorted(self.params()) {
            if key.is_empty() {
                continue;
            }
            out.write_char(sep)?;
            out.write_str(key)?;
            out.write_char('=')?;
            out.write_str(value.trim_matches(|c: char| c <= ' '))?;
            sep = '&';
        }
        Ok(())
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

/// Compares two strings as Java's `String.compareTo` does: by UTF-16 code units.
///
/// This equals byte order except where a character above U+FFFF meets one in
/// U+E000..=U+FFFF, which UTF-16 orders the other way round.
pub fn java_cmp(a: &str, b: &str) -> Ordering {
    for (ca, cb) in a.chars().zip(b.chars()) {
        if ca != cb {
            let mut ua = [0u16; 2];
            let mut ub = [0u16; 2];
            return ca.encode_utf16(&mut ua).cmp(&cb.encode_utf16(&mut ub));
        }
    }
    a.chars().count().cmp(&b.chars().count())
}

fn java_sorted(params: Params<'_>) -> Vec<(&str, &str)> {
    let mut entries: Vec<_> = params.collect();
    // Byte order already equals Java order unless a key has a character at or above U+E000.
    if entries
        .iter()
        .any(|(k, _)| k.chars().any(|c| c >= '\u{E000}'))
    {
        entries.sort_by(|(a, _), (b, _)| java_cmp(a, b));
    }
    entries
}

/// The parameters of a query, sorted by key, without duplicates (the last one wins, as in
/// Java's map), `default.<key>` also giving `<key>` when that is absent. Borrowed from the
/// query, `default.` copies included.
fn parse_params(query: &str) -> Vec<(&str, &str)> {
    // Byte scans (memchr): the separators are ASCII, so every cut falls on a character
    // boundary.
    let bytes = query.as_bytes();
    // A guess, not a count (a second pass over the query): Java's parameters average well
    // over 8 bytes each.
    let mut params: Vec<(&str, &str)> = Vec::with_capacity(bytes.len() / 8 + 1);
    let mut start = 0;
    let ends = memchr::memchr2_iter(b'&', b';', bytes).chain(std::iter::once(bytes.len()));
    for end in ends {
        let part = trim(query.get(start..end).unwrap_or_default());
        start = end + 1;
        // A plain scan: parts are short, shorter than a vector search pays off on.
        let (key, value) = match part.bytes().position(|b| b == b'=') {
            Some(eq) => (
                part.get(..eq).unwrap_or_default(),
                trim(part.get(eq + 1..).unwrap_or_default()),
            ),
            None => (part, ""),
        };
        if !key.is_empty() {
            params.push((key, value));
        }
    }
    // What Java writes is sorted already, without duplicates: then there is nothing to do.
    if !params.is_sorted_by(|a, b| key_cmp(a.0, b.0).is_lt()) {
        // Sorted stably, duplicates stay in the order written; the last of each run is kept.
        params.sort_by(|a, b| key_cmp(a.0, b.0));
        let mut kept = 0;
        for i in 0..params.len() {
            if params.get(i + 1).is_some_and(|next| next.0 == params[i].0) {
                continue;
            }
            params.swap(kept, i);
            kept += 1;
        }
        params.truncate(kept);
    }
    let defaults: Vec<(&str, &str)> = params
        .iter()
        .filter_map(|(k, v)| {
            // Trimmed as a key read on its own would be (found by fuzzing: the copy of
            // `default.\0x` was written as `\0x=`, which reads as `x`).
            let mut plain = trim(k.strip_prefix("default.")?);
            // `default.default.x` gives `x`, not `default.x`, whose own copy would appear only
            // when the written URL is read again (found by fuzzing).
            while let Some(rest) = plain.strip_prefix("default.") {
                plain = trim(rest);
            }
            (!plain.is_empty()
                && params
                    .binary_search_by(|(other, _)| (*other).cmp(plain))
                    .is_err())
            .then_some((plain, *v))
        })
        .collect();
    if !defaults.is_empty() {
        // Two `default.` keys may trim to one plain key (`default.x`, `default.\u{1}x`): one
        // copy, the first by key (found by fuzzing: both were kept).
        let mut defaults = defaults;
        defaults.sort_by(|a, b| a.0.cmp(b.0));
        defaults.dedup_by(|later, first| later.0 == first.0);
        params.extend(defaults);
        params.sort_by(|a, b| a.0.cmp(b.0));
    }
    params
}

/// Byte order of two parameter names, decided on the first byte where it can, without a
/// call to `memcmp`: names mostly differ there.
fn key_cmp(a: &str, b: &str) -> Ordering {
    match (a.as_bytes().first(), b.as_bytes().first()) {
        (Some(x), Some(y)) if x != y => x.cmp(y),
        _ => a.cmp(b),
    }
}

/// Where `sep` (`://` or `:/`) first occurs in `text`. A URL's first ':' usually ends its
/// protocol, so that one is tried before a search of the whole text.
fn find_scheme_end(text: &str, sep: &str) -> Option<usize> {
    let colon = memchr::memchr(b':', text.as_bytes())?;
    if text.as_bytes().get(colon..colon + sep.len()) == Some(sep.as_bytes()) {
        Some(colon)
    } else {
        // The first `sep` starts at a later ':' (or there is none).
        text.get(colon + 1..)?.find(sep).map(|i| colon + 1 + i)
    }
}

/// Java's `String.trim`: drops characters up to U+0020 (spaces and control characters) at
/// both ends, and no others; the writer trims values the same way, so what is read is what
/// is written (found by fuzzing: `k=\u{1}v` read a value the writer wrote as `v`).
fn trim(part: &str) -> &str {
    // Those characters are the ASCII bytes up to 0x20, which never occur inside a longer
    // UTF-8 sequence: trimming bytes cuts on character boundaries.
    let bytes = part.as_bytes();
    let start = bytes.iter().position(|&b| b > b' ').unwrap_or(bytes.len());
    let end = bytes
        .iter()
        .rposition(|&b| b > b' ')
        .map_or(start, |i| i + 1);
    part.get(start..end).unwrap_or_default()
}

fn split_host_port<'a>(hostport: &'a str, url: &str) -> Result<(&'a str, u16)> {
    let invalid_port = |port: &str| Error::InvalidPort {
        port: port.to_owned(),
        url: url.to_owned(),
    };
    let (host, port) = if hostport.starts_with('[') {
        let Some(close) = hostport.find(']') else {
            return Err(Error::InvalidIpv6 {
                host: hostport.to_owned(),
                url: url.to_owned(),
            });
        };
        let (host, after) = hostport.split_at(close + 1);
        match after.strip_prefix(':') {
            _ if after.is_empty() => (host, None),
            Some(port) => (host, Some(port)),
            None => return Err(invalid_port(after)),
        }
    } else {
        // Two colons or more, and not an address list: an IPv6 address without brackets.
        // Name all of it (`fe80::1`), not what a host:port split would leave (`fe80:`).
        if hostport.matches(':').count() > 1 && !hostport.contains(',') {
            return Err(Error::BareIpv6 {
                host: hostport.to_owned(),
                url: url.to_owned(),
            });
        }
        match hostport.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (hostport, None),
        }
    };
    let port = match port {
        None => 0,
        Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => {
            p.parse().map_err(|_| invalid_port(p))?
        }
        Some(p) => return Err(invalid_port(p)),
    };
    if port == 0 && host.contains(':') && !host.starts_with('[') {
        // An address list with port 0 (`a:1,b:2:0`): written back without the port, the
        // last entry's port would become the URL's. Found by the round-trip property.
        return Err(invalid_port("0"));
    }
    check_host(host, url)?;
    Ok((host, port))
}

fn check_host(host: &str, url: &str) -> Result<()> {
    if host.contains(|c: char| c <= ' ') {
        // Found by fuzzing: `0 //` read a host `0 ` that could not be written back.
        return Err(Error::Unrepresentable {
            what: format!("host {}", crate::quote(host)),
            url: url.to_owned(),
        });
    }
    if let Some(inner) = host.strip_prefix('[') {
        let addr = inner.strip_suffix(']').unwrap_or(inner);
        let addr = addr.split_once('%').map_or(addr, |(a, _zone)| a);
        if !host.ends_with(']') || addr.parse::<Ipv6Addr>().is_err() {
            return Err(Error::InvalidIpv6 {
                host: host.to_owned(),
                url: url.to_owned(),
            });
        }
    } else if host.contains(':') && !host.contains(',') {
        // A comma means a Dubbo address list (`a:2181,b:2181`), which Java keeps in the host.
        return Err(Error::BareIpv6 {
            host: host.to_owned(),
            url: url.to_owned(),
        });
    }
    Ok(())
}

fn bracket_ipv6(host: String) -> String {
    let bare = host.split_once('%').map_or(host.as_str(), |(a, _)| a);
    if bare.parse::<Ipv6Addr>().is_ok() {
        format!("[{host}]")
    } else {
        host
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

fn contains_ignore_ascii_case(haystack: &str, needle: &str) -> bool {
    haystack
        .as_bytes()
        .windows(needle.len())
        .any(|w| w.eq_ignore_ascii_case(needle.as_bytes()))
}

fn invalid_param(key: &str, value: &str, expected: &'static str) -> Error {
    Error::InvalidParam {
        key: key.to_owned(),
        value: value.to_owned(),
        expected,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Test code.

    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn find_scheme_end_finds_what_str_find_finds(text in "[a:/é]{0,12}") {
            for sep in ["://", ":/"] {
                prop_assert_eq!(find_scheme_end(&text, sep), text.find(sep), "{:?} in {:?}", sep, text);
            }
        }

        #[test]
        fn key_cmp_is_byte_order(a in "[ab.é]{0,4}", b in "[ab.é]{0,4}") {
            prop_assert_eq!(key_cmp(&a, &b), a.cmp(&b));
        }
    }
}

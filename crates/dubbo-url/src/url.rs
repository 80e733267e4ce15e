//! The [`Url`] type: fields, Java-compatible parsing and formatting, typed getters, equality.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::net::Ipv6Addr;
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
#[derive(Clone, Default)]
pub struct Url {
    protocol: String,
    username: String,
    password: String,
    host: String,
    port: u16,
    path: String,
    params: BTreeMap<String, String>,
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
    url: Url,
}

impl Url {
    /// Starts a builder for a URL with this protocol.
    pub fn builder(protocol: impl Into<String>) -> UrlBuilder {
        UrlBuilder {
            url: Url {
                protocol: protocol.into(),
                ..Url::default()
            },
        }
    }

    /// Parses either form a registry may hold: the decoded form (`dubbo://…`, as multicast
    /// datagrams and cache files carry it) or the encoded form (`dubbo%3A%2F%2F…`, as ZooKeeper
    /// child names carry it). The encoded form is recognised by `%3A%2F%2F` (any case) in an
    /// input that has no literal `://`.
    pub fn parse(input: &str) -> Result<Url> {
        let text = input.trim();
        if !text.contains("://") && contains_ignore_ascii_case(text, "%3A%2F%2F") {
            Url::parse_encoded(text)
        } else {
            Url::parse_decoded(text)
        }
    }

    /// Parses the encoded form: the whole text is `URLDecoder`-decoded, then read as the
    /// decoded form. Separators are therefore recognised after decoding, as Java's
    /// `URLStrParser.parseEncodedStr` does.
    pub fn parse_encoded(input: &str) -> Result<Url> {
        Url::parse_decoded(&codec::decode(input.trim())?)
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
        let whole = input.trim();
        if whole.is_empty() {
            return Err(Error::Empty);
        }
        let (body, query) = match whole.split_once('?') {
            Some((body, query)) => (body, Some(query)),
            None => (whole, None),
        };
        let body = body.split_once('#').map_or(body, |(before, _)| before);

        let (protocol, rest) = if let Some(i) = body.find("://") {
            (&body[..i], &body[i + 3..])
        } else if let Some(i) = body.find(":/") {
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
        let (host, port) = split_host_port(hostport, whole)?;
        let params = query.map(parse_params).unwrap_or_default();
        if protocol.is_empty() && host.is_empty() && path.is_empty() && params.is_empty() {
            // Nothing but separators, e.g. `#` or `?&`: there is no URL here.
            return Err(Error::Empty);
        }

        Ok(Url {
            protocol: protocol.to_owned(),
            username: username.to_owned(),
            password: password.to_owned(),
            host: host.to_owned(),
            port,
            path: path.to_owned(),
            params,
        })
    }

    /// The protocol (`dubbo`, `consumer`, `empty`, …); empty when the URL has none.
    pub fn protocol(&self) -> &str {
        &self.protocol
    }

    /// The user name; empty when there is none.
    pub fn username(&self) -> &str {
        &self.username
    }

    /// The password; empty when there is none.
    pub fn password(&self) -> &str {
        &self.password
    }

    /// The host as written: a name, an IPv4 address, or a bracketed IPv6 address `[::1]`.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The port; 0 means the URL has none.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The path, without its leading `/`.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// `host:port`, or just `host` when there is no port.
    pub fn address(&self) -> String {
        if self.port > 0 {
            format!("{}:{}", self.host, self.port)
        } else {
            self.host.clone()
        }
    }

    /// All parameters, in byte order of their names.
    pub fn params(&self) -> &BTreeMap<String, String> {
        &self.params
    }

    /// The value of parameter `key`, falling back to `default.<key>` as Java does.
    pub fn param(&self, key: &str) -> Option<&str> {
        if let Some(value) = self.params.get(key) {
            return Some(value);
        }
        if key.starts_with("default.") {
            return None;
        }
        self.params
            .get(&format!("default.{key}"))
            .map(String::as_str)
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
        self.params
            .get(&format!("{method}.{key}"))
            .map(String::as_str)
            .or_else(|| self.param(key))
    }

    /// The interface: parameter `interface`, else the path (Java's `getServiceInterface`).
    pub fn service_interface(&self) -> &str {
        match self.param("interface") {
            Some(iface) if !iface.is_empty() => iface,
            _ => &self.path,
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
        self.protocol == EMPTY_PROTOCOL
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
        let mut url = Url {
            protocol: EMPTY_PROTOCOL.to_owned(),
            host: "0.0.0.0".to_owned(),
            path: interface.to_owned(),
            ..Url::default()
        }
        .with_param("category", category);
        if !group.is_empty() {
            url.set_param("group", group);
        }
        if !version.is_empty() {
            url.set_param("version", version);
        }
        url
    }

    /// Java's `toFullString()`: protocol, user info, host, port, path and parameters sorted by
    /// Java string order, values trimmed, nothing escaped.
    pub fn to_full_string(&self) -> String {
        self.to_string()
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
        for (key, value) in &self.params {
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
        if self.path.contains(['?', '#']) {
            return Err(Error::Unrepresentable {
                what: format!("path {:?}", self.path),
                url: url(),
            });
        }
        if self.protocol.contains([':', '/', '?', '#', '@']) {
            return Err(Error::Unrepresentable {
                what: format!("protocol {:?}", self.protocol),
                url: url(),
            });
        }
        if self.username.contains([':', '@', '/', '?', '#'])
            || self.password.contains(['/', '?', '#'])
        {
            return Err(Error::Unrepresentable {
                what: "user info".to_owned(),
                url: url(),
            });
        }
        check_host(&self.host, &url())
    }

    /// Returns this URL with another protocol.
    #[must_use]
    pub fn with_protocol(mut self, protocol: impl Into<String>) -> Url {
        self.protocol = protocol.into();
        self
    }

    /// Returns this URL with another host (an unbracketed IPv6 address is bracketed).
    #[must_use]
    pub fn with_host(mut self, host: impl Into<String>) -> Url {
        self.host = bracket_ipv6(host.into());
        self
    }

    /// Returns this URL with another port (0 = none).
    #[must_use]
    pub fn with_port(mut self, port: u16) -> Url {
        self.port = port;
        self
    }

    /// Returns this URL with another path (leading `/` stripped).
    #[must_use]
    pub fn with_path(mut self, path: impl AsRef<str>) -> Url {
        self.path = path.as_ref().trim_start_matches('/').to_owned();
        self
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
        self.params.remove(key);
        self
    }

    /// Sets parameter `key` to `value`; an empty key is ignored, as in Java.
    pub fn set_param(&mut self, key: impl Into<String>, value: impl Into<String>) {
        let key = key.into();
        if !key.is_empty() {
            self.params.insert(key, value.into());
        }
    }

    /// Removes parameter `key` and returns its value.
    pub fn remove_param(&mut self, key: &str) -> Option<String> {
        self.params.remove(key)
    }

    fn write_to(&self, out: &mut impl fmt::Write) -> fmt::Result {
        if !self.protocol.is_empty() {
            out.write_str(&self.protocol)?;
            out.write_str("://")?;
        }
        if !self.username.is_empty() {
            out.write_str(&self.username)?;
            if !self.password.is_empty() {
                out.write_char(':')?;
                out.write_str(&self.password)?;
            }
            out.write_char('@')?;
        }
        out.write_str(&self.host)?;
        if self.port > 0 {
            write!(out, ":{}", self.port)?;
        }
        if !self.path.is_empty() {
            out.write_char('/')?;
            out.write_str(&self.path)?;
        }
        let mut sep = '?';
        for (key, value) in java_sorted(&self.params) {
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
        self.url.username = username.into();
        self.url.password = password.into();
        self
    }

    /// Sets the host; an IPv6 address is bracketed.
    pub fn host(mut self, host: impl Into<String>) -> Self {
        self.url.host = bracket_ipv6(host.into());
        self
    }

    /// Sets the port (0 = none).
    pub fn port(mut self, port: u16) -> Self {
        self.url.port = port;
        self
    }

    /// Sets the path (leading `/` stripped).
    pub fn path(mut self, path: impl AsRef<str>) -> Self {
        self.url.path = path.as_ref().trim_start_matches('/').to_owned();
        self
    }

    /// Adds a parameter; the last value for a key wins.
    pub fn param(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.url.params.insert(key.into(), value.into());
        self
    }

    /// Checks the URL with [`Url::validate`] and returns it.
    pub fn build(self) -> Result<Url> {
        self.url.validate()?;
        Ok(self.url)
    }
}

impl fmt::Display for Url {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.write_to(f)
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
        self.protocol == other.protocol
            && self.username == other.username
            && self.password == other.password
            && self.host == other.host
            && self.port == other.port
            && self.path == other.path
            && self.params.len() == other.params.len()
            && self.params.iter().all(|(key, value)| {
                other
                    .params
                    .get(key)
                    .is_some_and(|theirs| key == TIMESTAMP_KEY || theirs == value)
            })
    }
}

impl Eq for Url {}

impl Hash for Url {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.protocol.hash(state);
        self.username.hash(state);
        self.password.hash(state);
        self.host.hash(state);
        self.port.hash(state);
        self.path.hash(state);
        self.params.len().hash(state);
        for (key, value) in &self.params {
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

fn java_sorted(params: &BTreeMap<String, String>) -> Vec<(&String, &String)> {
    let mut entries: Vec<_> = params.iter().collect();
    // Byte order already equals Java order unless a key has a character at or above U+E000.
    if params.keys().any(|k| k.chars().any(|c| c >= '\u{E000}')) {
        entries.sort_by(|(a, _), (b, _)| java_cmp(a, b));
    }
    entries
}

fn parse_params(query: &str) -> BTreeMap<String, String> {
    // Collected at once: the map is built in bulk from the sorted pairs (the last duplicate
    // wins, as with inserting one by one), which is much cheaper than an insert per pair.
    let mut params: BTreeMap<String, String> = query
        .split(['&', ';'])
        .filter_map(|part| {
            let part = part.trim();
            let (key, value) = part.split_once('=').unwrap_or((part, ""));
            (!key.is_empty()).then(|| (key.to_owned(), value.to_owned()))
        })
        .collect();
    if !query.contains("default.") {
        return params;
    }
    let defaults: Vec<(String, String)> = params
        .iter()
        .filter_map(|(k, v)| {
            let plain = k.strip_prefix("default.")?;
            (!plain.is_empty() && !params.contains_key(plain))
                .then(|| (plain.to_owned(), v.clone()))
        })
        .collect();
    params.extend(defaults);
    params
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
    check_host(host, url)?;
    Ok((host, port))
}

fn check_host(host: &str, url: &str) -> Result<()> {
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

//! How a Dubbo URL maps onto a DNS-SD service instance (RFC 6763), and how an instance
//! published by anything (srpc, avahi, python-zeroconf) reads back as a URL.
//!
//! - one instance per URL, its name unique per URL and at most 63 bytes;
//! - SRV port = the URL's port; address records = the URL's host;
//! - TXT: `txtvers=1`, `protocol=…`, `path=…`, then every URL parameter as its own `key=value`
//!   string; a string over 255 bytes or a record over 1300 bytes is refused, naming the
//!   parameter, never truncated.

use std::net::IpAddr;

use dubbo_url::Url;
use srpc_registry_kit::{Error, Result, validate_registration};

/// The longest instance name (RFC 6763 §4.1.1: one DNS label).
pub const MAX_INSTANCE: usize = 63;
/// The longest TXT string (RFC 6763 §6.1).
pub const MAX_TXT_STRING: usize = 255;
/// The largest TXT record srpc sends (RFC 6763 §6.2: above this, not recommended).
pub const MAX_TXT_RECORD: usize = 1300;

/// TXT keys of srpc's own, which URL parameters may not use.
const RESERVED: [&str; 3] = ["txtvers", "protocol", "path"];

/// The instance name of `url`: the interface's last segment, host and port, and a hash of the
/// whole URL (without `timestamp`), so URLs that differ only in parameters get different
/// names and a restarted provider gets the same one. At most 63 bytes; no dots, which some
/// DNS-SD libraries escape badly.
pub fn instance_name(url: &Url) -> String {
    let text = url.clone().without_param("timestamp").to_full_string();
    let hash = text.bytes().fold(0x811c_9dc5_u32, |hash, byte| {
        (hash ^ u32::from(byte)).wrapping_mul(0x0100_0193)
    });
    let tail = format!(
        "-{}-{}-{hash:08x}",
        url.host()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .replace(['.', ':'], "-"),
        url.port()
    );
    let interface = url.service_interface();
    let short = interface.rsplit('.').next().unwrap_or(interface);
    let room = MAX_INSTANCE.saturating_sub(tail.len());
    let mut head = String::new();
    for c in short.chars() {
        if head.len() + c.len_utf8() > room {
            break;
        }
        head.push(c);
    }
    let name = format!("{head}{tail}");
    if name.len() <= MAX_INSTANCE {
        name
    } else {
        // An absurdly long host: the hash alone still names the URL uniquely.
        format!("srpc-{hash:08x}")
    }
}

/// The TXT strings of `url`, as `(key, value)` pairs in order. Refused, naming the
/// parameter: a key that is not printable ASCII without `=`, one of srpc's own keys, a string
/// over 255 bytes, or a record over 1300 bytes.
pub fn txt_properties(url: &Url) -> Result<Vec<(String, String)>> {
    let refuse = |reason: String| Error::invalid("registration", url, reason);
    let mut pairs = vec![
        ("txtvers".to_owned(), "1".to_owned()),
        ("protocol".to_owned(), url.protocol().to_owned()),
        ("path".to_owned(), url.path().to_owned()),
    ];
    for (key, value) in url.params() {
        if key.is_empty() || !key.bytes().all(|b| (0x20..=0x7e).contains(&b) && b != b'=') {
            return Err(refuse(format!(
                "parameter {key:?} cannot be a DNS-SD TXT key (printable ASCII without '=')"
            )));
        }
        if RESERVED.iter().any(|r| r.eq_ignore_ascii_case(key)) {
            return Err(refuse(format!(
                "parameter {key:?} is a TXT key of srpc's own (txtvers, protocol, path)"
            )));
        }
        pairs.push((key.to_owned(), value.to_owned()));
    }
    let mut total = 0;
    for (key, value) in &pairs {
        let len = key.len() + 1 + value.len();
        if len > MAX_TXT_STRING {
            return Err(refuse(format!(
                "parameter {key:?} makes a TXT string of {len} bytes; DNS-SD allows {MAX_TXT_STRING}"
            )));
        }
        total += len + 1;
    }
    if total > MAX_TXT_RECORD {
        let (largest, _) = pairs
            .iter()
            .max_by_key(|(k, v)| k.len() + v.len())
            .map(|(k, v)| (k.clone(), v.len()))
            .unwrap_or_default();
        return Err(refuse(format!(
            "the TXT record would be {total} bytes, over the {MAX_TXT_RECORD} DNS-SD recommends; \
             the largest parameter is {largest:?}"
        )));
    }
    Ok(pairs)
}

/// Reads an instance as a URL:
/// `<protocol, else tcp>://<address>:<port>/<path, else TXT interface, else instance name>?<other TXT pairs>`.
/// TXT keys are case-insensitive and the first occurrence wins (RFC 6763 §6.4); a bare key
/// reads as an empty value. IPv4 addresses are preferred.
pub fn url_of(
    instance: &str,
    addresses: &[IpAddr],
    port: u16,
    txt: &[(String, Option<String>)],
) -> Result<Url> {
    let mut seen: Vec<String> = Vec::new();
    let mut pairs: Vec<(&str, &str)> = Vec::new();
    for (key, value) in txt {
        let lower = key.to_ascii_lowercase();
        if key.is_empty() || seen.contains(&lower) {
            continue;
        }
        seen.push(lower);
        pairs.push((key, value.as_deref().unwrap_or("")));
    }
    let get = |name: &str| {
        pairs
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| *v)
            .filter(|v| !v.is_empty())
    };
    let address = addresses
        .iter()
        .find(|a| a.is_ipv4())
        .or_else(|| addresses.first())
        .ok_or_else(|| Error::invalid("mDNS instance", instance, "it has no address"))?;
    let host = match address {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => format!("[{v6}]"),
    };
    let protocol = get("protocol").unwrap_or("tcp");
    let path = get("path").or_else(|| get("interface")).unwrap_or(instance);
    let mut url = Url::parse_decoded(&format!("{protocol}://{host}:{port}"))?.with_path(path);
    for (key, value) in pairs {
        if !["txtvers", "protocol", "path"]
            .iter()
            .any(|r| r.eq_ignore_ascii_case(key))
        {
            url.set_param(key, value);
        }
    }
    validate_registration(&url)?;
    // Routes, overrides and consumers have no port; a provider without one is unusable.
    if port == 0
        && url.category() == "providers"
        && !matches!(url.protocol(), "consumer" | "route" | "override" | "empty")
    {
        return Err(Error::invalid(
            "mDNS instance",
            instance,
            "it is a provider and its SRV record has port 0: nothing to connect to",
        ));
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    fn txt(pairs: &[(&str, Option<&str>)]) -> Vec<(String, Option<String>)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.map(str::to_owned)))
            .collect()
    }

    #[test]
    fn instance_names_are_unique_stable_and_short() {
        let a = url("dubbo://10.0.0.5:20880/com.acme.Echo?weight=10&timestamp=1");
        let name = instance_name(&a);
        assert!(name.starts_with("Echo-10-0-0-5-20880-"), "{name}");
        assert!(!name.contains('.'));
        assert_eq!(
            instance_name(&a.clone().with_param("timestamp", "2")),
            name,
            "a restart keeps the name"
        );
        assert_ne!(instance_name(&a.clone().with_param("weight", "20")), name);
        let long = url(&format!(
            "dubbo://[fd77::1]:20880/com.acme.{}?x=1",
            "VeryLong".repeat(20)
        ));
        let name = instance_name(&long);
        assert!(name.len() <= MAX_INSTANCE, "{} bytes: {name}", name.len());
        assert!(name.contains("-fd77--1-20880-"), "{name}");
        let unicode =
            url("dubbo://10.0.0.5:1/com.acme.Éééééééééééééééééééééééééééééééééééééééééééééééééééé");
        assert!(instance_name(&unicode).len() <= MAX_INSTANCE);
    }

    #[test]
    fn txt_strings_one_per_parameter_after_srpcs_own() {
        let u = url("dubbo://10.0.0.5:20880/com.acme.Echo?version=1.0&weight=10");
        assert_eq!(
            txt_properties(&u).unwrap(),
            [
                ("txtvers".to_owned(), "1".to_owned()),
                ("protocol".to_owned(), "dubbo".to_owned()),
                ("path".to_owned(), "com.acme.Echo".to_owned()),
                ("version".to_owned(), "1.0".to_owned()),
                ("weight".to_owned(), "10".to_owned()),
            ]
        );
    }

    #[test]
    fn txt_limits_are_refused_naming_the_parameter() {
        let base = "dubbo://10.0.0.5:20880/com.acme.Echo";
        let cases = [
            (
                format!("{base}?methods={}", "m".repeat(250)),
                "\"methods\" makes a TXT string of 258 bytes",
            ),
            (
                (0..8)
                    .map(|i| format!("k{i}={}", "v".repeat(200)))
                    .fold(format!("{base}?a=b"), |u, kv| format!("{u}&{kv}")),
                "over the 1300",
            ),
            (
                format!("{base}?path=x"),
                "\"path\" is a TXT key of srpc's own",
            ),
            (format!("{base}?Protocol=x"), "TXT key of srpc's own"),
        ];
        for (text, needle) in cases {
            let err = txt_properties(&url(&text)).unwrap_err();
            assert!(matches!(err, Error::InvalidInput { .. }), "{err}");
            assert!(err.to_string().contains(needle), "{needle}: {err}");
        }
        let unicode = url(&format!("{base}?schlüssel=1"));
        assert!(
            txt_properties(&unicode)
                .unwrap_err()
                .to_string()
                .contains("TXT key")
        );
    }

    #[test]
    fn srpcs_records_read_back_as_the_url() {
        let u = url("dubbo://10.0.0.5:20880/com.acme.Echo?version=1.0&weight=10");
        let pairs: Vec<(String, Option<String>)> = txt_properties(&u)
            .unwrap()
            .into_iter()
            .map(|(k, v)| (k, Some(v)))
            .collect();
        let back = url_of(
            &instance_name(&u),
            &["10.0.0.5".parse().unwrap()],
            20880,
            &pairs,
        )
        .unwrap();
        assert_eq!(back, u);
    }

    #[test]
    fn foreign_records_read_as_tcp_urls() {
        // `avahi-publish-service legacy _srpc._tcp 7001 interface=com.acme.Legacy`
        let avahi = url_of(
            "legacy",
            &["fd77::2".parse().unwrap(), "127.0.0.1".parse().unwrap()],
            7001,
            &txt(&[("interface", Some("com.acme.Legacy"))]),
        )
        .unwrap();
        assert_eq!(
            avahi.to_full_string(),
            "tcp://127.0.0.1:7001/com.acme.Legacy?interface=com.acme.Legacy"
        );
        assert!(avahi.service_interface() == "com.acme.Legacy");
        // No interface: the instance name is the path; first key wins, bare keys are empty.
        let bare = url_of(
            "printer",
            &["fd77::2".parse().unwrap()],
            631,
            &txt(&[("Color", Some("T")), ("color", Some("F")), ("duplex", None)]),
        )
        .unwrap();
        assert_eq!(
            bare.to_full_string(),
            "tcp://[fd77::2]:631/printer?Color=T&duplex="
        );
        assert!(url_of("x", &[], 1, &[]).is_err(), "no address");
        let local = [IpAddr::from([127, 0, 0, 1])];
        assert!(url_of("x", &local, 0, &[]).is_err(), "port 0");
    }
}

//! The rules every backend applies alike: what may be registered, what may be subscribed to,
//! and what `dynamic` means.

use dubbo_url::Url;

use crate::{Error, Result};

/// Whether a registration is dynamic (removed by `close` and with its session) rather than
/// persistent (`dynamic=false`). Absent or empty means dynamic, `true`/`false` in any case
/// are read as such, and anything else is refused naming the value — one rule for every
/// backend, so that no backend reads `dynamic=flase` as "dynamic" while another refuses it.
pub fn is_dynamic(url: &Url) -> Result<bool> {
    match url.param("dynamic").map(str::trim) {
        None | Some("") => Ok(true),
        Some(v) if v.eq_ignore_ascii_case("true") => Ok(true),
        Some(v) if v.eq_ignore_ascii_case("false") => Ok(false),
        Some(v) => Err(Error::invalid(
            "registration",
            url,
            format!("dynamic must be true or false, not {v:?}"),
        )),
    }
}

/// Checks that `url` can be registered: it reads back unchanged, has a protocol and a host,
/// names one service, is not an `empty://` marker, and its `dynamic` reads as a boolean.
pub fn validate_registration(url: &Url) -> Result<()> {
    url.validate()?;
    is_dynamic(url)?;
    let reason = if url.protocol().is_empty() {
        "a registration needs a protocol"
    } else if url.is_empty_protocol() {
        "empty:// is a marker for an empty category, not a registration"
    } else if url.host().is_empty() {
        "a registration needs a host"
    } else if url.service_interface().is_empty() {
        "a registration needs a service interface (the path or the interface parameter)"
    } else if url.service_interface() == dubbo_url::ANY_VALUE {
        "a registration cannot be for interface *"
    } else {
        return Ok(());
    };
    Err(Error::invalid("registration", url, reason))
}

/// The networks rpcx registers under (`tcp@host:port`): their service names may hold `/`.
const RPCX_NETWORKS: [&str; 8] = [
    "tcp",
    "http",
    "quic",
    "kcp",
    "unix",
    "reuseport",
    "ws",
    "wss",
];

/// Checks what a registry should accept from a writer, beyond [`validate_registration`]
/// (which readers apply too): no control character anywhere (a NUL, an ESC or a newline
/// in a registry entry fools every tool that prints it), and for providers (category
/// `providers`) what a consumer needs to call them: a port other than 0, an address that is
/// not the unspecified one (`0.0.0.0`, `::`), and an interface that is a dotted name
/// (`com.acme.Echo`; `/` only in rpcx service paths). Consumers, routes and configurators
/// keep what Dubbo allows them (`consumer://10.0.0.1/…` without a port,
/// `route://0.0.0.0/…`). Each refusal names the part and why.
pub fn validate_publication(url: &Url) -> Result<()> {
    validate_registration(url)?;
    let refuse = |reason: String| Err(Error::invalid("registration", url, reason));
    let parts = [
        ("protocol", url.protocol()),
        ("user name", url.username()),
        ("password", url.password()),
        ("host", url.host()),
        ("path", url.path()),
    ];
    for (part, text) in parts {
        if let Some(c) = text.chars().find(|c| c.is_control()) {
            return refuse(format!(
                "the {part} holds the control character {:?}: registry data is printed and \
                 parsed by other tools",
                c
            ));
        }
    }
    for (key, value) in url.params() {
        if let Some(c) = key.chars().chain(value.chars()).find(|c| c.is_control()) {
            return refuse(format!(
                "parameter {:?} holds the control character {c:?}: registry data is printed \
                 and parsed by other tools",
                key.escape_debug().to_string()
            ));
        }
    }
    if url.category() != dubbo_url::DEFAULT_CATEGORY {
        return Ok(());
    }
    if url.port() == 0 {
        return refuse(
            "a provider needs a port (consumers connect to host:port); port 0 or none \
             means none"
                .to_owned(),
        );
    }
    let host = url.host().trim_start_matches('[').trim_end_matches(']');
    if host
        .parse::<std::net::IpAddr>()
        .is_ok_and(|ip| ip.is_unspecified())
    {
        return refuse(format!(
            "host {host} is the unspecified address: it means \"every interface\" to a \
             server, and nothing a consumer can connect to; advertise an address they can reach"
        ));
    }
    let rpcx = RPCX_NETWORKS.contains(&url.protocol());
    let interface = url.service_interface();
    if let Err(why) = check_interface(interface, rpcx) {
        return refuse(format!(
            "interface {interface:?} is not a valid name: {why}"
        ));
    }
    Ok(())
}

/// A dotted name of identifiers (letters, digits, `_`, `$`, `-`), segments separated by `/`
/// too when `slashes` (rpcx).
fn check_interface(interface: &str, slashes: bool) -> std::result::Result<(), String> {
    let separators: &[char] = if slashes { &['.', '/'] } else { &['.'] };
    if !slashes && interface.contains('/') {
        return Err("`/` is allowed only in rpcx service paths".to_owned());
    }
    for segment in interface.split(separators) {
        if segment.is_empty() {
            return Err("it has an empty segment (`..`, or a leading or trailing dot)".to_owned());
        }
        if let Some(c) = segment
            .chars()
            .find(|&c| !(c.is_alphanumeric() || matches!(c, '_' | '$' | '-')))
        {
            return Err(format!(
                "{:?} is not allowed (letters, digits, `_`, `$` and `-` between dots)",
                c
            ));
        }
    }
    Ok(())
}

/// Checks that `query` can be subscribed to: it reads back unchanged and names a service
/// interface (or `*`).
pub fn validate_query(query: &Url) -> Result<()> {
    query.validate()?;
    if query.service_interface().is_empty() {
        return Err(Error::invalid(
            "subscription",
            query,
            "a subscription needs a service interface (the path or the interface parameter), or *",
        ));
    }
    if query.is_empty_protocol() {
        return Err(Error::invalid(
            "subscription",
            query,
            "empty:// cannot be subscribed to",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publications_that_cannot_work_are_refused_naming_the_part() {
        let refused = [
            ("dubbo://127.0.0.1/com.acme.Echo", "needs a port"),
            ("dubbo://127.0.0.1:0/com.acme.Echo", "needs a port"),
            ("dubbo://0.0.0.0:20880/com.acme.Echo", "unspecified address"),
            ("dubbo://[::]:20880/com.acme.Echo", "unspecified address"),
            ("dubbo://h:1/com.acme.Echo?a=x\0y", "parameter \"a\""),
            ("dubbo://h:1/com.acme.Echo?a=x\x1b[2Jy", "control character"),
            (
                "dubbo://h:1/com.acme.Echo?interface=a\x07b",
                "control character",
            ),
            ("dubbo://h:1/com.acme.E\ncho", "path"),
            ("dubbo://h:1/../../etc/passwd", "only in rpcx"),
            ("dubbo://h:1/a..b", "empty segment"),
            (
                "dubbo://h:1/com.acme.Echo?interface=com.acme Echo",
                "' ' is not allowed",
            ),
            ("tcp://h:1/a/../b", "empty segment"),
        ];
        for (text, why) in refused {
            let u = Url::parse(text).unwrap();
            let err = validate_publication(&u).expect_err(text).to_string();
            assert!(err.contains(why), "{text}: {err}");
        }
        let accepted = [
            "dubbo://127.0.0.1:20880/com.acme.Echo?version=1.0",
            "tri://10.0.0.1:50051/grpc.health.v1.Health",
            "tcp://127.0.0.1:8972/Arith",
            "tcp://127.0.0.1:8972/svc/Arith",
            "dubbo://h:1/com.acme.Outer$Inner",
            "consumer://10.0.0.1/com.acme.Echo?category=consumers",
            "route://0.0.0.0/com.acme.Echo?category=routers&rule=x",
            "override://0.0.0.0/com.acme.Echo?category=configurators&disabled=true",
        ];
        for text in accepted {
            let u = Url::parse(text).unwrap();
            assert!(
                validate_publication(&u).is_ok(),
                "{text}: {:?}",
                validate_publication(&u)
            );
        }
    }

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    #[test]
    fn dynamic_is_one_rule() {
        let check = |params: &str| is_dynamic(&url(&format!("dubbo://h:1/a.B?{params}")));
        assert!(check("").unwrap());
        assert!(check("dynamic=").unwrap());
        assert!(check("dynamic=TRUE").unwrap());
        assert!(!check("dynamic=false").unwrap());
        for bad in ["dynamic=maybe", "dynamic=0", "dynamic=flase"] {
            let err = check(bad).unwrap_err();
            assert!(matches!(err, Error::InvalidInput { .. }), "{bad}: {err}");
            let value = bad.trim_start_matches("dynamic=");
            assert!(err.to_string().contains(&format!("{value:?}")), "{err}");
            assert!(validate_registration(&url(&format!("dubbo://h:1/a.B?{bad}"))).is_err());
        }
    }
}

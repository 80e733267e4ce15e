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

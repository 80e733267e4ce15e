//! How a Dubbo URL maps onto a Consul service, as Java Dubbo writes it, and how a service
//! entry reads back as a URL, whoever wrote it.

use std::collections::BTreeMap;

use dubbo_url::{Url, decode};
use srpc_registry_kit::{Error, Result, validate_registration};

use crate::client::{HealthEntry, Registration, TtlCheck};
use crate::config::ConsulConfig;

/// Consul's limit on a `Meta` value.
pub const MAX_META_VALUE: usize = 512;

/// The tag every Dubbo service carries; Java consumers query by it.
pub(crate) const DUBBO_TAG: &str = "dubbo";

/// A deterministic service ID: FNV-1a of the URL without its `timestamp`, in hex, so that a
/// restarted provider replaces its own registration instead of adding one.
pub(crate) fn service_id(url: &Url) -> String {
    let text = url.clone().without_param("timestamp").to_full_string();
    let hash = text.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    format!("{hash:016x}")
}

/// The check ID Consul gives the check embedded in a registration.
pub(crate) fn check_id(service_id: &str) -> String {
    format!("service:{service_id}")
}

/// The registration of `url`, as Java Dubbo builds it: `Name` the interface, every parameter
/// a `k=v` tag plus `dubbo`, `Meta.url` the decoded full string, a TTL check. A URL whose full
/// string is longer than Consul's 512-character `Meta` limit is refused, never truncated.
pub(crate) fn registration(url: &Url, config: &ConsulConfig) -> Result<Registration> {
    let full = url.to_full_string();
    if full.len() > MAX_META_VALUE {
        return Err(Error::invalid(
            "registration",
            url,
            format!(
                "Consul limits Meta values to {MAX_META_VALUE} characters and this URL's full \
                 string has {}: register fewer parameters (long `methods` lists are the usual \
                 cause)",
                full.len()
            ),
        ));
    }
    let mut tags: Vec<String> = url.params().map(|(k, v)| format!("{k}={v}")).collect();
    tags.push(DUBBO_TAG.to_owned());
    Ok(Registration {
        id: service_id(url),
        name: url.service_interface().to_owned(),
        tags,
        // Consul refuses the unspecified addresses (routes and overrides use 0.0.0.0): leave
        // it empty, which means the node's address; `Meta.url` keeps the URL as it is.
        address: match url.host() {
            "0.0.0.0" | "::" | "[::]" => String::new(),
            host => host.to_owned(),
        },
        port: url.port(),
        meta: BTreeMap::from([("url".to_owned(), full)]),
        check: TtlCheck {
            ttl: format!("{}s", config.check_ttl.as_secs().max(1)),
            deregister_critical_service_after: format!("{}s", config.deregister_after.as_secs()),
            status: "passing".to_owned(),
        },
    })
}

/// Reads one health entry: `Meta.url` when present (Java's decoded form, or dubbo-go's with a
/// percent-encoded query); otherwise a service registered by something else, read as
/// `tcp://<Service.Address or Node.Address>:<Port>/<Name>?<tags k=v>`.
pub(crate) fn read_entry(entry: &HealthEntry) -> Result<Url> {
    let service = &entry.service;
    let url = match service.meta.as_ref().and_then(|m| m.get("url")) {
        Some(text) => read_meta_url(text)?,
        None => {
            let address = if service.address.is_empty() {
                &entry.node.address
            } else {
                &service.address
            };
            let mut url = Url::parse_decoded(&format!(
                "tcp://{}:{}/{}",
                bracketed(address),
                service.port,
                service.service
            ))?;
            for tag in service.tags.iter().flatten() {
                if let Some((k, v)) = tag.split_once('=') {
                    if !k.is_empty() {
                        url.set_param(k, v);
                    }
                }
            }
            url
        }
    };
    validate_registration(&url)?;
    Ok(url)
}

/// `Meta.url`: decoded as Java writes it; a query with `%XX` escapes (dubbo-go's
/// `url.Values.Encode()`) has its values decoded.
fn read_meta_url(text: &str) -> Result<Url> {
    let mut url = Url::parse_decoded(text)?;
    let escaped = text
        .split_once('?')
        .is_some_and(|(_, query)| query.contains('%'));
    if escaped {
        let params: Vec<(String, String)> = url
            .params()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        for (key, value) in params {
            url.set_param(key, decode(&value)?);
        }
    }
    Ok(url)
}

fn bracketed(address: &str) -> String {
    if address.contains(':') && !address.starts_with('[') {
        format!("[{address}]")
    } else {
        address.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::{Node, Service};

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    fn config() -> ConsulConfig {
        ConsulConfig::from_url(&url("consul://127.0.0.1:8500")).unwrap()
    }

    #[test]
    fn registrations_are_javas() {
        let u = url("dubbo://10.0.0.5:20880/com.acme.Echo?version=1.0&side=provider&timestamp=1");
        let r = registration(&u, &config()).unwrap();
        assert_eq!(r.name, "com.acme.Echo");
        assert_eq!(
            r.tags,
            ["side=provider", "timestamp=1", "version=1.0", "dubbo"]
        );
        assert_eq!(r.meta["url"], u.to_full_string());
        assert_eq!((r.address.as_str(), r.port), ("10.0.0.5", 20880));
        assert_eq!(r.check.ttl, "16s");
        assert_eq!(r.check.deregister_critical_service_after, "60s");
        assert_eq!(check_id(&r.id), format!("service:{}", r.id));
        // The same ID after a restart (a new timestamp), another for another URL.
        let restarted = u.clone().with_param("timestamp", "2");
        assert_eq!(service_id(&restarted), r.id);
        assert_ne!(service_id(&u.clone().with_param("weight", "5")), r.id);
    }

    #[test]
    fn urls_over_512_characters_are_refused_naming_the_limit() {
        let route = url("route://0.0.0.0/com.acme.Echo?category=routers&rule=x");
        let r = registration(&route, &config()).unwrap();
        assert_eq!(r.address, "", "Consul refuses 0.0.0.0");
        assert_eq!(r.meta["url"], route.to_full_string());
        let long = url(&format!(
            "dubbo://10.0.0.5:20880/com.acme.Echo?methods={}",
            "m".repeat(600)
        ));
        let err = registration(&long, &config()).unwrap_err();
        assert!(matches!(err, Error::InvalidInput { .. }), "{err}");
        let text = err.to_string();
        assert!(
            text.contains("512") && text.contains(&long.to_full_string().len().to_string()),
            "{text}"
        );
    }

    fn entry(meta: Option<&str>, address: &str, tags: &[&str]) -> HealthEntry {
        HealthEntry {
            node: Node {
                address: "10.9.9.9".into(),
            },
            service: Service {
                id: "x".into(),
                service: "com.acme.Echo".into(),
                tags: Some(tags.iter().map(|t| (*t).to_owned()).collect()),
                address: address.into(),
                port: 8080,
                meta: meta.map(|m| BTreeMap::from([("url".to_owned(), m.to_owned())])),
            },
        }
    }

    #[test]
    fn entries_of_every_writer_read_back() {
        let java = entry(
            Some("dubbo://10.0.0.5:20880/com.acme.Echo?methods=a,b&version=1.0"),
            "10.0.0.5",
            &[],
        );
        assert_eq!(read_entry(&java).unwrap().param("methods"), Some("a,b"));
        let go = entry(
            Some("dubbo://10.0.0.6:20000/com.acme.Echo?methods=a%2Cb&version=1.0"),
            "10.0.0.6",
            &[],
        );
        assert_eq!(read_entry(&go).unwrap().param("methods"), Some("a,b"));
        let foreign = entry(None, "", &["version=2", "primary"]);
        assert_eq!(
            read_entry(&foreign).unwrap().to_full_string(),
            "tcp://10.9.9.9:8080/com.acme.Echo?version=2"
        );
        let junk = entry(Some("not a url"), "", &[]);
        assert!(read_entry(&junk).is_err());
    }
}

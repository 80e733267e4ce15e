//! Where registrations live in ZooKeeper, and how node names and data map to URLs.

use dubbo_url::{Url, decode, encode};
use srpc_registry::{Error, Result};

use crate::config::Layout;

/// The categories a query's `category` list selects, as node directories. `*` selects all
/// four; a list with `-x` selects all four but the excluded ones (Java would look for a
/// directory named `-x`); otherwise the listed names.
pub(crate) fn query_categories(query: &Url) -> Vec<String> {
    const ALL: [&str; 4] = ["providers", "consumers", "routers", "configurators"];
    let list = query.param_or("category", "providers");
    if list.contains('*') {
        return ALL.iter().map(|c| (*c).to_owned()).collect();
    }
    if list.contains('-') {
        return ALL
            .iter()
            .filter(|c| !list.contains(&format!("-{c}")))
            .map(|c| (*c).to_owned())
            .collect();
    }
    let mut categories: Vec<String> = list
        .split(',')
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .map(str::to_owned)
        .collect();
    if categories.is_empty() {
        categories.push("providers".to_owned());
    }
    categories
}

/// `root` joined with `child` (`/` root: no double slash).
pub(crate) fn join(root: &str, child: &str) -> String {
    if root == "/" {
        format!("/{child}")
    } else {
        format!("{root}/{child}")
    }
}

/// Dubbo: the directory of `interface`.
pub(crate) fn interface_dir(root: &str, interface: &str) -> String {
    join(root, &encode(interface))
}

/// Dubbo: the directory of one category of `interface`.
pub(crate) fn category_dir(root: &str, interface: &str, category: &str) -> String {
    format!("{}/{category}", interface_dir(root, interface))
}

/// Dubbo: the node of a registration, `/<root>/<encode(interface)>/<category>/<encode(url)>`.
pub(crate) fn dubbo_node(root: &str, url: &Url) -> String {
    format!(
        "{}/{}",
        category_dir(root, url.service_interface(), url.category()),
        url.to_encoded_string()
    )
}

/// Dubbo: reads a child name of `/<root>/<encode(interface)>/<category>`.
///
/// Accepts Java's names (`URLEncoder` of the full URL), dubbo-go's (`QueryEscape`: the same
/// but `*` escaped and `~` kept) and Apache's Python Dubbo's (`tri://host:port?service=X`,
/// no path and no `interface`): a URL that names no interface gets `interface` from its
/// `service` parameter, else from the directory it was found in.
pub(crate) fn parse_dubbo_child(name: &str, interface_dir_name: &str) -> Result<Url> {
    let mut url = Url::parse(name)?;
    if url.service_interface().is_empty() {
        let interface = match url.param("service").filter(|s| !s.is_empty()) {
            Some(service) => service.to_owned(),
            None => decode(interface_dir_name)?,
        };
        url.set_param("interface", interface);
    }
    // Only what could have been registered: a protocol, a host, an interface.
    srpc_registry::validate_registration(&url)?;
    Ok(url)
}

/// rpcx: the node of a registration: `<base>/<Service>/<network>@<host:port>`.
pub(crate) fn rpcx_node(base: &str, url: &Url) -> String {
    format!(
        "{}/{}@{}",
        join(base, url.service_interface()),
        url.protocol(),
        url.address()
    )
}

/// rpcx: the metadata stored as node data: the URL's parameters as a query string.
pub(crate) fn rpcx_metadata(url: &Url) -> String {
    let full = url.to_full_string();
    full.split_once('?')
        .map(|(_, q)| q.to_owned())
        .unwrap_or_default()
}

/// rpcx: reads `<network>@<host:port>` with its metadata as `network://host:port/<Service>?<metadata>`.
pub(crate) fn parse_rpcx_child(service: &str, name: &str, metadata: &str) -> Result<Url> {
    let (network, address) = name
        .split_once('@')
        .ok_or_else(|| Error::invalid("rpcx node", name, "not <network>@<host:port>"))?;
    let text = if metadata.trim().is_empty() {
        format!("{network}://{address}/{service}")
    } else {
        format!("{network}://{address}/{service}?{}", metadata.trim())
    };
    let url = Url::parse_decoded(&text)?;
    srpc_registry::validate_registration(&url)?;
    Ok(url)
}

/// The directories a query needs watched, per layout; `None` for the whole root (`*`).
pub(crate) fn query_dirs(layout: &Layout, query: &Url) -> Option<Vec<String>> {
    let interface = query.service_interface();
    if interface == dubbo_url::ANY_VALUE {
        return None;
    }
    Some(match layout {
        Layout::Dubbo { root } => query_categories(query)
            .iter()
            .map(|c| category_dir(root, interface, c))
            .collect(),
        Layout::Rpcx { base } => vec![join(base, interface)],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    #[test]
    fn dubbo_node_is_javas() {
        let u = url(
            "dubbo://10.0.0.5:20880/com.acme.Echo?methods=echo,ping&interface=com.acme.Echo&anyhost=true",
        );
        assert_eq!(
            dubbo_node("/dubbo", &u),
            "/dubbo/com.acme.Echo/providers/dubbo%3A%2F%2F10.0.0.5%3A20880%2Fcom.acme.Echo%3Fanyhost%3Dtrue%26interface%3Dcom.acme.Echo%26methods%3Decho%2Cping"
        );
        let c = url("consumer://10.0.0.9/com.acme.Echo?category=consumers");
        assert!(dubbo_node("/", &c).starts_with("/com.acme.Echo/consumers/consumer%3A%2F%2F"));
    }

    #[test]
    fn categories_of_a_query() {
        let cases = [
            ("", vec!["providers"]),
            (
                "?category=providers,configurators,routers",
                vec!["providers", "configurators", "routers"],
            ),
            (
                "?category=*",
                vec!["providers", "consumers", "routers", "configurators"],
            ),
            (
                "?category=-consumers",
                vec!["providers", "routers", "configurators"],
            ),
        ];
        for (query, want) in cases {
            assert_eq!(
                query_categories(&url(&format!("consumer://h/a.B{query}"))),
                want,
                "{query}"
            );
        }
    }

    #[test]
    fn reads_every_known_writer() {
        let java = "dubbo%3A%2F%2F10.0.0.5%3A20880%2Fcom.acme.Echo%3Fanyhost%3Dtrue%26interface%3Dcom.acme.Echo";
        assert_eq!(
            parse_dubbo_child(java, "com.acme.Echo").unwrap().host(),
            "10.0.0.5"
        );
        let go = "dubbo%3A%2F%2F10.0.0.6%3A20000%2Fcom.acme.Echo%3Finterface%3Dcom.acme.Echo%26methods%3D%2A";
        assert_eq!(
            parse_dubbo_child(go, "com.acme.Echo")
                .unwrap()
                .param("methods"),
            Some("*")
        );
        let python = "tri%3A%2F%2F127.0.0.1%3A50051%3Fservice%3Dorg.example.Greeter";
        let py = parse_dubbo_child(python, "org.example.Greeter").unwrap();
        assert_eq!(py.service_interface(), "org.example.Greeter");
        let bare = parse_dubbo_child("tri%3A%2F%2F127.0.0.1%3A50051", "org.example.Other").unwrap();
        assert_eq!(bare.service_interface(), "org.example.Other");
        assert!(parse_dubbo_child("not a url at all %", "x").is_err());
        // Errors keep their type: the URL parser's own error, not a string.
        assert!(matches!(
            parse_dubbo_child("dubbo%3A%2F%2Fh%3A99999%2Fx", "x"),
            Err(Error::Url(_))
        ));
        assert!(matches!(
            parse_dubbo_child("empty%3A%2F%2F0.0.0.0%2Fx%3Fcategory%3Dproviders", "x"),
            Err(Error::InvalidInput { .. })
        ));
        assert!(
            parse_dubbo_child("garbage%ZZ", "x").is_err(),
            "no protocol: not a registration"
        );
        assert!(
            parse_dubbo_child("empty%3A%2F%2F0.0.0.0%2Fx%3Fcategory%3Dproviders", "x").is_err()
        );
        assert!(parse_dubbo_child("dubbo%3A%2F%2Ffe80%3A%3A1%2Fx", "x").is_err());
    }

    #[test]
    fn rpcx_mapping() {
        let u = url("tcp://127.0.0.1:8972/Arith?weight=10&group=test");
        assert_eq!(
            rpcx_node("/rpcx_test", &u),
            "/rpcx_test/Arith/tcp@127.0.0.1:8972"
        );
        assert_eq!(rpcx_metadata(&u), "group=test&weight=10");
        let back = parse_rpcx_child("Arith", "tcp@127.0.0.1:8972", "weight=10&group=test").unwrap();
        assert_eq!(back, u);
        assert_eq!(
            parse_rpcx_child("Arith", "tcp@127.0.0.1:8972", "")
                .unwrap()
                .to_full_string(),
            "tcp://127.0.0.1:8972/Arith"
        );
        assert!(matches!(
            parse_rpcx_child("Arith", "no-at-sign", ""),
            Err(Error::InvalidInput { .. })
        ));
    }
}

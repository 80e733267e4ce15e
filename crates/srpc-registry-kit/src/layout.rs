//! Dubbo's path layout (and rpcx's), shared by the backends that store registrations as paths
//! (ZooKeeper nodes, etcd keys): where a registration lives, which directories a query needs,
//! and how the entries that Java, Go and Python write read back as URLs.

use dubbo_url::{Url, decode, encode};

use crate::params::RegistryParams;
use crate::rules::validate_registration;
use crate::{Error, Result};

/// Which path layout a registry reads and writes. Exhaustive on purpose: a backend must
/// decide what each layout stores.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathLayout {
    /// Apache Dubbo's: `/<root>/<encode(interface)>/<category>/<encode(url)>`.
    Dubbo {
        /// The root, `/dubbo` by default (the registry URL's `group`).
        root: String,
    },
    /// rpcx's: `<base>/<Service>/<network>@<host:port>` with the metadata as the entry's data.
    Rpcx {
        /// The base path, e.g. `/rpcx_test`.
        base: String,
    },
}

impl Default for PathLayout {
    /// Dubbo's, under `/dubbo`.
    fn default() -> PathLayout {
        PathLayout::Dubbo {
            root: "/dubbo".to_owned(),
        }
    }
}

impl PathLayout {
    /// Dubbo's layout under `root` (`dubbo` and `/dubbo/` both mean `/dubbo`).
    pub fn dubbo(root: &str) -> PathLayout {
        PathLayout::Dubbo {
            root: normalize_root(root),
        }
    }

    /// rpcx's layout under `base`, e.g. `/rpcx_test`.
    pub fn rpcx(base: &str) -> PathLayout {
        PathLayout::Rpcx {
            base: normalize_root(base),
        }
    }

    /// Reads `layout=dubbo|rpcx` (default `dubbo`), `group` (the Dubbo root, default `dubbo`)
    /// and `base` (the rpcx base, required with `layout=rpcx`).
    pub fn from_params(params: &RegistryParams<'_>) -> Result<PathLayout> {
        let url = params.url();
        match url.param_or("layout", "dubbo") {
            "dubbo" => Ok(PathLayout::Dubbo {
                root: normalize_root(url.param_or("group", "dubbo")),
            }),
            "rpcx" => {
                let base = url.param("base").filter(|b| !b.is_empty()).ok_or_else(|| {
                    params.invalid("layout=rpcx needs base=<path>, e.g. base=/rpcx_test")
                })?;
                Ok(PathLayout::Rpcx {
                    base: normalize_root(base),
                })
            }
            other => Err(params.invalid(format!("unknown layout {other:?}: use dubbo or rpcx"))),
        }
    }

    /// The root every path of this layout is under.
    pub fn root(&self) -> &str {
        match self {
            PathLayout::Dubbo { root } => root,
            PathLayout::Rpcx { base } => base,
        }
    }

    /// Where `url` is registered.
    pub fn path_of(&self, url: &Url) -> String {
        match self {
            PathLayout::Dubbo { root } => dubbo_path(root, url),
            PathLayout::Rpcx { base } => rpcx_path(base, url),
        }
    }

    /// The directory holding `url`'s entry.
    pub fn dir_of(&self, url: &Url) -> String {
        match self {
            PathLayout::Dubbo { root } => {
                category_dir(root, url.service_interface(), url.category())
            }
            PathLayout::Rpcx { base } => join(base, url.service_interface()),
        }
    }

    /// The directories `query` needs watched; `None` for the whole root (`*` queries).
    pub fn dirs_of(&self, query: &Url) -> Option<Vec<String>> {
        let interface = query.service_interface();
        if interface == dubbo_url::ANY_VALUE {
            return None;
        }
        Some(match self {
            PathLayout::Dubbo { root } => query_categories(query)
                .iter()
                .map(|c| category_dir(root, interface, c))
                .collect(),
            PathLayout::Rpcx { base } => vec![join(base, interface)],
        })
    }

    /// The directories of one interface directory found under the root (its name as it is
    /// written, encoded) that `query` selects: for `*` queries.
    pub fn dirs_of_interface(&self, encoded_interface: &str, query: &Url) -> Vec<String> {
        match self {
            PathLayout::Dubbo { root } => query_categories(query)
                .iter()
                .map(|c| format!("{}/{c}", join(root, encoded_interface)))
                .collect(),
            PathLayout::Rpcx { base } => vec![join(base, encoded_interface)],
        }
    }

    /// Reads the entry `name` of directory `dir`, with its data (rpcx metadata; ignored by
    /// the Dubbo layout, whose entries carry the URL in their name).
    pub fn parse_entry(&self, dir: &str, name: &str, data: &str) -> Result<Url> {
        match self {
            PathLayout::Dubbo { .. } => {
                // `<root>/<encode(interface)>/<category>`: the interface is two levels up.
                let interface = dir.rsplit('/').nth(1).unwrap_or("");
                parse_dubbo_name(name, interface)
            }
            PathLayout::Rpcx { .. } => {
                let service = dir.rsplit('/').next().unwrap_or("");
                parse_rpcx_entry(service, name, data)
            }
        }
    }
}

/// `dubbo` → `/dubbo`, `/a/b/` → `/a/b`, `/` stays `/`.
pub fn normalize_root(root: &str) -> String {
    let trimmed = root.trim_end_matches('/');
    if trimmed.is_empty() {
        "/".to_owned()
    } else if trimmed.starts_with('/') {
        trimmed.to_owned()
    } else {
        format!("/{trimmed}")
    }
}

/// The categories a query's `category` list selects, as directories. `*` selects all
/// four; a list with `-x` selects all four but the excluded ones (Java would look for a
/// directory named `-x`); otherwise the listed names.
pub fn query_categories(query: &Url) -> Vec<String> {
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
pub fn join(root: &str, child: &str) -> String {
    if root == "/" {
        format!("/{child}")
    } else {
        format!("{root}/{child}")
    }
}

/// Dubbo: the directory of `interface`.
pub fn interface_dir(root: &str, interface: &str) -> String {
    join(root, &encode(interface))
}

/// Dubbo: the directory of one category of `interface`.
pub fn category_dir(root: &str, interface: &str, category: &str) -> String {
    format!("{}/{category}", interface_dir(root, interface))
}

/// Dubbo: the path of a registration, `/<root>/<encode(interface)>/<category>/<encode(url)>`.
pub fn dubbo_path(root: &str, url: &Url) -> String {
    format!(
        "{}/{}",
        category_dir(root, url.service_interface(), url.category()),
        url.to_encoded_string()
    )
}

/// Dubbo: reads the last segment of `/<root>/<encode(interface)>/<category>/<name>`.
///
/// Accepts Java's names (`URLEncoder` of the full URL), dubbo-go's (`QueryEscape`: the same
/// but `*` escaped and `~` kept) and Apache's Python Dubbo's (`tri://host:port?service=X`,
/// no path and no `interface`): a URL that names no interface gets `interface` from its
/// `service` parameter, else from the directory it was found in.
pub fn parse_dubbo_name(name: &str, interface_dir_name: &str) -> Result<Url> {
    let mut url = Url::parse(name)?;
    if url.service_interface().is_empty() {
        let interface = match url.param("service").filter(|s| !s.is_empty()) {
            Some(service) => service.to_owned(),
            None => decode(interface_dir_name)?,
        };
        url.set_param("interface", interface);
    }
    // Only what could have been registered: a protocol, a host, an interface.
    validate_registration(&url)?;
    Ok(url)
}

/// rpcx: the path of a registration: `<base>/<Service>/<network>@<host:port>`.
pub fn rpcx_path(base: &str, url: &Url) -> String {
    format!(
        "{}/{}@{}",
        join(base, url.service_interface()),
        url.protocol(),
        url.address()
    )
}

/// rpcx: the metadata stored as the entry's data: the URL's parameters as a query string.
pub fn rpcx_metadata(url: &Url) -> String {
    let full = url.to_full_string();
    full.split_once('?')
        .map(|(_, q)| q.to_owned())
        .unwrap_or_default()
}

/// rpcx: reads the entry `<network>@<host:port>` with its metadata as `network://host:port/<Service>?<metadata>`.
pub fn parse_rpcx_entry(service: &str, name: &str, metadata: &str) -> Result<Url> {
    let (network, address) = name
        .split_once('@')
        .ok_or_else(|| Error::invalid("rpcx node", name, "not <network>@<host:port>"))?;
    let text = if metadata.trim().is_empty() {
        format!("{network}://{address}/{service}")
    } else {
        format!("{network}://{address}/{service}?{}", metadata.trim())
    };
    let url = Url::parse_decoded(&text)?;
    validate_registration(&url)?;
    Ok(url)
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
            dubbo_path("/dubbo", &u),
            "/dubbo/com.acme.Echo/providers/dubbo%3A%2F%2F10.0.0.5%3A20880%2Fcom.acme.Echo%3Fanyhost%3Dtrue%26interface%3Dcom.acme.Echo%26methods%3Decho%2Cping"
        );
        let c = url("consumer://10.0.0.9/com.acme.Echo?category=consumers");
        assert!(dubbo_path("/", &c).starts_with("/com.acme.Echo/consumers/consumer%3A%2F%2F"));
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
            parse_dubbo_name(java, "com.acme.Echo").unwrap().host(),
            "10.0.0.5"
        );
        let go = "dubbo%3A%2F%2F10.0.0.6%3A20000%2Fcom.acme.Echo%3Finterface%3Dcom.acme.Echo%26methods%3D%2A";
        assert_eq!(
            parse_dubbo_name(go, "com.acme.Echo")
                .unwrap()
                .param("methods"),
            Some("*")
        );
        let python = "tri%3A%2F%2F127.0.0.1%3A50051%3Fservice%3Dorg.example.Greeter";
        let py = parse_dubbo_name(python, "org.example.Greeter").unwrap();
        assert_eq!(py.service_interface(), "org.example.Greeter");
        let bare = parse_dubbo_name("tri%3A%2F%2F127.0.0.1%3A50051", "org.example.Other").unwrap();
        assert_eq!(bare.service_interface(), "org.example.Other");
        assert!(parse_dubbo_name("not a url at all %", "x").is_err());
        // Errors keep their type: the URL parser's own error, not a string.
        assert!(matches!(
            parse_dubbo_name("dubbo%3A%2F%2Fh%3A99999%2Fx", "x"),
            Err(Error::Url(_))
        ));
        assert!(matches!(
            parse_dubbo_name("empty%3A%2F%2F0.0.0.0%2Fx%3Fcategory%3Dproviders", "x"),
            Err(Error::InvalidInput { .. })
        ));
        assert!(
            parse_dubbo_name("garbage%ZZ", "x").is_err(),
            "no protocol: not a registration"
        );
        assert!(parse_dubbo_name("empty%3A%2F%2F0.0.0.0%2Fx%3Fcategory%3Dproviders", "x").is_err());
        assert!(parse_dubbo_name("dubbo%3A%2F%2Ffe80%3A%3A1%2Fx", "x").is_err());
    }

    #[test]
    fn rpcx_mapping() {
        let u = url("tcp://127.0.0.1:8972/Arith?weight=10&group=test");
        assert_eq!(
            rpcx_path("/rpcx_test", &u),
            "/rpcx_test/Arith/tcp@127.0.0.1:8972"
        );
        assert_eq!(rpcx_metadata(&u), "group=test&weight=10");
        let back = parse_rpcx_entry("Arith", "tcp@127.0.0.1:8972", "weight=10&group=test").unwrap();
        assert_eq!(back, u);
        assert_eq!(
            parse_rpcx_entry("Arith", "tcp@127.0.0.1:8972", "")
                .unwrap()
                .to_full_string(),
            "tcp://127.0.0.1:8972/Arith"
        );
        assert!(matches!(
            parse_rpcx_entry("Arith", "no-at-sign", ""),
            Err(Error::InvalidInput { .. })
        ));
    }

    #[test]
    fn layouts_from_registry_urls() {
        let layout = |s: &str| PathLayout::from_params(&RegistryParams::new(&url(s)));
        assert_eq!(
            layout("x://h?group=srpc/").unwrap(),
            PathLayout::Dubbo {
                root: "/srpc".into()
            }
        );
        assert_eq!(layout("x://h").unwrap().root(), "/dubbo");
        assert_eq!(layout("x://h?group=/").unwrap().root(), "/");
        assert_eq!(
            layout("x://h?layout=rpcx&base=/rpcx_test").unwrap(),
            PathLayout::Rpcx {
                base: "/rpcx_test".into()
            }
        );
        assert!(
            layout("x://h?layout=rpcx")
                .unwrap_err()
                .to_string()
                .contains("needs base")
        );
        assert!(
            layout("x://h?layout=etcd")
                .unwrap_err()
                .to_string()
                .contains("unknown layout")
        );
    }

    #[test]
    fn directories_of_queries_and_entries() {
        let dubbo = PathLayout::Dubbo {
            root: "/dubbo".into(),
        };
        let q = url("consumer://h/a.B?category=providers,routers");
        assert_eq!(
            dubbo.dirs_of(&q).unwrap(),
            ["/dubbo/a.B/providers", "/dubbo/a.B/routers"]
        );
        assert!(dubbo.dirs_of(&url("consumer://h/*")).is_none());
        let p = url("dubbo://h:1/a.B");
        assert_eq!(dubbo.dir_of(&p), "/dubbo/a.B/providers");
        let name = dubbo.path_of(&p).rsplit('/').next().unwrap().to_owned();
        assert_eq!(
            dubbo
                .parse_entry("/dubbo/a.B/providers", &name, "")
                .unwrap(),
            p
        );
        let rpcx = PathLayout::Rpcx {
            base: "/rpcx".into(),
        };
        assert_eq!(
            rpcx.parse_entry("/rpcx/Arith", "tcp@h:1", "weight=1")
                .unwrap(),
            url("tcp://h:1/Arith?weight=1")
        );
    }
}

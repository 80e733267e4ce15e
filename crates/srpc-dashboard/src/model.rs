//! What the pages show, computed from a snapshot: service rows, provider and consumer rows,
//! with the override rules applied as consumers apply them.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{SystemTime, UNIX_EPOCH};

use dubbo_url::Url;
use serde::Serialize;
use srpc_registry::Snapshot;
use srpc_xclient::configurators;

/// Parameters whose values are secrets, masked wherever a URL is shown.
const SECRET_PARAMS: &[&str] = &["password", "token", "secret", "acl", "auth", "credential"];

/// `url` with its password and secret-looking parameters (`token`, `password`, …) replaced
/// by `***`; text that is not a URL is shown only up to its scheme.
pub fn mask_secrets(url: &str) -> String {
    let Ok(mut parsed) = url::Url::parse(url) else {
        return match url.split_once("://") {
            Some((scheme, _)) => format!("{scheme}://***"),
            None => "***".to_owned(),
        };
    };
    if parsed.password().is_some() {
        let _ = parsed.set_password(Some("***"));
    }
    let pairs: Vec<(String, String)> = parsed
        .query_pairs()
        .map(|(k, v)| {
            let lower = k.to_ascii_lowercase();
            let secret = SECRET_PARAMS.iter().any(|s| lower.contains(s));
            (
                k.into_owned(),
                if secret {
                    "***".to_owned()
                } else {
                    v.into_owned()
                },
            )
        })
        .collect();
    if !pairs.is_empty() {
        parsed.query_pairs_mut().clear().extend_pairs(pairs);
    }
    parsed.to_string().replace("%2A%2A%2A", "***")
}

/// One service (interface, group, version) on the services page.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct ServiceRow {
    pub(crate) key: String,
    pub(crate) interface: String,
    pub(crate) group: String,
    pub(crate) version: String,
    pub(crate) providers: usize,
    pub(crate) consumers: usize,
    /// Providers switched off, at registration or by a rule.
    pub(crate) disabled: usize,
    pub(crate) protocols: Vec<String>,
    pub(crate) applications: Vec<String>,
    /// Every searchable text of the service, lower-cased: not sent.
    #[serde(skip)]
    pub(crate) haystack: String,
}

/// One provider or consumer on the service page.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct InstanceRow {
    /// The URL as registered.
    pub(crate) url: String,
    pub(crate) protocol: String,
    pub(crate) address: String,
    pub(crate) application: String,
    /// After the override rules.
    pub(crate) weight: u32,
    /// After the override rules.
    pub(crate) enabled: bool,
    /// Whether a rule changed this provider (its weight or state).
    pub(crate) overridden: bool,
    pub(crate) group: String,
    pub(crate) version: String,
    /// Milliseconds since the epoch, from `timestamp`, when there is one.
    pub(crate) timestamp: Option<u64>,
    /// Every parameter, after the rules.
    pub(crate) params: Vec<(String, String)>,
}

/// The providers of `snapshot` after its override rules, paired with the URL registered.
pub(crate) fn configured(snapshot: &Snapshot) -> Vec<(Url, Url)> {
    let rules = configurators::rules(snapshot.category("configurators"));
    snapshot
        .providers()
        .iter()
        .map(|url| (url.clone(), configurators::configure(url.clone(), &rules)))
        .collect()
}

fn param(url: &Url, key: &str) -> String {
    url.param(key).unwrap_or_default().to_owned()
}

/// How many services [`services`] lists, without building their rows (override rules set
/// no group or version, so the registered URLs have the same keys).
pub(crate) fn service_count(snapshot: &Snapshot) -> usize {
    snapshot
        .providers()
        .iter()
        .chain(snapshot.category("consumers"))
        .map(Url::service_key)
        .collect::<BTreeSet<_>>()
        .len()
}

/// Every service of `snapshot`, sorted by key.
pub(crate) fn services(snapshot: &Snapshot) -> Vec<ServiceRow> {
    let mut rows: BTreeMap<String, ServiceRow> = BTreeMap::new();
    let mut protocols: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut applications: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut row = |url: &Url| -> String {
        let key = url.service_key();
        rows.entry(key.clone()).or_insert_with(|| ServiceRow {
            key: key.clone(),
            interface: url.service_interface().to_owned(),
            group: param(url, "group"),
            version: param(url, "version"),
            providers: 0,
            consumers: 0,
            disabled: 0,
            protocols: Vec::new(),
            applications: Vec::new(),
            haystack: key.to_lowercase(),
        });
        key
    };
    let mut seen = Vec::new();
    for (_, url) in configured(snapshot) {
        let key = row(&url);
        seen.push((key, url, true));
    }
    for url in snapshot.category("consumers") {
        let key = row(url);
        seen.push((key, url.clone(), false));
    }
    for (key, url, provider) in seen {
        let Some(entry) = rows.get_mut(&key) else {
            continue;
        };
        if provider {
            entry.providers += 1;
            if configurators::is_disabled(&url) {
                entry.disabled += 1;
            }
            protocols
                .entry(key.clone())
                .or_default()
                .insert(url.protocol().to_owned());
        } else {
            entry.consumers += 1;
        }
        if let Some(app) = url.param("application") {
            applications
                .entry(key.clone())
                .or_default()
                .insert(app.to_owned());
        }
        entry.haystack.push('\n');
        entry.haystack.push_str(&url.address().to_lowercase());
        for (k, v) in url.params() {
            entry.haystack.push('\n');
            entry.haystack.push_str(&k.to_lowercase());
            entry.haystack.push('=');
            entry.haystack.push_str(&v.to_lowercase());
        }
    }
    rows.into_iter()
        .map(|(key, mut row)| {
            row.protocols = protocols
                .remove(&key)
                .unwrap_or_default()
                .into_iter()
                .collect();
            row.applications = applications
                .remove(&key)
                .unwrap_or_default()
                .into_iter()
                .collect();
            row
        })
        .collect()
}

/// The providers and consumers of the service `key`, sorted by address.
pub(crate) fn instances(snapshot: &Snapshot, key: &str) -> (Vec<InstanceRow>, Vec<InstanceRow>) {
    let mut providers: Vec<InstanceRow> = configured(snapshot)
        .into_iter()
        .filter(|(_, effective)| effective.service_key() == key)
        .map(|(registered, effective)| instance(&registered, &effective))
        .collect();
    let mut consumers: Vec<InstanceRow> = snapshot
        .category("consumers")
        .iter()
        .filter(|url| url.service_key() == key)
        .map(|url| instance(url, url))
        .collect();
    providers.sort_by(|a, b| a.address.cmp(&b.address).then(a.url.cmp(&b.url)));
    consumers.sort_by(|a, b| a.address.cmp(&b.address).then(a.url.cmp(&b.url)));
    (providers, consumers)
}

fn instance(registered: &Url, effective: &Url) -> InstanceRow {
    let weight = effective
        .param("weight")
        .and_then(|w| w.trim().parse::<u32>().ok())
        .unwrap_or(100);
    InstanceRow {
        url: registered.to_full_string(),
        protocol: effective.protocol().to_owned(),
        address: effective.address(),
        application: param(effective, "application"),
        weight,
        enabled: !configurators::is_disabled(effective),
        overridden: registered.as_full_str() != effective.as_full_str(),
        group: param(effective, "group"),
        version: param(effective, "version"),
        timestamp: effective
            .param("timestamp")
            .and_then(|t| t.trim().parse::<u64>().ok()),
        params: effective
            .params()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
    }
}

/// Milliseconds since the epoch.
pub(crate) fn millis(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> Url {
        s.parse().unwrap()
    }

    #[test]
    fn secrets_in_registry_urls_are_masked() {
        for (raw, shown) in [
            (
                "etcd://root:s3cret@127.0.0.1:2379",
                "etcd://root:***@127.0.0.1:2379",
            ),
            (
                "http://127.0.0.1:9999?token=abc&ttl=5s",
                "http://127.0.0.1:9999/?token=***&ttl=5s",
            ),
            (
                "consul://127.0.0.1:8500?acl_token=x",
                "consul://127.0.0.1:8500?acl_token=***",
            ),
            ("not a url with s3cret", "***"),
        ] {
            let masked = mask_secrets(raw);
            assert_eq!(masked, shown);
            assert!(!masked.contains("s3cret") && !masked.contains("abc"));
        }
    }

    #[test]
    fn services_count_providers_consumers_and_disabled_ones() {
        let snapshot = Snapshot::new(
            1,
            true,
            [
                url("dubbo://10.0.0.1:1/a.B?application=shop&version=1"),
                url("tri://10.0.0.2:1/a.B?application=shop&version=1"),
                url("consumer://10.0.0.9/a.B?category=consumers&application=web&version=1"),
                url("override://10.0.0.2:1/a.B?category=configurators&disabled=true&version=1"),
                url("dubbo://10.0.0.3:1/c.D"),
            ],
        );
        let rows = services(&snapshot);
        assert_eq!(rows.len(), 2);
        assert_eq!(service_count(&snapshot), 2);
        let ab = &rows[0];
        assert_eq!(ab.key, "a.B:1");
        assert_eq!((ab.providers, ab.consumers, ab.disabled), (2, 1, 1));
        assert_eq!(ab.protocols, ["dubbo", "tri"]);
        assert_eq!(ab.applications, ["shop", "web"]);
        let (providers, consumers) = instances(&snapshot, "a.B:1");
        assert_eq!(providers.len(), 2);
        assert!(providers[0].enabled && !providers[0].overridden);
        assert!(!providers[1].enabled && providers[1].overridden);
        assert_eq!(consumers[0].application, "web");
    }
}

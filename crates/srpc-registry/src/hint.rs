//! Why a query found nothing: what the registry holds of the same interface that the query
//! does not select (other groups or versions, disabled providers). [`Subscription::elsewhere`]
//! gives it, errors of subscriptions and of the XClient carry it, and the `srpc` CLI prints it.
//!
//! [`Subscription::elsewhere`]: crate::Subscription::elsewhere

use std::collections::BTreeSet;
use std::fmt;

use dubbo_url::{Url, is_match};

/// At most this many service keys are named; the rest are counted.
const KEYS_NAMED: usize = 5;
/// A service key from the registry is cut to this many characters when named.
const KEY_CHARS: usize = 120;

/// Providers of a query's interface that the query does not select: "the interface
/// com.acme.Echo has 3 provider(s): 2 in other groups or versions (blue/com.acme.Echo:2.0),
/// 1 disabled (enabled=false)".
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Elsewhere {
    /// The interface.
    pub interface: String,
    /// Every provider of the interface the registry holds, selected or not.
    pub providers: usize,
    /// Enabled providers the query does not select, for their group, version or classifier.
    pub unselected: usize,
    /// The service keys (`group/interface:version`) of those, sorted, without repeats.
    pub services: Vec<String>,
    /// Providers disabled with `enabled=false`.
    pub disabled: usize,
}

impl Elsewhere {
    /// The query that finds every provider of `query`'s interface: any group, version,
    /// classifier, enabled or not. Its category is `providers`.
    pub fn widened(query: &Url) -> Url {
        query
            .clone()
            .with_param("category", "providers")
            .with_param("group", "*")
            .with_param("version", "*")
            .with_param("classifier", "*")
            .with_param("enabled", "*")
    }

    /// What `known` (providers of any group and version, e.g. what
    /// [`Elsewhere::widened`] finds) holds for `query`'s interface that `query` does not
    /// select; `None` when it holds nothing of the kind.
    pub fn of<'a>(query: &Url, known: impl IntoIterator<Item = &'a Url>) -> Option<Elsewhere> {
        let interface = query.service_interface();
        let mut providers = 0;
        let mut unselected = 0;
        let mut disabled = 0;
        let mut services = BTreeSet::new();
        for url in known {
            if url.category() != "providers"
                || url.is_empty_protocol()
                || (interface != "*" && url.service_interface() != interface)
            {
                continue;
            }
            providers += 1;
            if url.param_bool("enabled", true) == Ok(false) {
                disabled += 1;
            } else if !is_match(query, url) {
                unselected += 1;
                services.insert(url.service_key());
            }
        }
        (unselected + disabled > 0).then(|| Elsewhere {
            interface: interface.to_owned(),
            providers,
            unselected,
            services: services.into_iter().collect(),
            disabled,
        })
    }
}

impl fmt::Display for Elsewhere {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the interface {} has {} provider(s): ",
            printable(&self.interface),
            self.providers
        )?;
        if self.unselected > 0 {
            write!(f, "{} in other groups or versions (", self.unselected)?;
            for (i, key) in self.services.iter().take(KEYS_NAMED).enumerate() {
                if i > 0 {
                    f.write_str(", ")?;
                }
                f.write_str(&printable(key))?;
            }
            if self.services.len() > KEYS_NAMED {
                write!(f, " and {} more", self.services.len() - KEYS_NAMED)?;
            }
            f.write_str(")")?;
            if self.disabled > 0 {
                f.write_str(", ")?;
            }
        }
        if self.disabled > 0 {
            write!(f, "{} disabled (enabled=false)", self.disabled)?;
        }
        Ok(())
    }
}

/// Registry data is untrusted: control characters escaped, and cut to [`KEY_CHARS`].
fn printable(text: &str) -> String {
    let mut out = String::new();
    for (i, c) in text.chars().enumerate() {
        if i == KEY_CHARS {
            out.push('…');
            break;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> Url {
        s.parse().unwrap()
    }

    #[test]
    fn names_other_versions_and_counts_disabled_providers() {
        let query = url("consumer://h/com.acme.Echo?version=1.0");
        let known = [
            url("dubbo://a:1/com.acme.Echo?version=2.0"),
            url("dubbo://a:2/com.acme.Echo?version=2.0&group=blue"),
            url("dubbo://a:3/com.acme.Echo?version=1.0&enabled=false"),
            url("dubbo://a:4/com.acme.Other?version=2.0"),
            url("consumer://a/com.acme.Echo?version=3.0&category=consumers"),
        ];
        let hint = Elsewhere::of(&query, &known).unwrap();
        assert_eq!(hint.providers, 3);
        assert_eq!(hint.unselected, 2);
        assert_eq!(hint.disabled, 1);
        assert_eq!(
            hint.to_string(),
            "the interface com.acme.Echo has 3 provider(s): 2 in other groups or versions \
             (blue/com.acme.Echo:2.0, com.acme.Echo:2.0), 1 disabled (enabled=false)"
        );
    }

    #[test]
    fn nothing_to_say_when_every_provider_is_selected_or_there_is_none() {
        let query = url("consumer://h/com.acme.Echo?version=1.0");
        assert_eq!(Elsewhere::of(&query, &[]), None);
        let known = [url("dubbo://a:1/com.acme.Echo?version=1.0")];
        assert_eq!(Elsewhere::of(&query, &known), None);
    }

    #[test]
    fn a_hostile_registry_cannot_flood_or_garble_the_message() {
        let query = url("consumer://h/com.acme.Echo?version=1.0");
        let known: Vec<Url> = (0..100)
            .map(|v| {
                Url::builder("dubbo")
                    .host("a")
                    .port(1)
                    .path("com.acme.Echo")
                    .param("version", format!("2.{v}\u{1b}[31m"))
                    .build()
                    .unwrap()
            })
            .collect();
        assert!(known[0].service_key().contains('\u{1b}'));
        let text = Elsewhere::of(&query, &known).unwrap().to_string();
        assert!(text.contains(" and 95 more)"), "{text}");
        assert!(!text.contains('\u{1b}'), "{text}");
        assert!(text.len() < 400, "{text}");
    }

    #[test]
    fn the_widened_query_selects_every_provider_of_the_interface() {
        let query = url("consumer://h/com.acme.Echo?version=1.0&group=x&category=routers");
        let widened = Elsewhere::widened(&query);
        for provider in [
            "dubbo://a:1/com.acme.Echo?version=2.0&group=y",
            "dubbo://a:1/com.acme.Echo?enabled=false",
            "dubbo://a:1/com.acme.Echo?classifier=c",
        ] {
            assert!(is_match(&widened, &url(provider)), "{provider}");
        }
        assert!(!is_match(&widened, &url("dubbo://a:1/com.acme.Other")));
    }
}

//! Dubbo's override rules ("configurators"): `override://` URLs in a service's
//! `configurators` category that change the parameters of the providers they match, as
//! Dubbo Admin writes them to disable a provider or change its weight, and as Java Dubbo's
//! `OverrideConfigurator` applies them on the consumer side.
//!
//! ```text
//! override://10.0.0.5:20880/com.acme.Echo?category=configurators&dynamic=false&disabled=true
//! override://0.0.0.0/com.acme.Echo?category=configurators&dynamic=false&weight=50
//! ```
//!
//! A rule applies to a provider when it is enabled (`enabled` is not `false`), its host is
//! `0.0.0.0` or the provider's, its port is 0 or the provider's, and its `application` and
//! `~key` conditions (when given, not `*`) equal the provider's. It then sets every other
//! parameter on the provider's URL. Rules for any host apply first, so that one for the
//! provider's own host wins, then by `priority`. An `empty://` rule alone means none.
//! `disabled=true` on the result takes the provider out of selection.

use dubbo_url::Url;

/// The host of a rule for every provider.
const ANY_HOST: &str = "0.0.0.0";

/// Parameters of a rule that say where it applies, not what it sets (Java Dubbo's
/// condition keys).
const CONDITIONS: &[&str] = &[
    "category",
    "check",
    "dynamic",
    "enabled",
    "group",
    "version",
    "application",
    "side",
    "interface",
    "configVersion",
    "compatible_config",
    "priority",
    "timestamp",
    "pid",
    "anyhost",
];

/// The URL protocols that are rules: `override://` (what Dubbo Admin and srpc write) and
/// `absent://` (sets only parameters the provider lacks).
fn is_rule(url: &Url) -> bool {
    url.protocol().eq_ignore_ascii_case("override") || url.protocol().eq_ignore_ascii_case("absent")
}

/// The rules among a subscription's configurators, in the order they apply.
pub fn rules(configurators: &[Url]) -> Vec<Url> {
    let mut rules: Vec<Url> = configurators
        .iter()
        .filter(|url| is_rule(url))
        .filter(|url| url.param_bool("enabled", true).unwrap_or(true))
        .filter(|url| !url.host().is_empty())
        .cloned()
        .collect();
    rules.sort_by_key(|url| {
        let priority = url
            .param("priority")
            .and_then(|p| p.parse::<i64>().ok())
            .unwrap_or(0);
        (url.host() != ANY_HOST, priority)
    });
    rules
}

/// `provider` with every rule that matches it applied.
pub fn configure(provider: Url, rules: &[Url]) -> Url {
    rules.iter().fold(provider, apply)
}

fn apply(provider: Url, rule: &Url) -> Url {
    if !matches(&provider, rule) {
        return provider;
    }
    let absent = rule.protocol().eq_ignore_ascii_case("absent");
    let sets: Vec<(String, String)> = rule
        .params()
        .filter(|(key, _)| !key.starts_with('~') && !CONDITIONS.contains(key))
        .filter(|(key, _)| !absent || provider.param(key).is_none())
        .map(|(key, value)| (key.to_owned(), value.to_owned()))
        .collect();
    sets.into_iter().fold(provider, |provider, (key, value)| {
        provider.with_param(key, value)
    })
}

fn matches(provider: &Url, rule: &Url) -> bool {
    if rule.host() != ANY_HOST && !rule.host().eq_ignore_ascii_case(provider.host()) {
        return false;
    }
    if rule.port() != 0 && rule.port() != provider.port() {
        return false;
    }
    if rule.service_interface() != "*" && rule.service_interface() != provider.service_interface() {
        return false;
    }
    let condition = |key: &str, value: &str| value == "*" || provider.param(key) == Some(value);
    if let Some(application) = rule.param("application") {
        if !condition("application", application) {
            return false;
        }
    }
    rule.params()
        .filter_map(|(key, value)| key.strip_prefix('~').map(|key| (key, value)))
        .all(|(key, value)| condition(key, value))
}

/// Whether a provider is switched off: `disabled=true` (set by a rule, as Dubbo Admin's
/// "disable" does) or `enabled=false` (set at registration).
pub fn is_disabled(url: &Url) -> bool {
    url.param_bool("disabled", false).unwrap_or(false)
        || !url.param_bool("enabled", true).unwrap_or(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> Url {
        s.parse().unwrap()
    }

    fn configured(provider: &str, rules_text: &[&str]) -> Url {
        let all: Vec<Url> = rules_text.iter().map(|r| url(r)).collect();
        configure(url(provider), &rules(&all))
    }

    #[test]
    fn a_rule_for_one_provider_disables_it_and_no_other() {
        let rule = "override://10.0.0.5:20880/com.acme.Echo?category=configurators&dynamic=false&disabled=true";
        let hit = configured("dubbo://10.0.0.5:20880/com.acme.Echo?weight=100", &[rule]);
        assert!(is_disabled(&hit), "{hit}");
        assert_eq!(hit.param("weight"), Some("100"));
        assert_eq!(hit.param("category"), None, "conditions are not set: {hit}");
        for other in [
            "dubbo://10.0.0.5:20881/com.acme.Echo",
            "dubbo://10.0.0.6:20880/com.acme.Echo",
            "dubbo://10.0.0.5:20880/com.acme.Other",
        ] {
            assert!(!is_disabled(&configured(other, &[rule])), "{other}");
        }
    }

    #[test]
    fn a_rule_for_any_host_applies_to_all_and_a_host_rule_wins() {
        let any = "override://0.0.0.0/com.acme.Echo?category=configurators&weight=50";
        let one = "override://10.0.0.5/com.acme.Echo?category=configurators&weight=300";
        // Whatever order the registry lists them in.
        for order in [[any, one], [one, any]] {
            assert_eq!(
                configured("dubbo://10.0.0.5:1/com.acme.Echo", &order).param("weight"),
                Some("300")
            );
            assert_eq!(
                configured("dubbo://10.0.0.6:1/com.acme.Echo", &order).param("weight"),
                Some("50")
            );
        }
    }

    #[test]
    fn disabled_rules_empty_markers_and_unmet_conditions_change_nothing() {
        let provider = "dubbo://10.0.0.5:20880/com.acme.Echo?application=shop";
        for rule in [
            "override://10.0.0.5:20880/com.acme.Echo?disabled=true&enabled=false",
            "empty://0.0.0.0/com.acme.Echo?category=configurators",
            "override://10.0.0.5:20880/com.acme.Echo?disabled=true&application=billing",
            "override://10.0.0.5:20880/com.acme.Echo?disabled=true&~region=eu",
        ] {
            assert!(!is_disabled(&configured(provider, &[rule])), "{rule}");
        }
        let met = "override://10.0.0.5:20880/com.acme.Echo?disabled=true&application=shop";
        assert!(is_disabled(&configured(provider, &[met])));
    }

    #[test]
    fn absent_rules_set_only_what_is_missing() {
        let rule = "absent://0.0.0.0/com.acme.Echo?weight=7&timeout=900";
        let url = configured("dubbo://h:1/com.acme.Echo?weight=100", &[rule]);
        assert_eq!(url.param("weight"), Some("100"));
        assert_eq!(url.param("timeout"), Some("900"));
    }
}

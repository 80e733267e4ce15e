//! Dubbo's `UrlUtils.isMatch`: does a subscription (consumer) URL select a registered URL?

use crate::url::{ANY_VALUE, DEFAULT_CATEGORY, Url};

/// Java Dubbo's `UrlUtils.isMatch(consumer, provider)` (reference §1.10): true iff
///
/// 1. the interfaces are equal, or either one is `*`;
/// 2. the provider's category (default `providers`) is selected by the consumer's `category`
///    list (default `providers`): `*` selects all, a list with `-` selects everything not
///    excluded by `-<category>`, otherwise the list must *contain* the category as a substring
///    (Java's `String.contains`, kept for compatibility);
/// 3. the provider is enabled (`enabled` is not false) or the consumer has `enabled=*`;
/// 4. the consumer's group is `*`, equals the provider's (both absent counts as equal; absent
///    and empty do not), or is a comma list that contains it;
/// 5. the consumer's version is `*` or equals the provider's;
/// 6. the consumer's classifier is absent or `*`, or equals the provider's.
///
/// ```
/// use dubbo_url::{is_match, Url};
///
/// let consumer: Url = "consumer://10.0.0.9/a.B?category=providers,routers&group=x,y".parse()?;
/// let provider: Url = "dubbo://10.0.0.5:20880/a.B?group=y".parse()?;
/// assert!(is_match(&consumer, &provider));
/// # Ok::<(), dubbo_url::Error>(())
/// ```
pub fn is_match(consumer: &Url, provider: &Url) -> bool {
    let consumer_interface = consumer.service_interface();
    let provider_interface = provider.service_interface();
    if !(consumer_interface == ANY_VALUE
        || provider_interface == ANY_VALUE
        || consumer_interface == provider_interface)
    {
        return false;
    }

    let categories = consumer.param_or("category", DEFAULT_CATEGORY);
    if !is_match_category(provider.category(), categories) {
        return false;
    }

    let enabled = provider
        .param("enabled")
        .is_none_or(|v| v.is_empty() || v.trim().eq_ignore_ascii_case("true"));
    if !enabled && consumer.param("enabled") != Some(ANY_VALUE) {
        return false;
    }

    let consumer_group = consumer.param("group");
    let provider_group = provider.param("group");
    let group_ok = consumer_group == Some(ANY_VALUE)
        || consumer_group == provider_group
        || match (consumer_group, provider_group) {
            (Some(list), Some(group)) => !list.is_empty() && split_list(list).any(|g| g == group),
            _ => false,
        };
    if !group_ok {
        return false;
    }

    let consumer_version = consumer.param("version");
    if !(consumer_version == Some(ANY_VALUE) || consumer_version == provider.param("version")) {
        return false;
    }

    let consumer_classifier = consumer.param_or("classifier", ANY_VALUE);
    consumer_classifier == ANY_VALUE
        || consumer_classifier == provider.param_or("classifier", ANY_VALUE)
}

/// Java's `UrlUtils.isMatchCategory(category, categories)`.
///
/// ```
/// use dubbo_url::is_match_category;
///
/// assert!(is_match_category("routers", "providers,configurators,routers"));
/// assert!(is_match_category("providers", "*"));
/// assert!(!is_match_category("consumers", "-consumers"));
/// assert!(is_match_category("routers", "-consumers"));
/// ```
pub fn is_match_category(category: &str, categories: &str) -> bool {
    if categories.is_empty() {
        category == DEFAULT_CATEGORY
    } else if categories.contains(ANY_VALUE) {
        true
    } else if categories.contains('-') {
        !categories.contains(&format!("-{category}"))
    } else {
        categories.contains(category)
    }
}

/// Splits a comma list as Java's `\s*[,]+\s*` does.
fn split_list(list: &str) -> impl Iterator<Item = &str> {
    list.split(',').map(str::trim).filter(|s| !s.is_empty())
}

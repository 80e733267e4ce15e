//! Reading a [`Url`] from either form a registry holds, as Java Dubbo's `URL.valueOf` and
//! `URLStrParser` do, with the policy where Java versions differ.

use std::cmp::Ordering;
use std::net::Ipv6Addr;
use std::sync::Arc;

use super::{Inner, Url};
use crate::codec;
use crate::error::{Error, Result};

impl Url {
    /// Parses either form a registry may hold: the decoded form (`dubbo://…`, as multicast
    /// datagrams and cache files carry it) or the encoded form (`dubbo%3A%2F%2F…`, as ZooKeeper
    /// child names carry it). The encoded form is recognised by `%3A%2F%2F` (any case) in an
    /// input that has no literal `://`.
    pub fn parse(input: &str) -> Result<Url> {
        let text = trim(input);
        if find_scheme_end(text, "://").is_none() && contains_ignore_ascii_case(text, "%3A%2F%2F") {
            Url::parse_encoded(text)
        } else {
            Url::parse_decoded(text)
        }
    }

    /// Parses the encoded form: the whole text is `URLDecoder`-decoded, then read as the
    /// decoded form. Separators are therefore recognised after decoding, as Java's
    /// `URLStrParser.parseEncodedStr` does.
    pub fn parse_encoded(input: &str) -> Result<Url> {
        Url::parse_decoded(&codec::decode(trim(input))?)
    }

    /// Parses the decoded form, following Java Dubbo's `URL.valueOf`.
    ///
    /// Policy where Java versions differ: parameters split on `&` and `;`; each part is
    /// trimmed and empty parts are skipped; the name ends at the first `=`; a part without
    /// `=` (`flag`) and a part with nothing after it (`k=`) both give an empty value (as Dubbo
    /// 3 does); a part with an empty name (`=v`) is dropped, since it could never be written
    /// back; the last duplicate wins; `default.X=v` also sets `X=v` when `X` is absent.
    /// IPv6 hosts must be bracketed (`[fe80::1]:20880`); a bare IPv6 host is an error.
    pub fn parse_decoded(input: &str) -> Result<Url> {
        let whole = trim(input);
        if whole.is_empty() {
            return Err(Error::Empty);
        }
        let (body, query) = match whole.split_once('?') {
            Some((body, query)) => (body, Some(query)),
            None => (whole, None),
        };
        // White space before a `?` or `#` would end the written URL, where reading trims it:
        // drop it here so that what is read is what is written (found by fuzzing:
        // `x://h/p ?` read a path `p ` that wrote back as `p`).
        let body = body
            .split_once('#')
            .map_or(body, |(before, _)| before)
            .trim_end_matches(|c: char| c <= ' ');

        let (protocol, rest) = if let Some(i) = find_scheme_end(body, "://") {
            (&body[..i], &body[i + 3..])
        } else if let Some(i) = find_scheme_end(body, ":/") {
            (&body[..i], &body[i + 1..])
        } else {
            ("", body)
        };
        if protocol.is_empty() && rest.len() != body.len() {
            return Err(Error::MissingProtocol {
                url: whole.to_owned(),
            });
        }

        let (authority, path) = match rest.split_once('/') {
            Some((authority, path)) => (authority, path.trim_start_matches('/')),
            None => (rest, ""),
        };
        let (userinfo, hostport) = match authority.rfind('@') {
            Some(i) => (&authority[..i], &authority[i + 1..]),
            None => ("", authority),
        };
        let (username, password) = userinfo.split_once(':').unwrap_or((userinfo, ""));
        // Java writes a password only after a user name, so `:pw@h` is written `h`: read it
        // as written (found by fuzzing: the password was kept, then lost on writing).
        let password = if username.is_empty() { "" } else { password };
        let (host, port) = split_host_port(hostport, whole)?;
        let params = query.map(parse_params).unwrap_or_default();
        if protocol.is_empty() && host.is_empty() && path.is_empty() && params.is_empty() {
            // Nothing but separators, e.g. `#` or `?&`: there is no URL here.
            return Err(Error::Empty);
        }
        let params = params.iter().copied();
        Ok(Url {
            inner: Arc::new(Inner::assemble(
                protocol, username, password, host, port, path, params,
            )),
        })
    }
}

/// The parameters of a query, sorted by key, without duplicates (the last one wins, as in
/// Java's map), `default.<key>` also giving `<key>` when that is absent. Borrowed from the
/// query, `default.` copies included.
fn parse_params(query: &str) -> Vec<(&str, &str)> {
    // Byte scans (memchr): the separators are ASCII, so every cut falls on a character
    // boundary.
    let bytes = query.as_bytes();
    // A guess, not a count (a second pass over the query): Java's parameters average well
    // over 8 bytes each.
    let mut params: Vec<(&str, &str)> = Vec::with_capacity(bytes.len() / 8 + 1);
    let mut start = 0;
    let ends = memchr::memchr2_iter(b'&', b';', bytes).chain(std::iter::once(bytes.len()));
    for end in ends {
        let part = trim(query.get(start..end).unwrap_or_default());
        start = end + 1;
        // A plain scan: parts are short, shorter than a vector search pays off on.
        let (key, value) = match part.bytes().position(|b| b == b'=') {
            Some(eq) => (
                part.get(..eq).unwrap_or_default(),
                trim(part.get(eq + 1..).unwrap_or_default()),
            ),
            None => (part, ""),
        };
        if !key.is_empty() {
            params.push((key, value));
        }
    }
    // What Java writes is sorted already, without duplicates: then there is nothing to do.
    if !params.is_sorted_by(|a, b| key_cmp(a.0, b.0).is_lt()) {
        // Sorted stably, duplicates stay in the order written; the last of each run is kept.
        params.sort_by(|a, b| key_cmp(a.0, b.0));
        let mut kept = 0;
        for i in 0..params.len() {
            if params.get(i + 1).is_some_and(|next| next.0 == params[i].0) {
                continue;
            }
            params.swap(kept, i);
            kept += 1;
        }
        params.truncate(kept);
    }
    let defaults: Vec<(&str, &str)> = params
        .iter()
        .filter_map(|(k, v)| {
            // Trimmed as a key read on its own would be (found by fuzzing: the copy of
            // `default.\0x` was written as `\0x=`, which reads as `x`).
            let mut plain = trim(k.strip_prefix("default.")?);
            // `default.default.x` gives `x`, not `default.x`, whose own copy would appear only
            // when the written URL is read again (found by fuzzing).
            while let Some(rest) = plain.strip_prefix("default.") {
                plain = trim(rest);
            }
            (!plain.is_empty()
                && params
                    .binary_search_by(|(other, _)| (*other).cmp(plain))
                    .is_err())
            .then_some((plain, *v))
        })
        .collect();
    if !defaults.is_empty() {
        // Two `default.` keys may trim to one plain key (`default.x`, `default.\u{1}x`): one
        // copy, the first by key (found by fuzzing: both were kept).
        let mut defaults = defaults;
        defaults.sort_by(|a, b| a.0.cmp(b.0));
        defaults.dedup_by(|later, first| later.0 == first.0);
        params.extend(defaults);
        params.sort_by(|a, b| a.0.cmp(b.0));
    }
    params
}

/// Byte order of two parameter names, decided on the first byte where it can, without a
/// call to `memcmp`: names mostly differ there.
fn key_cmp(a: &str, b: &str) -> Ordering {
    match (a.as_bytes().first(), b.as_bytes().first()) {
        (Some(x), Some(y)) if x != y => x.cmp(y),
        _ => a.cmp(b),
    }
}

/// Where `sep` (`://` or `:/`) first occurs in `text`. A URL's first ':' usually ends its
/// protocol, so that one is tried before a search of the whole text.
fn find_scheme_end(text: &str, sep: &str) -> Option<usize> {
    let colon = memchr::memchr(b':', text.as_bytes())?;
    if text.as_bytes().get(colon..colon + sep.len()) == Some(sep.as_bytes()) {
        Some(colon)
    } else {
        // The first `sep` starts at a later ':' (or there is none).
        text.get(colon + 1..)?.find(sep).map(|i| colon + 1 + i)
    }
}

/// Java's `String.trim`: drops characters up to U+0020 (spaces and control characters) at
/// both ends, and no others; the writer trims values the same way, so what is read is what
/// is written (found by fuzzing: `k=\u{1}v` read a value the writer wrote as `v`).
fn trim(part: &str) -> &str {
    // Those characters are the ASCII bytes up to 0x20, which never occur inside a longer
    // UTF-8 sequence: trimming bytes cuts on character boundaries.
    let bytes = part.as_bytes();
    let start = bytes.iter().position(|&b| b > b' ').unwrap_or(bytes.len());
    let end = bytes
        .iter()
        .rposition(|&b| b > b' ')
        .map_or(start, |i| i + 1);
    part.get(start..end).unwrap_or_default()
}

fn split_host_port<'a>(hostport: &'a str, url: &str) -> Result<(&'a str, u16)> {
    let invalid_port = |port: &str| Error::InvalidPort {
        port: port.to_owned(),
        url: url.to_owned(),
    };
    let (host, port) = if hostport.starts_with('[') {
        let Some(close) = hostport.find(']') else {
            return Err(Error::InvalidIpv6 {
                host: hostport.to_owned(),
                url: url.to_owned(),
            });
        };
        let (host, after) = hostport.split_at(close + 1);
        match after.strip_prefix(':') {
            _ if after.is_empty() => (host, None),
            Some(port) => (host, Some(port)),
            None => return Err(invalid_port(after)),
        }
    } else {
        // Two colons or more, and not an address list: an IPv6 address without brackets.
        // Name all of it (`fe80::1`), not what a host:port split would leave (`fe80:`).
        if hostport.matches(':').count() > 1 && !hostport.contains(',') {
            return Err(Error::BareIpv6 {
                host: hostport.to_owned(),
                url: url.to_owned(),
            });
        }
        match hostport.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (hostport, None),
        }
    };
    let port = match port {
        None => 0,
        Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => {
            p.parse().map_err(|_| invalid_port(p))?
        }
        Some(p) => return Err(invalid_port(p)),
    };
    if port == 0 && host.contains(':') && !host.starts_with('[') {
        // An address list with port 0 (`a:1,b:2:0`): written back without the port, the
        // last entry's port would become the URL's. Found by the round-trip property.
        return Err(invalid_port("0"));
    }
    check_host(host, url)?;
    Ok((host, port))
}

pub(super) fn check_host(host: &str, url: &str) -> Result<()> {
    if host.contains(|c: char| c <= ' ') {
        // Found by fuzzing: `0 //` read a host `0 ` that could not be written back.
        return Err(Error::Unrepresentable {
            what: format!("host {}", crate::quote(host)),
            url: url.to_owned(),
        });
    }
    if let Some(inner) = host.strip_prefix('[') {
        let addr = inner.strip_suffix(']').unwrap_or(inner);
        let addr = addr.split_once('%').map_or(addr, |(a, _zone)| a);
        if !host.ends_with(']') || addr.parse::<Ipv6Addr>().is_err() {
            return Err(Error::InvalidIpv6 {
                host: host.to_owned(),
                url: url.to_owned(),
            });
        }
    } else if host.contains(':') && !host.contains(',') {
        // A comma means a Dubbo address list (`a:2181,b:2181`), which Java keeps in the host.
        return Err(Error::BareIpv6 {
            host: host.to_owned(),
            url: url.to_owned(),
        });
    }
    Ok(())
}

fn contains_ignore_ascii_case(haystack: &str, needle: &str) -> bool {
    haystack
        .as_bytes()
        .windows(needle.len())
        .any(|w| w.eq_ignore_ascii_case(needle.as_bytes()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Test code.

    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn find_scheme_end_finds_what_str_find_finds(text in "[a:/é]{0,12}") {
            for sep in ["://", ":/"] {
                prop_assert_eq!(find_scheme_end(&text, sep), text.find(sep), "{:?} in {:?}", sep, text);
            }
        }

        #[test]
        fn key_cmp_is_byte_order(a in "[ab.é]{0,4}", b in "[ab.é]{0,4}") {
            prop_assert_eq!(key_cmp(&a, &b), a.cmp(&b));
        }
    }
}

//! Java `URLEncoder` / `URLDecoder` compatible form encoding (UTF-8).
//!
//! Java leaves `A-Z a-z 0-9 . - * _` alone, writes a space as `+` and everything else as
//! upper-case `%XX` of its UTF-8 bytes. `url::form_urlencoded` uses exactly that set, so
//! encoding delegates to it. Decoding is written here because Java rejects a truncated or
//! non-hex escape, which the lenient decoders of the ecosystem pass through unchanged.

use crate::error::{Error, Result};

/// Encodes `text` exactly as `java.net.URLEncoder.encode(text, "UTF-8")` does.
///
/// ```
/// assert_eq!(dubbo_url::encode("dubbo://a:1/b?x=1&y=2"), "dubbo%3A%2F%2Fa%3A1%2Fb%3Fx%3D1%26y%3D2");
/// assert_eq!(dubbo_url::encode("a b~é"), "a+b%7E%C3%A9");
/// ```
pub fn encode(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

/// Decodes `text` as `java.net.URLDecoder.decode(text, "UTF-8")` does: `+` is a space and
/// `%XX` runs are UTF-8 bytes (invalid UTF-8 becomes U+FFFD, as in Java).
///
/// A `%` that is not followed by two hex digits is an error, as in Java.
///
/// ```
/// assert_eq!(dubbo_url::decode("a+b%7E%c3%a9").unwrap(), "a b~é");
/// assert!(dubbo_url::decode("100%").is_err());
/// ```
pub fn decode(text: &str) -> Result<String> {
    if !text.bytes().any(|b| b == b'%' || b == b'+') {
        return Ok(text.to_owned());
    }
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b'%' => {
                let hi = bytes.get(i + 1).copied().and_then(hex_value);
                let lo = bytes.get(i + 2).copied().and_then(hex_value);
                match (hi, lo) {
                    (Some(hi), Some(lo)) => out.push(hi << 4 | lo),
                    _ => {
                        return Err(Error::InvalidEscape {
                            text: text.to_owned(),
                            position: i,
                        });
                    }
                }
                i += 3;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    Ok(match String::from_utf8(out) {
        Ok(s) => s,
        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
    })
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pairs verified against OpenJDK 17 `URLEncoder.encode(s, UTF_8)` (reference §1.6).
    const TABLE: &[(&str, &str)] = &[
        ("", ""),
        ("abcXYZ019", "abcXYZ019"),
        (".-*_", ".-*_"),
        (" ", "+"),
        (":", "%3A"),
        ("/", "%2F"),
        ("?", "%3F"),
        ("=", "%3D"),
        ("&", "%26"),
        (",", "%2C"),
        ("~", "%7E"),
        ("!", "%21"),
        ("+", "%2B"),
        ("%", "%25"),
        ("é", "%C3%A9"),
        ("中", "%E4%B8%AD"),
        ("😀", "%F0%9F%98%80"),
        ("://", "%3A%2F%2F"),
        (
            "dubbo://10.0.0.5:20880/com.acme.Echo?a=1&b=x y",
            "dubbo%3A%2F%2F10.0.0.5%3A20880%2Fcom.acme.Echo%3Fa%3D1%26b%3Dx+y",
        ),
    ];

    #[test]
    fn encode_matches_java_table() {
        for (plain, encoded) in TABLE {
            assert_eq!(encode(plain), *encoded, "encode({plain:?})");
            assert_eq!(decode(encoded).unwrap(), *plain, "decode({encoded:?})");
        }
    }

    #[test]
    fn decode_accepts_lower_case_hex_and_plus() {
        assert_eq!(decode("%3a%2f%2f").unwrap(), "://");
        assert_eq!(decode("a+b").unwrap(), "a b");
        assert_eq!(decode("%7e~").unwrap(), "~~");
    }

    #[test]
    fn decode_rejects_bad_escapes_and_says_where() {
        for (text, position) in [("%", 0), ("ab%4", 2), ("%zz", 0), ("x%G1", 1), ("%4%41", 0)] {
            assert_eq!(
                decode(text),
                Err(Error::InvalidEscape {
                    text: text.to_owned(),
                    position
                }),
                "{text:?}"
            );
        }
    }

    #[test]
    fn decode_replaces_invalid_utf8_like_java() {
        assert_eq!(decode("a%FFb").unwrap(), "a\u{FFFD}b");
    }
}

//! Property tests: round trips of encode/decode and parse/format, and no panics on any input.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Test code: a failure should panic.

use dubbo_url::{Url, decode, encode};
use proptest::prelude::*;

fn host() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z][a-z0-9-]{0,12}(\\.[a-z][a-z0-9-]{0,8}){0,2}",
        (0u8..=255, 0u8..=255, 0u8..=255, 0u8..=255)
            .prop_map(|(a, b, c, d)| format!("{a}.{b}.{c}.{d}")),
        any::<[u16; 8]>().prop_map(|s| format!("[{}]", std::net::Ipv6Addr::from(s))),
    ]
}

fn url() -> impl Strategy<Value = Url> {
    let key = "[a-zA-Z][a-zA-Z0-9._-]{0,10}";
    // Values: anything but the separators `&` `;` and leading/trailing white space, which Java
    // trims when writing. Non-ASCII letters included.
    let value = "([a-zA-Z0-9é中]([a-zA-Z0-9:/,.*=?#@%~ é中-]{0,12}[a-zA-Z0-9é中])?)?";
    (
        "[a-z][a-z0-9+.-]{0,8}",
        prop_oneof![
            Just((String::new(), String::new())),
            ("[a-z]{1,6}", "[a-zA-Z0-9]{0,6}")
        ],
        host(),
        any::<u16>(),
        "([a-zA-Z0-9._-]{1,10}(/[a-zA-Z0-9._-]{1,10}){0,2})?",
        prop::collection::btree_map(key, value, 0..12),
    )
        .prop_map(|(protocol, (user, pass), host, port, path, params)| {
            let mut builder = Url::builder(protocol)
                .userinfo(user, pass)
                .host(host)
                .port(port)
                .path(path);
            for (k, v) in params {
                // `default.X` parses into an extra `X`, so it is not an identity; leave it out.
                if !k.starts_with("default.") {
                    builder = builder.param(k, v);
                }
            }
            builder.build().expect("generated URLs are representable")
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn encode_decode_round_trip(text in any::<String>()) {
        prop_assert_eq!(decode(&encode(&text)).unwrap(), text);
    }

    #[test]
    fn encoding_uses_only_the_java_alphabet(text in any::<String>()) {
        let encoded = encode(&text);
        prop_assert!(encoded.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-*+%".contains(&b)));
    }

    #[test]
    fn parse_format_round_trip(url in url()) {
        let full = url.to_full_string();
        let back = Url::parse(&full).unwrap();
        prop_assert_eq!(&back, &url);
        prop_assert_eq!(back.to_full_string(), full);
    }

    #[test]
    fn encoded_form_round_trip(url in url()) {
        let back = Url::parse(&url.to_encoded_string()).unwrap();
        prop_assert_eq!(back, url);
    }

    #[test]
    fn parsing_arbitrary_strings_never_panics(text in any::<String>()) {
        let _ = Url::parse(&text);
        let _ = Url::parse_encoded(&text);
        let _ = decode(&text);
    }

    #[test]
    fn parsing_url_like_strings_never_panics(text in "[a-z:/@\\[\\]%0-9A-F?&;=#,.]{0,40}") {
        if let Ok(url) = Url::parse(&text) {
            // Whatever parses formats without panicking and reads back as the same URL.
            let again = Url::parse(&url.to_full_string());
            prop_assert!(again.is_ok(), "{:?} -> {:?}", text, url.to_full_string());
        }
    }
}

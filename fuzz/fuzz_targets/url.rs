//! Dubbo URLs: both forms, the decoder, and the round trip (what is parsed is written back
//! as text that parses to the same URL).
#![no_main]

use dubbo_url::Url;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = dubbo_url::decode(text);
    let _ = Url::parse_encoded(text);
    let _ = Url::parse_decoded(text);
    if let Ok(url) = Url::parse(text) {
        let full = url.to_full_string();
        // The full string is the decoded form. (`parse` would guess the form: text without a
        // literal `://` but with `%3A%2F%2F` reads as the encoded form, so a protocol-less
        // URL whose host or path holds that sequence reads differently; see docs/url.md.)
        let again = Url::parse_decoded(&full)
            .unwrap_or_else(|e| panic!("{text:?} parsed, its full string {full:?} does not: {e}"));
        assert_eq!(again, url, "{text:?} -> {full:?}");
        let encoded = url.to_encoded_string();
        // Read as the encoded form explicitly: `parse` recognises it only by an encoded
        // `://`, which a URL without a protocol lacks.
        let back = Url::parse_encoded(&encoded)
            .unwrap_or_else(|e| panic!("{text:?}: encoded form {encoded:?} does not parse: {e}"));
        assert_eq!(back, url, "{text:?} -> {encoded:?}");
    }
});

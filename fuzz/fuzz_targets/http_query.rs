//! HTTP registry query strings and instances in request paths, as any client may send them.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        srpc_registry_http::fuzzing::query_and_instance(text);
    }
});

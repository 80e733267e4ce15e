//! The local cache file (`file=`): Java properties, then service keys and URLs.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    srpc_registry_kit::fuzzing::read_cache_file(data);
});

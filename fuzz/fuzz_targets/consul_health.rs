//! Consul health answers (`GET /v1/health/service/<name>`) and the entries in them.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    srpc_registry_consul::fuzzing::health_answer(data);
});

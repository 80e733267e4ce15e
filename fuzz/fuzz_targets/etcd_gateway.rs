//! etcd gateway answers (watch streams, ranges, leases, errors) and the keys in them, as a
//! server (or whatever answers on its address) may send them.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    srpc_registry_etcd::fuzzing::gateway_answer(data);
});

//! HTTP registry bodies: what the server reads from clients and clients read from servers.
#![no_main]

use libfuzzer_sys::fuzz_target;
use srpc_registry_http::api;

fuzz_target!(|data: &[u8]| {
    let _ = serde_json::from_slice::<api::RegisterRequest>(data);
    let _ = serde_json::from_slice::<api::InstanceRequest>(data);
    let _ = serde_json::from_slice::<api::RegisterResponse>(data);
    let _ = serde_json::from_slice::<api::ServiceResponse>(data);
    let _ = serde_json::from_slice::<api::InstancesResponse>(data);
    let _ = serde_json::from_slice::<api::ServicesResponse>(data);
    let _ = serde_json::from_slice::<api::ErrorResponse>(data);
});

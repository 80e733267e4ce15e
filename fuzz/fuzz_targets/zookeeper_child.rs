//! ZooKeeper child names and node data (Dubbo's and rpcx's layouts), as any client with
//! write access to the ensemble may create them.
#![no_main]

use libfuzzer_sys::fuzz_target;
use srpc_registry_kit::layout;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut parts = text.splitn(3, '\u{0}');
    let name = parts.next().unwrap_or_default();
    let dir = parts.next().unwrap_or("com.acme.Echo");
    let metadata = parts.next().unwrap_or_default();
    let _ = layout::parse_dubbo_name(name, dir);
    let _ = layout::parse_rpcx_entry(dir, name, metadata);
});

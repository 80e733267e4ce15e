//! mDNS datagrams and the TXT records in them, as any host on the link may send.
#![no_main]

use std::net::{IpAddr, Ipv4Addr};

use libfuzzer_sys::fuzz_target;
use srpc_registry_mdns::{record, wire};

fuzz_target!(|data: &[u8]| {
    let _ = wire::parse(data);
    // TXT strings: `key=value` or a bare key, as the record reader gets them.
    let txt: Vec<(String, Option<String>)> = data
        .split(|b| *b == 0)
        .map(|part| {
            let text = String::from_utf8_lossy(part);
            match text.split_once('=') {
                Some((k, v)) => (k.to_owned(), Some(v.to_owned())),
                None => (text.into_owned(), None),
            }
        })
        .collect();
    let port = u16::from_le_bytes([data.first().copied().unwrap_or(0), data.get(1).copied().unwrap_or(0)]);
    let _ = record::url_of("instance", &[IpAddr::V4(Ipv4Addr::LOCALHOST)], port, &txt);
});

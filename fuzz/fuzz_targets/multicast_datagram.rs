//! Multicast registry datagrams (Dubbo's wire protocol), as any host on the group may send.
#![no_main]

use libfuzzer_sys::fuzz_target;
use srpc_registry_multicast::wire::Message;

fuzz_target!(|data: &[u8]| {
    if let Ok(message) = Message::decode(data) {
        // What is accepted is sent on unchanged: it must decode again to the same message.
        let again = Message::decode(&message.encode()).expect("an encoded message decodes");
        assert_eq!(again.url(), message.url());
    }
});

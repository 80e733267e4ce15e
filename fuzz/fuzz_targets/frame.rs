//! srpc-core frames as they come off a connection.
#![no_main]

use libfuzzer_sys::fuzz_target;
use srpc_core::frame::Frame;

fuzz_target!(|data: &[u8]| {
    let _ = Frame::decode(data);
    let _ = Frame::decode_owned(data.to_vec());
});

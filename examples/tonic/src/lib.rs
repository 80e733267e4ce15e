//! The generated code of `proto/greeter.proto`, shared by the `provider` and `consumer`
//! examples:
//!
//! ```text
//! srpc demo --serve                       # prints "registry: http://127.0.0.1:PORT"
//! cargo run -p srpc-example-tonic --bin provider -- http://127.0.0.1:PORT one
//! cargo run -p srpc-example-tonic --bin provider -- http://127.0.0.1:PORT two
//! cargo run -p srpc-example-tonic --bin consumer -- http://127.0.0.1:PORT
//! ```

/// `helloworld.Greeter`: messages, client and server.
#[allow(missing_docs, unreachable_pub, clippy::all, clippy::pedantic)]
pub mod helloworld {
    tonic::include_proto!("helloworld");
}

//! Feeds a registry subscription to `tower::balance::p2c::Balance`: two srpc servers register
//! with an in-process registry, and the balancer spreads calls by load.
//!
//! `cargo run -p srpc-xclient --features tower --example tower_p2c`

#![allow(clippy::print_stdout)] // An example prints what it does.

use std::time::Duration;

use srpc_core::{ClientOptions, HandlerError, Server};
use srpc_registry::{Registry, Url};
use srpc_xclient::tower::{RpcRequest, discover};
use tower::balance::p2c::Balance;
use tower::{Service, ServiceExt};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let registry = srpc_registry_inprocess::open("tower-example");
    let mut servers = Vec::new();
    for name in ["left", "right"] {
        let server = Server::new()
            .handle("Echo.Name", move |(): ()| async move {
                Ok::<_, HandlerError>(name.to_owned())
            })
            .bind("127.0.0.1:0")
            .await?;
        registry
            .register(&Url::parse(&format!(
                "srpc://{}/Echo",
                server.local_addr()
            ))?)
            .await?;
        servers.push(server);
    }
    let providers = registry
        .subscribe(&Url::parse("consumer://127.0.0.1/Echo")?)
        .await?;
    let discover =
        discover::<(), String>(providers, ClientOptions::default(), Duration::from_secs(1));
    let mut balance = Balance::new(discover);
    for _ in 0..6 {
        let name = balance
            .ready()
            .await?
            .call(RpcRequest::new("Echo.Name", ()))
            .await?;
        println!("answered by {name}");
    }
    for server in servers {
        server.shutdown().await?;
    }
    Ok(())
}

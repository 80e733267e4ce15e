//! A tonic-generated client over `srpc::tonic::BalancedChannel`: every call goes to the
//! `helloworld.Greeter` provider srpc's round-robin picks among those the registry lists now.
//!
//! `consumer REGISTRY_URL [CALLS]`: makes CALLS calls (default 10), one a second, and prints
//! who answered; start and stop providers meanwhile to watch it follow them.

#![allow(clippy::print_stdout)] // An example prints what it does.

use std::time::Duration;

use srpc::tonic::{BalanceOptions, BalancedChannel};
use srpc::url::Url;
use srpc::xclient::Selector;
use srpc_example_tonic::helloworld::HelloRequest;
use srpc_example_tonic::helloworld::greeter_client::GreeterClient;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let registry_url = args.next().ok_or("usage: consumer REGISTRY_URL [CALLS]")?;
    let calls: usize = args.next().map_or(Ok(10), |n| n.parse())?;

    let registry = srpc::registry::connect(&registry_url).await?;
    let query = Url::parse("consumer://127.0.0.1/helloworld.Greeter")?;
    let channel = BalancedChannel::new(
        registry.subscribe(&query).await?,
        BalanceOptions::default().with_selector(Selector::RoundRobin),
    );
    channel
        .xclient()
        .wait_for_endpoints(|e| !e.list().is_empty(), Duration::from_secs(5))
        .await
        .map_err(|e| {
            format!("no helloworld.Greeter provider ({e}): start one with the provider example")
        })?;
    let mut client = GreeterClient::new(channel);
    for i in 0..calls {
        let request = HelloRequest {
            name: format!("call {i}"),
        };
        match client.say_hello(request).await {
            Ok(reply) => println!("{}", reply.into_inner().message),
            Err(status) => println!("call {i} failed: {status}"),
        }
        if i + 1 < calls {
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
    registry.close().await?;
    Ok(())
}

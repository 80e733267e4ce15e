//! The `tower` adapter: a registry subscription feeding `tower::balance::p2c::Balance`.
#![cfg(feature = "tower")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Test code: failures panic.

use std::collections::HashSet;
use std::time::Duration;

use srpc_core::{ClientOptions, HandlerError, Server};
use srpc_registry::{Registry, Url};
use srpc_xclient::tower::{RpcRequest, discover};
use tower::balance::p2c::Balance;
use tower::{Service, ServiceExt};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn p2c_balances_over_discovered_endpoints_and_follows_removals() {
    let registry = srpc_registry_inprocess::open("tower-test");
    let mut urls = Vec::new();
    let mut servers = Vec::new();
    for name in ["left", "right"] {
        let server = Server::new()
            .handle("Echo.Name", move |(): ()| async move {
                Ok::<_, HandlerError>(name.to_owned())
            })
            .bind("127.0.0.1:0")
            .await
            .unwrap();
        let url = Url::parse(&format!("srpc://{}/Echo", server.local_addr())).unwrap();
        registry.register(&url).await.unwrap();
        urls.push(url);
        servers.push(server);
    }
    let providers = registry
        .subscribe(&Url::parse("consumer://127.0.0.1/Echo").unwrap())
        .await
        .unwrap();
    let mut balance = Balance::new(discover::<(), String>(
        providers,
        ClientOptions::default(),
        Duration::from_secs(1),
    ));

    let mut seen = HashSet::new();
    for _ in 0..200 {
        seen.insert(
            balance
                .ready()
                .await
                .unwrap()
                .call(RpcRequest::new("Echo.Name", ()))
                .await
                .unwrap(),
        );
        if seen.len() == 2 {
            break;
        }
    }
    assert_eq!(seen.len(), 2, "both endpoints serve: {seen:?}");

    // "left" leaves the registry: the balancer stops using it.
    registry.unregister(&urls[0]).await.unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let mut streak = 0;
    while streak < 50 {
        assert!(
            std::time::Instant::now() < deadline,
            "the removed endpoint kept serving"
        );
        let name: String = balance
            .ready()
            .await
            .unwrap()
            .call(RpcRequest::new("Echo.Name", ()))
            .await
            .unwrap();
        streak = if name == "right" { streak + 1 } else { 0 };
    }
}

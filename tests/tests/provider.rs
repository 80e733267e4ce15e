//! The provider helper's order: it registers only once it accepts connections, and at
//! shutdown it leaves the registry before its listener closes, so a consumer never holds a
//! provider that refuses it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Test code: failures panic.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use srpc::provider::{Provider, Service};
use srpc::rpc::{HandlerError, Server};
use srpc::xclient::{Discovery, Options, XClient};
use srpc_registry::Url;

const DEADLINE: Duration = Duration::from_secs(10);

fn echo_server() -> Server {
    Server::new()
        .handle("com.acme.Echo.echo", |text: String| async move {
            Ok::<_, HandlerError>(text)
        })
        .handle("com.acme.Echo.ping", |(): ()| async move {
            Ok::<_, HandlerError>("pong".to_owned())
        })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_never_sees_the_provider_after_its_listener_closes() {
    let hub = format!("inprocess://provider-order-{}", std::process::id());
    let registry = srpc::registry::connect(&hub).await.unwrap();
    let consumer = srpc::registry::connect(&hub).await.unwrap();
    let query = Url::parse("consumer://127.0.0.1/com.acme.Echo?version=1.0").unwrap();
    let mut subscription = consumer.subscribe(&query).await.unwrap();

    let running = Provider::new(echo_server(), Service::new("com.acme.Echo").version("1.0"))
        .grace(Duration::from_millis(300))
        .serve(&registry, "127.0.0.1:0")
        .await
        .unwrap();
    let url = running.url().clone();
    assert_eq!(url.protocol(), "srpc");
    assert_eq!(url.param("methods"), Some("echo,ping"));
    assert_eq!(url.port(), running.local_addr().port());

    // Registered only once listening: the first snapshot that has it can be called.
    let snapshot = subscription
        .wait_for(|s| !s.providers().is_empty(), DEADLINE)
        .await
        .unwrap();
    assert_eq!(snapshot.providers(), std::slice::from_ref(&url));
    let xclient = XClient::new(
        Discovery::subscription(consumer.subscribe(&query).await.unwrap()),
        Options::default(),
    );
    xclient
        .wait_for_endpoints(|e| e.list().len() == 1, DEADLINE)
        .await
        .unwrap();
    let reply: String = xclient.call("com.acme.Echo.echo", "hi").await.unwrap();
    assert_eq!(reply, "hi");

    // Record when the consumer saw it leave, and when the listener first refused.
    let left: Arc<Mutex<Option<Instant>>> = Arc::default();
    let watcher = tokio::spawn({
        let left = left.clone();
        async move {
            subscription
                .wait_for(|s| s.providers().is_empty(), DEADLINE)
                .await
                .unwrap();
            *left.lock().unwrap() = Some(Instant::now());
        }
    });
    let addr = running.local_addr();
    let refused = tokio::spawn(async move {
        let until = Instant::now() + DEADLINE;
        while Instant::now() < until {
            if tokio::net::TcpStream::connect(addr).await.is_err() {
                return Instant::now();
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        panic!("the listener never closed");
    });
    running.shutdown().await.unwrap();
    watcher.await.unwrap();
    let refused = refused.await.unwrap();
    let left = left.lock().unwrap().expect("the consumer saw it leave");
    assert!(
        left < refused,
        "the consumer saw the provider leave {:?} after the listener refused",
        left - refused
    );
    registry.close().await.unwrap();
    consumer.close().await.unwrap();
}

#[tokio::test]
async fn a_provider_refuses_what_consumers_could_not_use() {
    let registry = srpc::registry::connect("inprocess://provider-refusals")
        .await
        .unwrap();
    // (Binding 0.0.0.0 without an address to advertise is refused too: a unit test of the
    // facade's provider module covers it, so that no test listens beyond loopback.)
    // A service the server has no handler for.
    let error = Provider::new(echo_server(), Service::new("com.acme.Other"))
        .serve(&registry, "127.0.0.1:0")
        .await
        .unwrap_err();
    assert!(
        error.to_string().contains("com.acme.Other.method"),
        "{error}"
    );
    registry.close().await.unwrap();
}

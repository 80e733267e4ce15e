//! Dubbo's `jsonrpc` protocol against a third-party JSON-RPC 2.0 server (Python's standard
//! library `http.server`, `python/jsonrpc_peer.py`): two providers registered as
//! `jsonrpc://` are discovered and called through the XClient, with failover between them.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Test code: failures panic.

use std::collections::BTreeSet;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use srpc::rpc::{Error as RpcError, RemoteCode};
use srpc::xclient::jsonrpc::JsonRpcTransport;
use srpc::xclient::{CallOptions, Discovery, Error, FailMode, Options, Selector, XClient};
use srpc_registry::Url;
use srpc_tests::peer::Peer;

const SERVICE: &str = "com.acme.Echo";
const DEADLINE: Duration = Duration::from_secs(20);

async fn provider(name: &str) -> (Peer, u16) {
    let mut command = Command::new("python3");
    command.args([
        concat!(env!("CARGO_MANIFEST_DIR"), "/python/jsonrpc_peer.py"),
        name,
        SERVICE,
    ]);
    let mut peer = Peer::spawn(&format!("jsonrpc peer {name}"), command);
    let line = peer
        .wait_line(DEADLINE, "its port", |l| l.starts_with("listening "))
        .await;
    let port = line["listening ".len()..].trim().parse().unwrap();
    (peer, port)
}

fn provider_url(port: u16) -> Url {
    Url::parse(&format!(
        "jsonrpc://127.0.0.1:{port}/{SERVICE}?interface={SERVICE}&side=provider\
         &methods=echo,add,who,fail,connections"
    ))
    .unwrap()
}

#[tokio::test]
async fn jsonrpc_providers_are_called_with_failover() {
    let hub = format!("inprocess://jsonrpc-{}", std::process::id());
    let registry = srpc::registry::connect(&hub).await.unwrap();
    let (a, port_a) = provider("a").await;
    let (_b, port_b) = provider("b").await;
    for port in [port_a, port_b] {
        registry.register(&provider_url(port)).await.unwrap();
    }
    // An srpc XClient with the jsonrpc transport, following a subscription.
    let consumer = srpc::registry::connect(&hub).await.unwrap();
    let subscription = consumer
        .subscribe(&Url::parse(&format!("consumer://127.0.0.1/{SERVICE}")).unwrap())
        .await
        .unwrap();
    let x = XClient::new(
        Discovery::subscription(subscription),
        Options::default()
            .with_transport(Arc::new(JsonRpcTransport::new().unwrap()))
            .with_selector(Selector::RoundRobin)
            .with_fail_mode(FailMode::Failover, 1)
            .with_timeout(Duration::from_secs(5)),
    );
    x.wait_for_endpoints(|e| e.list().len() == 2, DEADLINE)
        .await
        .unwrap();

    // Positional parameters, results, the spread.
    let echoed: String = x.call("com.acme.Echo.echo", "hi").await.unwrap();
    assert_eq!(echoed, "hi");
    let sum: i64 = x.call("com.acme.Echo.add", &(40, 2)).await.unwrap();
    assert_eq!(sum, 42);
    let mut names = BTreeSet::new();
    for _ in 0..40 {
        let who: String = x.call("com.acme.Echo.who", &()).await.unwrap();
        names.insert(who);
    }
    assert_eq!(names.into_iter().collect::<Vec<_>>(), ["a", "b"]);

    // Error objects: an application error is not retried; an unknown method is NotFound.
    let error = x
        .call::<_, ()>("com.acme.Echo.fail", &())
        .await
        .unwrap_err();
    assert_eq!(error.attempts(), 1, "{error}");
    match error.source_error() {
        Some(RpcError::Remote { code, message, .. }) => {
            assert_eq!(*code, RemoteCode::Handler);
            assert!(
                message.contains("boom") && message.contains("-32000"),
                "{message}"
            );
        }
        other => panic!("{other:?}"),
    }
    let error = x
        .call::<_, ()>("com.acme.Echo.nope", &())
        .await
        .unwrap_err();
    assert!(
        matches!(
            error.source_error(),
            Some(RpcError::Remote {
                code: RemoteCode::NotFound,
                ..
            })
        ),
        "{error}"
    );

    // Metadata travels as HTTP headers.
    let tenant: Option<String> = x
        .call_with(
            "com.acme.Echo.header",
            "tenant",
            &CallOptions::default()
                .with_metadata(srpc::rpc::Metadata::new().with("tenant", "acme").unwrap()),
        )
        .await
        .unwrap();
    assert_eq!(tenant.as_deref(), Some("acme"));

    // A call past its deadline: Timeout, not retried on the other provider.
    let error = x
        .call_with::<_, String>(
            "com.acme.Echo.slow",
            &(3_000,),
            &CallOptions::default().with_timeout(Duration::from_millis(200)),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(error.source_error(), Some(RpcError::Timeout { .. })),
        "{error}"
    );
    assert_eq!(error.attempts(), 1, "{error}");

    // Keep-alive: 40 sequential calls above went over one or two connections per provider.
    let connections: Vec<usize> = x.broadcast("com.acme.Echo.connections", &()).await.unwrap();
    assert!(
        connections.iter().all(|n| *n <= 2),
        "connections per provider: {connections:?}"
    );

    // Provider a dies without unregistering: every call still succeeds, on b.
    drop(a);
    for _ in 0..20 {
        let who: String = x.call("com.acme.Echo.who", &()).await.unwrap();
        assert_eq!(who, "b");
    }
    // Failfast has no such luck: some call meets the dead provider and says where.
    let failfast = XClient::new(
        Discovery::servers([provider_url(port_a).to_string().as_str()])
            .unwrap()
            .0,
        Options::default().with_transport(Arc::new(JsonRpcTransport::new().unwrap())),
    );
    let error = failfast
        .call::<_, String>("com.acme.Echo.who", &())
        .await
        .unwrap_err();
    assert!(
        matches!(error.source_error(), Some(RpcError::Connect { .. })),
        "{error}"
    );
    assert!(matches!(error, Error::Call { .. }));
    registry.close().await.unwrap();
    consumer.close().await.unwrap();
}

/// HTTP/1.1 carries one call per connection: a burst of calls to one provider puts at most
/// `max_in_flight` on the wire (and opens at most that many connections), the rest wait
/// their turn and all succeed; a call whose deadline ends while it waits times out.
#[tokio::test]
async fn calls_on_the_wire_to_one_provider_are_bounded() {
    let (_peer, port) = provider("bounded").await;
    let client = |transport: JsonRpcTransport| {
        XClient::new(
            Discovery::servers([provider_url(port).to_string().as_str()])
                .unwrap()
                .0,
            Options::default().with_transport(Arc::new(transport)),
        )
    };
    let x = client(JsonRpcTransport::new().unwrap().with_max_in_flight(2));
    // Another client of the same provider, unbounded, to look at it meanwhile.
    let observer = client(JsonRpcTransport::new().unwrap());
    let burst = futures_util::future::join_all(
        (0..8).map(|_| x.call::<_, String>("com.acme.Echo.slow", &(100,))),
    )
    .await;
    for reply in burst {
        assert_eq!(reply.unwrap(), "bounded");
    }
    let peak: usize = observer.call("com.acme.Echo.slow_peak", &()).await.unwrap();
    assert_eq!(peak, 2, "8 calls at once, at most 2 on the wire");
    let connections: usize = observer
        .call("com.acme.Echo.connections", &())
        .await
        .unwrap();
    assert!(
        connections <= 3,
        "2 connections for the bounded client and 1 for the observer, not {connections}"
    );

    // Both turns taken by slow calls (seen running on the provider): a third call with a
    // short deadline waits, then times out without reaching the provider.
    let slow = || x.call::<_, String>("com.acme.Echo.slow", &(3_000,));
    let (first, second, waiting) = tokio::join!(slow(), slow(), async {
        let deadline = tokio::time::Instant::now() + DEADLINE;
        loop {
            let running: usize = observer.call("com.acme.Echo.slow_now", &()).await.unwrap();
            if running == 2 {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{running} slow calls run"
            );
            tokio::task::yield_now().await;
        }
        x.call_with::<_, String>(
            "com.acme.Echo.who",
            &(),
            &CallOptions::default().with_timeout(Duration::from_millis(200)),
        )
        .await
    });
    assert_eq!(first.unwrap(), "bounded");
    assert_eq!(second.unwrap(), "bounded");
    let error = waiting.unwrap_err();
    assert!(
        matches!(error.source_error(), Some(RpcError::Timeout { .. })),
        "{error}"
    );
    assert_eq!(error.attempts(), 1, "{error}");
}

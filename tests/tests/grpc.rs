//! gRPC / Dubbo Triple through tonic, against Python grpcio servers (a third-party peer):
//! providers registered through srpc are called by a tonic-generated client over
//! `srpc_tonic::BalancedChannel`; calls spread by the selector and follow providers that
//! leave and arrive; in a mixed estate each client picks only its own protocol.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Test code: failures panic.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use srpc::rpc::{HandlerError, Server};
use srpc::xclient::{Discovery, Options, Selector, XClient};
use srpc_registry::{Registry, Url};
use srpc_tests::grpc::echo::SayRequest;
use srpc_tests::grpc::echo::echo_client::EchoClient;
use srpc_tests::grpc::{PythonStubs, SERVICE};
use srpc_tonic::{BalanceOptions, BalancedChannel, triple_url};

const DEADLINE: Duration = Duration::from_secs(20);

fn triple(port: u16) -> Url {
    triple_url(SERVICE, ["Say"])
        .application("grpc-test")
        .build(([127, 0, 0, 1], port).into())
        .unwrap()
}

async fn hub(name: &str) -> (Arc<dyn Registry>, Arc<dyn Registry>) {
    let hub = format!("inprocess://grpc-{name}-{}", std::process::id());
    (
        srpc::registry::connect(&hub).await.unwrap(),
        srpc::registry::connect(&hub).await.unwrap(),
    )
}

async fn channel(consumer: &Arc<dyn Registry>, options: BalanceOptions) -> BalancedChannel {
    let query = Url::parse(&format!("consumer://127.0.0.1/{SERVICE}")).unwrap();
    BalancedChannel::new(consumer.subscribe(&query).await.unwrap(), options)
}

async fn wait_for(channel: &BalancedChannel, n: usize) {
    channel
        .xclient()
        .wait_for_endpoints(|e| e.list().len() == n, DEADLINE)
        .await
        .unwrap();
}

/// Who answered `calls` calls, by name.
async fn answers(
    client: &mut EchoClient<BalancedChannel>,
    calls: usize,
) -> BTreeMap<String, usize> {
    let mut seen = BTreeMap::new();
    for i in 0..calls {
        let reply = client
            .say(SayRequest {
                text: format!("hi {i}"),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(reply.text, format!("hi {i}"));
        *seen.entry(reply.server).or_insert(0) += 1;
    }
    seen
}

#[tokio::test]
async fn grpcio_providers_are_balanced_and_followed_as_they_leave_and_arrive() {
    let stubs = PythonStubs::generate();
    let (provider, consumer) = hub("follow").await;
    let (_a, port_a) = stubs.serve("a").await;
    let (_b, port_b) = stubs.serve("b").await;
    for port in [port_a, port_b] {
        provider.register(&triple(port)).await.unwrap();
    }
    let channel = channel(
        &consumer,
        BalanceOptions::default().with_selector(Selector::RoundRobin),
    )
    .await;
    wait_for(&channel, 2).await;
    let mut client = EchoClient::new(channel.clone());
    let seen = answers(&mut client, 20).await;
    assert_eq!(
        seen,
        BTreeMap::from([("a".to_owned(), 10), ("b".to_owned(), 10)]),
        "round-robin spreads evenly"
    );
    // One HTTP/2 connection per provider, kept.
    for endpoint in channel.xclient().endpoints().list() {
        assert_eq!(endpoint.connections_opened(), 1, "{}", endpoint.addr());
    }

    // a leaves: no call reaches it.
    provider.unregister(&triple(port_a)).await.unwrap();
    wait_for(&channel, 1).await;
    assert_eq!(
        answers(&mut client, 10).await,
        BTreeMap::from([("b".to_owned(), 10)])
    );

    // c arrives: calls reach it.
    let (_c, port_c) = stubs.serve("c").await;
    provider.register(&triple(port_c)).await.unwrap();
    wait_for(&channel, 2).await;
    let seen = answers(&mut client, 10).await;
    assert_eq!(seen.get("c"), Some(&5), "{seen:?}");
    assert_eq!(seen.get("a"), None, "{seen:?}");
    provider.close().await.unwrap();
    consumer.close().await.unwrap();
}

#[tokio::test]
async fn weighted_and_consistent_hash_selectors_hold_over_grpc() {
    let stubs = PythonStubs::generate();
    let (provider, consumer) = hub("selectors").await;
    let (_a, port_a) = stubs.serve("a").await;
    let (_b, port_b) = stubs.serve("b").await;
    let heavy = triple_url(SERVICE, ["Say"])
        .weight(300)
        .build(([127, 0, 0, 1], port_a).into())
        .unwrap();
    provider.register(&heavy).await.unwrap();
    provider.register(&triple(port_b)).await.unwrap();

    let weighted = channel(
        &consumer,
        BalanceOptions::default().with_selector(Selector::WeightedRoundRobin),
    )
    .await;
    wait_for(&weighted, 2).await;
    let seen = answers(&mut EchoClient::new(weighted), 40).await;
    assert_eq!(
        seen,
        BTreeMap::from([("a".to_owned(), 30), ("b".to_owned(), 10)]),
        "weight 300 against the default 100"
    );

    let header = http::HeaderName::from_static("x-user");
    let hashed = channel(
        &consumer,
        BalanceOptions::default()
            .with_selector(Selector::ConsistentHash)
            .with_hash_header(header.clone()),
    )
    .await;
    wait_for(&hashed, 2).await;
    let mut client = EchoClient::new(hashed);
    let mut owners = BTreeMap::new();
    for user in 0..16 {
        for _ in 0..4 {
            let mut request = tonic::Request::new(SayRequest { text: "k".into() });
            request
                .metadata_mut()
                .insert("x-user", format!("user-{user}").parse().unwrap());
            let server = client.say(request).await.unwrap().into_inner().server;
            let owner = owners.entry(user).or_insert_with(|| server.clone());
            assert_eq!(*owner, server, "user-{user} moved between calls");
        }
    }
    let distinct: std::collections::BTreeSet<_> = owners.values().collect();
    assert_eq!(
        distinct.len(),
        2,
        "16 keys land on both providers: {owners:?}"
    );
    provider.close().await.unwrap();
    consumer.close().await.unwrap();
}

#[tokio::test]
async fn in_a_mixed_estate_each_client_picks_only_its_protocol() {
    let stubs = PythonStubs::generate();
    let (provider, consumer) = hub("mixed").await;
    let (_a, port_a) = stubs.serve("a").await;
    let srpc_server = Server::new()
        .handle("srpc.test.Echo.Say", |text: String| async move {
            Ok::<_, HandlerError>(format!("srpc says {text}"))
        })
        .bind("127.0.0.1:0")
        .await
        .unwrap();
    let srpc_url = Url::parse(&format!(
        "srpc://{}/{SERVICE}?interface={SERVICE}&side=provider",
        srpc_server.local_addr()
    ))
    .unwrap();
    let dubbo_url = Url::parse(&format!(
        "dubbo://127.0.0.1:20880/{SERVICE}?interface={SERVICE}&side=provider"
    ))
    .unwrap();
    for url in [&triple(port_a), &srpc_url, &dubbo_url] {
        provider.register(url).await.unwrap();
    }
    let query = Url::parse(&format!("consumer://127.0.0.1/{SERVICE}")).unwrap();

    // The srpc XClient: only the srpc endpoint.
    let xclient = XClient::new(
        Discovery::subscription(consumer.subscribe(&query).await.unwrap()),
        Options::default(),
    );
    xclient
        .wait_for_endpoints(
            |e| e.list().len() == 1 && e.uncallable().len() == 2,
            DEADLINE,
        )
        .await
        .unwrap();
    for _ in 0..10 {
        let reply: String = xclient.call(&format!("{SERVICE}.Say"), "x").await.unwrap();
        assert_eq!(reply, "srpc says x");
    }

    // The tonic channel: only the tri endpoint.
    let channel = channel(&consumer, BalanceOptions::default()).await;
    wait_for(&channel, 1).await;
    assert_eq!(
        channel.xclient().endpoints().uncallable(),
        [("dubbo".to_owned(), 1), ("srpc".to_owned(), 1)]
    );
    assert_eq!(
        answers(&mut EchoClient::new(channel), 10).await,
        BTreeMap::from([("a".to_owned(), 10)])
    );

    // Without the tri provider, the channel says what it found.
    provider.unregister(&triple(port_a)).await.unwrap();
    let channel = self::channel(&consumer, BalanceOptions::default()).await;
    channel
        .xclient()
        .wait_for_endpoints(
            |e| e.list().is_empty() && e.uncallable().len() == 2,
            DEADLINE,
        )
        .await
        .unwrap();
    let status = EchoClient::new(channel)
        .say(SayRequest { text: "x".into() })
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
    assert!(
        status.message().starts_with(
            "2 providers of srpc.test.Echo, 1 `dubbo://`, 1 `srpc://`: this XClient calls tri, grpc"
        ),
        "{status:?}"
    );
    srpc_server.shutdown().await.unwrap();
    provider.close().await.unwrap();
    consumer.close().await.unwrap();
}

/// A grpcio provider registered with `tls=true`, asking for client certificates: the channel
/// dials it over TLS with its `with_tls` settings, and says what is missing when it has none.
#[tokio::test]
async fn tls_providers_are_dialled_over_tls_with_the_channel_settings() {
    use tonic::transport::{Certificate, ClientTlsConfig, Identity};

    let stubs = PythonStubs::generate();
    let pki = srpc_tests::tls::TestPki::generate();
    let (provider, consumer) = hub("tls").await;
    let (_secure, port) = stubs
        .serve_tls("secure", &pki.server(), Some(&pki.ca()))
        .await;
    let mut url = triple(port);
    url.set_param("tls", "true");
    provider.register(&url).await.unwrap();
    let pem = |path: std::path::PathBuf| std::fs::read(path).unwrap();
    let trusted = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(pem(pki.ca())));
    let client = pki.client();
    let identity = Identity::from_pem(pem(client.cert), pem(client.key));

    // CA and client identity: every call answered, over TLS.
    let channel = channel(
        &consumer,
        BalanceOptions::default().with_tls(trusted.clone().identity(identity)),
    )
    .await;
    wait_for(&channel, 1).await;
    assert_eq!(
        answers(&mut EchoClient::new(channel), 5).await,
        BTreeMap::from([("secure".to_owned(), 5)])
    );

    let say = |options: BalanceOptions| {
        let consumer = consumer.clone();
        async move {
            let channel = self::channel(&consumer, options).await;
            wait_for(&channel, 1).await;
            EchoClient::new(channel)
                .say(SayRequest { text: "x".into() })
                .await
        }
    };
    // No TLS settings: refused before dialling, with what to give.
    let status = say(BalanceOptions::default()).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
    assert!(
        status
            .message()
            .contains("asks for TLS (tls=true): give the channel TLS settings"),
        "{status:?}"
    );
    // The right CA but no client certificate, and another CA: the handshake fails.
    say(BalanceOptions::default().with_tls(trusted))
        .await
        .unwrap_err();
    let stranger =
        ClientTlsConfig::new().ca_certificate(Certificate::from_pem(pem(pki.other_ca())));
    say(BalanceOptions::default().with_tls(stranger))
        .await
        .unwrap_err();
    provider.close().await.unwrap();
    consumer.close().await.unwrap();
}

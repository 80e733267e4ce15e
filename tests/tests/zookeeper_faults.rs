//! ZooKeeper failures: a session that expires, a server that crashes and comes back, and an
//! ensemble that loses its leader. Real servers, on loopback.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Test code: failures panic.

use std::time::Duration;

use srpc_registry::{Registry, Subscription, Url};
use srpc_registry_zookeeper::{ZookeeperRegistry, connect};
use srpc_tests::proxy::TcpProxy;
use srpc_tests::servers::{ZooKeeper, shared_zookeeper};

const DEADLINE: Duration = Duration::from_secs(30);

async fn registry(servers: &str, params: &str) -> ZookeeperRegistry {
    connect(&Url::parse(&format!("zookeeper://{servers}?{params}")).unwrap())
        .await
        .unwrap()
}

fn provider_url(port: u16) -> Url {
    Url::parse(&format!(
        "dubbo://127.0.0.1:{port}/com.acme.Faults?side=provider"
    ))
    .unwrap()
}

async fn subscribe(registry: &ZookeeperRegistry) -> Subscription {
    registry
        .subscribe(&Url::parse("consumer://127.0.0.1/com.acme.Faults").unwrap())
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs ZooKeeper: cargo xtask integration"]
async fn an_expired_session_is_replaced_and_registrations_come_back() {
    let root = format!("group=/srpc-expiry-{}", std::process::id());
    // The provider reaches ZooKeeper through a proxy the test can cut; the consumer does not.
    let proxy = TcpProxy::start(shared_zookeeper().parse().unwrap())
        .await
        .unwrap();
    let provider = registry(&proxy.addr().to_string(), &format!("{root}&session=2000")).await;
    let consumer = registry(&shared_zookeeper(), &root).await;
    let mut sub = subscribe(&consumer).await;
    provider.register(&provider_url(20920)).await.unwrap();
    sub.wait_for(|s| s.len() == 1, DEADLINE).await.unwrap();
    let before = provider.backend().session_id().unwrap();

    // A partition longer than the session timeout: the server expires the session and
    // deletes its ephemeral node, which the consumer sees truthfully.
    proxy.cut();
    sub.wait_for(|s| s.is_empty(), DEADLINE).await.unwrap();
    proxy.restore();
    // The provider learns its session expired, opens a new one and registers again.
    let s = sub.wait_for(|s| s.len() == 1, DEADLINE).await.unwrap();
    assert_eq!(s.providers()[0], provider_url(20920));
    assert_ne!(
        provider.backend().session_id().unwrap(),
        before,
        "a new session"
    );
    provider.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs ZooKeeper: cargo xtask integration"]
async fn a_server_restart_never_shows_consumers_an_empty_list() {
    let mut server = ZooKeeper::start().unwrap();
    let provider = registry(&server.address(), "session=20000").await;
    let consumer = registry(&server.address(), "session=20000").await;
    let mut sub = subscribe(&consumer).await;
    let (first, second) = (provider_url(20921), provider_url(20922));
    let server = std::cell::RefCell::new(&mut server);
    srpc_tests::restart_keeps_providers(
        &provider,
        &mut sub,
        (&first, &second),
        || server.borrow_mut().kill(),
        || server.borrow_mut().launch().unwrap(),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs ZooKeeper: cargo xtask integration"]
async fn an_ensemble_that_loses_its_leader_keeps_registrations() {
    let mut servers = ZooKeeper::ensemble(3).unwrap();
    let all: Vec<String> = servers.iter().map(ZooKeeper::address).collect();
    let connect_string = all.join(",");
    let provider = registry(&connect_string, "session=20000").await;
    let consumer = registry(&connect_string, "session=20000").await;
    let mut sub = subscribe(&consumer).await;
    provider.register(&provider_url(20923)).await.unwrap();
    sub.wait_for(|s| s.len() == 1, DEADLINE).await.unwrap();

    let leader = servers
        .iter()
        .position(ZooKeeper::is_leader)
        .expect("one server leads");
    servers[leader].kill();

    // A registration during the election: with check=false it is retried until a server
    // takes it. After the election the first registration is still there too.
    let during = provider_url(20924).with_param("check", "false");
    provider.register(&during).await.unwrap();
    let s = sub
        .wait_for(|s| s.is_connected() && s.len() == 2, DEADLINE)
        .await
        .unwrap();
    assert!(s.contains(&provider_url(20923)) && s.contains(&during));
    let looked_up = consumer
        .lookup(&Url::parse("consumer://127.0.0.1/com.acme.Faults").unwrap())
        .await
        .unwrap();
    assert_eq!(looked_up.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs ZooKeeper: cargo xtask integration"]
async fn an_ephemeral_node_of_another_session_is_replaced_not_adopted() {
    // The node a dead session left behind would vanish when that session is reaped, taking
    // the provider with it (apache/dubbo#5125); registering again must make it ours.
    let root = format!("group=/srpc-stale-{}", std::process::id());
    let old = registry(&shared_zookeeper(), &root).await;
    let new = registry(&shared_zookeeper(), &root).await;
    let url = provider_url(20925);
    let node = format!(
        "/srpc-stale-{}/com.acme.Faults/providers/{}",
        std::process::id(),
        url.to_encoded_string()
    );
    let observer = zookeeper_client::Client::connect(&shared_zookeeper())
        .await
        .unwrap();
    let owner = || async {
        observer
            .check_stat(&node)
            .await
            .unwrap()
            .unwrap()
            .ephemeral_owner
    };

    old.register(&url).await.unwrap();
    assert_eq!(owner().await, old.backend().session_id().unwrap());
    new.register(&url).await.unwrap();
    assert_eq!(
        owner().await,
        new.backend().session_id().unwrap(),
        "replaced by the registering session"
    );
    // Registering again in the owning session leaves the node alone.
    let before = observer.check_stat(&node).await.unwrap().unwrap().czxid;
    new.register(&url).await.unwrap();
    assert_eq!(
        observer.check_stat(&node).await.unwrap().unwrap().czxid,
        before,
        "no flapping"
    );
}

/// Issue 15 item 4: with `check=false`, a handle whose ensemble is unreachable at start still
/// starts (it does not fail after `timeout`); its subscription says `connected = false`, its
/// registration waits, and once the ensemble answers both catch up: the consumer sees what
/// another handle registered meanwhile, and the registration made before the session is
/// written. With `check=true` (the default) the same start fails with a clear error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs ZooKeeper: cargo xtask integration"]
async fn with_check_false_a_handle_starts_while_the_ensemble_is_unreachable() {
    let root = format!("group=/srpc-background-{}", std::process::id());
    let proxy = TcpProxy::start(shared_zookeeper().parse().unwrap())
        .await
        .unwrap();
    proxy.cut();
    let through_proxy = proxy.addr().to_string();
    let params = format!("{root}&timeout=500&retry.period=100&retry.max.period=200");

    let refused = connect(&Url::parse(&format!("zookeeper://{through_proxy}?{params}")).unwrap())
        .await
        .expect_err("check=true: an unreachable ensemble fails the start");
    assert!(
        refused.to_string().contains(&through_proxy),
        "the error names the servers: {refused}"
    );

    let late = registry(&through_proxy, &format!("{params}&check=false")).await;
    assert_eq!(late.backend().session_id(), None, "no session yet");
    let mut sub = subscribe(&late).await;
    assert!(!sub.snapshot().is_connected());
    let waiting = provider_url(20925);
    late.register(&waiting).await.unwrap();

    // Meanwhile another handle, on a working connection, registers a provider.
    let direct = registry(&shared_zookeeper(), &root).await;
    direct.register(&provider_url(20926)).await.unwrap();

    proxy.restore();
    let s = sub
        .wait_for(
            |s| s.is_connected() && s.contains(&waiting) && s.contains(&provider_url(20926)),
            DEADLINE,
        )
        .await
        .unwrap();
    assert_eq!(s.len(), 2);
    assert!(late.backend().session_id().is_some());
    late.close().await.unwrap();
    direct.close().await.unwrap();
}

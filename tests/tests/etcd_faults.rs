//! etcd failures: a server killed and restarted on its data directory, a provider cut off
//! longer than its lease, compaction while a watcher is cut off, a cluster losing its leader,
//! and authentication across a restart. Real servers of their own, on loopback.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Test code: failures panic.

use std::time::Duration;

use srpc_registry::{Error, Registry, Subscription, Url};
use srpc_registry_etcd::{EtcdRegistry, connect};
use srpc_tests::proxy::TcpProxy;
use srpc_tests::servers::{Etcd, EtcdVersion};

const DEADLINE: Duration = Duration::from_secs(30);
const VERSION: EtcdVersion = EtcdVersion::V3_4;

async fn registry(servers: &str, params: &str) -> EtcdRegistry {
    connect(&Url::parse(&format!("etcd://{servers}?{params}")).unwrap())
        .await
        .unwrap()
}

fn provider_url(port: u16) -> Url {
    Url::parse(&format!(
        "dubbo://127.0.0.1:{port}/com.acme.Faults?side=provider"
    ))
    .unwrap()
}

async fn subscribe(registry: &EtcdRegistry) -> Subscription {
    registry
        .subscribe(&Url::parse("consumer://127.0.0.1/com.acme.Faults").unwrap())
        .await
        .unwrap()
}

fn etcdctl(address: &str, args: &[&str]) -> String {
    srpc_tests::servers::etcdctl(VERSION, address, args)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs etcd: cargo xtask integration"]
async fn a_restart_on_the_same_data_loses_no_provider_and_never_empties_a_subscription() {
    let mut server = Etcd::start(VERSION).unwrap();
    let params = "session=10000&retry.max.period=1s";
    let provider = registry(&server.address(), params).await;
    let consumer = registry(&server.address(), params).await;
    let mut sub = subscribe(&consumer).await;
    let (first, second) = (provider_url(20930), provider_url(20931));
    // The lease was persisted: the provider is still there after the restart.
    let server = std::cell::RefCell::new(&mut server);
    srpc_tests::restart_keeps_providers(
        &provider,
        &mut sub,
        (&first, &second),
        || server.borrow_mut().kill(),
        || server.borrow_mut().launch().unwrap(),
    )
    .await;
    provider.close().await.unwrap();
    consumer.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs etcd: cargo xtask integration"]
async fn a_lease_lost_while_cut_off_is_replaced_within_one_keepalive_period() {
    srpc_tests::init_logs();
    let server = Etcd::start(VERSION).unwrap();
    let proxy = TcpProxy::start(server.address().parse().unwrap())
        .await
        .unwrap();
    // A TTL of 3 s: keepalives every second.
    let provider = registry(&proxy.addr().to_string(), "session=3000").await;
    let consumer = registry(&server.address(), "").await;
    let mut sub = subscribe(&consumer).await;
    provider.register(&provider_url(20932)).await.unwrap();
    sub.wait_for(|s| s.len() == 1, DEADLINE).await.unwrap();
    let first = provider.backend().lease_id().await.unwrap();

    // Cut off longer than the TTL: etcd expires the lease and deletes the key, truthfully.
    proxy.cut();
    sub.wait_for(|s| s.is_empty(), DEADLINE).await.unwrap();
    // The provider gives the lease up as lost, and cannot get a new one while cut off: the
    // loss must be remembered until a grant goes through.
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while provider.backend().lease_id().await.is_some() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the lease was never given up"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    proxy.restore();
    let healed = tokio::time::Instant::now();
    let s = sub.wait_for(|s| s.len() == 1, DEADLINE).await.unwrap();
    let back = healed.elapsed();
    assert_eq!(s.providers()[0], provider_url(20932));
    assert!(
        back <= Duration::from_secs(1) + Duration::from_secs(3),
        "back after {back:?}: one keepalive period (1 s) plus scheduling slack"
    );
    let second = provider.backend().lease_id().await.unwrap();
    assert_ne!(first, second, "a new lease");
    assert!(
        provider
            .backend()
            .lease_time_to_live()
            .await
            .unwrap()
            .unwrap()
            > 0,
        "the new lease is alive"
    );
    provider.close().await.unwrap();
    consumer.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs etcd: cargo xtask integration"]
async fn compaction_while_a_watcher_is_cut_off_is_caught_up_by_listing_again() {
    let server = Etcd::start(VERSION).unwrap();
    let proxy = TcpProxy::start(server.address().parse().unwrap())
        .await
        .unwrap();
    let provider = registry(&server.address(), "").await;
    let consumer = registry(&proxy.addr().to_string(), "retry.max.period=1s").await;
    let mut sub = subscribe(&consumer).await;
    let (gone, stays, new) = (
        provider_url(20933),
        provider_url(20934),
        provider_url(20935),
    );
    provider.register(&gone).await.unwrap();
    provider.register(&stays).await.unwrap();
    sub.wait_for(|s| s.len() == 2, DEADLINE).await.unwrap();

    proxy.cut();
    sub.wait_for(|s| !s.is_connected(), DEADLINE).await.unwrap();
    provider.unregister(&gone).await.unwrap();
    provider.register(&new).await.unwrap();
    // Compact everything up to now: the watcher's next revision is history no more.
    let status = etcdctl(&server.address(), &["get", "/", "-w", "json"]);
    let json: serde_json::Value = serde_json::from_str(&status).unwrap();
    let revision = json["header"]["revision"].as_i64().unwrap();
    etcdctl(&server.address(), &["compact", &revision.to_string()]);
    proxy.restore();

    let s = sub
        .wait_for(|s| s.is_connected() && s.contains(&new), DEADLINE)
        .await
        .unwrap();
    assert!(
        !s.contains(&gone),
        "the deletion made during the cut is seen: {s:?}"
    );
    assert!(s.contains(&stays));
    provider.close().await.unwrap();
    consumer.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs etcd: cargo xtask integration"]
async fn a_three_member_cluster_loses_its_leader_and_nothing_is_lost() {
    let mut members = Etcd::cluster(VERSION, 3).unwrap();
    let endpoints: Vec<String> = members.iter().map(Etcd::address).collect();
    // The leader first, so that the handles really have to fail over.
    let leader = (0..3)
        .find(|&i| members[i].is_leader())
        .expect("the cluster has a leader");
    let mut ordered = vec![endpoints[leader].clone()];
    ordered.extend(
        (0..3)
            .filter(|&i| i != leader)
            .map(|i| endpoints[i].clone()),
    );
    let servers = ordered.join(",");
    let params = "session=5000&retry.max.period=1s";
    let provider = registry(&servers, params).await;
    let consumer = registry(&servers, params).await;
    let mut sub = subscribe(&consumer).await;
    provider.register(&provider_url(20936)).await.unwrap();
    sub.wait_for(|s| s.len() == 1, DEADLINE).await.unwrap();
    let seen = srpc_tests::record(&sub);

    members[leader].kill();
    // A new leader is elected; the lease is kept alive through it; the watch fails over.
    provider.register(&provider_url(20937)).await.unwrap();
    sub.wait_for(|s| s.len() == 2 && s.is_connected(), DEADLINE)
        .await
        .unwrap();
    // Longer than the TTL: the first registration is still alive on the new leader.
    let later = sub
        .clone()
        .wait_for(|s| s.len() < 2, Duration::from_secs(8))
        .await;
    assert!(
        matches!(later, Err(Error::Timeout { .. })),
        "a provider was lost: {later:?}"
    );
    let seen = seen.lock().unwrap().clone();
    assert!(
        seen.iter().all(|(providers, _)| *providers >= 1),
        "a snapshot lost the provider: {seen:?}"
    );
    provider.close().await.unwrap();
    consumer.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs etcd: cargo xtask integration"]
async fn authentication_and_a_token_the_restarted_server_no_longer_knows() {
    authentication_across_a_restart(VERSION).await;
}

/// 3.5 forgets simple tokens on a restart, and refuses a watch with the old one as
/// "permission denied" in a cancelled watch rather than as an invalid token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs etcd: cargo xtask integration"]
async fn authentication_and_a_token_the_restarted_server_no_longer_knows_3_5() {
    authentication_across_a_restart(EtcdVersion::V3_5).await;
}

async fn authentication_across_a_restart(version: EtcdVersion) {
    srpc_tests::init_logs();
    let mut server = Etcd::start(version).unwrap();
    let address = server.address();
    let etcdctl =
        |address: &str, args: &[&str]| srpc_tests::servers::etcdctl(version, address, args);
    etcdctl(
        &address,
        &["user", "add", "root:s3cret", "--interactive=false"],
    );
    etcdctl(&address, &["auth", "enable"]);

    let denied = registry(&address, "").await;
    let err = denied.register(&provider_url(20938)).await.unwrap_err();
    assert!(err.to_string().contains("user name"), "{err}");
    let wrong = connect(&Url::parse(&format!("etcd://root:nope@{address}")).unwrap())
        .await
        .unwrap();
    let err = wrong.register(&provider_url(20938)).await.unwrap_err();
    assert!(matches!(err, Error::InvalidInput { .. }), "{err}");
    assert!(err.to_string().contains("authentication failed"), "{err}");

    let root = format!("root:s3cret@{address}");
    let provider = registry(&root, "session=10000").await;
    let consumer = registry(&root, "retry.max.period=1s").await;
    let mut sub = subscribe(&consumer).await;
    provider.register(&provider_url(20939)).await.unwrap();
    sub.wait_for(|s| s.len() == 1, DEADLINE).await.unwrap();

    // Simple tokens live in the server's memory: after a restart every token is refused,
    // and the handles must authenticate again by themselves. A graceful stop makes that
    // certain; after a crash the server may apply the authentication again from its log and
    // know the old token, depending on when its backend last committed.
    server.stop();
    server.launch().unwrap();
    provider.register(&provider_url(20940)).await.unwrap();
    let s = sub
        .wait_for(|s| s.len() == 2 && s.is_connected(), DEADLINE)
        .await
        .unwrap();
    assert!(s.contains(&provider_url(20940)));
    provider.close().await.unwrap();
    consumer.close().await.unwrap();
}

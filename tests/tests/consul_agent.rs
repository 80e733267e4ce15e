//! Consul against the fake agent, where the tests need its hooks: the exact register body and
//! check ID, entries written by Java and by foreign registrants, the token header, and the
//! faults (an agent that forgets everything, an index that goes backwards or answers 0, a
//! storm of 429s, a check left unpassed until the agent reaps the service).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Test code: failures panic.

use std::time::Duration;

use srpc_registry::{Error, Registry, Subscription, Url};
use srpc_registry_consul::{ConsulRegistry, connect};
use srpc_tests::consul::FakeConsul;
use srpc_tests::proxy::TcpProxy;

const DEADLINE: Duration = Duration::from_secs(20);

async fn registry(addr: impl std::fmt::Display, params: &str) -> ConsulRegistry {
    connect(
        &Url::parse(&format!(
            "consul://{addr}?consul-watch-timeout=5000&{params}"
        ))
        .unwrap(),
    )
    .await
    .unwrap()
}

fn url(s: &str) -> Url {
    Url::parse(s).unwrap()
}

fn provider(port: u16) -> Url {
    url(&format!(
        "dubbo://127.0.0.1:{port}/com.acme.Agent?interface=com.acme.Agent&side=provider"
    ))
}

async fn subscribe(registry: &ConsulRegistry) -> Subscription {
    registry
        .subscribe(&url("consumer://127.0.0.1/com.acme.Agent"))
        .await
        .unwrap()
}

/// The fake's service IDs.
fn ids(agent: &FakeConsul) -> Vec<String> {
    agent.services().into_iter().map(|(id, _, _)| id).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_register_body_and_the_check_id_are_javas() {
    let agent = FakeConsul::start().await.unwrap();
    let provider_side = registry(agent.addr(), "consul-check-pass-interval=1000").await;
    let u = provider(20950).with_param("version", "1.0");
    provider_side.register(&u).await.unwrap();
    let [id] = ids(&agent).try_into().unwrap();
    let body = agent.register_body(&id).unwrap();
    assert_eq!(body["Name"], "com.acme.Agent");
    assert_eq!(body["ID"], id);
    assert_eq!(body["Address"], "127.0.0.1");
    assert_eq!(body["Port"], 20950);
    assert_eq!(body["Meta"]["url"], u.to_full_string());
    let tags: Vec<&str> = body["Tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    assert_eq!(
        tags,
        [
            "interface=com.acme.Agent",
            "side=provider",
            "version=1.0",
            "dubbo"
        ]
    );
    assert_eq!(body["Check"]["TTL"], "1s");
    assert_eq!(body["Check"]["DeregisterCriticalServiceAfter"], "60s");

    // The check it passes is the one Consul made, `service:<ID>`: after a missed TTL it is
    // passing again within a pass interval.
    agent.expire_all_checks();
    assert_eq!(agent.services()[0].2, "critical");
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while agent.services()[0].2 != "passing" {
        assert!(tokio::time::Instant::now() < deadline, "never passed again");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // A restart (a new timestamp) is the same service, not a second one.
    provider_side
        .register(&u.clone().with_param("timestamp", "42"))
        .await
        .unwrap();
    assert_eq!(ids(&agent), [id]);
    provider_side.close().await.unwrap();
    assert!(agent.services().is_empty(), "close deregisters");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_written_by_java_and_by_foreign_registrants_are_read() {
    let agent = FakeConsul::start().await.unwrap();
    let consumer = registry(agent.addr(), "").await;
    let mut sub = consumer
        .subscribe(&url("consumer://127.0.0.1/com.acme.Agent?version=*"))
        .await
        .unwrap();
    // As Java's ConsulRegistry writes it (no Status: critical until its first pass).
    let java =
        "dubbo://10.0.0.5:20880/com.acme.Agent?interface=com.acme.Agent&methods=a,b&version=1.0";
    let status = agent
        .put(
            "/v1/agent/service/register",
            &format!(
                r#"{{"ID":"5f3a","Name":"com.acme.Agent","Tags":["interface=com.acme.Agent","methods=a,b","version=1.0","dubbo"],"Address":"10.0.0.5","Port":20880,"Meta":{{"url":"{java}"}},"Check":{{"TTL":"16s","DeregisterCriticalServiceAfter":"20s"}}}}"#
            ),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        agent.put("/v1/agent/check/pass/service:5f3a", "").await,
        200
    );
    // Something else's service: no Meta.url, an empty address (the node's).
    let status = agent
        .put(
            "/v1/agent/service/register",
            r#"{"ID":"legacy-1","Name":"com.acme.Agent","Tags":["dubbo","version=2.0","primary"],"Port":9000,"Check":{"TTL":"30s","Status":"passing"}}"#,
        )
        .await;
    assert_eq!(status, 200);
    // And junk in Meta.url, skipped.
    agent
        .put(
            "/v1/agent/service/register",
            r#"{"ID":"junk","Name":"com.acme.Agent","Tags":["dubbo"],"Port":1,"Meta":{"url":"::not a url::"},"Check":{"TTL":"30s","Status":"passing"}}"#,
        )
        .await;
    let s = sub.wait_for(|s| s.len() == 2, DEADLINE).await.unwrap();
    assert!(s.contains(&url(java)));
    assert!(s.contains(&url("tcp://127.0.0.1:9000/com.acme.Agent?version=2.0")));
    consumer.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_goes_in_its_header_and_a_wrong_one_is_not_retried() {
    let agent = FakeConsul::start().await.unwrap();
    agent.require_token("s3cret");
    let anonymous = registry(agent.addr(), "check=false").await;
    let err = anonymous.register(&provider(20951)).await.unwrap_err();
    assert!(matches!(err, Error::InvalidInput { .. }), "{err}");
    assert!(err.to_string().contains("403"), "{err}");
    let with_token = registry(agent.addr(), "token=s3cret").await;
    with_token.register(&provider(20951)).await.unwrap();
    assert_eq!(agent.services().len(), 1);
    with_token.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_that_forgets_everything_gets_it_back_within_one_pass_interval() {
    let agent = FakeConsul::start().await.unwrap();
    let provider_side = registry(agent.addr(), "consul-check-pass-interval=1500").await;
    let consumer = registry(agent.addr(), "").await;
    let mut sub = subscribe(&consumer).await;
    provider_side.register(&provider(20952)).await.unwrap();
    sub.wait_for(|s| s.len() == 1, DEADLINE).await.unwrap();

    agent.forget_all();
    let forgot = tokio::time::Instant::now();
    sub.wait_for(|s| s.is_empty(), DEADLINE).await.unwrap();
    let s = sub.wait_for(|s| s.len() == 1, DEADLINE).await.unwrap();
    let back = forgot.elapsed();
    assert_eq!(s.providers()[0], provider(20952));
    assert!(
        back <= Duration::from_millis(500) + Duration::from_secs(2),
        "back after {back:?}: one pass interval (500 ms) plus scheduling slack"
    );
    provider_side.close().await.unwrap();
    consumer.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_index_going_backwards_or_to_zero_loses_nothing_and_notifies_once() {
    let agent = FakeConsul::start().await.unwrap();
    let provider_side = registry(agent.addr(), "").await;
    let consumer = registry(agent.addr(), "").await;
    let mut sub = subscribe(&consumer).await;
    provider_side.register(&provider(20953)).await.unwrap();
    sub.wait_for(|s| s.len() == 1, DEADLINE).await.unwrap();
    let mut history = sub.history();

    // A restored snapshot: the index goes backwards. The watch starts again from 0; the
    // payload did not change, so nobody is notified.
    agent.override_index(Some(1));
    // Then an agent that answers 0: the loop must not spin (it asks with 1, rate-limited).
    let before = agent.health_requests();
    agent.override_index(Some(0));
    tokio::time::sleep(Duration::from_secs(3)).await;
    let asked = agent.health_requests() - before;
    assert!(asked <= 8, "{asked} health queries in 3 s: a busy loop");
    agent.override_index(None);

    // A real change still arrives, exactly once.
    provider_side.register(&provider(20954)).await.unwrap();
    sub.wait_for(|s| s.len() == 2, DEADLINE).await.unwrap();
    let mut published = Vec::new();
    while let Ok(snapshot) = history.try_recv() {
        published.push(snapshot.len());
    }
    assert_eq!(published, [2], "one notification, for the one change");
    provider_side.close().await.unwrap();
    consumer.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_storm_of_429s_is_ridden_out_with_backoff() {
    let agent = FakeConsul::start().await.unwrap();
    let provider_side = registry(agent.addr(), "").await;
    let consumer = registry(agent.addr(), "retry.period=100&retry.max.period=1s").await;
    let mut sub = subscribe(&consumer).await;
    let before = agent.health_requests();
    agent.reject_next(10);
    provider_side
        .register(&provider(20955))
        .await
        .expect_err("the first requests are refused with 429");
    // With check=true a refused register is returned; the watch retries by itself.
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        match provider_side.register(&provider(20955)).await {
            Ok(()) => break,
            Err(error) => {
                assert!(error.is_transient(), "429 is worth retrying: {error}");
                assert!(tokio::time::Instant::now() < deadline, "never got through");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    sub.wait_for(|s| s.len() == 1 && s.is_connected(), DEADLINE)
        .await
        .unwrap();
    let asked = agent.health_requests() - before;
    assert!(asked <= 15, "{asked} health queries: no busy loop");
    provider_side.close().await.unwrap();
    consumer.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_check_left_unpassed_is_reaped_and_the_service_registered_again() {
    let agent = FakeConsul::start().await.unwrap();
    agent.reap_after(Duration::from_millis(500));
    let proxy = TcpProxy::start(agent.addr()).await.unwrap();
    let provider_side = registry(
        proxy.addr(),
        "consul-check-pass-interval=1000&retry.max.period=1s",
    )
    .await;
    let consumer = registry(agent.addr(), "").await;
    let mut sub = subscribe(&consumer).await;
    provider_side.register(&provider(20956)).await.unwrap();
    sub.wait_for(|s| s.len() == 1, DEADLINE).await.unwrap();

    // Cut off: no pass for longer than the TTL, then longer than the reaper's limit.
    proxy.cut();
    sub.wait_for(|s| s.is_empty(), DEADLINE).await.unwrap();
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while !agent.services().is_empty() {
        assert!(tokio::time::Instant::now() < deadline, "never reaped");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    proxy.restore();
    // The next pass answers 404: the service is registered again, passing.
    let s = sub.wait_for(|s| s.len() == 1, DEADLINE).await.unwrap();
    assert_eq!(s.providers()[0], provider(20956));
    assert_eq!(agent.services()[0].2, "passing");
    provider_side.close().await.unwrap();
    consumer.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs py-consul: cargo xtask integration"]
async fn a_third_party_client_gets_the_answers_consul_documents() {
    let agent = FakeConsul::start().await.unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/python/consul_peer.py");
    let addr = agent.addr();
    let out = tokio::process::Command::new("python3")
        .args([script, &addr.ip().to_string(), &addr.port().to_string()])
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success() && out.stdout == b"ok\n",
        "py-consul against the fake agent:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // What the third-party client registered, srpc reads.
    let consumer = registry(addr, "").await;
    let s = consumer
        .subscribe(&url("consumer://127.0.0.1/py.Kept"))
        .await
        .unwrap()
        .snapshot();
    assert_eq!(
        s.providers(),
        [url("dubbo://127.0.0.1:7001/py.Kept?interface=py.Kept")]
    );
    consumer.close().await.unwrap();
}

//! The dashboard's "disable" over a real ZooKeeper: the rule lands where Java Dubbo reads
//! override rules (`/<root>/<interface>/configurators/<URL.encode(override://…)>`, a
//! persistent node: `dynamic=false`), an srpc XClient stops picking the provider, and the
//! rule outlives the dashboard's session.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Test code: failures panic.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use srpc::registry::{Registry, Url};
use srpc_dashboard::{Dashboard, Options};
use srpc_tests::servers::{fresh_root, shared_zookeeper};

const DEADLINE: Duration = Duration::from_secs(20);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs ZooKeeper: cargo xtask integration"]
async fn disable_writes_a_persistent_override_node_that_consumers_honour() {
    let root = fresh_root("srpc-dashboard");
    let registry_url = format!("zookeeper://{}?group={root}", shared_zookeeper());
    let publisher = srpc::registry::connect(&registry_url).await.unwrap();
    let (a, b) = (
        "srpc://127.0.0.1:7101/com.acme.Zd?version=1.0",
        "srpc://127.0.0.1:7102/com.acme.Zd?version=1.0",
    );
    publisher.register(&a.parse().unwrap()).await.unwrap();
    publisher.register(&b.parse().unwrap()).await.unwrap();

    let consumer = srpc::registry::connect(&registry_url).await.unwrap();
    let query: Url =
        "consumer://127.0.0.1/com.acme.Zd?version=1.0&category=providers,configurators"
            .parse()
            .unwrap();
    let xclient = srpc::xclient::XClient::new(
        consumer.subscribe(&query).await.unwrap().into(),
        srpc::xclient::Options::default(),
    );
    xclient
        .wait_for_endpoints(|e| e.list().len() == 2, DEADLINE)
        .await
        .unwrap();

    let operator: Arc<dyn Registry> = srpc::registry::connect(&registry_url).await.unwrap();
    let dashboard = Dashboard::start(
        operator.clone(),
        Options::new(&registry_url).with_write_token("t0ken"),
    )
    .await
    .unwrap();
    let served = srpc_tests::serve_on_loopback(dashboard.router()).await;
    let base = format!("http://{}", served.addr);
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        let page: Value = http
            .get(format!("{base}/api/service?key=com.acme.Zd:1.0"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if page["providers"].as_array().is_some_and(|p| p.len() == 2) {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{page}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let answer: Value = http
        .post(format!("{base}/api/override"))
        .bearer_auth("t0ken")
        .json(&json!({"action": "disable", "url": b}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let rule: Url = answer["done"].as_str().unwrap().parse().unwrap();
    let now = xclient
        .wait_for_endpoints(|e| e.list().len() == 1, DEADLINE)
        .await
        .unwrap();
    assert_eq!(now.list()[0].addr(), "127.0.0.1:7101");

    // Where Java Dubbo's ZooKeeperRegistry looks, and persistent.
    let zk = zookeeper_client::Client::connect(&shared_zookeeper())
        .await
        .unwrap();
    let node = format!(
        "{root}/com.acme.Zd/configurators/{}",
        rule.to_encoded_string()
    );
    let stat = zk
        .check_stat(&node)
        .await
        .unwrap()
        .expect("the rule's node");
    assert_eq!(stat.ephemeral_owner, 0, "dynamic=false: persistent");

    // The dashboard gone, the rule stays and the provider stays out.
    drop(served);
    drop(dashboard);
    operator.close().await.unwrap();
    assert!(zk.check_stat(&node).await.unwrap().is_some());
    assert_eq!(xclient.endpoints().list().len(), 1);

    // Clean up the persistent nodes this test made.
    zk.delete(&node, None).await.unwrap();
    xclient
        .wait_for_endpoints(|e| e.list().len() == 2, DEADLINE)
        .await
        .unwrap();
    drop(xclient);
    consumer.close().await.unwrap();
    publisher.close().await.unwrap();
}

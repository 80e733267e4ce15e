//! etcd interop with `etcdctl` as the third-party peer, on etcd 3.4 and 3.5: what etcdctl
//! writes in Java's and dubbo-go's form is listed and watched; what srpc writes, etcdctl reads
//! back byte for byte (key, value, lease); the rpcx layout both ways.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Test code: failures panic.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use srpc_registry::{Registry, Url};
use srpc_registry_etcd::{EtcdRegistry, connect};
use srpc_tests::servers::{EtcdVersion, fresh_root, shared_etcd};

const DEADLINE: Duration = Duration::from_secs(10);

/// Runs etcdctl of `version` against the shared server; its standard output.
fn etcdctl(version: EtcdVersion, args: &[&str]) -> String {
    srpc_tests::servers::etcdctl(version, &shared_etcd(version), args)
}

/// Grants a lease with etcdctl; its ID in hex (as etcdctl takes it) and in decimal (as Java
/// writes it in values).
fn grant(version: EtcdVersion, ttl: u32) -> (String, String) {
    let out = etcdctl(version, &["lease", "grant", &ttl.to_string()]);
    let hex = out.split_whitespace().nth(1).unwrap().to_owned();
    let decimal = i64::from_str_radix(&hex, 16).unwrap().to_string();
    (hex, decimal)
}

/// One key as etcdctl reads it: (key, value, lease).
fn get(version: EtcdVersion, key: &str) -> Option<(String, String, i64)> {
    let out = etcdctl(version, &["get", key, "-w", "json"]);
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    let kv = json["kvs"].as_array()?.first()?.clone();
    let text = |field: &str| {
        String::from_utf8(
            BASE64
                .decode(kv[field].as_str().unwrap_or_default())
                .unwrap(),
        )
        .unwrap()
    };
    Some((
        text("key"),
        text("value"),
        kv["lease"].as_i64().unwrap_or(0),
    ))
}

async fn registry(version: EtcdVersion, params: &str) -> EtcdRegistry {
    connect(&Url::parse(&format!("etcd://{}?{params}", shared_etcd(version))).unwrap())
        .await
        .unwrap()
}

fn url(s: &str) -> Url {
    Url::parse(s).unwrap()
}

async fn java_and_go_keys_are_listed_and_watched(version: EtcdVersion) {
    let root = fresh_root("srpc-etcd-interop");
    let consumer = registry(version, &format!("group={root}")).await;
    let mut sub = consumer
        .subscribe(&url("consumer://127.0.0.1/com.acme.Echo"))
        .await
        .unwrap();
    let (hex, decimal) = grant(version, 30);

    // Java: URLEncoder names, the lease ID in decimal as the value, attached to the lease.
    let java = url(
        "dubbo://10.0.0.5:20880/com.acme.Echo?anyhost=true&interface=com.acme.Echo&methods=echo",
    );
    let java_key = format!(
        "{root}/com.acme.Echo/providers/{}",
        java.to_encoded_string()
    );
    etcdctl(
        version,
        &["put", &format!("--lease={hex}"), &java_key, &decimal],
    );
    // dubbo-go: Go's QueryEscape (`*` escaped), an empty value, a lease of its own.
    let go_key = format!(
        "{root}/com.acme.Echo/providers/dubbo%3A%2F%2F10.0.0.6%3A20000%2Fcom.acme.Echo%3Finterface%3Dcom.acme.Echo%26methods%3D%2A"
    );
    etcdctl(version, &["put", &format!("--lease={hex}"), &go_key, ""]);
    // Junk is skipped, and changes nothing.
    etcdctl(
        version,
        &[
            "put",
            &format!("{root}/com.acme.Echo/providers/not-a-url"),
            "x",
        ],
    );
    let s = sub.wait_for(|s| s.len() == 2, DEADLINE).await.unwrap();
    assert!(s.contains(&java));
    let go = s.providers().iter().find(|u| u.port() == 20000).unwrap();
    assert_eq!(go.param("methods"), Some("*"));

    // Deletions by the peer are seen.
    etcdctl(version, &["del", &java_key]);
    let s = sub.wait_for(|s| s.len() == 1, DEADLINE).await.unwrap();
    assert!(!s.contains(&java));
    // So is the lease the peer revokes, taking its keys with it.
    etcdctl(version, &["lease", "revoke", &hex]);
    sub.wait_for(|s| s.is_empty(), DEADLINE).await.unwrap();
    assert_eq!(
        consumer
            .lookup(&url("consumer://127.0.0.1/com.acme.Echo"))
            .await
            .unwrap(),
        []
    );
    consumer.close().await.unwrap();
}

async fn what_srpc_writes_etcdctl_reads_byte_for_byte(version: EtcdVersion) {
    let root = fresh_root("srpc-etcd-interop");
    let provider = registry(version, &format!("group={root}&session=30000")).await;
    let dynamic = url("dubbo://10.0.0.7:20880/com.acme.Echo?interface=com.acme.Echo&side=provider");
    let persistent =
        url("override://0.0.0.0/com.acme.Echo?category=configurators&dynamic=false&timeout=100");
    provider.register(&dynamic).await.unwrap();
    provider.register(&persistent).await.unwrap();
    let lease = provider.backend().lease_id().await.unwrap();

    let key = format!(
        "{root}/com.acme.Echo/providers/dubbo%3A%2F%2F10.0.0.7%3A20880%2Fcom.acme.Echo%3Finterface%3Dcom.acme.Echo%26side%3Dprovider"
    );
    let (got_key, value, got_lease) = get(version, &key).expect("the key Java would write");
    assert_eq!(got_key, key);
    assert_eq!(
        value,
        lease.to_string(),
        "the value is the lease ID in decimal"
    );
    assert_eq!(got_lease, lease, "attached to the lease");

    let key = format!(
        "{root}/com.acme.Echo/configurators/{}",
        persistent.to_encoded_string()
    );
    let (_, value, got_lease) = get(version, &key).expect("the persistent key");
    assert_eq!(got_lease, 0, "dynamic=false carries no lease");
    assert!(
        value.parse::<i32>().is_ok(),
        "Java's path hash code: {value}"
    );

    // The interface marker Java `*` subscribers (dubbo-admin) list.
    let (_, _, marker_lease) = get(version, &format!("{root}/com.acme.Echo")).expect("marker");
    assert_eq!(marker_lease, 0);

    provider.unregister(&persistent).await.unwrap();
    provider.close().await.unwrap();
    assert!(
        etcdctl(version, &["lease", "timetolive", &format!("{lease:x}")])
            .contains("already expired"),
        "close revokes the lease"
    );
    assert_eq!(
        get(version, &format!("{root}/com.acme.Echo/providers/x")),
        None
    );
}

async fn rpcx_layout_both_ways(version: EtcdVersion) {
    let base = fresh_root("rpcx-interop");
    let params = format!("layout=rpcx&base={base}");
    let consumer = registry(version, &params).await;
    let mut sub = consumer
        .subscribe(&url("consumer://127.0.0.1/Arith?group=*"))
        .await
        .unwrap();
    // rpcx-etcd's shape: directory markers, then `<base>/<service>/<network>@<address>`.
    etcdctl(version, &["put", &base, "rpcx_path"]);
    etcdctl(version, &["put", &format!("{base}/Arith"), "Arith"]);
    etcdctl(
        version,
        &[
            "put",
            &format!("{base}/Arith/tcp@127.0.0.1:8972"),
            "weight=10&group=test",
        ],
    );
    let s = sub.wait_for(|s| s.len() == 1, DEADLINE).await.unwrap();
    assert_eq!(
        s.providers()[0],
        url("tcp://127.0.0.1:8972/Arith?group=test&weight=10")
    );
    // A metadata edit is a change of the provider.
    etcdctl(
        version,
        &[
            "put",
            &format!("{base}/Arith/tcp@127.0.0.1:8972"),
            "weight=20",
        ],
    );
    let s = sub
        .wait_for(
            |s| s.providers().first().and_then(|u| u.param("weight")) == Some("20"),
            DEADLINE,
        )
        .await
        .unwrap();
    assert_eq!(s.len(), 1);

    let provider = registry(version, &params).await;
    provider
        .register(&url("tcp://127.0.0.1:8973/Arith?weight=5&state=inactive"))
        .await
        .unwrap();
    let (key, value, lease) = get(version, &format!("{base}/Arith/tcp@127.0.0.1:8973")).unwrap();
    assert_eq!(key, format!("{base}/Arith/tcp@127.0.0.1:8973"));
    assert_eq!(value, "state=inactive&weight=5");
    assert_eq!(lease, provider.backend().lease_id().await.unwrap());
    provider.close().await.unwrap();
    consumer.close().await.unwrap();
}

macro_rules! on_both_versions {
    ($($name:ident),* $(,)?) => {
        mod etcd_3_4 {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                #[ignore = "needs etcd: cargo xtask integration"]
                async fn $name() {
                    super::$name(srpc_tests::servers::EtcdVersion::V3_4).await;
                }
            )*
        }
        mod etcd_3_5 {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                #[ignore = "needs etcd: cargo xtask integration"]
                async fn $name() {
                    super::$name(srpc_tests::servers::EtcdVersion::V3_5).await;
                }
            )*
        }
    };
}

on_both_versions!(
    java_and_go_keys_are_listed_and_watched,
    what_srpc_writes_etcdctl_reads_byte_for_byte,
    rpcx_layout_both_ways,
);

//! Interop with a third-party ZooKeeper peer (kazoo): it writes nodes as Java Dubbo and
//! Apache's Python Dubbo name them, and reads ours back. Uses the shared server of
//! `cargo xtask integration`, with a fresh root per test.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Test code: failures panic.

use std::process::Command;
use std::time::Duration;

use srpc_registry::{Registry, Url};
use srpc_tests::servers::shared_zookeeper;

const DEADLINE: Duration = Duration::from_secs(10);

fn peer(args: &[&str]) -> String {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/python/zk_peer.py");
    let out = Command::new("python3")
        .arg(script)
        .arg(shared_zookeeper())
        .args(args)
        .output()
        .expect("run python3 (kazoo is installed by cargo xtask integration)");
    assert!(
        out.status.success(),
        "zk_peer.py {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn fresh_root() -> String {
    srpc_tests::servers::fresh_root("srpc-interop")
}

async fn registry(root: &str) -> impl Registry {
    let url = Url::parse(&format!("zookeeper://{}?group={root}", shared_zookeeper())).unwrap();
    srpc_registry_zookeeper::connect(&url).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs ZooKeeper and kazoo: cargo xtask integration"]
async fn kazoo_reads_our_node_with_javas_exact_name_and_data() {
    let root = fresh_root();
    let provider = registry(&root).await;
    let url = Url::parse(
        "dubbo://127.0.0.1:20880/com.acme.Echo?side=provider&methods=echo,ping&interface=com.acme.Echo&application=rust&anyhost=true",
    )
    .unwrap();
    provider.register(&url).await.unwrap();
    // Written out by hand from Java's rules: sorted parameters, URLEncoder over the whole URL.
    let expected = "dubbo%3A%2F%2F127.0.0.1%3A20880%2Fcom.acme.Echo%3Fanyhost%3Dtrue%26application%3Drust%26interface%3Dcom.acme.Echo%26methods%3Decho%2Cping%26side%3Dprovider";
    let listing = peer(&["read", &format!("{root}/com.acme.Echo/providers")]);
    // Node data is the creator's IP, as Curator writes it for Java; here, loopback.
    assert_eq!(listing, format!("{expected}\t127.0.0.1\n"));

    let consumer = Url::parse(
        "consumer://127.0.0.1/com.acme.Echo?category=consumers&check=false&side=consumer",
    )
    .unwrap();
    provider.register(&consumer).await.unwrap();
    let consumers = peer(&["read", &format!("{root}/com.acme.Echo/consumers")]);
    assert!(
        consumers.starts_with("consumer%3A%2F%2F127.0.0.1%2Fcom.acme.Echo%3Fcategory%3Dconsumers"),
        "{consumers}"
    );

    provider.close().await.unwrap();
    assert_eq!(
        peer(&["read", &format!("{root}/com.acme.Echo/providers")]),
        "",
        "ephemeral nodes go with close"
    );
    peer(&["delete", &root]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs ZooKeeper and kazoo: cargo xtask integration"]
async fn we_read_what_java_and_python_dubbo_write() {
    let root = fresh_root();
    let consumer = registry(&root).await;
    let mut echo = consumer
        .subscribe(&Url::parse("consumer://127.0.0.1/com.acme.Echo").unwrap())
        .await
        .unwrap();
    let mut greeter = consumer
        .subscribe(&Url::parse("consumer://127.0.0.1/org.example.Greeter").unwrap())
        .await
        .unwrap();
    // An unreadable node first: it must be skipped without disturbing anything.
    peer(&[
        "write-raw",
        &format!("{root}/com.acme.Echo/providers/garbage%ZZ"),
        "x",
    ]);
    let java_path = peer(&["write-java", &root]);
    peer(&["write-python", &root]);

    let s = echo.wait_for(|s| s.len() == 1, DEADLINE).await.unwrap();
    assert_eq!(
        s.providers()[0].to_full_string(),
        "dubbo://10.0.0.5:20880/com.acme.Echo?anyhost=true&application=echo-provider&deprecated=false&dubbo=2.0.2&dynamic=true&generic=false&interface=com.acme.Echo&methods=echo,ping&pid=4242&release=3.3.0&service-name-mapping=true&side=provider&timestamp=1700000000000"
    );
    let s = greeter.wait_for(|s| s.len() == 1, DEADLINE).await.unwrap();
    let python = &s.providers()[0];
    assert_eq!(
        (python.protocol(), python.host(), python.port()),
        ("tri", "127.0.0.1", 50051)
    );
    assert_eq!(python.service_interface(), "org.example.Greeter");

    peer(&["delete", java_path.trim()]);
    echo.wait_for(|s| s.is_empty(), DEADLINE).await.unwrap();
    // Close first: a live consumer re-creates the directories it watches, as Java's do.
    drop((echo, greeter));
    consumer.close().await.unwrap();
    peer(&["delete", &root]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs ZooKeeper and kazoo: cargo xtask integration"]
async fn rpcx_layout_reads_and_writes_rpcx_nodes_and_follows_metadata_edits() {
    let base = fresh_root();
    let url = Url::parse(&format!(
        "zookeeper://{}?layout=rpcx&base={base}",
        shared_zookeeper()
    ))
    .unwrap();
    let provider = srpc_registry_zookeeper::connect(&url).await.unwrap();
    let consumer = srpc_registry_zookeeper::connect(&url).await.unwrap();
    // rpcx metadata `group=…` is a group, as rpcx clients use it: select every group.
    let mut arith = consumer
        .subscribe(&Url::parse("consumer://127.0.0.1/Arith?group=*").unwrap())
        .await
        .unwrap();

    // Ours, as rpcx writes it: <base>/<Service>/<network>@<host:port>, metadata as data.
    let ours = Url::parse("tcp://127.0.0.1:8972/Arith?weight=10&group=test").unwrap();
    provider.register(&ours).await.unwrap();
    assert_eq!(
        peer(&["read", &format!("{base}/Arith")]),
        "tcp@127.0.0.1:8972\tgroup=test&weight=10\n"
    );
    // rpcx's directory markers.
    let markers = peer(&["read", &base]);
    assert_eq!(markers, "Arith\tArith\n");

    // A Go rpcx server's node, written by the third-party peer.
    let theirs = format!("{base}/Arith/tcp@127.0.0.1:8973");
    peer(&["write-raw", &theirs, "weight=5"]);
    let s = arith.wait_for(|s| s.len() == 2, DEADLINE).await.unwrap();
    assert!(s.contains(&ours));
    assert!(s.contains(&Url::parse("tcp://127.0.0.1:8973/Arith?weight=5").unwrap()));

    // An operator edits the metadata: consumers follow.
    peer(&["set-data", &theirs, "weight=50&state=inactive"]);
    let s = arith
        .wait_for(
            |s| s.urls().any(|u| u.param("weight") == Some("50")),
            DEADLINE,
        )
        .await
        .unwrap();
    let edited = s.providers().iter().find(|u| u.port() == 8973).unwrap();
    assert_eq!(edited.param("state"), Some("inactive"));

    drop(arith);
    consumer.close().await.unwrap();
    provider.close().await.unwrap();
    peer(&["delete", &base]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs ZooKeeper and kazoo: cargo xtask integration"]
async fn digest_credentials_protect_created_nodes() {
    let root = fresh_root();
    let url = Url::parse(&format!(
        "zookeeper://srpc:s3cret@{}?group={root}",
        shared_zookeeper()
    ))
    .unwrap();
    let provider = srpc_registry_zookeeper::connect(&url).await.unwrap();
    let mine = Url::parse("dubbo://127.0.0.1:20930/com.acme.Secure?side=provider").unwrap();
    provider.register(&mine).await.unwrap();
    let node = format!(
        "{root}/com.acme.Secure/providers/{}",
        mine.to_encoded_string()
    );
    assert_eq!(
        peer(&["acl", &node]).trim(),
        "denied",
        "anonymous peers cannot even read the ACL"
    );
    assert_eq!(
        peer(&["acl", &node, "srpc:s3cret"]).trim(),
        "digest",
        "creator-only digest ACL"
    );
    assert_eq!(
        peer(&["try-delete", &node]).trim(),
        "denied",
        "others cannot remove it"
    );
    // The owner still reads its own registrations.
    let found = provider
        .lookup(&Url::parse("consumer://127.0.0.1/com.acme.Secure").unwrap())
        .await
        .unwrap();
    assert_eq!(found, [mine]);
    provider.close().await.unwrap();
}

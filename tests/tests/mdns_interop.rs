//! mDNS interop with third-party DNS-SD stacks, both ways: python-zeroconf and avahi
//! (`avahi-publish-service`, `avahi-browse -rpt`), on loopback inside a private network
//! namespace made for this test binary. Installed by `cargo xtask integration`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Test code: failures panic.

use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use srpc_registry::{Registry, Snapshot, Subscription, Url};
use srpc_tests::avahi::Avahi;
use srpc_tests::peer::Peer;

const DEADLINE: Duration = Duration::from_secs(15);

async fn registry() -> Arc<dyn Registry> {
    srpc_tests::netns::private();
    srpc_tests::init_logs();
    srpc::registry::connect("mdns://local?timeout=300")
        .await
        .unwrap()
}

fn zeroconf(args: &[&str]) -> Peer {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/python/mdns_peer.py");
    let mut command = Command::new("python3");
    command.arg(script).args(args);
    Peer::spawn("python-zeroconf", command)
}

async fn wait(sub: &mut Subscription, what: &str, ok: impl Fn(&Snapshot) -> bool) -> Arc<Snapshot> {
    match sub.wait_for(ok, DEADLINE).await {
        Ok(s) => s,
        Err(e) => panic!("{what}: {e}; last snapshot {:?}", sub.snapshot()),
    }
}

/// A subscription to `interface` (plus `extra` parameters, such as a version).
fn query(interface: &str, extra: &str) -> Url {
    format!("consumer://127.0.0.1/{interface}?category=providers{extra}")
        .parse()
        .unwrap()
}

/// python-zeroconf publishes a service with TXT pairs and no srpc keys; srpc reads it as
/// `tcp://<address>:<port>/<TXT interface>?<other pairs>`, and sees its goodbye.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs python-zeroconf and avahi: cargo xtask integration"]
async fn srpc_finds_what_python_zeroconf_publishes() {
    let registry = registry().await;
    // A version in TXT selects as a URL's version does.
    let mut sub = registry
        .subscribe(&query("com.acme.ZeroconfLegacy", "&version=1.0"))
        .await
        .unwrap();
    let mut peer = zeroconf(&[
        "publish",
        "_srpc._tcp",
        "zeroconf-legacy",
        "7002",
        "interface=com.acme.ZeroconfLegacy",
        "version=1.0",
    ]);
    peer.wait_line(DEADLINE, "registered", |l| l == "registered")
        .await;
    let s = wait(&mut sub, "the zeroconf service is found", |s| s.len() == 1).await;
    let found = &s.providers()[0];
    assert_eq!(
        (found.protocol(), found.host(), found.port(), found.path()),
        ("tcp", "127.0.0.1", 7002, "com.acme.ZeroconfLegacy")
    );
    assert_eq!(found.param("version"), Some("1.0"));
    peer.finish(DEADLINE);
    wait(&mut sub, "the goodbye removes it", Snapshot::is_empty).await;
}

/// srpc publishes; python-zeroconf browses, resolves the TXT strings one per parameter, and
/// sees the goodbye on unregister.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs python-zeroconf and avahi: cargo xtask integration"]
async fn python_zeroconf_finds_what_srpc_publishes() {
    let registry = registry().await;
    let mut peer = zeroconf(&["browse", "_srpc._tcp"]);
    peer.wait_line(DEADLINE, "browsing", |l| l == "browsing")
        .await;
    let url: Url = "dubbo://127.0.0.1:20880/com.acme.Echo?version=1.0&region=東京&weight=10"
        .parse()
        .unwrap();
    registry.register(&url).await.unwrap();
    let line = peer
        .wait_line(DEADLINE, "the srpc instance resolved", |l| {
            l.contains("\"resolved\"")
        })
        .await;
    let v: Value = serde_json::from_str(&line).unwrap();
    let name = v["name"].as_str().unwrap().to_owned();
    assert!(name.starts_with("Echo-127-0-0-1-20880-"), "{name}");
    assert!(name.ends_with("._srpc._tcp.local."), "{name}");
    assert_eq!(v["port"], 20880);
    assert_eq!(v["addresses"], serde_json::json!(["127.0.0.1"]));
    let txt: Vec<(String, String)> = v["txt"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p[0].as_str().unwrap().to_owned(),
                p[1].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    let expected: Vec<(String, String)> = [
        ("txtvers", "1"),
        ("protocol", "dubbo"),
        ("path", "com.acme.Echo"),
        ("version", "1.0"),
        ("region", "東京"),
        ("weight", "10"),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect();
    // TXT order is the URL's parameter order after srpc's own keys.
    let mut sorted_txt = txt.clone();
    let mut sorted_expected = expected.clone();
    sorted_txt.sort();
    sorted_expected.sort();
    assert_eq!(sorted_txt, sorted_expected, "{txt:?}");
    assert_eq!(
        txt[..3],
        expected[..3],
        "srpc's own keys come first: {txt:?}"
    );
    registry.unregister(&url).await.unwrap();
    peer.wait_line(DEADLINE, "the goodbye", |l| {
        l.contains("\"removed\"") && l.contains(&name)
    })
    .await;
}

/// avahi both ways: `avahi-publish-service` is found by an srpc subscription (and its
/// goodbye seen), and `avahi-browse -rpt` resolves what srpc registers (and stops listing it
/// after unregister).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs python-zeroconf and avahi: cargo xtask integration"]
async fn avahi_both_ways() {
    let registry = registry().await;
    assert!(
        Avahi::is_installed(),
        "avahi-daemon, avahi-utils and dbus are installed by cargo xtask integration"
    );
    let avahi = Avahi::start();

    // avahi publishes, srpc finds.
    // The example of docs/mdns.md: a subscription to the interface finds it.
    let mut sub = registry
        .subscribe(&query("com.acme.Legacy", ""))
        .await
        .unwrap();
    let mut publish = avahi.command("avahi-publish-service");
    publish.args([
        "legacy",
        "_srpc._tcp",
        "7001",
        "interface=com.acme.Legacy",
        "owner=ops",
    ]);
    let mut publisher = Peer::spawn("avahi-publish-service", publish);
    let s = wait(&mut sub, "the avahi service is found", |s| s.len() == 1).await;
    let found = &s.providers()[0];
    assert_eq!(
        (found.protocol(), found.port(), found.path()),
        ("tcp", 7001, "com.acme.Legacy")
    );
    assert_eq!(found.host(), "127.0.0.1");
    assert_eq!(found.param("owner"), Some("ops"));
    // avahi-publish-service withdraws the service when it ends (SIGTERM from kill is
    // handled: it says goodbye).
    let pid = publisher.pid().to_string();
    Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    wait(&mut sub, "avahi's goodbye removes it", Snapshot::is_empty).await;
    publisher.finish(DEADLINE);

    // srpc publishes, avahi finds.
    let url: Url = "dubbo://127.0.0.1:20881/com.acme.Echo?version=1.0"
        .parse()
        .unwrap();
    registry.register(&url).await.unwrap();
    let until = tokio::time::Instant::now() + DEADLINE;
    let line = loop {
        let lines = avahi.browse("_srpc._tcp");
        if let Some(line) = lines
            .into_iter()
            .find(|l| l[3].starts_with("Echo-127-0-0-1-20881"))
        {
            break line;
        }
        assert!(
            tokio::time::Instant::now() < until,
            "avahi-browse never resolved srpc's instance"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    // =;lo;IPv4;<instance>;_srpc._tcp;local;<host>;<address>;<port>;<txt>
    assert_eq!(line[4], "_srpc._tcp");
    assert_eq!(line[6], "srpc-127-0-0-1.local");
    assert_eq!(line[7], "127.0.0.1");
    assert_eq!(line[8], "20881");
    for pair in [
        "\"txtvers=1\"",
        "\"protocol=dubbo\"",
        "\"path=com.acme.Echo\"",
        "\"version=1.0\"",
    ] {
        assert!(line[9].contains(pair), "{pair} not in {}", line[9]);
    }
    registry.unregister(&url).await.unwrap();
    let until = tokio::time::Instant::now() + DEADLINE;
    while avahi
        .browse("_srpc._tcp")
        .iter()
        .any(|l| l[3].starts_with("Echo-127-0-0-1-20881"))
    {
        assert!(
            tokio::time::Instant::now() < until,
            "avahi still lists the instance after its goodbye"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

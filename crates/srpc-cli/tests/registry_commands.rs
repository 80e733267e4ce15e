//! `srpc list`, `watch` and `register` as separate processes, over multicast on loopback.
//! Every child process is stopped by its PID before the test ends.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Test code: failures panic.

mod support;

use std::process::{Command, Output};

use support::{DEADLINE, Running};

fn srpc() -> Command {
    Command::new(env!("CARGO_BIN_EXE_srpc"))
}

fn registry_url() -> String {
    let port = std::net::UdpSocket::bind("0.0.0.0:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    format!("multicast://239.255.77.79:{port}?interface=127.0.0.1&timeout=300")
}

fn spawn(args: &[&str]) -> Running {
    let mut command = srpc();
    command.args(args);
    Running::spawn(command)
}

fn run(args: &[&str]) -> Output {
    srpc().args(args).output().unwrap()
}

/// Waits until `srpc list` prints what `expected` says, re-running it (each run is a fresh
/// subscriber that asks the group), within the deadline.
fn list_until(registry: &str, service: &str, expected: &str) {
    let deadline = std::time::Instant::now() + DEADLINE;
    loop {
        let out = run(&["list", registry, service, "--wait", "2s"]);
        // 0: providers printed; 3: none (yet).
        assert!(
            matches!(out.status.code(), Some(0 | 3)),
            "{:?}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        if stdout == expected {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "list printed {stdout:?}, wanted {expected:?}"
        );
    }
}

#[test]
fn register_then_list_then_unregister_on_sigterm() {
    let registry = registry_url();
    let a = "dubbo://127.0.0.1:20901/com.acme.Echo?side=provider&version=1.0";
    let b = "dubbo://127.0.0.1:20902/com.acme.Echo?side=provider&version=1.0";
    let other = "dubbo://127.0.0.1:20903/com.acme.Echo?side=provider&version=2.0";
    let pa = spawn(&["register", &registry, a]);
    let pb = spawn(&["register", &registry, b, "--for", "60s"]);
    let po = spawn(&["register", &registry, other]);
    list_until(&registry, "com.acme.Echo:1.0", &format!("{a}\n{b}\n"));
    list_until(&registry, "com.acme.Echo:2.0", &format!("{other}\n"));
    assert_eq!(
        pa.signal("-TERM"),
        Some(0),
        "register exits 0 after unregistering"
    );
    list_until(&registry, "com.acme.Echo:1.0", &format!("{b}\n"));
    assert_eq!(pb.signal("-TERM"), Some(0));
    assert_eq!(po.signal("-TERM"), Some(0));
}

#[test]
fn register_for_a_duration_exits_by_itself() {
    let registry = registry_url();
    let out = run(&[
        "register",
        &registry,
        "dubbo://127.0.0.1:20904/com.acme.Echo",
        "--for",
        "100ms",
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("registered dubbo://127.0.0.1:20904/com.acme.Echo")
    );
}

#[test]
fn watch_prints_plus_and_minus_lines() {
    let registry = registry_url();
    let watch = spawn(&["watch", &registry, "g/com.acme.Watched"]);
    let url = "dubbo://127.0.0.1:20905/com.acme.Watched?group=g&side=provider";
    // Whichever process is first, the watcher hears the provider: from its announcement, or
    // from its answer to the watcher's `subscribe`.
    let provider = spawn(&["register", &registry, url]);
    assert_eq!(watch.next_line(), format!("+ {url}"));
    assert_eq!(provider.signal("-TERM"), Some(0));
    assert_eq!(watch.next_line(), format!("- {url}"));
    assert_eq!(watch.signal("-TERM"), Some(0));
}

#[test]
fn bad_registry_or_service_exits_2() {
    let cases: [(&[&str], &str); 4] = [
        (
            &["list", "multicast://10.0.0.1:1234", "a.B"],
            "not a multicast group",
        ),
        (
            &["list", "gopher://h:1", "a.B"],
            "unsupported registry scheme \"gopher\"",
        ),
        (&["list", "inprocess://x", "g/"], "invalid service key"),
        (
            &["register", "inprocess://x", "empty://h/a.B"],
            "empty:// is a marker",
        ),
    ];
    for (args, needle) in cases {
        let out = run(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
    }
}

#[test]
#[ignore = "needs ZooKeeper: cargo xtask integration"]
fn register_list_and_watch_work_on_zookeeper() {
    let server =
        std::env::var("SRPC_ZOOKEEPER").expect("SRPC_ZOOKEEPER, set by cargo xtask integration");
    let registry = format!(
        "zookeeper://{server}?group=/srpc-cli-{}",
        std::process::id()
    );
    let url = "dubbo://127.0.0.1:20940/com.acme.Zk?side=provider";
    let watch = spawn(&["watch", &registry, "com.acme.Zk"]);
    let provider = spawn(&["register", &registry, url]);
    assert_eq!(watch.next_line(), format!("+ {url}"));
    list_until(&registry, "com.acme.Zk", &format!("{url}\n"));
    assert_eq!(provider.signal("-TERM"), Some(0));
    assert_eq!(watch.next_line(), format!("- {url}"));
    list_until(&registry, "com.acme.Zk", "");
    assert_eq!(watch.signal("-TERM"), Some(0));
}

#[test]
#[ignore = "needs etcd: cargo xtask integration"]
fn register_list_and_watch_work_on_etcd() {
    let server = std::env::var("SRPC_ETCD").expect("SRPC_ETCD, set by cargo xtask integration");
    let registry = format!("etcd://{server}?group=/srpc-cli-{}", std::process::id());
    let url = "dubbo://127.0.0.1:20941/com.acme.Etcd?side=provider";
    let watch = spawn(&["watch", &registry, "com.acme.Etcd"]);
    let provider = spawn(&["register", &registry, url]);
    assert_eq!(watch.next_line(), format!("+ {url}"));
    list_until(&registry, "com.acme.Etcd", &format!("{url}\n"));
    assert_eq!(provider.signal("-TERM"), Some(0));
    assert_eq!(watch.next_line(), format!("- {url}"));
    list_until(&registry, "com.acme.Etcd", "");
    assert_eq!(watch.signal("-TERM"), Some(0));
}

#[test]
#[ignore = "needs etcd: cargo xtask integration"]
fn a_sigkilled_provider_vanishes_from_etcd_within_its_ttl() {
    let server = std::env::var("SRPC_ETCD").expect("SRPC_ETCD, set by cargo xtask integration");
    // A lease of 3 s, which SIGKILL leaves to expire.
    let registry = format!(
        "etcd://{server}?group=/srpc-cli-kill-{}&session=3000",
        std::process::id()
    );
    let url = "dubbo://127.0.0.1:20942/com.acme.Killed?side=provider";
    let watch = spawn(&["watch", &registry, "com.acme.Killed"]);
    let provider = spawn(&["register", &registry, url]);
    assert_eq!(watch.next_line(), format!("+ {url}"));
    assert_eq!(provider.signal("-KILL"), None, "ended by the signal");
    let killed = std::time::Instant::now();
    assert_eq!(watch.next_line(), format!("- {url}"));
    let gone = killed.elapsed();
    // The TTL, plus etcd's expiry sweep (500 ms) and scheduling slack.
    assert!(
        gone <= std::time::Duration::from_secs(3 + 2),
        "gone after {gone:?}"
    );
    assert_eq!(watch.signal("-TERM"), Some(0));
}

#[test]
fn register_list_and_watch_work_on_consul() {
    // A fake agent on this test's runtime, or a real one from CONSUL_HTTP_ADDR.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let fake;
    let agent = match std::env::var("CONSUL_HTTP_ADDR") {
        Ok(addr) => addr.trim_start_matches("http://").to_owned(),
        Err(_) => {
            fake = runtime
                .block_on(srpc_tests::consul::FakeConsul::start())
                .unwrap();
            fake.addr().to_string()
        }
    };
    let registry = format!("consul://{agent}?consul-check-pass-interval=3000");
    let url = "dubbo://127.0.0.1:20943/com.acme.Consul?side=provider";
    let watch = spawn(&["watch", &registry, "com.acme.Consul"]);
    let provider = spawn(&["register", &registry, url]);
    assert_eq!(watch.next_line(), format!("+ {url}"));
    list_until(&registry, "com.acme.Consul", &format!("{url}\n"));
    assert_eq!(provider.signal("-TERM"), Some(0));
    assert_eq!(watch.next_line(), format!("- {url}"));
    list_until(&registry, "com.acme.Consul", "");
    assert_eq!(watch.signal("-TERM"), Some(0));
}

#[test]
fn registry_serve_then_register_list_and_watch_over_http() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let mut serve = srpc();
    serve.args([
        "registry",
        "serve",
        "--addr",
        &addr,
        "--ttl",
        "30s",
        "--no-state-file",
    ]);
    let server = Running::spawn(serve);
    let registry = format!("http://{addr}?ttl=3s&wait=2s");
    // The server is up once a list answers (3, "none matched", is an answer).
    let deadline = std::time::Instant::now() + DEADLINE;
    while run(&["list", &registry, "com.acme.Http"]).status.code() != Some(3) {
        assert!(
            std::time::Instant::now() < deadline,
            "the registry server did not come up"
        );
    }
    let url = "dubbo://127.0.0.1:20970/com.acme.Http?side=provider";
    let watch = spawn(&["watch", &registry, "com.acme.Http"]);
    let provider = spawn(&["register", &registry, url]);
    assert_eq!(watch.next_line(), format!("+ {url}"));
    list_until(&registry, "com.acme.Http", &format!("{url}\n"));
    assert_eq!(provider.signal("-TERM"), Some(0));
    assert_eq!(watch.next_line(), format!("- {url}"));
    assert_eq!(watch.signal("-TERM"), Some(0));
    assert_eq!(server.signal("-TERM"), Some(0), "graceful shutdown exits 0");
}

/// `list` and `services` never write: a typo'd interface leaves no node behind (`watch`
/// subscribes as `list` does; tests/tests/zookeeper.rs checks subscriptions directly).
#[test]
#[ignore = "needs ZooKeeper: cargo xtask integration"]
fn reading_commands_leave_nothing_on_zookeeper() {
    let server =
        std::env::var("SRPC_ZOOKEEPER").expect("SRPC_ZOOKEEPER, set by cargo xtask integration");
    let root = srpc_tests::servers::fresh_root("srpc-cli-readonly");
    let registry = format!("zookeeper://{server}?group={root}");
    let out = run(&["list", &registry, "com.acme.Ehco", "--wait", "200ms"]);
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(run(&["services", &registry]).status.code(), Some(3));
    let written = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(srpc_tests::servers::zookeeper_has(&root));
    assert!(!written, "a reading command created {root}");
}

/// `srpc unregister` deletes the node a killed provider's session left, before the session
/// expires.
#[test]
#[ignore = "needs ZooKeeper: cargo xtask integration"]
fn unregister_removes_a_dead_providers_node_on_zookeeper() {
    let server =
        std::env::var("SRPC_ZOOKEEPER").expect("SRPC_ZOOKEEPER, set by cargo xtask integration");
    let root = srpc_tests::servers::fresh_root("srpc-cli-unregister");
    let registry = format!("zookeeper://{server}?group={root}&session=60000");
    let url = "dubbo://127.0.0.1:20941/com.acme.ZkStale?side=provider";
    let provider = spawn(&["register", &registry, url]);
    list_until(&registry, "com.acme.ZkStale", &format!("{url}\n"));
    assert_eq!(provider.signal("-KILL"), None);
    let out = run(&["unregister", &registry, url]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = run(&["list", &registry, "com.acme.ZkStale"]);
    assert_eq!(
        out.status.code(),
        Some(3),
        "the 60 s session has not expired, yet it is gone"
    );
}

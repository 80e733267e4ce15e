//! `srpc demo`, run as a user runs it, over the embedded registry and other backends.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Test code: failures panic.

use std::process::Command;

fn demo(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_srpc"))
        .arg("demo")
        .args(args)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(
        out.status.code(),
        Some(0),
        "stdout:\n{stdout}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

fn check(stdout: &str) {
    let count = |prefix: &str| stdout.lines().filter(|l| l.starts_with(prefix)).count();
    assert_eq!(count("call Foo.Sum success: "), 5, "{stdout}");
    // Each call names the server that answered: one of the two registered.
    let servers: Vec<&str> = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("server ")?.strip_suffix(" registered"))
        .collect();
    assert_eq!(servers.len(), 2, "{stdout}");
    for i in 1..=5 {
        let line = format!("call Foo.Sum success: {i} + {} = {}", i * i, i + i * i);
        let found = stdout
            .lines()
            .find(|l| l.starts_with(&line))
            .unwrap_or_else(|| panic!("missing {line:?} in\n{stdout}"));
        let by = found
            .strip_prefix(&format!("{line} (answered by "))
            .and_then(|rest| rest.strip_suffix(')'))
            .unwrap_or_else(|| panic!("no server named in {found:?}"));
        assert!(servers.contains(&by), "{by} is not one of {servers:?}");
    }
    for l in stdout
        .lines()
        .filter(|l| l.starts_with("broadcast Foo.Sum success"))
    {
        assert!(
            l.ends_with(&format!(
                "(answered by {} and {})",
                servers.iter().min().unwrap(),
                servers.iter().max().unwrap()
            )),
            "a broadcast is answered by both: {l}"
        );
    }
    assert_eq!(count("broadcast Foo.Sum success: "), 5, "{stdout}");
    // Sleeps of 0..4 s against a 2 s deadline.
    assert!(
        stdout.contains("broadcast Foo.Sleep success: slept 0 s"),
        "{stdout}"
    );
    assert!(
        stdout.contains("broadcast Foo.Sleep success: slept 1 s"),
        "{stdout}"
    );
    let errors = count("broadcast Foo.Sleep error: ");
    assert!(
        (2..=3).contains(&errors),
        "{errors} Sleep broadcasts timed out:\n{stdout}"
    );
    assert_eq!(count("broadcast Foo.Sleep "), 5);
}

#[test]
fn demo_with_the_embedded_http_registry() {
    let stdout = demo(&[]);
    assert!(
        stdout.starts_with("registry: http://127.0.0.1:"),
        "{stdout}"
    );
    check(&stdout);
}

#[test]
fn demo_over_inprocess_and_multicast() {
    check(&demo(&["--registry", "inprocess://demo"]));
    let port = std::net::UdpSocket::bind("0.0.0.0:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    check(&demo(&[
        "--registry",
        &format!("multicast://239.255.77.81:{port}?interface=127.0.0.1&timeout=300"),
    ]));
}

#[test]
#[ignore = "needs ZooKeeper: cargo xtask integration"]
fn demo_over_zookeeper() {
    let server =
        std::env::var("SRPC_ZOOKEEPER").expect("SRPC_ZOOKEEPER, set by cargo xtask integration");
    check(&demo(&[
        "--registry",
        &format!(
            "zookeeper://{server}?group=/srpc-demo-{}",
            std::process::id()
        ),
    ]));
}

#[test]
#[ignore = "needs etcd: cargo xtask integration"]
fn demo_over_etcd() {
    let server = std::env::var("SRPC_ETCD").expect("SRPC_ETCD, set by cargo xtask integration");
    check(&demo(&[
        "--registry",
        &format!("etcd://{server}?group=/srpc-demo-{}", std::process::id()),
    ]));
}

#[test]
fn demo_over_a_fake_consul_agent() {
    // The agent runs on this runtime while the demo runs as its own process.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let agent = runtime
        .block_on(srpc_tests::consul::FakeConsul::start())
        .unwrap();
    check(&demo(&[
        "--registry",
        &format!("consul://{}?consul-check-pass-interval=3000", agent.addr()),
    ]));
    drop(agent);
}

#[test]
fn demo_over_an_external_http_registry() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    /// Stops the server by PID however the test ends.
    struct Stop(std::process::Child);
    impl Drop for Stop {
        fn drop(&mut self) {
            let _ = Command::new("kill")
                .args(["-TERM", &self.0.id().to_string()])
                .status();
            let _ = self.0.wait();
        }
    }
    let _server = Stop(
        Command::new(env!("CARGO_BIN_EXE_srpc"))
            .args(["registry", "serve", "--addr", &addr, "--no-state-file"])
            .spawn()
            .unwrap(),
    );
    // Serving once a TCP connection is accepted.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while std::net::TcpStream::connect(&addr).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "registry server did not start"
        );
    }
    check(&demo(&["--registry", &format!("http://{addr}?ttl=5s")]));
}

/// `demo --tls`: the servers serve TLS with a certificate from a CA made for the run, the
/// providers register `tls=true`, and every call and broadcast goes over TLS.
#[test]
fn demo_over_tls() {
    let stdout = demo(&["--tls"]);
    assert!(
        stdout.contains("TLS: a CA made for this run signed both servers' certificate"),
        "{stdout}"
    );
    check(&stdout);
}

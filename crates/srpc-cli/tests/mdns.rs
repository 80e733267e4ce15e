//! `srpc register` / `list` / `watch` over mDNS, as processes, on loopback inside a private
//! network namespace made for this test binary (`srpc_tests::netns`): nothing reaches this
//! machine's networks.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Test code: failures panic.

mod support;

use std::process::Command;
use std::time::{Duration, Instant};

use support::{DEADLINE, Running};

fn srpc(args: &[&str]) -> Running {
    let mut command = Command::new(env!("CARGO_BIN_EXE_srpc"));
    command.args(args);
    Running::spawn(command)
}

fn list(registry: &str, service: &str) -> Vec<String> {
    let out = Command::new(env!("CARGO_BIN_EXE_srpc"))
        .args(["list", registry, service, "--wait", "5s"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

#[test]
fn register_list_and_watch_over_mdns() {
    srpc_tests::netns::private();
    let registry = "mdns://local?timeout=300";
    let url = "dubbo://127.0.0.1:20950/com.acme.MdnsCli?side=provider";
    let watch = srpc(&["watch", registry, "com.acme.MdnsCli"]);
    let provider = srpc(&["register", registry, url, "--listen"]);
    assert_eq!(watch.next_line(), format!("+ {url}"));
    assert_eq!(list(registry, "com.acme.MdnsCli"), [url]);
    // SIGTERM: the provider unregisters, which sends a goodbye.
    assert_eq!(provider.signal("-TERM"), Some(0));
    assert_eq!(watch.next_line(), format!("- {url}"), "the goodbye is seen");
    assert_eq!(watch.signal("-TERM"), Some(0));
}

#[test]
fn a_killed_provider_leaves_every_subscription_within_session() {
    srpc_tests::netns::private();
    let session = Duration::from_millis(1500);
    let registry = format!("mdns://local?timeout=300&session={}", session.as_millis());
    let url = "dubbo://127.0.0.1:20951/com.acme.MdnsKilled?side=provider";
    let watchers: Vec<Running> = (0..2)
        .map(|_| srpc(&["watch", &registry, "com.acme.MdnsKilled"]))
        .collect();
    let provider = srpc(&["register", &registry, url, "--listen"]);
    for watch in &watchers {
        assert_eq!(watch.next_line(), format!("+ {url}"));
    }
    // Alive and answering probes: it stays over several probe rounds.
    assert_eq!(
        watchers[0].line_within(session * 2),
        None,
        "a live provider was removed"
    );
    // SIGKILL: no goodbye; only the watchers' probes can find out.
    let killed = Instant::now();
    assert_eq!(provider.signal("-KILL"), None);
    for watch in &watchers {
        assert_eq!(watch.next_line(), format!("- {url}"), "offline detection");
    }
    let took = killed.elapsed();
    // Within `session` of the last successful probe; a little scheduling slack on top.
    assert!(
        took <= session + Duration::from_secs(2),
        "removed {took:?} after the kill, session is {session:?}"
    );
    assert!(took < DEADLINE);
    for watch in watchers {
        assert_eq!(watch.signal("-TERM"), Some(0));
    }
}

#[test]
fn demo_over_mdns() {
    srpc_tests::netns::private();
    let out = Command::new(env!("CARGO_BIN_EXE_srpc"))
        .args(["demo", "--registry", "mdns://local"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    let count = |prefix: &str| stdout.lines().filter(|l| l.starts_with(prefix)).count();
    assert_eq!(count("call Foo.Sum success: "), 5, "{stdout}");
    assert_eq!(count("broadcast Foo.Sum success: "), 5, "{stdout}");
}

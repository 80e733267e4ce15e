//! Multicast between two "hosts": a provider and a consumer in two network namespaces joined
//! by a veth pair with link-local addresses, made and deleted by this test. Needs root.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Test code: failures panic.

mod support;

use std::process::Command;

use support::Running;
const ADDR_A: &str = "169.254.77.1";
const ADDR_B: &str = "169.254.77.2";
const ADDR6_A: &str = "fd77::1";
const ADDR6_B: &str = "fd77::2";

/// Two namespaces and the veth pair between them; deleted on drop.
struct Hosts {
    a: String,
    b: String,
}

fn ip(args: &[&str]) {
    let status = Command::new("ip").args(args).status().unwrap();
    assert!(status.success(), "ip {args:?} failed");
}

impl Hosts {
    fn new() -> Hosts {
        // Unique per test, so that tests can run side by side.
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let id = (std::process::id() % 10_000) * 10
            + NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % 10;
        let hosts = Hosts {
            a: format!("srpc-a-{id}"),
            b: format!("srpc-b-{id}"),
        };
        let (va, vb) = (format!("sa{id}"), format!("sb{id}"));
        ip(&["netns", "add", &hosts.a]);
        ip(&["netns", "add", &hosts.b]);
        ip(&["link", "add", &va, "type", "veth", "peer", "name", &vb]);
        ip(&["link", "set", &va, "netns", &hosts.a]);
        ip(&["link", "set", &vb, "netns", &hosts.b]);
        ip(&[
            "-n",
            &hosts.a,
            "addr",
            "add",
            &format!("{ADDR_A}/24"),
            "dev",
            &va,
        ]);
        ip(&[
            "-n",
            &hosts.b,
            "addr",
            "add",
            &format!("{ADDR_B}/24"),
            "dev",
            &vb,
        ]);
        for (ns, dev) in [(&hosts.a, &va), (&hosts.b, &vb)] {
            ip(&["-n", ns, "link", "set", dev, "up"]);
            ip(&["-n", ns, "link", "set", "lo", "up"]);
        }
        // IPv6 as well; `nodad` makes the addresses usable at once.
        for (ns, addr, dev) in [(&hosts.a, ADDR6_A, &va), (&hosts.b, ADDR6_B, &vb)] {
            ip(&[
                "-n",
                ns,
                "addr",
                "add",
                &format!("{addr}/64"),
                "dev",
                dev,
                "nodad",
            ]);
        }
        hosts
    }

    /// Runs `srpc args…` inside namespace `ns`. `ip netns exec` execs, so the PID is srpc's.
    fn srpc(&self, ns: &str, args: &[&str]) -> Running {
        let mut command = Command::new("ip");
        command
            .args(["netns", "exec", ns, env!("CARGO_BIN_EXE_srpc")])
            .args(args);
        Running::spawn(command)
    }
}

impl Drop for Hosts {
    fn drop(&mut self) {
        // Deleting a namespace deletes the veth end inside it, and so the pair.
        for ns in [&self.a, &self.b] {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

#[test]
#[ignore = "needs root and network namespaces: cargo xtask integration"]
fn discovery_unregister_and_offline_detection_across_two_hosts() {
    let hosts = Hosts::new();
    let group = "multicast://239.255.77.80:1234";
    let provider_registry = format!("{group}?interface={ADDR_A}");
    let consumer_registry = format!("{group}?interface={ADDR_B}&session=200&timeout=500");
    let killed = format!("dubbo://{ADDR_A}:20910/com.acme.Echo?side=provider");
    let leaving = format!("dubbo://{ADDR_A}:20911/com.acme.Echo?side=provider");

    let watch = hosts.srpc(&hosts.b, &["watch", &consumer_registry, "com.acme.Echo"]);
    let first = hosts.srpc(
        &hosts.a,
        &["register", &provider_registry, &killed, "--listen"],
    );
    assert_eq!(
        watch.next_line(),
        format!("+ {killed}"),
        "discovery across hosts"
    );

    let second = hosts.srpc(
        &hosts.a,
        &["register", &provider_registry, &leaving, "--listen"],
    );
    assert_eq!(watch.next_line(), format!("+ {leaving}"));
    assert_eq!(second.signal("-TERM"), Some(0));
    assert_eq!(
        watch.next_line(),
        format!("- {leaving}"),
        "unregister across hosts"
    );

    // Killed without a word: only the consumer's probes can find out.
    assert_eq!(first.signal("-KILL"), None);
    assert_eq!(
        watch.next_line(),
        format!("- {killed}"),
        "offline detection"
    );
    assert_eq!(watch.signal("-TERM"), Some(0));
    drop(hosts);
}

#[test]
#[ignore = "needs root and network namespaces: cargo xtask integration"]
fn an_ipv6_group_works_across_two_hosts() {
    let hosts = Hosts::new();
    let group = "multicast://[ff15::7777]:1234";
    let provider_registry = format!("{group}?interface={ADDR6_A}");
    let consumer_registry = format!("{group}?interface={ADDR6_B}&session=200&timeout=500");
    let url = format!("dubbo://[{ADDR6_A}]:20912/com.acme.Echo?side=provider");

    let watch = hosts.srpc(&hosts.b, &["watch", &consumer_registry, "com.acme.Echo"]);
    let provider = hosts.srpc(
        &hosts.a,
        &["register", &provider_registry, &url, "--listen"],
    );
    assert_eq!(watch.next_line(), format!("+ {url}"), "discovery over IPv6");
    assert_eq!(provider.signal("-KILL"), None);
    assert_eq!(
        watch.next_line(),
        format!("- {url}"),
        "offline detection over IPv6"
    );
    assert_eq!(watch.signal("-TERM"), Some(0));
    drop(hosts);
}

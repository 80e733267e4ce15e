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

/// A DNS name, uncompressed.
fn dns_name(out: &mut Vec<u8>, name: &str) {
    for label in name.split('.') {
        out.push(u8::try_from(label.len()).unwrap());
        out.extend_from_slice(label.as_bytes());
    }
    out.push(0);
}

/// Responses holding `count` PTR records for `_ghosted._tcp.local` to instances nobody
/// describes (no SRV, TXT or address), with the longest TTL: "half-known names".
fn ghost_responses(count: usize) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let per_message = 20;
    for chunk in (0..count).collect::<Vec<_>>().chunks(per_message) {
        let mut m = vec![0, 0, 0x84, 0, 0, 0];
        m.extend_from_slice(&u16::try_from(chunk.len()).unwrap().to_be_bytes());
        m.extend_from_slice(&[0, 0, 0, 0]);
        for i in chunk {
            dns_name(&mut m, "_ghosted._tcp.local");
            m.extend_from_slice(&[0, 12, 0, 1, 0xff, 0xff, 0xff, 0xff]);
            let mut target = Vec::new();
            dns_name(&mut target, &format!("ghost-{i}._ghosted._tcp.local"));
            m.extend_from_slice(&u16::try_from(target.len()).unwrap().to_be_bytes());
            m.extend_from_slice(&target);
        }
        out.push(m);
    }
    out
}

/// The group socket of the test: sends and hears on loopback, in the private namespace.
fn mdns_socket() -> std::net::UdpSocket {
    use std::net::{Ipv4Addr, SocketAddr};
    let socket = socket2::Socket::new(
        socket2::Domain::IPV4,
        socket2::Type::DGRAM,
        Some(socket2::Protocol::UDP),
    )
    .unwrap();
    socket.set_reuse_address(true).unwrap();
    socket.set_reuse_port(true).unwrap();
    socket
        .bind(&SocketAddr::from((Ipv4Addr::new(224, 0, 0, 251), 5353)).into())
        .unwrap();
    socket
        .join_multicast_v4(&Ipv4Addr::new(224, 0, 0, 251), &Ipv4Addr::LOCALHOST)
        .unwrap();
    socket.set_multicast_if_v4(&Ipv4Addr::LOCALHOST).unwrap();
    socket.set_multicast_loop_v4(true).unwrap();
    socket.into()
}

/// Questions in the queries about the `_ghosted._tcp` type heard on `socket` during `window`
/// (other tests' handles share the namespace; they browse other types).
fn questions_heard(socket: &std::net::UdpSocket, window: Duration) -> usize {
    let end = Instant::now() + window;
    let mut buf = [0u8; 9000];
    let mut questions = 0;
    while let Some(left) = end.checked_duration_since(Instant::now()) {
        socket
            .set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .unwrap();
        let Ok(len) = socket.recv(&mut buf) else {
            continue;
        };
        // A query: QR bit clear; QDCOUNT at bytes 4..6.
        let ours = buf[..len].windows(8).any(|w| w == b"_ghosted");
        if len >= 12 && buf[2] & 0x80 == 0 && ours {
            questions += usize::from(u16::from_be_bytes([buf[4], buf[5]]));
        }
    }
    questions
}

/// One burst of 20,000 half-known names once made an idle watcher ask about each of them
/// every second, one packet per name, forever (20,000 questions a second). Now each name
/// is asked at doubling intervals, questions share packets and one handle asks at most
/// 100 a second; and a provider registered after the flood is still discovered.
#[test]
fn a_flood_of_half_known_names_makes_no_query_storm() {
    srpc_tests::netns::private();
    let registry = "mdns://local?timeout=300&type=_ghosted._tcp";
    let watch = srpc(&["watch", registry, "com.acme.AfterGhosts"]);
    let socket = mdns_socket();
    // The watcher is up once its first browse query is heard.
    assert!(
        questions_heard(&socket, Duration::from_secs(3)) > 0,
        "the watcher never asked"
    );
    for datagram in ghost_responses(20_000) {
        socket.send_to(&datagram, ("224.0.0.251", 5353)).unwrap();
    }
    // A rate bound, not a speed claim: 100 questions a second plus a burst of 200 allow
    // 700 in five seconds; the flood once caused about 100,000.
    let asked = questions_heard(&socket, Duration::from_secs(5));
    eprintln!("{asked} questions in the 5 s after the flood");
    assert!(asked <= 1_000, "{asked} questions in 5 s");
    let url = "dubbo://127.0.0.1:20953/com.acme.AfterGhosts?side=provider";
    let provider = srpc(&["register", registry, url, "--listen"]);
    assert_eq!(watch.next_line(), format!("+ {url}"));
    assert_eq!(provider.signal("-TERM"), Some(0));
    assert_eq!(watch.signal("-TERM"), Some(0));
}

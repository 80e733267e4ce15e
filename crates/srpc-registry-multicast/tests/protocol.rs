//! Protocol tests: the test plays the Java side with raw UDP datagrams built from
//! `shared/reference/dubbo.md` §4, on loopback, with a free group port per test.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Test code: failures panic.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};
use srpc_registry_kit::{Error, Registry, Subscription, Url};
use srpc_registry_multicast::{MulticastRegistry, connect};
use tokio::net::UdpSocket;

const GROUP: Ipv4Addr = Ipv4Addr::new(239, 255, 77, 78);
const DEADLINE: Duration = Duration::from_secs(10);

/// A Java process as the network sees it: a socket on the group port, sending from `ip`.
struct JavaPeer {
    socket: UdpSocket,
    port: u16,
}

impl JavaPeer {
    /// A peer bound to `ip:port`. Bound to 0.0.0.0 it also receives the group's datagrams.
    fn new(ip: Ipv4Addr, port: u16) -> JavaPeer {
        let socket = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP)).unwrap();
        socket.set_reuse_address(true).unwrap();
        socket.set_reuse_port(true).unwrap();
        socket.bind(&SocketAddr::from((ip, port)).into()).unwrap();
        if ip.is_unspecified() {
            socket
                .join_multicast_v4(&GROUP, &Ipv4Addr::LOCALHOST)
                .unwrap();
        }
        socket.set_multicast_if_v4(&Ipv4Addr::LOCALHOST).unwrap();
        socket.set_multicast_loop_v4(true).unwrap();
        socket.set_nonblocking(true).unwrap();
        JavaPeer {
            socket: UdpSocket::from_std(socket.into()).unwrap(),
            port,
        }
    }

    async fn send(&self, datagram: &[u8]) {
        self.socket
            .send_to(datagram, (GROUP, self.port))
            .await
            .unwrap();
    }

    /// The next datagram whose text starts with `verb `, skipping others (the group also
    /// carries the peers' own subscribes).
    async fn expect(&self, verb: &str) -> (String, SocketAddr) {
        let mut buf = vec![0u8; 65536];
        tokio::time::timeout(DEADLINE, async {
            loop {
                let (len, from) = self.socket.recv_from(&mut buf).await.unwrap();
                let text = String::from_utf8_lossy(&buf[..len]).into_owned();
                if text.starts_with(&format!("{verb} ")) {
                    return (text, from);
                }
            }
        })
        .await
        .unwrap_or_else(|_| panic!("no {verb} datagram within {DEADLINE:?}"))
    }

    /// Whether a datagram is already waiting (without waiting for one).
    fn has_pending(&self) -> bool {
        let mut buf = [0u8; 16];
        self.socket.try_recv_from(&mut buf).is_ok()
    }
}

fn free_port() -> u16 {
    std::net::UdpSocket::bind("0.0.0.0:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn registry(port: u16, extra: &str) -> MulticastRegistry {
    let url = format!("multicast://{GROUP}:{port}?interface=127.0.0.1&timeout=200&{extra}");
    connect(&Url::parse(&url).unwrap()).await.unwrap()
}

fn url(s: &str) -> Url {
    Url::parse(s).unwrap()
}

/// A provider URL exactly as Java Dubbo 3 writes it (reference §1.5).
const JAVA_PROVIDER: &str = "dubbo://127.0.0.1:20880/com.acme.Echo?anyhost=true&application=echo-provider&deprecated=false&dubbo=2.0.2&dynamic=true&generic=false&interface=com.acme.Echo&methods=echo,ping&pid=4242&release=3.3.0&service-name-mapping=true&side=provider&timestamp=1700000000000";

async fn subscribe_echo(registry: &MulticastRegistry) -> Subscription {
    registry
        .subscribe(&url(
            "consumer://127.0.0.1/com.acme.Echo?application=rust-consumer&category=providers",
        ))
        .await
        .unwrap()
}

#[tokio::test]
async fn a_java_provider_announcing_is_seen_and_its_unregister_removes_it() {
    let port = free_port();
    let consumer = registry(port, "").await;
    let mut sub = subscribe_echo(&consumer).await;
    let java = JavaPeer::new(Ipv4Addr::UNSPECIFIED, port);
    java.send(format!("register {JAVA_PROVIDER}\n").as_bytes())
        .await;
    let snapshot = sub.wait_for(|s| s.len() == 1, DEADLINE).await.unwrap();
    let provider = &snapshot.providers()[0];
    assert_eq!(provider.to_full_string(), JAVA_PROVIDER);
    assert_eq!(provider.param("methods"), Some("echo,ping"));

    java.send(format!("unregister {JAVA_PROVIDER}\n").as_bytes())
        .await;
    sub.wait_for(|s| s.is_empty(), DEADLINE).await.unwrap();
}

#[tokio::test]
async fn a_java_consumer_subscribing_gets_a_unicast_answer() {
    let port = free_port();
    let provider = registry(port, "").await;
    let mine = url("dubbo://127.0.0.1:20881/com.acme.Echo?side=provider&version=1.0");
    provider.register(&mine).await.unwrap();
    // A consumer on "another host": its datagrams come from 127.0.0.2.
    let java = JavaPeer::new(Ipv4Addr::new(127, 0, 0, 2), port);
    java.send(b"subscribe consumer://127.0.0.2/com.acme.Echo?category=providers&version=1.0\n")
        .await;
    let (datagram, from) = java.expect("register").await;
    assert_eq!(datagram, format!("register {}\n", mine.to_full_string()));
    assert_eq!(
        from.port(),
        port,
        "answers leave from the group port, as Java's do"
    );
}

#[tokio::test]
async fn a_java_consumer_with_unicast_false_gets_a_multicast_answer() {
    let port = free_port();
    let provider = registry(port, "").await;
    let group_listener = JavaPeer::new(Ipv4Addr::UNSPECIFIED, port);
    let mine = url("dubbo://127.0.0.1:20882/com.acme.Echo?side=provider");
    provider.register(&mine).await.unwrap();
    // The provider's own announcement reaches the listener first; skip it.
    group_listener.expect("register").await;
    let java = JavaPeer::new(Ipv4Addr::new(127, 0, 0, 2), port);
    java.send(b"subscribe consumer://127.0.0.2/com.acme.Echo?category=providers&unicast=false\n")
        .await;
    let (datagram, _) = group_listener.expect("register").await;
    assert_eq!(datagram, format!("register {}\n", mine.to_full_string()));
    assert!(
        !java.has_pending(),
        "unicast=false must not be answered by unicast"
    );
}

#[tokio::test]
async fn non_matching_subscribes_get_no_answer() {
    let port = free_port();
    let provider = registry(port, "").await;
    provider
        .register(&url("dubbo://127.0.0.1:20883/com.acme.Echo?version=1.0"))
        .await
        .unwrap();
    provider
        .register(&url("dubbo://127.0.0.1:20884/com.acme.Other"))
        .await
        .unwrap();
    let java = JavaPeer::new(Ipv4Addr::new(127, 0, 0, 2), port);
    java.send(b"subscribe consumer://127.0.0.2/com.acme.Echo?version=2.0\n")
        .await;
    java.send(b"subscribe consumer://127.0.0.2/com.acme.Other\n")
        .await;
    let (datagram, _) = java.expect("register").await;
    assert!(
        datagram.contains("com.acme.Other"),
        "only the matching one answers: {datagram}"
    );
    assert!(!java.has_pending());
}

#[tokio::test]
async fn malformed_and_oversized_datagrams_are_skipped_and_disturb_nothing() {
    let port = free_port();
    let consumer = registry(port, "").await;
    let mut sub = subscribe_echo(&consumer).await;
    let java = JavaPeer::new(Ipv4Addr::UNSPECIFIED, port);
    let first = "dubbo://127.0.0.1:20890/com.acme.Echo?side=provider";
    java.send(format!("register {first}\n").as_bytes()).await;
    sub.wait_for(|s| s.len() == 1, DEADLINE).await.unwrap();

    let junk: Vec<Vec<u8>> = vec![
        b"".to_vec(),
        b"\0\0\0\0".to_vec(),
        b"hello world".to_vec(),
        b"register".to_vec(),
        b"register dubbo://127.0.0.1:99999/com.acme.Echo".to_vec(),
        b"register dubbo://fe80::1/com.acme.Echo".to_vec(),
        b"unregister ://nothing".to_vec(),
        b"register just-a-host".to_vec(),
        b"register empty://127.0.0.1/com.acme.Echo?category=providers".to_vec(),
        vec![0xff; 300],
        [b"register ".as_slice(), &vec![b'x'; 3000]].concat(),
    ];
    for datagram in &junk {
        java.send(datagram).await;
    }
    // Lenient forms of a valid message still work, including one larger than Java's buffer.
    let big = format!(
        "dubbo://127.0.0.1:20892/com.acme.Echo?methods={}",
        "m".repeat(3000)
    );
    java.send(b"  register\tdubbo://127.0.0.1:20891/com.acme.Echo?side=provider\r\n\0\0")
        .await;
    java.send(format!("register {big}\n").as_bytes()).await;
    let snapshot = sub.wait_for(|s| s.len() >= 3, DEADLINE).await.unwrap();
    let ports: Vec<u16> = snapshot.providers().iter().map(Url::port).collect();
    assert_eq!(ports, [20890, 20891, 20892], "{snapshot:?}");
    assert_eq!(snapshot.providers()[0].to_full_string(), first);
}

#[tokio::test]
async fn registrations_too_long_for_java_are_refused_and_never_sent() {
    let port = free_port();
    let provider = registry(port, "").await;
    let listener = JavaPeer::new(Ipv4Addr::UNSPECIFIED, port);
    let long = url(&format!(
        "dubbo://127.0.0.1:20893/com.acme.Echo?methods={}",
        "m".repeat(2100)
    ));
    let err = provider.register(&long).await.unwrap_err();
    assert!(matches!(err, Error::InvalidInput { .. }), "{err}");
    assert!(err.to_string().contains("2048"), "{err}");
    let barrier = url("dubbo://127.0.0.1:20894/com.acme.Echo");
    provider.register(&barrier).await.unwrap();
    let (datagram, _) = listener.expect("register").await;
    assert_eq!(datagram, format!("register {}\n", barrier.to_full_string()));
}

#[tokio::test]
async fn close_says_unregister_for_dynamic_registrations_only() {
    let port = free_port();
    let provider = registry(port, "").await;
    let listener = JavaPeer::new(Ipv4Addr::UNSPECIFIED, port);
    let persistent = url("dubbo://127.0.0.1:20895/com.acme.Echo?dynamic=false");
    let dynamic = url("dubbo://127.0.0.1:20896/com.acme.Echo");
    provider.register(&persistent).await.unwrap();
    provider.register(&dynamic).await.unwrap();
    provider.close().await.unwrap();
    let (datagram, _) = listener.expect("unregister").await;
    assert_eq!(
        datagram,
        format!("unregister {}\n", dynamic.to_full_string())
    );
}

#[tokio::test]
async fn providers_that_stop_accepting_connections_are_dropped_unless_clean_is_false() {
    let port = free_port();
    let cleaning = registry(port, "session=100").await;
    let keeping = registry(port, "session=100&clean=false").await;
    let mut sub = subscribe_echo(&cleaning).await;
    let mut kept = subscribe_echo(&keeping).await;
    let alive = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dead = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let alive_url = format!(
        "dubbo://127.0.0.1:{}/com.acme.Echo?side=provider",
        alive.local_addr().unwrap().port()
    );
    let dead_url = format!(
        "dubbo://127.0.0.1:{}/com.acme.Echo?side=provider",
        dead.local_addr().unwrap().port()
    );
    let java = JavaPeer::new(Ipv4Addr::UNSPECIFIED, port);
    java.send(format!("register {alive_url}\n").as_bytes())
        .await;
    java.send(format!("register {dead_url}\n").as_bytes()).await;
    sub.wait_for(|s| s.len() == 2, DEADLINE).await.unwrap();
    kept.wait_for(|s| s.len() == 2, DEADLINE).await.unwrap();

    // The "killed" provider: its port stops accepting, and it never says unregister.
    drop(dead);
    let snapshot = sub.wait_for(|s| s.len() == 1, DEADLINE).await.unwrap();
    assert_eq!(
        snapshot.providers()[0].to_full_string(),
        alive_url,
        "the live one stays"
    );
    assert_eq!(kept.snapshot().len(), 2, "clean=false keeps what it heard");
    drop(alive);
}

#[tokio::test]
async fn an_interface_address_this_machine_lacks_is_a_clear_error() {
    // 192.0.2.1 is TEST-NET-1: documentation only, never a local address. Nothing is sent.
    let url = Url::parse("multicast://239.255.77.78:1234?interface=192.0.2.1").unwrap();
    let err = connect(&url).await.unwrap_err();
    assert!(
        err.to_string()
            .contains("no local network interface has address 192.0.2.1"),
        "{err}"
    );
}

#[tokio::test]
async fn the_interface_can_be_named_and_works_as_its_address() {
    // `lo` is Linux's loopback interface: the same group traffic as interface=127.0.0.1.
    let port = free_port();
    let named = format!("multicast://{GROUP}:{port}?interface=lo&timeout=200");
    let named = connect(&url(&named)).await.unwrap();
    let mut sub = subscribe_echo(&named).await;
    let java = JavaPeer::new(Ipv4Addr::UNSPECIFIED, port);
    java.send(format!("register {JAVA_PROVIDER}\n").as_bytes())
        .await;
    sub.wait_for(|s| s.len() == 1, DEADLINE).await.unwrap();
    // Its own address is known: a subscribe from another host gets a unicast answer.
    let mine = url("dubbo://127.0.0.1:20882/com.acme.Echo?side=provider");
    named.register(&mine).await.unwrap();
    let other = JavaPeer::new(Ipv4Addr::new(127, 0, 0, 2), port);
    other
        .send(b"subscribe consumer://127.0.0.2/com.acme.Echo?category=providers\n")
        .await;
    let (datagram, _) = other.expect("register").await;
    assert!(datagram.contains(":20882/"), "{datagram}");
    let missing = Url::parse(&format!("multicast://{GROUP}:{port}?interface=nosuch0"));
    let err = connect(&missing.unwrap()).await.unwrap_err().to_string();
    assert!(
        err.contains("no local network interface named \"nosuch0\""),
        "{err}"
    );
}

#[tokio::test]
async fn a_handle_stops_probing_when_its_last_equal_subscription_is_dropped() {
    let port = free_port();
    let probing = registry(port, "session=100").await;
    let idle = registry(port, "session=100").await;
    let mut sub = subscribe_echo(&probing).await;
    // Two equal subscriptions on the idle handle, both dropped again.
    drop((subscribe_echo(&idle).await, subscribe_echo(&idle).await));
    let dead = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dead_url = format!(
        "dubbo://127.0.0.1:{}/com.acme.Echo",
        dead.local_addr().unwrap().port()
    );
    drop(dead);
    let java = JavaPeer::new(Ipv4Addr::UNSPECIFIED, port);
    java.send(format!("register {dead_url}\n").as_bytes()).await;
    sub.wait_for(|s| s.len() == 1, DEADLINE).await.unwrap();
    // The probing handle drops it after two failed probes; by then the idle handle would
    // have too, had it still been probing.
    sub.wait_for(|s| s.is_empty(), DEADLINE).await.unwrap();
    let query = url("consumer://127.0.0.1/com.acme.Echo?category=providers");
    let still_known = idle.catalog().lookup(&query);
    assert_eq!(
        still_known.len(),
        1,
        "an idle handle must not probe: {still_known:?}"
    );
}

/// What `lookup` of every service finds in the handle's catalog, by interface prefix.
async fn catalog_count(registry: &MulticastRegistry, prefix: &str) -> usize {
    registry
        .lookup(&url("consumer://127.0.0.1/*?category=providers"))
        .await
        .unwrap()
        .iter()
        .filter(|u| u.service_interface().starts_with(prefix))
        .count()
}

/// Sends `register` for `n` providers of services nobody subscribes to.
async fn junk(peer: &JavaPeer, from: u32, n: u32) {
    for i in from..from + n {
        let port = 1024 + i % 60_000;
        peer.send(format!("register dubbo://127.0.0.1:{port}/com.junk.S{i}\n").as_bytes())
            .await;
        if i % 32 == 0 {
            // Lets the receive loop keep up, so the kernel does not drop datagrams.
            tokio::task::yield_now().await;
        }
    }
}

#[tokio::test]
async fn registrations_of_unsubscribed_services_are_bounded_oldest_first() {
    let port = free_port();
    let consumer = registry(port, "clean=false&unsubscribed.max=100").await;
    let mut sub = subscribe_echo(&consumer).await;
    let java = JavaPeer::new(Ipv4Addr::UNSPECIFIED, port);
    java.send(format!("register {JAVA_PROVIDER}\n").as_bytes())
        .await;
    sub.wait_for(|s| s.len() == 1, DEADLINE).await.unwrap();
    junk(&java, 0, 2_000).await;
    // Datagrams are handled in order: once this one is seen, the flood before it was too.
    java.send(b"register dubbo://127.0.0.1:20881/com.acme.Echo\n")
        .await;
    sub.wait_for(|s| s.len() == 2, DEADLINE).await.unwrap();
    let kept = catalog_count(&consumer, "com.junk.").await;
    assert!(
        (1..=100).contains(&kept),
        "{kept} unsubscribed registrations kept, the bound is 100"
    );
    let newest = consumer
        .lookup(&url(
            "consumer://127.0.0.1/com.junk.S1999?category=providers",
        ))
        .await
        .unwrap();
    assert_eq!(newest.len(), 1, "the newest are the ones kept");
    assert_eq!(
        catalog_count(&consumer, "com.acme.Echo").await,
        2,
        "subscribed providers are never dropped for them"
    );
}

#[tokio::test]
async fn registrations_of_unsubscribed_services_expire() {
    let port = free_port();
    let consumer = registry(port, "unsubscribed.ttl=300ms").await;
    let java = JavaPeer::new(Ipv4Addr::UNSPECIFIED, port);
    junk(&java, 0, 1).await;
    let deadline = tokio::time::Instant::now() + DEADLINE;
    // Heard, then gone once not heard again for 300 ms.
    while catalog_count(&consumer, "com.junk.").await == 0 {
        assert!(tokio::time::Instant::now() < deadline, "never heard");
    }
    while catalog_count(&consumer, "com.junk.").await != 0 {
        assert!(tokio::time::Instant::now() < deadline, "never expired");
    }
}

#[tokio::test]
async fn a_full_catalog_drops_unsubscribed_registrations_for_subscribed_ones() {
    let port = free_port();
    let consumer = registry(port, "clean=false&catalog.max=50&unsubscribed.max=1000").await;
    let mut sub = subscribe_echo(&consumer).await;
    let java = JavaPeer::new(Ipv4Addr::UNSPECIFIED, port);
    junk(&java, 0, 200).await;
    for i in 0..10 {
        java.send(format!("register dubbo://127.0.0.1:{}/com.acme.Echo\n", 30_000 + i).as_bytes())
            .await;
    }
    sub.wait_for(|s| s.len() == 10, DEADLINE).await.unwrap();
    let junk_kept = catalog_count(&consumer, "com.junk.").await;
    assert!(
        junk_kept <= 40,
        "{junk_kept} + 10 subscribed is over catalog.max=50"
    );
}

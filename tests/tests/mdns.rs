//! The conformance suite on the mDNS backend, on loopback, inside a private network
//! namespace made for this test binary ([`srpc_tests::netns`]): nothing reaches this
//! machine's networks.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Test code: failures panic.

use std::sync::Arc;

use async_trait::async_trait;
use srpc_registry::Registry;
use srpc_tests::conformance::Factory;

struct Mdns;

#[async_trait]
impl Factory for Mdns {
    async fn pair(&self) -> (Arc<dyn Registry>, Arc<dyn Registry>) {
        srpc_tests::netns::private();
        srpc_tests::init_logs();
        let url = "mdns://local?timeout=300";
        let provider = srpc::registry::connect(url).await.unwrap();
        let consumer = srpc::registry::connect(url).await.unwrap();
        (provider, consumer)
    }

    /// Each parameter is one TXT string of at most 255 bytes: the suite's long URL has one
    /// long parameter.
    fn max_url_len(&self) -> usize {
        300
    }
}

srpc_tests::conformance_suite!(Mdns);

/// A socket on loopback that sends to the mDNS group, as any other host on the link could.
fn raw_sender() -> std::net::UdpSocket {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP)).unwrap();
    let any: std::net::SocketAddr = "127.0.0.1:0".parse().unwrap();
    socket.bind(&any.into()).unwrap();
    socket
        .set_multicast_if_v4(&std::net::Ipv4Addr::LOCALHOST)
        .unwrap();
    socket.into()
}

/// Junk on the link (not DNS, truncated, records that make no URL, a TXT with a bad key) is
/// skipped: the handle keeps what it had and keeps working.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_datagrams_are_skipped_and_lose_nothing() {
    let (p, c) = Mdns.pair().await;
    let query: srpc_registry::Url = "consumer://127.0.0.1/com.acme.Junk?category=providers"
        .parse()
        .unwrap();
    let good: srpc_registry::Url = "dubbo://127.0.0.1:20701/com.acme.Junk".parse().unwrap();
    p.register(&good).await.unwrap();
    let mut sub = c.subscribe(&query).await.unwrap();
    sub.wait_for(|s| s.contains(&good), std::time::Duration::from_secs(10))
        .await
        .unwrap();

    let sender = raw_sender();
    let group = "224.0.0.251:5353";
    let published =
        |port: u16, path: &str, pairs: &[(&str, &str)]| srpc_registry_mdns::wire::Published {
            label: format!("junk-{port}"),
            service: "_srpc._tcp.local".into(),
            host: "junk.local".into(),
            address: std::net::IpAddr::from([127, 0, 0, 1]),
            port,
            txt: [("txtvers", "1"), ("protocol", "dubbo"), ("path", path)]
                .iter()
                .chain(pairs)
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        };
    let mut junk: Vec<Vec<u8>> = vec![b"not dns at all".to_vec(), vec![0xff; 12], Vec::new()];
    let whole = srpc_registry_mdns::wire::responses(
        &[&published(20702, "com.acme.Junk", &[])],
        &[],
        false,
        None,
    )
    .remove(0);
    junk.push(whole[..whole.len() / 2].to_vec());
    // Complete records that make no valid URL: port 0, and a `dynamic` that is not a boolean.
    junk.extend(srpc_registry_mdns::wire::responses(
        &[
            &published(0, "com.acme.Junk", &[]),
            &published(20703, "com.acme.Junk", &[("dynamic", "maybe")]),
        ],
        &[],
        false,
        None,
    ));
    for datagram in &junk {
        sender.send_to(datagram, group).unwrap();
    }
    // A good foreign record after the junk: once it is seen, the junk before it was read.
    let barrier = published(20704, "com.acme.Junk", &[]);
    for datagram in srpc_registry_mdns::wire::responses(&[&barrier], &[], false, None) {
        sender.send_to(&datagram, group).unwrap();
    }
    let s = sub
        .wait_for(
            |s| s.providers().iter().any(|u| u.port() == 20704),
            std::time::Duration::from_secs(10),
        )
        .await
        .unwrap();
    let mut ports: Vec<u16> = s.providers().iter().map(|u| u.port()).collect();
    ports.sort_unstable();
    assert_eq!(ports, [20701, 20704], "junk made no provider and lost none");
    // Still working: a new registration is seen.
    let later: srpc_registry::Url = "dubbo://127.0.0.1:20705/com.acme.Junk".parse().unwrap();
    p.register(&later).await.unwrap();
    sub.wait_for(|s| s.contains(&later), std::time::Duration::from_secs(10))
        .await
        .unwrap();
}

/// A legacy resolver (a query from a port other than 5353, like `dig -p 5353 @224.0.0.251`)
/// gets a unicast answer with its ID and question (RFC 6762 §6.7).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn legacy_unicast_queries_get_a_unicast_answer() {
    let (p, _c) = Mdns.pair().await;
    let url: srpc_registry::Url = "dubbo://127.0.0.1:20710/com.acme.Legacy".parse().unwrap();
    p.register(&url).await.unwrap();
    let sender = raw_sender();
    sender
        .set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .unwrap();
    let mut query =
        srpc_registry_mdns::wire::query("_srpc._tcp.local", srpc_registry_mdns::wire::T_PTR, &[])
            .unwrap();
    query[0..2].copy_from_slice(&0x4242u16.to_be_bytes());
    sender.send_to(&query, "224.0.0.251:5353").unwrap();
    let mut buffer = [0u8; 9000];
    let (len, from) = sender.recv_from(&mut buffer).expect("a unicast answer");
    assert_eq!(from.port(), 5353);
    let answer = srpc_registry_mdns::wire::parse(&buffer[..len]).unwrap();
    assert!(answer.response);
    assert_eq!(answer.id, 0x4242);
    assert_eq!(answer.questions.len(), 1, "the question is echoed");
    assert!(
        answer.records.iter().any(|r| matches!(
            &r.data,
            srpc_registry_mdns::wire::Data::Srv { port: 20710, .. }
        )),
        "{answer:?}"
    );
}

#[test]
fn dropping_a_handle_stops_every_task() {
    srpc_tests::netns::private();
    srpc_tests::dropping_a_handle_stops_every_task(
        "mdns://local?timeout=300",
        std::time::Duration::from_secs(10),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handle_from_a_builder_works() {
    srpc_tests::netns::private();
    let config = srpc::registry::MdnsConfig::builder()
        .timeout(std::time::Duration::from_millis(300))
        .build()
        .unwrap();
    srpc_tests::a_handle_from_a_builder_works(srpc::registry::open(config).await.unwrap()).await;
}

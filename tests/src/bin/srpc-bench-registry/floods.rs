//! `floods`: what hostile peers can make a handle keep, each against its anchor in the same
//! run: the live heap a multicast handle, an mDNS handle and an RPC server hold after a
//! flood, and the questions an mDNS watcher asks during a flood of half-known names. Runs
//! inside a private network namespace (mDNS on 224.0.0.251, multicast on loopback).

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use srpc::rpc::frame::Frame;
use srpc::rpc::{Codec, HandlerError, Server};
use srpc_registry::Url;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::ALLOCATOR;
use crate::common::free_port;

const MIB: f64 = 1024.0 * 1024.0;

/// The live heap now, after letting background tasks settle.
async fn heap() -> usize {
    tokio::time::sleep(Duration::from_millis(500)).await;
    ALLOCATOR.allocated()
}

fn mib(bytes: usize) -> String {
    format!("{:.1} MiB", bytes as f64 / MIB)
}

/// A socket sending to `group:port` from loopback.
fn sender() -> UdpSocket {
    let socket = socket2::Socket::new(
        socket2::Domain::IPV4,
        socket2::Type::DGRAM,
        Some(socket2::Protocol::UDP),
    )
    .unwrap();
    socket
        .bind(&SocketAddr::from((Ipv4Addr::LOCALHOST, 0)).into())
        .unwrap();
    socket.set_multicast_if_v4(&Ipv4Addr::LOCALHOST).unwrap();
    socket.set_multicast_loop_v4(true).unwrap();
    socket.into()
}

/// Sends `datagrams`, pausing now and then so that the receiver keeps up (a kernel drop
/// would flatter the figure).
async fn send_all(socket: &UdpSocket, to: SocketAddr, datagrams: impl Iterator<Item = Vec<u8>>) {
    for (i, datagram) in datagrams.enumerate() {
        let _ = socket.send_to(&datagram, to);
        if i % 16 == 15 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
}

/// Heap growth of a multicast watcher after `n` `register` datagrams for services nobody
/// subscribes to, with the registry URL's `extra` parameters.
async fn multicast_growth(n: usize, extra: &str) -> usize {
    let port = free_port();
    let group = Ipv4Addr::new(239, 255, 77, 91);
    let url = format!("multicast://{group}:{port}?interface=127.0.0.1&timeout=100&{extra}");
    let registry = srpc::registry::connect(&url).await.unwrap();
    let query: Url = "consumer://127.0.0.1/bench.Watched?category=providers"
        .parse()
        .unwrap();
    let _sub = registry.subscribe(&query).await.unwrap();
    let before = heap().await;
    let socket = sender();
    send_all(
        &socket,
        SocketAddr::from((group, port)),
        (0..n).map(|i| {
            format!(
                "register dubbo://10.{}.{}.{}:20880/com.junk.Service{i}?application=junk&side=provider&timestamp=1700000000000\n",
                i >> 16 & 255,
                i >> 8 & 255,
                i & 255
            )
            .into_bytes()
        }),
    )
    .await;
    let after = heap().await;
    registry.close().await.unwrap();
    after.saturating_sub(before)
}

fn name(out: &mut Vec<u8>, text: &str) {
    for label in text.split('.') {
        out.push(label.len() as u8);
        out.extend_from_slice(label.as_bytes());
    }
    out.push(0);
}

/// A response carrying `records` (already encoded), with the longest TTL.
fn response(records: &[Vec<u8>]) -> Vec<u8> {
    let mut m = vec![0, 0, 0x84, 0, 0, 0];
    m.extend_from_slice(&(records.len() as u16).to_be_bytes());
    m.extend_from_slice(&[0, 0, 0, 0]);
    for r in records {
        m.extend_from_slice(r);
    }
    m
}

fn a_record(host: &str, i: usize) -> Vec<u8> {
    let mut r = Vec::new();
    name(&mut r, host);
    r.extend_from_slice(&[0, 1, 0, 1, 0xff, 0xff, 0xff, 0xff, 0, 4]);
    r.extend_from_slice(&[10, (i >> 16) as u8, (i >> 8) as u8, i as u8]);
    r
}

fn ghost_ptr(service: &str, i: usize) -> Vec<u8> {
    let mut r = Vec::new();
    name(&mut r, service);
    r.extend_from_slice(&[0, 12, 0, 1, 0xff, 0xff, 0xff, 0xff]);
    let mut target = Vec::new();
    name(&mut target, &format!("ghost-{i}.{service}"));
    r.extend_from_slice(&(target.len() as u16).to_be_bytes());
    r.extend_from_slice(&target);
    r
}

/// An mDNS socket of the bench, joined on loopback, to hear the watcher's queries.
fn mdns_listener() -> UdpSocket {
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
    socket.set_nonblocking(true).unwrap();
    socket.into()
}

/// Questions heard in queries about `label` (a service type) until `until`.
async fn questions(socket: &UdpSocket, label: &[u8], until: Instant) -> usize {
    let mut buf = [0u8; 9000];
    let mut count = 0;
    while Instant::now() < until {
        match socket.recv(&mut buf) {
            Ok(len) => {
                let ours = buf[..len].windows(label.len()).any(|w| w == label);
                if len >= 12 && buf[2] & 0x80 == 0 && ours {
                    count += usize::from(u16::from_be_bytes([buf[4], buf[5]]));
                }
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(2)).await,
        }
    }
    count
}

/// An mDNS watcher's heap growth after 100,000 A records for unrelated hosts and 100,000
/// half-known names, and the questions it asked in the 10 s after the flood began.
async fn mdns_flood() -> (usize, usize, Duration) {
    let service = "_flood._tcp.local";
    let registry = srpc::registry::connect("mdns://local?timeout=100&type=_flood._tcp")
        .await
        .unwrap();
    let query: Url = "consumer://127.0.0.1/bench.Watched?category=providers"
        .parse()
        .unwrap();
    let _sub = registry.subscribe(&query).await.unwrap();
    let listener = mdns_listener();
    let before = heap().await;
    let started = Instant::now();
    let socket = sender();
    let to = SocketAddr::from((Ipv4Addr::new(224, 0, 0, 251), 5353));
    let hosts = (0..100_000)
        .collect::<Vec<_>>()
        .chunks(40)
        .map(|c| {
            response(
                &c.iter()
                    .map(|&i| a_record(&format!("h{i}.local"), i))
                    .collect::<Vec<_>>(),
            )
        })
        .collect::<Vec<_>>();
    let ghosts = (0..100_000)
        .collect::<Vec<_>>()
        .chunks(20)
        .map(|c| response(&c.iter().map(|&i| ghost_ptr(service, i)).collect::<Vec<_>>()))
        .collect::<Vec<_>>();
    send_all(&socket, to, hosts.into_iter().chain(ghosts)).await;
    let flooded = started.elapsed();
    let asked = questions(&listener, b"_flood", started + Duration::from_secs(10)).await;
    let after = heap().await;
    registry.close().await.unwrap();
    (after.saturating_sub(before), asked, flooded)
}

/// Heap growth of an RPC server whose one client sends up to `calls` no-deadline calls of a
/// handler that never finishes, and never reads an answer. Returns the growth and how many
/// calls the client got written before the server stopped reading.
async fn rpc_growth(calls: u64, server: Server) -> (usize, u64) {
    let (_stop, stopped) = tokio::sync::watch::channel(());
    let running = server
        .handle("Bench.Hold", move |_: u64| {
            let mut stopped = stopped.clone();
            async move {
                let _ = stopped.changed().await;
                Ok::<u64, HandlerError>(0)
            }
        })
        .bind("127.0.0.1:0")
        .await
        .unwrap();
    let before = heap().await;
    let mut stream = tokio::net::TcpStream::connect(running.local_addr())
        .await
        .unwrap();
    stream
        .write_all(&srpc::rpc::frame::preface(Codec::Json))
        .await
        .unwrap();
    let mut answer = [0u8; 8];
    stream.read_exact(&mut answer).await.unwrap();
    let mut sent = 0;
    let mut batch = Vec::new();
    while sent < calls {
        batch.clear();
        for seq in sent + 1..=(sent + 1000).min(calls) {
            batch.extend(
                Frame::Request {
                    seq,
                    timeout_ms: 0,
                    method: "Bench.Hold".into(),
                    metadata: Default::default(),
                    body: b"1".to_vec(),
                }
                .encode(),
            );
        }
        // A server that stopped reading leaves the write pending: that is the bound at work.
        match tokio::time::timeout(Duration::from_secs(1), stream.write_all(&batch)).await {
            Ok(Ok(())) => sent = (sent + 1000).min(calls),
            _ => break,
        }
    }
    let after = heap().await;
    drop(stream);
    running.abort();
    (after.saturating_sub(before), sent)
}

/// A multicast watcher (session 1 s, so each probe waits at most 1 s) hears `fakes`
/// providers of its service at a port that never accepts, beside one live provider: how long
/// until every fake is dropped, and whether the live one ever left.
async fn probe_flood(fakes: usize, concurrency: usize) -> (Duration, bool) {
    let port = free_port();
    let group = Ipv4Addr::new(239, 255, 77, 92);
    let url = format!(
        "multicast://{group}:{port}?interface=127.0.0.1&timeout=100&session=1s&probe.concurrency={concurrency}"
    );
    let registry = srpc::registry::connect(&url).await.unwrap();
    let query: Url = "consumer://127.0.0.1/bench.Probed?category=providers"
        .parse()
        .unwrap();
    let mut sub = registry.subscribe(&query).await.unwrap();
    let live = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let live_url = format!(
        "dubbo://127.0.0.1:{}/bench.Probed",
        live.local_addr().unwrap().port()
    );
    let accepting = tokio::spawn(async move { while live.accept().await.is_ok() {} });
    let unanswering = srpc_tests::Unanswering::start().unwrap();
    let socket = sender();
    let to = SocketAddr::from((group, port));
    let started = Instant::now();
    let datagrams =
        std::iter::once(format!("register {live_url}\n").into_bytes()).chain((0..fakes).map(|i| {
            format!(
                "register dubbo://127.0.0.1:{}/bench.Probed?fake={i}\n",
                unanswering.port()
            )
            .into_bytes()
        }));
    send_all(&socket, to, datagrams).await;
    let mut live_left = false;
    let mut seen_all = false;
    loop {
        let snapshot = sub.snapshot();
        let providers = snapshot.providers();
        let has_live = providers.iter().any(|u| u.to_full_string() == live_url);
        seen_all |= providers.len() > fakes / 2;
        live_left |= seen_all && !has_live;
        if seen_all && providers.len() == 1 && has_live {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "fakes never dropped"
        );
        let _ = sub.changed().await;
    }
    let took = started.elapsed();
    accepting.abort();
    registry.close().await.unwrap();
    (took, live_left)
}

pub(crate) async fn floods() {
    srpc_tests::netns::private();
    // First, before other sections leave garbage that frees meanwhile.
    let calls = 300_000;
    let (bounded, sent) = rpc_growth(calls, Server::new()).await;
    let (anchor, anchor_sent) = rpc_growth(calls, Server::new().with_max_calls(usize::MAX)).await;
    println!(
        "floods     rpc {calls} no-deadline calls, answers never read: server heap +{} ({sent} calls written before it stopped reading; uncapped anchor +{} after {anchor_sent}; {:.3}x)",
        mib(bounded),
        mib(anchor),
        bounded as f64 / anchor.max(1) as f64
    );
    let n = 200_000;
    // Interleaved: the anchor (no bound, the old behaviour) and srpc's defaults.
    let unbounded = "unsubscribed.max=10000000&catalog.max=10000000";
    let anchor = multicast_growth(n, unbounded).await;
    let bounded = multicast_growth(n, "").await;
    println!(
        "floods     multicast {n} register datagrams for unsubscribed services: watcher heap +{} (unbounded anchor +{}; {:.3}x)",
        mib(bounded),
        mib(anchor),
        bounded as f64 / anchor.max(1) as f64
    );
    let (growth, asked, took) = mdns_flood().await;
    println!(
        "floods     mdns 100000 A records for unrelated hosts + 100000 half-known names (sent in {:.1} s): watcher heap +{}, {asked} questions in the 10 s from the start ({:.0}/s; the cap is 100/s after a burst of 200)",
        took.as_secs_f64(),
        mib(growth),
        asked as f64 / 10.0
    );
    let fakes = 500;
    let (anchor, _) = probe_flood(fakes, 1024).await;
    let (took, live_left) = probe_flood(fakes, 32).await;
    println!(
        "floods     prober {fakes} unanswering fakes + 1 live provider, session 1 s: all fakes dropped after {:.1} s with probe.concurrency=32 ({:.0} probes/s; the live one {}), {:.1} s with 1024 (anchor)",
        took.as_secs_f64(),
        (2 * fakes) as f64 / took.as_secs_f64(),
        if live_left { "LEFT" } else { "never left" },
        anchor.as_secs_f64()
    );
}

//! Benchmark: the RPC protocol over TLS beside plain TCP, in the same run, sides taking
//! turns: calls per second (one connection, 64 calls in flight, binary codec, loopback) and
//! the cost of opening a connection (TCP, TLS handshake, preface) against a plain one.
//!
//! `cargo xtask bench` runs it. `SRPC_BENCH_SECS` sets the time per measurement (default 3).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    missing_docs
)] // A benchmark binary.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use srpc_core::{Client, ClientOptions, Codec, HandlerError, RunningServer, Server};

const IN_FLIGHT: usize = 64;
const ROUNDS: u32 = 12;
const CONNECTS: usize = 200;

/// A CA, and a server certificate it signed for 127.0.0.1, as rustls configurations.
fn configs() -> (Arc<rustls::ServerConfig>, Arc<rustls::ClientConfig>) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = params.self_signed(&ca_key).unwrap();
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec!["127.0.0.1".to_owned()])
        .unwrap()
        .signed_by(&key, &ca, &ca_key)
        .unwrap();
    let server =
        srpc_core::server_config_from_pem(cert.pem().as_bytes(), key.serialize_pem().as_bytes())
            .unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.der().clone()).unwrap();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let client = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    (server, Arc::new(client))
}

async fn server(tls: Option<Arc<rustls::ServerConfig>>) -> RunningServer {
    let mut server = Server::new().handle("Bench.Sum", |(a, b): (i64, i64)| async move {
        Ok::<_, HandlerError>(a + b)
    });
    if let Some(config) = tls {
        server = server.with_tls(config);
    }
    server.bind("127.0.0.1:0").await.unwrap()
}

fn options(tls: Option<&Arc<rustls::ClientConfig>>) -> ClientOptions {
    let options = ClientOptions::default().with_codec(Codec::Binary);
    match tls {
        Some(config) => options.with_tls(config.clone(), None),
        None => options,
    }
}

/// `IN_FLIGHT` loops of calls on `client` for `duration`: the calls made.
async fn calls(client: &Client, duration: Duration) -> usize {
    let started = Instant::now();
    let workers = (0..IN_FLIGHT).map(|w| {
        let client = client.clone();
        tokio::spawn(async move {
            let (mut n, mut i) = (0, w as i64);
            while started.elapsed() < duration {
                let sum: i64 = client
                    .call("Bench.Sum", &(i, 1i64), Duration::from_secs(10))
                    .await
                    .unwrap();
                assert_eq!(sum, i + 1);
                n += 1;
                i += 1;
            }
            n
        })
    });
    join_all(workers)
        .await
        .into_iter()
        .map(|n| n.unwrap())
        .sum()
}

fn median(mut samples: Vec<Duration>) -> (Duration, Duration, Duration) {
    samples.sort_unstable();
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q) as usize];
    (at(0.5), at(0.1), at(0.9))
}

fn main() {
    let secs: u64 = std::env::var("SRPC_BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    let round = Duration::from_secs(secs) / ROUNDS;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let (server_tls, client_tls) = configs();
        let plain = server(None).await;
        let tls = server(Some(server_tls)).await;
        let (plain_addr, tls_addr) = (plain.local_addr().to_string(), tls.local_addr().to_string());
        let plain_client = Client::connect(&plain_addr, options(None)).await.unwrap();
        let tls_client = Client::connect(&tls_addr, options(Some(&client_tls)))
            .await
            .unwrap();
        // Warm up, then rounds taking turns.
        calls(&plain_client, round).await;
        calls(&tls_client, round).await;
        let (mut plain_calls, mut tls_calls) = (0, 0);
        for r in 0..ROUNDS {
            if r % 2 == 0 {
                plain_calls += calls(&plain_client, round).await;
                tls_calls += calls(&tls_client, round).await;
            } else {
                tls_calls += calls(&tls_client, round).await;
                plain_calls += calls(&plain_client, round).await;
            }
        }
        let total = round.as_secs_f64() * f64::from(ROUNDS);
        let (plain_rate, tls_rate) = (plain_calls as f64 / total, tls_calls as f64 / total);
        println!(
            "one connection, {IN_FLIGHT} calls in flight, binary codec, {secs} s each ({ROUNDS} rounds, sides taking turns), loopback"
        );
        println!("srpc plain                   {plain_rate:>10.0} calls/s");
        println!("srpc TLS (aws-lc-rs)         {tls_rate:>10.0} calls/s");
        println!("TLS/plain throughput ratio: {:.2}", tls_rate / plain_rate);
        // Opening a connection: interleaved, one at a time.
        let (mut plain_times, mut tls_times) = (Vec::new(), Vec::new());
        for _ in 0..CONNECTS {
            let t = Instant::now();
            drop(Client::connect(&plain_addr, options(None)).await.unwrap());
            plain_times.push(t.elapsed());
            let t = Instant::now();
            drop(
                Client::connect(&tls_addr, options(Some(&client_tls)))
                    .await
                    .unwrap(),
            );
            tls_times.push(t.elapsed());
        }
        let (p50, p10, p90) = median(plain_times);
        let (t50, t10, t90) = median(tls_times);
        println!(
            "connect, median (p10-p90) of {CONNECTS}: plain {:.0} µs ({:.0}-{:.0}), TLS {:.0} µs ({:.0}-{:.0}); ratio {:.1}",
            p50.as_secs_f64() * 1e6,
            p10.as_secs_f64() * 1e6,
            p90.as_secs_f64() * 1e6,
            t50.as_secs_f64() * 1e6,
            t10.as_secs_f64() * 1e6,
            t90.as_secs_f64() * 1e6,
            t50.as_secs_f64() / p50.as_secs_f64()
        );
        plain.shutdown().await.unwrap();
        tls.shutdown().await.unwrap();
    });
}

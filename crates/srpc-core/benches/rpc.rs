//! Benchmark: srpc calls per second and latency over loopback, one connection, 64 calls in
//! flight, a small payload; both codecs; and the same workload on tarpc in the same run.
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

use futures_util::StreamExt;
use futures_util::future::join_all;
use srpc_core::{Client, ClientOptions, Codec, HandlerError, Server};
use tarpc::server::{BaseChannel, Channel};
use tarpc::tokio_serde::formats::{Bincode, Json};
use tarpc::{client, context};

const IN_FLIGHT: usize = 64;

#[tarpc::service]
trait Bench {
    async fn sum(a: i64, b: i64) -> i64;
}

#[derive(Clone)]
struct BenchServer;

impl Bench for BenchServer {
    async fn sum(self, _: context::Context, a: i64, b: i64) -> i64 {
        a + b
    }
}

/// Calls per second and latency percentiles of one run.
struct Run {
    calls_per_sec: f64,
    p50: Duration,
    p99: Duration,
}

/// Runs `IN_FLIGHT` loops of `call` for `duration`, timing every call.
async fn measure<F, Fut>(duration: Duration, call: F) -> Run
where
    F: Fn(i64) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = i64> + Send,
{
    let call = Arc::new(call);
    // Warm up: connections, allocators, caches.
    join_all((0..IN_FLIGHT as i64).map(|i| call(i))).await;
    let started = Instant::now();
    let workers = (0..IN_FLIGHT).map(|w| {
        let call = call.clone();
        tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(100_000);
            let mut i = w as i64;
            while started.elapsed() < duration {
                let t = Instant::now();
                let sum = call(i).await;
                latencies.push(t.elapsed());
                assert_eq!(sum, i + 1);
                i += 1;
            }
            latencies
        })
    });
    let mut latencies: Vec<Duration> = join_all(workers)
        .await
        .into_iter()
        .flat_map(Result::unwrap)
        .collect();
    let elapsed = started.elapsed();
    latencies.sort_unstable();
    let at = |q: f64| latencies[((latencies.len() as f64 * q) as usize).min(latencies.len() - 1)];
    Run {
        calls_per_sec: latencies.len() as f64 / elapsed.as_secs_f64(),
        p50: at(0.50),
        p99: at(0.99),
    }
}

async fn srpc(codec: Codec, duration: Duration) -> Run {
    let server = Server::new()
        .handle("Bench.Sum", |(a, b): (i64, i64)| async move {
            Ok::<_, HandlerError>(a + b)
        })
        .bind("127.0.0.1:0")
        .await
        .unwrap();
    let client = Client::connect(
        &server.local_addr().to_string(),
        ClientOptions::default().with_codec(codec),
    )
    .await
    .unwrap();
    let run = measure(duration, move |i| {
        let client = client.clone();
        async move {
            client
                .call("Bench.Sum", &(i, 1i64), Duration::from_secs(10))
                .await
                .unwrap()
        }
    })
    .await;
    server.shutdown().await;
    run
}

/// The same workload on tarpc, over its TCP serde transport with the codec `$codec`
/// (`Json::default` or `Bincode::default`). A macro because the two codecs are different
/// types and tarpc's transport bounds would be longer than the body.
macro_rules! tarpc_run {
    ($codec:expr, $duration:expr) => {{
        let mut listener = tarpc::serde_transport::tcp::listen("127.0.0.1:0", $codec)
            .await
            .unwrap();
        let addr = listener.local_addr();
        listener.config_mut().max_frame_length(usize::MAX);
        tokio::spawn(
            listener
                .filter_map(|r| async { r.ok() })
                .for_each(|transport| async {
                    tokio::spawn(
                        BaseChannel::with_defaults(transport)
                            .execute(BenchServer.serve())
                            .for_each(|f| async {
                                tokio::spawn(f);
                            }),
                    );
                }),
        );
        let transport = tarpc::serde_transport::tcp::connect(addr, $codec)
            .await
            .unwrap();
        let client = BenchClient::new(client::Config::default(), transport).spawn();
        measure($duration, move |i| {
            let client = client.clone();
            async move { client.sum(context::current(), i, 1).await.unwrap() }
        })
        .await
    }};
}

fn report(name: &str, run: &Run) {
    println!(
        "{name:<28} {:>10.0} calls/s   p50 {:>8.1} µs   p99 {:>8.1} µs",
        run.calls_per_sec,
        run.p50.as_secs_f64() * 1e6,
        run.p99.as_secs_f64() * 1e6
    );
}

fn main() {
    let secs: u64 = std::env::var("SRPC_BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    let duration = Duration::from_secs(secs);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        println!("one connection, {IN_FLIGHT} calls in flight, (i64, i64) -> i64, {secs} s each, loopback");
        let srpc_json = srpc(Codec::Json, duration).await;
        report("srpc json", &srpc_json);
        let srpc_binary = srpc(Codec::Binary, duration).await;
        report("srpc binary (postcard)", &srpc_binary);
        let tarpc_json = tarpc_run!(Json::default, duration);
        report("tarpc json", &tarpc_json);
        let tarpc_bincode = tarpc_run!(Bincode::default, duration);
        report("tarpc bincode", &tarpc_bincode);
        println!("srpc/tarpc throughput ratio, json: {:.2}", srpc_json.calls_per_sec / tarpc_json.calls_per_sec);
        println!("srpc/tarpc throughput ratio, binary: {:.2}", srpc_binary.calls_per_sec / tarpc_bincode.calls_per_sec);
        // The headline: each side with its binary codec.
        println!("srpc/tarpc throughput ratio: {:.2}", srpc_binary.calls_per_sec / tarpc_bincode.calls_per_sec);
    });
}

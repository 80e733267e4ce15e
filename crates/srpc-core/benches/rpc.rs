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

use futures_util::future::BoxFuture;
use futures_util::future::join_all;
use futures_util::{FutureExt, StreamExt};
use srpc_core::{Client, ClientOptions, Codec, HandlerError, RunningServer, Server};
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

/// One side of the comparison: a call through one connection, as a boxed future so that
/// srpc and tarpc, with either codec, take turns in one loop.
type Call = Arc<dyn Fn(i64) -> BoxFuture<'static, i64> + Send + Sync>;

/// What one side measured over all its rounds.
#[derive(Default)]
struct Run {
    elapsed: Duration,
    /// One per call.
    latencies: Vec<Duration>,
}

impl Run {
    fn calls_per_sec(&self) -> f64 {
        self.latencies.len() as f64 / self.elapsed.as_secs_f64()
    }

    fn at(&self, q: f64) -> Duration {
        let n = self.latencies.len();
        self.latencies[((n as f64 * q) as usize).min(n - 1)]
    }
}

/// Runs `IN_FLIGHT` loops of `call` for `duration`, timing every call, into `run`.
async fn measure(duration: Duration, call: &Call, run: &mut Run) {
    let started = Instant::now();
    let workers = (0..IN_FLIGHT).map(|w| {
        let call = call.clone();
        tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(50_000);
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
    for latencies in join_all(workers).await {
        run.latencies.extend(latencies.unwrap());
    }
    run.elapsed += started.elapsed();
}

/// An srpc server and a client of it with `codec`.
async fn srpc(codec: Codec) -> (RunningServer, Call) {
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
    let call: Call = Arc::new(move |i| {
        let client = client.clone();
        async move {
            client
                .call("Bench.Sum", &(i, 1i64), Duration::from_secs(10))
                .await
                .unwrap()
        }
        .boxed()
    });
    (server, call)
}

/// The same workload on tarpc, over its TCP serde transport with the codec `$codec`
/// (`Json::default` or `Bincode::default`). A macro because the two codecs are different
/// types and tarpc's transport bounds would be longer than the body.
macro_rules! tarpc_side {
    ($codec:expr) => {{
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
        let call: Call = Arc::new(move |i| {
            let client = client.clone();
            async move { client.sum(context::current(), i, 1).await.unwrap() }.boxed()
        });
        call
    }};
}

fn report(name: &str, run: &Run) {
    println!(
        "{name:<28} {:>10.0} calls/s   p50 {:>8.1} µs   p99 {:>8.1} µs",
        run.calls_per_sec(),
        run.at(0.50).as_secs_f64() * 1e6,
        run.at(0.99).as_secs_f64() * 1e6
    );
}

/// Rounds per side: the sides take turns, a round each, so that every side sees the same
/// stretches of a noisy machine (one after another, a side that ran in a slow stretch moved
/// the ratio by a quarter between runs).
const ROUNDS: u32 = 12;

fn main() {
    let secs: u64 = std::env::var("SRPC_BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    let duration = Duration::from_secs(secs);
    let round = duration / ROUNDS;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        println!(
            "one connection, {IN_FLIGHT} calls in flight, (i64, i64) -> i64, {secs} s each \
             ({ROUNDS} rounds, the sides taking turns), loopback"
        );
        let (json_server, srpc_json) = srpc(Codec::Json).await;
        let (binary_server, srpc_binary) = srpc(Codec::Binary).await;
        let sides: [(&str, Call); 4] = [
            ("srpc json", srpc_json),
            ("srpc binary (postcard)", srpc_binary),
            ("tarpc json", tarpc_side!(Json::default)),
            ("tarpc bincode", tarpc_side!(Bincode::default)),
        ];
        let mut runs: [Run; 4] = Default::default();
        // Warm up: connections, allocators, caches; not counted.
        for (_, call) in &sides {
            measure(round, call, &mut Run::default()).await;
        }
        for r in 0..ROUNDS as usize {
            // A different side first in each round.
            for k in 0..sides.len() {
                let i = (k + r) % sides.len();
                measure(round, &sides[i].1, &mut runs[i]).await;
            }
        }
        for ((name, _), run) in sides.iter().zip(runs.iter_mut()) {
            run.latencies.sort_unstable();
            report(name, run);
        }
        let [srpc_json, srpc_binary, tarpc_json, tarpc_bincode] = &runs;
        println!(
            "srpc/tarpc throughput ratio, json: {:.2}",
            srpc_json.calls_per_sec() / tarpc_json.calls_per_sec()
        );
        println!(
            "srpc/tarpc throughput ratio, binary: {:.2}",
            srpc_binary.calls_per_sec() / tarpc_bincode.calls_per_sec()
        );
        // The headline: each side with its binary codec.
        println!(
            "srpc/tarpc throughput ratio: {:.2}",
            srpc_binary.calls_per_sec() / tarpc_bincode.calls_per_sec()
        );
        json_server.shutdown().await.unwrap();
        binary_server.shutdown().await.unwrap();
    });
}

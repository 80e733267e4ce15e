//! Benchmark: a tonic-generated client over `srpc::tonic::BalancedChannel` beside the same
//! client over a plain `tonic::transport::Channel` to the same server, in one run, sides
//! taking turns: calls per second and latency percentiles, 64 calls in flight, loopback.
//! The balanced channel follows a static list of that one server, so the difference is
//! srpc's pick and its per-call bookkeeping.
//!
//! `cargo xtask bench` runs it. `SRPC_BENCH_SECS` sets the time per side (default 3).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    missing_docs
)] // A benchmark binary.

use std::time::{Duration, Instant};

use futures_util::future::join_all;
use srpc::tonic::{BalanceOptions, BalancedChannel};
use srpc::xclient::{Discovery, Selector};
use srpc_example_tonic::helloworld::greeter_client::GreeterClient;
use srpc_example_tonic::helloworld::greeter_server::{Greeter, GreeterServer};
use srpc_example_tonic::helloworld::{HelloReply, HelloRequest};
use tonic::{Request, Response, Status};

const IN_FLIGHT: usize = 64;
const ROUNDS: u32 = 12;

struct Hello;

#[tonic::async_trait]
impl Greeter for Hello {
    async fn say_hello(
        &self,
        request: Request<HelloRequest>,
    ) -> Result<Response<HelloReply>, Status> {
        Ok(Response::new(HelloReply {
            message: request.into_inner().name,
        }))
    }
}

/// `IN_FLIGHT` loops of calls for `duration`: the latency of every call.
async fn calls<T>(client: &GreeterClient<T>, duration: Duration) -> Vec<Duration>
where
    T: tonic::client::GrpcService<tonic::body::Body> + Clone + Send + 'static,
    T::Future: Send,
    T::Error: Into<tonic::codegen::StdError>,
    T::ResponseBody: tonic::codegen::Body<Data = tonic::codegen::Bytes> + Send + 'static,
    <T::ResponseBody as tonic::codegen::Body>::Error: Into<tonic::codegen::StdError> + Send,
{
    let started = Instant::now();
    let workers = (0..IN_FLIGHT).map(|_| {
        let mut client = client.clone();
        tokio::spawn(async move {
            let mut latencies = Vec::new();
            while started.elapsed() < duration {
                let t = Instant::now();
                let reply = client
                    .say_hello(HelloRequest { name: "x".into() })
                    .await
                    .unwrap();
                latencies.push(t.elapsed());
                assert_eq!(reply.into_inner().message, "x");
            }
            latencies
        })
    });
    join_all(workers)
        .await
        .into_iter()
        .flat_map(|l| l.unwrap())
        .collect()
}

fn percentile(sorted: &[Duration], q: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * q) as usize].as_secs_f64() * 1e6
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
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(GreeterServer::new(Hello))
                .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
        );
        let plain = GreeterClient::new(
            tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
                .unwrap()
                .tcp_nodelay(true)
                .connect()
                .await
                .unwrap(),
        );
        let (discovery, _list) =
            Discovery::servers([format!("tri://{addr}/helloworld.Greeter").as_str()]).unwrap();
        let balanced = GreeterClient::new(BalancedChannel::from_discovery(
            discovery,
            BalanceOptions::default().with_selector(Selector::RoundRobin),
        ));
        // Warm up, then rounds taking turns.
        calls(&plain, round).await;
        calls(&balanced, round).await;
        let (mut plain_lat, mut balanced_lat) = (Vec::new(), Vec::new());
        for r in 0..ROUNDS {
            if r % 2 == 0 {
                plain_lat.extend(calls(&plain, round).await);
                balanced_lat.extend(calls(&balanced, round).await);
            } else {
                balanced_lat.extend(calls(&balanced, round).await);
                plain_lat.extend(calls(&plain, round).await);
            }
        }
        let total = round.as_secs_f64() * f64::from(ROUNDS);
        plain_lat.sort_unstable();
        balanced_lat.sort_unstable();
        let (plain_rate, balanced_rate) = (
            plain_lat.len() as f64 / total,
            balanced_lat.len() as f64 / total,
        );
        println!(
            "tonic unary calls, {IN_FLIGHT} in flight, {secs} s a side ({ROUNDS} rounds, sides taking turns), loopback"
        );
        println!("                         calls/s    p50 µs    p99 µs");
        for (name, rate, lat) in [
            ("tonic Channel", plain_rate, &plain_lat),
            ("srpc BalancedChannel", balanced_rate, &balanced_lat),
        ] {
            println!(
                "{name:<22} {rate:>10.0} {:>9.0} {:>9.0}",
                percentile(lat, 0.5),
                percentile(lat, 0.99)
            );
        }
        println!(
            "balanced/plain: throughput {:.2}, p99 {:.2}",
            balanced_rate / plain_rate,
            percentile(&balanced_lat, 0.99) / percentile(&plain_lat, 0.99)
        );
        server.abort();
    });
}

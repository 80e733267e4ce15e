//! `heartbeats`: HTTP registry heartbeats per second against etcd lease keepalives.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::{Series, ms, process_cpu};

/// Sends `requests` (path, JSON body), round-robin, from `WORKERS` concurrent loops, each
/// over its own keep-alive HTTP/1.1 connection to `addr`, for `duration`; every answer must
/// be a success. Returns requests answered per second and their p99 latency.
///
/// The connections are hyper's own (`hyper::client::conn::http1`), not a pooled client: the
/// load generator shares the two cores with the server it measures, and a lighter one
/// leaves more of them to the server (reqwest spent about as much CPU per request as the
/// srpc server itself, parsing each request's URL and going through its pool).
pub(crate) async fn hammer(
    addr: std::net::SocketAddr,
    requests: Vec<(String, Vec<u8>)>,
    duration: Duration,
) -> (f64, Duration) {
    const WORKERS: usize = 64;
    let requests: Arc<Vec<(String, bytes::Bytes)>> = Arc::new(
        requests
            .into_iter()
            .map(|(path, body)| (path, bytes::Bytes::from(body)))
            .collect(),
    );
    let host = addr.to_string();
    let started = Instant::now();
    let workers: Vec<_> = (0..WORKERS)
        .map(|w| {
            let requests = requests.clone();
            let host = host.clone();
            tokio::spawn(async move {
                let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
                stream.set_nodelay(true).unwrap();
                let (mut sender, connection) =
                    hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                        .await
                        .unwrap();
                let connection = tokio::spawn(connection);
                let mut latencies = Vec::new();
                let mut i = w;
                while started.elapsed() < duration {
                    let (path, body) = &requests[i % requests.len()];
                    let request = hyper::Request::post(path.as_str())
                        .header(hyper::header::HOST, host.as_str())
                        .header(hyper::header::CONTENT_TYPE, "application/json")
                        .body(http_body_util::Full::new(body.clone()))
                        .unwrap();
                    let sent = Instant::now();
                    sender.ready().await.unwrap();
                    let answer = sender.send_request(request).await.unwrap();
                    let status = answer.status();
                    let text = http_body_util::BodyExt::collect(answer.into_body())
                        .await
                        .unwrap()
                        .to_bytes();
                    assert!(status.is_success(), "{path}: {status} {text:?}");
                    latencies.push(sent.elapsed());
                    i += WORKERS;
                }
                drop(sender);
                let _ = connection.await;
                latencies
            })
        })
        .collect();
    let mut latencies = Vec::new();
    for worker in workers {
        latencies.extend(worker.await.unwrap());
    }
    let rate = latencies.len() as f64 / started.elapsed().as_secs_f64();
    (rate, Series::of(latencies).p99)
}

/// [`hammer`], also measuring the CPU the server process `pid` spent meanwhile. Returns
/// requests per second, their p99 and the server's CPU per request.
pub(crate) async fn hammer_process(
    pid: u32,
    addr: std::net::SocketAddr,
    requests: Vec<(String, Vec<u8>)>,
    duration: Duration,
) -> (f64, Duration, Duration) {
    let before = process_cpu(pid);
    let started = Instant::now();
    let (rate, p99) = hammer(addr, requests, duration).await;
    let answered = rate * started.elapsed().as_secs_f64();
    let cpu = process_cpu(pid).saturating_sub(before);
    (rate, p99, cpu.div_f64(answered.max(1.0)))
}

/// Heartbeat capacity: heartbeats per second the srpc HTTP registry answers for
/// `instances` registered instances, beside etcd lease keepalives per second (through the
/// same gateway API srpc's etcd backend uses) for as many leases, same load generator, same
/// run, same two cores. Both servers are processes of their own (`srpc registry serve`, an
/// etcd started for this section alone), so each one's CPU per request is measured too:
/// what it costs the server, whatever the load generator costs.
pub(crate) async fn heartbeat_capacity(instances: usize, duration: Duration) {
    let server_bin =
        std::env::var("SRPC_SERVER_BIN").unwrap_or_else(|_| "target/release/srpc".to_owned());
    let server = srpc_tests::servers::HttpRegistryProcess::start(server_bin.as_ref(), &[])
        .unwrap_or_else(|e| {
            panic!("{e} (SRPC_SERVER_BIN names the srpc binary: cargo xtask bench registry)")
        });
    let addr = server.addr();
    let base = format!("http://{addr}");
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let mut heartbeats = Vec::with_capacity(instances);
    for i in 0..instances {
        let url = format!(
            "dubbo://10.{}.{}.{}:20880/bench.Heartbeat?side=provider",
            i / 65536,
            (i / 256) % 256,
            i % 256
        );
        let register = serde_json::json!({"url": url, "ttl_ms": 60_000, "holder": "bench"});
        http.post(format!("{base}/v1/register"))
            .json(&register)
            .send()
            .await
            .unwrap()
            .error_for_status()
            .unwrap();
        let body = serde_json::to_vec(&serde_json::json!({"url": url, "holder": "bench"})).unwrap();
        heartbeats.push(("/v1/heartbeat".to_owned(), body));
    }
    let (srpc_rate, srpc_p99, srpc_cpu) =
        hammer_process(server.pid().unwrap(), addr, heartbeats.clone(), duration).await;
    println!(
        "http       heartbeats: {srpc_rate:.0}/s, p99 {} ({instances} instances, 64 connections); server CPU {:.1} us per heartbeat",
        ms(srpc_p99),
        srpc_cpu.as_secs_f64() * 1e6
    );
    // What srpc clients send: one holder heartbeat per handle. The same instances, held
    // also by handles of PER_HOLDER registrations each (a provider of that many services).
    const PER_HOLDER: usize = 10;
    let holders = instances / PER_HOLDER;
    for (i, (_, body)) in heartbeats.iter().enumerate() {
        let mut register: serde_json::Value = serde_json::from_slice(body).unwrap();
        register["holder"] = format!("h{}", i / PER_HOLDER).into();
        register["ttl_ms"] = 60_000.into();
        http.post(format!("{base}/v1/register"))
            .json(&register)
            .send()
            .await
            .unwrap()
            .error_for_status()
            .unwrap();
    }
    let beats = (0..holders)
        .map(|h| {
            let body = serde_json::to_vec(&serde_json::json!({"holder": format!("h{h}")}));
            ("/v1/holders/heartbeat".to_owned(), body.unwrap())
        })
        .collect();
    let (holder_rate, holder_p99, holder_cpu) =
        hammer_process(server.pid().unwrap(), addr, beats, duration).await;
    drop(server);
    println!(
        "http       holder heartbeats: {holder_rate:.0}/s renewing {PER_HOLDER} leases each ({:.0} leases/s), p99 {} ({holders} holders, 64 connections); server CPU {:.1} us per heartbeat",
        holder_rate * PER_HOLDER as f64,
        ms(holder_p99),
        holder_cpu.as_secs_f64() * 1e6
    );
    let etcd = match srpc_tests::servers::Etcd::start(srpc_tests::servers::EtcdVersion::V3_4) {
        Ok(etcd) => etcd,
        Err(e) => {
            println!("etcd       lease keepalives: not measured ({e})");
            return;
        }
    };
    let etcd_addr: std::net::SocketAddr = etcd.address().parse().unwrap();
    let base = format!("http://{etcd_addr}");
    let mut keepalives = Vec::with_capacity(instances);
    for _ in 0..instances {
        let granted: serde_json::Value = http
            .post(format!("{base}/v3/lease/grant"))
            .json(&serde_json::json!({"TTL": "60"}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let id = granted["ID"].as_str().unwrap().to_owned();
        let body = serde_json::to_vec(&serde_json::json!({"ID": id})).unwrap();
        keepalives.push(("/v3/lease/keepalive".to_owned(), body));
    }
    let (etcd_rate, etcd_p99, etcd_cpu) =
        hammer_process(etcd.pid().unwrap(), etcd_addr, keepalives, duration).await;
    drop(etcd);
    println!(
        "etcd       lease keepalives: {etcd_rate:.0}/s, p99 {} ({instances} leases, 64 connections); server CPU {:.1} us per keepalive",
        ms(etcd_p99),
        etcd_cpu.as_secs_f64() * 1e6
    );
    println!(
        "http/etcd heartbeat capacity ratio: {:.2} (server CPU per request, etcd/http: {:.2})",
        srpc_rate / etcd_rate,
        etcd_cpu.as_secs_f64() / srpc_cpu.as_secs_f64().max(1e-9)
    );
}

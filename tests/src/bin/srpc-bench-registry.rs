//! Benchmark of the registries, by section (the arguments; default every one but `mdns`):
//!
//! - a backend's name (`inprocess`, `multicast`, `http`, `consul`, `zookeeper`, `etcd`,
//!   `mdns`; `notify` names all but `mdns`): register → subscriber notified, p50, p95 and
//!   p99 over `SRPC_BENCH_SAMPLES` samples (default 500; Consul's 20 ms apart); for ZooKeeper
//!   and etcd the same with a raw client in the same run (a plain children watch through
//!   `zookeeper-client`; a plain watch stream on etcd's gateway), printed as
//!   `srpc/raw notify latency ratio`;
//! - `scale`: a fresh subscriber's first snapshot of 1 000 / 10 000 / 100 000 providers;
//! - `resync`: from healing a cut connection to a connected, current snapshot;
//! - `memory`: what a subscriber holds per provider;
//! - `churn`: 1 000 providers registering and unregistering for 10 s: notifications against
//!   snapshots published, and the subscriber thread's CPU;
//! - `heartbeats`: HTTP registry heartbeats per second against etcd lease keepalives.
//!
//! `cargo xtask bench registry` runs each section in its own process with the real servers
//! started on loopback (`SRPC_ZOOKEEPER`, `SRPC_ETCD`), and `mdns` inside a private network
//! namespace. docs/performance.md has the method and the figures.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::panic,
    missing_docs
)] // A benchmark binary.

use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use srpc_registry::{Registry, Url};

/// Counts live heap bytes, for the subscriber's memory per provider.
#[global_allocator]
static ALLOCATOR: cap::Cap<std::alloc::System> = cap::Cap::new(std::alloc::System, usize::MAX);

/// The backends of the notify-latency section (`notify` names them all).
const NOTIFY: &[&str] = &[
    "inprocess",
    "multicast",
    "http",
    "consul",
    "zookeeper",
    "etcd",
];

const BACKENDS: &[&str] = &["notify", "scale", "resync", "memory", "churn", "heartbeats"];

/// Latency percentiles of one series.
struct Series {
    p50: Duration,
    /// Beside the p99: on these VMs about 1 % of samples on either side (srpc's and the raw
    /// client's alike) take 3-6 ms, stalls of the machine or the server, so the p99 of a few
    /// hundred samples lands either before or after that cliff; the p95 is the stable tail.
    p95: Duration,
    p99: Duration,
}

impl Series {
    fn of(mut samples: Vec<Duration>) -> Series {
        samples.sort_unstable();
        let at = |q: f64| samples[((samples.len() as f64 - 1.0) * q).round() as usize];
        Series {
            p50: at(0.50),
            p95: at(0.95),
            p99: at(0.99),
        }
    }
}

fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1000.0)
}

fn samples() -> usize {
    std::env::var("SRPC_BENCH_SAMPLES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(500)
}

/// The least time between two Consul samples' registrations. srpc's Consul watch lets news
/// through at once up to a burst of 100, then at 100 a second (so that an agent bumping its
/// index on every answer cannot make a busy loop); registrations back to back, faster than
/// that, would measure a place in that queue, not a registration on its own.
const CONSUL_GAP: Duration = Duration::from_millis(20);

/// Warm-up samples of each side, discarded: the first ones open connections and fill caches
/// (and a freshly started ZooKeeper, a JVM, is still compiling its hot paths).
const WARM_UP: usize = 10;

/// Warm-up pairs before a comparison with a raw client, discarded: long enough for the JVM
/// of a fresh ZooKeeper, and the same for both sides.
const WARM_UP_PAIRS: usize = 100;

/// srpc's side of the notify-latency measurement: one handle registers providers one after
/// another; a second handle's subscription waits for each.
struct SrpcProbe {
    provider: Arc<dyn Registry>,
    consumer: Arc<dyn Registry>,
    sub: srpc_registry::Subscription,
    interface: String,
    next: usize,
}

impl SrpcProbe {
    async fn new(
        (provider, consumer): (Arc<dyn Registry>, Arc<dyn Registry>),
        interface: &str,
    ) -> SrpcProbe {
        let query: Url = format!("consumer://127.0.0.1/{interface}?category=providers")
            .parse()
            .unwrap();
        let sub = consumer.subscribe(&query).await.unwrap();
        SrpcProbe {
            provider,
            consumer,
            sub,
            interface: interface.to_owned(),
            next: 0,
        }
    }

    /// One sample: the time from the start of `register` until the subscription's snapshot
    /// holds the new URL.
    async fn sample(&mut self) -> Duration {
        let url: Url = format!(
            "dubbo://127.0.0.1:{}/{}?weight=100",
            20000 + self.next,
            self.interface
        )
        .parse()
        .unwrap();
        self.next += 1;
        let started = Instant::now();
        self.provider.register(&url).await.unwrap();
        self.sub
            .wait_for(|s| s.contains(&url), Duration::from_secs(30))
            .await
            .unwrap();
        started.elapsed()
    }

    async fn close(self) {
        drop(self.sub);
        let _ = self.provider.close().await;
        let _ = self.consumer.close().await;
    }
}

/// `n` samples of srpc alone, after the warm-up, registrations at least `gap` apart.
async fn notify_latency(mut probe: SrpcProbe, n: usize, gap: Duration) -> Series {
    for _ in 0..WARM_UP {
        probe.sample().await;
    }
    let mut latencies = Vec::with_capacity(n);
    for _ in 0..n {
        let started = Instant::now();
        latencies.push(probe.sample().await);
        // Pacing the load, not waiting for a state: the sample is complete.
        tokio::time::sleep(gap.saturating_sub(started.elapsed())).await;
    }
    probe.close().await;
    Series::of(latencies)
}

/// `n` samples of srpc and `n` of the raw client, interleaved (srpc first on even samples, raw
/// first on odd ones), so that both series see the same stretches of a noisy machine.
async fn compare(mut srpc: SrpcProbe, mut raw: RawProbe, n: usize) -> (Series, Series) {
    let mut ours = Vec::with_capacity(n);
    let mut theirs = Vec::with_capacity(n);
    for i in 0..WARM_UP_PAIRS + n {
        let (a, b) = if i % 2 == 0 {
            let a = srpc.sample().await;
            (a, raw.sample().await)
        } else {
            let b = raw.sample().await;
            (srpc.sample().await, b)
        };
        if i >= WARM_UP_PAIRS {
            ours.push(a);
            theirs.push(b);
        }
    }
    srpc.close().await;
    raw.close().await;
    (Series::of(ours), Series::of(theirs))
}

async fn pair(url: &str) -> (Arc<dyn Registry>, Arc<dyn Registry>) {
    (
        srpc::registry::connect(url).await.unwrap(),
        srpc::registry::connect(url).await.unwrap(),
    )
}

fn report(backend: &str, series: &Series) {
    println!(
        "{backend:<10} srpc notify latency: p50 {} p95 {} p99 {}",
        ms(series.p50),
        ms(series.p95),
        ms(series.p99)
    );
}

fn ratio(backend: &str, srpc: &Series, raw: &Series) {
    println!(
        "{backend:<10} raw  notify latency: p50 {} p95 {} p99 {}",
        ms(raw.p50),
        ms(raw.p95),
        ms(raw.p99)
    );
    let of = |f: fn(&Series) -> Duration| f(srpc).as_secs_f64() / f(raw).as_secs_f64();
    println!(
        "{backend:<10} srpc/raw notify latency ratio: {:.2} (p50), {:.2} (p95), {:.2} (p99)",
        of(|s| s.p50),
        of(|s| s.p95),
        of(|s| s.p99)
    );
}

/// The same measurement with a raw client of the server.
enum RawProbe {
    /// A plain ZooKeeper children watch: one client creates an ephemeral node, the other's
    /// one-shot watch on the directory fires; re-armed with a listing each time, as any
    /// watcher must.
    Zookeeper {
        writer: zookeeper_client::Client,
        reader: zookeeper_client::Client,
        dir: String,
        next: usize,
    },
    /// A plain etcd watch stream on the JSON gateway: one request streams the watch of a
    /// prefix, another puts a key under it; the sample ends when the event's chunk arrives.
    /// The key is written with a lease, as every registration on etcd is (srpc's, Java
    /// Dubbo's, dubbo-go's, rpcx's: a registration must go with its provider), so that both
    /// sides ask etcd for the same work: attaching a key to a lease costs etcd itself about
    /// 0.1 ms per put on these machines, a fifth of a plain put.
    Etcd {
        http: reqwest::Client,
        base: String,
        prefix: String,
        lease: String,
        stream: reqwest::Response,
        next: usize,
    },
}

impl RawProbe {
    async fn zookeeper(server: &str) -> RawProbe {
        use zookeeper_client::{Acls, Client, CreateMode};
        let root = srpc_tests::servers::fresh_root("srpc-bench-raw");
        let writer = Client::connect(server).await.unwrap();
        let reader = Client::connect(server).await.unwrap();
        let persistent = CreateMode::Persistent.with_acls(Acls::anyone_all());
        let dir = format!("{root}/dir");
        writer.mkdir(&dir, &persistent).await.unwrap();
        RawProbe::Zookeeper {
            writer,
            reader,
            dir,
            next: 0,
        }
    }

    async fn etcd(server: &str) -> RawProbe {
        let http = reqwest::Client::builder().no_proxy().build().unwrap();
        let base = format!("http://{server}");
        let prefix = format!("/srpc-bench-raw-{}/", std::process::id());
        let watch = serde_json::json!({
            "create_request": {
                "key": BASE64.encode(&prefix),
                "range_end": BASE64.encode(prefix_end(&prefix)),
            }
        });
        let mut stream = http
            .post(format!("{base}/v3/watch"))
            .json(&watch)
            .send()
            .await
            .unwrap();
        // The first chunk says the watch was created.
        let created = stream.chunk().await.unwrap().unwrap();
        assert!(String::from_utf8_lossy(&created).contains("created"));
        let grant: serde_json::Value = http
            .post(format!("{base}/v3/lease/grant"))
            .json(&serde_json::json!({"TTL": 600}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let lease = grant["ID"].as_str().unwrap().to_owned();
        RawProbe::Etcd {
            http,
            base,
            prefix,
            lease,
            stream,
            next: 0,
        }
    }

    async fn sample(&mut self) -> Duration {
        match self {
            RawProbe::Zookeeper {
                writer,
                reader,
                dir,
                next,
            } => {
                use zookeeper_client::{Acls, CreateMode};
                let ephemeral = CreateMode::Ephemeral.with_acls(Acls::anyone_all());
                let (_, watcher) = reader.list_and_watch_children(dir).await.unwrap();
                let node = format!("{dir}/node-{next}");
                *next += 1;
                let started = Instant::now();
                writer.create(&node, b"", &ephemeral).await.unwrap();
                watcher.changed().await;
                started.elapsed()
            }
            RawProbe::Etcd {
                http,
                base,
                prefix,
                lease,
                stream,
                next,
            } => {
                let key = format!("{prefix}{next}");
                *next += 1;
                // The value is the lease ID, as Java Dubbo writes it.
                let put = serde_json::json!({
                    "key": BASE64.encode(&key),
                    "value": BASE64.encode(&*lease),
                    "lease": lease,
                });
                let started = Instant::now();
                let send = http.post(format!("{base}/v3/kv/put")).json(&put).send();
                let (answer, chunk) = tokio::join!(send, stream.chunk());
                answer.unwrap().error_for_status().unwrap();
                let chunk = chunk.unwrap().unwrap();
                assert!(
                    String::from_utf8_lossy(&chunk).contains("events"),
                    "{chunk:?}"
                );
                started.elapsed()
            }
        }
    }

    async fn close(self) {
        if let RawProbe::Etcd {
            http,
            base,
            prefix,
            lease,
            ..
        } = self
        {
            let _ = http
                .post(format!("{base}/v3/lease/revoke"))
                .json(&serde_json::json!({"ID": lease}))
                .send()
                .await;
            let delete = serde_json::json!({
                "key": BASE64.encode(&prefix),
                "range_end": BASE64.encode(prefix_end(&prefix)),
            });
            let _ = http
                .post(format!("{base}/v3/kv/deleterange"))
                .json(&delete)
                .send()
                .await;
        }
    }
}

/// The end of etcd's range of keys under `prefix`.
fn prefix_end(prefix: &str) -> Vec<u8> {
    let mut end = prefix.as_bytes().to_vec();
    if let Some(last) = end.last_mut() {
        *last += 1;
    }
    end
}

/// Puts providers `0..n` of `interface` into the registry, 64 at a time. An HTTP registry
/// gets plain register requests with a ten-minute TTL (the data is what matters here, not
/// `n` keepalives in this process); other registries get them through a handle, which is
/// returned to be closed after the measurement.
async fn populate(registry_url: &str, interface: &str, n: usize) -> Option<Arc<dyn Registry>> {
    use futures_util::StreamExt;
    if let Some(base) = registry_url.strip_prefix("http://") {
        let http = reqwest::Client::builder().no_proxy().build().unwrap();
        let register = format!("http://{}/v1/register", base.split('?').next().unwrap());
        futures_util::stream::iter(0..n)
            .map(|i| {
                let body = serde_json::json!({
                    "url": provider(interface, i).to_full_string(),
                    "ttl_ms": 600_000,
                    "holder": "bench",
                });
                let request = http.post(&register).json(&body).send();
                async move {
                    request.await.unwrap().error_for_status().unwrap();
                }
            })
            .buffer_unordered(64)
            .collect::<Vec<()>>()
            .await;
        return None;
    }
    let registry = srpc::registry::connect(registry_url).await.unwrap();
    futures_util::stream::iter(0..n)
        .map(|i| {
            let registry = registry.clone();
            let url = provider(interface, i);
            async move { registry.register(&url).await.unwrap() }
        })
        .buffer_unordered(64)
        .collect::<Vec<()>>()
        .await;
    Some(registry)
}

/// Scale: `n` providers of one service are registered (64 at a time); then a fresh handle
/// subscribes, and the sample is how long `subscribe` takes to return its first snapshot,
/// which holds them all. Returns that time and, for the HTTP registry, the anchor: one plain
/// GET of the same service's listing, its JSON parsed, in the same run.
async fn scale(registry_url: &str, interface: &str, n: usize) -> (Duration, Option<Duration>) {
    let provider = populate(registry_url, interface, n).await;
    let query: Url = format!("consumer://127.0.0.1/{interface}?category=providers")
        .parse()
        .unwrap();
    let consumer = srpc::registry::connect(registry_url).await.unwrap();
    let started = Instant::now();
    let sub = consumer.subscribe(&query).await.unwrap();
    let took = started.elapsed();
    assert_eq!(
        sub.snapshot().providers().len(),
        n,
        "the first snapshot holds them all"
    );
    drop(sub);
    let anchor = if let Some(base) = registry_url.strip_prefix("http://") {
        let http = reqwest::Client::builder().no_proxy().build().unwrap();
        let started = Instant::now();
        let body = http
            .get(format!("http://{base}/v1/services/{interface}"))
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        let listing: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(listing["instances"].as_array().map(Vec::len), Some(n));
        Some(started.elapsed())
    } else {
        None
    };
    let _ = consumer.close().await;
    if let Some(provider) = provider {
        let _ = provider.close().await;
    }
    (took, anchor)
}

async fn report_scale(backend: &str, registry_url: &str, interface: &str, sizes: &[usize]) {
    for &n in sizes {
        let (took, anchor) = scale(registry_url, &format!("{interface}{n}"), n).await;
        match anchor {
            Some(raw) => println!(
                "{backend:<10} scale {n:>6} providers: fresh subscriber's snapshot in {}; raw GET + JSON in {}; ratio {:.2}",
                ms(took),
                ms(raw),
                took.as_secs_f64() / raw.as_secs_f64()
            ),
            None => println!(
                "{backend:<10} scale {n:>6} providers: fresh subscriber's snapshot in {}",
                ms(took)
            ),
        }
    }
}

/// Sends `requests` (path, JSON body), round-robin, from `WORKERS` concurrent loops, each
/// over its own keep-alive HTTP/1.1 connection to `addr`, for `duration`; every answer must
/// be a success. Returns requests answered per second and their p99 latency.
///
/// The connections are hyper's own (`hyper::client::conn::http1`), not a pooled client: the
/// load generator shares the two cores with the server it measures, and a lighter one
/// leaves more of them to the server (reqwest spent about as much CPU per request as the
/// srpc server itself, parsing each request's URL and going through its pool).
async fn hammer(
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

/// CPU time (user and system, every thread) a process has used so far, from
/// `/proc/<pid>/stat` (in clock ticks of 10 ms: Linux's `USER_HZ` is 100).
fn process_cpu(pid: u32) -> Duration {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // The command name (field 2) is in parentheses and may hold spaces: count from its end.
    let after = &text[text.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    // Fields 14 and 15 of the line, utime and stime, are the 12th and 13th after the name.
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    Duration::from_millis(ticks * 10)
}

/// [`hammer`], also measuring the CPU the server process `pid` spent meanwhile. Returns
/// requests per second, their p99 and the server's CPU per request.
async fn hammer_process(
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
async fn heartbeat_capacity(instances: usize, duration: Duration) {
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

/// Nanoseconds the calling thread has run on a CPU (the scheduler's own account).
fn thread_cpu() -> Duration {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").unwrap();
    let ns: u64 = text.split_whitespace().next().unwrap().parse().unwrap();
    Duration::from_nanos(ns)
}

/// The `i`-th provider URL of a bench service.
fn provider(interface: &str, i: usize) -> Url {
    format!(
        "dubbo://10.{}.{}.{}:20880/{interface}?weight=100&side=provider",
        i / 65536,
        (i / 256) % 256,
        i % 256
    )
    .parse()
    .unwrap()
}

/// Churn: `n` providers each register and unregister in a loop for `duration`, while one
/// subscriber (its own handle, on a thread and runtime of its own) reads every change. Reports
/// the notifications it woke for against the snapshots published (revisions), and the CPU its
/// thread used.
async fn churn(registry_url: &str, interface: &str, n: usize, duration: Duration) {
    let query: Url = format!("consumer://127.0.0.1/{interface}?category=providers")
        .parse()
        .unwrap();
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
    let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
    let url = registry_url.to_owned();
    let subscriber = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let consumer = srpc::registry::connect(&url).await.unwrap();
            let mut sub = consumer.subscribe(&query).await.unwrap();
            let first = sub.snapshot().revision();
            ready_tx.send(()).unwrap();
            let cpu = thread_cpu();
            let started = Instant::now();
            let mut notifications = 0u64;
            loop {
                tokio::select! {
                    changed = sub.changed() => {
                        changed.unwrap();
                        notifications += 1;
                    }
                    _ = stop_rx.wait_for(|s| *s) => break,
                }
            }
            // Every provider ended unregistered: the subscriber has caught up when its
            // snapshot is empty.
            if !sub.snapshot().providers().is_empty() {
                sub.wait_for(|s| s.providers().is_empty(), Duration::from_secs(60))
                    .await
                    .unwrap();
                notifications += 1;
            }
            let cpu = thread_cpu() - cpu;
            let wall = started.elapsed();
            let published = sub.snapshot().revision() - first;
            drop(sub);
            let _ = consumer.close().await;
            (notifications, published, cpu, wall)
        })
    });
    ready_rx.await.unwrap();
    let registry = srpc::registry::connect(registry_url).await.unwrap();
    let started = Instant::now();
    let loops: Vec<_> = (0..n)
        .map(|i| {
            let registry = registry.clone();
            let url = provider(interface, i);
            tokio::spawn(async move {
                let mut cycles = 0u64;
                while started.elapsed() < duration {
                    registry.register(&url).await.unwrap();
                    registry.unregister(&url).await.unwrap();
                    cycles += 1;
                }
                cycles
            })
        })
        .collect();
    let mut cycles = 0;
    for task in loops {
        cycles += task.await.unwrap();
    }
    stop_tx.send_replace(true);
    let (notifications, published, cpu, wall) =
        tokio::task::spawn_blocking(move || subscriber.join().unwrap())
            .await
            .unwrap();
    let _ = registry.close().await;
    println!(
        "{:<10} churn {n} providers, {:.0} s: {} register/unregister changes; subscriber woke {notifications} times for {published} snapshots published (coalesced {:.1}:1), subscriber thread CPU {:.0} % ({:.2} s)",
        scheme(registry_url),
        duration.as_secs_f64(),
        cycles * 2,
        published as f64 / notifications.max(1) as f64,
        cpu.as_secs_f64() / wall.as_secs_f64() * 100.0,
        cpu.as_secs_f64(),
    );
}

fn scheme(registry_url: &str) -> &str {
    registry_url.split("://").next().unwrap_or(registry_url)
}

/// Resync after a cut: `n` providers are in the HTTP registry; a subscriber reaches it
/// through a proxy; the proxy is cut, one provider leaves and one arrives while cut, then the
/// proxy is healed. The figure is the time from the heal until the subscriber's snapshot is
/// connected again and holds the new state. Retries are set to 10–20 ms so that the backoff
/// does not hide the resync itself.
async fn resync(n: usize) -> Duration {
    let server = http_server().await;
    let direct = format!("http://{}", server.local_addr());
    let interface = format!("bench.Resync{n}");
    populate(&direct, &interface, n).await;
    let registry = srpc::registry::connect(&direct).await.unwrap();
    let proxy = srpc_tests::proxy::TcpProxy::start(server.local_addr())
        .await
        .unwrap();
    let consumer = srpc::registry::connect(&format!(
        "http://{}?retry.period=10&retry.max.period=20",
        proxy.addr()
    ))
    .await
    .unwrap();
    let query: Url = format!("consumer://127.0.0.1/{interface}?category=providers")
        .parse()
        .unwrap();
    let mut sub = consumer.subscribe(&query).await.unwrap();
    assert_eq!(sub.snapshot().providers().len(), n);
    proxy.cut();
    sub.wait_for(|s| !s.is_connected(), Duration::from_secs(30))
        .await
        .unwrap();
    let (gone, new) = (provider(&interface, 0), provider(&interface, n));
    // `gone` was registered by `populate`'s raw requests: every holder lets it go.
    reqwest::Client::new()
        .post(format!("{direct}/v1/deregister"))
        .json(&serde_json::json!({"url": gone.to_full_string(), "holder": "*"}))
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap();
    registry.register(&new).await.unwrap();
    let healed = Instant::now();
    proxy.restore();
    sub.wait_for(
        |s| s.is_connected() && s.contains(&new) && !s.contains(&gone),
        Duration::from_secs(30),
    )
    .await
    .unwrap();
    let took = healed.elapsed();
    drop(sub);
    let _ = consumer.close().await;
    let _ = registry.close().await;
    server.shutdown().await.unwrap();
    took
}

/// The subscriber's memory per provider: live heap bytes a fresh HTTP subscriber (its own
/// handle) holds once its snapshot has all `n` providers, measured as what its teardown
/// frees, per provider, beside the URL's own text.
async fn memory_per_provider(n: usize) -> (f64, usize) {
    let server = http_server().await;
    let base = format!("http://{}", server.local_addr());
    let interface = format!("bench.Memory{n}");
    populate(&base, &interface, n).await;
    let text = provider(&interface, n / 2).to_full_string().len();
    let query: Url = format!("consumer://127.0.0.1/{interface}?category=providers")
        .parse()
        .unwrap();
    let consumer = srpc::registry::connect(&base).await.unwrap();
    let sub = consumer.subscribe(&query).await.unwrap();
    assert_eq!(sub.snapshot().providers().len(), n);
    // What the subscriber holds is what goes when it is dropped: measured that way round,
    // the garbage other parts of this process free meanwhile (the population's connections)
    // cannot hide in the figure. The pauses let the first long-poll and the teardown settle.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let with = ALLOCATOR.allocated();
    drop(sub);
    consumer.close().await.unwrap();
    drop(consumer);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let held = with.saturating_sub(ALLOCATOR.allocated());
    server.shutdown().await.unwrap();
    (held as f64 / n as f64, text)
}

/// An srpc HTTP registry on a free loopback port, in this process.
async fn http_server() -> srpc::http::HttpRegistryServer {
    srpc::http::HttpRegistryServer::bind(srpc::http::ServerConfig::new(([127, 0, 0, 1], 0).into()))
        .await
        .unwrap()
}

fn free_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let chosen: Vec<&str> = if args.is_empty() {
        BACKENDS.to_vec()
    } else {
        args.iter().map(String::as_str).collect()
    };
    let chosen: Vec<&str> = chosen
        .into_iter()
        .flat_map(|c| {
            if c == "notify" {
                NOTIFY.to_vec()
            } else {
                vec![c]
            }
        })
        .collect();
    let n = samples();
    let chosen_consul = chosen.contains(&"consul");
    if std::env::var_os("SRPC_TEST_PRIVATE_NETWORK").is_none()
        && chosen.iter().any(|c| NOTIFY.contains(c))
    {
        println!("register -> subscriber notified, {n} samples per series");
    }
    for backend in chosen {
        match backend {
            "inprocess" => {
                let url = format!("inprocess://bench-{}", std::process::id());
                let probe = SrpcProbe::new(pair(&url).await, "bench.Inprocess").await;
                report(backend, &notify_latency(probe, n, Duration::ZERO).await);
            }
            "multicast" => {
                let url = format!(
                    "multicast://239.255.77.90:{}?interface=127.0.0.1&timeout=100",
                    free_port()
                );
                let probe = SrpcProbe::new(pair(&url).await, "bench.Multicast").await;
                report(backend, &notify_latency(probe, n, Duration::ZERO).await);
            }
            "http" => {
                let server = http_server().await;
                let url = format!("http://{}", server.local_addr());
                let probe = SrpcProbe::new(pair(&url).await, "bench.Http").await;
                report(backend, &notify_latency(probe, n, Duration::ZERO).await);
                server.shutdown().await.unwrap();
            }
            "consul" => {
                // Against srpc's fake agent (no Consul binary here): measures srpc's side.
                let agent = srpc_tests::consul::FakeConsul::start().await.unwrap();
                let url = format!("consul://{}", agent.addr());
                let probe = SrpcProbe::new(pair(&url).await, "bench.Consul").await;
                report("consul*", &notify_latency(probe, n, CONSUL_GAP).await);
            }
            "zookeeper" => {
                let server = srpc_tests::servers::shared_zookeeper();
                let root = srpc_tests::servers::fresh_root("srpc-bench");
                let url = format!("zookeeper://{server}?group={root}");
                let srpc = SrpcProbe::new(pair(&url).await, "bench.Zookeeper").await;
                let raw = RawProbe::zookeeper(&server).await;
                let (srpc, raw) = compare(srpc, raw, n).await;
                report(backend, &srpc);
                ratio(backend, &srpc, &raw);
            }
            "etcd" => {
                let server = std::env::var("SRPC_ETCD")
                    .expect("SRPC_ETCD: run under cargo xtask bench registry");
                let root = srpc_tests::servers::fresh_root("srpc-bench");
                let url = format!("etcd://{server}?group={root}");
                let srpc = SrpcProbe::new(pair(&url).await, "bench.Etcd").await;
                let raw = RawProbe::etcd(&server).await;
                let (srpc, raw) = compare(srpc, raw, n).await;
                report(backend, &srpc);
                ratio(backend, &srpc, &raw);
            }
            "scale" => {
                let hub = format!("inprocess://bench-scale-{}", std::process::id());
                report_scale("inprocess", &hub, "bench.Scale", &[1_000, 10_000, 100_000]).await;
                let server = http_server().await;
                let url = format!("http://{}", server.local_addr());
                report_scale("http", &url, "bench.Scale", &[1_000, 10_000, 100_000]).await;
                server.shutdown().await.unwrap();
            }
            "churn" => {
                let secs = Duration::from_secs(10);
                let hub = format!("inprocess://bench-churn-{}", std::process::id());
                churn(&hub, "bench.Churn", 1_000, secs).await;
                let server = http_server().await;
                churn(
                    &format!("http://{}", server.local_addr()),
                    "bench.Churn",
                    1_000,
                    secs,
                )
                .await;
                server.shutdown().await.unwrap();
                if let Ok(server) = std::env::var("SRPC_ZOOKEEPER") {
                    let root = srpc_tests::servers::fresh_root("srpc-bench-churn");
                    churn(
                        &format!("zookeeper://{server}?group={root}"),
                        "bench.Churn",
                        1_000,
                        secs,
                    )
                    .await;
                }
                if let Ok(server) = std::env::var("SRPC_ETCD") {
                    let root = srpc_tests::servers::fresh_root("srpc-bench-churn");
                    churn(
                        &format!("etcd://{server}?group={root}"),
                        "bench.Churn",
                        1_000,
                        secs,
                    )
                    .await;
                }
            }
            "resync" => {
                for n in [1_000, 10_000] {
                    println!(
                        "http       resync {n:>6} providers after a cut: {} from heal to a connected, current snapshot",
                        ms(resync(n).await)
                    );
                }
            }
            "memory" => {
                for n in [10_000, 100_000] {
                    let (per, text) = memory_per_provider(n).await;
                    println!(
                        "http       memory {n:>6} providers: subscriber holds {per:.0} bytes per provider (URL text {text} bytes; {:.0} beyond it)",
                        per - text as f64
                    );
                }
            }
            "heartbeats" => {
                heartbeat_capacity(1_000, Duration::from_secs(8)).await;
            }
            "mdns" => {
                srpc_tests::netns::private();
                let pair = pair("mdns://local?timeout=100").await;
                let probe = SrpcProbe::new(pair, "bench.Mdns").await;
                report(backend, &notify_latency(probe, n, Duration::ZERO).await);
            }
            other => panic!("unknown backend {other}: one of {BACKENDS:?} or mdns"),
        }
    }
    if chosen_consul {
        println!("(consul*: against srpc's fake agent, so srpc's own cost only)");
    }
}

//! `notify` and the backends' names: register → subscriber notified, against a raw client of
//! the same server where there is one.

use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use srpc_registry::{Registry, Url};

use crate::common::{Series, ms};

/// The least time between two Consul samples' registrations. srpc's Consul watch lets news
/// through at once up to a burst of 100, then at 100 a second (so that an agent bumping its
/// index on every answer cannot make a busy loop); registrations back to back, faster than
/// that, would measure a place in that queue, not a registration on its own.
pub(crate) const CONSUL_GAP: Duration = Duration::from_millis(20);

/// Warm-up samples of each side, discarded: the first ones open connections and fill caches
/// (and a freshly started ZooKeeper, a JVM, is still compiling its hot paths).
pub(crate) const WARM_UP: usize = 10;

/// Warm-up pairs before a comparison with a raw client, discarded: long enough for the JVM
/// of a fresh ZooKeeper, and the same for both sides.
pub(crate) const WARM_UP_PAIRS: usize = 100;

/// srpc's side of the notify-latency measurement: one handle registers providers one after
/// another; a second handle's subscription waits for each.
pub(crate) struct SrpcProbe {
    provider: Arc<dyn Registry>,
    consumer: Arc<dyn Registry>,
    sub: srpc_registry::Subscription,
    interface: String,
    next: usize,
}

impl SrpcProbe {
    pub(crate) async fn new(
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
    pub(crate) async fn sample(&mut self) -> Duration {
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

    pub(crate) async fn close(self) {
        drop(self.sub);
        let _ = self.provider.close().await;
        let _ = self.consumer.close().await;
    }
}

/// `n` samples of srpc alone, after the warm-up, registrations at least `gap` apart.
pub(crate) async fn notify_latency(mut probe: SrpcProbe, n: usize, gap: Duration) -> Series {
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
pub(crate) async fn compare(mut srpc: SrpcProbe, mut raw: RawProbe, n: usize) -> (Series, Series) {
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

pub(crate) fn report(backend: &str, series: &Series) {
    println!(
        "{backend:<10} srpc notify latency: p50 {} p95 {} p99 {}",
        ms(series.p50),
        ms(series.p95),
        ms(series.p99)
    );
}

pub(crate) fn ratio(backend: &str, srpc: &Series, raw: &Series) {
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
pub(crate) enum RawProbe {
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
    pub(crate) async fn zookeeper(server: &str) -> RawProbe {
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

    pub(crate) async fn etcd(server: &str) -> RawProbe {
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

    pub(crate) async fn sample(&mut self) -> Duration {
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

    pub(crate) async fn close(self) {
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
pub(crate) fn prefix_end(prefix: &str) -> Vec<u8> {
    let mut end = prefix.as_bytes().to_vec();
    if let Some(last) = end.last_mut() {
        *last += 1;
    }
    end
}

//! [`Prober`]: active verification for backends with no server to tell them a provider died
//! (multicast, mDNS). A provider killed without a goodbye would otherwise stay in every
//! consumer's list; the prober connects to each provider's TCP port at a period and reports
//! one that missed several probes in a row.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use dubbo_url::{Url, is_match};
use futures_util::future::join_all;
use tokio::net::TcpStream;
use tokio::task::AbortHandle;
use tracing::{debug, warn};

use crate::Result;
use crate::rules::is_dynamic;
use crate::tasks::Tasks;

/// The longest a single TCP probe may take, whatever the period.
pub const MAX_PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// What a backend gives the [`Prober`]: the providers to check, and what to do with the
/// verdicts.
pub trait Probed: Send + Sync + 'static {
    /// The providers to probe now (see [`is_probe_candidate`] for the usual filter).
    fn targets(&self) -> Vec<Url>;
    /// `url` missed [`ProberSettings::misses`] probes in a row.
    fn lost(&self, url: &Url);
    /// `url` accepted a connection (after being lost, or any time: cheap to repeat).
    fn answered(&self, _url: &Url) {}
}

/// How often and how strictly providers are probed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProberSettings {
    /// Time between two rounds of probes.
    pub period: Duration,
    /// The longest one probe may take (at most [`MAX_PROBE_TIMEOUT`]).
    pub timeout: Duration,
    /// Failed probes in a row before a provider is reported lost.
    pub misses: u32,
}

impl ProberSettings {
    /// Settings under which a provider that stops answering is reported lost within `within`
    /// of its last successful probe: a round every `within / (misses + 1)`, each probe
    /// bounded by that period.
    pub fn within(within: Duration, misses: u32) -> ProberSettings {
        let misses = misses.max(1);
        let period = (within / (misses + 1)).max(Duration::from_millis(10));
        ProberSettings {
            period,
            timeout: period.min(MAX_PROBE_TIMEOUT),
            misses,
        }
    }
}

/// A running prober; stopped when dropped.
#[derive(Debug)]
pub struct Prober {
    task: AbortHandle,
}

impl Prober {
    /// Starts probing at `settings.period` (the first round one period from now), as a
    /// task of `tasks`. Fails once they are closed, and outside a tokio runtime.
    pub fn start(
        backend: &'static str,
        tasks: &Tasks,
        settings: ProberSettings,
        probed: Arc<dyn Probed>,
    ) -> Result<Prober> {
        let task = tasks.spawn("prober", run(backend, settings, probed))?;
        Ok(Prober { task })
    }

    /// Stops probing.
    pub fn stop(&self) {
        self.task.abort();
    }
}

impl Drop for Prober {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn run(backend: &'static str, settings: ProberSettings, probed: Arc<dyn Probed>) {
    let mut failures: HashMap<Url, u32> = HashMap::new();
    let mut ticker = tokio::time::interval(settings.period);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticker.tick().await;
    let timeout = settings.timeout.min(MAX_PROBE_TIMEOUT);
    loop {
        ticker.tick().await;
        let targets = probed.targets();
        let current: HashSet<&Url> = targets.iter().collect();
        failures.retain(|url, _| current.contains(url));
        let results = join_all(targets.iter().map(|url| probe(url, timeout))).await;
        for (url, alive) in targets.iter().zip(results) {
            if alive {
                if failures.remove(url).is_some() {
                    debug!(backend, %url, "provider answers again");
                }
                probed.answered(url);
                continue;
            }
            let count = failures.entry(url.clone()).or_insert(0);
            *count += 1;
            if *count == settings.misses {
                warn!(
                    backend,
                    %url,
                    misses = settings.misses,
                    "provider did not accept TCP connections; removed from local snapshots \
                     until it answers again"
                );
                probed.lost(url);
            }
        }
    }
}

/// Whether a TCP connection to the URL's host and port opens within `timeout`.
pub async fn probe(url: &Url, timeout: Duration) -> bool {
    let host = url.host().trim_start_matches('[').trim_end_matches(']');
    let host = host.split_once('%').map_or(host, |(h, _zone)| h);
    matches!(
        tokio::time::timeout(timeout, TcpStream::connect((host, url.port()))).await,
        Ok(Ok(_))
    )
}

/// The usual choice of what to probe: a provider (not a consumer, route, override or empty
/// record) with a port, not registered by this handle (`own`), not explicitly
/// `dynamic=false`, and selected by one of this handle's `queries`.
pub fn is_probe_candidate(url: &Url, own: &HashSet<Url>, queries: &HashSet<Url>) -> bool {
    url.port() > 0
        && url.category() == "providers"
        && !matches!(is_dynamic(url), Ok(false))
        && !matches!(url.protocol(), "consumer" | "route" | "override" | "empty")
        && !own.contains(url)
        && queries.iter().any(|q| is_match(q, url))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn within_leaves_room_for_every_miss() {
        let s = ProberSettings::within(Duration::from_secs(60), 2);
        assert_eq!(s.period, Duration::from_secs(20));
        assert_eq!(s.timeout, MAX_PROBE_TIMEOUT);
        let s = ProberSettings::within(Duration::from_millis(900), 2);
        assert_eq!(s.period, Duration::from_millis(300));
        assert_eq!(s.timeout, Duration::from_millis(300));
        assert!(s.period * (s.misses + 1) <= Duration::from_millis(900));
    }

    #[test]
    fn candidates() {
        let q: HashSet<Url> = ["dubbo://0.0.0.0/a.B?category=providers"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        let own = HashSet::new();
        let p: Url = "dubbo://127.0.0.1:1/a.B".parse().unwrap();
        assert!(is_probe_candidate(&p, &own, &q));
        let persistent: Url = "dubbo://127.0.0.1:1/a.B?dynamic=false".parse().unwrap();
        assert!(!is_probe_candidate(&persistent, &own, &q));
        let no_port: Url = "dubbo://127.0.0.1/a.B".parse().unwrap();
        assert!(!is_probe_candidate(&no_port, &own, &q));
        let other: Url = "dubbo://127.0.0.1:1/c.D".parse().unwrap();
        assert!(!is_probe_candidate(&other, &own, &q));
        let own: HashSet<Url> = [p.clone()].into_iter().collect();
        assert!(!is_probe_candidate(&p, &own, &q));
    }

    #[tokio::test]
    async fn a_closed_port_is_lost_and_an_open_one_answers() {
        use std::sync::Mutex;
        #[derive(Default)]
        struct Seen {
            targets: Vec<Url>,
            lost: Mutex<Vec<Url>>,
            answered: Mutex<Vec<Url>>,
        }
        impl Probed for Seen {
            fn targets(&self) -> Vec<Url> {
                self.targets.clone()
            }
            fn lost(&self, url: &Url) {
                self.lost.lock().unwrap().push(url.clone());
            }
            fn answered(&self, url: &Url) {
                self.answered.lock().unwrap().push(url.clone());
            }
        }
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let open: Url = format!(
            "dubbo://127.0.0.1:{}/a.B",
            listener.local_addr().unwrap().port()
        )
        .parse()
        .unwrap();
        // A port that was free a moment ago: nothing listens there.
        let closed_port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let closed: Url = format!("dubbo://127.0.0.1:{closed_port}/a.B")
            .parse()
            .unwrap();
        let seen = Arc::new(Seen {
            targets: vec![open.clone(), closed.clone()],
            ..Seen::default()
        });
        let settings = ProberSettings {
            period: Duration::from_millis(20),
            timeout: Duration::from_millis(500),
            misses: 2,
        };
        let tasks = Tasks::new("test");
        let _prober = Prober::start("test", &tasks, settings, seen.clone()).unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while seen.lost.lock().unwrap().is_empty() {
            assert!(tokio::time::Instant::now() < deadline, "never lost");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(*seen.lost.lock().unwrap(), [closed]);
        assert!(seen.answered.lock().unwrap().iter().all(|u| *u == open));
        assert!(!seen.answered.lock().unwrap().is_empty());
    }
}

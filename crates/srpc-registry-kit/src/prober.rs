//! [`Prober`]: active verification for backends with no server to tell them a provider died
//! (multicast, mDNS). A provider killed without a goodbye would otherwise stay in every
//! consumer's list; the prober connects to each provider's TCP port at a period and reports
//! one that missed several probes in a row.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use dubbo_url::{Url, is_match};
use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use rustix::io::Errno;
use tokio::net::TcpStream;
use tokio::task::AbortHandle;
use tokio::time::Instant;
use tracing::{debug, warn};

use crate::Result;
use crate::rules::is_dynamic;
use crate::tasks::Tasks;

/// The longest a single TCP probe may take, whatever the period.
pub const MAX_PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// Probes in flight at once when the backend does not say (`probe.concurrency`).
pub const DEFAULT_PROBE_CONCURRENCY: usize = 32;

/// The most probes in flight a handle may be configured with: each holds a socket.
pub const MAX_PROBE_CONCURRENCY: usize = 1024;

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
    /// Time between the starts of two rounds of probes; also how long a round may go on
    /// starting probes (what it did not reach waits for the next, first in line).
    pub period: Duration,
    /// The longest one probe may take (at most [`MAX_PROBE_TIMEOUT`]).
    pub timeout: Duration,
    /// Failed probes in a row before a provider is reported lost.
    pub misses: u32,
    /// Probes in flight at once (at least 1): what bounds the sockets, and the connection
    /// attempts a second, a flood of announced providers can make this handle spend.
    pub concurrency: usize,
}

impl ProberSettings {
    /// A round every `period`, each probe bounded by it (and [`MAX_PROBE_TIMEOUT`]), lost
    /// after `misses` in a row, [`DEFAULT_PROBE_CONCURRENCY`] at once.
    pub fn every(period: Duration, misses: u32) -> ProberSettings {
        ProberSettings {
            period,
            timeout: period.min(MAX_PROBE_TIMEOUT),
            misses: misses.max(1),
            concurrency: DEFAULT_PROBE_CONCURRENCY,
        }
    }

    /// Settings under which a provider that stops answering is reported lost within `within`
    /// of its last successful probe: a round every `within / (misses + 1)`, each probe
    /// bounded by that period.
    pub fn within(within: Duration, misses: u32) -> ProberSettings {
        let misses = misses.max(1);
        ProberSettings::every(
            (within / (misses + 1)).max(Duration::from_millis(10)),
            misses,
        )
    }

    /// The same with `concurrency` probes at once.
    pub fn with_concurrency(self, concurrency: usize) -> ProberSettings {
        ProberSettings {
            concurrency: concurrency.max(1),
            ..self
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
        let task = tasks.spawn(
            "prober",
            run(backend, settings, probed, |url, timeout| async move {
                probe_outcome(&url, timeout).await
            }),
        )?;
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

/// What one probe found.
#[derive(Debug)]
pub enum ProbeOutcome {
    /// The provider accepted a connection.
    Answered,
    /// It refused, or did not accept within the timeout: counts against it.
    Missed,
    /// This side could not try (out of file descriptors, buffers, local ports or memory, no
    /// route from here): says nothing about the provider and never counts against it.
    Local(io::Error),
}

/// What the prober knows of one target.
#[derive(Debug, Default)]
struct Record {
    /// Failed probes in a row.
    misses: u32,
    /// It answered once: a known-good provider, probed first in every round.
    answered: bool,
    /// When it was last probed; `None`: never, so first among the unknown.
    probed: Option<Instant>,
}

async fn run<P, F>(
    backend: &'static str,
    settings: ProberSettings,
    probed: Arc<dyn Probed>,
    probe: P,
) where
    P: Fn(Url, Duration) -> F,
    F: Future<Output = ProbeOutcome>,
{
    let mut records: HashMap<Url, Record> = HashMap::new();
    let mut ticker = tokio::time::interval(settings.period);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticker.tick().await;
    let timeout = settings.timeout.min(MAX_PROBE_TIMEOUT);
    let concurrency = settings.concurrency.max(1);
    loop {
        ticker.tick().await;
        let started = Instant::now();
        let targets = probed.targets();
        let current: HashSet<&Url> = targets.iter().collect();
        records.retain(|url, _| current.contains(url));
        // Known-good providers first, so that a flood of announcements that never answer
        // cannot delay their verdict; then whoever waited longest.
        let mut queue: Vec<(bool, Option<Instant>, Url)> = targets
            .iter()
            .map(|url| {
                let record = records.get(url);
                (
                    !record.is_some_and(|r| r.answered),
                    record.and_then(|r| r.probed),
                    url.clone(),
                )
            })
            .collect();
        queue.sort_by_key(|(unknown, probed, _)| (*unknown, *probed));
        let mut queue = queue.into_iter().map(|(_, _, url)| url);
        let mut running = FuturesUnordered::new();
        let mut local_error: Option<io::Error> = None;
        let mut left_for_next = false;
        loop {
            while running.len() < concurrency && local_error.is_none() {
                if started.elapsed() >= settings.period {
                    left_for_next = true;
                    break;
                }
                let Some(url) = queue.next() else { break };
                records.entry(url.clone()).or_default().probed = Some(Instant::now());
                let attempt = probe(url.clone(), timeout);
                running.push(async move { (url, attempt.await) });
            }
            let Some((url, outcome)) = running.next().await else {
                break;
            };
            let record = records.entry(url.clone()).or_default();
            match outcome {
                ProbeOutcome::Answered => {
                    if record.misses > 0 {
                        debug!(backend, %url, "provider answers again");
                    }
                    record.misses = 0;
                    record.answered = true;
                    probed.answered(&url);
                }
                ProbeOutcome::Missed => {
                    record.misses += 1;
                    if record.misses == settings.misses {
                        warn!(
                            backend,
                            %url,
                            misses = settings.misses,
                            "provider did not accept TCP connections; removed from local \
                             snapshots until it answers again"
                        );
                        probed.lost(&url);
                    }
                }
                ProbeOutcome::Local(error) => {
                    // Not this provider's doing: it is probed again next round, and no
                    // more probes start in this one.
                    record.probed = None;
                    local_error.get_or_insert(error);
                }
            }
        }
        if let Some(error) = local_error {
            warn!(
                backend,
                %error,
                "probing paused until the next round: this host cannot open connections \
                 now (not counted against any provider)"
            );
        } else if left_for_next || queue.next().is_some() {
            debug!(
                backend,
                targets = targets.len(),
                "more providers than one round can probe; the rest go first next round"
            );
        }
    }
}

/// Whether a TCP connection to the URL's host and port opens within `timeout`.
pub async fn probe(url: &Url, timeout: Duration) -> bool {
    matches!(probe_outcome(url, timeout).await, ProbeOutcome::Answered)
}

/// Tries a TCP connection to the URL's host and port for at most `timeout`, telling a
/// provider's failure from this host's ([`ProbeOutcome::Local`]).
pub async fn probe_outcome(url: &Url, timeout: Duration) -> ProbeOutcome {
    let host = url.host().trim_start_matches('[').trim_end_matches(']');
    let host = host.split_once('%').map_or(host, |(h, _zone)| h);
    match tokio::time::timeout(timeout, TcpStream::connect((host, url.port()))).await {
        Ok(Ok(_)) => ProbeOutcome::Answered,
        Ok(Err(error)) if is_local(&error) => ProbeOutcome::Local(error),
        Ok(Err(_)) | Err(_) => ProbeOutcome::Missed,
    }
}

/// Errors that a connection attempt gets from this host, not from the peer: no descriptor,
/// buffer, memory or local port left, no route out, a local firewall's refusal.
pub fn is_local(error: &io::Error) -> bool {
    if matches!(error.kind(), io::ErrorKind::OutOfMemory) {
        return true;
    }
    Errno::from_io_error(error).is_some_and(|errno| {
        [
            Errno::MFILE,
            Errno::NFILE,
            Errno::NOBUFS,
            Errno::NOMEM,
            Errno::ADDRNOTAVAIL,
            Errno::NETUNREACH,
            Errno::ACCESS,
            Errno::PERM,
        ]
        .contains(&errno)
    })
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
        let seen = Arc::new(View {
            targets: vec![open.clone(), closed.clone()],
            ..View::default()
        });
        let settings = ProberSettings {
            timeout: Duration::from_millis(500),
            ..ProberSettings::every(Duration::from_millis(20), 2)
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

    /// A backend's view for the tests below: fixed targets, verdicts recorded.
    #[derive(Default)]
    struct View {
        targets: Vec<Url>,
        lost: std::sync::Mutex<Vec<Url>>,
        answered: std::sync::Mutex<Vec<Url>>,
    }

    impl Probed for View {
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

    fn target(port: u16) -> Url {
        format!("dubbo://127.0.0.1:{port}/a.B").parse().unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn a_flood_is_probed_a_few_at_a_time_and_never_starves_a_known_good_provider() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let real = target(1);
        let fakes: Vec<Url> = (2..1002).map(target).collect();
        let view = Arc::new(View {
            targets: std::iter::once(real.clone()).chain(fakes.clone()).collect(),
            ..View::default()
        });
        let in_flight = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let probed = Arc::new(std::sync::Mutex::new(HashSet::new()));
        let settings = ProberSettings::every(Duration::from_secs(1), 2).with_concurrency(8);
        let prober = {
            let (view, in_flight, most, probed, real) = (
                view.clone(),
                in_flight.clone(),
                most.clone(),
                probed.clone(),
                real.clone(),
            );
            tokio::spawn(run("test", settings, view, move |url, timeout| {
                let (in_flight, most, probed, real) = (
                    in_flight.clone(),
                    most.clone(),
                    probed.clone(),
                    real.clone(),
                );
                async move {
                    let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(now, Ordering::SeqCst);
                    probed.lock().unwrap().insert(url.clone());
                    let outcome = if url == real {
                        ProbeOutcome::Answered
                    } else {
                        // A port that never accepts: the whole timeout, then a miss.
                        tokio::time::sleep(timeout).await;
                        ProbeOutcome::Missed
                    };
                    in_flight.fetch_sub(1, Ordering::SeqCst);
                    outcome
                }
            }))
        };
        // 1,000 fakes at 8 a round: every one is reached within 130 rounds.
        let deadline = Instant::now() + Duration::from_secs(3600);
        while probed.lock().unwrap().len() < fakes.len() + 1 {
            assert!(
                Instant::now() < deadline,
                "the rotation never reached every fake"
            );
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        // Never-probed ones go first: the second rotation makes the first verdicts.
        while view.lost.lock().unwrap().is_empty() {
            assert!(Instant::now() < deadline, "no fake was ever lost");
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        let rounds = view
            .answered
            .lock()
            .unwrap()
            .iter()
            .filter(|u| **u == real)
            .count();
        prober.abort();
        assert!(most.load(Ordering::SeqCst) <= 8, "at most 8 probes at once");
        assert!(
            rounds >= 125,
            "the known-good provider is probed every round: {rounds}"
        );
        let lost = view.lost.lock().unwrap();
        assert!(!lost.contains(&real), "never lost for others' probes");
        assert!(!lost.is_empty(), "the fakes probed twice are lost");
    }

    #[tokio::test(start_paused = true)]
    async fn a_local_error_never_counts_against_a_provider() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let view = Arc::new(View {
            targets: (1..=4).map(target).collect(),
            ..View::default()
        });
        let calls = Arc::new(AtomicUsize::new(0));
        let settings = ProberSettings::every(Duration::from_secs(1), 2);
        let prober = {
            let calls = calls.clone();
            tokio::spawn(run("test", settings, view.clone(), move |_, _| {
                let call = calls.fetch_add(1, Ordering::SeqCst);
                async move {
                    // Out of file descriptors for the first 20 tries, then all answer.
                    if call < 20 {
                        ProbeOutcome::Local(io::Error::from_raw_os_error(
                            Errno::MFILE.raw_os_error(),
                        ))
                    } else {
                        ProbeOutcome::Answered
                    }
                }
            }))
        };
        let deadline = Instant::now() + Duration::from_secs(600);
        while view.answered.lock().unwrap().len() < 4 {
            assert!(Instant::now() < deadline, "never answered");
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        prober.abort();
        assert!(
            view.lost.lock().unwrap().is_empty(),
            "lost for this host's error"
        );
    }

    #[test]
    fn local_errors_are_told_from_the_peers() {
        let os = |errno: Errno| io::Error::from_raw_os_error(errno.raw_os_error());
        for errno in [
            Errno::MFILE,
            Errno::NFILE,
            Errno::NOBUFS,
            Errno::ADDRNOTAVAIL,
        ] {
            assert!(is_local(&os(errno)), "{errno:?}");
        }
        for errno in [Errno::CONNREFUSED, Errno::TIMEDOUT, Errno::HOSTUNREACH] {
            assert!(!is_local(&os(errno)), "{errno:?}");
        }
    }
}

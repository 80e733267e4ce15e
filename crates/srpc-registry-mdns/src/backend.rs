//! [`MdnsBackend`]: one UDP socket joined to 224.0.0.251 on exactly one interface, a
//! responder for this handle's registrations, a querier whose [`Cache`] feeds the catalog,
//! and the shared [`Prober`].
//!
//! Nothing is sent and no group is joined anywhere but on the chosen interface: the socket
//! is bound to the group address (so it receives no unicast from elsewhere), joins on the
//! interface's address only, sends there only (`IP_MULTICAST_IF`), and with
//! `IP_MULTICAST_ALL` off it hears only what arrives on that interface.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use srpc_registry_kit::{
    Backend, BindTo, Bucket, Catalog, Context, Error, GroupSocket, GroupSocketError, Interface,
    Probed, Prober, ProberSettings, Result, RetryPolicy, Url, is_probe_candidate, wait_for_answers,
};
use tokio::net::UdpSocket;
use tokio::sync::watch;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use crate::cache::Cache;
use crate::config::MdnsConfig;
use crate::record::{instance_name, txt_properties};
use crate::wire::{
    self, GROUP, Message, PORT, Published, QuestionOf, SERVICES, T_A, T_AAAA, T_PTR, T_SRV, T_TXT,
    asks_for, key,
};

/// Catalog scope of instances heard on the link.
const LINK: &str = "link";
/// Catalog scope of this handle's own registrations (seen at once, before the echo).
const LOCAL: &str = "local";
/// How long `subscribe` keeps listening after the last answer, once it has one.
const QUIET: Duration = Duration::from_millis(150);
/// How often expiry and refresh are looked at.
const TICK: Duration = Duration::from_millis(250);
/// The longest gap between two browse queries while something is subscribed (RFC 6762 §5.2
/// allows an hour; providers announce themselves, so this only repairs lost packets).
const MAX_BROWSE_GAP: Duration = Duration::from_secs(60 * 60);
/// A registration is announced twice, a second apart (RFC 6762 §8.3).
const ANNOUNCE_AGAIN: Duration = Duration::from_secs(1);
/// The most questions one handle asks a second, all names together: what a flood of
/// half-known names can make it send is bounded (about 4 packets a second, each carrying up
/// to ~30 questions).
pub(crate) const MAX_QUESTIONS_PER_SECOND: f64 = 100.0;
/// Questions a handle may ask at once after a quiet spell.
const QUESTION_BURST: f64 = 200.0;

/// The mDNS [`Backend`].
#[derive(Debug)]
pub struct MdnsBackend {
    inner: Arc<Inner>,
    _prober: Option<Prober>,
}

#[derive(Debug)]
struct Inner {
    config: MdnsConfig,
    /// The address of the chosen interface.
    interface: Ipv4Addr,
    socket: UdpSocket,
    group: SocketAddr,
    /// `<type>.local` as a key.
    service: String,
    catalog: Arc<Catalog>,
    state: Mutex<State>,
    /// Counts responses taken in, so `subscribe` can wait for answers.
    arrivals: watch::Sender<u64>,
}

#[derive(Debug)]
struct State {
    /// This handle's registrations and their records.
    own: HashMap<Url, Published>,
    /// What was heard.
    cache: Cache,
    /// The URLs in the `LINK` scope, by instance.
    shown: HashMap<String, Url>,
    /// Instances already warned about (they make no valid URL).
    warned: HashSet<String>,
    /// What this handle subscribed to.
    queries: HashSet<Url>,
    /// When the next browse query goes, and the gap after it.
    next_browse: Option<(Instant, Duration)>,
    /// Registrations to announce a second time, and when.
    announce_again: Vec<(Instant, Url)>,
}

impl MdnsBackend {
    /// Opens the socket on the configured interface and starts the receive loop, the
    /// maintenance loop and the prober. Must run inside a tokio runtime.
    pub fn open(config: MdnsConfig, ctx: Context) -> Result<MdnsBackend> {
        let (socket, interface) = join(&config)?;
        let group = SocketAddr::V4(SocketAddrV4::new(GROUP, PORT));
        info!(
            backend = crate::SCHEME,
            %interface,
            service_type = %config.service_type,
            "joined mDNS on one interface"
        );
        let service = key(&config.type_domain());
        let inner = Arc::new(Inner {
            interface,
            socket,
            group,
            catalog: ctx.catalog().clone(),
            state: Mutex::new(State {
                own: HashMap::new(),
                cache: Cache::new(&service),
                shown: HashMap::new(),
                warned: HashSet::new(),
                queries: HashSet::new(),
                next_browse: None,
                announce_again: Vec::new(),
            }),
            service,
            arrivals: watch::Sender::new(0),
            config,
        });
        let tasks = ctx.tasks();
        tasks.spawn("receive loop", inner.clone().receive_loop())?;
        tasks.spawn("maintenance", inner.clone().maintain())?;
        let prober = if inner.config.is_tcp() {
            let settings = ProberSettings::within(inner.config.session, 2)
                .with_concurrency(inner.config.probe_concurrency);
            let probed = Arc::new(ProbeView(inner.clone()));
            Some(Prober::start(crate::SCHEME, tasks, settings, probed)?)
        } else {
            None
        };
        Ok(MdnsBackend {
            inner,
            _prober: prober,
        })
    }

    /// The address of the interface this handle uses.
    pub fn interface(&self) -> Ipv4Addr {
        self.inner.interface
    }
}

/// Joins 224.0.0.251:5353 on the configured interface; returns the socket and the
/// interface's IPv4 address.
fn join(config: &MdnsConfig) -> Result<(UdpSocket, Ipv4Addr)> {
    let refuse = |reason: String| Error::invalid("registry URL", "interface", reason);
    if let Interface::Addr(IpAddr::V6(address)) = &config.interface {
        return Err(refuse(format!(
            "{address} is IPv6; srpc speaks mDNS over IPv4 only: give the interface's IPv4 \
             address or its name"
        )));
    }
    let joined = GroupSocket::new(IpAddr::V4(GROUP), PORT, config.interface.clone())
        // Bound to the group: unicast sent to this host's port 5353 from anywhere is not read.
        .bind_to(BindTo::Group)
        // Other processes on this host must hear it too.
        .loopback(true)
        // RFC 6762 §11: 255, so receivers can tell link-local traffic.
        .ttl(255)
        .open()
        .map_err(|error| match error {
            GroupSocketError::NoSuchInterface { reason, .. } => refuse(reason),
            GroupSocketError::Socket { what, source } => Error::not_connected_by(
                crate::SCHEME,
                format!("{what} (interface {})", config.interface),
                source,
            ),
            other => Error::not_connected_by(crate::SCHEME, "open the mDNS socket", other),
        })?;
    match joined.address {
        IpAddr::V4(address) => Ok((joined.socket, address)),
        IpAddr::V6(address) => Err(refuse(format!(
            "interface {} resolved to the IPv6 address {address}",
            config.interface
        ))),
    }
}

impl Inner {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    async fn send(&self, bytes: &[u8], to: SocketAddr) -> Result<()> {
        self.socket
            .send_to(bytes, to)
            .await
            .map(|_| ())
            .map_err(|source| {
                Error::not_connected_by(crate::SCHEME, format!("send to {to}"), source)
            })
    }

    /// Sends each message; all are tried, the first error is returned.
    async fn send_all(&self, messages: Vec<Vec<u8>>, to: SocketAddr) -> Result<()> {
        let mut first = Ok(());
        for message in messages {
            if let Err(error) = self.send(&message, to).await {
                if first.is_ok() {
                    first = Err(error);
                }
            }
        }
        first
    }

    async fn receive_loop(self: Arc<Self>) {
        let mut buffer = vec![0u8; 9000];
        let mut backoff =
            RetryPolicy::new(Duration::from_millis(100), Duration::from_secs(5)).backoff();
        loop {
            let (len, from) = match self.socket.recv_from(&mut buffer).await {
                Ok(received) => {
                    backoff.reset();
                    received
                }
                Err(error) => {
                    warn!(backend = crate::SCHEME, %error, "receive failed");
                    backoff.wait().await;
                    continue;
                }
            };
            let datagram = &buffer[..len];
            // The parser is a third-party crate reading bytes from anyone on the link: should
            // it ever panic, that datagram is skipped rather than this task ended.
            let parsed = std::panic::catch_unwind(|| wire::parse(datagram));
            let Ok(parsed) = parsed else {
                warn!(backend = crate::SCHEME, %from, len, "the DNS parser panicked on a datagram; skipped");
                continue;
            };
            match parsed {
                Ok(message) if message.response => {
                    debug!(backend = crate::SCHEME, %from, records = message.records.len(), "response");
                    self.take_in(&message);
                }
                Ok(message) => self.answer(&message, from).await,
                Err(error) => {
                    debug!(backend = crate::SCHEME, %from, %error, len, "skipping a datagram that is not DNS");
                }
            }
        }
    }

    /// A response: into the cache, and the catalog if what is shown changed.
    fn take_in(&self, message: &Message) {
        let changed = self.state().cache.apply(message, Instant::now());
        if changed {
            self.publish();
        }
        self.arrivals.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Brings the `LINK` scope in line with the cache: one replacement, so the catalog
    /// publishes one snapshot per change, and only when a URL differs.
    fn publish(&self) {
        let mut state = self.state();
        let mut bad = Vec::new();
        let urls = state.cache.urls(false, &mut bad);
        for (instance, reason) in bad {
            if state.warned.insert(instance.clone()) {
                warn!(backend = crate::SCHEME, %instance, %reason, "skipping an instance that makes no URL");
            }
        }
        if urls != state.shown {
            debug!(
                backend = crate::SCHEME,
                instances = urls.len(),
                "instances on the link changed"
            );
            state.shown = urls;
            let all: Vec<Url> = state.shown.values().cloned().collect();
            drop(state);
            self.catalog.replace(LINK, all);
        }
    }

    /// A query: answer with what this handle publishes.
    async fn answer(&self, message: &Message, from: SocketAddr) {
        let legacy = from.port() != PORT;
        let mut answers: Vec<Published> = Vec::new();
        let mut meta = false;
        {
            let state = self.state();
            if state.own.is_empty() {
                return;
            }
            let known: HashSet<&str> = message
                .records
                .iter()
                .filter(|r| r.name == self.service && r.ttl >= wire::OTHER_TTL / 2)
                .filter_map(|r| match &r.data {
                    wire::Data::Ptr { target, .. } => Some(target.as_str()),
                    _ => None,
                })
                .collect();
            let mut picked: HashSet<String> = HashSet::new();
            for q in &message.questions {
                for published in state.own.values() {
                    let fullname = published.fullname_key();
                    let wanted = (q.name == self.service
                        && asks_for(q.qtype, T_PTR)
                        && !known.contains(fullname.as_str()))
                        || (q.name == fullname
                            && (asks_for(q.qtype, T_SRV) || asks_for(q.qtype, T_TXT)))
                        || (q.name == key(&published.host)
                            && (asks_for(q.qtype, T_A) || asks_for(q.qtype, T_AAAA)));
                    if wanted && picked.insert(fullname) {
                        answers.push(published.clone());
                    }
                }
                meta |= q.name == SERVICES && asks_for(q.qtype, T_PTR);
            }
        }
        if answers.is_empty() && !meta {
            return;
        }
        let refs: Vec<&Published> = answers.iter().collect();
        let service = self.config.type_domain();
        let services: Vec<&str> = if meta {
            vec![service.as_str()]
        } else {
            Vec::new()
        };
        let result = if legacy {
            // RFC 6762 §6.7: a legacy resolver gets a unicast answer echoing its question.
            let question = message.questions.first().cloned().unwrap_or(QuestionOf {
                name: self.service.clone(),
                qtype: T_PTR,
            });
            let messages = wire::responses(&refs, &services, false, Some((message.id, &question)));
            self.send_all(messages, from).await
        } else {
            self.send_all(wire::responses(&refs, &services, false, None), self.group)
                .await
        };
        if let Err(error) = result {
            warn!(backend = crate::SCHEME, %error, "cannot answer a query");
        }
    }

    /// Expiry, refresh queries, second announcements and the browse schedule.
    async fn maintain(self: Arc<Self>) {
        let mut ticker = tokio::time::interval(TICK);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut questions = Bucket::new(QUESTION_BURST, MAX_QUESTIONS_PER_SECOND);
        loop {
            ticker.tick().await;
            let now = Instant::now();
            let (expired, asks, known, browse, again) = {
                let mut state = self.state();
                let expired = state.cache.expire(now);
                // A browse query counts as one question.
                let budget = questions.available().saturating_sub(1);
                let asks = state.cache.wants(now, budget);
                questions.reserve(asks.len() as f64);
                let known = state.cache.known_answers(now);
                let browse = match state.next_browse {
                    Some((at, gap)) if at <= now && !state.queries.is_empty() => {
                        state.next_browse = Some((now + gap, (gap * 2).min(MAX_BROWSE_GAP)));
                        true
                    }
                    _ => false,
                };
                let (due, later): (Vec<_>, Vec<_>) = state
                    .announce_again
                    .drain(..)
                    .partition(|(at, _)| *at <= now);
                state.announce_again = later;
                let again: Vec<Published> = due
                    .iter()
                    .filter_map(|(_, url)| state.own.get(url).cloned())
                    .collect();
                (expired, asks, known, browse, again)
            };
            if expired {
                self.publish();
            }
            let asked: Vec<(&str, u16)> = asks
                .iter()
                // The browse query below asks the same.
                .filter(|ask| !(ask.qtype == T_PTR && browse))
                .map(|ask| (ask.name.as_str(), ask.qtype))
                .collect();
            let mut messages = wire::queries(&asked);
            if browse {
                questions.reserve(1.0);
                messages.extend(self.browse_query(&known));
            }
            if !again.is_empty() {
                let refs: Vec<&Published> = again.iter().collect();
                messages.extend(wire::responses(&refs, &[], false, None));
            }
            if let Err(error) = self.send_all(messages, self.group).await {
                warn!(backend = crate::SCHEME, %error, "cannot send queries");
            }
        }
    }

    fn browse_query(&self, known: &[(String, u32)]) -> Option<Vec<u8>> {
        let known: Vec<(&str, &str, u32)> = known
            .iter()
            .map(|(target, ttl)| (self.service.as_str(), target.as_str(), *ttl))
            .collect();
        wire::query(&self.service, T_PTR, &known)
    }

    /// Asks who provides the type, then waits until the answers stop (or `timeout`, when
    /// nothing that `query` selects answers).
    async fn ask(&self, query: &Url) -> Result<()> {
        let mut arrivals = self.arrivals.subscribe();
        arrivals.mark_unchanged();
        if let Some(message) = self.browse_query(&[]) {
            self.send(&message, self.group).await?;
        }
        let found = || !self.catalog.lookup(query).is_empty();
        wait_for_answers(&mut arrivals, found, self.config.timeout, QUIET).await;
        Ok(())
    }

    /// The records of `url`, checked: refused with an error naming the problem.
    async fn publication(&self, url: &Url) -> Result<Published> {
        let txt = txt_properties(url)?;
        let bare = url.host().trim_start_matches('[').trim_end_matches(']');
        let address = match bare.parse::<IpAddr>() {
            Ok(address) => address,
            Err(_) => tokio::net::lookup_host((bare, url.port()))
                .await
                .ok()
                .and_then(|mut addresses| addresses.next())
                .map(|a| a.ip())
                .ok_or_else(|| {
                    Error::invalid(
                        "registration",
                        url,
                        format!("its host {bare:?} does not resolve to an address"),
                    )
                })?,
        };
        let host = format!(
            "srpc-{}.local",
            address.to_string().replace(['.', ':'], "-")
        );
        Ok(Published {
            label: instance_name(url),
            service: self.service.clone(),
            host,
            address,
            port: url.port(),
            txt,
        })
    }
}

/// The prober's view: complete instances heard on the link (hidden ones too, so they come
/// back when they answer) that some subscription selects, other than this handle's own.
#[derive(Debug)]
struct ProbeView(Arc<Inner>);

impl ProbeView {
    fn instance_of(&self, url: &Url) -> Option<String> {
        let mut state = self.0.state();
        state
            .cache
            .urls(true, &mut Vec::new())
            .into_iter()
            .find_map(|(instance, u)| (u == *url).then_some(instance))
    }
}

impl Probed for ProbeView {
    fn targets(&self) -> Vec<Url> {
        let mut guard = self.0.state();
        let state = &mut *guard;
        if state.queries.is_empty() {
            return Vec::new();
        }
        let own: HashSet<Url> = state.own.keys().cloned().collect();
        state
            .cache
            .urls(true, &mut Vec::new())
            .into_values()
            .filter(|url| is_probe_candidate(url, &own, &state.queries))
            .collect()
    }

    fn lost(&self, url: &Url) {
        if let Some(instance) = self.instance_of(url) {
            if self.0.state().cache.set_hidden(&instance, true) {
                self.0.publish();
            }
        }
    }

    fn answered(&self, url: &Url) {
        if let Some(instance) = self.instance_of(url) {
            if self.0.state().cache.set_hidden(&instance, false) {
                info!(backend = crate::SCHEME, %url, "provider answers again; shown again");
                self.0.publish();
            }
        }
    }
}

#[async_trait]
impl Backend for MdnsBackend {
    const NAME: &'static str = crate::SCHEME;

    async fn register(&self, url: &Url) -> Result<()> {
        let inner = &self.inner;
        let published = inner.publication(url).await?;
        let messages = wire::responses(&[&published], &[], false, None);
        {
            let mut state = inner.state();
            state.own.insert(url.clone(), published);
            state
                .announce_again
                .push((Instant::now() + ANNOUNCE_AGAIN, url.clone()));
        }
        inner.catalog.insert(LOCAL, url.clone());
        if let Err(error) = inner.send_all(messages, inner.group).await {
            inner.state().own.remove(url);
            inner.catalog.remove(LOCAL, url);
            return Err(error);
        }
        Ok(())
    }

    /// Says goodbye for `url`'s instance, whoever registered it: the records are a function
    /// of the URL, so any handle can retract a record a crashed provider left in caches.
    async fn unregister(&self, url: &Url) -> Result<()> {
        let inner = &self.inner;
        let own = inner.state().own.remove(url);
        let published = match own {
            Some(published) => published,
            None => inner.publication(url).await?,
        };
        inner.catalog.remove(LOCAL, url);
        inner.state().cache.forget(&published.fullname_key());
        inner.publish();
        inner
            .send_all(wire::responses(&[&published], &[], true, None), inner.group)
            .await
    }

    async fn subscribe(&self, query: &Url) -> Result<()> {
        {
            let mut state = self.inner.state();
            state.queries.insert(query.clone());
            let queries = state.queries.iter().cloned().collect();
            state.cache.set_queries(queries);
            // Browse again from the shortest gap (RFC 6762 §5.2).
            state.next_browse = Some((
                Instant::now() + Duration::from_secs(1),
                Duration::from_secs(2),
            ));
        }
        self.inner.ask(query).await
    }

    async fn unsubscribe(&self, query: &Url) -> Result<()> {
        let mut state = self.inner.state();
        state.queries.remove(query);
        let queries = state.queries.iter().cloned().collect();
        state.cache.set_queries(queries);
        Ok(())
    }

    async fn lookup(&self, query: &Url) -> Result<Vec<Url>> {
        self.inner.ask(query).await?;
        Ok(self.inner.catalog.lookup(query))
    }

    async fn close(&self) -> Result<()> {
        // The receive loop, the maintenance task and the prober were stopped with the
        // handle's tasks.
        Ok(())
    }
}

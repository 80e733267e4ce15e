//! [`MulticastBackend`]: the socket, the receive loop that keeps the catalog, answers to
//! `subscribe`, and the prober that drops providers which stopped answering.

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use dubbo_url::is_match;
use srpc_registry_kit::Error as RegistryError;
use srpc_registry_kit::{
    AgedSet, Backend, BindTo, Catalog, Context, GroupSocket, JoinedSocket, Probed, Prober,
    ProberSettings, Result, RetryPolicy, Url, is_probe_candidate, wait_for_answers,
};
use tokio::net::UdpSocket;
use tokio::sync::watch;
use tracing::{debug, info, warn};

use crate::config::MulticastConfig;
use crate::error::Error;
use crate::wire::{MAX_DATAGRAM, MAX_URL_LEN, Message};

/// Catalog scope of URLs heard on the group.
const GROUP: &str = "group";
/// Catalog scope of this handle's own registrations (seen even with `loopback=false`).
const LOCAL: &str = "local";
/// How long `subscribe` keeps listening after the last answer, once it has one.
const QUIET: Duration = Duration::from_millis(100);

/// The multicast [`Backend`]: one UDP socket bound to the group port and joined on one
/// interface, used for receiving and sending, as Java's `MulticastRegistry` does.
#[derive(Debug)]
pub struct MulticastBackend {
    inner: Arc<Inner>,
    /// Drops providers that stopped answering (unless `clean=false`); stopped when dropped.
    _prober: Option<Prober>,
}

#[derive(Debug)]
struct Inner {
    config: MulticastConfig,
    socket: UdpSocket,
    /// The joined interface's address: a `subscribe` from it comes from this host.
    address: IpAddr,
    group: SocketAddr,
    catalog: Arc<Catalog>,
    /// What this handle registered: it answers `subscribe` messages with these.
    registered: Mutex<HashSet<Url>>,
    /// What this handle subscribed to: the prober checks only providers these select. A
    /// set, because `Backend::unsubscribe` comes once, when the last equal query goes.
    queries: Mutex<HashSet<Url>>,
    /// Counts `register` messages received, so `subscribe` can wait for answers.
    arrivals: watch::Sender<u64>,
    /// What the group scope of the catalog holds, split by whether a subscription asks
    /// for it: the bounds of `unsubscribed.*` and `catalog.max` are kept here.
    heard: Mutex<Heard>,
}

/// The registrations heard on the group (the catalog's `group` scope).
#[derive(Debug, Default)]
struct Heard {
    /// Selected by a subscription of this handle: kept until unregistered or lost to probes.
    wanted: HashSet<Url>,
    /// For services nobody here subscribes to: kept within `unsubscribed.max` and
    /// `unsubscribed.ttl`, oldest heard first out.
    unwanted: AgedSet<Url>,
    /// Whether the last registration was skipped because the catalog was full (so the
    /// warning is logged once per episode, not per datagram).
    full: bool,
}

impl Heard {
    fn len(&self) -> usize {
        self.wanted.len() + self.unwanted.len()
    }
}

impl MulticastBackend {
    /// Binds the group port, joins the group on the configured interface, and starts the
    /// receive loop (and the prober unless `clean=false`). Must run inside a tokio runtime.
    pub fn open(config: MulticastConfig, ctx: Context) -> Result<MulticastBackend> {
        let JoinedSocket {
            socket, address, ..
        } = bind(&config)?;
        let group = SocketAddr::new(config.group, config.port);
        info!(
            backend = crate::SCHEME,
            %group,
            interface = %config.interface,
            %address,
            ttl = config.ttl,
            "joined multicast group"
        );
        let inner = Arc::new(Inner {
            config,
            socket,
            address,
            group,
            catalog: ctx.catalog().clone(),
            registered: Mutex::default(),
            queries: Mutex::default(),
            arrivals: watch::Sender::new(0),
            heard: Mutex::default(),
        });
        ctx.tasks()
            .spawn("receive loop", inner.clone().receive_loop())?;
        ctx.tasks().spawn(
            "expiry of unsubscribed registrations",
            inner.clone().expiry_loop(),
        )?;
        // Unchanged since Java: a round every `session`, two misses in a row.
        let prober = if inner.config.clean {
            let settings = ProberSettings::every(inner.config.session, 2)
                .with_concurrency(inner.config.probe_concurrency);
            let probed = Arc::new(ProbeView(inner.clone()));
            Some(Prober::start(crate::SCHEME, ctx.tasks(), settings, probed)?)
        } else {
            None
        };
        Ok(MulticastBackend {
            inner,
            _prober: prober,
        })
    }

    /// The local address of the socket (the group port on the wildcard address).
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.inner.socket.local_addr().ok()
    }
}

fn bind(config: &MulticastConfig) -> std::result::Result<JoinedSocket, Error> {
    Ok(
        GroupSocket::new(config.group, config.port, config.interface.clone())
            // The wildcard address: unicast answers to `subscribe` arrive on the group port.
            .bind_to(BindTo::Any)
            .loopback(config.loopback)
            .ttl(config.ttl)
            .open()?,
    )
}

impl Inner {
    fn registered(&self) -> MutexGuard<'_, HashSet<Url>> {
        self.registered.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn queries(&self) -> MutexGuard<'_, HashSet<Url>> {
        self.queries.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn heard(&self) -> MutexGuard<'_, Heard> {
        self.heard.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether a subscription of this handle selects `url`.
    fn wanted(&self, url: &Url) -> bool {
        self.queries().iter().any(|query| is_match(query, url))
    }

    /// Adds a registration heard on the group to the catalog, within the bounds.
    fn heard_register(&self, url: Url, from: SocketAddr) {
        let wanted = self.wanted(&url);
        let now = tokio::time::Instant::now();
        let config = &self.config;
        let mut heard = self.heard();
        let mut dropped = Vec::new();
        if wanted {
            heard.unwanted.remove(&url);
            if !heard.wanted.contains(&url) {
                while heard.len() >= config.catalog_max {
                    match heard.unwanted.pop_oldest() {
                        Some(oldest) => dropped.push(oldest),
                        None => break,
                    }
                }
                if heard.len() >= config.catalog_max {
                    if !std::mem::replace(&mut heard.full, true) {
                        warn!(backend = crate::SCHEME, %from, limit = config.catalog_max, %url,
                            "catalog full of subscribed registrations (catalog.max); skipping \
                             new ones until probes or unregisters make room");
                    }
                    return;
                }
                heard.wanted.insert(url.clone());
            }
        } else {
            // Subscribed once and not any more (reclassify normally moves it): it ages from
            // now like the others.
            heard.wanted.remove(&url);
            let room = config
                .unsubscribed_max
                .min(config.catalog_max.saturating_sub(heard.wanted.len()));
            if room == 0 {
                return;
            }
            heard.unwanted.insert(url.clone(), now);
            while heard.unwanted.len() > room {
                match heard.unwanted.pop_oldest() {
                    Some(oldest) => dropped.push(oldest),
                    None => break,
                }
            }
            dropped.extend(heard.unwanted.expire(now, config.unsubscribed_ttl));
        }
        heard.full = false;
        if !dropped.iter().any(|d| d == &url) {
            self.catalog.insert(GROUP, url);
        }
        drop(heard);
        if !dropped.is_empty() {
            debug!(
                backend = crate::SCHEME,
                dropped = dropped.len(),
                "dropped the oldest registrations of unsubscribed services"
            );
            self.catalog.update(GROUP, Vec::new(), dropped);
        }
    }

    /// Removes a registration from the group scope and its bookkeeping.
    fn heard_remove(&self, url: &Url) {
        {
            let mut heard = self.heard();
            heard.wanted.remove(url);
            heard.unwanted.remove(url);
        }
        self.catalog.remove(GROUP, url);
    }

    /// After the subscriptions changed: what a subscription now selects is kept for it,
    /// and what none selects any more starts ageing as unsubscribed.
    fn reclassify(&self) {
        let queries = self.queries().clone();
        let selected = |url: &Url| queries.iter().any(|query| is_match(query, url));
        let now = tokio::time::Instant::now();
        let mut heard = self.heard();
        let promoted = heard.unwanted.take_where(|url| selected(url));
        heard.wanted.extend(promoted);
        let demoted: Vec<Url> = heard
            .wanted
            .iter()
            .filter(|url| !selected(url))
            .cloned()
            .collect();
        let mut dropped = Vec::new();
        for url in demoted {
            heard.wanted.remove(&url);
            heard.unwanted.insert(url, now);
        }
        while heard.unwanted.len() > self.config.unsubscribed_max {
            match heard.unwanted.pop_oldest() {
                Some(oldest) => dropped.push(oldest),
                None => break,
            }
        }
        drop(heard);
        if !dropped.is_empty() {
            self.catalog.update(GROUP, Vec::new(), dropped);
        }
    }

    /// Drops registrations of unsubscribed services not heard for `unsubscribed.ttl`, even
    /// when no datagram comes to trigger it.
    async fn expiry_loop(self: Arc<Self>) {
        let period = (self.config.unsubscribed_ttl / 4)
            .clamp(Duration::from_millis(10), Duration::from_secs(30));
        loop {
            tokio::time::sleep(period).await;
            let now = tokio::time::Instant::now();
            let expired = self
                .heard()
                .unwanted
                .expire(now, self.config.unsubscribed_ttl);
            if !expired.is_empty() {
                debug!(
                    backend = crate::SCHEME,
                    expired = expired.len(),
                    "registrations of unsubscribed services expired"
                );
                self.catalog.update(GROUP, Vec::new(), expired);
            }
        }
    }

    async fn send(&self, message: &Message, to: SocketAddr) -> Result<()> {
        let datagram = message.encode();
        if datagram.len() > MAX_DATAGRAM {
            return Err(too_long(message.url()));
        }
        self.socket
            .send_to(&datagram, to)
            .await
            .map_err(|source| Error::Send {
                verb: message.verb(),
                to,
                source,
            })?;
        debug!(backend = crate::SCHEME, verb = message.verb(), %to, url = %message.url(), "sent");
        Ok(())
    }

    async fn receive_loop(self: Arc<Self>) {
        let mut buffer = vec![0u8; 65536];
        // Do not spin on a persistent socket error.
        let mut backoff =
            RetryPolicy::new(Duration::from_millis(100), Duration::from_secs(5)).backoff();
        let mut failing = false;
        loop {
            match self.socket.recv_from(&mut buffer).await {
                Ok((len, from)) => {
                    if std::mem::take(&mut failing) {
                        backoff.reset();
                    }
                    self.handle(&buffer[..len], from).await;
                }
                Err(error) => {
                    warn!(backend = crate::SCHEME, %error, "receive failed");
                    failing = true;
                    backoff.wait().await;
                }
            }
        }
    }

    async fn handle(&self, datagram: &[u8], from: SocketAddr) {
        let message = match Message::decode(datagram) {
            Ok(message) => message,
            Err(error) => {
                warn!(backend = crate::SCHEME, %from, %error, len = datagram.len(), "skipping datagram");
                return;
            }
        };
        debug!(backend = crate::SCHEME, verb = message.verb(), %from, url = %message.url(), "received");
        match message {
            Message::Register(url) => {
                if let Err(error) = srpc_registry_kit::validate_registration(&url) {
                    warn!(backend = crate::SCHEME, %from, %error, "skipping unusable registration");
                    return;
                }
                self.heard_register(url, from);
                self.arrivals.send_modify(|n| *n += 1);
            }
            Message::Unregister(url) => self.heard_remove(&url),
            Message::Subscribe(query) => self.answer(&query, from).await,
            Message::Unsubscribe(_) => {}
        }
    }

    /// Answers a `subscribe` with `register` for every matching own registration: by
    /// unicast to the sender's group port unless the query says `unicast=false` or the sender
    /// is this host, else by multicast (Java's rule).
    async fn answer(&self, query: &Url, from: SocketAddr) {
        let matching: Vec<Url> = self
            .registered()
            .iter()
            .filter(|url| is_match(query, url))
            .cloned()
            .collect();
        if matching.is_empty() {
            return;
        }
        let unicast =
            query.param_bool("unicast", true).unwrap_or(true) && from.ip() != self.address;
        let to = if unicast {
            SocketAddr::new(from.ip(), self.config.port)
        } else {
            self.group
        };
        for url in matching {
            if let Err(error) = self.send(&Message::Register(url), to).await {
                warn!(backend = crate::SCHEME, %to, %error, "cannot answer subscribe");
            }
        }
    }

    /// Sends `subscribe query` and waits until answers stop coming (`QUIET` after the last
    /// matching one) or `timeout` passes.
    async fn ask(&self, query: &Url) -> Result<()> {
        let mut arrivals = self.arrivals.subscribe();
        arrivals.mark_unchanged();
        let mut ask = query.clone();
        if !self.config.unicast && ask.param("unicast").is_none() {
            ask.set_param("unicast", "false");
        }
        self.send(&Message::Subscribe(ask), self.group).await?;
        let found = || !self.catalog.lookup(query).is_empty();
        wait_for_answers(&mut arrivals, found, self.config.timeout, QUIET).await;
        Ok(())
    }
}

/// The prober's view of a handle: providers heard on the group that some subscription
/// selects, other than the handle's own; a lost one leaves the local snapshots.
#[derive(Debug)]
struct ProbeView(Arc<Inner>);

impl Probed for ProbeView {
    fn targets(&self) -> Vec<Url> {
        let inner = &self.0;
        let queries = inner.queries().clone();
        if queries.is_empty() {
            return Vec::new();
        }
        let own = inner.registered().clone();
        inner
            .catalog
            .scope(GROUP)
            .into_iter()
            .filter(|url| is_probe_candidate(url, &own, &queries))
            .collect()
    }

    fn lost(&self, url: &Url) {
        self.0.heard_remove(url);
    }
}

fn too_long(url: &Url) -> RegistryError {
    RegistryError::invalid(
        "registration",
        url,
        format!(
            "its full string is {} bytes; the multicast protocol carries at most {MAX_URL_LEN} \
             (Java Dubbo reads {MAX_DATAGRAM}-byte datagrams and would cut it)",
            url.to_full_string().len()
        ),
    )
}

#[async_trait]
impl Backend for MulticastBackend {
    const NAME: &'static str = crate::SCHEME;

    async fn register(&self, url: &Url) -> Result<()> {
        if url.to_full_string().len() > MAX_URL_LEN {
            return Err(too_long(url));
        }
        let inner = &self.inner;
        inner.registered().insert(url.clone());
        inner.catalog.insert(LOCAL, url.clone());
        if let Err(error) = inner
            .send(&Message::Register(url.clone()), inner.group)
            .await
        {
            inner.registered().remove(url);
            inner.catalog.remove(LOCAL, url);
            return Err(error);
        }
        Ok(())
    }

    async fn unregister(&self, url: &Url) -> Result<()> {
        let inner = &self.inner;
        inner.registered().remove(url);
        inner.catalog.remove(LOCAL, url);
        inner.heard_remove(url);
        inner
            .send(&Message::Unregister(url.clone()), inner.group)
            .await
    }

    async fn subscribe(&self, query: &Url) -> Result<()> {
        if query.to_full_string().len() > MAX_URL_LEN {
            return Err(too_long(query));
        }
        self.inner.queries().insert(query.clone());
        self.inner.reclassify();
        self.inner.ask(query).await
    }

    async fn unsubscribe(&self, query: &Url) -> Result<()> {
        self.inner.queries().remove(query);
        self.inner.reclassify();
        self.inner
            .send(&Message::Unsubscribe(query.clone()), self.inner.group)
            .await
    }

    async fn lookup(&self, query: &Url) -> Result<Vec<Url>> {
        if query.to_full_string().len() > MAX_URL_LEN {
            return Err(too_long(query));
        }
        self.inner.ask(query).await?;
        Ok(self.inner.catalog.lookup(query))
    }

    async fn close(&self) -> Result<()> {
        // The receive loop and the prober were stopped with the handle's tasks.
        Ok(())
    }
}

//! [`MulticastBackend`]: the socket, the receive loop that keeps the catalog, answers to
//! `subscribe`, and the prober that drops providers which stopped answering.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use dubbo_url::is_match;
use futures_util::future::join_all;
use socket2::{Domain, Protocol, Socket, Type};
use srpc_registry::Error as RegistryError;
use srpc_registry::{Backend, Catalog, Context, Result, RetryPolicy, Url};
use tokio::net::{TcpStream, UdpSocket};
use tokio::sync::watch;
use tokio::task::AbortHandle;
use tokio::time::Instant;
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
/// The longest a single TCP probe may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// The multicast [`Backend`]: one UDP socket bound to the group port and joined on one
/// interface, used for receiving and sending, as Java's `MulticastRegistry` does.
#[derive(Debug)]
pub struct MulticastBackend {
    inner: Arc<Inner>,
    tasks: Vec<AbortHandle>,
}

#[derive(Debug)]
struct Inner {
    config: MulticastConfig,
    socket: UdpSocket,
    group: SocketAddr,
    catalog: Arc<Catalog>,
    /// What this handle registered: it answers `subscribe` messages with these.
    registered: Mutex<HashSet<Url>>,
    /// What this handle subscribed to: the prober checks only providers these select. A
    /// set, because `Backend::unsubscribe` comes once, when the last equal query goes.
    queries: Mutex<HashSet<Url>>,
    /// Counts `register` messages received, so `subscribe` can wait for answers.
    arrivals: watch::Sender<u64>,
}

impl MulticastBackend {
    /// Binds the group port, joins the group on the configured interface, and starts the
    /// receive loop (and the prober unless `clean=false`). Must run inside a tokio runtime.
    pub fn open(config: MulticastConfig, ctx: Context) -> Result<MulticastBackend> {
        let socket = bind(&config)?;
        let group = SocketAddr::new(config.group, config.port);
        info!(
            backend = crate::SCHEME,
            %group,
            interface = %config.interface,
            ttl = config.ttl,
            "joined multicast group"
        );
        let inner = Arc::new(Inner {
            config,
            socket,
            group,
            catalog: ctx.catalog().clone(),
            registered: Mutex::default(),
            queries: Mutex::default(),
            arrivals: watch::Sender::new(0),
        });
        let mut tasks = vec![tokio::spawn(inner.clone().receive_loop()).abort_handle()];
        if inner.config.clean {
            tasks.push(tokio::spawn(inner.clone().probe_loop()).abort_handle());
        }
        Ok(MulticastBackend { inner, tasks })
    }

    /// The local address of the socket (the group port on the wildcard address).
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.inner.socket.local_addr().ok()
    }
}

fn bind(config: &MulticastConfig) -> std::result::Result<UdpSocket, Error> {
    let socket_error = |what: String| move |source| Error::Socket { what, source };
    let domain = if config.group.is_ipv4() {
        Domain::IPV4
    } else {
        Domain::IPV6
    };
    let socket = Socket::new(domain, Type::DGRAM, Some(Protocol::UDP))
        .map_err(socket_error("create a UDP socket".into()))?;
    // Several processes on one host share the group port, as Java processes do.
    socket
        .set_reuse_address(true)
        .map_err(socket_error("set SO_REUSEADDR".into()))?;
    socket
        .set_reuse_port(true)
        .map_err(socket_error("set SO_REUSEPORT".into()))?;
    // Bursts of announcements must not be dropped while the receive loop is busy.
    let _ = socket.set_recv_buffer_size(1 << 20);
    match (config.group, config.interface) {
        (IpAddr::V4(group), IpAddr::V4(interface)) => {
            check_local_address(config.interface)?;
            let any = SocketAddr::new(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), config.port);
            socket
                .bind(&any.into())
                .map_err(socket_error(format!("bind {any}")))?;
            socket
                .join_multicast_v4(&group, &interface)
                .map_err(socket_error(format!(
                    "join group {group} on interface {interface}"
                )))?;
            socket
                .set_multicast_if_v4(&interface)
                .map_err(socket_error(format!("send on interface {interface}")))?;
            socket
                .set_multicast_loop_v4(config.loopback)
                .map_err(socket_error("set IP_MULTICAST_LOOP".into()))?;
            socket
                .set_multicast_ttl_v4(config.ttl)
                .map_err(socket_error("set IP_MULTICAST_TTL".into()))?;
        }
        (IpAddr::V6(group), IpAddr::V6(interface)) => {
            let index = interface_index(interface)?;
            socket
                .set_only_v6(true)
                .map_err(socket_error("set IPV6_V6ONLY".into()))?;
            let any = SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), config.port);
            socket
                .bind(&any.into())
                .map_err(socket_error(format!("bind {any}")))?;
            socket
                .join_multicast_v6(&group, index)
                .map_err(socket_error(format!(
                    "join group {group} on interface {interface}"
                )))?;
            socket
                .set_multicast_if_v6(index)
                .map_err(socket_error(format!("send on interface {interface}")))?;
            socket
                .set_multicast_loop_v6(config.loopback)
                .map_err(socket_error("set IPV6_MULTICAST_LOOP".into()))?;
            socket
                .set_multicast_hops_v6(config.ttl)
                .map_err(socket_error("set IPV6_MULTICAST_HOPS".into()))?;
        }
        _ => {
            return Err(Error::NoSuchInterface {
                address: config.interface.to_string(),
            });
        }
    }
    socket
        .set_nonblocking(true)
        .map_err(socket_error("make the socket non-blocking".into()))?;
    UdpSocket::from_std(socket.into())
        .map_err(socket_error("register the socket with tokio".into()))
}

fn local_interfaces() -> std::result::Result<Vec<if_addrs::Interface>, Error> {
    if_addrs::get_if_addrs().map_err(|source| Error::Socket {
        what: "list local network interfaces".into(),
        source,
    })
}

fn check_local_address(address: IpAddr) -> std::result::Result<(), Error> {
    if local_interfaces()?.iter().any(|i| i.ip() == address) {
        Ok(())
    } else {
        Err(Error::NoSuchInterface {
            address: address.to_string(),
        })
    }
}

fn interface_index(address: Ipv6Addr) -> std::result::Result<u32, Error> {
    local_interfaces()?
        .iter()
        .find(|i| i.ip() == IpAddr::V6(address))
        .and_then(|i| i.index)
        .ok_or_else(|| Error::NoSuchInterface {
            address: address.to_string(),
        })
}

impl Inner {
    fn registered(&self) -> MutexGuard<'_, HashSet<Url>> {
        self.registered.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn queries(&self) -> MutexGuard<'_, HashSet<Url>> {
        self.queries.lock().unwrap_or_else(|p| p.into_inner())
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
                if let Err(error) = srpc_registry::validate_registration(&url) {
                    warn!(backend = crate::SCHEME, %from, %error, "skipping unusable registration");
                    return;
                }
                self.catalog.insert(GROUP, url);
                self.arrivals.send_modify(|n| *n += 1);
            }
            Message::Unregister(url) => self.catalog.remove(GROUP, &url),
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
            query.param_bool("unicast", true).unwrap_or(true) && from.ip() != self.config.interface;
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
        let deadline = Instant::now() + self.config.timeout;
        loop {
            let found = !self.catalog.lookup(query).is_empty();
            let until = if found {
                deadline.min(Instant::now() + QUIET)
            } else {
                deadline
            };
            match tokio::time::timeout_at(until, arrivals.changed()).await {
                Ok(Ok(())) => continue,
                Ok(Err(_)) | Err(_) => return Ok(()),
            }
        }
    }

    async fn probe_loop(self: Arc<Self>) {
        let mut failures: HashMap<Url, u32> = HashMap::new();
        let mut ticker = tokio::time::interval(self.config.session);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticker.tick().await;
        loop {
            ticker.tick().await;
            let candidates = self.probe_candidates();
            failures.retain(|url, _| candidates.contains(url));
            let timeout = self.config.session.min(PROBE_TIMEOUT);
            let results = join_all(candidates.iter().map(|url| probe(url, timeout))).await;
            for (url, alive) in candidates.into_iter().zip(results) {
                if alive {
                    failures.remove(&url);
                    continue;
                }
                let count = failures.entry(url.clone()).or_insert(0);
                *count += 1;
                if *count >= 2 {
                    failures.remove(&url);
                    warn!(
                        backend = crate::SCHEME,
                        %url,
                        "provider did not accept TCP connections twice in a row; removed from local snapshots"
                    );
                    self.catalog.remove(GROUP, &url);
                }
            }
        }
    }

    /// Providers heard on the group that some subscription selects, that are not this
    /// handle's own, and that have a port to probe.
    fn probe_candidates(&self) -> Vec<Url> {
        let queries: Vec<Url> = self.queries().iter().cloned().collect();
        if queries.is_empty() {
            return Vec::new();
        }
        let own = self.registered().clone();
        self.catalog
            .scope(GROUP)
            .into_iter()
            .filter(|url| {
                url.port() > 0
                    && url.category() == "providers"
                    // Others' records: only an explicit dynamic=false is left unprobed.
                    && !matches!(srpc_registry::is_dynamic(url), Ok(false))
                    && !matches!(url.protocol(), "consumer" | "route" | "override" | "empty")
                    && !own.contains(url)
                    && queries.iter().any(|q| is_match(q, url))
            })
            .collect()
    }
}

async fn probe(url: &Url, timeout: Duration) -> bool {
    let host = url.host().trim_start_matches('[').trim_end_matches(']');
    let host = host.split_once('%').map_or(host, |(h, _zone)| h);
    matches!(
        tokio::time::timeout(timeout, TcpStream::connect((host, url.port()))).await,
        Ok(Ok(_))
    )
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
    fn name(&self) -> &'static str {
        crate::SCHEME
    }

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
        inner.catalog.remove(GROUP, url);
        inner
            .send(&Message::Unregister(url.clone()), inner.group)
            .await
    }

    async fn subscribe(&self, query: &Url) -> Result<()> {
        if query.to_full_string().len() > MAX_URL_LEN {
            return Err(too_long(query));
        }
        self.inner.queries().insert(query.clone());
        self.inner.ask(query).await
    }

    async fn unsubscribe(&self, query: &Url) -> Result<()> {
        self.inner.queries().remove(query);
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
        for task in &self.tasks {
            task.abort();
        }
        Ok(())
    }
}

impl Drop for MulticastBackend {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

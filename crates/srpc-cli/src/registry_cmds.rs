//! The registry commands: `list`, `watch`, `services`, `register`. None but `register` writes
//! to a registry.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use futures_util::StreamExt;
use serde::Serialize;
use srpc::registry::{Change, Registry, RegistryKind, Snapshot, Subscription};
use srpc::url::Url;

use crate::Failure;
use crate::shutdown::Shutdown;
use crate::terminal::escaped;

/// Where the registry comes from when the argument is left out.
pub(crate) const REGISTRY_ENV: &str = "SRPC_REGISTRY";

/// How a command prints what it found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Format {
    /// Lines for people (the default).
    Text,
    /// JSON for scripts (schemas in docs/cli.md).
    Json,
}

/// `[REGISTRY] ARG`: the registry may be left out when `SRPC_REGISTRY` is set.
pub(crate) fn registry_and(args: &[String], what: &str) -> Result<(String, String), Failure> {
    match args {
        [registry, arg] => Ok((registry.clone(), arg.clone())),
        [arg] => match env_registry() {
            Some(registry) => Ok((registry, arg.clone())),
            None => Err(Failure::Invalid(format!(
                "no registry: write it before the {what}, or set {REGISTRY_ENV} \
                 (e.g. {REGISTRY_ENV}=zookeeper://127.0.0.1:2181)"
            ))),
        },
        _ => Err(Failure::Invalid(format!(
            "expected [REGISTRY] {}",
            what.to_uppercase()
        ))),
    }
}

/// The registry of a command that takes only a registry: the argument, else `SRPC_REGISTRY`.
pub(crate) fn registry_or_env(registry: Option<String>) -> Result<String, Failure> {
    registry.or_else(env_registry).ok_or_else(|| {
        Failure::Invalid(format!(
            "no registry: give one, or set {REGISTRY_ENV} (e.g. {REGISTRY_ENV}=zookeeper://127.0.0.1:2181)"
        ))
    })
}

/// `SRPC_REGISTRY`, when set and not blank.
fn env_registry() -> Option<String> {
    std::env::var(REGISTRY_ENV)
        .ok()
        .filter(|registry| !registry.trim().is_empty())
}

pub(crate) async fn connect(registry: &str) -> Result<Arc<dyn Registry>, Failure> {
    srpc::registry::connect(registry)
        .await
        .map_err(failure_of(registry))
}

/// Connects to `registry` and subscribes to `query`, reporting a failure as [`connect`] does.
pub(crate) async fn subscribe_to(
    registry: &str,
    query: &Url,
) -> Result<(Arc<dyn Registry>, Subscription), Failure> {
    let handle = connect(registry).await?;
    let subscription = handle
        .subscribe(query)
        .await
        .map_err(failure_of(registry))?;
    Ok((handle, subscription))
}

/// How a registry error is reported: bad input (exit 2) or a registry failure (exit 1), with
/// a hint when nothing accepted the connection.
pub(crate) fn failure_of(registry: &str) -> impl Fn(srpc::registry::Error) -> Failure + '_ {
    move |e| match e {
        srpc::registry::Error::Url(_)
        | srpc::registry::Error::InvalidInput { .. }
        | srpc::registry::Error::Unsupported { .. } => Failure::Invalid(e.to_string()),
        other => {
            let mut message = other.to_string();
            if is_refused(&other) {
                message.push_str(&refused_hint(registry));
            }
            Failure::Registry(message)
        }
    }
}

/// Whether a "connection refused" is somewhere in the error's chain.
fn is_refused(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(error);
    while let Some(e) = next {
        if e.downcast_ref::<io::Error>()
            .is_some_and(|e| e.kind() == io::ErrorKind::ConnectionRefused)
        {
            return true;
        }
        next = e.source();
    }
    false
}

fn refused_hint(registry: &str) -> String {
    let Ok(url) = Url::parse(registry) else {
        return String::new();
    };
    let address = url.address();
    let kind = srpc::registry::scheme(url.protocol()).map(|s| s.kind);
    match url.protocol() {
        _ if kind == Some(RegistryKind::SrpcServer) => format!(
            "\nhint: nothing accepts connections at {address}; is an srpc registry running \
             there? Start one with `srpc registry serve --addr {address}`"
        ),
        scheme => format!(
            "\nhint: nothing accepts connections at {address}; is the {scheme} server running \
             there, on that port?"
        ),
    }
}

/// The subscription query for a service key `[group/]interface[:version]`; with `all`,
/// every group, version, classifier and `enabled` value of the interface (what the library's
/// "no provider" hints look at: `Elsewhere::widened`).
pub(crate) fn service_query(service: &str, all: bool) -> Result<Url, Failure> {
    let (group, rest) = match service.split_once('/') {
        Some((group, rest)) => (Some(group), rest),
        None => (None, service),
    };
    let (interface, version) = match rest.split_once(':') {
        Some((interface, version)) => (interface, Some(version)),
        None => (rest, None),
    };
    if interface.is_empty() || group == Some("") || version == Some("") {
        return Err(Failure::Invalid(format!(
            "invalid service key {service:?}: expected [group/]interface[:version]"
        )));
    }
    let mut builder = Url::builder("consumer")
        .host("127.0.0.1")
        .path(interface)
        .param("interface", interface)
        .param("category", "providers")
        .param("side", "consumer");
    if let Some(group) = group {
        builder = builder.param("group", group);
    }
    if let Some(version) = version {
        builder = builder.param("version", version);
    }
    let query = builder
        .build()
        .map_err(|e| Failure::Invalid(format!("invalid service key {service:?}: {e}")))?;
    Ok(if all {
        srpc::registry::Elsewhere::widened(&query)
    } else {
        query
    })
}

/// One provider as `list -o json` prints it.
#[derive(Debug, Serialize)]
struct ProviderJson<'a> {
    url: String,
    protocol: &'a str,
    host: &'a str,
    port: u16,
    path: &'a str,
    category: &'a str,
    params: BTreeMap<&'a str, &'a str>,
}

impl<'a> ProviderJson<'a> {
    fn of(url: &'a Url) -> ProviderJson<'a> {
        ProviderJson {
            url: url.to_full_string(),
            protocol: url.protocol(),
            host: url.host(),
            port: url.port(),
            path: url.path(),
            category: url.category(),
            params: url.params().collect(),
        }
    }
}

fn print(text: &str) {
    let mut out = io::stdout().lock();
    // A closed pipe (`srpc … | head`) is not worth an error message.
    let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
}

fn json<T: Serialize>(value: &T) -> Result<String, Failure> {
    serde_json::to_string(value).map_err(|e| Failure::Registry(format!("cannot write JSON: {e}")))
}

/// `srpc list`: exit 0 with providers printed, 3 when none matched.
pub(crate) async fn list(
    args: &[String],
    wait: Duration,
    all: bool,
    format: Format,
) -> Result<(), Failure> {
    let (registry_url, service) = registry_and(args, "service")?;
    let query = service_query(&service, all)?;
    let (registry, mut sub) = subscribe_to(&registry_url, &query).await?;
    if !wait.is_zero() {
        // Not finding one in time is an answer too: print what there is.
        let _ = sub.wait_for(|s| !s.providers().is_empty(), wait).await;
    }
    let snapshot = sub.snapshot();
    // Only when nothing matched: what else the interface has (one more read).
    let elsewhere = if all || !snapshot.providers().is_empty() {
        None
    } else {
        sub.elsewhere().await
    };
    drop(sub);
    let mut providers: Vec<&Url> = snapshot.providers().iter().collect();
    providers.sort_by_cached_key(|u| u.to_full_string());
    let text = match format {
        Format::Text => providers
            .iter()
            .map(|u| format!("{}\n", escaped(&u.to_full_string())))
            .collect(),
        Format::Json => {
            let all: Vec<ProviderJson<'_>> =
                providers.iter().map(|u| ProviderJson::of(u)).collect();
            format!("{}\n", json(&all)?)
        }
    };
    print(&text);
    if !snapshot.is_connected() {
        eprintln!(
            "srpc: warning: the registry could not be reached; these are the last providers known"
        );
    }
    let outcome = if providers.is_empty() {
        let hint = hint(elsewhere, "`--all` lists them");
        Err(Failure::NotFound(format!(
            "no provider of {service}{}{hint}",
            if wait.is_zero() {
                String::new()
            } else {
                format!(" within {}", humantime::format_duration(wait))
            }
        )))
    } else {
        Ok(())
    };
    registry.close().await.map_err(failure_of(&registry_url))?;
    outcome
}

/// The library's word on what the interface has that the query did not select (other
/// groups or versions, disabled providers), and where to see them; empty when it has none.
pub(crate) fn hint(elsewhere: Option<srpc::registry::Elsewhere>, see: &str) -> String {
    elsewhere
        .map(|elsewhere| format!("; {elsewhere}; {see}"))
        .unwrap_or_default()
}

/// One line of `watch -o json`.
#[derive(Debug, Serialize)]
struct EventJson {
    time: String,
    event: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    url: Option<String>,
}

/// `srpc watch`.
pub(crate) async fn watch(args: &[String], format: Format) -> Result<(), Failure> {
    let shutdown = Shutdown::listen();
    let (registry_url, service) = registry_and(args, "service")?;
    let query = service_query(&service, false)?;
    let (registry, sub) = subscribe_to(&registry_url, &query).await?;
    let mut changes = Box::pin(sub.changes());
    let shutdown = shutdown.wait(None);
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            change = changes.next() => {
                let Some(change) = change else { break };
                let Some(line) = watch_line(&change, format)? else { continue };
                let mut out = io::stdout().lock();
                if writeln!(out, "{line}").and_then(|()| out.flush()).is_err() {
                    break; // The reader went away.
                }
            }
            () = &mut shutdown => break,
        }
    }
    drop(changes);
    registry.close().await.map_err(failure_of(&registry_url))
}

fn watch_line(change: &Change, format: Format) -> Result<Option<String>, Failure> {
    let (event, url) = match change {
        Change::Insert(url) => ("add", Some(url)),
        Change::Remove(url) => ("remove", Some(url)),
        Change::Connected(true) => ("connected", None),
        Change::Connected(false) => ("disconnected", None),
        _ => return Ok(None),
    };
    match format {
        Format::Text => Ok(match (event, url) {
            ("add", Some(url)) => Some(format!("+ {}", escaped(&url.to_string()))),
            ("remove", Some(url)) => Some(format!("- {}", escaped(&url.to_string()))),
            (event, _) => {
                // Text output stays `+`/`-` lines; the connection shows on stderr.
                let said = if event == "connected" {
                    "srpc: the registry is back; the list above is current again"
                } else {
                    "srpc: lost the registry; keeping the last providers known until it is back"
                };
                eprintln!("{said}");
                None
            }
        }),
        Format::Json => {
            let line = EventJson {
                time: humantime::format_rfc3339_millis(SystemTime::now()).to_string(),
                event,
                url: url.map(Url::to_full_string),
            };
            json(&line).map(Some)
        }
    }
}

/// One row of `services`.
#[derive(Debug, Serialize, PartialEq, Eq, PartialOrd, Ord)]
struct ServiceJson {
    service: String,
    providers: usize,
    consumers: usize,
}

/// `srpc services`: every service key with its provider and consumer counts, sorted.
pub(crate) async fn services(
    registry: Option<String>,
    wait: Duration,
    format: Format,
) -> Result<(), Failure> {
    let registry_url = registry_or_env(registry)?;
    let query = Url::builder("consumer")
        .host("127.0.0.1")
        .path("*")
        .param("interface", "*")
        .param("category", "providers,consumers")
        .param("group", "*")
        .param("version", "*")
        .param("enabled", "*")
        .build()
        .map_err(|e| Failure::Invalid(e.to_string()))?;
    let (registry, mut sub) = subscribe_to(&registry_url, &query).await?;
    if !wait.is_zero() {
        let _ = sub.wait_for(|s| !s.is_empty(), wait).await;
    }
    let rows = count_services(&sub.snapshot());
    drop(sub);
    let text = match format {
        Format::Text => {
            let names: Vec<_> = rows.iter().map(|r| escaped(&r.service)).collect();
            let width = names.iter().map(|n| n.chars().count()).max().unwrap_or(0);
            rows.iter()
                .zip(&names)
                .map(|(r, name)| {
                    format!(
                        "{name:<width$}  providers={} consumers={}\n",
                        r.providers, r.consumers
                    )
                })
                .collect()
        }
        Format::Json => format!("{}\n", json(&rows)?),
    };
    print(&text);
    registry.close().await.map_err(failure_of(&registry_url))?;
    if rows.is_empty() {
        return Err(Failure::NotFound("no service registered".into()));
    }
    Ok(())
}

fn count_services(snapshot: &Snapshot) -> Vec<ServiceJson> {
    let mut counts: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for url in snapshot.category("providers") {
        counts.entry(url.service_key()).or_default().0 += 1;
    }
    for url in snapshot.category("consumers") {
        counts.entry(url.service_key()).or_default().1 += 1;
    }
    counts
        .into_iter()
        .map(|(service, (providers, consumers))| ServiceJson {
            service,
            providers,
            consumers,
        })
        .collect()
}

/// `srpc register`.
pub(crate) async fn register(
    args: &[String],
    duration: Option<Duration>,
    listen: bool,
) -> Result<(), Failure> {
    let shutdown = Shutdown::listen();
    let (registry_url, url) = registry_and(args, "url")?;
    if url
        .split_once('?')
        .is_some_and(|(_, query)| query.contains(';'))
    {
        return Err(Failure::Invalid(format!(
            "{}: `;` in the query reads as a parameter separator to Java Dubbo 2.7.13 and later, \
             and as part of a value to older Java and to dubbo-go; separate parameters with `&`",
            srpc::url::quote(&url)
        )));
    }
    let url = Url::parse(&url).map_err(|e| Failure::Invalid(e.to_string()))?;
    srpc::registry::validate_publication(&url).map_err(|e| Failure::Invalid(e.to_string()))?;
    let listener = if listen {
        let host = url.host().trim_start_matches('[').trim_end_matches(']');
        let listener = tokio::net::TcpListener::bind((host, url.port()))
            .await
            .map_err(|e| Failure::Registry(format!("cannot listen on {}: {e}", url.address())))?;
        Some(tokio::spawn(async move {
            // Accept and drop: the connection itself is the liveness answer.
            while listener.accept().await.is_ok() {}
        }))
    } else {
        None
    };
    if !listen {
        warn_if_nothing_answers(&registry_url, &url).await;
    }
    let registry = connect(&registry_url).await?;
    registry
        .register(&url)
        .await
        .map_err(failure_of(&registry_url))?;
    let shutdown = shutdown.wait(duration);
    tokio::pin!(shutdown);
    if !registry.is_registered(&url) {
        // check=false: the failure was logged above; say what it means, once, and say
        // "registered" only when it is.
        eprintln!("srpc: not registered yet (check=false): retrying in the background");
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        loop {
            tokio::select! {
                _ = tick.tick() => if registry.is_registered(&url) { break },
                () = &mut shutdown => {
                    eprintln!("srpc: stopped before {} was registered", escaped(&url.to_string()));
                    return registry.close().await.map_err(failure_of(&registry_url));
                }
            }
        }
    }
    eprintln!("srpc: registered {}", escaped(&url.to_string()));
    (&mut shutdown).await;
    let closed = registry.close().await.map_err(failure_of(&registry_url));
    if let Some(listener) = listener {
        listener.abort();
    }
    closed
}

/// Registries without a server (multicast, mDNS) find dead providers by connecting to them:
/// a stand-in registered where nothing listens is dropped by every consumer. Say so before.
async fn warn_if_nothing_answers(registry_url: &str, url: &Url) {
    let scheme = registry_url.split("://").next().unwrap_or_default();
    if kind_of(scheme) != Some(RegistryKind::Peers)
        || url.port() == 0
        || url.category() != "providers"
        || url.param("dynamic") == Some("false")
    {
        return;
    }
    // The very check consumers make (the registry kit's prober).
    if !srpc_registry_kit::probe(url, Duration::from_secs(1)).await {
        eprintln!(
            "srpc: warning: nothing accepts TCP connections at {}; {scheme} consumers probe \
             providers and will drop this one within their `session`. Start the provider \
             first, or add --listen to accept connections for it",
            url.address()
        );
    }
}

/// What kind of registry a scheme reaches, from the facade's scheme table.
fn kind_of(scheme: &str) -> Option<RegistryKind> {
    srpc::registry::scheme(scheme).map(|s| s.kind)
}

/// `srpc unregister`: takes back a registration, whoever made it.
pub(crate) async fn unregister(
    args: &[String],
    force: bool,
    grace: Duration,
) -> Result<(), Failure> {
    let (registry_url, url) = registry_and(args, "url")?;
    let url = Url::parse(&url).map_err(|e| Failure::Invalid(e.to_string()))?;
    let scheme = registry_url.split("://").next().unwrap_or_default();
    if kind_of(scheme) == Some(RegistryKind::InProcess) {
        return Err(Failure::Invalid(
            "an inprocess registry lives inside one process: there is nothing another \
             process left in it to remove"
                .into(),
        ));
    }
    // The very check consumers make (the registry kit's prober): a provider that accepts
    // connections is alive, and its handle would register it again at once.
    if !force && url.port() > 0 && srpc_registry_kit::probe(&url, Duration::from_secs(1)).await {
        return Err(Failure::Registry(format!(
            "something accepts TCP connections at {}: the provider of {} looks alive, and \
             would register it again. Stop it first, or pass --force to remove the entry anyway",
            escaped(&url.address()),
            escaped(&url.to_string())
        )));
    }
    let registry = connect(&registry_url).await?;
    registry
        .unregister(&url)
        .await
        .map_err(failure_of(&registry_url))?;
    if kind_of(scheme) == Some(RegistryKind::Peers) {
        // No server to ask: the retraction went out, and each consumer applies it.
        eprintln!(
            "srpc: sent the retraction of {} ({scheme} consumers drop it)",
            escaped(&url.to_string())
        );
        return registry.close().await.map_err(failure_of(&registry_url));
    }
    // Watch the registry for `grace`: a live provider's handle writes it again.
    let query = Url::builder("consumer")
        .host("127.0.0.1")
        .path(url.service_interface())
        .param("interface", url.service_interface())
        .param("category", url.category())
        .param("group", "*")
        .param("version", "*")
        .param("enabled", "*")
        .build()
        .map_err(|e| Failure::Invalid(e.to_string()))?;
    let mut subscription = registry
        .subscribe(&query)
        .await
        .map_err(failure_of(&registry_url))?;
    let back = subscription
        .wait_for(|s| s.is_connected() && s.contains(&url), grace)
        .await
        .is_ok();
    drop(subscription);
    registry.close().await.map_err(failure_of(&registry_url))?;
    if back {
        Err(Failure::Registry(format!(
            "still registered: the provider at {} is alive and registered {} again",
            escaped(&url.address()),
            escaped(&url.to_string())
        )))
    } else {
        eprintln!("srpc: unregistered {}", escaped(&url.to_string()));
        Ok(())
    }
}

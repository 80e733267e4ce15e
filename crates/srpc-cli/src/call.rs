//! `srpc call`: discovers a service's providers and calls one (or all) with the JSON codec —
//! grpcurl for srpc services.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, Write};
use std::time::Duration;

use srpc::rpc::{Metadata, shorten};
use srpc::xclient::{CallOptions, Discovery, Options, Selector, XClient};

use crate::Failure;
use crate::registry_cmds::{Format, failure_of, hint, registry_and, service_query, subscribe_to};
use crate::terminal::escaped;

/// How `call` picks a provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Pick {
    /// Any provider, at random.
    Random,
    /// Each in turn.
    RoundRobin,
    /// By the providers' `weight` parameters, smoothly.
    WeightedRoundRobin,
    /// The one that has the fewest calls in flight.
    LeastLoaded,
}

impl From<Pick> for Selector {
    fn from(pick: Pick) -> Selector {
        match pick {
            Pick::Random => Selector::Random,
            Pick::RoundRobin => Selector::RoundRobin,
            Pick::WeightedRoundRobin => Selector::WeightedRoundRobin,
            Pick::LeastLoaded => Selector::LeastLoaded,
        }
    }
}

/// `srpc call`'s TLS settings, the same words as registry URLs'.
#[cfg(feature = "tls")]
#[derive(Debug, clap::Args)]
pub(crate) struct TlsArgs {
    /// PEM bundle of the CAs that sign the providers' certificates (default: the
    /// platform's).
    #[arg(long, value_name = "FILE")]
    cacert: Option<std::path::PathBuf>,
    /// Client certificate chain (PEM), for providers that want one; needs --key.
    #[arg(long, value_name = "FILE", requires = "key")]
    cert: Option<std::path::PathBuf>,
    /// The private key of --cert (PEM).
    #[arg(long, value_name = "FILE", requires = "cert")]
    key: Option<std::path::PathBuf>,
    /// The name the providers' certificates must carry, when not their host.
    #[arg(long, value_name = "NAME")]
    tls_server_name: Option<String>,
}

#[cfg(feature = "tls")]
impl TlsArgs {
    /// Connection settings with these TLS settings: TLS is used for providers whose URL says
    /// `tls=true`, with the platform's roots when no --cacert is given.
    pub(crate) fn client_options(&self) -> Result<srpc::rpc::ClientOptions, Failure> {
        use srpc::registry::{Pem, TlsConfig};
        let mut tls = TlsConfig::enabled();
        if let Some(ca) = &self.cacert {
            tls = tls.with_ca(Pem::File(ca.clone()));
        }
        if let (Some(cert), Some(key)) = (&self.cert, &self.key) {
            tls = tls.with_identity(Pem::File(cert.clone()), Pem::File(key.clone()));
        }
        let given = self.cacert.is_some() || self.cert.is_some() || self.tls_server_name.is_some();
        if !given {
            // No TLS settings: providers that ask for TLS say so when called.
            return Ok(srpc::rpc::ClientOptions::default());
        }
        let config = tls
            .client_config()
            .map_err(|e| Failure::Invalid(e.to_string()))?;
        Ok(srpc::rpc::ClientOptions::default().with_tls(config, self.tls_server_name.clone()))
    }
}

/// What `call` was asked.
pub(crate) struct CallArgs<'a> {
    /// Connection settings (TLS).
    pub(crate) client: srpc::rpc::ClientOptions,
    /// `[REGISTRY] Service.Method JSON`.
    pub(crate) args: &'a [String],
    /// `-H key=value`: call metadata.
    pub(crate) headers: &'a [String],
    pub(crate) output: Format,
    pub(crate) service: Option<&'a str>,
    pub(crate) pick: Pick,
    pub(crate) timeout: Duration,
    pub(crate) wait: Duration,
    pub(crate) broadcast: bool,
}

/// The largest request `call` reads: what one srpc frame holds.
const MAX_REQUEST: u64 = srpc::rpc::DEFAULT_MAX_FRAME as u64;
/// How much of a provider's error message is shown.
const QUOTE: usize = 200;

/// `srpc call`: exit 0 and the JSON reply (an array of replies with `--broadcast`) on
/// stdout; 3 when no provider was found within `--wait`, or only providers of protocols it
/// cannot call; 1 when the call failed. With `-o json`, failures are an error object on
/// stdout too.
pub(crate) async fn call(call: CallArgs<'_>) -> Result<(), Failure> {
    let output = call.output;
    let outcome = run(call).await;
    if output == Format::Json {
        if let Err(failure) = &outcome {
            let (kind, message) = match failure {
                Failure::Invalid(m) => ("invalid", m),
                Failure::Registry(m) => ("failed", m),
                Failure::NotFound(m) => ("not-found", m),
            };
            let error = serde_json::json!({ "error": { "kind": kind, "message": message } });
            let mut out = io::stdout().lock();
            let _ = writeln!(out, "{error}").and_then(|()| out.flush());
        }
    }
    outcome
}

async fn run(call: CallArgs<'_>) -> Result<(), Failure> {
    let (registry_url, method, body) = match call.args {
        [registry, method, body] => (registry.clone(), method, body),
        [method, body] => {
            let (registry, _) = registry_and(std::slice::from_ref(method), "method")?;
            (registry, method, body)
        }
        _ => {
            return Err(Failure::Invalid(
                "expected [REGISTRY] Service.Method JSON".into(),
            ));
        }
    };
    let request = read_request(body)?;
    let mut metadata = Metadata::new();
    for header in call.headers {
        let (key, value) = header
            .split_once('=')
            .ok_or_else(|| Failure::Invalid(format!("-H {header:?}: write key=value")))?;
        metadata
            .insert(key.trim(), value)
            .map_err(|e| Failure::Invalid(format!("-H {header:?}: {e}")))?;
    }
    let service = match call.service {
        Some(service) => service.to_owned(),
        None => match method.rsplit_once('.') {
            Some((service, name)) if !service.is_empty() && !name.is_empty() => service.to_owned(),
            _ => {
                return Err(Failure::Invalid(format!(
                    "method {method:?} is not Service.Method (or give the service with --service)"
                )));
            }
        },
    };
    let query = service_query(&service, false)?;
    let (registry, subscription) = subscribe_to(&registry_url, &query).await?;
    let options = Options::default()
        .with_selector(call.pick.into())
        .with_timeout(call.timeout)
        .with_client(call.client);
    #[cfg(feature = "jsonrpc")]
    let options = options.with_transport(std::sync::Arc::new(
        srpc::xclient::jsonrpc::JsonRpcTransport::new()
            .map_err(|e| Failure::Registry(e.to_string()))?,
    ));
    let xclient = XClient::new(Discovery::subscription(subscription), options);
    // Providers this XClient cannot call end the wait too: waiting longer would not help.
    let waited = xclient
        .wait_for_endpoints(
            |e| !e.list().is_empty() || !e.uncallable().is_empty(),
            call.wait,
        )
        .await;
    let found = waited.is_ok();
    let endpoints = xclient.endpoints();
    let options = CallOptions::default().with_metadata(metadata);
    let outcome = if !found {
        // Say what the interface does have: other versions or groups, disabled providers.
        let elsewhere = match waited {
            Err(srpc::xclient::Error::Timeout { elsewhere, .. }) => elsewhere,
            _ => None,
        };
        let hint = hint(elsewhere, "`srpc list --all` lists them");
        Err(Failure::NotFound(format!(
            "no provider of {service} within {}{hint}",
            humantime::format_duration(call.wait)
        )))
    } else if endpoints.list().is_empty() {
        // Says what was found and what this build calls (the XClient's own message).
        Err(Failure::NotFound(format!(
            "{method}: {}",
            xclient.no_endpoint_error()
        )))
    } else if call.broadcast {
        xclient
            .broadcast_with::<_, serde_json::Value>(method, &request, &options)
            .await
            .map(serde_json::Value::Array)
            .map_err(|e| Failure::Registry(failed(method, &e)))
    } else {
        xclient
            .call_with::<_, serde_json::Value>(method, &request, &options)
            .await
            .map_err(|e| Failure::Registry(failed(method, &e)))
    }
    .map(|reply| {
        let mut out = io::stdout().lock();
        let _ = writeln!(out, "{reply}").and_then(|()| out.flush());
    });
    drop(xclient);
    registry.close().await.map_err(failure_of(&registry_url))?;
    outcome
}

/// The request: the argument itself, `-` for stdin, or `@FILE`; at most one frame's worth
/// (16 MiB), and JSON.
fn read_request(body: &str) -> Result<serde_json::Value, Failure> {
    let (text, from) = if body == "-" {
        (read_bounded(io::stdin().lock(), "stdin")?, "stdin")
    } else if let Some(path) = body.strip_prefix('@') {
        let file = std::fs::File::open(path)
            .map_err(|e| Failure::Invalid(format!("cannot read the request file {path:?}: {e}")))?;
        (read_bounded(file, path)?, "the request file")
    } else {
        (body.as_bytes().to_vec(), "the request")
    };
    serde_json::from_slice(&text).map_err(|e| {
        Failure::Invalid(format!(
            "{from} is not JSON ({}): write e.g. '[1, 2]' or '{{\"name\": \"x\"}}'",
            shorten(&e.to_string(), QUOTE)
        ))
    })
}

/// Reads at most [`MAX_REQUEST`] bytes; more is refused before it is all read.
fn read_bounded(reader: impl io::Read, what: &str) -> Result<Vec<u8>, Failure> {
    let mut bytes = Vec::new();
    io::Read::read_to_end(&mut io::Read::take(reader, MAX_REQUEST + 1), &mut bytes)
        .map_err(|e| Failure::Invalid(format!("cannot read {what}: {e}")))?;
    if bytes.len() as u64 > MAX_REQUEST {
        return Err(Failure::Invalid(format!(
            "the request in {what} is over {} MiB: one srpc frame holds at most that \
             (srpc::rpc::DEFAULT_MAX_FRAME)",
            MAX_REQUEST >> 20
        )));
    }
    Ok(bytes)
}

/// The failure of a call, the provider's own message cut to 200 bytes (it may quote the
/// whole argument).
fn failed(method: &str, error: &srpc::xclient::Error) -> String {
    format!("{method}: {}", shorten(&error.to_string(), QUOTE + 150))
}

/// What `describe` prints as JSON.
#[derive(Debug, serde::Serialize)]
struct Description {
    interface: String,
    providers: usize,
    disabled: usize,
    protocols: BTreeMap<String, usize>,
    versions: BTreeMap<String, usize>,
    groups: BTreeMap<String, usize>,
    methods: Vec<String>,
    applications: Vec<String>,
}

/// `srpc describe [REGISTRY] INTERFACE`: the providers of every version and group of an
/// interface, by protocol, version and group, with the union of their `methods`. Exit 3 when
/// there is none.
pub(crate) async fn describe(
    args: &[String],
    wait: Duration,
    output: Format,
) -> Result<(), Failure> {
    let (registry_url, interface) = registry_and(args, "interface")?;
    let interface = interface
        .split_once('/')
        .map_or(interface.as_str(), |(_, rest)| rest);
    let interface = interface
        .split_once(':')
        .map_or(interface, |(i, _)| i)
        .to_owned();
    let query = service_query(&interface, true)?;
    let (registry, mut subscription) = subscribe_to(&registry_url, &query).await?;
    if !wait.is_zero() {
        // Registries without a server answer over time; an empty result after `wait` is final.
        let _ = subscription
            .wait_for(|s| !s.providers().is_empty(), wait)
            .await;
    }
    let snapshot = subscription.snapshot();
    let providers = snapshot.providers();
    let count = |values: &mut BTreeMap<String, usize>, value: &str| {
        *values.entry(value.to_owned()).or_default() += 1;
    };
    let mut description = Description {
        interface: interface.clone(),
        providers: providers.len(),
        disabled: 0,
        protocols: BTreeMap::new(),
        versions: BTreeMap::new(),
        groups: BTreeMap::new(),
        methods: Vec::new(),
        applications: Vec::new(),
    };
    let mut methods = BTreeSet::new();
    let mut applications = BTreeSet::new();
    for url in providers {
        count(&mut description.protocols, url.protocol());
        count(
            &mut description.versions,
            url.param("version").unwrap_or("(none)"),
        );
        count(
            &mut description.groups,
            url.param("group").unwrap_or("(none)"),
        );
        if url.param("enabled") == Some("false") {
            description.disabled += 1;
        }
        methods.extend(
            url.param("methods")
                .unwrap_or_default()
                .split(',')
                .map(str::trim)
                .filter(|m| !m.is_empty())
                .map(str::to_owned),
        );
        if let Some(application) = url.param("application") {
            applications.insert(application.to_owned());
        }
    }
    description.methods = methods.into_iter().collect();
    description.applications = applications.into_iter().collect();
    registry.close().await.map_err(failure_of(&registry_url))?;
    if description.providers == 0 {
        return Err(Failure::NotFound(format!("no provider of {interface}")));
    }
    let text = match output {
        Format::Json => serde_json::to_string(&description)
            .map_err(|e| Failure::Registry(format!("cannot write JSON: {e}")))?,
        Format::Text => {
            let list = |values: &BTreeMap<String, usize>| {
                values
                    .iter()
                    .map(|(k, n)| format!("{} ({n})", escaped(k)))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let names = |values: &[String]| {
                values
                    .iter()
                    .map(|v| escaped(v))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let mut text = format!(
                "interface: {}\nproviders: {}{}\nprotocols: {}\nversions: {}\ngroups: {}\nmethods: {}",
                escaped(&description.interface),
                description.providers,
                if description.disabled > 0 {
                    format!(" ({} disabled)", description.disabled)
                } else {
                    String::new()
                },
                list(&description.protocols),
                list(&description.versions),
                list(&description.groups),
                names(&description.methods),
            );
            if !description.applications.is_empty() {
                text.push_str(&format!(
                    "\napplications: {}",
                    names(&description.applications)
                ));
            }
            text
        }
    };
    let mut out = io::stdout().lock();
    let _ = writeln!(out, "{text}").and_then(|()| out.flush());
    Ok(())
}

//! `srpc call`: discovers a service's providers and calls one (or all) with the JSON codec —
//! grpcurl for srpc services.

use std::io::{self, Write};
use std::time::Duration;

use srpc::xclient::{Discovery, Options, Selector, XClient};

use crate::Failure;
use crate::registry_cmds::{failure_of, registry_and, service_query, subscribe_to};

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
    pub(crate) service: Option<&'a str>,
    pub(crate) pick: Pick,
    pub(crate) timeout: Duration,
    pub(crate) wait: Duration,
    pub(crate) broadcast: bool,
}

/// `srpc call`: exit 0 and the JSON reply (an array of replies with `--broadcast`) on
/// stdout; 3 when no provider was found within `--wait`, or only providers of protocols it
/// cannot call; 1 when the call failed.
pub(crate) async fn call(call: CallArgs<'_>) -> Result<(), Failure> {
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
    let request: serde_json::Value = serde_json::from_str(body).map_err(|e| {
        Failure::Invalid(format!(
            "the request is not JSON ({e}): write e.g. '[1, 2]' or '{{\"name\": \"x\"}}'"
        ))
    })?;
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
    let found = xclient
        .wait_for_endpoints(
            |e| !e.list().is_empty() || !e.uncallable().is_empty(),
            call.wait,
        )
        .await
        .is_ok();
    let endpoints = xclient.endpoints();
    let outcome = if !found {
        Err(Failure::NotFound(format!(
            "no provider of {service} within {}",
            humantime::format_duration(call.wait)
        )))
    } else if endpoints.list().is_empty() {
        // Says what was found and what this build calls (the XClient's own message).
        let error = xclient
            .call::<_, serde_json::Value>(method, &request)
            .await
            .err()
            .map_or_else(|| "no provider".to_owned(), |e| e.to_string());
        Err(Failure::NotFound(format!("{method}: {error}")))
    } else if call.broadcast {
        xclient
            .broadcast::<_, serde_json::Value>(method, &request)
            .await
            .map(serde_json::Value::Array)
            .map_err(|e| Failure::Registry(format!("{method}: {e}")))
    } else {
        xclient
            .call::<_, serde_json::Value>(method, &request)
            .await
            .map_err(|e| Failure::Registry(format!("{method}: {e}")))
    }
    .map(|reply| {
        let mut out = io::stdout().lock();
        let _ = writeln!(out, "{reply}").and_then(|()| out.flush());
    });
    drop(xclient);
    registry.close().await.map_err(failure_of(&registry_url))?;
    outcome
}

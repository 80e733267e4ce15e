//! The error type of XClient calls.

use srpc_registry::Elsewhere;

use crate::transport::{advice, describe_protocol};

/// Why an XClient call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Discovery offers no endpoint (after filters). When the registry holds providers of
    /// the interface that the subscription does not select (other groups or versions,
    /// disabled ones), `elsewhere` says so: "no endpoint available; the interface
    /// com.acme.Echo has 2 provider(s): 2 in other groups or versions (com.acme.Echo:2.0)".
    #[error("no endpoint available{}", hint(elsewhere))]
    NoEndpoints {
        /// What the interface has that the subscription does not select
        /// ([`Subscription::elsewhere`](srpc_registry::Subscription::elsewhere)).
        elsewhere: Option<Elsewhere>,
    },
    /// Providers were found, but none speaks a protocol this XClient has a transport for
    /// (see [`crate::transport`]): "3 providers of com.acme.Echo, all `dubbo://`: this
    /// XClient calls srpc, jsonrpc".
    #[error("{}", uncallable_message(service, found, callable))]
    Uncallable {
        /// The service the providers offer (their interface or path).
        service: String,
        /// Each protocol found, with its number of providers.
        found: Vec<(String, usize)>,
        /// The protocols this XClient calls.
        callable: Vec<String>,
    },
    /// [`XClient::wait_for_endpoints`](crate::XClient::wait_for_endpoints) gave up: the
    /// endpoints never satisfied its predicate.
    #[error(
        "the endpoints did not reach the state waited for within {after:?} (now {endpoints} \
         endpoint(s), and {uncallable} provider(s) of protocols this XClient does not \
         call){}",
        hint(elsewhere)
    )]
    Timeout {
        /// How long it waited.
        after: std::time::Duration,
        /// The endpoints when it gave up.
        endpoints: usize,
        /// Providers left out for their protocol when it gave up.
        uncallable: usize,
        /// When there was no endpoint: what the interface has that the subscription does not
        /// select.
        elsewhere: Option<Elsewhere>,
    },
    /// The call failed; `attempts` counts every request sent, retries and hedges included.
    #[error("{method} failed on {endpoint} after {attempts} attempt(s): {source}")]
    Call {
        /// The method.
        method: String,
        /// The endpoint of the last failure (`host:port`).
        endpoint: String,
        /// Requests sent in all.
        attempts: u32,
        /// The last error.
        #[source]
        source: srpc_core::Error,
    },
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// The requests sent before giving up (0 when there was no endpoint).
    pub fn attempts(&self) -> u32 {
        match self {
            Error::NoEndpoints { .. } | Error::Uncallable { .. } | Error::Timeout { .. } => 0,
            Error::Call { attempts, .. } => *attempts,
        }
    }

    /// The transport or remote error, when a request was sent.
    pub fn source_error(&self) -> Option<&srpc_core::Error> {
        match self {
            Error::NoEndpoints { .. } | Error::Uncallable { .. } | Error::Timeout { .. } => None,
            Error::Call { source, .. } => Some(source),
        }
    }
}

fn hint(elsewhere: &Option<Elsewhere>) -> String {
    elsewhere
        .as_ref()
        .map(|hint| format!("; {hint}"))
        .unwrap_or_default()
}

fn uncallable_message(service: &str, found: &[(String, usize)], callable: &[String]) -> String {
    let total: usize = found.iter().map(|(_, n)| n).sum();
    let noun = if total == 1 { "provider" } else { "providers" };
    let of = if service.is_empty() {
        String::new()
    } else {
        format!(" of {service}")
    };
    let kinds = match found {
        [(protocol, _)] if total == 1 => describe_protocol(protocol),
        [(protocol, _)] => format!("all {}", describe_protocol(protocol)),
        _ => found
            .iter()
            .map(|(protocol, n)| format!("{n} {}", describe_protocol(protocol)))
            .collect::<Vec<_>>()
            .join(", "),
    };
    let calls = if callable.is_empty() {
        "nothing (it has no transport)".to_owned()
    } else {
        callable.join(", ")
    };
    let mut message = format!("{total} {noun}{of}, {kinds}: this XClient calls {calls}");
    let mut advised: Vec<&str> = Vec::new();
    for (protocol, _) in found {
        if let Some(advice) = advice(protocol) {
            if !advised.contains(&advice) {
                advised.push(advice);
            }
        }
    }
    for advice in advised {
        message.push_str("; ");
        message.push_str(advice);
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uncallable_says_what_was_found_and_what_is_called() {
        let e = Error::Uncallable {
            service: "com.acme.Echo".into(),
            found: vec![("dubbo".into(), 3)],
            callable: vec!["srpc".into(), "jsonrpc".into()],
        };
        assert!(
            e.to_string().starts_with(
                "3 providers of com.acme.Echo, all `dubbo://`: this XClient calls srpc, jsonrpc"
            ),
            "{e}"
        );
        let e = Error::Uncallable {
            service: "Arith".into(),
            found: vec![("tcp".into(), 1), ("tri".into(), 2)],
            callable: vec!["srpc".into()],
        };
        let text = e.to_string();
        assert!(
            text.starts_with(
                "3 providers of Arith, 1 rpcx (`tcp@`), 2 `tri://`: this XClient calls srpc"
            ),
            "{text}"
        );
        assert!(text.contains("rpcx's protocol") && text.contains("BalancedChannel"));
    }
}

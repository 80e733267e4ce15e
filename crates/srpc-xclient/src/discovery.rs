//! Discovery sources: a registry subscription, or a static list.

use dubbo_url::Url;
use srpc_registry::Subscription;
use tokio::sync::watch;

use crate::transport::RPCX_NETWORKS;

/// Where an XClient's endpoints come from.
#[derive(Debug)]
pub struct Discovery {
    pub(crate) kind: Kind,
}

#[derive(Debug)]
pub(crate) enum Kind {
    Subscription(Subscription),
    Static(watch::Receiver<Vec<Url>>),
}

/// A list of servers that can be replaced while the XClient runs (rpcx's MultipleServers).
#[derive(Debug, Clone)]
pub struct StaticList {
    tx: watch::Sender<Vec<Url>>,
}

impl Discovery {
    /// The providers of a registry subscription, followed as they change.
    pub fn subscription(sub: Subscription) -> Discovery {
        Discovery {
            kind: Kind::Subscription(sub),
        }
    }

    /// One server (rpcx's Peer2Peer): `host:port` (srpc's protocol) or a URL.
    pub fn peer(addr: &str) -> Result<Discovery, dubbo_url::Error> {
        let (discovery, _list) = Discovery::servers([addr])?;
        Ok(discovery)
    }

    /// A fixed list of servers, with a handle to replace it later. `host:port` is an srpc
    /// server; a URL says its protocol (`jsonrpc://host:port/com.acme.Echo`); rpcx's
    /// `tcp@host:port` is an rpcx server (`tcp://host:port`), called only by a transport for
    /// rpcx.
    pub fn servers<'a>(
        addrs: impl IntoIterator<Item = &'a str>,
    ) -> Result<(Discovery, StaticList), dubbo_url::Error> {
        let urls = parse_all(addrs)?;
        let (tx, rx) = watch::channel(urls);
        Ok((
            Discovery {
                kind: Kind::Static(rx),
            },
            StaticList { tx },
        ))
    }
}

impl StaticList {
    /// Replaces the list; the XClient follows at once.
    pub fn update<'a>(
        &self,
        addrs: impl IntoIterator<Item = &'a str>,
    ) -> Result<(), dubbo_url::Error> {
        self.tx.send_replace(parse_all(addrs)?);
        Ok(())
    }
}

impl From<Subscription> for Discovery {
    fn from(sub: Subscription) -> Discovery {
        Discovery::subscription(sub)
    }
}

fn parse_all<'a>(addrs: impl IntoIterator<Item = &'a str>) -> Result<Vec<Url>, dubbo_url::Error> {
    addrs
        .into_iter()
        .map(|a| {
            // A bare `host:port` becomes `srpc://host:port`; rpcx's `network@host:port`
            // becomes `network://host:port`, as rpcx records read from a registry do.
            let rpcx = a.split_once('@').filter(|(network, _)| {
                RPCX_NETWORKS
                    .iter()
                    .any(|n| n.eq_ignore_ascii_case(network))
            });
            if a.contains("://") {
                Url::parse(a)
            } else if let Some((network, address)) = rpcx {
                Url::parse(&format!("{network}://{address}"))
            } else {
                Url::parse(&format!("srpc://{a}"))
            }
        })
        .collect()
}

//! `tower` integration: any registry subscription as a `tower::discover::Discover`, whose
//! services call one endpoint over srpc and report their load (calls in flight), ready for
//! `tower::balance::p2c::Balance`.

use std::convert::Infallible;
use std::marker::PhantomData;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::StreamExt;
use futures_util::future::BoxFuture;
use futures_util::stream::BoxStream;
use serde::Serialize;
use serde::de::DeserializeOwned;
use srpc_core::ClientOptions;
use srpc_registry::{Change, Subscription};
use tower::discover::Change as TowerChange;
use tower::load::Load;

use crate::endpoints::Endpoint;
use crate::transport::SRPC_PROTOCOL;

/// A call for an [`EndpointService`]: the method and its argument.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RpcRequest<Req> {
    /// `Service.Method`.
    pub method: String,
    /// The argument.
    pub args: Req,
}

impl<Req> RpcRequest<Req> {
    /// A request for `method` with `args`.
    pub fn new(method: impl Into<String>, args: Req) -> RpcRequest<Req> {
        RpcRequest {
            method: method.into(),
            args,
        }
    }
}

/// A `tower::Service` calling one endpoint over srpc (one shared connection, opened on first
/// use). Its `Load` is the number of calls in flight.
#[derive(Debug)]
pub struct EndpointService<Req, Resp> {
    endpoint: Arc<Endpoint>,
    client: ClientOptions,
    timeout: Duration,
    _types: PhantomData<fn(Req) -> Resp>,
}

impl<Req, Resp> Clone for EndpointService<Req, Resp> {
    fn clone(&self) -> Self {
        EndpointService {
            endpoint: self.endpoint.clone(),
            client: self.client.clone(),
            timeout: self.timeout,
            _types: PhantomData,
        }
    }
}

impl<Req, Resp> tower::Service<RpcRequest<Req>> for EndpointService<Req, Resp>
where
    Req: Serialize + Send + Sync + 'static,
    Resp: DeserializeOwned + Send + 'static,
{
    type Response = Resp;
    type Error = srpc_core::Error;
    type Future = BoxFuture<'static, Result<Resp, srpc_core::Error>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // Connections open lazily and calls are multiplexed: always ready.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: RpcRequest<Req>) -> Self::Future {
        let endpoint = self.endpoint.clone();
        let (options, timeout) = (self.client.clone(), self.timeout);
        Box::pin(async move {
            let _load = endpoint.begin();
            endpoint
                .call(
                    &options,
                    &request.method,
                    &request.args,
                    timeout,
                    &srpc_core::Metadata::new(),
                )
                .await
        })
    }
}

impl<Req, Resp> Load for EndpointService<Req, Resp> {
    type Metric = usize;

    fn load(&self) -> usize {
        self.endpoint.in_flight()
    }
}

/// What [`discover`] returns: a `tower::discover::Discover` (a stream of changes keyed by the
/// provider's full URL).
pub type Discovered<Req, Resp> =
    BoxStream<'static, Result<TowerChange<String, EndpointService<Req, Resp>>, Infallible>>;

/// The `srpc://` providers of `subscription` as a `tower::discover::Discover` stream, keyed
/// by their full URL: inserted and removed as the subscription changes. Providers of other
/// protocols are left out.
pub fn discover<Req, Resp>(
    subscription: Subscription,
    client: ClientOptions,
    timeout: Duration,
) -> Discovered<Req, Resp>
where
    Req: Send + 'static,
    Resp: Send + 'static,
{
    subscription
        .changes()
        .filter_map(move |change| {
            let client = client.clone();
            async move {
                let change = match change {
                    // srpc's own providers only: this adapter speaks srpc.
                    Change::Insert(url)
                        if url.category() == dubbo_url::DEFAULT_CATEGORY
                            && url.port() > 0
                            && url.protocol().eq_ignore_ascii_case(SRPC_PROTOCOL) =>
                    {
                        let key = url.to_full_string();
                        TowerChange::Insert(
                            key,
                            EndpointService {
                                endpoint: Arc::new(Endpoint::new(url)),
                                client,
                                timeout,
                                _types: PhantomData,
                            },
                        )
                    }
                    Change::Remove(url) => TowerChange::Remove(url.to_full_string()),
                    _ => return None,
                };
                Some(Ok(change))
            }
        })
        .boxed()
}

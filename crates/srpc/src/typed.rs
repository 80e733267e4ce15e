//! What `#[srpc::service]` clients call through: [`Caller`], implemented by an
//! [`XClient`] (load balanced over discovered providers) and by a
//! [`Connection`] (one srpc connection with a deadline).

use std::future::Future;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::rpc::Client;
use crate::xclient::XClient;

/// Calls a method by name with a serde argument and reply.
pub trait Caller: Send + Sync {
    /// What a failed call returns.
    type Error: std::error::Error + Send + Sync + 'static;

    /// Calls `method` (`Service.method`) with `request`.
    fn call<Req, Resp>(
        &self,
        method: &str,
        request: &Req,
    ) -> impl Future<Output = Result<Resp, Self::Error>> + Send
    where
        Req: Serialize + Sync + ?Sized,
        Resp: DeserializeOwned + Send;
}

impl Caller for XClient {
    type Error = crate::xclient::Error;

    fn call<Req, Resp>(
        &self,
        method: &str,
        request: &Req,
    ) -> impl Future<Output = Result<Resp, Self::Error>> + Send
    where
        Req: Serialize + Sync + ?Sized,
        Resp: DeserializeOwned + Send,
    {
        XClient::call(self, method, request)
    }
}

/// One srpc connection and the deadline of its calls, as a [`Caller`].
#[derive(Debug, Clone)]
pub struct Connection {
    client: Client,
    timeout: Duration,
}

impl Connection {
    /// Calls through `client`, each with this deadline.
    pub fn new(client: Client, timeout: Duration) -> Connection {
        Connection { client, timeout }
    }
}

impl Caller for Connection {
    type Error = crate::rpc::Error;

    fn call<Req, Resp>(
        &self,
        method: &str,
        request: &Req,
    ) -> impl Future<Output = Result<Resp, Self::Error>> + Send
    where
        Req: Serialize + Sync + ?Sized,
        Resp: DeserializeOwned + Send,
    {
        self.client.call(method, request, self.timeout)
    }
}

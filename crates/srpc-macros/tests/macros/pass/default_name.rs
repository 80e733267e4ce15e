//! The service name defaults to the trait's; a trait may take no argument or many, and
//! its error type may be anything that converts into HandlerError.
use srpc::rpc::{HandlerError, Server};

#[srpc::service]
pub trait Greeter {
    async fn hello(&self) -> Result<String, HandlerError>;
    async fn greet(&self, name: String, times: u32) -> Result<Vec<String>, String>;
}

struct Impl;

impl Greeter for Impl {
    async fn hello(&self) -> Result<String, HandlerError> {
        Ok("hello".into())
    }
    async fn greet(&self, name: String, times: u32) -> Result<Vec<String>, String> {
        Ok((0..times).map(|_| name.clone()).collect())
    }
}

fn main() {
    let _server: Server = serve_greeter(Server::new(), Impl);
    assert_eq!(GreeterClient::<srpc::typed::Connection>::SERVICE, "Greeter");
    assert_eq!(GreeterClient::<srpc::typed::Connection>::METHODS, ["greet", "hello"]);
}

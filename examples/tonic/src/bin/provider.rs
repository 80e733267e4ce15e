//! A tonic gRPC server registered in an srpc registry under Dubbo's Triple URL, so that srpc
//! consumers and Java Dubbo 3 consumers of the same IDL find it.
//!
//! `provider REGISTRY_URL [NAME]`: serves on a free loopback port until Ctrl-C, then
//! unregisters before it stops serving.

#![allow(clippy::print_stdout)] // An example prints what it does.

use srpc::tonic::triple_url;
use srpc_example_tonic::helloworld::greeter_server::{Greeter, GreeterServer};
use srpc_example_tonic::helloworld::{HelloReply, HelloRequest};
use tonic::{Request, Response, Status};

struct Hello {
    name: String,
}

#[tonic::async_trait]
impl Greeter for Hello {
    async fn say_hello(
        &self,
        request: Request<HelloRequest>,
    ) -> Result<Response<HelloReply>, Status> {
        let message = format!("hello {} from {}", request.into_inner().name, self.name);
        Ok(Response::new(HelloReply { message }))
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let registry_url = args.next().ok_or("usage: provider REGISTRY_URL [NAME]")?;
    let name = args.next().unwrap_or_else(|| "provider".to_owned());

    // Listen first: the URL carries the port, and nobody must find it before it answers.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let url = triple_url("helloworld.Greeter", ["SayHello"])
        .application("srpc-example-tonic")
        .build(addr)?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(GreeterServer::new(Hello { name: name.clone() }))
            .serve_with_incoming_shutdown(
                tokio_stream::wrappers::TcpListenerStream::new(listener),
                async move {
                    let _ = stopped.await;
                },
            ),
    );

    let registry = srpc::registry::connect(&registry_url).await?;
    registry.register(&url).await?;
    println!("{name} serving helloworld.Greeter at {addr}, registered as {url}");

    tokio::signal::ctrl_c().await?;
    // Unregister first, so that consumers stop picking this server, then stop serving.
    registry.unregister(&url).await?;
    registry.close().await?;
    let _ = stop.send(());
    server.await??;
    Ok(())
}

#[srpc::service(title = "com.acme.Echo")]
pub trait Echo {
    async fn echo(&self, text: String) -> Result<String, srpc::rpc::HandlerError>;
}

fn main() {}

#[srpc::service]
pub trait Echo {
    async fn echo(&self, text: &str) -> Result<String, srpc::rpc::HandlerError>;
}

fn main() {}

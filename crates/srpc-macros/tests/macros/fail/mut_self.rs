#[srpc::service]
pub trait Counter {
    async fn bump(&mut self) -> Result<u64, srpc::rpc::HandlerError>;
}

fn main() {}

#[srpc::service]
pub trait Store {
    async fn put<T: serde::Serialize>(&self, value: T) -> Result<(), srpc::rpc::HandlerError>;
}

fn main() {}

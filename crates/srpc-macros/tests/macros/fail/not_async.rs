#[srpc::service]
pub trait Calc {
    fn add(&self, a: i64, b: i64) -> Result<i64, srpc::rpc::HandlerError>;
}

fn main() {}

//! Generates the tonic code of `proto/greeter.proto`, with the `protoc` that the
//! `protoc-bin-vendored` crate ships.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto/greeter.proto");
    let mut config = prost_build::Config::new();
    config.protoc_executable(protoc_bin_vendored::protoc_bin_path()?);
    tonic_prost_build::configure().compile_with_config(
        config,
        &["proto/greeter.proto"],
        &["proto"],
    )?;
    Ok(())
}

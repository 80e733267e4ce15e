//! Generates the tonic client and server of `proto/echo.proto` for the gRPC tests, with the
//! `protoc` that the `protoc-bin-vendored` crate ships (nothing is downloaded at build time).

#[cfg(feature = "grpc")]
fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto/echo.proto");
    let mut config = prost_build::Config::new();
    config.protoc_executable(protoc_bin_vendored::protoc_bin_path()?);
    tonic_prost_build::configure().compile_with_config(
        config,
        &["proto/echo.proto"],
        &["proto"],
    )?;
    Ok(())
}

#[cfg(not(feature = "grpc"))]
fn main() {}

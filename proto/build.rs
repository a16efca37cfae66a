//! Compiles `nudge/v1/*.proto` with protox (pure Rust, no `protoc`) and generates
//! prost messages plus tonic clients and servers into `OUT_DIR`. The encoded
//! descriptor set is written beside them for gRPC server reflection.

use prost::Message;
use std::path::PathBuf;

const PROTOS: &[&str] = &[
    "nudge/v1/common.proto",
    "nudge/v1/decisions.proto",
    "nudge/v1/events.proto",
    "nudge/v1/profiles.proto",
    "nudge/v1/journeys.proto",
    "nudge/v1/dispatches.proto",
    "nudge/v1/admin.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    for proto in PROTOS {
        println!("cargo:rerun-if-changed={proto}");
    }
    let descriptors = protox::compile(PROTOS, ["."])?;
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(
        out_dir.join("nudge_descriptor.bin"),
        descriptors.encode_to_vec(),
    )?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds(descriptors)?;
    Ok(())
}

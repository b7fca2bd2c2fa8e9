//! Generates the gRPC server code of the stand-in from the client's .proto files (`protos/`).
//!
//! protoc comes from `protoc-bin-vendored` (a registry crate that ships Google's protoc
//! binaries), so the build needs no system protobuf compiler.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    std::env::set_var("PROTOC", protoc_bin_vendored::protoc_bin_path()?);
    let include = protoc_bin_vendored::include_path()?;
    let protos = [
        "protos/streams.proto",
        "protos/serverfeatures.proto",
        "protos/gossip.proto",
    ];
    tonic_build::configure()
        .build_client(false)
        .build_server(true)
        .bytes(["."])
        .compile_protos(&protos, &[std::path::PathBuf::from("protos"), include])?;
    println!("cargo:rerun-if-changed=protos");
    Ok(())
}

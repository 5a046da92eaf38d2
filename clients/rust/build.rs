//! The gateway's contracts, compiled from proto/ (the one source): protoc comes from $PROTOC
//! (the Makefile points it at tools/protoc, grpcio-tools' protoc with the well-known types).
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protos = [
        "../../proto/apt/common/v1/job.proto",
        "../../proto/apt/gateway/v1/gateway.proto",
        "../../proto/apt/plugin/v1/plugin.proto",
        "../../proto/apt/plugins/model_pruning/v1/pruning.proto",
    ];
    tonic_prost_build::configure().build_server(false).compile_protos(&protos, &["../../proto"])?;
    for p in protos {
        println!("cargo:rerun-if-changed={p}");
    }
    Ok(())
}

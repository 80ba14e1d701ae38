//! Generates the Rust types of `proto/` with prost. `protoc` comes from `protoc-bin-vendored`
//! unless `PROTOC` names another one, so a fresh machine needs nothing installed.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut config = prost_build::Config::new();
    if std::env::var_os("PROTOC").is_none() {
        config.protoc_executable(protoc_bin_vendored::protoc_bin_path()?);
    }
    // Read at run time: a build script compiled for one checkout may be reused by another that
    // shares the target directory, and `env!` would point it at the first one's protos.
    let root = std::path::PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?).join("../../proto");
    let files = [
        root.join("sidechain/events/v1/events.proto"),
        root.join("sidechain/rpc/v1/rpc.proto"),
    ];
    for file in &files {
        println!("cargo:rerun-if-changed={}", file.display());
    }
    config.compile_protos(&files, &[root])?;
    Ok(())
}

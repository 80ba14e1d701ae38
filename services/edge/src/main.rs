//! `sidechain-edge`: see the library docs.

#[tokio::main]
async fn main() -> std::process::ExitCode {
    sidechain_infra::service::main(
        sidechain_edge::SERVICE,
        sidechain_edge::EdgeConfig::from_source,
        |config| &config.service.telemetry,
        sidechain_edge::run,
    )
    .await
}

//! `sidechain-cache`: see the library docs.

#[tokio::main]
async fn main() -> std::process::ExitCode {
    sidechain_infra::service::main(
        sidechain_cache::SERVICE,
        sidechain_cache::Config::from_source,
        |config| &config.service.telemetry,
        sidechain_cache::run,
    )
    .await
}

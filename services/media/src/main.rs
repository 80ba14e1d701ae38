//! `sidechain-media`: see the library docs.

#[tokio::main]
async fn main() -> std::process::ExitCode {
    sidechain_infra::service::main(
        sidechain_media::SERVICE,
        sidechain_media::Config::from_source,
        |config| &config.service.telemetry,
        sidechain_media::run,
    )
    .await
}

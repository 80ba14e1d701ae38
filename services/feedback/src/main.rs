//! `sidechain-feedback`: see the library docs.

#[tokio::main]
async fn main() -> std::process::ExitCode {
    sidechain_infra::service::main(
        sidechain_feedback::SERVICE,
        sidechain_feedback::Config::from_source,
        |config| &config.service.telemetry,
        sidechain_feedback::run,
    )
    .await
}

//! `sidechain-load`: the load generator for the Sidechain API.
//!
//! `run` registers users, has them follow each other and post (set-up, not measured), then
//! drives one scenario for a warm-up and a measured duration, printing a progress line
//! every second and a summary table at the end, and writes `result.json` and a
//! self-contained `report.html`. `report` renders the HTML again from a `result.json`.
//! The work is in the `sidechain_load` library (`src/lib.rs`).

use std::process::ExitCode;

use clap::Parser as _;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = sidechain_load::cli::Cli::parse();
    // reqwest's rustls needs a process-wide crypto provider for https base URLs; pick the
    // one the services use. Fails only if one is installed already, which is fine.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    match sidechain_load::execute(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            // The whole cause chain on one line, e.g. "cannot reach the API at …: … refused".
            eprintln!("sidechain-load: {err:#}");
            ExitCode::FAILURE
        }
    }
}

//! `sidechain-load`: the load generator for the Sidechain API.
//!
//! `run` registers users, has them follow each other and post (set-up, not measured), then
//! drives one scenario for a warm-up and a measured duration, printing a progress line
//! every second and a summary table at the end, and writes `result.json` and a
//! self-contained `report.html`. `report` renders the HTML again from a `result.json`.
//!
//! Modules, in the order of a run: `cli` (flags), `setup` (the world), `scenario` (what each
//! request is), `client` (the HTTP calls), `load` (workers, pacing, progress), `stats`
//! (histograms and series), `writes` (the `--record-writes` log), `report` (JSON, table,
//! HTML/SVG), with `run` tying them together.

// Printing the progress line and the summary on stdout is what this tool is for.
#![allow(clippy::print_stdout)]

mod cli;
mod client;
mod load;
mod report;
mod run;
mod scenario;
mod setup;
mod stats;
mod writes;

use std::process::ExitCode;

use clap::Parser as _;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    // reqwest's rustls needs a process-wide crypto provider for https base URLs; pick the
    // one the services use. Fails only if one is installed already, which is fine.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let outcome = match cli.command {
        cli::Command::Run(args) => run::execute(*args).await,
        cli::Command::Report(args) => report::rerender(&args).map(|path| {
            println!("wrote {}", path.display());
        }),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            // The whole cause chain on one line, e.g. "cannot reach the API at …: … refused".
            eprintln!("sidechain-load: {err:#}");
            ExitCode::FAILURE
        }
    }
}

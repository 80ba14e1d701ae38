//! `sidechain-chaos`: the fault-injection suite (see `sidechain_system_tests::chaos`).
//!
//! ```text
//! sidechain-chaos [--quick] [--rate 40] [--steady 10s] [--down 5s] [--out DIR]
//! ```
//! Exits 0 when no accepted write was lost, nothing answered 500, and every service recovered.

// The table on stdout is the point of this tool.
#![allow(clippy::print_stdout)]

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use sidechain_config::duration;
use sidechain_system_tests::chaos::{self, ChaosConfig};

/// Kill -9 and restart NATS, Redis, the Gorse double and each service in turn under a steady
/// write load, then prove that no accepted write was lost.
#[derive(Debug, Parser)]
#[command(name = "sidechain-chaos", version, about)]
struct Cli {
    /// The short form CI runs: 4 s of steady load before each fault, 3 s down.
    #[arg(long)]
    quick: bool,

    /// Writes per second offered by the load generator.
    #[arg(long, default_value_t = 40.0)]
    rate: f64,

    /// Steady running before each fault (default 10s; 4s with --quick).
    #[arg(long, value_parser = duration::parse)]
    steady: Option<Duration>,

    /// How long each component stays dead (default 5s; 3s with --quick).
    #[arg(long, value_parser = duration::parse)]
    down: Option<Duration>,

    /// Where the write log and the load reports go.
    #[arg(long, default_value = "load-tests/results/chaos")]
    out: PathBuf,

    /// Where the release or debug binaries are (default: this executable's directory).
    #[arg(long)]
    bin_dir: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let bin_dir = cli
        .bin_dir
        .or_else(|| {
            std::env::current_exe()
                .ok()
                .and_then(|exe| exe.parent().map(PathBuf::from))
        })
        .unwrap_or_else(|| PathBuf::from("target/release"));
    let (steady, down) = if cli.quick { (4, 3) } else { (10, 5) };
    let config = ChaosConfig {
        bin_dir,
        steady: cli.steady.unwrap_or(Duration::from_secs(steady)),
        down: cli.down.unwrap_or(Duration::from_secs(down)),
        rate: cli.rate,
        out: cli.out,
    };
    match chaos::run(&config).await {
        Ok(report) => {
            println!("{}", report.table());
            for lost in report.lost_in_stream.iter().take(10) {
                println!("lost in the stream: {lost}");
            }
            for lost in report.lost_in_gorse.iter().take(10) {
                println!("feedback missing in Gorse: {lost}");
            }
            if report.passed() {
                println!("chaos: PASSED — zero lost writes across all faults");
                ExitCode::SUCCESS
            } else {
                println!("chaos: FAILED");
                ExitCode::FAILURE
            }
        }
        Err(err) => {
            eprintln!("sidechain-chaos: {err:#}");
            ExitCode::FAILURE
        }
    }
}

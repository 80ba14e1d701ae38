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

use sidechain_system_tests::chaos::{self, ChaosConfig};

fn seconds(text: &str) -> Option<Duration> {
    text.trim_end_matches('s')
        .parse::<f64>()
        .ok()
        .map(Duration::from_secs_f64)
}

#[tokio::main]
async fn main() -> ExitCode {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let bin_dir = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("target/release"));
    let mut config = ChaosConfig {
        bin_dir,
        steady: Duration::from_secs(10),
        down: Duration::from_secs(5),
        rate: 40.0,
        out: PathBuf::from("load-tests/results/chaos"),
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let parsed = match flag.as_str() {
            "--quick" => {
                config.steady = Duration::from_secs(4);
                config.down = Duration::from_secs(3);
                Some(())
            }
            "--rate" => args
                .next()
                .and_then(|v| v.parse().ok())
                .map(|r| config.rate = r),
            "--steady" => args
                .next()
                .as_deref()
                .and_then(seconds)
                .map(|d| config.steady = d),
            "--down" => args
                .next()
                .as_deref()
                .and_then(seconds)
                .map(|d| config.down = d),
            "--out" => args.next().map(|d| config.out = PathBuf::from(d)),
            _ => None,
        };
        if parsed.is_none() {
            eprintln!(
                "usage: sidechain-chaos [--quick] [--rate 40] [--steady 10s] [--down 5s] [--out DIR]"
            );
            return ExitCode::from(2);
        }
    }
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

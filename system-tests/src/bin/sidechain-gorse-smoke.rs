//! `sidechain-gorse-smoke`: checks a Gorse deployment end to end (see
//! `sidechain_system_tests::gorse_smoke`).
//!
//! ```text
//! sidechain-gorse-smoke [--base-url http://127.0.0.1:8787] [--gorse-url http://127.0.0.1:8088] [--timeout 30s]
//! ```
//! The Gorse API key comes from `GORSE_API_KEY` (never a flag, so it stays out of shell
//! history and process lists). Exits 0 when the post and the like written through the API are
//! read back from Gorse and the deleted post leaves it; 1 otherwise, saying which step failed.

// The lines on stdout are the point of this tool.
#![allow(clippy::print_stdout)]

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use sidechain_config::duration;
use sidechain_system_tests::gorse_smoke::{self, SmokeConfig};

/// Writes a post and a like through the API and reads them back from Gorse.
#[derive(Debug, Parser)]
#[command(name = "sidechain-gorse-smoke", version, about)]
struct Cli {
    /// The edge API.
    #[arg(long, default_value = "http://127.0.0.1:8787")]
    base_url: String,

    /// Gorse's REST API (the gorse-server Service in Kubernetes).
    #[arg(long, env = "GORSE_URL", default_value = "http://127.0.0.1:8088")]
    gorse_url: String,

    /// How long each step may take to show up in Gorse.
    #[arg(long, value_parser = duration::parse, default_value = "30s")]
    timeout: Duration,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let config = SmokeConfig {
        base_url: cli.base_url,
        gorse_url: cli.gorse_url,
        gorse_api_key: std::env::var("GORSE_API_KEY")
            .ok()
            .filter(|key| !key.is_empty()),
        timeout: cli.timeout,
    };
    match gorse_smoke::run(&config).await {
        Ok(report) => {
            println!(
                "post {} and its like by {} reached Gorse:",
                report.post_id, report.user_id
            );
            println!("  GET /api/item/{}: {}", report.post_id, report.item);
            println!(
                "  GET /api/feedback/like/{}/{}: {}",
                report.user_id, report.post_id, report.feedback
            );
            println!(
                "  like readable in Gorse {:.1} s after the API answered; post deleted and gone from Gorse",
                report.feedback_latency.as_secs_f64()
            );
            println!("gorse smoke: PASSED");
            ExitCode::SUCCESS
        }
        Err(err) => {
            println!("gorse smoke: FAILED — {err:#}");
            ExitCode::FAILURE
        }
    }
}

//! The load-test library behind the three binaries of this package: `sidechain-load`
//! (`src/main.rs`), `sidechain-bench` (`src/bin/sidechain-bench/`) and `sidechain-floor`
//! (`src/bin/sidechain-floor.rs`). The binaries share it instead of copying code; the HTTP
//! calls to the edge go through the shared `sidechain-api-client`.
//!
//! Modules, in the order of a `sidechain-load` run: [`cli`] (flags), [`setup`] (the world),
//! [`scenario`] (what each request is), [`client`] (the calls, over the shared client),
//! [`load`] (workers, pacing, progress), [`stats`] (histograms and series), [`writes`] (the
//! `--record-writes` log), [`report`] (`result.json`, table, HTML/SVG, read back by
//! `sidechain-bench`), with [`run`] tying them together.

// Printing the progress line and the summary on stdout is what this tool is for.
#![allow(clippy::print_stdout)]

pub mod cli;
pub mod client;
pub mod load;
pub mod report;
pub mod run;
pub mod scenario;
pub mod setup;
pub mod stats;
pub mod writes;

/// Runs what the command line asks for: a load run, or a report rendered again.
pub async fn execute(cli: cli::Cli) -> anyhow::Result<()> {
    match cli.command {
        cli::Command::Run(args) => run::execute(*args).await,
        cli::Command::Report(args) => report::rerender(&args).map(|path| {
            println!("wrote {}", path.display());
        }),
    }
}

//! `sidechain-gorse-double`: the **Gorse test double** as a standalone server, for the
//! benchmark and chaos suites (which run every component as its own process). Not Gorse.
//!
//! ```text
//! sidechain-gorse-double [--port 8088] [--api-key KEY] [--journal FILE]
//! ```
//! With `--journal`, accepted writes are appended to FILE and replayed at start, so the double
//! keeps its state across SIGKILL. Test-only control endpoints:
//! `POST /__double/control?latency_ms=&fail=&status=&ready=&auto_insert_user=&auto_insert_item=`
//! and `GET /__double/record`.

use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    let mut port: u16 = 8088;
    let mut api_key = None;
    let mut journal = None;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args.next();
        match (flag.as_str(), value) {
            ("--port", Some(v)) => match v.parse() {
                Ok(p) => port = p,
                Err(_) => return usage(&format!("--port {v} is not a port")),
            },
            ("--api-key", Some(v)) => api_key = Some(v),
            ("--journal", Some(v)) => journal = Some(std::path::PathBuf::from(v)),
            (other, _) => return usage(&format!("unknown or incomplete flag {other}")),
        }
    }
    let listener = match tokio::net::TcpListener::bind(("127.0.0.1", port)).await {
        Ok(listener) => listener,
        Err(err) => {
            eprintln!("sidechain-gorse-double: cannot listen on {port}: {err}");
            return ExitCode::FAILURE;
        }
    };
    let double = sidechain_test_support::GorseDouble::serve_on(listener, api_key, journal).await;
    eprintln!(
        "sidechain-gorse-double (Gorse test double) listening on {}",
        double.url()
    );
    let _ = tokio::signal::ctrl_c().await;
    ExitCode::SUCCESS
}

fn usage(problem: &str) -> ExitCode {
    eprintln!(
        "sidechain-gorse-double: {problem}\nusage: sidechain-gorse-double [--port 8088] [--api-key KEY] [--journal FILE]"
    );
    ExitCode::from(2)
}

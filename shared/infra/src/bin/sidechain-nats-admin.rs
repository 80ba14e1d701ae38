//! NATS administration for Sidechain, as the admin identity:
//!
//! - `sidechain-nats-admin keys <dir>`: makes sure `<dir>` holds an NKey seed per identity
//!   (`edge.nk`, `cache.nk`, `feedback.nk`, `admin.nk`; existing ones are kept) and writes
//!   `<dir>/auth.conf`, the nats-server `authorization` block with every public key and its
//!   permissions (include it in the server's configuration, then reload the server).
//! - `sidechain-nats-admin redis-acl <dir>`: makes sure `<dir>` holds a Redis password per
//!   identity (`<id>.redis-password`, existing ones kept) and writes `<dir>/users.acl` for
//!   `redis-server --aclfile` (default user off, one user per identity with its rules).
//! - `sidechain-nats-admin provision`: connects with `NATS_URL` and the admin seed in
//!   `NATS_NKEY_FILE` and creates the `EVENTS` stream (`EVENTS_*` settings) and the KV buckets,
//!   retrying for up to a minute while NATS is not there yet.

use std::process::ExitCode;
use std::time::Duration;

use sidechain_config::Source;
use sidechain_infra::nats::{NatsConfig, StreamConfig};

const USAGE: &str = "usage: sidechain-nats-admin keys <dir> | redis-acl <dir> | provision";
const PROVISION_LIMIT: Duration = Duration::from_secs(60);

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    // TLS to NATS (NATS_TLS_REQUIRED) needs the process's crypto provider, as in the services.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let outcome = match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["keys", dir] => sidechain_infra::identity::write_keys(std::path::Path::new(dir))
            .map(|()| eprintln!("seeds and auth.conf are in {dir}"))
            .map_err(|err| format!("writing keys to {dir}: {err}")),
        ["redis-acl", dir] => sidechain_infra::identity::write_redis_acl(std::path::Path::new(dir))
            .map(|()| eprintln!("passwords and users.acl are in {dir}"))
            .map_err(|err| format!("writing the Redis ACL to {dir}: {err}")),
        ["provision"] => provision(&Source::from_env()).await,
        _ => {
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("sidechain-nats-admin: {err}");
            ExitCode::FAILURE
        }
    }
}

async fn provision(source: &Source) -> Result<(), String> {
    let nats = NatsConfig::from_source(source).map_err(|e| e.to_string())?;
    let stream = StreamConfig::from_source(source).map_err(|e| e.to_string())?;
    let client = sidechain_infra::nats::connect("admin", &nats)
        .await
        .map_err(|e| e.to_string())?;
    let js = sidechain_infra::nats::jetstream(client.clone(), &nats);
    let mut last_error = String::new();
    let deadline = tokio::time::Instant::now() + PROVISION_LIMIT;
    while tokio::time::Instant::now() < deadline {
        match sidechain_infra::provision::provision(&js, &stream).await {
            Ok(()) => {
                eprintln!(
                    "provisioned: stream EVENTS, KV buckets users, status, idempotency, object bucket audio"
                );
                return client.flush().await.map_err(|e| e.to_string());
            }
            Err(err) => last_error = err.to_string(),
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    Err(format!(
        "provisioning did not succeed within {PROVISION_LIMIT:?}: {last_error}"
    ))
}

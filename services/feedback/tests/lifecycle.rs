//! The feedback binary: ready, metrics, JSON logs, dependency outages, log rotation, SIGTERM.

#[test]
fn the_binary_lives_and_dies_like_a_service() {
    sidechain_test_support::lifecycle::run(
        std::path::Path::new(env!("CARGO_BIN_EXE_sidechain-feedback")),
        sidechain_test_support::Identity::Feedback,
        &[],
    );
}

/// A setting the service cannot use stops it at start (exit 2) with a message naming the
/// variable, before it connects to anything.
#[test]
fn a_bad_or_retired_gorse_setting_stops_the_binary_at_start() {
    use sidechain_test_support::ServiceBinary;
    use std::time::Duration;

    for (var, value, named) in [
        ("GORSE_URL", "gorse:8088", "GORSE_URL"),
        ("GORSE_URL", "not a url", "GORSE_URL"),
        ("GORSE_RETRIES", "3", "GORSE_RETRY_MAX_ATTEMPTS"),
    ] {
        let mut service = ServiceBinary::spawn(
            std::path::Path::new(env!("CARGO_BIN_EXE_sidechain-feedback")),
            &[(var, value.to_owned())],
        );
        let status = service
            .wait_exit(Duration::from_secs(10))
            .unwrap_or_else(|| panic!("{var}={value} did not stop the service"));
        let output = service.output();
        assert_eq!(status.code(), Some(2), "{var}={value}: {output}");
        assert!(
            output.contains("configuration error")
                && output.contains(var)
                && output.contains(named),
            "{var}={value}: {output}"
        );
    }
}

/// Credentials the NATS server refuses stop the service at start (exit 1) with a message naming
/// NATS_NKEY_FILE, instead of retrying forever while reporting not ready.
#[test]
fn a_refused_nats_identity_stops_the_binary_at_start() {
    use sidechain_test_support::{Identity, NatsServer, RedisServer, ServiceBinary};
    use std::time::Duration;

    let nats = NatsServer::start();
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().expect("dir");
    let stranger = dir.path().join("stranger.nk");
    std::fs::write(&stranger, sidechain_infra::identity::new_user_key().0).expect("seed");
    for nkey in [None, Some(stranger.display().to_string())] {
        let mut env = vec![
            ("NATS_URL", nats.url()),
            ("REDIS_URL", redis.url_for(Identity::Feedback)),
            (
                "METRICS_PORT",
                sidechain_test_support::free_port().to_string(),
            ),
            ("BIND_ADDRESS", "127.0.0.1".to_owned()),
        ];
        if let Some(path) = &nkey {
            env.push(("NATS_NKEY_FILE", path.clone()));
        }
        let mut service = ServiceBinary::spawn(
            std::path::Path::new(env!("CARGO_BIN_EXE_sidechain-feedback")),
            &env,
        );
        let status = service
            .wait_exit(Duration::from_secs(15))
            .unwrap_or_else(|| panic!("{nkey:?}: still running; {}", service.output()));
        let output = service.output();
        assert_eq!(status.code(), Some(1), "{nkey:?}: {output}");
        assert!(
            output.contains("NATS_NKEY_FILE") && output.contains("Authorization Violation"),
            "{nkey:?}: {output}"
        );
    }
}

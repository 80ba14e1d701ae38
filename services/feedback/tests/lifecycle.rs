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

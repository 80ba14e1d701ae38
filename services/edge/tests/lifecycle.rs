//! The edge binary: ready, metrics, JSON logs, dependency outages, log rotation, SIGTERM.

#[test]
fn the_binary_lives_and_dies_like_a_service() {
    sidechain_test_support::lifecycle::run(
        std::path::Path::new(env!("CARGO_BIN_EXE_sidechain-edge")),
        sidechain_test_support::Identity::Edge,
        &[
            (
                "JWT_SECRET",
                "lifecycle-test-secret-lifecycle-test".to_owned(),
            ),
            ("PORT", sidechain_test_support::free_port().to_string()),
        ],
    );
}

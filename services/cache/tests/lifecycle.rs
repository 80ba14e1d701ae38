//! The cache binary: ready, metrics, JSON logs, dependency outages, log rotation, SIGTERM.

#[test]
fn the_binary_lives_and_dies_like_a_service() {
    sidechain_test_support::lifecycle::run(
        std::path::Path::new(env!("CARGO_BIN_EXE_sidechain-cache")),
        sidechain_test_support::Identity::Cache,
        &[],
    );
}

//! The Gorse deployment check (`sidechain-gorse-smoke`, docs/operations.md) against the whole
//! system and the Gorse double configured as the deployed Gorse (`auto_insert_item = false`).

use std::time::Duration;

use sidechain_system_tests::System;
use sidechain_system_tests::gorse_smoke::{self, SmokeConfig};

#[tokio::test]
async fn the_gorse_smoke_check_passes_against_the_double_and_reads_what_it_wrote() {
    let system = System::start(&[]).await;
    system.gorse.set_auto_insert(true, false);
    system.gorse.set_api_key(Some("smoke-key"));
    let config = SmokeConfig {
        base_url: system.api.base().to_owned(),
        gorse_url: system.gorse.url(),
        gorse_api_key: Some("smoke-key".to_owned()),
        timeout: Duration::from_secs(20),
    };
    // The services were started without the key: Gorse refuses their writes until they have
    // it, so the check must fail, naming the step.
    let refused = gorse_smoke::run(&SmokeConfig {
        timeout: Duration::from_secs(2),
        ..config.clone()
    })
    .await
    .expect_err("the services' writes are refused");
    assert!(
        format!("{refused:#}").contains("not in Gorse"),
        "{refused:#}"
    );
    system.gorse.set_api_key(None);

    let report = gorse_smoke::run(&SmokeConfig {
        gorse_api_key: None,
        ..config
    })
    .await
    .expect("smoke check passes");
    assert_eq!(report.item["ItemId"], report.post_id.as_str());
    assert_eq!(report.feedback["FeedbackType"], "like");
    let record = system.gorse.record();
    assert!(!record.items.contains_key(&report.post_id), "deleted");
    assert!(record.items_deleted.contains(&report.post_id));
    system.stop().await;
}

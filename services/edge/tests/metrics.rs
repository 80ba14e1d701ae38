//! RED metrics are labelled by route template, never by the raw path (exemplars are checked
//! in system-tests/tests/traces.rs, where the tracing stack is installed).

mod common;

use common::{Backends, Edge, send};

#[tokio::test]
async fn requests_are_counted_by_route_template() {
    let backends = Backends::start();
    let edge = Edge::start(backends.source()).await;
    let user = edge.register("metered").await;
    for id in [
        "0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b",
        "0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5c",
    ] {
        send(edge.api.user_posts(id, None).bearer(&user.token)).await;
    }
    let text = edge.metrics().await;
    assert!(
        text.contains(r#"sidechain_http_requests_total{method="GET",route="/api/v1/users/{id}/posts",status="404"} 2"#),
        "{text}"
    );
    assert!(
        !text.contains("0193a1b2"),
        "raw paths must not become labels"
    );
    assert!(
        text.contains("sidechain_http_response_size_bytes_count"),
        "{text}"
    );
}

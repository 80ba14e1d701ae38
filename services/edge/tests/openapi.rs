//! The OpenAPI document describes what the server really routes, and docs/api.md lists it.

mod common;

use common::{Backends, Edge, send};
use reqwest::{Method, StatusCode};

async fn document(edge: &Edge) -> serde_json::Value {
    send(edge.api.request(Method::GET, "/openapi.json"))
        .await
        .body
}

fn operations(doc: &serde_json::Value) -> Vec<(String, String)> {
    let mut ops = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in item.as_object().expect("item").keys() {
            ops.push((method.to_uppercase(), path.clone()));
        }
    }
    ops.sort();
    ops
}

#[tokio::test]
async fn every_documented_operation_is_routed_and_answers_in_the_error_shape() {
    let backends = Backends::start();
    let edge = Edge::start(backends.source()).await;
    let doc = document(&edge).await;
    assert_eq!(doc["openapi"].as_str().map(|v| &v[..2]), Some("3."));
    let ops = operations(&doc);
    assert_eq!(ops.len(), 51, "{ops:?}");
    for (method, path) in &ops {
        let concrete = path.replace("{id}", "0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b");
        let method_of = Method::from_bytes(method.as_bytes()).expect("method");
        let reply = send(edge.api.request(method_of, &concrete)).await;
        let (status, body) = (reply.status, reply.body);
        assert_ne!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
        assert!(
            !(status == StatusCode::NOT_FOUND && body["message"] == "no such route"),
            "{method} {path} is documented but not routed"
        );
        assert!(
            !status.is_server_error() || status == StatusCode::SERVICE_UNAVAILABLE,
            "{method} {path}: {status}"
        );
        if !status.is_success() && status != StatusCode::SERVICE_UNAVAILABLE {
            assert!(
                body["error"].is_string() && body["request_id"].is_string(),
                "{method} {path}: {body}"
            );
        }
        // Documented responses include the one given.
        let documented = &doc["paths"][path][method.to_lowercase()]["responses"];
        assert!(
            documented.get(status.as_str()).is_some(),
            "{method} {path} answered {status}, which the document does not list"
        );
    }
}

#[tokio::test]
async fn docs_api_md_lists_every_operation() {
    let backends = Backends::start();
    let edge = Edge::start(backends.source()).await;
    let doc = document(&edge).await;
    let api_md = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/api.md"))
        .expect("docs/api.md");
    for (method, path) in operations(&doc) {
        let line = format!("`{method} {path}`");
        assert!(api_md.contains(&line), "docs/api.md does not list {line}");
    }
}

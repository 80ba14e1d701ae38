//! The Gorse test double keeps its state across a restart when given a journal, and its
//! control endpoint changes its behaviour at run time.

use sidechain_test_support::GorseDouble;

async fn put_like(url: &str, user: &str) -> reqwest::StatusCode {
    reqwest::Client::new()
        .put(format!("{url}/api/feedback"))
        .json(&serde_json::json!([{"FeedbackType": "like", "UserId": user, "ItemId": "p1", "Value": 1.0, "Timestamp": "2026-11-25T00:00:00Z", "Comment": ""}]))
        .send()
        .await
        .expect("sent")
        .status()
}

#[tokio::test]
async fn a_journaled_double_comes_back_with_its_state() {
    let dir = tempfile::tempdir().expect("dir");
    let journal = dir.path().join("gorse.jsonl");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let first = GorseDouble::serve_on(listener, None, Some(journal.clone())).await;
    assert!(put_like(&first.url(), "u1").await.is_success());
    let failing = reqwest::Client::new()
        .post(format!(
            "{}/__double/control?fail=1&status=503",
            first.url()
        ))
        .send()
        .await
        .expect("control");
    assert!(failing.status().is_success());
    assert_eq!(
        put_like(&first.url(), "u2").await,
        reqwest::StatusCode::SERVICE_UNAVAILABLE
    );
    drop(first);

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let second = GorseDouble::serve_on(listener, None, Some(journal)).await;
    let record = second.record();
    assert_eq!(
        record.feedback.len(),
        1,
        "the accepted write came back, the refused one did not"
    );
    assert!(
        record
            .feedback
            .contains_key(&("like".into(), "u1".into(), "p1".into()))
    );
    let summary: serde_json::Value = reqwest::get(format!("{}/__double/record", second.url()))
        .await
        .expect("record")
        .json()
        .await
        .expect("json");
    assert_eq!(summary["feedback"][0]["user"], "u1");
}

// storage/data/sql.go (v0.5.11) `BatchInsertFeedback` and server/rest.go `insertFeedback`:
// without auto-insert, feedback on an unknown user or item is skipped and still counted.
#[tokio::test]
async fn without_auto_insert_feedback_on_unknown_rows_is_dropped_and_still_counted() {
    let client = reqwest::Client::new();
    // (auto_insert_user, auto_insert_item, item exists, user exists, stored)
    let cases = [
        (true, true, false, false, true),
        (true, false, false, true, false),
        (true, false, true, false, true),
        (false, true, true, false, false),
        (false, false, true, true, true),
    ];
    for (auto_user, auto_item, has_item, has_user, stored) in cases {
        let double = GorseDouble::start().await;
        double.set_auto_insert(auto_user, auto_item);
        if has_item {
            client
                .post(format!("{}/api/items", double.url()))
                .json(&serde_json::json!([{"ItemId": "p1", "IsHidden": false, "Categories": [], "Labels": null}]))
                .send()
                .await
                .expect("item");
        }
        if has_user {
            client
                .post(format!("{}/api/users", double.url()))
                .json(&serde_json::json!([{"UserId": "u1", "Labels": null}]))
                .send()
                .await
                .expect("user");
        }
        let reply: serde_json::Value = client
            .put(format!("{}/api/feedback", double.url()))
            .json(&serde_json::json!([{"FeedbackType": "like", "UserId": "u1", "ItemId": "p1", "Value": 1.0, "Timestamp": "2026-11-25T00:00:00Z", "Comment": ""}]))
            .send()
            .await
            .expect("sent")
            .json()
            .await
            .expect("json");
        let case = (auto_user, auto_item, has_item, has_user);
        assert_eq!(reply, serde_json::json!({"RowAffected": 1}), "{case:?}");
        assert_eq!(
            double.record().feedback.len(),
            usize::from(stored),
            "{case:?}"
        );
        let lookup = client
            .get(format!("{}/api/item/p1", double.url()))
            .send()
            .await
            .expect("get");
        assert_eq!(
            lookup.status().is_success(),
            has_item || (stored && auto_item),
            "{case:?}"
        );
    }
}

// server/rest.go (v0.5.11) `checkLive`/`checkReady`: live is always 200 with the health status;
// ready is 200 with it, or 503 with the same JSON as the error text.
#[tokio::test]
async fn health_live_is_always_200_and_ready_503_carries_the_same_status() {
    let double = GorseDouble::start().await;
    // (ready, path, status, Ready in the body)
    let cases = [
        (true, "live", 200, true),
        (true, "ready", 200, true),
        (false, "live", 200, false),
        (false, "ready", 503, false),
    ];
    for (ready, path, status, body_ready) in cases {
        double.set_ready(ready);
        let response = reqwest::get(format!("{}/api/health/{path}", double.url()))
            .await
            .expect("sent");
        assert_eq!(response.status().as_u16(), status, "{path} ready={ready}");
        let body: serde_json::Value =
            serde_json::from_str(&response.text().await.expect("body")).expect("JSON");
        assert_eq!(body["Ready"], body_ready, "{path} ready={ready}");
    }
}

// server/rest.go (v0.5.11) `deleteItem`: `RowAffected: 1` whether the item existed or not.
#[tokio::test]
async fn deleting_an_item_always_answers_one_row() {
    let double = GorseDouble::start().await;
    let client = reqwest::Client::new();
    client
        .post(format!("{}/api/items", double.url()))
        .json(&serde_json::json!([{"ItemId": "p1", "IsHidden": false, "Categories": [], "Labels": null}]))
        .send()
        .await
        .expect("item");
    for id in ["p1", "p1", "never"] {
        let reply: serde_json::Value = client
            .delete(format!("{}/api/item/{id}", double.url()))
            .send()
            .await
            .expect("sent")
            .json()
            .await
            .expect("json");
        assert_eq!(reply, serde_json::json!({"RowAffected": 1}), "{id}");
    }
}

// server/rest.go (v0.5.11) `getRecommend`: `ParseInt` for n and offset (400 on junk, `n=0` is
// nothing), `ReadCategories` for `?category=`; logics/recommend.go leaves out items the user
// already has feedback on.
#[tokio::test]
async fn recommendations_honour_n_category_and_leave_out_what_the_user_touched() {
    let double = GorseDouble::start().await;
    let client = reqwest::Client::new();
    client
        .post(format!("{}/api/items", double.url()))
        .json(&serde_json::json!([
            {"ItemId": "a", "IsHidden": false, "Categories": ["house"], "Labels": null, "Timestamp": "2026-01-03T00:00:00Z"},
            {"ItemId": "b", "IsHidden": false, "Categories": ["techno"], "Labels": null, "Timestamp": "2026-01-02T00:00:00Z"},
            {"ItemId": "c", "IsHidden": false, "Categories": ["house"], "Labels": null, "Timestamp": "2026-01-01T00:00:00Z"}
        ]))
        .send()
        .await
        .expect("items");
    client
        .put(format!("{}/api/feedback", double.url()))
        .json(&serde_json::json!([{"FeedbackType": "like", "UserId": "u1", "ItemId": "a", "Value": 1.0, "Timestamp": "2026-11-25T00:00:00Z", "Comment": ""}]))
        .send()
        .await
        .expect("feedback");
    let cases: [(&str, u16, &[&str]); 6] = [
        ("u2?n=10", 200, &["a", "b", "c"]),
        ("u1?n=10", 200, &["b", "c"]),
        ("u2?n=0", 200, &[]),
        ("u2?category=house", 200, &["a", "c"]),
        ("u2?n=1&offset=1", 200, &["b"]),
        ("u2?n=many", 400, &[]),
    ];
    for (query, status, expected) in cases {
        let response = client
            .get(format!("{}/api/recommend/{query}", double.url()))
            .send()
            .await
            .expect("sent");
        assert_eq!(response.status().as_u16(), status, "{query}");
        if status == 200 {
            let items: Vec<String> = response.json().await.expect("json");
            assert_eq!(items, expected, "{query}");
        }
    }
}

/// One request of the empty-id table and what Gorse v0.5.11 answers.
struct EmptyIdCase {
    what: &'static str,
    method: reqwest::Method,
    path: &'static str,
    body: Option<serde_json::Value>,
    status: u16,
    /// The answer's body starts with this.
    answer: &'static str,
}

// Gorse v0.5.11 checks no id for emptiness. JSON bodies: server/rest.go `insertItems`
// (1319-1338), `insertUsers` (1115-1153) and `insertFeedback` (1569-1618) decode into Go
// strings (absent → "") and go straight to storage/data/sql.go `BatchInsertItems`,
// `BatchInsertUsers`, `BatchInsertFeedback`. Paths: go-restful's router drops a trailing empty
// segment (route.go `tokenizePath`) so `/api/item/` matches no route (curly.go: "404: Page Not
// Found"), and Go's ServeMux redirects a path with an empty inner segment to its cleaned form.
#[tokio::test]
async fn empty_ids_are_answered_per_endpoint_as_gorse_does() {
    use reqwest::Method;
    use serde_json::json;
    let like = |user: &str, item: &str| json!([{"FeedbackType": "like", "UserId": user, "ItemId": item, "Value": 1.0, "Timestamp": "2026-11-25T00:00:00Z", "Comment": ""}]);
    let cases = [
        EmptyIdCase {
            what: "item with an empty id",
            method: Method::POST,
            path: "/api/items",
            body: Some(
                json!([{"ItemId": "", "IsHidden": false, "Categories": [], "Labels": null, "Timestamp": "", "Comment": ""}]),
            ),
            status: 200,
            answer: r#"{"RowAffected":1}"#,
        },
        EmptyIdCase {
            what: "item without an id",
            method: Method::POST,
            path: "/api/items",
            body: Some(json!([{"IsHidden": true}])),
            status: 200,
            answer: r#"{"RowAffected":1}"#,
        },
        EmptyIdCase {
            what: "item id of the wrong type",
            method: Method::POST,
            path: "/api/items",
            body: Some(json!([{"ItemId": 7}])),
            status: 400,
            answer: "json: cannot unmarshal number",
        },
        EmptyIdCase {
            what: "user with an empty id",
            method: Method::POST,
            path: "/api/users",
            body: Some(json!([{"UserId": "", "Labels": null, "Comment": ""}])),
            status: 200,
            answer: r#"{"RowAffected":1}"#,
        },
        EmptyIdCase {
            what: "user without an id",
            method: Method::POST,
            path: "/api/users",
            body: Some(json!([{}])),
            status: 200,
            answer: r#"{"RowAffected":1}"#,
        },
        EmptyIdCase {
            what: "feedback from an empty user (auto-inserted)",
            method: Method::PUT,
            path: "/api/feedback",
            body: Some(like("", "p1")),
            status: 200,
            answer: r#"{"RowAffected":1}"#,
        },
        EmptyIdCase {
            what: "feedback on an empty item Gorse lacks (dropped, counted)",
            method: Method::PUT,
            path: "/api/feedback",
            body: Some(like("u1", "")),
            status: 200,
            answer: r#"{"RowAffected":1}"#,
        },
        EmptyIdCase {
            what: "feedback without a type",
            method: Method::PUT,
            path: "/api/feedback",
            body: Some(json!([{"UserId": "u1", "ItemId": "p1", "Value": 1.0}])),
            status: 200,
            answer: r#"{"RowAffected":1}"#,
        },
        EmptyIdCase {
            what: "feedback id of the wrong type",
            method: Method::PUT,
            path: "/api/feedback",
            body: Some(json!([{"FeedbackType": "like", "UserId": 1, "ItemId": "p1"}])),
            status: 400,
            answer: "json: cannot unmarshal number",
        },
        EmptyIdCase {
            what: "get an empty item id",
            method: Method::GET,
            path: "/api/item/",
            body: None,
            status: 404,
            answer: "404: Page Not Found",
        },
        EmptyIdCase {
            what: "delete an empty item id",
            method: Method::DELETE,
            path: "/api/item/",
            body: None,
            status: 404,
            answer: "404: Page Not Found",
        },
        EmptyIdCase {
            what: "recommend for an empty user",
            method: Method::GET,
            path: "/api/recommend/",
            body: None,
            status: 404,
            answer: "404: Page Not Found",
        },
        EmptyIdCase {
            what: "delete feedback of an empty user",
            method: Method::DELETE,
            path: "/api/feedback/like//p1",
            body: None,
            status: 301,
            answer: "",
        },
    ];
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    for case in cases {
        let double = GorseDouble::start().await;
        // As deployed (compose/gorse/config.toml), with one item and one user already there.
        double.set_auto_insert(true, false);
        let seed = [
            ("/api/items", json!([{"ItemId": "p1", "IsHidden": false}])),
            ("/api/users", json!([{"UserId": "u1"}])),
        ];
        for (path, body) in seed {
            client
                .post(format!("{}{path}", double.url()))
                .json(&body)
                .send()
                .await
                .expect("seed")
                .error_for_status()
                .expect("seeded");
        }
        let mut request = client.request(
            case.method.clone(),
            format!("{}{}", double.url(), case.path),
        );
        if let Some(body) = &case.body {
            request = request.json(body);
        }
        let response = request.send().await.expect("sent");
        let status = response.status().as_u16();
        let location = response
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let answer = response.text().await.expect("body");
        assert_eq!(status, case.status, "{}: {answer}", case.what);
        assert!(answer.starts_with(case.answer), "{}: {answer}", case.what);
        let record = double.record();
        match case.what {
            "item with an empty id" | "item without an id" => {
                assert!(record.items.contains_key(""), "{}", case.what);
            }
            "user with an empty id" | "user without an id" => {
                assert!(record.users.contains_key(""), "{}", case.what);
            }
            "feedback from an empty user (auto-inserted)" => {
                assert!(record.users.contains_key(""));
                assert!(
                    record
                        .feedback
                        .contains_key(&("like".into(), String::new(), "p1".into()))
                );
            }
            "feedback on an empty item Gorse lacks (dropped, counted)" => {
                assert!(record.feedback.is_empty() && !record.items.contains_key(""));
            }
            "feedback without a type" => {
                assert!(
                    record
                        .feedback
                        .contains_key(&(String::new(), "u1".into(), "p1".into()))
                );
            }
            "delete feedback of an empty user" => {
                assert_eq!(location.as_deref(), Some("/api/feedback/like/p1"));
                assert!(record.feedback_deleted.is_empty(), "never routed");
            }
            _ => assert!(
                record.items.len() == 1 && record.users.len() == 1,
                "{}: nothing written",
                case.what
            ),
        }
    }
}

// server/rest.go `getUserItemFeedback` / `getTypedUserItemFeedback`: what the smoke check reads.
#[tokio::test]
async fn stored_feedback_is_read_back_by_user_and_item() {
    let double = GorseDouble::start().await;
    let client = reqwest::Client::new();
    client
        .post(format!("{}/api/items", double.url()))
        .json(&serde_json::json!([{"ItemId": "p1", "IsHidden": false}]))
        .send()
        .await
        .expect("item");
    assert!(put_like(&double.url(), "u1").await.is_success());
    let all: serde_json::Value = client
        .get(format!("{}/api/feedback/u1/p1", double.url()))
        .send()
        .await
        .expect("read")
        .json()
        .await
        .expect("json");
    assert_eq!(all.as_array().map(Vec::len), Some(1), "{all}");
    let typed: serde_json::Value = client
        .get(format!("{}/api/feedback/like/u1/p1", double.url()))
        .send()
        .await
        .expect("read")
        .json()
        .await
        .expect("json");
    assert_eq!(typed["FeedbackType"], "like");
    assert_eq!(typed["UserId"], "u1");
    assert_eq!(typed["ItemId"], "p1");
    assert_eq!(typed["Value"], 1.0);
    let none: serde_json::Value = client
        .get(format!("{}/api/feedback/u2/p1", double.url()))
        .send()
        .await
        .expect("read")
        .json()
        .await
        .expect("json");
    assert_eq!(none, serde_json::json!([]));
}

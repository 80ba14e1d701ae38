//! Gorse's JSON bodies (field names as Gorse spells them).

use serde::{Deserialize, Serialize};

/// One feedback row: `user` did `feedback_type` to `item`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Feedback {
    /// e.g. `like`, `view`, `download`, `comment`, `repost`, `follow`.
    pub feedback_type: String,
    /// The user.
    pub user_id: String,
    /// The item.
    pub item_id: String,
    /// Weight of the feedback (1 unless stated).
    pub value: f64,
    /// RFC 3339.
    pub timestamp: String,
    /// Free text.
    pub comment: String,
}

/// An item (a post, or `user:<id>` for follows).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Item {
    /// Item id.
    pub item_id: String,
    /// Hidden items are never recommended.
    pub is_hidden: bool,
    /// Categories used by Gorse's category recommenders.
    pub categories: Vec<String>,
    /// Labels: see [`validate_labels`] for what Gorse accepts.
    pub labels: serde_json::Value,
    /// RFC 3339.
    pub timestamp: String,
    /// Free text.
    pub comment: String,
}

/// A user.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct User {
    /// User id.
    pub user_id: String,
    /// Labels: see [`validate_labels`] for what Gorse accepts.
    pub labels: serde_json::Value,
    /// Free text.
    pub comment: String,
}

/// Gorse's answer to writes: `{"RowAffected": n}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RowAffected {
    /// Rows written or deleted.
    #[serde(rename = "RowAffected")]
    pub row_affected: u64,
}

/// Whether Gorse accepts `labels` on an item or user (Gorse v0.5.11 storage/data/database.go
/// `ValidateLabels`): null, a string, a number, an array of only strings or only numbers
/// (empty allowed), or an object whose values are themselves valid labels. Booleans, arrays of
/// anything else and mixed arrays are answered with 400 — for the whole request.
pub fn validate_labels(labels: &serde_json::Value) -> Result<(), String> {
    use serde_json::Value;
    match labels {
        Value::Null | Value::String(_) | Value::Number(_) => Ok(()),
        Value::Array(values) => match values.first() {
            None => Ok(()),
            Some(Value::String(_)) if values.iter().all(Value::is_string) => Ok(()),
            Some(Value::Number(_)) if values.iter().all(Value::is_number) => Ok(()),
            Some(_) => Err(format!("unsupported labels: {labels}")),
        },
        Value::Object(map) => map.values().try_for_each(validate_labels),
        Value::Bool(_) => Err("unsupported type in labels: bool".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::{Value, json};

    fn leaf() -> impl Strategy<Value = Value> {
        prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            "[a-z]{0,4}".prop_map(Value::String),
            (-1e6f64..1e6).prop_map(|n| json!(n)),
        ]
    }

    fn labels() -> impl Strategy<Value = Value> {
        leaf().prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::btree_map("[a-z]{1,3}", inner, 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    /// The rules of database.go, stated independently: no boolean anywhere outside an
    /// array; an array holds only strings or only numbers; objects nest.
    fn gorse_accepts(value: &Value) -> bool {
        match value {
            Value::Bool(_) => false,
            Value::Array(values) => {
                values.iter().all(Value::is_string) || values.iter().all(Value::is_number)
            }
            Value::Object(map) => map.values().all(gorse_accepts),
            Value::Null | Value::String(_) | Value::Number(_) => true,
        }
    }

    proptest! {
        #[test]
        fn labels_are_validated_as_gorse_does(value in labels()) {
            prop_assert_eq!(validate_labels(&value).is_ok(), gorse_accepts(&value), "{}", value);
        }
    }

    #[test]
    fn the_cases_of_database_go() {
        for ok in [
            json!(null),
            json!("a"),
            json!(1.5),
            json!([]),
            json!(["a", "b"]),
            json!([1, 2.5]),
            json!({"genres": ["house"], "bpm": 124, "nested": {"k": "v"}}),
        ] {
            assert!(validate_labels(&ok).is_ok(), "{ok}");
        }
        for bad in [
            json!(true),
            json!([{"a": 1}]),
            json!(["a", 1]),
            json!([1, "a"]),
            json!([[1]]),
            json!([null]),
            json!({"flag": false}),
            json!({"x": [true]}),
        ] {
            assert!(validate_labels(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn feedback_serialises_with_gorse_field_names() {
        let feedback = Feedback {
            feedback_type: "like".into(),
            user_id: "u".into(),
            item_id: "i".into(),
            value: 1.0,
            timestamp: "2026-11-25T10:00:00Z".into(),
            comment: String::new(),
        };
        let json = serde_json::to_value(&feedback).expect("json");
        assert_eq!(
            json,
            serde_json::json!({"FeedbackType": "like", "UserId": "u", "ItemId": "i", "Value": 1.0,
                "Timestamp": "2026-11-25T10:00:00Z", "Comment": ""})
        );
    }
}

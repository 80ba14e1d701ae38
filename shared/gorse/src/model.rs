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
    /// Free-form labels (Gorse 0.5 accepts any JSON).
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
    /// Free-form labels.
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

#[cfg(test)]
mod tests {
    use super::*;

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

//! Checking a reply against what the plugin's parser reads.

use serde_json::Value;

/// The JSON type the plugin's parser expects of a field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Json {
    /// A string (`getJsonString`, `toString()` on a string).
    Str,
    /// An integer (`(int)`, `getIntValue`): a JSON number without a fractional part.
    Int,
    /// Any number (`(double)`, `(float)`).
    Num,
    /// `true` or `false`.
    Bool,
    /// An array.
    Array,
    /// An object.
    Object,
}

impl Json {
    fn matches(self, value: &Value) -> bool {
        match self {
            Json::Str => value.is_string(),
            Json::Int => value.is_i64() || value.is_u64(),
            Json::Num => value.is_number(),
            Json::Bool => value.is_boolean(),
            Json::Array => value.is_array(),
            Json::Object => value.is_object(),
        }
    }
}

/// The value at a dotted path (`auth.user.id`).
pub(crate) fn at<'a>(value: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.')
        .try_fold(value, |value, part| value.get(part))
}

/// Fails, naming the plugin source that reads them, unless every field is present with its
/// type.
#[track_caller]
pub(crate) fn expect_fields(value: &Value, source: &str, fields: &[(&str, Json)]) {
    let wrong: Vec<String> = fields
        .iter()
        .filter_map(|&(path, json)| match at(value, path) {
            None => Some(format!("{path}: missing, {json:?} expected")),
            Some(found) if !json.matches(found) => Some(format!("{path}: {found} is not {json:?}")),
            Some(_) => None,
        })
        .collect();
    assert!(
        wrong.is_empty(),
        "fields read by {source} are wrong:\n  {}\nin {value:#}",
        wrong.join("\n  ")
    );
}

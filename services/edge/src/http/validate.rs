//! Field rules shared by the request bodies. Each failure names the field.

use super::error::ApiError;

/// Fails unless `value` has between `min` and `max` characters (after trimming).
pub fn length(field: &str, value: &str, min: usize, max: usize) -> Result<(), ApiError> {
    let chars = value.trim().chars().count();
    if chars < min || chars > max {
        let rule = if min == 0 {
            format!("at most {max} characters")
        } else {
            format!("{min} to {max} characters")
        };
        return Err(ApiError::bad_request(
            "invalid_field",
            format!("{field} must be {rule}"),
        ));
    }
    Ok(())
}

/// Fails if `value` holds control characters or invisible bidirectional controls, which can
/// make a name display as something else (U+202E turns "evil\u{202E}cod.exe" around).
pub fn plain_text(field: &str, value: &str) -> Result<(), ApiError> {
    let hidden = |c: char| {
        c.is_control()
            || matches!(c, '\u{200E}' | '\u{200F}' | '\u{061C}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
    };
    match value.chars().find(|c| hidden(*c)) {
        None => Ok(()),
        Some(c) => Err(ApiError::bad_request(
            "invalid_field",
            format!(
                "{field} must not contain control or bidirectional formatting characters (found U+{:04X})",
                u32::from(c)
            ),
        )),
    }
}

/// Fails unless `value` is an absolute http(s) URL of at most 2048 characters.
pub fn url(field: &str, value: &str) -> Result<(), ApiError> {
    let ok = value.len() <= 2048
        && url::Url::parse(value)
            .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some());
    if ok {
        Ok(())
    } else {
        Err(ApiError::bad_request(
            "invalid_field",
            format!("{field} must be an http(s) URL of at most 2048 characters"),
        ))
    }
}

/// Fails unless `value` is a finite number in `min..=max` (exclusive of `min` if `exclusive`).
pub fn range(
    field: &str,
    value: f64,
    min: f64,
    max: f64,
    exclusive_min: bool,
) -> Result<(), ApiError> {
    let above = if exclusive_min {
        value > min
    } else {
        value >= min
    };
    if value.is_finite() && above && value <= max {
        Ok(())
    } else {
        let low = if exclusive_min {
            "greater than"
        } else {
            "at least"
        };
        Err(ApiError::bad_request(
            "invalid_field",
            format!("{field} must be {low} {min} and at most {max}"),
        ))
    }
}

/// Usernames: 3–30 letters, digits, `_` or `-`.
pub fn username(value: &str) -> Result<(), ApiError> {
    let ok = (3..=30).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(ApiError::bad_request(
            "invalid_field",
            "username must be 3 to 30 letters, digits, '_' or '-'",
        ))
    }
}

/// Emails: one `@`, a non-empty local part, a dotted domain, no spaces, at most 254 bytes.
pub fn email(value: &str) -> Result<(), ApiError> {
    let ok = value.len() <= 254
        && !value.chars().any(char::is_whitespace)
        && value.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty()
                && !domain.contains('@')
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
        });
    if ok {
        Ok(())
    } else {
        Err(ApiError::bad_request(
            "invalid_field",
            "email is not a valid address",
        ))
    }
}

/// Passwords: 8–128 characters.
pub fn password(value: &str) -> Result<(), ApiError> {
    let chars = value.chars().count();
    if (8..=128).contains(&chars) {
        Ok(())
    } else {
        Err(ApiError::bad_request(
            "invalid_field",
            "password must be 8 to 128 characters",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_with_control_or_bidi_characters_are_refused() {
        assert!(plain_text("display_name", "DJ Ünïcode ♪ 東京").is_ok());
        for bad in [
            "evil\u{202E}cod.exe",
            "a\u{2066}b",
            "line\nbreak",
            "nul\u{0}",
            "\u{200F}rtl",
        ] {
            assert!(plain_text("display_name", bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn lengths_count_characters_not_bytes() {
        assert!(length("content", "ééé", 1, 3).is_ok());
        assert!(length("content", "   ", 1, 3).is_err());
        assert!(length("content", "abcd", 1, 3).is_err());
    }

    #[test]
    fn urls_must_be_absolute_http() {
        assert!(url("audio_url", "https://cdn.sidechain.fm/a.wav").is_ok());
        for bad in [
            "",
            "ftp://x/a.wav",
            "/relative.wav",
            "javascript:alert(1)",
            "https://",
        ] {
            assert!(url("audio_url", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn ranges_reject_nan_and_bounds() {
        assert!(range("bpm", 120.0, 0.0, 400.0, true).is_ok());
        assert!(range("bpm", 0.0, 0.0, 400.0, true).is_err());
        assert!(range("bpm", f64::NAN, 0.0, 400.0, true).is_err());
        assert!(range("duration", 0.0, 0.0, 10.0, false).is_ok());
    }

    #[test]
    fn usernames_and_emails() {
        assert!(username("loop_maker-99").is_ok());
        for bad in ["ab", "has space", "dot.ted", "émile", &"x".repeat(31)] {
            assert!(username(bad).is_err(), "{bad}");
        }
        assert!(email("someone+tag@example.com").is_ok());
        for bad in [
            "",
            "no-at",
            "@example.com",
            "a@b",
            "a@b@c.com",
            "a b@c.com",
            "a@.com",
        ] {
            assert!(email(bad).is_err(), "{bad}");
        }
    }
}

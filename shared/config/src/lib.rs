//! Configuration loading shared by every service.
//!
//! Each service (and each shared crate that needs settings) declares a plain `serde` struct whose
//! field names are the lower-cased environment variable names, with defaults. [`load`] fills it
//! from a [`Source`] with `envy`. The source is a value, not the process environment, so tests
//! build configurations without touching `std::env`.
//!
//! Every error names the variable at fault: a bad value stops the process at start with a
//! message an operator can act on. A variable that is no longer read (or never was, though the
//! design brief named it) is refused too, naming its replacement: see [`retired`].

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;

pub mod duration;
pub mod retired;

/// Where configuration values come from: a snapshot of variables.
#[derive(Debug, Clone, Default)]
pub struct Source {
    vars: BTreeMap<String, String>,
}

impl Source {
    /// A snapshot of the process environment. Non-UTF-8 variables are skipped.
    pub fn from_env() -> Self {
        Self {
            vars: std::env::vars_os()
                .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
                .collect(),
        }
    }

    /// A source made of the given pairs, for tests and embedding.
    pub fn from_pairs<K: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        Self {
            vars: pairs
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        }
    }

    /// The same source with one more variable (replacing any previous value).
    pub fn with(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.vars.insert(key.into(), value.into());
        self
    }

    /// The raw value of a variable.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.vars.get(key).map(String::as_str)
    }

    fn pairs(&self) -> impl Iterator<Item = (String, String)> + '_ {
        self.vars.iter().map(|(k, v)| (k.clone(), v.clone()))
    }

    fn without(&self, key: &str) -> Self {
        let mut vars = self.vars.clone();
        vars.remove(key);
        Self { vars }
    }
}

/// A configuration value that stops the process at start.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// A required variable is not set.
    #[error("{var} is required but not set")]
    Missing {
        /// The variable.
        var: String,
    },
    /// A variable is set to a value that cannot be used.
    #[error("{var} is invalid: {reason}")]
    Invalid {
        /// The variable.
        var: String,
        /// What is wrong and what is expected.
        reason: String,
    },
    /// A variable that is no longer read is set; another one replaces it.
    #[error("{var} is no longer read; set {by} instead: {how}")]
    Replaced {
        /// The variable set.
        var: String,
        /// The variable to set instead.
        by: String,
        /// How an old value translates.
        how: String,
    },
    /// A variable the services do not support is set.
    #[error("{var} is not supported: {why}")]
    Unsupported {
        /// The variable set.
        var: String,
        /// Why not, and what comes closest.
        why: String,
    },
}

impl ConfigError {
    /// The variable at fault.
    pub fn var(&self) -> &str {
        match self {
            Self::Missing { var }
            | Self::Invalid { var, .. }
            | Self::Replaced { var, .. }
            | Self::Unsupported { var, .. } => var,
        }
    }

    /// A value that parsed but fails a rule (length, range, combination).
    pub fn invalid(var: &str, reason: impl Into<String>) -> Self {
        Self::Invalid {
            var: var.to_owned(),
            reason: reason.into(),
        }
    }
}

/// Fills `T` from `source`. Field `foo_bar` reads variable `FOO_BAR`; missing optional fields
/// take their serde defaults. A source setting a [`retired::RETIRED`] variable is refused.
pub fn load<T: DeserializeOwned>(source: &Source) -> Result<T, ConfigError> {
    retired::refuse(source, retired::RETIRED)?;
    match envy::from_iter::<_, T>(source.pairs()) {
        Ok(value) => Ok(value),
        Err(envy::Error::MissingValue(field)) => Err(ConfigError::Missing {
            var: field.to_uppercase(),
        }),
        Err(envy::Error::Custom(reason)) => Err(ConfigError::Invalid {
            var: culprit::<T>(source, &reason).unwrap_or_else(|| "configuration".to_owned()),
            reason,
        }),
    }
}

/// Finds the variable behind a parse error. envy names it for numbers and booleans but not for
/// values parsed by custom types (durations, enums), so try the load once without each
/// variable: the one whose removal changes the outcome is at fault. Runs only on the error
/// path, once, at start-up.
fn culprit<T: DeserializeOwned>(source: &Source, reason: &str) -> Option<String> {
    source.vars.keys().find_map(
        |key| match envy::from_iter::<_, T>(source.without(key).pairs()) {
            Err(envy::Error::Custom(other)) if other == reason => None,
            _ => Some(key.clone()),
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;
    use std::time::Duration;

    #[derive(Debug, Deserialize, PartialEq)]
    struct Example {
        #[serde(default = "default_port")]
        port: u16,
        secret: String,
        #[serde(default = "default_timeout", with = "crate::duration")]
        batch_timeout: Duration,
        #[serde(default)]
        log_file: Option<String>,
    }

    fn default_port() -> u16 {
        8787
    }

    fn default_timeout() -> Duration {
        Duration::from_secs(5)
    }

    #[test]
    fn defaults_fill_what_is_not_set() {
        let source = Source::from_pairs([("SECRET", "s"), ("UNRELATED", "x")]);
        let loaded: Example = load(&source).expect("loads");
        assert_eq!(
            loaded,
            Example {
                port: 8787,
                secret: "s".into(),
                batch_timeout: Duration::from_secs(5),
                log_file: None,
            }
        );
    }

    #[test]
    fn set_values_override_defaults() {
        let source = Source::from_pairs([
            ("SECRET", "s"),
            ("PORT", "9000"),
            ("BATCH_TIMEOUT", "250ms"),
            ("LOG_FILE", "/tmp/x.log"),
        ]);
        let loaded: Example = load(&source).expect("loads");
        assert_eq!(loaded.port, 9000);
        assert_eq!(loaded.batch_timeout, Duration::from_millis(250));
        assert_eq!(loaded.log_file.as_deref(), Some("/tmp/x.log"));
    }

    #[test]
    fn a_missing_required_variable_is_named() {
        let err = load::<Example>(&Source::default()).expect_err("secret missing");
        assert_eq!(err.to_string(), "SECRET is required but not set");
    }

    #[test]
    fn a_bad_number_names_its_variable() {
        let source = Source::from_pairs([("SECRET", "s"), ("PORT", "eighty")]);
        let err = load::<Example>(&source).expect_err("bad port");
        assert!(
            matches!(&err, ConfigError::Invalid { var, .. } if var == "PORT"),
            "{err}"
        );
    }

    #[test]
    fn a_bad_custom_value_names_its_variable() {
        let source = Source::from_pairs([("SECRET", "s"), ("BATCH_TIMEOUT", "soon")]);
        let err = load::<Example>(&source).expect_err("bad duration");
        assert!(
            matches!(&err, ConfigError::Invalid { var, reason } if var == "BATCH_TIMEOUT" && reason.contains("soon")),
            "{err}"
        );
    }
}

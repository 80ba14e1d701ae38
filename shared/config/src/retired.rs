//! Variables the services do not read, though an operator may well set them: names from older
//! releases and names the design brief used before the services settled on others.
//!
//! Ignoring such a variable would leave the operator believing a setting is in force. Instead
//! every one of them is listed in [`RETIRED`], and [`crate::load`] refuses a source that sets
//! any, naming what to set instead. One table, so adding a rename is one line.
//!
//! Names the services accept as alternatives (`REDIS_HOST`, `REDIS_PORT`, `REDIS_PASSWORD`, read
//! by `sidechain-infra` when `REDIS_URL` is not set) are not retired and are not listed here.

use crate::{ConfigError, Source};

/// A variable that is not read, and what to do instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retired {
    /// The variable.
    pub var: &'static str,
    /// What replaces it.
    pub instead: Instead,
}

/// What an operator setting a [`Retired`] variable should do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Instead {
    /// Set `by`; `how` says how the old value translates.
    Replaced {
        /// The variable to set instead.
        by: &'static str,
        /// How an old value translates into the new variable.
        how: &'static str,
    },
    /// Nothing replaces it; `why` says why it is not supported.
    Unsupported {
        /// Why not, and what comes closest.
        why: &'static str,
    },
}

/// Every variable refused at start.
pub const RETIRED: &[Retired] = &[Retired {
    var: "GORSE_RETRIES",
    instead: Instead::Replaced {
        by: "GORSE_RETRY_MAX_ATTEMPTS",
        how: "it counts every attempt including the first, so GORSE_RETRIES=N is \
              GORSE_RETRY_MAX_ATTEMPTS=N+1 (the default 4 tries after about 1s, 2s, 4s)",
    },
}];

/// The first variable of `table` that `source` sets, as the error that stops the service.
pub fn refuse(source: &Source, table: &[Retired]) -> Result<(), ConfigError> {
    match table
        .iter()
        .find(|retired| source.get(retired.var).is_some())
    {
        None => Ok(()),
        Some(Retired {
            var,
            instead: Instead::Replaced { by, how },
        }) => Err(ConfigError::Replaced {
            var: (*var).to_owned(),
            by: (*by).to_owned(),
            how: (*how).to_owned(),
        }),
        Some(Retired {
            var,
            instead: Instead::Unsupported { why },
        }) => Err(ConfigError::Unsupported {
            var: (*var).to_owned(),
            why: (*why).to_owned(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TABLE: &[Retired] = &[
        Retired {
            var: "OLD_NAME",
            instead: Instead::Replaced {
                by: "NEW_NAME",
                how: "same value",
            },
        },
        Retired {
            var: "GONE",
            instead: Instead::Unsupported {
                why: "nothing does this any more",
            },
        },
    ];

    #[test]
    fn a_source_without_retired_names_passes() {
        let source = Source::from_pairs([("NEW_NAME", "1"), ("UNRELATED", "x")]);
        assert_eq!(refuse(&source, TABLE), Ok(()));
    }

    #[test]
    fn a_replaced_name_is_refused_naming_its_replacement() {
        let err = refuse(&Source::default().with("OLD_NAME", "3"), TABLE).expect_err("refused");
        let text = err.to_string();
        assert!(
            text.starts_with("OLD_NAME ")
                && text.contains("NEW_NAME")
                && text.contains("same value"),
            "{text}"
        );
    }

    #[test]
    fn an_unsupported_name_is_refused_with_the_reason() {
        let err = refuse(&Source::default().with("GONE", ""), TABLE).expect_err("refused");
        assert_eq!(
            err,
            ConfigError::Unsupported {
                var: "GONE".into(),
                why: "nothing does this any more".into()
            }
        );
        assert!(err.to_string().contains("nothing does this any more"));
    }

    #[test]
    fn gorse_retries_points_to_gorse_retry_max_attempts() {
        let err =
            refuse(&Source::default().with("GORSE_RETRIES", "3"), RETIRED).expect_err("refused");
        assert!(
            matches!(&err, ConfigError::Replaced { var, by, .. } if var == "GORSE_RETRIES" && by == "GORSE_RETRY_MAX_ATTEMPTS"),
            "{err}"
        );
    }

    #[test]
    fn every_retired_name_is_refused_by_load() {
        #[derive(Debug, serde::Deserialize)]
        struct Nothing {}
        for retired in RETIRED {
            let source = Source::default().with(retired.var, "1");
            let err = crate::load::<Nothing>(&source).expect_err(retired.var);
            assert_eq!(err.var(), retired.var, "{err}");
        }
    }
}

//! Log filters and the size-rotated log file.

use std::path::{Path, PathBuf};
use std::time::Duration;

use file_rotate::suffix::{AppendTimestamp, FileLimit, SuffixScheme, TimestampSuffix};
use file_rotate::{ContentLimit, FileRotate, compression::Compression};
use sidechain_config::ConfigError;
use tracing_subscriber::EnvFilter;

/// Dependencies that are chatty below `warn`; a bare level applies to our crates only.
const QUIET_DEPENDENCIES: &str = "h2=warn,hyper=warn,hyper_util=warn,tonic=warn,tower=warn,rustls=warn,reqwest=warn,async_nats=warn";

const LEVELS: [&str; 6] = ["trace", "debug", "info", "warn", "error", "off"];

/// Turns `LOG_LEVEL` into a filter: a bare level (`debug`) or a full directive list.
pub(crate) fn parse_filter(spec: &str) -> Result<EnvFilter, ConfigError> {
    let spec = spec.trim();
    let directives = if LEVELS.contains(&spec.to_ascii_lowercase().as_str()) {
        format!("{},{QUIET_DEPENDENCIES}", spec.to_ascii_lowercase())
    } else if spec.contains('=') || spec.contains(',') {
        spec.to_owned()
    } else {
        // EnvFilter would read a lone word as a target name and silently log everything from
        // a module of that name: almost certainly a typo of a level.
        return Err(ConfigError::invalid(
            "LOG_LEVEL",
            format!(
                "'{spec}' is neither a level (debug|info|warn|error) nor a filter such as 'info,sidechain_edge=debug'"
            ),
        ));
    };
    EnvFilter::try_new(&directives)
        .map_err(|e| ConfigError::invalid("LOG_LEVEL", format!("'{spec}': {e}")))
}

/// The filter for spans exported as traces: our spans at `info`, never the exporter's own
/// transport (or every export would produce more spans to export).
pub(crate) fn trace_filter() -> EnvFilter {
    EnvFilter::new("info,h2=off,hyper=off,hyper_util=off,tonic=off,tower=off,opentelemetry=off")
}

/// Suffix scheme keeping at most `max_files` rotated files and none older than `max_age`:
/// `app.log` is live, `app.log.20261125T101500` (plus `.1`, `.2` within one second) are rotated.
pub(crate) struct CountAndAge {
    timestamps: AppendTimestamp,
    max_files: usize,
}

impl CountAndAge {
    pub(crate) fn new(max_files: usize, max_age: Duration) -> Self {
        let max_age = chrono::Duration::from_std(max_age).unwrap_or(chrono::Duration::MAX);
        Self {
            timestamps: AppendTimestamp::default(FileLimit::Age(max_age)),
            max_files,
        }
    }
}

impl SuffixScheme for CountAndAge {
    type Repr = TimestampSuffix;

    fn rotate_file(
        &mut self,
        basepath: &Path,
        newest_suffix: Option<&TimestampSuffix>,
        suffix: &Option<TimestampSuffix>,
    ) -> std::io::Result<TimestampSuffix> {
        self.timestamps.rotate_file(basepath, newest_suffix, suffix)
    }

    fn parse(&self, suffix: &str) -> Option<TimestampSuffix> {
        self.timestamps.parse(suffix)
    }

    fn too_old(&self, suffix: &TimestampSuffix, file_number: usize) -> bool {
        file_number >= self.max_files || self.timestamps.too_old(suffix, file_number)
    }
}

/// Opens the rotating log file at `path`.
pub(crate) fn rotating_file(
    path: &Path,
    max_bytes: u64,
    max_files: usize,
    max_age: Duration,
) -> std::io::Result<FileRotate<CountAndAge>> {
    // file-rotate panics instead of failing when the directory cannot be made; check first so
    // a bad LOG_FILE is a start-up error.
    let dir: PathBuf = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&dir)?;
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    Ok(FileRotate::new(
        path,
        CountAndAge::new(max_files, max_age),
        // `BytesSurpassed` rotates after the write that crosses the limit, so lines stay whole.
        ContentLimit::BytesSurpassed(usize::try_from(max_bytes).unwrap_or(usize::MAX)),
        Compression::None,
        None,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn bare_levels_and_filters_parse() {
        for ok in [
            "debug",
            "INFO",
            "warn",
            "error",
            "info,sidechain_edge=debug",
        ] {
            assert!(parse_filter(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn words_that_are_not_levels_are_refused() {
        for bad in ["verbose", "loud", "info,[=broken"] {
            let err = parse_filter(bad).expect_err(bad);
            assert!(err.to_string().starts_with("LOG_LEVEL is invalid"), "{err}");
        }
    }

    #[test]
    fn the_file_rotates_by_size_and_keeps_whole_lines_and_few_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("logs/edge.log");
        let mut file = rotating_file(&path, 1_000, 2, Duration::from_secs(3600)).expect("open");
        let line = format!("{{\"msg\":\"{}\"}}\n", "x".repeat(90));
        for _ in 0..100 {
            file.write_all(line.as_bytes()).expect("write");
        }
        file.flush().expect("flush");

        let mut names: Vec<_> = std::fs::read_dir(path.parent().expect("dir"))
            .expect("list")
            .map(|e| e.expect("entry").file_name().into_string().expect("utf8"))
            .collect();
        names.sort();
        // The live file plus at most two rotated ones.
        assert_eq!(names.len(), 3, "{names:?}");
        assert!(names.contains(&"edge.log".to_owned()));
        for name in &names {
            let text = std::fs::read_to_string(path.with_file_name(name)).expect("read");
            assert!(
                text.len() <= 1_000 + line.len(),
                "{name} is {} bytes",
                text.len()
            );
            assert!(
                text.lines().all(|l| l == line.trim_end()),
                "{name} has a cut line"
            );
        }
    }

    #[test]
    fn rotated_files_older_than_the_age_limit_are_removed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("cache.log");
        // A rotated file from long ago that the count limit alone would keep.
        let ancient = dir.path().join("cache.log.20000101T000000");
        std::fs::write(&ancient, "old\n").expect("seed");
        let mut file = rotating_file(&path, 10, 5, Duration::from_secs(86_400)).expect("open");
        file.write_all(b"0123456789ab\n").expect("write");
        file.write_all(b"more\n").expect("write");
        assert!(!ancient.exists(), "the 26-year-old file should be gone");
    }
}

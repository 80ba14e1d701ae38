//! The record of what a run was: versions, machine and settings.

use super::{Suite, format_duration};

impl Suite {
    /// Versions, machine and settings, for the record.
    pub(super) fn describe(&self) {
        let first_line = |program: &str, args: &[&str]| {
            std::process::Command::new(program)
                .args(args)
                .output()
                .ok()
                .map(|o| {
                    let text = if o.stdout.is_empty() {
                        o.stderr
                    } else {
                        o.stdout
                    };
                    String::from_utf8_lossy(&text)
                        .lines()
                        .next()
                        .unwrap_or_default()
                        .trim()
                        .to_owned()
                })
                .unwrap_or_else(|| "not found".to_owned())
        };
        let s = &self.settings;
        let mut report = self.report();
        report.tool = format!("sidechain-bench {}", env!("CARGO_PKG_VERSION"));
        report.started_at = chrono::Utc::now().to_rfc3339();
        let environment = [
            (
                "cores",
                std::thread::available_parallelism()
                    .map(|n| n.to_string())
                    .unwrap_or_default(),
            ),
            (
                "load average at start",
                std::fs::read_to_string("/proc/loadavg")
                    .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
                    .unwrap_or_default(),
            ),
            ("kernel", first_line("uname", &["-r"])),
            ("nats-server", first_line("nats-server", &["--version"])),
            ("redis-server", first_line("redis-server", &["--version"])),
            ("wrk", first_line("wrk", &["--version"])),
            (
                "commit",
                first_line("git", &["describe", "--always", "--dirty"]),
            ),
        ];
        for (key, value) in environment {
            report.environment.insert(key.to_owned(), value);
        }
        let settings = [
            ("command", std::env::args().collect::<Vec<_>>().join(" ")),
            (
                "wrk runs",
                format!(
                    "wrk -t2 -c{} -d{}s --latency, {} warm-up, median of {}",
                    s.connections,
                    s.duration.as_secs(),
                    format_duration(s.warmup),
                    s.repetitions
                ),
            ),
            ("backlog events", s.events.to_string()),
            ("sequential round trips", s.round_trips.to_string()),
            (
                "mixed run",
                format!(
                    "{} users, 100 concurrent, {} warm-up + {}",
                    s.mixed_users,
                    format_duration(s.mixed_warmup),
                    format_duration(s.mixed_duration)
                ),
            ),
            (
                "soak",
                s.soak
                    .map(format_duration)
                    .unwrap_or_else(|| "no".to_owned()),
            ),
            (
                "groups",
                s.groups
                    .iter()
                    .map(|g| format!("{g:?}").to_lowercase())
                    .collect::<Vec<_>>()
                    .join(","),
            ),
        ];
        for (key, value) in settings {
            report.settings.insert(key.to_owned(), value);
        }
    }
}

//! The bench's output: one row per comparison (measurement | seed target | our figure |
//! baseline in the same run | ratio), the CPU each program used during each wrk measurement,
//! and details (every run), written as `bench.json` and `bench.md` and printed as a table.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::Path;

use anyhow::Context as _;
use serde::Serialize;

/// Whether a row met its target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Verdict {
    /// The target was met.
    Met,
    /// The target was missed.
    Missed,
    /// No target to judge (a floor, or context for another row).
    Info,
}

impl Verdict {
    /// Met when `ok`, else missed.
    pub(crate) fn of(ok: bool) -> Self {
        if ok { Verdict::Met } else { Verdict::Missed }
    }
}

/// One line of the comparison table.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Row {
    pub(crate) section: String,
    pub(crate) measurement: String,
    pub(crate) target: String,
    pub(crate) ours: String,
    pub(crate) baseline: String,
    pub(crate) ratio: String,
    pub(crate) verdict: Verdict,
}

/// Everything a run found.
#[derive(Debug, Default, Serialize)]
pub(crate) struct Report {
    pub(crate) tool: String,
    pub(crate) started_at: String,
    pub(crate) finished_at: Option<String>,
    /// Why the run stopped early, if it did.
    pub(crate) incomplete: Option<String>,
    pub(crate) environment: BTreeMap<String, String>,
    pub(crate) settings: BTreeMap<String, String>,
    pub(crate) rows: Vec<Row>,
    /// Cores used by each program during each wrk measurement (median run).
    pub(crate) cpu: Vec<(String, BTreeMap<String, f64>)>,
    pub(crate) details: BTreeMap<String, serde_json::Value>,
    pub(crate) notes: Vec<String>,
    #[serde(skip)]
    section: String,
}

impl Report {
    /// Starts a section: rows added next belong to it.
    pub(crate) fn section(&mut self, name: &str) {
        self.section = name.to_owned();
    }

    /// Adds a row to the current section and prints it.
    pub(crate) fn row(
        &mut self,
        measurement: impl Into<String>,
        target: impl Into<String>,
        ours: impl Into<String>,
        baseline: impl Into<String>,
        ratio: impl Into<String>,
        verdict: Verdict,
    ) {
        let row = Row {
            section: self.section.clone(),
            measurement: measurement.into(),
            target: target.into(),
            ours: ours.into(),
            baseline: baseline.into(),
            ratio: ratio.into(),
            verdict,
        };
        eprintln!(
            "» {}: {} (baseline {}; {})",
            row.measurement,
            row.ours,
            row.baseline,
            ratio_cell(&row)
        );
        self.rows.push(row);
    }

    /// Records something worth knowing about the run.
    pub(crate) fn note(&mut self, note: impl Into<String>) {
        let note = note.into();
        eprintln!("note: {note}");
        self.notes.push(note);
    }

    /// Keeps `value` under `key` in bench.json.
    pub(crate) fn detail(&mut self, key: &str, value: impl Serialize) {
        if let Ok(value) = serde_json::to_value(value) {
            self.details.insert(key.to_owned(), value);
        }
    }

    /// The table as aligned text.
    pub(crate) fn text_table(&self) -> String {
        let header = [
            "measurement",
            "seed target",
            "our figure",
            "baseline (same run)",
            "ratio",
        ];
        let mut lines: Vec<[String; 5]> = Vec::new();
        let mut section = "";
        for row in &self.rows {
            if row.section != section {
                section = &row.section;
                lines.push([
                    format!("[{section}]"),
                    String::new(),
                    String::new(),
                    String::new(),
                    String::new(),
                ]);
            }
            lines.push([
                row.measurement.clone(),
                row.target.clone(),
                row.ours.clone(),
                row.baseline.clone(),
                ratio_cell(row),
            ]);
        }
        let mut widths = header.map(|h| h.chars().count());
        for line in &lines {
            for (width, cell) in widths.iter_mut().zip(line) {
                *width = (*width).max(cell.chars().count());
            }
        }
        let render = |cells: [&str; 5]| -> String {
            let mut out = String::new();
            for (i, (cell, width)) in cells.iter().zip(widths).enumerate() {
                if i > 0 {
                    out.push_str(" | ");
                }
                out.push_str(cell);
                out.extend(std::iter::repeat_n(
                    ' ',
                    width.saturating_sub(cell.chars().count()),
                ));
            }
            out.trim_end().to_owned()
        };
        let mut out = render(header);
        out.push('\n');
        out.push_str(
            &widths
                .iter()
                .map(|w| "-".repeat(*w))
                .collect::<Vec<_>>()
                .join("-+-"),
        );
        out.push('\n');
        for line in &lines {
            out.push_str(&render([&line[0], &line[1], &line[2], &line[3], &line[4]]));
            out.push('\n');
        }
        out
    }

    /// `bench.md`: settings, the table, CPU by program, notes.
    pub(crate) fn markdown(&self) -> String {
        let mut md = String::new();
        let _ = writeln!(md, "# sidechain-bench {}\n", self.started_at);
        if let Some(reason) = &self.incomplete {
            let _ = writeln!(md, "**Incomplete run:** {reason}\n");
        }
        for (key, value) in self.environment.iter().chain(&self.settings) {
            let _ = writeln!(md, "- {key}: {value}");
        }
        let _ = writeln!(
            md,
            "\n| measurement | seed target | our figure | baseline in the same run | ratio |"
        );
        let _ = writeln!(md, "|---|---|---|---|---|");
        let mut section = "";
        for row in &self.rows {
            if row.section != section {
                section = &row.section;
                let _ = writeln!(md, "| **{}** | | | | |", cell(section));
            }
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {} |",
                cell(&row.measurement),
                cell(&row.target),
                cell(&row.ours),
                cell(&row.baseline),
                cell(&ratio_cell(row))
            );
        }
        if !self.cpu.is_empty() {
            let programs: BTreeSet<&String> = self
                .cpu
                .iter()
                .flat_map(|(_, cores)| cores.keys())
                .collect();
            let _ = writeln!(
                md,
                "\n## CPU by program during each measurement (cores, of 2)\n"
            );
            let _ = write!(md, "| measurement |");
            for program in &programs {
                let _ = write!(md, " {} |", cell(program));
            }
            let _ = write!(md, "\n|---|");
            for _ in &programs {
                let _ = write!(md, "---|");
            }
            md.push('\n');
            for (label, cores) in &self.cpu {
                let _ = write!(md, "| {} |", cell(label));
                for program in &programs {
                    match cores.get(*program) {
                        Some(c) if *c >= 0.005 => {
                            let _ = write!(md, " {c:.2} |");
                        }
                        _ => md.push_str(" – |"),
                    }
                }
                md.push('\n');
            }
        }
        if !self.notes.is_empty() {
            let _ = writeln!(md, "\n## Notes\n");
            for note in &self.notes {
                let _ = writeln!(md, "- {note}");
            }
        }
        md
    }

    /// Writes `bench.json` and `bench.md` into `dir`.
    pub(crate) fn write(&self, dir: &Path) -> anyhow::Result<()> {
        std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
        let json = serde_json::to_string_pretty(self).context("encode bench.json")?;
        std::fs::write(dir.join("bench.json"), json).context("write bench.json")?;
        std::fs::write(dir.join("bench.md"), self.markdown()).context("write bench.md")?;
        Ok(())
    }
}

/// The ratio with the verdict appended.
fn ratio_cell(row: &Row) -> String {
    let mark = match row.verdict {
        Verdict::Met => "met",
        Verdict::Missed => "MISSED",
        Verdict::Info => return row.ratio.clone(),
    };
    if row.ratio.is_empty() || row.ratio == "–" {
        mark.to_owned()
    } else {
        format!("{} — {mark}", row.ratio)
    }
}

fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_render_as_text_and_markdown() {
        let mut report = Report {
            started_at: "2026-01-01T00:00:00Z".to_owned(),
            ..Default::default()
        };
        report.section("Feed");
        report.row(
            "cached feed throughput",
            "≥ 70 % of floor",
            "20.0k req/s",
            "25.0k req/s",
            "0.80×",
            Verdict::Met,
        );
        report.row("a | b", "", "1", "–", "–", Verdict::Missed);
        report.cpu.push((
            "cached feed".to_owned(),
            BTreeMap::from([("wrk".to_owned(), 0.5)]),
        ));
        let text = report.text_table();
        assert!(text.contains("[Feed]"));
        assert!(text.contains("0.80× — met"));
        let md = report.markdown();
        assert!(md.contains("| **Feed** | | | | |"));
        assert!(md.contains(
            "| cached feed throughput | ≥ 70 % of floor | 20.0k req/s | 25.0k req/s | 0.80× — met |"
        ));
        assert!(md.contains("| a \\| b |  | 1 | – | MISSED |"));
        assert!(md.contains("| cached feed | 0.50 |"));
    }
}

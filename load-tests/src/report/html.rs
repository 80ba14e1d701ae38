//! `report.html`: one self-contained page (inline CSS and SVG, no scripts, nothing fetched)
//! with the run's parameters, the summary table and the charts.

use std::fmt::Write as _;

use super::RunResult;
use super::charts;
use super::text::error_list;
use crate::stats::OpSummary;

/// Escapes text for HTML content and attribute values.
pub(super) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = "
body { font-family: system-ui, -apple-system, 'Segoe UI', sans-serif; margin: 2rem auto;
       max-width: 1000px; color: #222; padding: 0 1rem; }
h1 { font-size: 1.5rem; } h2 { font-size: 1.15rem; margin-top: 2rem; }
table { border-collapse: collapse; margin: 0.5rem 0; }
th, td { padding: 0.3rem 0.7rem; border-bottom: 1px solid #ddd; text-align: right; }
th:first-child, td:first-child { text-align: left; }
tr.total td { font-weight: bold; border-top: 2px solid #222; }
dl { display: grid; grid-template-columns: max-content auto; gap: 0.2rem 1rem; }
dt { color: #666; } dd { margin: 0; }
.note { color: #a15c00; }
figure { margin: 1rem 0; } svg { max-width: 100%; height: auto; }
";

fn summary_row(out: &mut String, op: &OpSummary, class: &str) {
    let l = &op.latency_ms;
    let _ = writeln!(
        out,
        "<tr class=\"{class}\"><td>{}</td><td>{}</td><td>{}</td><td>{:.1}</td>\
         <td>{:.2}</td><td>{:.2}</td><td>{:.2}</td><td>{:.2}</td><td>{:.2}</td><td>{}</td></tr>",
        escape(&op.operation),
        op.requests,
        op.ok,
        op.throughput_rps,
        l.p50,
        l.p90,
        l.p95,
        l.p99,
        l.max,
        escape(&error_list(&op.errors_by_status)),
    );
}

fn definition(out: &mut String, term: &str, value: &str) {
    let _ = writeln!(out, "<dt>{}</dt><dd>{}</dd>", escape(term), escape(value));
}

/// The whole page.
pub(super) fn render(result: &RunResult) -> anyhow::Result<String> {
    let p = &result.parameters;
    let mut out = String::with_capacity(64 * 1024);
    let title = format!(
        "sidechain-load: {} at {}",
        result.scenario.name(),
        result.started_at.format("%Y-%m-%d %H:%M:%S UTC")
    );
    let _ = writeln!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <title>{}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n<h1>{}</h1>",
        escape(&title),
        escape(&title)
    );

    out.push_str("<h2>Run</h2>\n<dl>\n");
    definition(&mut out, "scenario", result.scenario.name());
    definition(&mut out, "API", &p.base_url);
    let pacing = match p.rate {
        Some(rate) => format!("open loop, {rate} requests/s (latency from the scheduled time)"),
        None => "closed loop".to_owned(),
    };
    definition(&mut out, "pacing", &pacing);
    definition(&mut out, "workers", &p.concurrency.to_string());
    definition(
        &mut out,
        "measured",
        &format!(
            "{:.1} s ({} to {}), after {:.1} s warm-up ({} requests)",
            result.measured_seconds,
            result.started_at.format("%Y-%m-%d %H:%M:%S%.3f UTC"),
            result.ended_at.format("%H:%M:%S%.3f"),
            p.warmup_seconds,
            result.warmup_requests
        ),
    );
    definition(
        &mut out,
        "world",
        &format!(
            "{} users × {} posts, {} follows per user (Zipf popularity), seed {}",
            p.users, p.posts_per_user, p.follows_per_user, p.seed
        ),
    );
    let s = &result.setup;
    definition(
        &mut out,
        "set-up",
        &format!(
            "run id {}: {} users, {} posts, {} follows in {:.1} s; {} rate-limited, {} retried",
            s.run_id, s.users, s.posts, s.follows, s.seconds, s.rate_limited, s.retried
        ),
    );
    definition(&mut out, "tool", &result.tool);
    out.push_str("</dl>\n");
    if let Some(unsent) = result.unsent.filter(|n| *n > 0) {
        let _ = writeln!(
            out,
            "<p class=\"note\">{unsent} requests were due but not sent before the end: the \
             server or the worker count could not keep up with the rate.</p>"
        );
    }

    out.push_str(
        "<h2>Summary</h2>\n<table>\n<tr><th>operation</th><th>requests</th><th>2xx</th>\
         <th>req/s</th><th>p50 ms</th><th>p90 ms</th><th>p95 ms</th><th>p99 ms</th>\
         <th>max ms</th><th>errors</th></tr>\n",
    );
    for op in &result.operations {
        summary_row(&mut out, op, "");
    }
    summary_row(&mut out, &result.total, "total");
    out.push_str("</table>\n");
    out.push_str(
        "<p>Latency is measured for every request, errors included, from the send (or, with \
         a rate, the scheduled send) to the end of the response body.</p>\n",
    );

    out.push_str("<h2>Latency over time</h2>\n<figure>\n");
    out.push_str(&charts::latency_over_time(&result.series)?);
    out.push_str("</figure>\n<h2>Latency distribution</h2>\n<figure>\n");
    out.push_str(&charts::distribution(&result.total, &result.operations)?);
    out.push_str("</figure>\n<h2>Throughput</h2>\n<figure>\n");
    out.push_str(&charts::throughput(&result.series)?);
    out.push_str("</figure>\n</body>\n</html>\n");
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::tests::sample;

    #[test]
    fn text_is_escaped() {
        assert_eq!(
            escape(r#"<a href="x">&'"#),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }

    #[test]
    fn the_page_is_self_contained_with_table_and_charts() {
        let mut result = sample();
        result.parameters.base_url = "http://example.test/<script>".into();
        let page = render(&result).expect("renders");
        assert!(page.starts_with("<!DOCTYPE html>"));
        assert_eq!(page.matches("<svg").count(), 3);
        assert!(page.contains("<td>timeline</td>"));
        assert!(page.contains("503: 10"));
        assert!(!page.contains("<script>"), "parameters are escaped");
        assert!(!page.contains("src=\"http"), "nothing is fetched");
    }
}

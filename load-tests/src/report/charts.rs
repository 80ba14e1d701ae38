//! SVG charts for the HTML report, drawn with plotters into strings: throughput per second,
//! latency per second (p50 and p99), and the latency distribution (percentile curves).

use anyhow::anyhow;
use plotters::coord::Shift;
use plotters::prelude::*;

use crate::stats::{OpSummary, Percentile, SecondSummary};

const WIDTH: u32 = 960;
const HEIGHT: u32 = 380;
const FONT: &str = "sans-serif";

fn plot_error(err: impl std::fmt::Display) -> anyhow::Error {
    anyhow!("drawing a chart: {err}")
}

/// Draws with `draw` on a fresh SVG canvas and answers the SVG text.
fn svg(
    draw: impl FnOnce(&DrawingArea<SVGBackend<'_>, Shift>) -> anyhow::Result<()>,
) -> anyhow::Result<String> {
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, (WIDTH, HEIGHT)).into_drawing_area();
        root.fill(&WHITE).map_err(plot_error)?;
        draw(&root)?;
        root.present().map_err(plot_error)?;
    }
    Ok(out)
}

/// Axis numbers without needless decimals: `800`, `2.5`, `0.25`.
fn number(value: &f64) -> String {
    let v = value.abs();
    if v >= 10.0 || v == 0.0 {
        format!("{value:.0}")
    } else if v >= 1.0 {
        format!("{value:.1}")
    } else {
        format!("{value:.2}")
    }
}

fn whole(value: &f64) -> String {
    format!("{value:.0}")
}

/// A second's point sits in the middle of it.
fn mid(second: &SecondSummary) -> f64 {
    second.second as f64 + 0.5
}

fn seconds_axis(series: &[SecondSummary]) -> f64 {
    series
        .last()
        .map_or(1.0, |s| s.second as f64 + 1.0)
        .max(1.0)
}

/// One line of a chart.
struct Line<'a> {
    name: &'a str,
    style: ShapeStyle,
    points: Vec<(f64, f64)>,
}

impl<'a> Line<'a> {
    fn new(name: &'a str, color: impl Color, width: u32, points: Vec<(f64, f64)>) -> Self {
        Self {
            name,
            style: color.stroke_width(width),
            points,
        }
    }
}

/// What differs between the report's charts; everything else about them is alike.
struct Frame<'a> {
    caption: &'a str,
    x_desc: &'a str,
    y_desc: &'a str,
    max_x: f64,
    max_y: f64,
    /// How many x labels (plotters' default when `None`).
    x_labels: Option<usize>,
    x_format: fn(&f64) -> String,
    legend: SeriesLabelPosition,
}

/// Draws `lines` in `frame`, with a legend, as SVG text.
fn line_chart(frame: Frame<'_>, lines: &[Line<'_>]) -> anyhow::Result<String> {
    svg(|root| {
        let mut chart = ChartBuilder::on(root)
            .caption(frame.caption, (FONT, 18))
            .margin(12)
            .margin_right(40)
            .x_label_area_size(40)
            .y_label_area_size(70)
            .build_cartesian_2d(0.0..frame.max_x, 0.0..frame.max_y)
            .map_err(plot_error)?;
        let mut mesh = chart.configure_mesh();
        mesh.x_desc(frame.x_desc)
            .y_desc(frame.y_desc)
            .x_label_formatter(&frame.x_format)
            .y_label_formatter(&number)
            .light_line_style(WHITE.mix(0.0));
        if let Some(count) = frame.x_labels {
            mesh.x_labels(count);
        }
        mesh.draw().map_err(plot_error)?;
        for line in lines {
            let style = line.style;
            chart
                .draw_series(LineSeries::new(line.points.iter().copied(), style))
                .map_err(plot_error)?
                .label(line.name)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], style));
        }
        chart
            .configure_series_labels()
            .position(frame.legend)
            .border_style(BLACK)
            .background_style(WHITE.mix(0.9))
            .draw()
            .map_err(plot_error)?;
        Ok(())
    })
}

/// Requests and errors completed in each second.
pub(super) fn throughput(series: &[SecondSummary]) -> anyhow::Result<String> {
    let max_y = series
        .iter()
        .map(|s| s.requests as f64)
        .fold(0.0, f64::max)
        .max(1.0)
        * 1.3;
    let per_second = |value: fn(&SecondSummary) -> u64| -> Vec<(f64, f64)> {
        series.iter().map(|s| (mid(s), value(s) as f64)).collect()
    };
    line_chart(
        Frame {
            caption: "Throughput (requests completed per second)",
            x_desc: "seconds since measurement began",
            y_desc: "requests / s",
            max_x: seconds_axis(series),
            max_y,
            x_labels: None,
            x_format: whole,
            legend: SeriesLabelPosition::UpperRight,
        },
        &[
            Line::new("requests", BLUE, 2, per_second(|s| s.requests)),
            Line::new("errors", RED, 2, per_second(|s| s.errors)),
        ],
    )
}

/// p50 and p99 of the requests completed in each second (seconds without requests are
/// left out).
pub(super) fn latency_over_time(series: &[SecondSummary]) -> anyhow::Result<String> {
    let busy: Vec<&SecondSummary> = series.iter().filter(|s| s.requests > 0).collect();
    let max_y = busy.iter().map(|s| s.p99_ms).fold(0.0, f64::max).max(0.1) * 1.15;
    let per_second = |value: fn(&SecondSummary) -> f64| -> Vec<(f64, f64)> {
        busy.iter().map(|s| (mid(s), value(s))).collect()
    };
    line_chart(
        Frame {
            caption: "Latency per second (p50 and p99)",
            x_desc: "seconds since measurement began",
            y_desc: "ms",
            max_x: seconds_axis(series),
            max_y,
            x_labels: None,
            x_format: whole,
            legend: SeriesLabelPosition::UpperRight,
        },
        &[
            Line::new("p50", BLUE, 2, per_second(|s| s.p50_ms)),
            Line::new("p99", RED, 2, per_second(|s| s.p99_ms)),
        ],
    )
}

/// Position of a percentile on the "nines" axis: 90 % → 1, 99 % → 2, 99.9 % → 3, …
pub(super) fn nines(percentile: f64) -> f64 {
    let rest = (1.0 - percentile / 100.0).max(1e-6);
    -rest.log10()
}

fn nines_label(x: &f64) -> String {
    let percentile = 100.0 * (1.0 - 10f64.powf(-x));
    let text = format!("{percentile:.4}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    format!("{text}%")
}

/// Latency at each percentile, per operation and in total, on a "nines" axis (so the tail
/// gets room), as HdrHistogram plots do. The maximum (100 %) is left to the table.
pub(super) fn distribution(total: &OpSummary, operations: &[OpSummary]) -> anyhow::Result<String> {
    let tail = |curve: &[Percentile]| -> Vec<(f64, f64)> {
        curve
            .iter()
            .filter(|p| p.percentile < 100.0)
            .map(|p| (nines(p.percentile), p.ms))
            .collect()
    };
    let mut lines: Vec<Line<'_>> = operations
        .iter()
        .filter(|op| op.requests > 0)
        .enumerate()
        .map(|(i, op)| {
            Line::new(
                &op.operation,
                Palette99::pick(i).to_rgba(),
                2,
                tail(&op.percentiles),
            )
        })
        .collect();
    lines.push(Line::new("total", BLACK, 3, tail(&total.percentiles)));
    let all = || lines.iter().flat_map(|line| &line.points);
    let max_x = all().map(|(x, _)| *x).fold(1.0, f64::max).ceil();
    let max_y = all().map(|(_, y)| *y).fold(0.0, f64::max).max(0.1) * 1.1;
    line_chart(
        Frame {
            caption: "Latency distribution (by percentile)",
            x_desc: "percentile",
            y_desc: "ms",
            max_x,
            max_y,
            x_labels: Some(max_x as usize + 1),
            x_format: nines_label,
            legend: SeriesLabelPosition::UpperLeft,
        },
        &lines,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::tests::sample;

    #[test]
    fn nines_spread_the_tail() {
        assert!(nines(0.0).abs() < 1e-9);
        assert!((nines(90.0) - 1.0).abs() < 1e-9);
        assert!((nines(99.0) - 2.0).abs() < 1e-9);
        assert!((nines(99.9) - 3.0).abs() < 1e-9);
        assert_eq!(nines_label(&2.0), "99%");
        assert_eq!(nines_label(&3.0), "99.9%");
        assert_eq!(nines_label(&0.0), "0%");
    }

    #[test]
    fn charts_render_as_svg_even_without_data() {
        let result = sample();
        for chart in [
            throughput(&result.series),
            latency_over_time(&result.series),
            distribution(&result.total, &result.operations),
            throughput(&[]),
            latency_over_time(&[]),
            distribution(&crate::report::tests::empty_summary(), &[]),
        ] {
            let svg = chart.expect("renders");
            assert!(svg.starts_with("<svg"), "{}", &svg[..40.min(svg.len())]);
            assert!(svg.trim_end().ends_with("</svg>"));
        }
    }
}

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

/// Requests and errors completed in each second.
pub(super) fn throughput(series: &[SecondSummary]) -> anyhow::Result<String> {
    svg(|root| {
        let max_y = series
            .iter()
            .map(|s| s.requests as f64)
            .fold(0.0, f64::max)
            .max(1.0)
            * 1.3;
        let mut chart = ChartBuilder::on(root)
            .caption("Throughput (requests completed per second)", (FONT, 18))
            .margin(12)
            .margin_right(40)
            .x_label_area_size(40)
            .y_label_area_size(70)
            .build_cartesian_2d(0.0..seconds_axis(series), 0.0..max_y)
            .map_err(plot_error)?;
        chart
            .configure_mesh()
            .x_desc("seconds since measurement began")
            .y_desc("requests / s")
            .x_label_formatter(&whole)
            .y_label_formatter(&number)
            .light_line_style(WHITE.mix(0.0))
            .draw()
            .map_err(plot_error)?;
        chart
            .draw_series(LineSeries::new(
                series.iter().map(|s| (mid(s), s.requests as f64)),
                BLUE.stroke_width(2),
            ))
            .map_err(plot_error)?
            .label("requests")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLUE.stroke_width(2)));
        chart
            .draw_series(LineSeries::new(
                series.iter().map(|s| (mid(s), s.errors as f64)),
                RED.stroke_width(2),
            ))
            .map_err(plot_error)?
            .label("errors")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], RED.stroke_width(2)));
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .border_style(BLACK)
            .background_style(WHITE.mix(0.9))
            .draw()
            .map_err(plot_error)?;
        Ok(())
    })
}

/// p50 and p99 of the requests completed in each second (seconds without requests are
/// left out).
pub(super) fn latency_over_time(series: &[SecondSummary]) -> anyhow::Result<String> {
    svg(|root| {
        let busy: Vec<&SecondSummary> = series.iter().filter(|s| s.requests > 0).collect();
        let max_y = busy.iter().map(|s| s.p99_ms).fold(0.0, f64::max).max(0.1) * 1.15;
        let mut chart = ChartBuilder::on(root)
            .caption("Latency per second (p50 and p99)", (FONT, 18))
            .margin(12)
            .margin_right(40)
            .x_label_area_size(40)
            .y_label_area_size(70)
            .build_cartesian_2d(0.0..seconds_axis(series), 0.0..max_y)
            .map_err(plot_error)?;
        chart
            .configure_mesh()
            .x_desc("seconds since measurement began")
            .y_desc("ms")
            .x_label_formatter(&whole)
            .y_label_formatter(&number)
            .light_line_style(WHITE.mix(0.0))
            .draw()
            .map_err(plot_error)?;
        for (name, color, value) in [
            (
                "p50",
                BLUE,
                (|s: &SecondSummary| s.p50_ms) as fn(&SecondSummary) -> f64,
            ),
            ("p99", RED, |s: &SecondSummary| s.p99_ms),
        ] {
            chart
                .draw_series(LineSeries::new(
                    busy.iter().map(|s| (mid(s), value(s))),
                    color.stroke_width(2),
                ))
                .map_err(plot_error)?
                .label(name)
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
                });
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .border_style(BLACK)
            .background_style(WHITE.mix(0.9))
            .draw()
            .map_err(plot_error)?;
        Ok(())
    })
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
    let lines: Vec<(&str, Vec<(f64, f64)>)> = operations
        .iter()
        .filter(|op| op.requests > 0)
        .map(|op| (op.operation.as_str(), tail(&op.percentiles)))
        .collect();
    let total_line = tail(&total.percentiles);
    svg(|root| {
        let all = || lines.iter().flat_map(|(_, l)| l).chain(&total_line);
        let max_x = all().map(|(x, _)| *x).fold(1.0, f64::max).ceil();
        let max_y = all().map(|(_, y)| *y).fold(0.0, f64::max).max(0.1) * 1.1;
        let mut chart = ChartBuilder::on(root)
            .caption("Latency distribution (by percentile)", (FONT, 18))
            .margin(12)
            .margin_right(40)
            .x_label_area_size(40)
            .y_label_area_size(70)
            .build_cartesian_2d(0.0..max_x, 0.0..max_y)
            .map_err(plot_error)?;
        chart
            .configure_mesh()
            .x_desc("percentile")
            .y_desc("ms")
            .x_labels(max_x as usize + 1)
            .x_label_formatter(&nines_label)
            .y_label_formatter(&number)
            .light_line_style(WHITE.mix(0.0))
            .draw()
            .map_err(plot_error)?;
        for (i, (name, line)) in lines.iter().enumerate() {
            let color = Palette99::pick(i).to_rgba();
            chart
                .draw_series(LineSeries::new(line.iter().copied(), color.stroke_width(2)))
                .map_err(plot_error)?
                .label(*name)
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
                });
        }
        chart
            .draw_series(LineSeries::new(
                total_line.iter().copied(),
                BLACK.stroke_width(3),
            ))
            .map_err(plot_error)?
            .label("total")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLACK.stroke_width(3)));
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .border_style(BLACK)
            .background_style(WHITE.mix(0.9))
            .draw()
            .map_err(plot_error)?;
        Ok(())
    })
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

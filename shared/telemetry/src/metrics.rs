//! The metrics registry every service registers into, process metrics, and exposition.
//!
//! Names follow Prometheus conventions: the registry adds the `sidechain_` prefix, counters end
//! in `_total` (added by `prometheus-client`), units are suffixes (`_seconds`, `_bytes`), and
//! labels are small closed sets (route templates, never raw paths).

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::{Registry, Unit};

/// Prefix of every metric the services export.
pub const PREFIX: &str = "sidechain";

/// A registry with the `sidechain_` prefix and the process collector installed.
pub fn new_registry() -> Registry {
    let mut registry = Registry::with_prefix(PREFIX);
    registry.register_collector(Box::new(ProcessCollector::new()));
    registry
}

/// Histogram buckets for request latencies, 0.5 ms to 10 s.
pub fn latency_buckets() -> impl Iterator<Item = f64> {
    [
        0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
    ]
    .into_iter()
}

/// Histogram buckets for body sizes, 64 B to 1 MiB.
pub fn size_buckets() -> impl Iterator<Item = f64> {
    prometheus_client::metrics::histogram::exponential_buckets(64.0, 4.0, 8)
}

/// Content type of [`encode_openmetrics`].
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// Content type of [`encode_prometheus_text`].
pub const PROMETHEUS_TEXT_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The registry in OpenMetrics text (what Prometheus asks for; carries exemplars).
pub fn encode_openmetrics(registry: &Registry) -> Result<String, std::fmt::Error> {
    let mut out = String::with_capacity(16 * 1024);
    prometheus_client::encoding::text::encode(&mut out, registry)?;
    Ok(out)
}

/// The registry in the classic Prometheus text format (for curl, promtool and older scrapers).
pub fn encode_prometheus_text(registry: &Registry) -> Result<String, std::fmt::Error> {
    let mut out = String::with_capacity(16 * 1024);
    prometheus_client::encoding::prometheus_text::encode(&mut out, registry)?;
    Ok(out)
}

/// CPU, memory, file descriptors and threads of this process, read from `/proc` at scrape time.
/// On systems without `/proc` it exports nothing.
#[derive(Debug)]
pub struct ProcessCollector {
    ticks_per_second: f64,
    page_size: u64,
}

impl ProcessCollector {
    /// A collector for the current process.
    pub fn new() -> Self {
        Self {
            ticks_per_second: procfs::ticks_per_second() as f64,
            page_size: procfs::page_size(),
        }
    }
}

impl Default for ProcessCollector {
    fn default() -> Self {
        Self::new()
    }
}

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Ok(me) = procfs::process::Process::myself() else {
            return Ok(());
        };
        if let Ok(stat) = me.stat() {
            let cpu = (stat.utime + stat.stime) as f64 / self.ticks_per_second;
            ConstCounter::new(cpu).encode(encoder.encode_descriptor(
                "process_cpu",
                "Total user and system CPU time spent",
                Some(&Unit::Seconds),
                prometheus_client::metrics::MetricType::Counter,
            )?)?;
            gauge(
                &mut encoder,
                "process_resident_memory",
                "Resident memory size",
                Some(&Unit::Bytes),
                (stat.rss * self.page_size) as f64,
            )?;
            gauge(
                &mut encoder,
                "process_virtual_memory",
                "Virtual memory size",
                Some(&Unit::Bytes),
                stat.vsize as f64,
            )?;
            gauge(
                &mut encoder,
                "process_threads",
                "Number of OS threads",
                None,
                stat.num_threads as f64,
            )?;
            if let Ok(boot) = procfs::boot_time_secs() {
                gauge(
                    &mut encoder,
                    "process_start_time",
                    "Start time of the process since the Unix epoch",
                    Some(&Unit::Seconds),
                    boot as f64 + stat.starttime as f64 / self.ticks_per_second,
                )?;
            }
        }
        if let Ok(open) = me.fd_count() {
            gauge(
                &mut encoder,
                "process_open_fds",
                "Number of open file descriptors",
                None,
                open as f64,
            )?;
        }
        if let Ok(limits) = me.limits()
            && let procfs::process::LimitValue::Value(max) = limits.max_open_files.soft_limit
        {
            gauge(
                &mut encoder,
                "process_max_fds",
                "Maximum number of open file descriptors",
                None,
                max as f64,
            )?;
        }
        Ok(())
    }
}

fn gauge(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    value: f64,
) -> Result<(), std::fmt::Error> {
    ConstGauge::new(value).encode(encoder.encode_descriptor(
        name,
        help,
        unit,
        prometheus_client::metrics::MetricType::Gauge,
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn process_metrics_are_prefixed_and_present() {
        let text = encode_prometheus_text(&new_registry()).expect("encodes");
        for name in [
            "sidechain_process_cpu_seconds_total",
            "sidechain_process_resident_memory_bytes",
            "sidechain_process_open_fds",
            "sidechain_process_threads",
        ] {
            assert!(
                text.lines().any(|l| l.starts_with(name)),
                "{name} missing from:\n{text}"
            );
        }
    }

    #[test]
    fn openmetrics_output_ends_with_eof() {
        let text = encode_openmetrics(&new_registry()).expect("encodes");
        assert!(text.ends_with("# EOF\n"), "{text}");
    }
}

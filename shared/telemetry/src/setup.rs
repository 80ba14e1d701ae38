//! Builds the subscriber (logs + traces) and the guard that flushes it.

use std::time::Duration;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
use sidechain_config::ConfigError;
use tracing::Subscriber;
use tracing_appender::non_blocking::{NonBlockingBuilder, WorkerGuard};
use tracing_bunyan_formatter::{BunyanFormattingLayer, JsonStorageLayer};
use tracing_subscriber::fmt::writer::MakeWriterExt;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::{Layer, Registry};

use crate::TelemetryConfig;
use crate::logging;

/// Telemetry could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// A setting is unusable.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The log file cannot be opened.
    #[error("cannot open LOG_FILE {path}: {source}")]
    LogFile {
        /// The configured path.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The OTLP exporter cannot be built.
    #[error("cannot build the OTLP exporter for OTEL_EXPORTER_OTLP_ENDPOINT: {0}")]
    Exporter(String),
}

/// Keeps the background log writers and the tracer provider alive; flush them with
/// [`TelemetryGuard::shutdown`] before the process exits.
#[derive(Debug)]
pub struct TelemetryGuard {
    tracer_provider: SdkTracerProvider,
    log_writers: Vec<WorkerGuard>,
}

impl TelemetryGuard {
    /// Exports the spans still buffered (5 s cap) and writes out the buffered log lines.
    pub fn shutdown(self) {
        if let Err(err) = self
            .tracer_provider
            .shutdown_with_timeout(Duration::from_secs(5))
        {
            tracing::warn!(error = %err, "trace export did not finish cleanly");
        }
        // Dropping the worker guards flushes and joins the log writer threads.
        drop(self.log_writers);
    }
}

/// Builds the subscriber for `service` (e.g. `sidechain-edge`) and the guard that flushes it.
///
/// Call inside the Tokio runtime (the OTLP exporter needs it). Install the subscriber with
/// `tracing::subscriber::set_global_default`.
pub fn build(
    service: &str,
    config: &TelemetryConfig,
) -> Result<
    (
        impl Subscriber + for<'a> LookupSpan<'a> + Send + Sync + 'static,
        TelemetryGuard,
    ),
    TelemetryError,
> {
    let service_name = config
        .otel_service_name
        .clone()
        .unwrap_or_else(|| service.to_owned());
    let tracer_provider = tracer_provider(&service_name, config)?;
    let tracer = tracer_provider.tracer(service_name.clone());

    let mut log_writers = Vec::new();
    let (stdout, guard) = NonBlockingBuilder::default()
        .lossy(false)
        .finish(std::io::stdout());
    log_writers.push(guard);
    // Bunyan writes a line when a span opens and closes; we log events only (requests have an
    // explicit access-log event), so span lines go to a sink.
    let stdout_layer = BunyanFormattingLayer::new(
        service_name.clone(),
        stdout.with_filter(|meta| !meta.is_span()),
    )
    .with_filter(logging::parse_filter(&config.log_level)?);

    let file_layer = match &config.log_file {
        Some(path) => {
            let file = logging::rotating_file(
                path,
                config.log_file_max_bytes,
                config.log_file_max_files,
                config.log_file_max_age,
            )
            .map_err(|source| TelemetryError::LogFile {
                path: path.display().to_string(),
                source,
            })?;
            let (writer, guard) = NonBlockingBuilder::default().lossy(false).finish(file);
            log_writers.push(guard);
            Some(
                BunyanFormattingLayer::new(
                    service_name.clone(),
                    writer.with_filter(|meta| !meta.is_span()),
                )
                .with_filter(logging::parse_filter(&config.log_level)?),
            )
        }
        None => None,
    };

    let subscriber = Registry::default()
        .with(
            tracing_opentelemetry::layer()
                .with_tracer(tracer)
                .with_filter(logging::trace_filter()),
        )
        .with(JsonStorageLayer)
        .with(stdout_layer)
        .with(file_layer);

    Ok((
        subscriber,
        TelemetryGuard {
            tracer_provider,
            log_writers,
        },
    ))
}

fn tracer_provider(
    service_name: &str,
    config: &TelemetryConfig,
) -> Result<SdkTracerProvider, TelemetryError> {
    let builder = SdkTracerProvider::builder()
        .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(
            config.otel_traces_sampler_arg,
        ))))
        .with_resource(
            Resource::builder()
                .with_service_name(service_name.to_owned())
                .build(),
        );
    let builder = match &config.otel_exporter_otlp_endpoint {
        Some(endpoint) => {
            use opentelemetry_otlp::WithExportConfig as _;
            let exporter = opentelemetry_otlp::SpanExporter::builder()
                .with_tonic()
                .with_endpoint(endpoint.clone())
                .with_timeout(Duration::from_secs(5))
                .build()
                .map_err(|e| TelemetryError::Exporter(e.to_string()))?;
            builder.with_batch_exporter(exporter)
        }
        None => builder,
    };
    Ok(builder.build())
}

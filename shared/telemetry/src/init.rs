//! The process-wide subscriber and tracer provider every binary installs at start.

use std::time::Duration;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{SpanExporter, WithExportConfig as _};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{EnvFilter, Layer};

/// The filter used when `RUST_LOG` is unset or empty.
const DEFAULT_FILTER: &str = "info";

/// How long dropping the guard may wait for the last spans to leave.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);

/// Why telemetry could not be set up; each names the setting at fault.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// `RUST_LOG` holds a directive the filter cannot parse.
    #[error("RUST_LOG is malformed: {source}")]
    InvalidFilter {
        #[source]
        source: tracing_subscriber::filter::ParseError,
    },

    /// The OTLP exporter rejected its configuration (endpoint, headers, ...).
    #[error("OTEL_EXPORTER_OTLP_ENDPOINT: cannot build the OTLP exporter: {source}")]
    Exporter {
        #[source]
        source: opentelemetry_otlp::ExporterBuildError,
    },

    /// The gRPC exporter needs a Tokio runtime to drive its connection.
    #[error(
        "OTEL_EXPORTER_OTLP_ENDPOINT is set but telemetry was initialised outside a Tokio runtime"
    )]
    NoRuntime,

    /// A global subscriber was installed before this one.
    #[error("a global tracing subscriber is already installed: {source}")]
    AlreadyInitialised {
        #[source]
        source: tracing_subscriber::util::TryInitError,
    },
}

/// Keeps the tracer provider alive; dropping it flushes and shuts it down.
///
/// Hold it in `main` for the life of the process and drop it while the
/// (multi-thread) Tokio runtime is still running: the OTLP exporter sends its
/// last batch over a connection that runtime drives.
#[derive(Debug)]
#[must_use = "dropping the guard shuts telemetry down"]
pub struct TelemetryGuard {
    provider: SdkTracerProvider,
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        // Shutting down flushes the batch; a failure here cannot be handled
        // any more, only reported on the logs that are still running.
        if let Err(error) = self.provider.shutdown_with_timeout(SHUTDOWN_TIMEOUT) {
            tracing::warn!(%error, "tracer provider shutdown failed; some spans may be lost");
        }
    }
}

/// Installs logging and tracing for a binary, versioned as this crate.
///
/// See [`init_with_version`]; binaries that want their own package version in
/// the resource pass `env!("CARGO_PKG_VERSION")` there instead.
pub fn init(service_name: &'static str) -> Result<TelemetryGuard, TelemetryError> {
    init_with_version(service_name, env!("CARGO_PKG_VERSION"))
}

/// Installs logging and tracing for a binary.
///
/// - `RUST_LOG` filters both logs and spans (default `info`).
/// - Logs go to stdout as one JSON object per line, with the fields of the
///   current span and its ancestors.
/// - Spans go to an OTLP collector over gRPC when `OTEL_EXPORTER_OTLP_ENDPOINT`
///   is set; otherwise they are still created (so trace context propagates)
///   but not exported.
/// - `OTEL_SERVICE_NAME` overrides `service_name` in the resource.
///
/// Also sets the global propagator and the global tracer provider. With an
/// endpoint configured, this must run inside a Tokio runtime.
pub fn init_with_version(
    service_name: &'static str,
    service_version: &'static str,
) -> Result<TelemetryGuard, TelemetryError> {
    let filter = env_filter()?;
    let provider = tracer_provider(service_name, service_version)?;
    let tracer = provider.tracer(service_name);

    let logs = json_logs(std::io::stdout);
    let traces = tracing_opentelemetry::layer().with_tracer(tracer);

    tracing_subscriber::registry()
        .with(filter)
        .with(logs)
        .with(traces)
        .try_init()
        .map_err(|source| TelemetryError::AlreadyInitialised { source })?;

    crate::install_propagator();
    opentelemetry::global::set_tracer_provider(provider.clone());

    Ok(TelemetryGuard { provider })
}

/// One JSON object per line, with the current span's fields and the span list.
fn json_logs<S, W>(writer: W) -> impl Layer<S>
where
    S: tracing::Subscriber + for<'span> LookupSpan<'span>,
    W: for<'writer> MakeWriter<'writer> + Send + Sync + 'static,
{
    tracing_subscriber::fmt::layer()
        .json()
        .with_current_span(true)
        .with_span_list(true)
        .with_writer(writer)
}

/// The filter from `RUST_LOG`; a malformed value is an error, not a silent default.
fn env_filter() -> Result<EnvFilter, TelemetryError> {
    match non_empty_env("RUST_LOG") {
        Some(directives) => EnvFilter::try_new(directives)
            .map_err(|source| TelemetryError::InvalidFilter { source }),
        None => Ok(EnvFilter::new(DEFAULT_FILTER)),
    }
}

fn tracer_provider(
    service_name: &'static str,
    service_version: &'static str,
) -> Result<SdkTracerProvider, TelemetryError> {
    let name = non_empty_env("OTEL_SERVICE_NAME").unwrap_or_else(|| service_name.to_owned());
    let resource = Resource::builder()
        .with_service_name(name)
        .with_attribute(opentelemetry::KeyValue::new(
            "service.version",
            service_version,
        ))
        .build();
    let builder = SdkTracerProvider::builder().with_resource(resource);

    let Some(endpoint) = non_empty_env("OTEL_EXPORTER_OTLP_ENDPOINT") else {
        return Ok(builder.build());
    };

    // tonic's lazy channel spawns its connection task on the current runtime
    // and panics without one; report that as a start-up error instead.
    if tokio::runtime::Handle::try_current().is_err() {
        return Err(TelemetryError::NoRuntime);
    }
    let exporter = SpanExporter::builder()
        .with_tonic()
        .with_endpoint(endpoint)
        .build()
        .map_err(|source| TelemetryError::Exporter { source })?;

    Ok(builder.with_batch_exporter(exporter).build())
}

fn non_empty_env(name: &str) -> Option<String> {
    std::env::var(name)
        .ok()
        .map(|value| value.trim().to_owned())
        .filter(|value| !value.is_empty())
}

#[cfg(test)]
mod tests {
    // Tests fail loudly on a broken assumption rather than handling it.
    #![allow(clippy::unwrap_used)]

    use std::io;
    use std::sync::{Arc, Mutex};

    use super::*;

    /// Collects what the log layer writes.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl io::Write for Captured {
        fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn logs_are_one_json_object_per_line_with_span_fields() {
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::registry().with(json_logs(move || writer.clone()));

        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!("rpc.server", tenant.id = "tenant-a");
            span.in_scope(|| {
                tracing::info!(duration_ms = 3, "rpc finished");
                tracing::info!("second line");
            });
        });

        let output = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<serde_json::Value> = output
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect();
        assert_eq!(lines.len(), 2, "{output}");
        assert_eq!(lines[0]["fields"]["message"], "rpc finished");
        assert_eq!(lines[0]["fields"]["duration_ms"], 3);
        assert_eq!(lines[0]["span"]["name"], "rpc.server");
        assert_eq!(lines[0]["span"]["tenant.id"], "tenant-a");
        assert_eq!(lines[1]["spans"][0]["tenant.id"], "tenant-a");
    }
}

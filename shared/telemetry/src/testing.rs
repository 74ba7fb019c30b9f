//! An in-memory span exporter, installed once per test process, to assert on spans.
//!
//! Tests in one process share the global subscriber, so they never clear the
//! exporter: each one finds its own spans by trace id (or by a unique
//! attribute such as `request.id`).

use std::sync::OnceLock;

use opentelemetry::trace::{TraceId, TracerProvider as _};
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::Layer as _;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

/// The spans finished so far in this process.
#[derive(Debug)]
pub struct TestSpans {
    exporter: InMemorySpanExporter,
    // Kept so the provider (and its span processor) lives as long as the process.
    _provider: SdkTracerProvider,
}

impl TestSpans {
    /// Every span exported so far, by every test in the process.
    pub fn spans(&self) -> Vec<SpanData> {
        self.exporter
            .get_finished_spans()
            .expect("the in-memory span exporter is readable")
    }

    /// The exported spans of one trace.
    pub fn spans_for_trace(&self, trace_id: TraceId) -> Vec<SpanData> {
        self.spans()
            .into_iter()
            .filter(|span| span.span_context.trace_id() == trace_id)
            .collect()
    }
}

/// Installs (once) and returns the process-wide test exporter.
///
/// The first call sets the global `tracing` subscriber (a registry with an
/// OpenTelemetry layer over a synchronous exporter, so a span is readable as
/// soon as it closes), the global tracer provider and the global propagator.
/// Logs go to the test writer, filtered by `RUST_LOG` (off by default).
///
/// # Panics
///
/// If another global `tracing` subscriber was installed first: spans would
/// silently go elsewhere and every assertion on them would mislead.
pub fn test_exporter() -> &'static TestSpans {
    static SPANS: OnceLock<TestSpans> = OnceLock::new();
    SPANS.get_or_init(install)
}

fn install() -> TestSpans {
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .build();
    let tracer = provider.tracer("adscope-test");

    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("off"));
    let logs = tracing_subscriber::fmt::layer()
        .with_test_writer()
        .with_filter(filter);

    tracing_subscriber::registry()
        .with(tracing_opentelemetry::layer().with_tracer(tracer))
        .with(logs)
        .try_init()
        .expect("no other global tracing subscriber is installed before test_exporter()");

    crate::install_propagator();
    opentelemetry::global::set_tracer_provider(provider.clone());

    TestSpans {
        exporter,
        _provider: provider,
    }
}

/// A span attribute as a string (`7`, `true`, `adscope.analytics.v1.X`), if set.
pub fn attribute(span: &SpanData, key: &str) -> Option<String> {
    span.attributes
        .iter()
        .find(|attribute| attribute.key.as_str() == key)
        .map(|attribute| attribute.value.to_string())
}

//! Tracing and OpenTelemetry for every adscope binary.
//!
//! Every process logs JSON lines to stdout and, when an OTLP endpoint is
//! configured, exports its spans to a collector. Every gRPC server wraps its
//! routes in one tracing layer, so each RPC is a span named after its method,
//! a child of the caller's span when the caller sent a `traceparent`, and
//! carrying `tenant.id` once the tenant layer inside has checked it.
//!
//! # Layout
//!
//! - [`mod@init`]: the subscriber, the tracer provider and the OTLP exporter a
//!   binary installs at start ([`init()`], [`TelemetryGuard`]).
//! - [`layer`]: the server-side tower layer ([`ServerTraceLayer`]) that opens
//!   the `rpc.server` span, links it to the caller's trace and handles
//!   `x-request-id`.
//! - [`propagation`]: W3C trace context and baggage in gRPC metadata, both
//!   directions.
//! - `testing` (feature `testing`): an in-memory exporter that tests assert on.

pub mod init;
pub mod layer;
pub mod propagation;
#[cfg(feature = "testing")]
pub mod testing;

pub use init::{TelemetryError, TelemetryGuard, init, init_with_version};
pub use layer::{REQUEST_ID_HEADER, ServerTraceLayer, ServerTraceService};

use opentelemetry::propagation::TextMapCompositePropagator;
use opentelemetry_sdk::propagation::{BaggagePropagator, TraceContextPropagator};

/// Sets the global propagator to W3C trace context plus baggage.
pub fn install_propagator() {
    opentelemetry::global::set_text_map_propagator(TextMapCompositePropagator::new(vec![
        Box::new(TraceContextPropagator::new()),
        Box::new(BaggagePropagator::new()),
    ]));
}

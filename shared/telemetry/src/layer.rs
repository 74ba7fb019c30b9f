//! The server-side tower layer that opens one `rpc.server` span per request.
//!
//! It sits outermost in every adscope gRPC server, outside the tenant layer:
//! the span exists before the tenant is checked, so a rejected call is traced
//! too, and the tenant layer records `tenant.id` (or `adscope.scope`) on
//! [`tracing::Span::current`] once it knows it.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Instant;

use http::header::HeaderValue;
use http::{HeaderMap, Request, Response, StatusCode};
use pin_project_lite::pin_project;
use tower::{Layer, Service};
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

use crate::propagation;

/// The header that carries a request's id, in and out.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// The longest caller-supplied request id that is kept as is.
const MAX_REQUEST_ID_LEN: usize = 128;

/// gRPC `CANCELLED`: what a call the client abandoned ends with.
const GRPC_CANCELLED: i64 = 1;

/// Wraps a gRPC server in [`ServerTraceService`].
#[derive(Debug, Clone, Copy, Default)]
pub struct ServerTraceLayer;

impl ServerTraceLayer {
    /// The layer; it has no configuration.
    pub fn new() -> Self {
        Self
    }
}

impl<S> Layer<S> for ServerTraceLayer {
    type Service = ServerTraceService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ServerTraceService { inner }
    }
}

/// Runs each request inside an `rpc.server` span linked to the caller's trace.
///
/// Per request it:
/// - names the span `<package.Service>/<Method>` from the path and records
///   `rpc.service` and `rpc.method`;
/// - makes the span a child of the `traceparent` the caller sent, or the root
///   of a new trace when it sent none;
/// - keeps a sane incoming `x-request-id` or generates one, passes it to the
///   inner layers, records it as `request.id` and echoes it in the response;
/// - records `rpc.grpc.status_code` and logs one event when the call ends.
///
/// The status comes from a `grpc-status` response header (tonic sends errors
/// as trailers-only responses); a status sent in trailers after a streamed
/// body is not seen here. No header value other than the request id is
/// recorded, so `authorization` never reaches a span or a log.
#[derive(Debug, Clone)]
pub struct ServerTraceService<S> {
    inner: S,
}

impl<S, B, ResBody> Service<Request<B>> for ServerTraceService<S>
where
    S: Service<Request<B>, Response = Response<ResBody>>,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        let started = Instant::now();

        let request_id = request_id(request.headers());
        request
            .headers_mut()
            .insert(REQUEST_ID_HEADER, request_id.clone());

        let span = if is_grpc(request.headers()) {
            rpc_span(request.uri().path(), &request_id)
        } else {
            http_span(request.method(), request.uri().path(), &request_id)
        };

        // The parent must be set before the span is first entered; once
        // started, its parent is fixed. An empty context (no traceparent)
        // makes it a root instead of a child of whatever span is current.
        // An error only means no OpenTelemetry layer is installed (or the
        // span is filtered out), and then there is nothing to link.
        let _ = span.set_parent(propagation::extract(request.headers()));

        // Entered while the inner layers run their synchronous part, so the
        // tenant layer records onto this span through `Span::current()`.
        let inner = span.in_scope(|| self.inner.call(request));

        ResponseFuture {
            inner,
            span,
            started,
            request_id,
            finished: false,
        }
    }
}

pin_project! {
    /// The inner response future, polled inside the request's span.
    #[derive(Debug)]
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        span: Span,
        started: Instant,
        request_id: HeaderValue,
        finished: bool,
    }

    impl<F> PinnedDrop for ResponseFuture<F> {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            if !*this.finished {
                // The client went away (or the server is shutting down)
                // before the inner service answered.
                let _entered = this.span.enter();
                this.span.record("rpc.grpc.status_code", GRPC_CANCELLED);
                tracing::info!(
                    duration_ms = elapsed_ms(*this.started),
                    rpc.grpc.status_code = GRPC_CANCELLED,
                    "rpc cancelled"
                );
            }
        }
    }
}

impl<F, ResBody, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<ResBody>, E>>,
{
    type Output = Result<Response<ResBody>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let _entered = this.span.enter();
        let result = ready!(this.inner.poll(cx));
        *this.finished = true;
        let duration_ms = elapsed_ms(*this.started);

        match result {
            Ok(mut response) => {
                let http_status = response.status();
                let grpc_status = grpc_status(http_status, response.headers());
                this.span.record("rpc.grpc.status_code", grpc_status);
                if is_server_error(grpc_status) {
                    this.span.record("otel.status_code", "error");
                }
                response
                    .headers_mut()
                    .insert(REQUEST_ID_HEADER, this.request_id.clone());

                tracing::info!(
                    duration_ms,
                    rpc.grpc.status_code = grpc_status,
                    http.response.status_code = http_status.as_u16(),
                    "rpc finished"
                );
                Poll::Ready(Ok(response))
            }
            Err(error) => {
                // The inner stack failed below gRPC (no response at all); the
                // error type is opaque here, the transport logs the detail.
                this.span.record("otel.status_code", "error");
                tracing::info!(duration_ms, "rpc failed without a response");
                Poll::Ready(Err(error))
            }
        }
    }
}

/// The span for one call to `path`, not yet linked to the caller's trace.
fn rpc_span(path: &str, request_id: &HeaderValue) -> Span {
    let (service, method) = split_path(path);
    // Only the fallback keeps the whole path as the method (a clean split's
    // method holds no `/`); otherwise `path` is `/{service}/{method}`, and
    // the name is there to borrow rather than allocate per call.
    let name: std::borrow::Cow<'_, str> = if method == path {
        format!("{service}/{method}").into()
    } else {
        path[1..].into()
    };

    tracing::info_span!(
        "rpc.server",
        otel.name = %name,
        otel.kind = "server",
        otel.status_code = tracing::field::Empty,
        rpc.system = "grpc",
        rpc.service = service,
        rpc.method = method,
        tenant.id = tracing::field::Empty,
        adscope.scope = tracing::field::Empty,
        request.id = request_id.to_str().unwrap_or_default(),
        rpc.grpc.status_code = tracing::field::Empty,
    )
}

/// Whether a request speaks gRPC (gRPC-Web included): anything else on the
/// port is a plain HTTP route and is traced as one.
fn is_grpc(headers: &HeaderMap) -> bool {
    headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/grpc"))
}

/// The span for a plain HTTP request (the Airbyte webhook): HTTP semantic
/// names, and the same tenant fields so the handler can record its tenant.
fn http_span(method: &http::Method, path: &str, request_id: &HeaderValue) -> Span {
    let name = format!("{method} {path}");

    tracing::info_span!(
        "http.server",
        otel.name = %name,
        otel.kind = "server",
        otel.status_code = tracing::field::Empty,
        http.request.method = %method,
        url.path = path,
        tenant.id = tracing::field::Empty,
        adscope.scope = tracing::field::Empty,
        request.id = request_id.to_str().unwrap_or_default(),
        rpc.grpc.status_code = tracing::field::Empty,
    )
}

/// `/pkg.Service/Method` as `("pkg.Service", "Method")`.
///
/// Anything else (a plain HTTP route, a malformed path) keeps the whole path
/// as the method under an `unknown` service, so it still gets a span.
fn split_path(path: &str) -> (&str, &str) {
    match path.strip_prefix('/').and_then(|rest| rest.split_once('/')) {
        Some((service, method))
            if !service.is_empty() && !method.is_empty() && !method.contains('/') =>
        {
            (service, method)
        }
        _ => ("unknown", path),
    }
}

/// The caller's request id when it is one we can safely echo, else a new one.
fn request_id(headers: &HeaderMap) -> HeaderValue {
    headers
        .get(REQUEST_ID_HEADER)
        .filter(|value| is_sane_request_id(value.as_bytes()))
        .cloned()
        .unwrap_or_else(generate_request_id)
}

/// Visible ASCII only, 1 to 128 bytes: safe in a log line and a header.
fn is_sane_request_id(value: &[u8]) -> bool {
    !value.is_empty()
        && value.len() <= MAX_REQUEST_ID_LEN
        && value.iter().all(|byte| byte.is_ascii_graphic())
}

fn generate_request_id() -> HeaderValue {
    let id = uuid::Uuid::new_v4();
    let mut buffer = uuid::Uuid::encode_buffer();
    HeaderValue::from_str(id.hyphenated().encode_lower(&mut buffer))
        .unwrap_or_else(|_| HeaderValue::from_static("invalid-uuid"))
}

/// The gRPC status of a response, as far as its head shows it.
///
/// A `grpc-status` header wins; otherwise a 200 means the call is still OK
/// (any later failure would be in trailers) and other HTTP statuses map as
/// the gRPC spec's HTTP-to-gRPC table says.
fn grpc_status(http_status: StatusCode, headers: &HeaderMap) -> i64 {
    if let Some(code) = headers
        .get("grpc-status")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.trim().parse::<i64>().ok())
    {
        return code;
    }

    match http_status.as_u16() {
        200 => 0,
        400 => 13,             // INTERNAL
        401 => 16,             // UNAUTHENTICATED
        403 => 7,              // PERMISSION_DENIED
        404 => 12,             // UNIMPLEMENTED
        429 | 502..=504 => 14, // UNAVAILABLE
        _ => 2,                // UNKNOWN
    }
}

/// Whether a status means the server failed, per OpenTelemetry's gRPC
/// conventions; client errors (NOT_FOUND, PERMISSION_DENIED, ...) are not.
fn is_server_error(code: i64) -> bool {
    // UNKNOWN, DEADLINE_EXCEEDED, UNIMPLEMENTED, INTERNAL, UNAVAILABLE, DATA_LOSS
    matches!(code, 2 | 4 | 12 | 13 | 14 | 15)
}

fn elapsed_ms(started: Instant) -> f64 {
    started.elapsed().as_secs_f64() * 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_path_reads_package_service_and_method() {
        assert_eq!(
            split_path("/adscope.analytics.v1.CampaignService/GetCampaign"),
            ("adscope.analytics.v1.CampaignService", "GetCampaign")
        );
    }

    #[test]
    fn split_path_keeps_a_non_grpc_path_whole() {
        assert_eq!(
            split_path("/webhooks/airbyte/extra"),
            ("unknown", "/webhooks/airbyte/extra")
        );
        assert_eq!(split_path("/"), ("unknown", "/"));
        assert_eq!(split_path("//Method"), ("unknown", "//Method"));
    }

    #[test]
    fn request_id_rejects_empty_long_and_non_ascii_values() {
        assert!(is_sane_request_id(b"abc-123"));
        assert!(is_sane_request_id(&[b'a'; MAX_REQUEST_ID_LEN]));
        assert!(!is_sane_request_id(b""));
        assert!(!is_sane_request_id(&[b'a'; MAX_REQUEST_ID_LEN + 1]));
        assert!(!is_sane_request_id(b"has space"));
        assert!(!is_sane_request_id("caf\u{e9}".as_bytes()));
    }

    #[test]
    fn generated_request_id_is_a_uuid() {
        let id = generate_request_id();
        let text = id.to_str().expect("ascii");
        assert!(uuid::Uuid::parse_str(text).is_ok(), "{text}");
    }

    #[test]
    fn grpc_status_prefers_the_header_then_maps_http_status() {
        let mut headers = HeaderMap::new();
        assert_eq!(grpc_status(StatusCode::OK, &headers), 0);
        assert_eq!(grpc_status(StatusCode::SERVICE_UNAVAILABLE, &headers), 14);
        assert_eq!(grpc_status(StatusCode::IM_A_TEAPOT, &headers), 2);

        headers.insert("grpc-status", HeaderValue::from_static("7"));
        assert_eq!(grpc_status(StatusCode::OK, &headers), 7);
    }
}

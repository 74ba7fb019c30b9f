//! The server layer's spans, as the in-memory exporter sees them.

// Tests fail loudly on a broken assumption rather than handling it.
#![allow(clippy::unwrap_used)]

use std::convert::Infallible;

use adscope_telemetry::propagation;
use adscope_telemetry::testing::{attribute, test_exporter};
use adscope_telemetry::{REQUEST_ID_HEADER, ServerTraceLayer};
use http::{HeaderMap, HeaderValue, Request, Response};
use opentelemetry::trace::{SpanId, TraceContextExt as _, TraceId};
use opentelemetry_sdk::trace::SpanData;
use tower::{Layer as _, Service as _, ServiceExt as _, service_fn};
use tracing::Instrument as _;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

const PATH: &str = "/adscope.analytics.v1.CampaignService/GetCampaign";
const TENANT: &str = "7a1c1f5e-6b0e-4f55-9f3c-2f1f3e6b8d01";

/// Sends one request with `headers` through the layer over a handler that
/// records the tenant (as the tenant layer does) and answers `response`.
async fn call(headers: HeaderMap, response: fn() -> Response<()>) -> (Response<()>, String) {
    let mut request = Request::builder().uri(PATH).body(()).unwrap();
    *request.headers_mut() = headers;
    request.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/grpc"),
    );

    let service = ServerTraceLayer::new().layer(service_fn(move |request: Request<()>| {
        tracing::Span::current().record("tenant.id", TENANT);
        let seen = request.headers().get(REQUEST_ID_HEADER).cloned();
        async move {
            let mut response = response();
            // Hand the id the inner layers saw back to the test.
            if let Some(seen) = seen {
                response.headers_mut().insert("x-seen-request-id", seen);
            }
            Ok::<_, Infallible>(response)
        }
    }));

    let response = service.oneshot(request).await.unwrap();
    let seen = response.headers()["x-seen-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    (response, seen)
}

fn ok() -> Response<()> {
    Response::new(())
}

/// A trailers-only error, as tonic sends a handler's `Err(Status)`.
fn permission_denied() -> Response<()> {
    Response::builder()
        .header("content-type", "application/grpc")
        .header("grpc-status", "7")
        .header("grpc-message", "denied")
        .body(())
        .unwrap()
}

fn with_request_id(id: &str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(REQUEST_ID_HEADER, HeaderValue::from_str(id).unwrap());
    headers
}

/// The one server span whose `request.id` is `id`.
fn server_span(id: &str) -> SpanData {
    let spans: Vec<_> = test_exporter()
        .spans()
        .into_iter()
        .filter(|span| attribute(span, "request.id").as_deref() == Some(id))
        .collect();
    assert_eq!(spans.len(), 1, "one server span for request {id}");
    spans.into_iter().next().unwrap()
}

fn unique_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

#[tokio::test]
async fn server_span_continues_the_callers_trace_with_rpc_and_tenant_attributes() {
    let spans = test_exporter();

    let client = tracing::info_span!("client.call");
    let mut headers = client.in_scope(|| {
        let mut headers = HeaderMap::new();
        propagation::inject_current(&mut headers);
        headers
    });
    assert!(headers.contains_key("traceparent"));
    let client_context = client.context();
    let client_span = client_context.span();
    let trace_id = client_span.span_context().trace_id();
    let client_span_id = client_span.span_context().span_id();
    let request_id = unique_id();
    headers.insert(
        REQUEST_ID_HEADER,
        HeaderValue::from_str(&request_id).unwrap(),
    );

    call(headers, ok).await;

    let server = server_span(&request_id);
    assert_eq!(server.span_context.trace_id(), trace_id);
    assert_eq!(server.parent_span_id, client_span_id);
    assert!(server.parent_span_is_remote);
    assert_eq!(
        server.name,
        "adscope.analytics.v1.CampaignService/GetCampaign"
    );
    assert_eq!(server.span_kind, opentelemetry::trace::SpanKind::Server);
    assert_eq!(
        attribute(&server, "rpc.service").as_deref(),
        Some("adscope.analytics.v1.CampaignService")
    );
    assert_eq!(
        attribute(&server, "rpc.method").as_deref(),
        Some("GetCampaign")
    );
    assert_eq!(attribute(&server, "rpc.system").as_deref(), Some("grpc"));
    assert_eq!(attribute(&server, "tenant.id").as_deref(), Some(TENANT));
    assert!(
        spans
            .spans_for_trace(trace_id)
            .iter()
            .any(|span| span.span_context == server.span_context),
        "spans_for_trace finds the server span"
    );
}

#[tokio::test]
async fn requests_without_traceparent_start_fresh_traces() {
    test_exporter();
    let outer = tracing::info_span!("unrelated.outer");
    let outer_trace = outer.context().span().span_context().trace_id();
    let (first, second) = (unique_id(), unique_id());

    async {
        call(with_request_id(&first), ok).await;
        call(with_request_id(&second), ok).await;
    }
    .instrument(outer)
    .await;

    let first = server_span(&first);
    let second = server_span(&second);
    assert_ne!(outer_trace, TraceId::INVALID);
    assert_ne!(
        first.span_context.trace_id(),
        second.span_context.trace_id()
    );
    for span in [&first, &second] {
        assert_ne!(span.span_context.trace_id(), outer_trace);
        assert_eq!(span.parent_span_id, SpanId::INVALID);
    }
}

#[tokio::test]
async fn request_id_is_generated_when_absent_and_echoed() {
    test_exporter();

    let (response, seen) = call(HeaderMap::new(), ok).await;

    let echoed = response.headers()[REQUEST_ID_HEADER]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        uuid::Uuid::parse_str(&echoed).is_ok(),
        "generated id {echoed} is a UUID"
    );
    assert_eq!(seen, echoed, "inner layers see the id that is echoed");
    assert_eq!(attribute(&server_span(&echoed), "request.id"), Some(echoed));
}

#[tokio::test]
async fn request_id_is_preserved_when_present_and_replaced_when_insane() {
    test_exporter();
    let sent = format!("req-{}", unique_id());

    let (response, seen) = call(with_request_id(&sent), ok).await;
    assert_eq!(response.headers()[REQUEST_ID_HEADER], sent.as_str());
    assert_eq!(seen, sent);
    server_span(&sent);

    let too_long = "x".repeat(129);
    let (response, _) = call(with_request_id(&too_long), ok).await;
    let replaced = response.headers()[REQUEST_ID_HEADER].to_str().unwrap();
    assert!(uuid::Uuid::parse_str(replaced).is_ok(), "{replaced}");
}

#[tokio::test]
async fn grpc_status_of_a_trailers_only_error_is_recorded() {
    test_exporter();
    let (denied, fine) = (unique_id(), unique_id());

    call(with_request_id(&denied), permission_denied).await;
    call(with_request_id(&fine), ok).await;

    let denied = server_span(&denied);
    assert_eq!(
        attribute(&denied, "rpc.grpc.status_code").as_deref(),
        Some("7")
    );
    // A client error is not a server failure.
    assert_eq!(denied.status, opentelemetry::trace::Status::Unset);
    assert_eq!(
        attribute(&server_span(&fine), "rpc.grpc.status_code").as_deref(),
        Some("0")
    );
}

#[tokio::test]
async fn authorization_header_is_never_recorded() {
    test_exporter();
    let id = unique_id();
    let mut headers = with_request_id(&id);
    headers.insert(
        "authorization",
        HeaderValue::from_static("Bearer secret-token-value"),
    );

    call(headers, ok).await;

    let span = server_span(&id);
    assert!(!span.attributes.is_empty());
    for attribute in &span.attributes {
        assert!(
            !attribute.value.to_string().contains("secret-token-value"),
            "{attribute:?}"
        );
    }
}

#[tokio::test]
async fn fields_recorded_in_the_response_future_reach_the_server_span() {
    test_exporter();
    let id = unique_id();
    let mut request = Request::builder()
        .uri("/adscope.fleet.v1.FleetService/GetFleetStatus")
        .header("content-type", "application/grpc");
    request = request.header(REQUEST_ID_HEADER, id.as_str());

    // An async tenant layer records only once its future runs.
    let service = ServerTraceLayer::new().layer(service_fn(|_request: Request<()>| async {
        tokio::task::yield_now().await;
        tracing::Span::current().record("adscope.scope", "fleet");
        Ok::<_, Infallible>(ok())
    }));
    service.oneshot(request.body(()).unwrap()).await.unwrap();

    let span = server_span(&id);
    assert_eq!(attribute(&span, "adscope.scope").as_deref(), Some("fleet"));
    assert_eq!(
        attribute(&span, "rpc.service").as_deref(),
        Some("adscope.fleet.v1.FleetService")
    );
    assert_eq!(attribute(&span, "tenant.id"), None);
}

#[tokio::test]
async fn a_call_dropped_before_its_response_is_recorded_as_cancelled() {
    test_exporter();
    let id = unique_id();
    let request = Request::builder()
        .uri(PATH)
        .header(REQUEST_ID_HEADER, id.as_str())
        .body(())
        .unwrap();

    let mut service = ServerTraceLayer::new().layer(service_fn(|_request: Request<()>| {
        std::future::pending::<Result<Response<()>, Infallible>>()
    }));
    let future = service.ready().await.unwrap().call(request);
    drop(future);

    let span = server_span(&id);
    assert_eq!(
        attribute(&span, "rpc.grpc.status_code").as_deref(),
        Some("1")
    );
}

#[tokio::test]
async fn a_plain_http_request_gets_an_http_span_not_an_rpc_one() {
    let exporter = test_exporter();
    let request = Request::builder()
        .method("POST")
        .uri("/webhooks/airbyte")
        .header("content-type", "application/json")
        .header("x-request-id", "plain-http-span-test")
        .body(())
        .unwrap();
    let service = ServerTraceLayer::new().layer(tower::service_fn(|_req: Request<()>| async {
        Ok::<_, std::convert::Infallible>(http::Response::new(()))
    }));
    service.oneshot(request).await.unwrap();

    let span = exporter
        .spans()
        .into_iter()
        .find(|s| attribute(s, "request.id").as_deref() == Some("plain-http-span-test"))
        .expect("the request has a server span");
    assert_eq!(span.name, "POST /webhooks/airbyte");
    assert_eq!(
        attribute(&span, "url.path").as_deref(),
        Some("/webhooks/airbyte")
    );
    assert_eq!(attribute(&span, "rpc.system"), None, "not labelled as gRPC");
}

//! Traces across the wire: one client call and everything it causes on the
//! server side share one trace id, and every span carries the tenant.
//!
//! A test binary of its own, because the in-memory exporter installs the
//! process-wide tracing subscriber.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use adscope_e2e::{request, seed_tenants, start_analytics};
use adscope_proto::analytics::v1 as pb;
use adscope_proto::analytics::v1::campaign_service_client::CampaignServiceClient;
use adscope_telemetry::testing::{attribute, test_exporter};
use adscope_tenancy::{Credential, Principal, Role, TenantContext};
use adscope_testing::{TestDb, token};
use opentelemetry::trace::TraceContextExt;
use opentelemetry_sdk::trace::SpanData;
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The server span of an RPC (its OpenTelemetry name is `Service/Method`).
fn is_rpc_server(span: &SpanData) -> bool {
    span.span_kind == opentelemetry::trace::SpanKind::Server
        && attribute(span, "rpc.system").as_deref() == Some("grpc")
}

/// Spans end (and are exported) as the server finishes the call, which may
/// be a moment after the client has its reply.
async fn wait_for<F>(trace: opentelemetry::trace::TraceId, done: F) -> Vec<SpanData>
where
    F: Fn(&[SpanData]) -> bool,
{
    for _ in 0..100 {
        let spans = test_exporter().spans_for_trace(trace);
        if done(&spans) {
            return spans;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    test_exporter().spans_for_trace(trace)
}

#[tokio::test]
async fn a_client_call_and_its_server_spans_share_one_trace_and_carry_the_tenant() {
    test_exporter();
    let db = TestDb::new().await;
    let tenants = seed_tenants(&db, 2).await;
    let (a, b) = (tenants[0], tenants[1]);
    let analytics = start_analytics(&db).await;

    let token_a = token(&[a], Role::Analyst);
    let mut direct = CampaignServiceClient::new(analytics.channel().await);
    let created = direct
        .create_campaign(request(
            pb::CreateCampaignRequest {
                campaign: Some(pb::Campaign {
                    external_id: "traced".into(),
                    name: "traced".into(),
                    platform: pb::Platform::Meta.into(),
                    currency: "EUR".into(),
                    ..Default::default()
                }),
            },
            &token_a,
            Some(a),
        ))
        .await
        .unwrap()
        .into_inner()
        .campaign
        .unwrap();

    // The caller: a span of its own, acting for A through the propagating channel.
    let ctx = TenantContext::new(
        a,
        Arc::new(Principal {
            subject: "frontend".into(),
            tenants: vec![a],
            roles: vec![Role::Analyst],
            scopes: vec![],
        }),
        Some(Credential::new(token_a)),
    );
    let client_span = tracing::info_span!("frontend.call");
    let trace_id = client_span.context().span().span_context().trace_id();
    let mut client =
        CampaignServiceClient::new(adscope_server::client::channel(&analytics.url()).unwrap());
    let reply = ctx
        .scope(client.get_campaign(pb::GetCampaignRequest {
            id: created.id.clone(),
        }))
        .instrument(client_span.clone())
        .await
        .unwrap();
    assert_eq!(reply.into_inner().campaign.unwrap().id, created.id);
    drop(client_span);

    let spans = wait_for(trace_id, |spans| {
        spans.iter().any(is_rpc_server) && spans.iter().any(|s| s.name == "db.unit")
    })
    .await;

    let server = spans
        .iter()
        .find(|s| is_rpc_server(s))
        .unwrap_or_else(|| panic!("no server span in the client's trace: {spans:#?}"));
    assert_eq!(
        attribute(server, "rpc.service").as_deref(),
        Some("adscope.analytics.v1.CampaignService")
    );
    assert_eq!(
        attribute(server, "rpc.method").as_deref(),
        Some("GetCampaign")
    );
    assert_eq!(
        server.name,
        "adscope.analytics.v1.CampaignService/GetCampaign"
    );
    assert_eq!(attribute(server, "tenant.id"), Some(a.to_string()));

    let unit = spans.iter().find(|s| s.name == "db.unit").unwrap();
    assert_eq!(attribute(unit, "tenant.id"), Some(a.to_string()));
    assert_eq!(
        unit.parent_span_id,
        server.span_context.span_id(),
        "the database unit is a child of the RPC span"
    );

    // Nothing in this trace names the other tenant, and no span carries the token.
    for span in &spans {
        for kv in &span.attributes {
            let value = kv.value.as_str();
            assert!(
                !value.contains(&b.to_string()),
                "{} carries tenant B",
                span.name
            );
            assert!(!value.contains("Bearer"), "{} carries a token", span.name);
        }
    }
}

#[tokio::test]
async fn a_call_without_traceparent_starts_its_own_trace() {
    test_exporter();
    let db = TestDb::new().await;
    let tenants = seed_tenants(&db, 1).await;
    let analytics = start_analytics(&db).await;
    let mut client = CampaignServiceClient::new(analytics.channel().await);
    let token_a = token(&tenants, Role::Viewer);

    // The calls run inside a span of this process (the server's too), but
    // over a plain channel that sends no traceparent: the server must not
    // adopt that span's trace.
    let outer = tracing::info_span!("unrelated.outer");
    let outer_trace = outer.context().span().span_context().trace_id();
    for _ in 0..2 {
        let _ = client
            .get_campaign(request(
                pb::GetCampaignRequest {
                    id: uuid::Uuid::new_v4().to_string(),
                },
                &token_a,
                Some(tenants[0]),
            ))
            .instrument(outer.clone())
            .await;
    }
    drop(outer);

    tokio::time::sleep(Duration::from_millis(300)).await;
    let server_traces: std::collections::HashSet<_> = test_exporter()
        .spans()
        .into_iter()
        .filter(|s| is_rpc_server(s) && attribute(s, "tenant.id") == Some(tenants[0].to_string()))
        .map(|s| s.span_context.trace_id())
        .collect();
    assert_eq!(server_traces.len(), 2, "each call is its own trace");
    assert!(!server_traces.contains(&outer_trace));
}

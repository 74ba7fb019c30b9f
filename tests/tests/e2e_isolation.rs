//! Tenant isolation end to end, traced: analytics, integrations and health
//! in one process against one database, called as a frontend would for three
//! tenants whose external ids and names overlap, with every span collected
//! and audited for tenant attribution.
//!
//! A test binary of its own, because the in-memory exporter installs the
//! process-wide tracing subscriber.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

#[path = "integrations_fake/mod.rs"]
mod integrations_fake;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use adscope_e2e::{
    Running, seed_tenants, start_analytics_with, start_health, start_integrations_with, today,
};
use adscope_integrations::webhook::{PATH, SECRET_HEADER};
use adscope_proto::analytics::v1 as pb;
use adscope_proto::analytics::v1::ad_service_client::AdServiceClient;
use adscope_proto::analytics::v1::ad_set_service_client::AdSetServiceClient;
use adscope_proto::analytics::v1::campaign_service_client::CampaignServiceClient;
use adscope_proto::analytics::v1::performance_service_client::PerformanceServiceClient;
use adscope_proto::analytics::v1::snapshot_service_client::SnapshotServiceClient;
use adscope_proto::fleet::v1 as fpb;
use adscope_proto::fleet::v1::fleet_service_client::FleetServiceClient;
use adscope_proto::integrations::v1 as ipb;
use adscope_proto::integrations::v1::connection_service_client::ConnectionServiceClient;
use adscope_telemetry::testing::{attribute, test_exporter};
use adscope_tenancy::{Audience, Claims, Minter, Role, TenantId};
use adscope_testing::{TEST_AUDIENCE, TEST_ISSUER, TestDb, fleet_token, token};
use opentelemetry::trace::{SpanId, SpanKind, TraceId};
use opentelemetry_sdk::trace::SpanData;
use tonic::Code;
use tonic::metadata::MetadataValue;
use tonic::transport::Channel;
use uuid::Uuid;

const SECRET: &str = "e2e-webhook-secret";

/// Who a traced call was made as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Caller {
    /// Acting for this tenant (the call may still be refused).
    Tenant(TenantId),
    /// A fleet token, acting for no tenant.
    Fleet,
    /// A call the services must refuse before knowing any tenant.
    Refused,
}

/// Every trace this test started, with who started it.
#[derive(Debug, Clone, Default)]
struct Traces(Arc<Mutex<Vec<(TraceId, Caller)>>>);

impl Traces {
    /// A fresh `traceparent` for a call made as `caller`, remembered for the audit.
    fn start(&self, caller: Caller) -> (TraceId, String) {
        let trace = TraceId::from_bytes(*Uuid::new_v4().as_bytes());
        let span = SpanId::from_bytes(Uuid::new_v4().as_bytes()[..8].try_into().unwrap());
        self.0.lock().unwrap().push((trace, caller));
        (trace, format!("00-{trace}-{span}-01"))
    }

    fn all(&self) -> Vec<(TraceId, Caller)> {
        self.0.lock().unwrap().clone()
    }
}

/// A request with a bearer token, an optional tenant header and a fresh
/// trace recorded under `caller`.
fn traced<T>(
    traces: &Traces,
    caller: Caller,
    message: T,
    token: &str,
    tenant: Option<TenantId>,
) -> tonic::Request<T> {
    let mut request = adscope_e2e::request(message, token, tenant);
    let (_, parent) = traces.start(caller);
    let parent: MetadataValue<_> = parent.parse().unwrap();
    request.metadata_mut().insert("traceparent", parent);
    request
}

/// The clients a frontend holds.
#[derive(Clone)]
struct Clients {
    campaigns: CampaignServiceClient<Channel>,
    ad_sets: AdSetServiceClient<Channel>,
    ads: AdServiceClient<Channel>,
    perf: PerformanceServiceClient<Channel>,
    snapshots: SnapshotServiceClient<Channel>,
    connections: ConnectionServiceClient<Channel>,
    fleet: FleetServiceClient<Channel>,
}

/// All three services on one database, three tenants.
struct Stack {
    _db: TestDb,
    _analytics: Running,
    integrations: Running,
    _health: Running,
    tenants: Vec<TenantId>,
    clients: Clients,
    traces: Traces,
}

impl Stack {
    async fn start() -> Stack {
        Stack::start_with_pool(None).await
    }

    /// With `pool`, analytics gets a connection pool of that size instead of
    /// the harness default (many concurrent clients queue on a small one).
    async fn start_with_pool(pool: Option<u32>) -> Stack {
        test_exporter();
        let db = TestDb::new().await;
        let tenants = seed_tenants(&db, 3).await;
        let analytics = start_analytics_with(&db, |config| {
            if let Some(size) = pool {
                config.pool_size = size;
            }
        })
        .await;
        let analytics_url = analytics.url();
        let integrations = start_integrations_with(&db, move |cfg| {
            cfg.webhook_secret = Some(SECRET.into());
            cfg.analytics_url = Some(analytics_url);
            cfg.service_minter = Some(Arc::new(adscope_testing::minter()));
        })
        .await;
        let health = start_health(&db).await;
        let a = analytics.channel().await;
        let i = integrations.channel().await;
        let clients = Clients {
            campaigns: CampaignServiceClient::new(a.clone()),
            ad_sets: AdSetServiceClient::new(a.clone()),
            ads: AdServiceClient::new(a.clone()),
            perf: PerformanceServiceClient::new(a.clone()),
            snapshots: SnapshotServiceClient::new(a),
            connections: ConnectionServiceClient::new(i),
            fleet: FleetServiceClient::new(health.channel().await),
        };
        Stack {
            _db: db,
            _analytics: analytics,
            integrations,
            _health: health,
            tenants,
            clients,
            traces: Traces::default(),
        }
    }

    /// A session of one tenant: a single-tenant analyst token.
    fn session(&self, tenant: TenantId) -> Session {
        Session {
            tenant,
            token: token(&[tenant], Role::Analyst),
            c: self.clients.clone(),
            traces: self.traces.clone(),
        }
    }
}

/// A frontend acting for one tenant.
#[derive(Clone)]
struct Session {
    tenant: TenantId,
    token: String,
    c: Clients,
    traces: Traces,
}

impl Session {
    fn req<T>(&self, message: T) -> tonic::Request<T> {
        traced(
            &self.traces,
            Caller::Tenant(self.tenant),
            message,
            &self.token,
            Some(self.tenant),
        )
    }

    async fn create_campaign(&mut self, external_id: &str, name: &str) -> pb::Campaign {
        let request = self.req(pb::CreateCampaignRequest {
            campaign: Some(pb::Campaign {
                external_id: external_id.into(),
                name: name.into(),
                platform: pb::Platform::Meta.into(),
                status: pb::CampaignStatus::Active.into(),
                currency: "EUR".into(),
                ..Default::default()
            }),
        });
        self.c
            .campaigns
            .create_campaign(request)
            .await
            .unwrap()
            .into_inner()
            .campaign
            .unwrap()
    }

    async fn get_campaign(&mut self, id: &str) -> Result<pb::Campaign, tonic::Status> {
        let request = self.req(pb::GetCampaignRequest { id: id.into() });
        let reply = self.c.campaigns.get_campaign(request).await?;
        Ok(reply.into_inner().campaign.unwrap())
    }

    async fn list_campaigns(&mut self) -> Vec<pb::Campaign> {
        let request = self.req(pb::ListCampaignsRequest {
            page_size: 500,
            ..Default::default()
        });
        let reply = self.c.campaigns.list_campaigns(request).await.unwrap();
        let reply = reply.into_inner();
        assert!(reply.next_page_token.is_empty(), "one page holds them all");
        reply.campaigns
    }

    async fn list_ad_sets(&mut self, campaign_id: &str) -> Result<Vec<pb::AdSet>, tonic::Status> {
        let request = self.req(pb::ListAdSetsRequest {
            page_size: 500,
            campaign_id: campaign_id.into(),
            ..Default::default()
        });
        Ok(self
            .c
            .ad_sets
            .list_ad_sets(request)
            .await?
            .into_inner()
            .ad_sets)
    }

    async fn list_ads(&mut self, ad_set_id: &str) -> Result<Vec<pb::Ad>, tonic::Status> {
        let request = self.req(pb::ListAdsRequest {
            page_size: 500,
            ad_set_id: ad_set_id.into(),
            ..Default::default()
        });
        Ok(self.c.ads.list_ads(request).await?.into_inner().ads)
    }

    async fn list_records(
        &mut self,
        campaign_id: &str,
    ) -> Result<Vec<pb::PerformanceRecord>, tonic::Status> {
        let request = self.req(pb::ListRecordsRequest {
            campaign_id: campaign_id.into(),
            page_size: 500,
            ..Default::default()
        });
        Ok(self
            .c
            .perf
            .list_records(request)
            .await?
            .into_inner()
            .records)
    }

    async fn metrics(
        &mut self,
        campaign_id: &str,
        group_by: pb::MetricsGroupBy,
    ) -> Result<pb::QueryMetricsResponse, tonic::Status> {
        let day = today();
        let request = self.req(pb::QueryMetricsRequest {
            start_date: day.clone(),
            end_date: day,
            group_by: group_by.into(),
            campaign_id: campaign_id.into(),
            ..Default::default()
        });
        Ok(self.c.perf.query_metrics(request).await?.into_inner())
    }

    async fn snapshot(&mut self, source: &str) -> pb::GetSnapshotResponse {
        let request = self.req(pb::GetSnapshotRequest {
            source: source.into(),
        });
        self.c
            .snapshots
            .get_snapshot(request)
            .await
            .unwrap()
            .into_inner()
    }
}

fn is_server(span: &SpanData) -> bool {
    span.span_kind == SpanKind::Server && attribute(span, "rpc.system").as_deref() == Some("grpc")
}

/// The server span of the webhook: a plain HTTP route.
fn is_webhook(span: &SpanData) -> bool {
    span.span_kind == SpanKind::Server && attribute(span, "url.path").as_deref() == Some(PATH)
}

/// Server spans that never act for a tenant: health probes, reflection, and
/// plain HTTP routes (the webhook learns its tenant from the connection).
fn is_tenantless_server(span: &SpanData) -> bool {
    let service = attribute(span, "rpc.service").unwrap_or_default();
    service.starts_with("grpc.health.")
        || service.starts_with("grpc.reflection.")
        || service == "unknown"
        || is_webhook(span)
}

fn spans_by_trace() -> HashMap<TraceId, Vec<SpanData>> {
    let mut by_trace: HashMap<TraceId, Vec<SpanData>> = HashMap::new();
    for span in test_exporter().spans() {
        by_trace
            .entry(span.span_context.trace_id())
            .or_default()
            .push(span);
    }
    by_trace
}

/// The spans of `trace` once `done` holds (spans end as servers finish,
/// a moment after the client has its reply).
async fn wait_for(trace: TraceId, done: impl Fn(&[SpanData]) -> bool) -> Vec<SpanData> {
    for _ in 0..150 {
        let spans = test_exporter().spans_for_trace(trace);
        if done(&spans) {
            return spans;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    test_exporter().spans_for_trace(trace)
}

/// The isolation audit over every trace this test started, and over every
/// exported span naming one of its tenants:
/// - a trace started as tenant T names no other tenant anywhere, and every
///   span in it that carries `tenant.id` carries T;
/// - every admitted RPC server span (bar tenantless ones) and every database
///   unit carries `tenant.id` or `adscope.scope = fleet`;
/// - no trace mixes two of the test's tenants, wherever it came from.
async fn audit(traces: &Traces, tenants: &[TenantId]) {
    let started = traces.all();
    assert!(!started.is_empty(), "the audit needs traced calls");
    // Every traced call reached a server and its span has ended.
    for _ in 0..150 {
        let by_trace = spans_by_trace();
        if started
            .iter()
            .all(|(t, _)| by_trace.get(t).is_some_and(|s| s.iter().any(is_server)))
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Let database units and calls those servers made finish too.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let by_trace = spans_by_trace();
    let names: Vec<String> = tenants.iter().map(ToString::to_string).collect();
    let mut servers = 0;
    let mut units = 0;

    for (trace, caller) in &started {
        let spans = by_trace
            .get(trace)
            .unwrap_or_else(|| panic!("trace {trace} ({caller:?}) has no spans"));
        assert!(
            spans.iter().any(is_server),
            "trace {trace} ({caller:?}) has no server span"
        );
        let own = match caller {
            Caller::Tenant(t) => Some(t.to_string()),
            Caller::Fleet | Caller::Refused => None,
        };
        for span in spans {
            // No attribute of any span names a tenant other than the caller's.
            for kv in &span.attributes {
                let value = kv.value.as_str();
                for name in &names {
                    if Some(name) != own.as_ref() {
                        assert!(
                            !value.contains(name.as_str()),
                            "{} ({caller:?}) carries tenant {name} in {}",
                            span.name,
                            kv.key
                        );
                    }
                }
            }
            let tenant = attribute(span, "tenant.id");
            let fleet = attribute(span, "adscope.scope").as_deref() == Some("fleet");
            if let Some(tenant) = &tenant {
                assert_eq!(
                    Some(tenant),
                    own.as_ref(),
                    "{} in a {caller:?} trace",
                    span.name
                );
            }
            if span.name == "db.unit" {
                units += 1;
                assert!(
                    tenant.is_some() || fleet,
                    "db.unit without tenant or fleet scope: {span:#?}"
                );
                if *caller == Caller::Fleet {
                    assert!(fleet && tenant.is_none(), "fleet unit: {span:#?}");
                }
            }
            if is_server(span) && !is_tenantless_server(span) {
                servers += 1;
                let status = attribute(span, "rpc.grpc.status_code");
                // Refused before admission: no tenant is known yet.
                let refused =
                    matches!(status.as_deref(), Some("7" | "16")) && tenant.is_none() && !fleet;
                match caller {
                    Caller::Refused => {
                        assert!(refused, "a call that must be refused was served: {span:#?}")
                    }
                    Caller::Fleet => assert!(fleet || refused, "fleet span: {span:#?}"),
                    Caller::Tenant(_) => assert!(
                        tenant.is_some() || refused,
                        "server span without tenant.id: {span:#?}"
                    ),
                }
            }
        }
    }
    assert!(servers > 0, "the audit saw no RPC server span");

    // Wherever a trace came from (the scheduler too), it acts for one tenant.
    for (trace, spans) in &by_trace {
        let seen: HashSet<String> = spans
            .iter()
            .filter_map(|s| attribute(s, "tenant.id"))
            .filter(|t| names.contains(t))
            .collect();
        assert!(seen.len() <= 1, "trace {trace} mixes tenants {seen:?}");
    }
    assert!(units > 0, "the audit saw no database unit");
}

/// The snapshot with every ratio rounded to 12 significant digits.
fn rounded(mut snapshot: pb::MetricsSnapshot) -> pb::MetricsSnapshot {
    fn row(r: &mut pb::MetricsRow) {
        for ratio in [&mut r.ctr, &mut r.cpc, &mut r.cpm, &mut r.cpa, &mut r.roas] {
            *ratio = ratio.map(|x| format!("{x:.11e}").parse().unwrap());
        }
    }
    snapshot.totals.iter_mut().for_each(row);
    for breakdown in &mut snapshot.breakdowns {
        breakdown.rows.iter_mut().for_each(row);
    }
    snapshot
}

fn absent<T: std::fmt::Debug>(what: &str, result: Result<T, tonic::Status>) {
    match result {
        Err(status) => assert_eq!(status.code(), Code::NotFound, "{what}: {status:?}"),
        Ok(reply) => panic!("{what}: another tenant's object was returned: {reply:?}"),
    }
}

/// Absent from a listing: an empty reply or NOT_FOUND for the foreign parent.
fn empty_or_not_found<T: std::fmt::Debug>(what: &str, result: Result<Vec<T>, tonic::Status>) {
    match result {
        Ok(items) => assert!(items.is_empty(), "{what}: foreign rows listed: {items:?}"),
        Err(status) => assert_eq!(status.code(), Code::NotFound, "{what}: {status:?}"),
    }
}

/// What one tenant built and read back.
#[derive(Debug, Clone)]
struct Built {
    campaigns: Vec<pb::Campaign>,
    ad_set: pb::AdSet,
    ad: pb::Ad,
    impressions: i64,
}

/// Everything a tenant can read of its own data, for before/after comparison.
#[derive(Debug, Clone, PartialEq)]
struct View {
    campaigns: Vec<pb::Campaign>,
    got: Vec<pb::Campaign>,
    ad_sets: Vec<pb::AdSet>,
    ads: Vec<pb::Ad>,
    records: Vec<pb::PerformanceRecord>,
    metrics: pb::QueryMetricsResponse,
    snapshot: Option<pb::MetricsSnapshot>,
}

async fn build(s: &mut Session, index: i64) -> Built {
    // The same external ids and names in every tenant.
    let c1 = s.create_campaign("cmp-1", "Spring sale").await;
    let c2 = s.create_campaign("cmp-2", "Autumn sale").await;
    let request = s.req(pb::CreateAdSetRequest {
        ad_set: Some(pb::AdSet {
            campaign_id: c1.id.clone(),
            external_id: "set-1".into(),
            name: "Prospecting".into(),
            status: pb::AdSetStatus::Active.into(),
            daily_budget: "12.50".into(),
            ..Default::default()
        }),
    });
    let ad_set =
        s.c.ad_sets
            .create_ad_set(request)
            .await
            .unwrap()
            .into_inner()
            .ad_set
            .unwrap();
    let request = s.req(pb::CreateAdRequest {
        ad: Some(pb::Ad {
            ad_set_id: ad_set.id.clone(),
            external_id: "ad-1".into(),
            name: "Hero image".into(),
            status: pb::AdStatus::Active.into(),
            ..Default::default()
        }),
    });
    let ad =
        s.c.ads
            .create_ad(request)
            .await
            .unwrap()
            .into_inner()
            .ad
            .unwrap();

    // Figures that differ per tenant, so a leak shows in every aggregate.
    let impressions = 1000 * (index + 1);
    let record = |external_id: &str, impressions: i64| pb::PerformanceRecord {
        date: today(),
        level: pb::RecordLevel::Campaign.into(),
        source: "meta".into(),
        external_id: external_id.into(),
        impressions,
        reach: impressions / 2,
        clicks: 10 * (index + 1),
        conversions: index + 1,
        spend: format!("{}.50", index + 1),
        currency: "EUR".into(),
        ..Default::default()
    };
    let batches = vec![
        pb::IngestRecordsRequest {
            records: vec![record("cmp-1", impressions)],
        },
        pb::IngestRecordsRequest {
            records: vec![record("cmp-2", 7)],
        },
    ];
    let request = s.req(tokio_stream::iter(batches));
    let ingested = s.c.perf.ingest_records(request).await.unwrap().into_inner();
    assert_eq!(
        (ingested.inserted, ingested.rejected),
        (2, 0),
        "{ingested:?}"
    );

    Built {
        campaigns: vec![c1, c2],
        ad_set,
        ad,
        impressions,
    }
}

async fn view(s: &mut Session, built: &Built) -> View {
    let mut campaigns = s.list_campaigns().await;
    campaigns.sort_by(|x, y| x.id.cmp(&y.id));
    let mut got = Vec::new();
    for c in &built.campaigns {
        got.push(s.get_campaign(&c.id).await.unwrap());
    }
    let c1 = &built.campaigns[0].id;
    let metrics = s.metrics("", pb::MetricsGroupBy::Campaign).await.unwrap();
    View {
        campaigns,
        got,
        ad_sets: s.list_ad_sets(c1).await.unwrap(),
        ads: s.list_ads(&built.ad_set.id).await.unwrap(),
        records: s.list_records(c1).await.unwrap(),
        metrics,
        snapshot: s.snapshot("meta").await.snapshot,
    }
}

/// `prober` asks for every object of `victim` with every read, list, metric
/// and snapshot call, and for a few writes; nothing of the victim's shows.
async fn probe(prober: &mut Session, victim: &Built, own: &Built) {
    for c in &victim.campaigns {
        absent("GetCampaign", prober.get_campaign(&c.id).await);
        empty_or_not_found("ListAdSets(campaign)", prober.list_ad_sets(&c.id).await);
        empty_or_not_found("ListRecords(campaign)", prober.list_records(&c.id).await);
        match prober.metrics(&c.id, pb::MetricsGroupBy::Day).await {
            Ok(m) => {
                assert!(m.series.is_empty(), "foreign series: {m:?}");
                assert_eq!(m.totals.unwrap().impressions, 0);
            }
            Err(status) => assert_eq!(status.code(), Code::NotFound, "{status:?}"),
        }
        let request = prober.req(pb::UpdateCampaignRequest {
            campaign: Some(pb::Campaign {
                id: c.id.clone(),
                name: "hijacked".into(),
                ..Default::default()
            }),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["name".into()],
            }),
        });
        absent(
            "UpdateCampaign",
            prober.c.campaigns.update_campaign(request).await,
        );
        let request = prober.req(pb::DeleteCampaignRequest { id: c.id.clone() });
        absent(
            "DeleteCampaign",
            prober.c.campaigns.delete_campaign(request).await,
        );
        // No child may hang off a foreign parent.
        let request = prober.req(pb::CreateAdSetRequest {
            ad_set: Some(pb::AdSet {
                campaign_id: c.id.clone(),
                external_id: "set-under-foreign".into(),
                name: "intruder".into(),
                status: pb::AdSetStatus::Active.into(),
                ..Default::default()
            }),
        });
        absent(
            "CreateAdSet under a foreign campaign",
            prober.c.ad_sets.create_ad_set(request).await,
        );
    }
    let request = prober.req(pb::GetAdSetRequest {
        id: victim.ad_set.id.clone(),
    });
    absent("GetAdSet", prober.c.ad_sets.get_ad_set(request).await);
    empty_or_not_found("ListAds(ad set)", prober.list_ads(&victim.ad_set.id).await);
    let request = prober.req(pb::GetAdRequest {
        id: victim.ad.id.clone(),
    });
    absent("GetAd", prober.c.ads.get_ad(request).await);

    // Unfiltered reads show the prober's own data, never the victim's.
    let victim_ids: HashSet<&str> = victim.campaigns.iter().map(|c| c.id.as_str()).collect();
    let listed = prober.list_campaigns().await;
    assert_eq!(listed.len(), own.campaigns.len());
    assert!(listed.iter().all(|c| !victim_ids.contains(c.id.as_str())));
    let sets = prober.list_ad_sets("").await.unwrap();
    assert_eq!(
        sets.iter().map(|s| &s.id).collect::<Vec<_>>(),
        [&own.ad_set.id]
    );
    let ads = prober.list_ads("").await.unwrap();
    assert_eq!(ads.iter().map(|a| &a.id).collect::<Vec<_>>(), [&own.ad.id]);
    let records = prober.list_records("").await.unwrap();
    assert_eq!(records.len(), 2);
    assert!(
        records
            .iter()
            .all(|r| !victim_ids.contains(r.campaign_id.as_str()))
    );
    let metrics = prober
        .metrics("", pb::MetricsGroupBy::Campaign)
        .await
        .unwrap();
    assert_eq!(metrics.totals.unwrap().impressions, own.impressions + 7);
    for row in &metrics.series {
        assert!(
            !victim_ids.contains(row.key.as_str()),
            "foreign row {row:?}"
        );
    }
    let snap = prober.snapshot("meta").await.snapshot.unwrap();
    assert_eq!(snap.totals.unwrap().impressions, own.impressions + 7);
}

#[tokio::test]
async fn frontend_flow_per_tenant_and_every_cross_tenant_probe_finds_nothing() {
    let stack = Stack::start().await;
    let mut sessions: Vec<Session> = stack.tenants.iter().map(|t| stack.session(*t)).collect();
    let mut built = Vec::new();
    let mut views = Vec::new();
    for (i, s) in sessions.iter_mut().enumerate() {
        let b = build(s, i as i64).await;
        let v = view(s, &b).await;
        // Each tenant sees exactly what it built.
        assert_eq!(v.campaigns.len(), 2);
        assert_eq!(v.ad_sets.len(), 1);
        assert_eq!(v.ads.len(), 1);
        assert_eq!(v.records.len(), 1);
        assert_eq!(v.records[0].impressions, b.impressions);
        assert_eq!(
            v.metrics.totals.as_ref().unwrap().impressions,
            b.impressions + 7
        );
        assert_eq!(
            v.snapshot
                .as_ref()
                .unwrap()
                .totals
                .as_ref()
                .unwrap()
                .impressions,
            b.impressions + 7
        );
        built.push(b);
        views.push(v);
    }

    for prober in 0..3 {
        for victim in 0..3 {
            if prober != victim {
                let (victim_built, own) = (built[victim].clone(), built[prober].clone());
                probe(&mut sessions[prober], &victim_built, &own).await;
            }
        }
    }

    // Nobody's probing changed anybody's data.
    for (i, s) in sessions.iter_mut().enumerate() {
        let again = view(s, &built[i]).await;
        let before = &views[i];
        assert_eq!(
            again.campaigns, before.campaigns,
            "tenant {i}'s campaigns changed"
        );
        assert_eq!(again.got, before.got, "tenant {i}'s campaigns changed");
        assert_eq!(
            again.ad_sets, before.ad_sets,
            "tenant {i}'s ad sets changed"
        );
        assert_eq!(again.ads, before.ads, "tenant {i}'s ads changed");
        assert_eq!(
            again.records, before.records,
            "tenant {i}'s records changed"
        );
        assert_eq!(
            again.metrics, before.metrics,
            "tenant {i}'s metrics changed"
        );
        // Ratios are compared to 12 significant digits: a cached snapshot's
        // doubles may differ from the freshly computed ones in the last bit.
        assert_eq!(
            again.snapshot.clone().map(rounded),
            before.snapshot.clone().map(rounded),
            "tenant {i}'s snapshot changed"
        );
    }
    audit(&stack.traces, &stack.tenants).await;
}

#[tokio::test]
async fn a_webhook_naming_another_tenant_syncs_its_connections_tenant_in_one_trace() {
    let stack = Stack::start().await;
    let (a, b) = (stack.tenants[0], stack.tenants[1]);
    let mut sa = stack.session(a);
    let mut sb = stack.session(b);
    let airbyte = Uuid::new_v4();
    let connection = |name: &str, airbyte: Uuid| ipb::CreateConnectionRequest {
        connection: Some(ipb::Connection {
            name: name.into(),
            provider: "meta".into(),
            airbyte_connection_id: airbyte.to_string(),
            active: true,
            ..Default::default()
        }),
    };
    let request = sa.req(connection("meta", airbyte));
    let conn_a =
        sa.c.connections
            .create_connection(request)
            .await
            .unwrap()
            .into_inner()
            .connection
            .unwrap();
    // B has a connection of the same name, so "B sees nothing" is not vacuous.
    let request = sb.req(connection("meta", Uuid::new_v4()));
    let conn_b =
        sb.c.connections
            .create_connection(request)
            .await
            .unwrap()
            .into_inner()
            .connection
            .unwrap();

    // The webhook, carrying B's id in a header and a trace of ours.
    let (trace, parent) = stack.traces.start(Caller::Tenant(a));
    let body = serde_json::json!({
        "connectionId": airbyte,
        "job": {"id": 4242, "status": "succeeded", "createdAt": 1_760_000_000_000_i64,
                "updatedAt": 1_760_000_060_000_i64},
        "attempts": [{"attempt": {"id": 0, "status": "succeeded", "createdAt": 1_760_000_000,
                                  "endedAt": 1_760_000_060, "recordsSynced": 3,
                                  "bytesSynced": 300}}]
    })
    .to_string();
    let b_header = b.to_string();
    let (code, reply) = integrations_fake::post(
        stack.integrations.addr,
        PATH,
        &[
            (SECRET_HEADER, SECRET),
            ("x-tenant-id", &b_header),
            ("traceparent", &parent),
        ],
        body.as_bytes(),
    )
    .await;
    assert_eq!(code, 200, "{reply}");
    assert!(reply.contains("\"applied\":1"), "{reply}");

    // The sync landed on A.
    let request = sa.req(ipb::GetConnectionRequest {
        id: conn_a.id.clone(),
    });
    let got =
        sa.c.connections
            .get_connection(request)
            .await
            .unwrap()
            .into_inner();
    let got = got.connection.unwrap();
    assert_eq!(got.last_job_id, 4242);
    assert_eq!(got.last_job_status(), ipb::JobStatus::Succeeded);
    // B has no such connection and no job.
    let request = sb.req(ipb::GetConnectionRequest {
        id: conn_a.id.clone(),
    });
    absent(
        "GetConnection",
        sb.c.connections.get_connection(request).await,
    );
    let request = sb.req(ipb::ListJobsRequest::default());
    let jobs_b =
        sb.c.connections
            .list_jobs(request)
            .await
            .unwrap()
            .into_inner()
            .jobs;
    assert!(jobs_b.is_empty(), "{jobs_b:?}");
    let request = sb.req(ipb::GetConnectionRequest {
        id: conn_b.id.clone(),
    });
    let own_b =
        sb.c.connections
            .get_connection(request)
            .await
            .unwrap()
            .into_inner();
    assert_eq!(own_b.connection.unwrap().last_job_id, 0);
    let request = sa.req(ipb::ListJobsRequest::default());
    let jobs_a =
        sa.c.connections
            .list_jobs(request)
            .await
            .unwrap()
            .into_inner()
            .jobs;
    assert_eq!(
        jobs_a.iter().map(|j| j.airbyte_job_id).collect::<Vec<_>>(),
        [4242]
    );

    // A's snapshot was refreshed by the webhook, B's was not.
    let snap_a = sa.snapshot("meta").await;
    assert_eq!(snap_a.cache_status(), pb::SnapshotCacheStatus::Hit);
    let snap_b = sb.snapshot("meta").await;
    assert_eq!(snap_b.cache_status(), pb::SnapshotCacheStatus::Miss);

    // The whole chain is one trace, all of it A's.
    let refresh = |s: &SpanData| {
        is_server(s) && s.name == "adscope.analytics.v1.SnapshotService/RefreshSnapshot"
    };
    let spans = wait_for(trace, |spans| {
        spans.iter().any(refresh)
            && spans.iter().any(|s| {
                s.name == "db.unit"
                    && attribute(s, "db.user").as_deref() == Some("adscope_analytics")
            })
            && spans.iter().any(is_webhook)
    })
    .await;
    let hook = spans
        .iter()
        .find(|s| is_webhook(s))
        .unwrap_or_else(|| panic!("no webhook span in the trace: {spans:#?}"));
    let refresh_span = spans
        .iter()
        .find(|s| refresh(s))
        .unwrap_or_else(|| panic!("no RefreshSnapshot span in the trace: {spans:#?}"));
    assert_eq!(attribute(refresh_span, "tenant.id"), Some(a.to_string()));
    assert_ne!(
        refresh_span.span_context.span_id(),
        hook.span_context.span_id()
    );
    // Analytics' span descends from the webhook's, through integrations.
    let parents: HashMap<SpanId, SpanId> = spans
        .iter()
        .map(|s| (s.span_context.span_id(), s.parent_span_id))
        .collect();
    let mut at = refresh_span.parent_span_id;
    let mut hops = 0;
    while at != hook.span_context.span_id() {
        at = *parents.get(&at).unwrap_or_else(|| {
            panic!("RefreshSnapshot does not descend from the webhook: {spans:#?}")
        });
        hops += 1;
        assert!(hops < 32, "a cycle in the span tree");
    }
    let units_of = |user: &str| {
        spans
            .iter()
            .filter(|s| s.name == "db.unit" && attribute(s, "db.user").as_deref() == Some(user))
            .count()
    };
    assert!(
        units_of("adscope_integrations") > 0,
        "integrations' units: {spans:#?}"
    );
    assert!(
        units_of("adscope_analytics") > 0,
        "analytics' units: {spans:#?}"
    );
    let with_tenant: Vec<&SpanData> = spans
        .iter()
        .filter(|s| attribute(s, "tenant.id").is_some())
        .collect();
    assert!(with_tenant.len() >= 3);
    for span in with_tenant {
        assert_eq!(
            attribute(span, "tenant.id"),
            Some(a.to_string()),
            "{}",
            span.name
        );
    }
    audit(&stack.traces, &stack.tenants).await;
}

#[tokio::test]
async fn tokens_over_the_wire_grant_exactly_their_tenants() {
    let stack = Stack::start().await;
    let (a, b, c) = (stack.tenants[0], stack.tenants[1], stack.tenants[2]);
    let mut sa = stack.session(a);
    let mut sb = stack.session(b);
    let mut sc = stack.session(c);
    let ca = sa.create_campaign("same", "Same name").await;
    let cb = sb.create_campaign("same", "Same name").await;
    let cc = sc.create_campaign("same", "Same name").await;
    let mut campaigns = stack.clients.campaigns.clone();
    let traces = &stack.traces;
    let list = || pb::ListCampaignsRequest {
        page_size: 100,
        ..Default::default()
    };

    // A's token naming B: refused, and nothing written for B.
    let token_a = token(&[a], Role::Analyst);
    let denied = campaigns
        .list_campaigns(traced(traces, Caller::Refused, list(), &token_a, Some(b)))
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied, "{denied:?}");
    let write = pb::CreateCampaignRequest {
        campaign: Some(pb::Campaign {
            external_id: "sneaky".into(),
            name: "sneaky".into(),
            platform: pb::Platform::Meta.into(),
            currency: "EUR".into(),
            ..Default::default()
        }),
    };
    let denied = campaigns
        .create_campaign(traced(
            traces,
            Caller::Refused,
            write.clone(),
            &token_a,
            Some(b),
        ))
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied, "{denied:?}");
    assert_eq!(
        sb.list_campaigns()
            .await
            .iter()
            .map(|x| &x.id)
            .collect::<Vec<_>>(),
        [&cb.id]
    );

    // A token listing A and B: each switch sees that tenant's data only.
    let both = token(&[a, b], Role::Analyst);
    for (tenant, own) in [(a, &ca), (b, &cb), (a, &ca)] {
        let listed = campaigns
            .list_campaigns(traced(
                traces,
                Caller::Tenant(tenant),
                list(),
                &both,
                Some(tenant),
            ))
            .await
            .unwrap()
            .into_inner()
            .campaigns;
        assert_eq!(listed.iter().map(|x| &x.id).collect::<Vec<_>>(), [&own.id]);
        for foreign in [&ca, &cb, &cc].into_iter().filter(|x| x.id != own.id) {
            let got = campaigns
                .get_campaign(traced(
                    traces,
                    Caller::Tenant(tenant),
                    pb::GetCampaignRequest {
                        id: foreign.id.clone(),
                    },
                    &both,
                    Some(tenant),
                ))
                .await;
            absent("GetCampaign with a two-tenant token", got);
        }
    }
    // ... and still not C.
    let denied = campaigns
        .list_campaigns(traced(traces, Caller::Refused, list(), &both, Some(c)))
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied, "{denied:?}");

    // Expired (well past any leeway) and forged tokens: unauthenticated.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let expired = adscope_testing::minter()
        .sign(&Claims {
            iss: TEST_ISSUER.into(),
            aud: Audience::One(TEST_AUDIENCE.into()),
            sub: "test-user".into(),
            exp: now - 3600,
            nbf: Some(now - 7200),
            iat: Some(now - 7200),
            tenants: vec![a],
            roles: vec![Role::Analyst],
            scope: String::new(),
        })
        .unwrap();
    let forged = Minter::hs256(b"not-the-test-secret", TEST_ISSUER, TEST_AUDIENCE)
        .unwrap()
        .mint(&adscope_tenancy::TokenSpec {
            subject: "test-user".into(),
            tenants: vec![a],
            roles: vec![Role::Admin],
            scopes: Vec::new(),
            ttl: Duration::from_secs(3600),
            not_before: None,
        })
        .unwrap();
    for (what, bad) in [("expired", &expired), ("forged", &forged)] {
        let refused = campaigns
            .list_campaigns(traced(traces, Caller::Refused, list(), bad, Some(a)))
            .await
            .unwrap_err();
        assert_eq!(refused.code(), Code::Unauthenticated, "{what}: {refused:?}");
        let refused = campaigns
            .create_campaign(traced(traces, Caller::Refused, write.clone(), bad, Some(a)))
            .await
            .unwrap_err();
        assert_eq!(refused.code(), Code::Unauthenticated, "{what}: {refused:?}");
    }

    // A fleet token reads the fleet view in health, and nothing in analytics.
    let fleet = fleet_token();
    let status = stack
        .clients
        .fleet
        .clone()
        .get_fleet_status(traced(
            traces,
            Caller::Fleet,
            fpb::GetFleetStatusRequest {},
            &fleet,
            None,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(status.totals.unwrap().tenants, 3, "every tenant counted");
    let (fleet_trace, _) = *traces
        .all()
        .iter()
        .find(|(_, caller)| *caller == Caller::Fleet)
        .unwrap();
    let spans = wait_for(fleet_trace, |spans| {
        spans.iter().any(is_server) && spans.iter().any(|s| s.name == "db.unit")
    })
    .await;
    let fleet_scoped = |s: &SpanData| attribute(s, "adscope.scope").as_deref() == Some("fleet");
    assert!(
        spans.iter().any(|s| is_server(s) && fleet_scoped(s)),
        "fleet server span: {spans:#?}"
    );
    assert!(
        spans.iter().any(|s| s.name == "db.unit" && fleet_scoped(s)),
        "fleet database unit: {spans:#?}"
    );
    for tenant in [None, Some(a)] {
        let refused = campaigns
            .list_campaigns(traced(traces, Caller::Refused, list(), &fleet, tenant))
            .await
            .unwrap_err();
        assert!(
            matches!(
                refused.code(),
                Code::PermissionDenied | Code::Unauthenticated
            ),
            "fleet token on analytics ({tenant:?}): {refused:?}"
        );
    }
    let mut snapshots = stack.clients.snapshots.clone();
    let refused = snapshots
        .get_snapshot(traced(
            traces,
            Caller::Refused,
            pb::GetSnapshotRequest::default(),
            &fleet,
            None,
        ))
        .await
        .unwrap_err();
    assert!(
        matches!(
            refused.code(),
            Code::PermissionDenied | Code::Unauthenticated
        ),
        "{refused:?}"
    );

    // Nothing any refused call tried reached A's, B's or C's data.
    for (s, own) in [(&mut sa, &ca), (&mut sb, &cb), (&mut sc, &cc)] {
        let listed = s.list_campaigns().await;
        assert_eq!(listed, vec![own.clone()]);
    }
    audit(&stack.traces, &stack.tenants).await;
}

#[tokio::test]
async fn concurrent_clients_of_three_tenants_never_see_each_others_campaigns() {
    const TASKS: usize = 16;
    const CALLS: usize = 20;
    let stack = Stack::start_with_pool(Some(16)).await;
    let created: Arc<Mutex<HashMap<TenantId, HashSet<String>>>> = Arc::default();

    let mut handles = Vec::new();
    for tenant in stack.tenants.clone() {
        for task in 0..TASKS {
            let mut s = stack.session(tenant);
            let created = created.clone();
            handles.push(tokio::spawn(async move {
                let mut seen = Vec::new();
                let mut mine: Vec<pb::Campaign> = Vec::new();
                for call in 0..CALLS {
                    match call % 3 {
                        0 => {
                            // Every tenant uses the same external ids and names.
                            let ext = format!("t{task}-c{call}");
                            let c = s.create_campaign(&ext, &format!("Campaign {ext}")).await;
                            created
                                .lock()
                                .unwrap()
                                .entry(tenant)
                                .or_default()
                                .insert(c.id.clone());
                            seen.push(c.id.clone());
                            mine.push(c);
                        }
                        1 => {
                            if let Some(last) = mine.last().cloned() {
                                let got = s.get_campaign(&last.id).await.unwrap();
                                assert_eq!(got, last);
                                seen.push(got.id);
                            }
                        }
                        _ => {
                            seen.extend(s.list_campaigns().await.into_iter().map(|c| c.id));
                        }
                    }
                }
                (tenant, seen)
            }));
        }
    }
    let mut replies = 0;
    let mut all_seen: Vec<(TenantId, Vec<String>)> = Vec::new();
    for handle in handles {
        let (tenant, seen) = handle.await.unwrap();
        replies += seen.len();
        all_seen.push((tenant, seen));
    }
    let created = created.lock().unwrap().clone();
    let per_tenant = TASKS * CALLS.div_ceil(3);
    for tenant in &stack.tenants {
        assert_eq!(created[tenant].len(), per_tenant);
    }
    assert!(replies > TASKS * CALLS * 3);
    let mut foreign = 0;
    for (tenant, seen) in &all_seen {
        for id in seen {
            if !created[tenant].contains(id) {
                foreign += 1;
                let owner = created
                    .iter()
                    .find(|(_, ids)| ids.contains(id))
                    .map(|(t, _)| t);
                eprintln!("tenant {tenant} saw campaign {id} of {owner:?}");
            }
        }
    }
    assert_eq!(foreign, 0, "replies carried other tenants' campaigns");

    // Afterwards each tenant lists exactly its own.
    for tenant in &stack.tenants {
        let listed: HashSet<String> = stack
            .session(*tenant)
            .list_campaigns()
            .await
            .into_iter()
            .map(|c| c.id)
            .collect();
        assert_eq!(&listed, &created[tenant]);
    }
    audit(&stack.traces, &stack.tenants).await;
}

//! The fleet view over seeded data of three tenants: totals and per-tenant
//! health computed in SQL, pagination, refusal of tenant tokens, no names or
//! secrets in replies, the health of each service; and fleet tokens gaining
//! nothing on analytics and integrations.

#![allow(clippy::unwrap_used)] // tests fail loudly

use std::collections::HashSet;
use std::time::Duration;

use adscope_e2e::{
    Running, admin, closed_port, create_campaign, now_s, request, seed_tenants, start_analytics,
    start_integrations,
};
use adscope_proto::fleet::v1 as pb;
use adscope_proto::fleet::v1::fleet_service_client::FleetServiceClient;
use adscope_tenancy::{FLEET_READ, Role, TenantId, TokenSpec};
use adscope_testing::{TestDb, fleet_token, token, token_for};
use diesel_async::SimpleAsyncConnection;
use prost::Message;
use tonic::Code;

const SECRET_NAME: &str = "Acme Secret Corp";
const SECRET_ERROR: &str = "refused token sk_live_do_not_leak";

/// Health with its own settings, checking itself every 200 ms rather than
/// every 5 s, so its own status settles within the seconds a test waits.
async fn start_health_with(
    db: &TestDb,
    adjust: impl FnOnce(&mut adscope_health::Config),
) -> Running {
    adscope_e2e::start_health_with(db, |config| {
        config.health_interval = Duration::from_millis(200);
        adjust(config);
    })
    .await
}

async fn fleet_client(health: &Running) -> FleetServiceClient<tonic::transport::Channel> {
    FleetServiceClient::new(health.channel().await)
}

fn connection(tenant: Uuid, name: &str, active: bool, job: &str) -> String {
    format!(
        "INSERT INTO connections (tenant_id, name, provider, airbyte_connection_id, active,
                                  last_job_status, last_job_started_at, last_job_ended_at,
                                  last_error, created_at)
         SELECT '{tenant}', '{name}', 'meta', gen_random_uuid(), {active}, {job},
                now() - interval '5 hours';"
    )
}

use uuid::Uuid;

/// Three tenants:
/// - A ("Acme Secret Corp"): a healthy sync 10 min ago, a job that failed
///   (started 30 min ago), an inactive connection last synced 3 days ago.
/// - B: a job running for 3 h, a success 2 h ago (stale), one never synced
///   (created 5 h ago).
/// - C: no connections.
struct Seeded {
    a: TenantId,
    b: TenantId,
    c: TenantId,
}

async fn seed_fleet(db: &TestDb) -> Seeded {
    let (a, b, c) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
    let mut conn = admin(db).await;
    let ok = |ago: &str| {
        format!(
            "'succeeded', now() - interval '{ago}' - interval '5 minutes', now() - interval '{ago}', NULL"
        )
    };
    let mut sql = format!(
        "INSERT INTO tenants (id, name) VALUES ('{a}', '{SECRET_NAME}'), ('{b}', 'Beta'), ('{c}', 'Gamma');"
    );
    sql += &connection(a, &format!("{SECRET_NAME} Meta"), true, &ok("10 minutes"));
    sql += &connection(
        a,
        "a-failing",
        true,
        &format!(
            "'failed', now() - interval '30 minutes', now() - interval '20 minutes', '{SECRET_ERROR}'"
        ),
    );
    sql += &connection(a, "a-off", false, &ok("3 days"));
    sql += &connection(
        b,
        "b-running",
        true,
        "'running', now() - interval '3 hours', NULL, NULL",
    );
    sql += &connection(b, "b-stale", true, &ok("2 hours"));
    sql += &connection(b, "b-never", true, "NULL, NULL, NULL, NULL");
    conn.batch_execute(&sql).await.unwrap();

    // A's snapshot is 10 min old (stale at the 300 s TTL), B's fresh.
    conn.batch_execute(&format!(
        "INSERT INTO snapshots (tenant_id, source, payload, generated_at) VALUES
           ('{a}', 'meta', '{{}}', now() - interval '10 minutes'),
           ('{b}', 'meta', '{{}}', now() - interval '1 minute');"
    ))
    .await
    .unwrap();
    Seeded {
        a: TenantId::new(a),
        b: TenantId::new(b),
        c: TenantId::new(c),
    }
}

fn near(actual: i64, expected: i64) -> bool {
    (actual - expected).abs() <= 120
}

async fn all_tenant_health(
    client: &mut FleetServiceClient<tonic::transport::Channel>,
    page_size: i32,
) -> (Vec<pb::TenantHealth>, usize) {
    let mut all = Vec::new();
    let mut pages = 0;
    let mut page_token = String::new();
    loop {
        let reply = client
            .list_tenant_health(request(
                pb::ListTenantHealthRequest {
                    page_size,
                    page_token: page_token.clone(),
                },
                &fleet_token(),
                None,
            ))
            .await
            .unwrap()
            .into_inner();
        pages += 1;
        all.extend(reply.tenants);
        if reply.next_page_token.is_empty() {
            return (all, pages);
        }
        page_token = reply.next_page_token;
        assert!(pages < 100, "pagination does not end");
    }
}

#[tokio::test]
async fn fleet_totals_and_tenant_health_match_three_seeded_tenants() {
    let db = TestDb::new().await;
    let seeded = seed_fleet(&db).await;
    let health = start_health_with(&db, |_| {}).await;
    let mut client = fleet_client(&health).await;

    let status = client
        .get_fleet_status(request(pb::GetFleetStatusRequest {}, &fleet_token(), None))
        .await
        .unwrap()
        .into_inner();
    let totals = status.totals.unwrap();
    assert_eq!(
        totals,
        pb::FleetTotals {
            tenants: 3,
            connections_active: 5,
            connections_inactive: 1,
            connections_failing: 1,
            syncs_failed: 1,
            syncs_stale: 1,
            syncs_running_too_long: 1,
            snapshots_stale: 1,
        }
    );
    assert!(status.generate_time.is_some());

    let (tenants, _) = all_tenant_health(&mut client, 0).await;
    assert_eq!(tenants.len(), 3);
    let find = |id: TenantId| {
        tenants
            .iter()
            .find(|t| t.tenant_id == id.to_string())
            .unwrap_or_else(|| panic!("tenant {id} missing"))
    };

    let a = find(seeded.a);
    assert_eq!(
        (
            a.connections_active,
            a.connections_inactive,
            a.connections_failing
        ),
        (2, 1, 1)
    );
    assert_eq!(a.worst_sync_state(), pb::SyncState::Failing);
    assert!(near(a.worst_sync_age_seconds, 30 * 60), "{a:?}");
    let now = now_s();
    let last = a.last_successful_sync_time.unwrap();
    assert!(near(now - last.seconds, 10 * 60), "{a:?}");

    let b = find(seeded.b);
    assert_eq!(
        (
            b.connections_active,
            b.connections_inactive,
            b.connections_failing
        ),
        (3, 0, 0)
    );
    assert_eq!(b.worst_sync_state(), pb::SyncState::RunningTooLong);
    assert!(near(b.worst_sync_age_seconds, 3 * 3600), "{b:?}");
    assert!(near(
        now - b.last_successful_sync_time.unwrap().seconds,
        2 * 3600
    ));

    let c = find(seeded.c);
    assert_eq!(
        (
            c.connections_active,
            c.connections_inactive,
            c.connections_failing
        ),
        (0, 0, 0)
    );
    assert_eq!(c.worst_sync_state(), pb::SyncState::Unspecified);
    assert_eq!(c.last_successful_sync_time, None);
    assert_eq!(c.snapshot_age_seconds, None);

    assert!(near(a.snapshot_age_seconds.unwrap(), 600), "{a:?}");
    assert!(near(b.snapshot_age_seconds.unwrap(), 60), "{b:?}");
}

#[tokio::test]
async fn thresholds_are_configurable() {
    let db = TestDb::new().await;
    let seeded = seed_fleet(&db).await;
    // Stale after 3 h and running too long after 4 h: B's 2 h-old success is
    // healthy and its 3 h job within time; its never-synced connection is worst.
    let health = start_health_with(&db, |config| {
        config.thresholds.stale_after = Duration::from_secs(3 * 3600);
        config.thresholds.running_too_long = Duration::from_secs(4 * 3600);
    })
    .await;
    let mut client = fleet_client(&health).await;
    let totals = client
        .get_fleet_status(request(pb::GetFleetStatusRequest {}, &fleet_token(), None))
        .await
        .unwrap()
        .into_inner()
        .totals
        .unwrap();
    assert_eq!((totals.syncs_stale, totals.syncs_running_too_long), (0, 0));
    assert_eq!(totals.connections_failing, 1);
    let (tenants, _) = all_tenant_health(&mut client, 0).await;
    let b = tenants
        .iter()
        .find(|t| t.tenant_id == seeded.b.to_string())
        .unwrap();
    assert_eq!(b.worst_sync_state(), pb::SyncState::NeverSynced);
    assert!(near(b.worst_sync_age_seconds, 5 * 3600), "{b:?}");
}

#[tokio::test]
async fn list_tenant_health_pages_through_every_tenant_exactly_once() {
    let db = TestDb::new().await;
    let seeded = seed_tenants(&db, 7).await;
    let health = start_health_with(&db, |_| {}).await;
    let mut client = fleet_client(&health).await;

    let (tenants, pages) = all_tenant_health(&mut client, 3).await;
    assert_eq!(pages, 3, "7 tenants in pages of 3");
    let listed: Vec<String> = tenants.iter().map(|t| t.tenant_id.clone()).collect();
    let mut expected: Vec<String> = seeded.iter().map(|t| t.to_string()).collect();
    expected.sort();
    assert_eq!(listed, expected, "each tenant once, ordered by id");
    assert_eq!(listed.iter().collect::<HashSet<_>>().len(), 7);

    let bad = client
        .list_tenant_health(request(
            pb::ListTenantHealthRequest {
                page_size: 3,
                page_token: "not-a-token".into(),
            },
            &fleet_token(),
            None,
        ))
        .await
        .unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument);
    assert!(bad.message().contains("page_token"), "{}", bad.message());
}

#[tokio::test]
async fn fleet_methods_refuse_tenant_scoped_tokens() {
    let db = TestDb::new().await;
    let tenants = seed_tenants(&db, 2).await;
    let health = start_health_with(&db, |_| {}).await;
    let mut client = fleet_client(&health).await;
    let tenant_token = token(&tenants, Role::Admin);

    let status = client
        .get_fleet_status(request(
            pb::GetFleetStatusRequest {},
            &tenant_token,
            Some(tenants[0]),
        ))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    let list = client
        .list_tenant_health(request(
            pb::ListTenantHealthRequest::default(),
            &tenant_token,
            None,
        ))
        .await
        .unwrap_err();
    assert_eq!(list.code(), Code::PermissionDenied);
    let anonymous = client
        .list_tenant_health(pb::ListTenantHealthRequest::default())
        .await
        .unwrap_err();
    assert_eq!(anonymous.code(), Code::Unauthenticated);
}

#[tokio::test]
async fn fleet_replies_carry_no_names_or_secrets() {
    let db = TestDb::new().await;
    let seeded = seed_fleet(&db).await;
    let health = start_health_with(&db, |_| {}).await;
    let mut client = fleet_client(&health).await;

    let status = client
        .get_fleet_status(request(pb::GetFleetStatusRequest {}, &fleet_token(), None))
        .await
        .unwrap()
        .into_inner();
    let (tenants, _) = all_tenant_health(&mut client, 0).await;
    // The seeded tenant is in the reply, by id only.
    assert!(tenants.iter().any(|t| t.tenant_id == seeded.a.to_string()));
    let mut bytes = status.encode_to_vec();
    for tenant in &tenants {
        bytes.extend(tenant.encode_to_vec());
    }
    for secret in [
        SECRET_NAME,
        SECRET_ERROR,
        "sk_live",
        "Beta",
        "Gamma",
        "a-failing",
    ] {
        assert!(
            !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
            "{secret:?} leaked into a fleet reply"
        );
    }
}

async fn wait_for_services(
    client: &mut FleetServiceClient<tonic::transport::Channel>,
    ready: impl Fn(&[pb::ServiceStatus]) -> bool,
) -> Vec<pb::ServiceStatus> {
    let mut services = Vec::new();
    for _ in 0..50 {
        services = client
            .get_fleet_status(request(pb::GetFleetStatusRequest {}, &fleet_token(), None))
            .await
            .unwrap()
            .into_inner()
            .services;
        if ready(&services) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    services
}

fn service<'a>(services: &'a [pb::ServiceStatus], name: &str) -> &'a pb::ServiceStatus {
    services
        .iter()
        .find(|s| s.name == name)
        .unwrap_or_else(|| panic!("{name} missing from {services:?}"))
}

#[tokio::test]
async fn fleet_status_reports_version_and_health_of_each_service() {
    let db = TestDb::new().await;
    let analytics = start_analytics(&db).await;
    let integrations = start_integrations(&db).await;
    let health = start_health_with(&db, |config| {
        config.analytics_url = Some(analytics.url());
        config.integrations_url = Some(integrations.url());
    })
    .await;
    let mut client = fleet_client(&health).await;
    let services = wait_for_services(&mut client, |s| {
        s.iter().all(|s| s.status() == pb::ServingStatus::Serving)
    })
    .await;
    for name in [
        "adscope-health",
        "adscope-analytics",
        "adscope-integrations",
    ] {
        let s = service(&services, name);
        assert_eq!(s.status(), pb::ServingStatus::Serving, "{s:?}");
        assert_eq!(s.version, env!("CARGO_PKG_VERSION"), "{s:?}");
    }

    // A peer that does not answer is UNKNOWN, quickly, without failing the call.
    let port = closed_port();
    let lonely = start_health_with(&db, |config| {
        config.analytics_url = Some(format!("http://127.0.0.1:{port}"));
        config.peer_timeout = Duration::from_millis(500);
    })
    .await;
    let mut client = fleet_client(&lonely).await;
    let started = std::time::Instant::now();
    let services = wait_for_services(&mut client, |s| {
        service(s, "adscope-health").status() == pb::ServingStatus::Serving
    })
    .await;
    assert!(started.elapsed() < Duration::from_secs(10));
    let gone = service(&services, "adscope-analytics");
    assert_eq!(gone.status(), pb::ServingStatus::Unknown);
    assert_eq!(gone.version, "");
    // Not configured at all: also UNKNOWN.
    assert_eq!(
        service(&services, "adscope-integrations").status(),
        pb::ServingStatus::Unknown
    );
    drop((analytics, integrations));
}

fn fleet_token_for(tenants: &[TenantId]) -> String {
    token_for(&TokenSpec {
        subject: "fleet-operator".into(),
        tenants: tenants.to_vec(),
        roles: vec![Role::Admin],
        scopes: vec![FLEET_READ.into()],
        ttl: Duration::from_secs(600),
        not_before: None,
    })
}

#[tokio::test]
async fn fleet_tokens_grant_nothing_beyond_their_tenants_on_analytics_and_integrations() {
    use adscope_proto::analytics::v1 as analytics_pb;
    use adscope_proto::analytics::v1::campaign_service_client::CampaignServiceClient;
    use adscope_proto::integrations::v1 as integrations_pb;
    use adscope_proto::integrations::v1::connection_service_client::ConnectionServiceClient;

    let db = TestDb::new().await;
    let tenants = seed_tenants(&db, 2).await;
    let (a, b) = (tenants[0], tenants[1]);
    let analytics: Running = start_analytics(&db).await;
    let integrations: Running = start_integrations(&db).await;
    let mut campaigns = CampaignServiceClient::new(analytics.channel().await);
    let mut connections = ConnectionServiceClient::new(integrations.channel().await);

    for (tenant, external_id) in [(a, "a-campaign"), (b, "b-campaign")] {
        create_campaign(&analytics, tenant, external_id, external_id).await;
    }

    // A pure fleet token lists no tenant: without x-tenant-id it is not
    // enough for a tenant-scoped method, with one it grants nothing.
    let pure = fleet_token();
    let list_campaigns = analytics_pb::ListCampaignsRequest::default;
    let list_connections = integrations_pb::ListConnectionsRequest::default;
    assert_eq!(
        campaigns
            .list_campaigns(request(list_campaigns(), &pure, None))
            .await
            .unwrap_err()
            .code(),
        Code::Unauthenticated
    );
    assert_eq!(
        connections
            .list_connections(request(list_connections(), &pure, None))
            .await
            .unwrap_err()
            .code(),
        Code::Unauthenticated
    );
    for tenant in [a, b] {
        assert_eq!(
            campaigns
                .list_campaigns(request(list_campaigns(), &pure, Some(tenant)))
                .await
                .unwrap_err()
                .code(),
            Code::PermissionDenied
        );
        assert_eq!(
            connections
                .list_connections(request(list_connections(), &pure, Some(tenant)))
                .await
                .unwrap_err()
                .code(),
            Code::PermissionDenied
        );
    }

    // A fleet token that also lists tenant A acts for A and only for A.
    let for_a = fleet_token_for(&[a]);
    assert_eq!(
        campaigns
            .list_campaigns(request(list_campaigns(), &for_a, Some(b)))
            .await
            .unwrap_err()
            .code(),
        Code::PermissionDenied
    );
    assert_eq!(
        connections
            .list_connections(request(list_connections(), &for_a, Some(b)))
            .await
            .unwrap_err()
            .code(),
        Code::PermissionDenied
    );
    let seen: Vec<String> = campaigns
        .list_campaigns(request(list_campaigns(), &for_a, Some(a)))
        .await
        .unwrap()
        .into_inner()
        .campaigns
        .into_iter()
        .map(|c| c.external_id)
        .collect();
    assert_eq!(seen, vec!["a-campaign".to_owned()], "A's own, and not B's");
    // Integrations admits it for A and answers with A's connections: none
    // were made, so the listing is empty.
    let listed = connections
        .list_connections(request(list_connections(), &for_a, Some(a)))
        .await
        .unwrap()
        .into_inner();
    assert!(listed.connections.is_empty(), "{listed:?}");
    assert!(listed.next_page_token.is_empty());
}

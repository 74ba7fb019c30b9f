//! `POST /webhooks/airbyte` on the integrations port: authentication by
//! shared secret or body signature, the tenant taken from the connection
//! (never a header), idempotent replays, refusals, and analytics being down.

#![allow(clippy::unwrap_used)] // tests: failing loudly is the point

mod integrations_fake;

use std::sync::Arc;

use adscope_e2e::{
    Running, closed_port, create_connection, request, seed_tenants, start_analytics,
    start_analytics_with, start_integrations_with,
};
use adscope_integrations::webhook::{PATH, SECRET_HEADER, SIGNATURE_HEADER, signature};
use adscope_proto::integrations::v1 as pb;
use adscope_proto::integrations::v1::connection_service_client::ConnectionServiceClient;
use adscope_tenancy::{Role, TenantId};
use adscope_testing::{TestDb, token};
use integrations_fake::post;
use serde_json::json;
use tonic::transport::Channel;
use uuid::Uuid;

const SECRET: &str = "webhook-secret-for-tests";

type Client = ConnectionServiceClient<Channel>;

struct Setup {
    _db: TestDb,
    server: Running,
    client: Client,
    a: TenantId,
    b: TenantId,
    /// A's connection: (our id, Airbyte's id).
    conn_a: (String, Uuid),
}

async fn setup(secret: Option<&str>, analytics_url: Option<String>) -> Setup {
    setup_on(TestDb::new().await, secret, analytics_url).await
}

async fn setup_on(db: TestDb, secret: Option<&str>, analytics_url: Option<String>) -> Setup {
    setup_signed(db, secret, analytics_url, adscope_testing::minter()).await
}

/// As [`setup_on`], with `service_minter` signing integrations' calls to
/// analytics.
async fn setup_signed(
    db: TestDb,
    secret: Option<&str>,
    analytics_url: Option<String>,
    service_minter: adscope_tenancy::Minter,
) -> Setup {
    let tenants = seed_tenants(&db, 2).await;
    let secret = secret.map(str::to_owned);
    let server = start_integrations_with(&db, move |cfg| {
        cfg.webhook_secret = secret;
        cfg.analytics_url = analytics_url;
        cfg.service_minter = Some(Arc::new(service_minter));
    })
    .await;
    let client = ConnectionServiceClient::new(server.channel().await);
    let (a, b) = (tenants[0], tenants[1]);
    let airbyte = Uuid::new_v4();
    let created = create_connection(&server, a, meta("A meta", airbyte)).await;
    // B has a connection of its own, so "B sees nothing" is not vacuous.
    create_connection(&server, b, meta("B meta", Uuid::new_v4())).await;
    Setup {
        _db: db,
        server,
        client,
        a,
        b,
        conn_a: (created.id, airbyte),
    }
}

/// An active `meta` connection to Airbyte's `airbyte`.
fn meta(name: &str, airbyte: Uuid) -> pb::Connection {
    pb::Connection {
        name: name.into(),
        provider: "meta".into(),
        airbyte_connection_id: airbyte.to_string(),
        active: true,
        ..Default::default()
    }
}

fn payload(connection: Uuid, job: i64, status: &str) -> Vec<u8> {
    json!({
        "connectionId": connection,
        "job": {"id": job, "status": status, "createdAt": 1_760_000_000_000_i64,
                "updatedAt": 1_760_000_060_000_i64},
        "attempts": [{"attempt": {"id": 0, "status": status, "createdAt": 1_760_000_000,
                                  "endedAt": 1_760_000_060, "recordsSynced": 7,
                                  "bytesSynced": 700}}]
    })
    .to_string()
    .into_bytes()
}

impl Setup {
    async fn jobs(&mut self, tenant: TenantId) -> Vec<pb::Job> {
        self.client
            .list_jobs(request(
                pb::ListJobsRequest::default(),
                &token(&[tenant], Role::Viewer),
                Some(tenant),
            ))
            .await
            .unwrap()
            .into_inner()
            .jobs
    }

    async fn connection_a(&mut self) -> pb::Connection {
        let a = self.a;
        self.client
            .get_connection(request(
                pb::GetConnectionRequest {
                    id: self.conn_a.0.clone(),
                },
                &token(&[a], Role::Viewer),
                Some(a),
            ))
            .await
            .unwrap()
            .into_inner()
            .connection
            .unwrap()
    }
}

#[tokio::test]
async fn webhook_accepts_secret_or_signature_and_writes_to_the_connections_tenant_only() {
    let mut s = setup(Some(SECRET), None).await;
    let airbyte = s.conn_a.1;
    let b_header = s.b.to_string();

    // Shared secret, with a header naming tenant B: ignored.
    let (code, body) = post(
        s.server.addr,
        PATH,
        &[(SECRET_HEADER, SECRET), ("x-tenant-id", &b_header)],
        &payload(airbyte, 501, "running"),
    )
    .await;
    assert_eq!(code, 200, "{body}");
    // HMAC signature of the raw body.
    let signed = payload(airbyte, 502, "succeeded");
    let sig = signature(SECRET.as_bytes(), &signed);
    let (code, body) = post(s.server.addr, PATH, &[(SIGNATURE_HEADER, &sig)], &signed).await;
    assert_eq!(code, 200, "{body}");

    let jobs_a = s.jobs(s.a).await;
    let ids: Vec<i64> = jobs_a.iter().map(|j| j.airbyte_job_id).collect();
    assert_eq!(ids.len(), 2);
    assert!(ids.contains(&501) && ids.contains(&502));
    let done = jobs_a.iter().find(|j| j.airbyte_job_id == 502).unwrap();
    assert_eq!(done.status(), pb::JobStatus::Succeeded);
    assert_eq!(done.records_synced, 7);
    assert_eq!(done.duration_seconds, 60);
    assert!(s.jobs(s.b).await.is_empty());
    let conn = s.connection_a().await;
    assert_eq!(conn.last_job_id, 502);
    assert_eq!(conn.last_job_status(), pb::JobStatus::Succeeded);

    // Missing credentials: 401; wrong ones: 403; nothing written either way.
    let third = payload(airbyte, 503, "running");
    let (code, _) = post(s.server.addr, PATH, &[], &third).await;
    assert_eq!(code, 401);
    let (code, _) = post(
        s.server.addr,
        PATH,
        &[(SECRET_HEADER, "not-the-secret")],
        &third,
    )
    .await;
    assert_eq!(code, 403);
    let forged = signature(b"another-secret", &third);
    let (code, _) = post(s.server.addr, PATH, &[(SIGNATURE_HEADER, &forged)], &third).await;
    assert_eq!(code, 403);
    // A signature of another body does not cover this one.
    let (code, _) = post(s.server.addr, PATH, &[(SIGNATURE_HEADER, &sig)], &third).await;
    assert_eq!(code, 403);
    assert_eq!(s.jobs(s.a).await.len(), 2);
}

#[tokio::test]
async fn webhook_replay_changes_nothing() {
    let mut s = setup(Some(SECRET), None).await;
    let body = payload(s.conn_a.1, 777, "succeeded");
    let (code, first) = post(s.server.addr, PATH, &[(SECRET_HEADER, SECRET)], &body).await;
    assert_eq!(code, 200);
    assert!(first.contains("\"changed\":1"), "{first}");
    let jobs = s.jobs(s.a).await;
    let conn = s.connection_a().await;
    assert_eq!(jobs.len(), 1);

    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let (code, again) = post(s.server.addr, PATH, &[(SECRET_HEADER, SECRET)], &body).await;
    assert_eq!(code, 200);
    assert!(again.contains("\"changed\":0"), "{again}");
    let jobs_after = s.jobs(s.a).await;
    assert_eq!(jobs_after.len(), 1);
    assert_eq!(jobs_after[0].update_time, jobs[0].update_time);
    assert_eq!(s.connection_a().await.update_time, conn.update_time);

    // A late "running" report of the same job does not undo its end.
    let late = payload(s.conn_a.1, 777, "running");
    let (code, _) = post(s.server.addr, PATH, &[(SECRET_HEADER, SECRET)], &late).await;
    assert_eq!(code, 200);
    let jobs_late = s.jobs(s.a).await;
    assert_eq!(jobs_late[0].status(), pb::JobStatus::Succeeded);
    assert_eq!(jobs_late[0].update_time, jobs[0].update_time);
}

#[tokio::test]
async fn webhook_refuses_malformed_unknown_and_oversize_bodies() {
    let mut s = setup(Some(SECRET), None).await;
    let auth = [(SECRET_HEADER, SECRET)];
    let (code, _) = post(s.server.addr, PATH, &auth, b"{not json").await;
    assert_eq!(code, 400);
    let no_connection = json!({"job": {"id": 1, "status": "running"}}).to_string();
    let (code, _) = post(s.server.addr, PATH, &auth, no_connection.as_bytes()).await;
    assert_eq!(code, 400);
    let no_job = json!({"connectionId": s.conn_a.1}).to_string();
    let (code, _) = post(s.server.addr, PATH, &auth, no_job.as_bytes()).await;
    assert_eq!(code, 400);
    let (code, body) = post(
        s.server.addr,
        PATH,
        &auth,
        &payload(Uuid::new_v4(), 9, "running"),
    )
    .await;
    assert_eq!(code, 404, "{body}");
    let mut big = payload(s.conn_a.1, 10, "running");
    big.extend(std::iter::repeat_n(b' ', 300 * 1024));
    let (code, _) = post(s.server.addr, PATH, &auth, &big).await;
    assert_eq!(code, 413);
    assert!(s.jobs(s.a).await.is_empty());
}

#[tokio::test]
async fn webhook_without_a_configured_secret_is_503() {
    let mut s = setup(None, None).await;
    let (code, _) = post(
        s.server.addr,
        PATH,
        &[(SECRET_HEADER, SECRET)],
        &payload(s.conn_a.1, 1, "running"),
    )
    .await;
    assert_eq!(code, 503);
    assert!(s.jobs(s.a).await.is_empty());
}

#[tokio::test]
async fn webhook_keeps_its_write_when_analytics_is_down() {
    // Nothing listens on this port.
    let url = format!("http://127.0.0.1:{}", closed_port());
    let mut s = setup(Some(SECRET), Some(url)).await;
    let (code, body) = post(
        s.server.addr,
        PATH,
        &[(SECRET_HEADER, SECRET)],
        &payload(s.conn_a.1, 42, "succeeded"),
    )
    .await;
    assert_eq!(code, 200, "{body}");
    let jobs = s.jobs(s.a).await;
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0].airbyte_job_id, 42);
    assert_eq!(jobs[0].status(), pb::JobStatus::Succeeded);
}

#[tokio::test]
async fn webhook_applies_to_every_tenant_that_registered_the_airbyte_connection() {
    let mut s = setup(Some(SECRET), None).await;
    let b = s.b;
    // B registers the same Airbyte connection as A.
    let b_conn = create_connection(&s.server, b, meta("B copy", s.conn_a.1)).await;
    let (code, body) = post(
        s.server.addr,
        PATH,
        &[(SECRET_HEADER, SECRET)],
        &payload(s.conn_a.1, 900, "succeeded"),
    )
    .await;
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("\"applied\":2"), "{body}");
    let jobs_a = s.jobs(s.a).await;
    let jobs_b = s.jobs(b).await;
    assert_eq!(jobs_a.len(), 1);
    assert_eq!(jobs_b.len(), 1);
    assert_eq!(jobs_a[0].connection_id, s.conn_a.0);
    assert_eq!(jobs_b[0].connection_id, b_conn.id);
    assert_ne!(jobs_a[0].id, jobs_b[0].id);
}

#[tokio::test]
async fn a_succeeded_sync_refreshes_the_tenants_snapshot_in_analytics() {
    use adscope_proto::analytics::v1 as apb;
    use adscope_proto::analytics::v1::snapshot_service_client::SnapshotServiceClient;

    let db = TestDb::new().await;
    let analytics = start_analytics(&db).await;
    let mut s = setup_on(db, Some(SECRET), Some(analytics.url())).await;
    let (code, body) = post(
        s.server.addr,
        PATH,
        &[(SECRET_HEADER, SECRET)],
        &payload(s.conn_a.1, 5, "succeeded"),
    )
    .await;
    assert_eq!(code, 200, "{body}");

    // The webhook refreshed A's "meta" snapshot, so A's next read is a
    // cache hit; B's was never refreshed, so B's read computes it.
    let mut snapshots = SnapshotServiceClient::new(analytics.channel().await);
    let get = |tenant: TenantId| {
        request(
            apb::GetSnapshotRequest {
                source: "meta".into(),
            },
            &token(&[tenant], Role::Viewer),
            Some(tenant),
        )
    };
    let a = snapshots.get_snapshot(get(s.a)).await.unwrap().into_inner();
    assert_eq!(a.cache_status(), apb::SnapshotCacheStatus::Hit);
    let b = snapshots.get_snapshot(get(s.b)).await.unwrap().into_inner();
    assert_eq!(b.cache_status(), apb::SnapshotCacheStatus::Miss);
    assert_eq!(s.jobs(s.a).await.len(), 1);
}

#[tokio::test]
async fn with_public_keys_only_the_service_signing_key_signs_the_refresh() {
    use adscope_proto::analytics::v1 as apb;
    use adscope_proto::analytics::v1::snapshot_service_client::SnapshotServiceClient;
    use adscope_tenancy::TokenSpec;

    // Analytics as deployed in production: public keys, no shared secret.
    let db = TestDb::new().await;
    let analytics = start_analytics_with(&db, |config| {
        config.verifier = Arc::new(adscope_testing::key_pair_verifier());
    })
    .await;
    let mut s = setup_signed(
        db,
        Some(SECRET),
        Some(analytics.url()),
        adscope_testing::key_pair_minter(),
    )
    .await;
    let (code, body) = post(
        s.server.addr,
        PATH,
        &[(SECRET_HEADER, SECRET)],
        &payload(s.conn_a.1, 9, "succeeded"),
    )
    .await;
    assert_eq!(code, 200, "{body}");

    let signed = |tenant: TenantId| {
        adscope_testing::key_pair_minter()
            .mint(&TokenSpec {
                subject: "frontend".into(),
                tenants: vec![tenant],
                roles: vec![Role::Viewer],
                scopes: Vec::new(),
                ttl: std::time::Duration::from_secs(300),
                not_before: None,
            })
            .unwrap()
    };
    let get = |tenant: TenantId, token: &str| {
        request(
            apb::GetSnapshotRequest {
                source: "meta".into(),
            },
            token,
            Some(tenant),
        )
    };
    let mut snapshots = SnapshotServiceClient::new(analytics.channel().await);
    // Analytics takes no shared-secret token, so the refresh it served
    // came with a key-pair token: A's snapshot is cached, B's is not.
    let hs256 = snapshots
        .get_snapshot(get(s.a, &token(&[s.a], Role::Viewer)))
        .await
        .unwrap_err();
    assert_eq!(hs256.code(), tonic::Code::Unauthenticated);
    let a = snapshots
        .get_snapshot(get(s.a, &signed(s.a)))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(a.cache_status(), apb::SnapshotCacheStatus::Hit);
    let b = snapshots
        .get_snapshot(get(s.b, &signed(s.b)))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(b.cache_status(), apb::SnapshotCacheStatus::Miss);
    assert_eq!(s.jobs(s.a).await.len(), 1);
}

//! The scheduler's other jobs against a real database: data-key rotation
//! when a key is old, one reminder per expiring credential, snapshot
//! refresh through a real analytics server, and every row and span a pass
//! writes carrying the tenant it was written for.
//!
//! A test binary of its own, because the span test installs the
//! process-wide tracing subscriber.

#![allow(clippy::unwrap_used)] // tests: failing loudly is the point

mod integrations_fake;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use adscope_db::{Database, DbConfig, ServiceRole};
use adscope_e2e::{
    Running, admin, create_connection, key_file, now_s, request, seed_tenants, start_analytics,
    start_integrations_with,
};
use adscope_integrations::config::{AirbyteAuth, AirbyteConfig};
use adscope_integrations::credentials::reveal_for_use;
use adscope_integrations::kms::LocalKeyFile;
use adscope_integrations::scheduler::Scheduler;
use adscope_proto::analytics::v1 as apb;
use adscope_proto::analytics::v1::snapshot_service_client::SnapshotServiceClient;
use adscope_proto::integrations::v1 as pb;
use adscope_proto::integrations::v1::credential_service_client::CredentialServiceClient;
use adscope_telemetry::testing::{attribute, test_exporter};
use adscope_tenancy::{Principal, Role, TenantContext, TenantId};
use adscope_testing::{TestDb, token};
use diesel_async::{AsyncPgConnection, SimpleAsyncConnection};
use integrations_fake::FakeAirbyte;
use opentelemetry_sdk::trace::SpanData;
use uuid::Uuid;

const DAY: i64 = 24 * 3600;

fn pool(db: &TestDb) -> Database {
    Database::connect(&DbConfig::new(
        db.url(ServiceRole::Integrations),
        ServiceRole::Integrations,
    ))
    .unwrap()
}

/// A scheduler built as the service builds it, from a config `adjust` sets up.
fn scheduler(db: &TestDb, adjust: impl FnOnce(&mut adscope_integrations::Config)) -> Scheduler {
    let mut config =
        adscope_integrations::Config::new(adscope_e2e::config(db, ServiceRole::Integrations));
    config.scheduler.retry_base = Duration::from_millis(5);
    config.scheduler.retry_cap = Duration::from_millis(20);
    adjust(&mut config);
    Scheduler::new(&config, pool(db)).unwrap()
}

fn airbyte(fake: &FakeAirbyte) -> AirbyteConfig {
    AirbyteConfig {
        base_url: fake.url(),
        auth: AirbyteAuth::None,
        timeout: Duration::from_secs(5),
    }
}

async fn sql(conn: &mut AsyncPgConnection, statements: &str) {
    conn.batch_execute(statements)
        .await
        .unwrap_or_else(|error| panic!("{statements}: {error}"));
}

/// Fails the test with `message` unless `condition` holds, evaluated on
/// `conn` (the superuser's: row-level security does not apply, and the
/// session's temporary tables are visible).
async fn assert_sql(conn: &mut AsyncPgConnection, condition: &str, message: &str) {
    conn.batch_execute(&format!(
        "DO $$ BEGIN IF NOT ({condition}) THEN RAISE EXCEPTION '{message}'; END IF; END $$"
    ))
    .await
    .unwrap_or_else(|error| panic!("{message}: {error}"));
}

/// Stores a credential through the CredentialService; returns its id.
async fn put_credential(
    server: &Running,
    tenant: TenantId,
    account: &str,
    expires_at_s: i64,
) -> Uuid {
    let mut client = CredentialServiceClient::new(server.channel().await);
    let stored = client
        .put_credential(request(
            pb::PutCredentialRequest {
                provider: pb::Provider::Meta.into(),
                account_id: account.into(),
                access_token: format!("access-{account}"),
                refresh_token: format!("refresh-{account}"),
                expire_time: Some(prost_types::Timestamp {
                    seconds: expires_at_s,
                    nanos: 0,
                }),
                scopes: vec!["ads_read".into()],
            },
            &token(&[tenant], Role::Analyst),
            Some(tenant),
        ))
        .await
        .unwrap()
        .into_inner()
        .credential
        .unwrap();
    Uuid::parse_str(&stored.id).unwrap()
}

/// Creates an active `meta` connection; returns its Airbyte id.
async fn connection(server: &Running, tenant: TenantId, interval_minutes: Option<i32>) -> String {
    let airbyte = Uuid::new_v4().to_string();
    create_connection(
        server,
        tenant,
        pb::Connection {
            name: format!("meta {airbyte}"),
            provider: "meta".into(),
            airbyte_connection_id: airbyte.clone(),
            schedule: interval_minutes.map(|minutes| pb::Schedule {
                kind: Some(pb::schedule::Kind::Interval(pb::schedule::Interval {
                    minutes,
                })),
            }),
            active: true,
            ..Default::default()
        },
    )
    .await;
    airbyte
}

fn sync_ctx(tenant: TenantId) -> TenantContext {
    TenantContext::new(
        tenant,
        Arc::new(Principal {
            subject: "sync-job".into(),
            tenants: vec![tenant],
            roles: vec![Role::Admin],
            scopes: Vec::new(),
        }),
        None,
    )
}

/// Opens a credential as sync code does; returns its key version and tokens.
async fn reveal(db: &TestDb, key: &Path, tenant: TenantId, id: Uuid) -> (i32, String, String) {
    let kms = LocalKeyFile::open(key).unwrap();
    let revealed = reveal_for_use(&pool(db), &kms, &sync_ctx(tenant), id)
        .await
        .unwrap_or_else(|error| panic!("credential {id} of {tenant} does not open: {error}"));
    (
        revealed.meta.key_version,
        revealed.access_token.as_str().to_owned(),
        revealed.refresh_token.as_str().to_owned(),
    )
}

#[tokio::test]
async fn a_pass_rotates_only_keys_older_than_the_period_and_every_credential_still_opens() {
    let db = TestDb::new().await;
    let tenants = seed_tenants(&db, 3).await;
    let (old, fresh, keyless) = (tenants[0], tenants[1], tenants[2]);
    let key = key_file();
    let path = key.clone();
    let server = start_integrations_with(&db, |c| c.kms_key_file = Some(path)).await;
    let far = now_s() + 365 * DAY;
    let mut old_ids = Vec::new();
    for account in ["a1", "a2", "a3"] {
        old_ids.push((account, put_credential(&server, old, account, far).await));
    }
    let fresh_id = put_credential(&server, fresh, "b1", far).await;

    let mut conn = admin(&db).await;
    sql(
        &mut conn,
        &format!(
            "UPDATE data_keys SET created_at = now() - interval '8 days' WHERE tenant_id = '{old}';
             CREATE TEMP TABLE keys_before AS SELECT * FROM data_keys;"
        ),
    )
    .await;

    let path = key.clone();
    let scheduler = scheduler(&db, |c| c.kms_key_file = Some(path));
    let report = scheduler.run_once().await;
    assert!(report.failures.is_empty(), "{report:?}");
    assert_eq!(report.tenants, 3);
    assert_eq!(report.keys_rotated, 1, "{report:?}");

    // Every credential of the old key's tenant moved to the new key and opens.
    for (account, id) in &old_ids {
        let (version, access, refresh) = reveal(&db, &key, old, *id).await;
        assert_eq!(version, 2, "{account}");
        assert_eq!(access, format!("access-{account}"));
        assert_eq!(refresh, format!("refresh-{account}"));
    }
    assert_sql(
        &mut conn,
        &format!(
            "(SELECT count(*) FROM data_keys WHERE tenant_id = '{old}') = 2
             AND EXISTS (SELECT 1 FROM data_keys WHERE tenant_id = '{old}' AND version = 1
                         AND status = 'retired')
             AND EXISTS (SELECT 1 FROM data_keys WHERE tenant_id = '{old}' AND version = 2
                         AND status = 'active' AND created_at > now() - interval '1 minute')
             AND NOT EXISTS (SELECT 1 FROM credentials WHERE tenant_id = '{old}'
                             AND key_version <> 2)"
        ),
        "the old key was not replaced by an active version 2 sealing every credential",
    )
    .await;

    // The tenant whose key is fresh: same single key, same ciphertext.
    let (version, access, refresh) = reveal(&db, &key, fresh, fresh_id).await;
    assert_eq!(version, 1);
    assert_eq!(
        (access.as_str(), refresh.as_str()),
        ("access-b1", "refresh-b1")
    );
    assert_sql(
        &mut conn,
        &format!(
            "(SELECT count(*) FROM data_keys WHERE tenant_id = '{fresh}') = 1
             AND EXISTS (SELECT 1 FROM data_keys k JOIN keys_before b USING (tenant_id, version)
                         WHERE k.tenant_id = '{fresh}' AND k.status = 'active'
                         AND k.wrapped_key = b.wrapped_key AND k.created_at = b.created_at)"
        ),
        "the fresh key was touched",
    )
    .await;
    // A tenant with nothing sealed gets no key.
    assert_sql(
        &mut conn,
        &format!("NOT EXISTS (SELECT 1 FROM data_keys WHERE tenant_id = '{keyless}')"),
        "a key was made for a tenant without credentials",
    )
    .await;

    // The new key is fresh: the next pass rotates nothing.
    let again = scheduler.run_once().await;
    assert_eq!(again.keys_rotated, 0, "{again:?}");
    assert!(again.failures.is_empty(), "{again:?}");
}

#[tokio::test]
async fn a_pass_records_one_reminder_per_expiring_credential_and_a_second_pass_none() {
    let db = TestDb::new().await;
    let tenants = seed_tenants(&db, 2).await;
    let (a, b) = (tenants[0], tenants[1]);
    let key = key_file();
    let server = start_integrations_with(&db, |c| c.kms_key_file = Some(key)).await;
    let now = now_s();
    let soon_1 = put_credential(&server, a, "soon-1", now + 2 * DAY).await;
    let soon_2 = put_credential(&server, a, "soon-2", now + 3 * DAY).await;
    let later = put_credential(&server, a, "later", now + 30 * DAY).await;
    put_credential(&server, b, "b-later", now + 30 * DAY).await;
    put_credential(&server, b, "b-far", now + 365 * DAY).await;

    let scheduler = scheduler(&db, |_| {});
    let report = scheduler.run_once().await;
    assert!(report.failures.is_empty(), "{report:?}");
    assert_eq!(report.reminders, 2, "{report:?}");

    let mut conn = admin(&db).await;
    let one_each = format!(
        "(SELECT count(*) FROM credential_reminders) = 2
         AND (SELECT count(*) FROM credential_reminders r JOIN credentials c
                ON c.tenant_id = r.tenant_id AND c.id = r.credential_id
                AND c.expires_at = r.expires_at
              WHERE r.tenant_id = '{a}' AND r.credential_id IN ('{soon_1}', '{soon_2}')) = 2
         AND NOT EXISTS (SELECT 1 FROM credential_reminders WHERE credential_id = '{later}')
         AND NOT EXISTS (SELECT 1 FROM credential_reminders WHERE tenant_id = '{b}')"
    );
    assert_sql(
        &mut conn,
        &one_each,
        "not exactly one reminder for each of the expiring credentials of A",
    )
    .await;

    let again = scheduler.run_once().await;
    assert!(again.failures.is_empty(), "{again:?}");
    assert_eq!(again.reminders, 0, "{again:?}");
    assert_sql(
        &mut conn,
        &one_each,
        "the second pass changed the reminders",
    )
    .await;
}

#[tokio::test]
async fn a_reminder_goes_with_its_credential_and_never_names_another_tenants() {
    let db = TestDb::new().await;
    let tenants = seed_tenants(&db, 2).await;
    let (a, b) = (tenants[0], tenants[1]);
    let key = key_file();
    let server = start_integrations_with(&db, |c| c.kms_key_file = Some(key)).await;
    let now = now_s();
    let gone = put_credential(&server, a, "gone", now + 2 * DAY).await;
    let kept = put_credential(&server, a, "kept", now + 2 * DAY).await;
    let report = scheduler(&db, |_| {}).run_once().await;
    assert_eq!(report.reminders, 2, "{report:?}");

    let mut client = CredentialServiceClient::new(server.channel().await);
    client
        .delete_credential(request(
            pb::DeleteCredentialRequest {
                id: gone.to_string(),
            },
            &token(&[a], Role::Analyst),
            Some(a),
        ))
        .await
        .unwrap();
    let mut conn = admin(&db).await;
    assert_sql(
        &mut conn,
        &format!(
            "NOT EXISTS (SELECT 1 FROM credential_reminders WHERE credential_id = '{gone}')
             AND EXISTS (SELECT 1 FROM credential_reminders WHERE credential_id = '{kept}')"
        ),
        "deleting a credential must delete its reminders, and only its",
    )
    .await;

    // Even the superuser cannot file a reminder under B for A's credential,
    // nor one for a credential that does not exist.
    for (tenant, credential) in [(b, kept), (a, Uuid::new_v4())] {
        let refused = conn
            .batch_execute(&format!(
                "INSERT INTO credential_reminders (tenant_id, credential_id, expires_at)
                 VALUES ('{tenant}', '{credential}', now())"
            ))
            .await
            .unwrap_err();
        assert!(
            refused
                .to_string()
                .contains("credential_reminders_credential_fkey"),
            "{refused}"
        );
    }
}

async fn get_snapshot(analytics: &Running, tenant: TenantId) -> apb::GetSnapshotResponse {
    SnapshotServiceClient::new(analytics.channel().await)
        .get_snapshot(request(
            apb::GetSnapshotRequest {
                source: "meta".into(),
            },
            &token(&[tenant], Role::Viewer),
            Some(tenant),
        ))
        .await
        .unwrap()
        .into_inner()
}

#[tokio::test]
async fn a_pass_refreshes_a_stale_snapshot_through_analytics_and_leaves_a_fresh_one() {
    let db = TestDb::new().await;
    let tenants = seed_tenants(&db, 2).await;
    let (stale, fresh) = (tenants[0], tenants[1]);
    let analytics = start_analytics(&db).await;
    let integrations = start_integrations_with(&db, |_| {}).await;
    // The scheduler refreshes the snapshot of each provider with an active
    // connection; manual ones, so no sync is due.
    for tenant in [stale, fresh] {
        connection(&integrations, tenant, None).await;
        get_snapshot(&analytics, tenant).await;
    }
    let mut conn = admin(&db).await;
    sql(
        &mut conn,
        &format!(
            "UPDATE snapshots SET generated_at = now() - interval '1 hour'
               WHERE tenant_id = '{stale}' AND source = 'meta';
             CREATE TEMP TABLE snapshots_before AS SELECT tenant_id, source, generated_at
               FROM snapshots;"
        ),
    )
    .await;
    assert_sql(
        &mut conn,
        "(SELECT count(*) FROM snapshots_before WHERE source = 'meta') = 2",
        "both tenants should have a meta snapshot",
    )
    .await;

    let url = analytics.url();
    let scheduler = scheduler(&db, |c| {
        c.analytics_url = Some(url);
        c.service_minter = Some(Arc::new(adscope_testing::minter()));
    });
    let report = scheduler.run_once().await;
    assert!(report.failures.is_empty(), "{report:?}");
    assert_eq!(report.snapshots_refreshed, 1, "{report:?}");

    assert_sql(
        &mut conn,
        &format!(
            "EXISTS (SELECT 1 FROM snapshots s JOIN snapshots_before b USING (tenant_id, source)
                     WHERE s.tenant_id = '{stale}' AND s.source = 'meta'
                     AND s.generated_at > b.generated_at
                     AND s.generated_at > now() - interval '1 minute')"
        ),
        "the stale snapshot was not regenerated",
    )
    .await;
    assert_sql(
        &mut conn,
        &format!(
            "EXISTS (SELECT 1 FROM snapshots s JOIN snapshots_before b USING (tenant_id, source)
                     WHERE s.tenant_id = '{fresh}' AND s.source = 'meta'
                     AND s.generated_at = b.generated_at)
             AND (SELECT count(*) FROM snapshots) = (SELECT count(*) FROM snapshots_before)"
        ),
        "the fresh snapshot was regenerated or a snapshot was added",
    )
    .await;
    // Analytics now serves the refreshed one from cache.
    let served = get_snapshot(&analytics, stale).await;
    assert_eq!(served.cache_status(), apb::SnapshotCacheStatus::Hit);
}

/// Spans end (and are exported) a moment after the work they cover.
async fn spans_of_tenant_pass(tenant: TenantId) -> Vec<SpanData> {
    let id = tenant.to_string();
    for _ in 0..100 {
        let spans = test_exporter().spans();
        let roots: Vec<&SpanData> = spans
            .iter()
            .filter(|s| {
                s.name == "scheduler.tenant" && attribute(s, "tenant.id").as_deref() == Some(&id)
            })
            .collect();
        assert!(roots.len() <= 1, "{tenant} visited more than once");
        if let Some(root) = roots.first() {
            let trace = root.span_context.trace_id();
            let in_trace = test_exporter().spans_for_trace(trace);
            // The analytics server's span ends after the client's reply.
            if in_trace
                .iter()
                .any(|s| s.span_kind == opentelemetry::trace::SpanKind::Server)
            {
                return in_trace;
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("no complete scheduler trace for {tenant}");
}

#[tokio::test]
async fn every_row_and_span_a_pass_writes_carries_its_own_tenant() {
    test_exporter();
    let db = TestDb::new().await;
    let tenants = seed_tenants(&db, 2).await;
    let (a, b) = (tenants[0], tenants[1]);
    let fake = FakeAirbyte::start().await;
    fake.set_created(now_s());
    fake.set_get_status("succeeded");
    let analytics = start_analytics(&db).await;
    let key = key_file();
    let (path, cfg_airbyte) = (key.clone(), airbyte(&fake));
    let integrations = start_integrations_with(&db, |c| {
        c.kms_key_file = Some(path);
        c.airbyte = Some(cfg_airbyte);
    })
    .await;
    // Each tenant has work for every job: a due sync, an expiring
    // credential under an old key, and a snapshot to make.
    let mut synced = Vec::new();
    for tenant in [a, b] {
        synced.push(connection(&integrations, tenant, Some(60)).await);
        put_credential(&integrations, tenant, "expiring", now_s() + DAY).await;
    }
    let mut conn = admin(&db).await;
    sql(
        &mut conn,
        "UPDATE data_keys SET created_at = now() - interval '8 days'",
    )
    .await;

    let (path, cfg_airbyte, url) = (key.clone(), airbyte(&fake), analytics.url());
    let scheduler = scheduler(&db, |c| {
        c.kms_key_file = Some(path);
        c.airbyte = Some(cfg_airbyte);
        c.analytics_url = Some(url);
        c.service_minter = Some(Arc::new(adscope_testing::minter()));
    });
    let report = scheduler.run_once().await;
    assert!(report.failures.is_empty(), "{report:?}");
    assert_eq!(report.syncs_triggered, 2, "{report:?}");
    assert_eq!(report.reminders, 2, "{report:?}");
    assert_eq!(report.keys_rotated, 2, "{report:?}");
    assert_eq!(report.snapshots_refreshed, 2, "{report:?}");
    for airbyte in &synced {
        assert_eq!(fake.syncs_of(airbyte), 1);
    }

    for tenant in [a, b] {
        // Rows written for the tenant: present, and tied (by id alone, not
        // by tenant) to that tenant's connection or credential.
        assert_sql(
            &mut conn,
            &format!(
                "(SELECT count(*) FROM sync_jobs j JOIN connections c ON c.id = j.connection_id
                  WHERE j.tenant_id = '{tenant}' AND c.tenant_id = '{tenant}') = 1
                 AND (SELECT count(*) FROM credential_reminders r
                      JOIN credentials c ON c.id = r.credential_id
                      WHERE r.tenant_id = '{tenant}' AND c.tenant_id = '{tenant}') = 1
                 AND (SELECT count(DISTINCT job) FROM job_leases
                      WHERE tenant_id = '{tenant}' AND last_finished_at IS NOT NULL) = 5
                 AND (SELECT count(*) FROM snapshots WHERE tenant_id = '{tenant}') = 1"
            ),
            "the tenant is missing rows of its own jobs",
        )
        .await;
    }
    assert_sql(
        &mut conn,
        "NOT EXISTS (SELECT 1 FROM sync_jobs j JOIN connections c ON c.id = j.connection_id
                     WHERE c.tenant_id <> j.tenant_id)
         AND NOT EXISTS (SELECT 1 FROM credential_reminders r
                         WHERE NOT EXISTS (SELECT 1 FROM credentials c
                                           WHERE c.id = r.credential_id
                                           AND c.tenant_id = r.tenant_id))
         AND (SELECT count(*) FROM sync_jobs) = 2
         AND (SELECT count(*) FROM credential_reminders) = 2
         AND (SELECT count(*) FROM job_leases) = 10",
        "a row was written under the wrong tenant",
    )
    .await;

    // Spans: each tenant's pass is one trace, and every span in it that
    // names a tenant (the jobs, their database units, the analytics call
    // on the server side) names that tenant.
    for tenant in [a, b] {
        let spans = spans_of_tenant_pass(tenant).await;
        let tenanted: Vec<(&str, String)> = spans
            .iter()
            .filter_map(|s| attribute(s, "tenant.id").map(|t| (s.name.as_ref(), t)))
            .collect();
        for (name, carried) in &tenanted {
            assert_eq!(carried, &tenant.to_string(), "span {name}");
        }
        let count = |name: &str| tenanted.iter().filter(|(n, _)| *n == name).count();
        assert_eq!(count("scheduler.job"), 5, "{tenanted:?}");
        assert!(count("db.unit") >= 5, "{tenanted:?}");
        assert!(
            spans
                .iter()
                .any(|s| s.span_kind == opentelemetry::trace::SpanKind::Server
                    && attribute(s, "tenant.id") == Some(tenant.to_string())),
            "the analytics call did not carry the tenant: {tenanted:?}"
        );
    }
}

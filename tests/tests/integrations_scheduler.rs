//! The background scheduler against a real database and a fake Airbyte:
//! due syncs start and others do not, one tenant's failure leaves the
//! others alone, and two replicas start each due sync exactly once.

#![allow(clippy::unwrap_used)] // tests: failing loudly is the point

mod integrations_fake;

use std::time::Duration;

use adscope_db::{Database, DbConfig, ServiceRole};
use adscope_e2e::{Running, create_connection, now_s, request, seed_tenants, start_integrations};
use adscope_integrations::config::{AirbyteAuth, AirbyteConfig};
use adscope_integrations::scheduler::{DUE_SYNCS, STUCK_AFTER, Scheduler};
use adscope_proto::integrations::v1 as pb;
use adscope_proto::integrations::v1::connection_service_client::ConnectionServiceClient;
use adscope_tenancy::{Role, TenantId};
use adscope_testing::{TestDb, token};
use integrations_fake::{FakeAirbyte, Mode};
use uuid::Uuid;

fn scheduler(db: &TestDb, fake: &FakeAirbyte) -> Scheduler {
    let mut config =
        adscope_integrations::Config::new(adscope_e2e::config(db, ServiceRole::Integrations));
    config.airbyte = Some(AirbyteConfig {
        base_url: fake.url(),
        auth: AirbyteAuth::Bearer("t".into()),
        timeout: Duration::from_secs(5),
    });
    config.scheduler.retry_base = Duration::from_millis(5);
    config.scheduler.retry_cap = Duration::from_millis(20);
    let pool = Database::connect(&DbConfig::new(
        db.url(ServiceRole::Integrations),
        ServiceRole::Integrations,
    ))
    .unwrap();
    Scheduler::new(&config, pool).unwrap()
}

/// Creates a connection; returns its Airbyte id.
async fn connection(
    server: &Running,
    tenant: TenantId,
    name: &str,
    minutes: Option<i32>,
    active: bool,
) -> String {
    let airbyte = Uuid::new_v4().to_string();
    create_connection(
        server,
        tenant,
        pb::Connection {
            name: name.into(),
            provider: "meta".into(),
            airbyte_connection_id: airbyte.clone(),
            schedule: minutes.map(|minutes| pb::Schedule {
                kind: Some(pb::schedule::Kind::Interval(pb::schedule::Interval {
                    minutes,
                })),
            }),
            active,
            ..Default::default()
        },
    )
    .await;
    airbyte
}

async fn sorted_tenants(db: &TestDb) -> (TenantId, TenantId) {
    let mut tenants = seed_tenants(db, 2).await;
    tenants.sort_by_key(|t| *t.as_uuid());
    (tenants[0], tenants[1])
}

#[tokio::test]
async fn scheduler_starts_due_interval_syncs_and_not_the_others() {
    let db = TestDb::new().await;
    let (a, b) = sorted_tenants(&db).await;
    let server = start_integrations(&db).await;
    let mut client = ConnectionServiceClient::new(server.channel().await);
    let fake = FakeAirbyte::start().await;
    // Jobs that start now and succeed.
    fake.set_created(now_s());
    fake.set_get_status("succeeded");

    let due_a = connection(&server, a, "A due", Some(60), true).await;
    let manual_a = connection(&server, a, "A manual", None, true).await;
    let inactive_a = connection(&server, a, "A inactive", Some(1), false).await;
    let due_b = connection(&server, b, "B due", Some(60), true).await;

    let scheduler = scheduler(&db, &fake);
    let report = scheduler.run_once().await;
    assert_eq!(report.tenants, 2);
    assert_eq!(report.syncs_triggered, 2, "{report:?}");
    assert!(report.failures.is_empty(), "{report:?}");
    assert_eq!(fake.syncs_of(&due_a), 1);
    assert_eq!(fake.syncs_of(&due_b), 1);
    assert_eq!(fake.syncs_of(&manual_a), 0);
    assert_eq!(fake.syncs_of(&inactive_a), 0);

    // The job is recorded for A's connection, under A.
    let jobs = client
        .list_jobs(request(
            pb::ListJobsRequest::default(),
            &token(&[a], Role::Viewer),
            Some(a),
        ))
        .await
        .unwrap()
        .into_inner()
        .jobs;
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0].status(), pb::JobStatus::Succeeded);

    // Just synced, every 60 minutes: nothing is due on the next pass.
    let again = scheduler.run_once().await;
    assert_eq!(again.syncs_triggered, 0, "{again:?}");
    assert_eq!(fake.syncs_of(&due_a), 1);
    assert_eq!(fake.syncs_of(&due_b), 1);
}

#[tokio::test]
async fn one_tenants_failing_airbyte_call_does_not_stop_the_others() {
    let db = TestDb::new().await;
    // The failing tenant comes first in the pass.
    let (failing, healthy) = sorted_tenants(&db).await;
    let server = start_integrations(&db).await;
    let fake = FakeAirbyte::start().await;
    let broken = connection(&server, failing, "broken", Some(5), true).await;
    let fine = connection(&server, healthy, "fine", Some(5), true).await;
    fake.set_connection_mode(&broken, Mode::Status(502));

    let report = scheduler(&db, &fake).run_once().await;
    assert_eq!(report.syncs_triggered, 1, "{report:?}");
    assert_eq!(report.syncs_failed, 1);
    assert_eq!(fake.syncs_of(&fine), 1);
    // Retried (a 5xx is transient) before giving up.
    assert_eq!(fake.syncs_of(&broken), 3);
    assert_eq!(report.failures.len(), 1, "{report:?}");
    assert_eq!(report.failures[0].tenant, failing);
    assert_eq!(report.failures[0].job, DUE_SYNCS);
    assert!(
        report.failures[0].error.contains("unavailable"),
        "{report:?}"
    );
}

#[tokio::test]
async fn two_schedulers_start_each_due_sync_exactly_once() {
    let db = TestDb::new().await;
    let (a, b) = sorted_tenants(&db).await;
    let server = start_integrations(&db).await;
    let fake = FakeAirbyte::start().await;
    // Slow answers, so the two passes overlap.
    fake.set_delay(Duration::from_millis(150));
    let mut due = Vec::new();
    for tenant in [a, b] {
        for name in ["one", "two"] {
            due.push(connection(&server, tenant, name, Some(30), true).await);
        }
    }

    let (first, second) = (scheduler(&db, &fake), scheduler(&db, &fake));
    let (r1, r2) = tokio::join!(first.run_once(), second.run_once());
    for airbyte in &due {
        assert_eq!(fake.syncs_of(airbyte), 1, "{airbyte}: {r1:?} {r2:?}");
    }
    assert_eq!(r1.syncs_triggered + r2.syncs_triggered, 4);
    // The passes did overlap: one found a job the other was running.
    assert!(r1.skipped_locked + r2.skipped_locked > 0, "{r1:?} {r2:?}");
    assert!(
        r1.failures.is_empty() && r2.failures.is_empty(),
        "{r1:?} {r2:?}"
    );
}

#[tokio::test]
async fn stuck_running_jobs_are_reconciled_with_airbyte_or_marked_failed() {
    let db = TestDb::new().await;
    let (a, b) = sorted_tenants(&db).await;
    let fake = FakeAirbyte::start().await;
    let url = fake.url();
    let server = adscope_e2e::start_integrations_with(&db, move |cfg| {
        cfg.airbyte = Some(AirbyteConfig {
            base_url: url,
            auth: AirbyteAuth::None,
            timeout: Duration::from_secs(5),
        });
    })
    .await;
    let mut client = ConnectionServiceClient::new(server.channel().await);
    // Manual connections (never due); their jobs started an hour beyond the
    // stuck threshold and still run, so the pass must look at them.
    let stuck_since = now_s() - i64::try_from(STUCK_AFTER.as_secs()).unwrap() - 3600;
    fake.set_created(stuck_since);
    let mut ids = Vec::new();
    for tenant in [a, b] {
        connection(&server, tenant, "manual", None, true).await;
        let listed = client
            .list_connections(request(
                pb::ListConnectionsRequest::default(),
                &token(&[tenant], Role::Viewer),
                Some(tenant),
            ))
            .await
            .unwrap()
            .into_inner()
            .connections;
        let job = client
            .trigger_sync(request(
                pb::TriggerSyncRequest {
                    connection_id: listed[0].id.clone(),
                },
                &token(&[tenant], Role::Analyst),
                Some(tenant),
            ))
            .await
            .unwrap()
            .into_inner()
            .job
            .unwrap();
        assert_eq!(job.status(), pb::JobStatus::Running);
        ids.push(job.airbyte_job_id);
    }
    // A job of A started just now is running, not stuck: the pass must leave
    // it alone even though Airbyte would report it as succeeded.
    fake.set_created(now_s());
    let fresh_airbyte = connection(&server, a, "fresh", None, true).await;
    let fresh_connection = client
        .list_connections(request(
            pb::ListConnectionsRequest::default(),
            &token(&[a], Role::Viewer),
            Some(a),
        ))
        .await
        .unwrap()
        .into_inner()
        .connections
        .into_iter()
        .find(|c| c.airbyte_connection_id == fresh_airbyte)
        .unwrap();
    let fresh = client
        .trigger_sync(request(
            pb::TriggerSyncRequest {
                connection_id: fresh_connection.id,
            },
            &token(&[a], Role::Analyst),
            Some(a),
        ))
        .await
        .unwrap()
        .into_inner()
        .job
        .unwrap();
    assert_eq!(fresh.status(), pb::JobStatus::Running);

    // Airbyte now says A's job succeeded and has forgotten B's.
    fake.set_get_status("succeeded");
    let scheduler = scheduler(&db, &fake);
    let forgotten = ids[1];
    fake.forget_job(forgotten);
    let report = scheduler.run_once().await;
    assert_eq!(report.jobs_reconciled, 2, "{report:?}");
    assert_eq!(report.syncs_triggered, 0);

    let status = |tenant: TenantId| {
        request(
            pb::ListJobsRequest::default(),
            &token(&[tenant], Role::Viewer),
            Some(tenant),
        )
    };
    let jobs_a = client.list_jobs(status(a)).await.unwrap().into_inner().jobs;
    assert_eq!(jobs_a.len(), 2);
    let job_a = |airbyte_job_id: i64| {
        jobs_a
            .iter()
            .find(|j| j.airbyte_job_id == airbyte_job_id)
            .unwrap_or_else(|| panic!("job {airbyte_job_id} missing: {jobs_a:?}"))
    };
    assert_eq!(job_a(ids[0]).status(), pb::JobStatus::Succeeded);
    assert_eq!(job_a(fresh.airbyte_job_id).status(), pb::JobStatus::Running);
    let jobs_b = client.list_jobs(status(b)).await.unwrap().into_inner().jobs;
    assert_eq!(jobs_b.len(), 1);
    assert_eq!(jobs_b[0].status(), pb::JobStatus::Failed);
    assert!(
        jobs_b[0].error.contains("could not be checked"),
        "{:?}",
        jobs_b[0]
    );
}

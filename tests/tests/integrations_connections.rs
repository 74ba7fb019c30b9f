//! ConnectionService over the wire, against a fake Airbyte: CRUD, paging
//! and the due filter, TriggerSync's telemetry and its mapping of upstream
//! failures, ListJobs and GetSyncStatus, each probed by a second tenant.

#![allow(clippy::unwrap_used)] // tests: failing loudly is the point

mod integrations_fake;

use std::time::Duration;

use adscope_e2e::{Running, Tenant, create_connection, seed_tenants, start_integrations_with};
use adscope_integrations::config::{AirbyteAuth, AirbyteConfig};
use adscope_proto::integrations::v1 as pb;
use adscope_proto::integrations::v1::connection_service_client::ConnectionServiceClient;
use adscope_testing::TestDb;
use integrations_fake::{BYTES, CREATED_S, FakeAirbyte, Mode, RECORDS, RUN_S};
use tonic::Code;
use tonic::transport::Channel;
use uuid::Uuid;

type Client = ConnectionServiceClient<Channel>;

fn interval(minutes: i32) -> Option<pb::Schedule> {
    Some(pb::Schedule {
        kind: Some(pb::schedule::Kind::Interval(pb::schedule::Interval {
            minutes,
        })),
    })
}

fn cron(expression: &str) -> Option<pb::Schedule> {
    Some(pb::Schedule {
        kind: Some(pb::schedule::Kind::Cron(pb::schedule::Cron {
            expression: expression.into(),
        })),
    })
}

fn connection(
    name: &str,
    airbyte: Uuid,
    schedule: Option<pb::Schedule>,
    active: bool,
) -> pb::Connection {
    pb::Connection {
        name: name.into(),
        provider: "meta".into(),
        airbyte_connection_id: airbyte.to_string(),
        workspace_id: Uuid::new_v4().to_string(),
        schedule,
        active,
        ..Default::default()
    }
}

async fn setup(airbyte: Option<AirbyteConfig>) -> (TestDb, Running, Client, Tenant, Tenant) {
    let db = TestDb::new().await;
    let tenants = seed_tenants(&db, 2).await;
    let server = start_integrations_with(&db, move |cfg| cfg.airbyte = airbyte).await;
    let client = ConnectionServiceClient::new(server.channel().await);
    (
        db,
        server,
        client,
        Tenant::new(tenants[0]),
        Tenant::new(tenants[1]),
    )
}

fn airbyte(fake: &FakeAirbyte, auth: AirbyteAuth, timeout: Duration) -> Option<AirbyteConfig> {
    Some(AirbyteConfig {
        base_url: fake.url(),
        auth,
        timeout,
    })
}

#[tokio::test]
async fn connection_crud_round_trips_and_tenant_b_gets_not_found() {
    let (_db, server, mut client, a, b) = setup(None).await;
    let shared_airbyte = Uuid::new_v4();
    let created = create_connection(
        &server,
        a.id,
        connection("A meta", shared_airbyte, interval(60), true),
    )
    .await;
    assert_eq!(created.name, "A meta");
    assert_eq!(created.provider, "meta");
    assert!(created.active);
    assert_eq!(created.schedule, interval(60));
    assert_eq!(created.last_job_id, 0);
    // Never ran: due now.
    assert!(created.next_sync_time.is_some());

    // Unique per tenant: A again is ALREADY_EXISTS, B may register it too.
    let again = client
        .create_connection(a.req(pb::CreateConnectionRequest {
            connection: Some(connection("dup", shared_airbyte, None, true)),
        }))
        .await
        .unwrap_err();
    assert_eq!(again.code(), Code::AlreadyExists, "{again:?}");
    assert!(again.message().contains(&shared_airbyte.to_string()));
    let b_conn = create_connection(
        &server,
        b.id,
        connection("B meta", shared_airbyte, None, true),
    )
    .await;

    // Validation: every bad field named, nothing written.
    let mut bad = connection("", Uuid::new_v4(), interval(0), true);
    bad.provider = "Meta Ads".into();
    let invalid = client
        .create_connection(a.req(pb::CreateConnectionRequest {
            connection: Some(bad),
        }))
        .await
        .unwrap_err();
    assert_eq!(invalid.code(), Code::InvalidArgument);
    for field in [
        "connection.name",
        "connection.provider",
        "connection.schedule.interval.minutes",
    ] {
        assert!(
            invalid.message().contains(field),
            "{field} in {}",
            invalid.message()
        );
    }
    let bad_cron = client
        .create_connection(a.req(pb::CreateConnectionRequest {
            connection: Some(connection("c", Uuid::new_v4(), cron("every day"), true)),
        }))
        .await
        .unwrap_err();
    assert_eq!(bad_cron.code(), Code::InvalidArgument);
    assert!(
        bad_cron.message().contains("cron"),
        "{}",
        bad_cron.message()
    );
    let with_cron = create_connection(
        &server,
        a.id,
        connection("A cron", Uuid::new_v4(), cron("0 */6 * * *"), true),
    )
    .await;
    assert_eq!(with_cron.schedule, cron("0 */6 * * *"));

    // Get: A sees its own; B gets NOT_FOUND, like an id that does not exist.
    let got = client
        .get_connection(a.req(pb::GetConnectionRequest {
            id: created.id.clone(),
        }))
        .await
        .unwrap()
        .into_inner()
        .connection
        .unwrap();
    assert_eq!(got.id, created.id);
    assert_eq!(got.name, "A meta");
    for id in [created.id.clone(), Uuid::new_v4().to_string()] {
        let err = client
            .get_connection(b.req(pb::GetConnectionRequest { id }))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::NotFound);
    }

    // List: each tenant only its own.
    let listed_a = client
        .list_connections(a.req(pb::ListConnectionsRequest::default()))
        .await
        .unwrap()
        .into_inner()
        .connections;
    let names: Vec<_> = listed_a.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["A meta", "A cron"]);
    let listed_b = client
        .list_connections(b.req(pb::ListConnectionsRequest::default()))
        .await
        .unwrap()
        .into_inner()
        .connections;
    assert_eq!(listed_b.len(), 1);
    assert_eq!(listed_b[0].id, b_conn.id);

    // Update: masked fields only; output-only fields refused.
    let mut patch = created.clone();
    patch.name = "A meta renamed".into();
    patch.provider = "ignored".into();
    patch.schedule = cron("30 2 * * 1");
    let updated = client
        .update_connection(a.req(pb::UpdateConnectionRequest {
            connection: Some(patch.clone()),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["name".into(), "schedule".into()],
            }),
        }))
        .await
        .unwrap()
        .into_inner()
        .connection
        .unwrap();
    assert_eq!(updated.name, "A meta renamed");
    assert_eq!(updated.provider, "meta");
    assert_eq!(updated.schedule, cron("30 2 * * 1"));
    let output_only = client
        .update_connection(a.req(pb::UpdateConnectionRequest {
            connection: Some(patch.clone()),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["last_job_id".into()],
            }),
        }))
        .await
        .unwrap_err();
    assert_eq!(output_only.code(), Code::InvalidArgument);
    // An empty mask replaces every updatable field.
    let mut whole = updated.clone();
    whole.provider = "meta_ads".into();
    let replaced = client
        .update_connection(a.req(pb::UpdateConnectionRequest {
            connection: Some(whole),
            update_mask: None,
        }))
        .await
        .unwrap()
        .into_inner()
        .connection
        .unwrap();
    assert_eq!(replaced.provider, "meta_ads");
    assert_eq!(replaced.name, "A meta renamed");
    let by_b = client
        .update_connection(b.req(pb::UpdateConnectionRequest {
            connection: Some(patch.clone()),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["name".into()],
            }),
        }))
        .await
        .unwrap_err();
    assert_eq!(by_b.code(), Code::NotFound);

    // Delete: B cannot, A can, and then it is gone.
    let del_b = client
        .delete_connection(b.req(pb::DeleteConnectionRequest {
            id: created.id.clone(),
        }))
        .await
        .unwrap_err();
    assert_eq!(del_b.code(), Code::NotFound);
    let still = client
        .get_connection(a.req(pb::GetConnectionRequest {
            id: created.id.clone(),
        }))
        .await
        .unwrap()
        .into_inner()
        .connection
        .unwrap();
    assert_eq!(still.name, "A meta renamed");
    client
        .delete_connection(a.req(pb::DeleteConnectionRequest {
            id: created.id.clone(),
        }))
        .await
        .unwrap();
    let gone = client
        .get_connection(a.req(pb::GetConnectionRequest { id: created.id }))
        .await
        .unwrap_err();
    assert_eq!(gone.code(), Code::NotFound);
    // B's connection with the same Airbyte id is untouched.
    let b_still = client
        .get_connection(b.req(pb::GetConnectionRequest { id: b_conn.id }))
        .await
        .unwrap()
        .into_inner()
        .connection
        .unwrap();
    assert_eq!(b_still.name, "B meta");
}

#[tokio::test]
async fn list_connections_pages_by_keyset_and_filters_due() {
    let (_db, server, mut client, a, b) = setup(None).await;
    let due = create_connection(
        &server,
        a.id,
        connection("c due interval", Uuid::new_v4(), interval(5), true),
    )
    .await;
    create_connection(
        &server,
        a.id,
        connection("a manual", Uuid::new_v4(), None, true),
    )
    .await;
    create_connection(
        &server,
        a.id,
        connection("b inactive", Uuid::new_v4(), interval(5), false),
    )
    .await;
    let due_cron = create_connection(
        &server,
        a.id,
        connection("d due cron", Uuid::new_v4(), cron("* * * * *"), true),
    )
    .await;
    create_connection(
        &server,
        b.id,
        connection("b's due", Uuid::new_v4(), interval(5), true),
    )
    .await;

    // By name, two per page.
    let mut names = Vec::new();
    let mut token = String::new();
    let mut pages = 0;
    loop {
        let page = client
            .list_connections(a.req(pb::ListConnectionsRequest {
                page_size: 2,
                page_token: token.clone(),
                order_by: pb::ConnectionOrderBy::Name.into(),
                ..Default::default()
            }))
            .await
            .unwrap()
            .into_inner();
        pages += 1;
        names.extend(page.connections.into_iter().map(|c| c.name));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(pages, 2);
    assert_eq!(
        names,
        ["a manual", "b inactive", "c due interval", "d due cron"]
    );

    // Descending by creation time.
    let desc = client
        .list_connections(a.req(pb::ListConnectionsRequest {
            descending: true,
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner()
        .connections;
    assert_eq!(desc[0].name, "d due cron");
    assert_eq!(desc[3].name, "c due interval");

    // Due: active, scheduled, never ran.
    let due_list = client
        .list_connections(a.req(pb::ListConnectionsRequest {
            due: true,
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner()
        .connections;
    let ids: Vec<_> = due_list.iter().map(|c| c.id.clone()).collect();
    assert_eq!(ids, [due.id.clone(), due_cron.id.clone()]);

    // A token is bound to its tenant and filters.
    let first = client
        .list_connections(a.req(pb::ListConnectionsRequest {
            page_size: 1,
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    assert!(!first.next_page_token.is_empty());
    let replayed = client
        .list_connections(b.req(pb::ListConnectionsRequest {
            page_size: 1,
            page_token: first.next_page_token.clone(),
            ..Default::default()
        }))
        .await
        .unwrap_err();
    assert_eq!(replayed.code(), Code::InvalidArgument);
    let other_filter = client
        .list_connections(a.req(pb::ListConnectionsRequest {
            page_size: 1,
            page_token: first.next_page_token,
            due: true,
            ..Default::default()
        }))
        .await
        .unwrap_err();
    assert_eq!(other_filter.code(), Code::InvalidArgument);
}

#[tokio::test]
async fn trigger_sync_records_telemetry_in_seconds_and_milliseconds() {
    let fake = FakeAirbyte::start().await;
    fake.set_get_status("succeeded");
    let (_db, server, mut client, a, b) = setup(airbyte(
        &fake,
        AirbyteAuth::Bearer("airbyte-token-1".into()),
        Duration::from_secs(5),
    ))
    .await;
    let airbyte_id = Uuid::new_v4();
    let conn = create_connection(
        &server,
        a.id,
        connection("A meta", airbyte_id, interval(60), true),
    )
    .await;
    let b_conn = create_connection(
        &server,
        b.id,
        connection("B meta", Uuid::new_v4(), None, true),
    )
    .await;

    let job = client
        .trigger_sync(a.req(pb::TriggerSyncRequest {
            connection_id: conn.id.clone(),
        }))
        .await
        .unwrap()
        .into_inner()
        .job
        .unwrap();
    assert_eq!(job.connection_id, conn.id);
    assert_eq!(job.airbyte_job_id, 100);
    assert_eq!(job.status(), pb::JobStatus::Succeeded);
    assert_eq!(job.start_time.unwrap().seconds, CREATED_S);
    assert_eq!(job.end_time.unwrap().seconds, CREATED_S + RUN_S);
    assert_eq!(job.duration_seconds, RUN_S);
    assert_eq!(job.records_synced, RECORDS);
    assert_eq!(job.bytes_synced, BYTES);
    assert_eq!(job.error, "");

    // The fake saw the sync then the job read, with the bearer token.
    let seen = fake.seen();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0].path, "/api/v1/connections/sync");
    assert_eq!(seen[0].body["connectionId"], airbyte_id.to_string());
    assert_eq!(seen[1].path, "/api/v1/jobs/get");
    assert_eq!(seen[1].body["id"], 100);
    for s in &seen {
        assert_eq!(s.headers["authorization"], "Bearer airbyte-token-1");
    }

    // The connection carries the last job.
    let got = client
        .get_connection(a.req(pb::GetConnectionRequest {
            id: conn.id.clone(),
        }))
        .await
        .unwrap()
        .into_inner()
        .connection
        .unwrap();
    assert_eq!(got.last_job_id, 100);
    assert_eq!(got.last_job_status(), pb::JobStatus::Succeeded);
    assert_eq!(got.last_job_start_time.unwrap().seconds, CREATED_S);
    assert_eq!(got.last_job_end_time.unwrap().seconds, CREATED_S + RUN_S);

    // Milliseconds give the same times.
    fake.set_millis(true);
    fake.set_get_status("failed");
    let job2 = client
        .trigger_sync(a.req(pb::TriggerSyncRequest {
            connection_id: conn.id.clone(),
        }))
        .await
        .unwrap()
        .into_inner()
        .job
        .unwrap();
    assert_eq!(job2.airbyte_job_id, 101);
    assert_eq!(job2.status(), pb::JobStatus::Failed);
    assert_eq!(job2.start_time.unwrap().seconds, CREATED_S);
    assert_eq!(job2.duration_seconds, RUN_S);
    assert_eq!(job2.error, "source auth failed");

    // ListJobs: newest first, paged; B sees none of A's jobs.
    let page1 = client
        .list_jobs(a.req(pb::ListJobsRequest {
            connection_id: conn.id.clone(),
            page_size: 1,
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(page1.jobs.len(), 1);
    assert_eq!(page1.jobs[0].airbyte_job_id, 101);
    let page2 = client
        .list_jobs(a.req(pb::ListJobsRequest {
            connection_id: conn.id.clone(),
            page_size: 1,
            page_token: page1.next_page_token,
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(page2.jobs.len(), 1);
    assert_eq!(page2.jobs[0].airbyte_job_id, 100);
    assert!(page2.next_page_token.is_empty());
    let b_all = client
        .list_jobs(b.req(pb::ListJobsRequest::default()))
        .await
        .unwrap()
        .into_inner();
    assert!(b_all.jobs.is_empty());
    let b_probe = client
        .list_jobs(b.req(pb::ListJobsRequest {
            connection_id: conn.id.clone(),
            ..Default::default()
        }))
        .await
        .unwrap_err();
    assert_eq!(b_probe.code(), Code::NotFound);
    let b_trigger = client
        .trigger_sync(b.req(pb::TriggerSyncRequest {
            connection_id: conn.id.clone(),
        }))
        .await
        .unwrap_err();
    assert_eq!(b_trigger.code(), Code::NotFound);

    // GetSyncStatus: A's latest job and its summary; B's has no job.
    let status = client
        .get_sync_status(a.req(pb::GetSyncStatusRequest {}))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(status.latest_job.unwrap().airbyte_job_id, 101);
    assert_eq!(status.connections.len(), 1);
    let summary = &status.connections[0];
    assert_eq!(summary.connection_id, conn.id);
    assert_eq!(summary.last_job_status(), pb::JobStatus::Failed);
    assert_eq!(summary.last_error, "source auth failed");
    assert_eq!(
        summary.last_success_time.unwrap().seconds,
        CREATED_S + RUN_S
    );
    let status_b = client
        .get_sync_status(b.req(pb::GetSyncStatusRequest {}))
        .await
        .unwrap()
        .into_inner();
    assert!(status_b.latest_job.is_none());
    assert_eq!(status_b.connections.len(), 1);
    assert_eq!(status_b.connections[0].connection_id, b_conn.id);
    assert_eq!(
        status_b.connections[0].last_job_status(),
        pb::JobStatus::Unspecified
    );
}

#[tokio::test]
async fn trigger_sync_sends_basic_auth_when_configured() {
    let fake = FakeAirbyte::start().await;
    let (_db, server, mut client, a, _b) = setup(airbyte(
        &fake,
        AirbyteAuth::Basic {
            user: "airbyte".into(),
            password: "s3cret".into(),
        },
        Duration::from_secs(5),
    ))
    .await;
    let conn = create_connection(&server, a.id, connection("A", Uuid::new_v4(), None, true)).await;
    let job = client
        .trigger_sync(a.req(pb::TriggerSyncRequest {
            connection_id: conn.id,
        }))
        .await
        .unwrap()
        .into_inner()
        .job
        .unwrap();
    assert_eq!(job.status(), pb::JobStatus::Running);
    assert!(job.end_time.is_none());
    // base64("airbyte:s3cret")
    assert_eq!(
        fake.seen()[0].headers["authorization"],
        "Basic YWlyYnl0ZTpzM2NyZXQ="
    );
}

#[tokio::test]
async fn trigger_sync_maps_upstream_failures_and_records_nothing() {
    let fake = FakeAirbyte::start().await;
    let (_db, server, mut client, a, _b) = setup(airbyte(
        &fake,
        AirbyteAuth::None,
        Duration::from_millis(700),
    ))
    .await;
    let conn = create_connection(&server, a.id, connection("A", Uuid::new_v4(), None, true)).await;
    for (mode, code) in [
        (Mode::Status(422), Code::FailedPrecondition),
        (Mode::Status(404), Code::FailedPrecondition),
        (Mode::Status(503), Code::Unavailable),
        (Mode::Status(500), Code::Unavailable),
        (Mode::Hang, Code::DeadlineExceeded),
    ] {
        fake.set_mode(mode.clone());
        let err = client
            .trigger_sync(a.req(pb::TriggerSyncRequest {
                connection_id: conn.id.clone(),
            }))
            .await
            .unwrap_err();
        assert_eq!(err.code(), code, "{mode:?}: {err:?}");
    }
    // One sync call per refused trigger, and no job read after a failed
    // start; without the count the check on headers could pass on nothing.
    let seen = fake.seen();
    assert_eq!(
        seen.iter().map(|s| s.path.as_str()).collect::<Vec<_>>(),
        vec!["/api/v1/connections/sync"; 5]
    );
    assert!(
        seen.iter()
            .all(|s| !s.headers.contains_key("authorization"))
    );

    // Nothing listens on a closed port: UNAVAILABLE too. The fake is set to
    // answer first, so a call still served over a kept-alive connection would
    // succeed and fail the test instead of passing for the wrong reason.
    fake.set_mode(Mode::Ok);
    drop(fake);
    let err = client
        .trigger_sync(a.req(pb::TriggerSyncRequest {
            connection_id: conn.id.clone(),
        }))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");
    // A transport failure, not an HTTP status from a server.
    assert!(!err.message().contains("answered"), "{}", err.message());

    let jobs = client
        .list_jobs(a.req(pb::ListJobsRequest::default()))
        .await
        .unwrap()
        .into_inner()
        .jobs;
    assert!(jobs.is_empty());
}

#[tokio::test]
async fn trigger_sync_without_airbyte_is_failed_precondition() {
    let (_db, server, mut client, a, _b) = setup(None).await;
    let conn = create_connection(&server, a.id, connection("A", Uuid::new_v4(), None, true)).await;
    let err = client
        .trigger_sync(a.req(pb::TriggerSyncRequest {
            connection_id: conn.id,
        }))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert!(
        err.message().contains("ADSCOPE_AIRBYTE_URL"),
        "{}",
        err.message()
    );
}

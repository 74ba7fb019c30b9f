//! Performance data and snapshots over the wire: ingest, listing, metrics,
//! snapshot caching, and isolation between tenants on every one of them.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use std::collections::HashSet;
use std::time::Duration;

use adscope_db::{Database, ServiceRole};
use adscope_e2e::{config, request, seed_tenants, start_analytics, today};
use adscope_proto::analytics::v1 as pb;
use adscope_proto::analytics::v1::campaign_service_client::CampaignServiceClient;
use adscope_proto::analytics::v1::performance_service_client::PerformanceServiceClient;
use adscope_proto::analytics::v1::snapshot_service_client::SnapshotServiceClient;
use adscope_server::GrpcServer;
use adscope_tenancy::{Role, TenantId};
use adscope_testing::{TestDb, token};
use tokio::net::TcpListener;
use tonic::Code;
use tonic::transport::Channel;

type Perf = PerformanceServiceClient<Channel>;

fn record(date: &str, level: pb::RecordLevel, external_id: &str) -> pb::PerformanceRecord {
    pb::PerformanceRecord {
        date: date.into(),
        level: level.into(),
        source: "meta".into(),
        external_id: external_id.into(),
        impressions: 100,
        reach: 80,
        clicks: 10,
        conversions: 1,
        spend: "5.00".into(),
        currency: "EUR".into(),
        ..Default::default()
    }
}

fn figures(
    mut r: pb::PerformanceRecord,
    impressions: i64,
    clicks: i64,
    conversions: i64,
    spend: &str,
) -> pb::PerformanceRecord {
    r.impressions = impressions;
    r.clicks = clicks;
    r.conversions = conversions;
    r.spend = spend.into();
    r
}

fn batch(records: Vec<pb::PerformanceRecord>) -> pb::IngestRecordsRequest {
    pb::IngestRecordsRequest { records }
}

async fn ingest(
    client: &mut Perf,
    batches: Vec<pb::IngestRecordsRequest>,
    token: &str,
    tenant: TenantId,
) -> pb::IngestRecordsResponse {
    client
        .ingest_records(request(tokio_stream::iter(batches), token, Some(tenant)))
        .await
        .unwrap()
        .into_inner()
}

async fn list_all(
    client: &mut Perf,
    filter: pb::ListRecordsRequest,
    token: &str,
    tenant: TenantId,
) -> Vec<pb::PerformanceRecord> {
    let mut out = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = client
            .list_records(request(
                pb::ListRecordsRequest {
                    page_token: page_token.clone(),
                    ..filter.clone()
                },
                token,
                Some(tenant),
            ))
            .await
            .unwrap()
            .into_inner();
        out.extend(page.records);
        if page.next_page_token.is_empty() {
            return out;
        }
        page_token = page.next_page_token;
    }
}

async fn query(
    client: &mut Perf,
    req: pb::QueryMetricsRequest,
    token: &str,
    tenant: TenantId,
) -> pb::QueryMetricsResponse {
    client
        .query_metrics(request(req, token, Some(tenant)))
        .await
        .unwrap()
        .into_inner()
}

fn by_day(start: &str, end: &str) -> pb::QueryMetricsRequest {
    pb::QueryMetricsRequest {
        start_date: start.into(),
        end_date: end.into(),
        group_by: pb::MetricsGroupBy::Day.into(),
        ..Default::default()
    }
}

fn close(actual: Option<f64>, expected: f64) {
    let actual = actual.expect("ratio present");
    assert!(
        (actual - expected).abs() < 1e-9,
        "expected {expected}, got {actual}"
    );
}

#[tokio::test]
async fn ingesting_the_same_stream_twice_updates_and_never_duplicates() {
    let db = TestDb::new().await;
    let a = seed_tenants(&db, 1).await[0];
    let analytics = start_analytics(&db).await;
    let mut client = PerformanceServiceClient::new(analytics.channel().await);
    let token_a = token(&[a], Role::Analyst);

    let stream = || {
        vec![
            batch(vec![
                record("2024-03-01", pb::RecordLevel::Campaign, "c1"),
                record("2024-03-02", pb::RecordLevel::Campaign, "c1"),
            ]),
            batch(vec![record("2024-03-01", pb::RecordLevel::AdSet, "s1")]),
        ]
    };
    let first = ingest(&mut client, stream(), &token_a, a).await;
    assert_eq!((first.inserted, first.updated, first.rejected), (3, 0, 0));
    let before = list_all(&mut client, Default::default(), &token_a, a).await;
    assert_eq!(before.len(), 3);

    let second = ingest(&mut client, stream(), &token_a, a).await;
    assert_eq!(
        (second.inserted, second.updated, second.rejected),
        (0, 3, 0)
    );
    let after = list_all(&mut client, Default::default(), &token_a, a).await;
    assert_eq!(after.len(), 3);

    // A changed figure replaces the stored one, in place.
    let changed = figures(
        record("2024-03-01", pb::RecordLevel::Campaign, "c1"),
        999,
        9,
        0,
        "1.5",
    );
    // The same key twice in one batch: the later record wins.
    let third = ingest(
        &mut client,
        vec![batch(vec![
            record("2024-03-01", pb::RecordLevel::Campaign, "c1"),
            changed,
        ])],
        &token_a,
        a,
    )
    .await;
    assert_eq!((third.inserted, third.updated), (0, 2));
    let rows = list_all(&mut client, Default::default(), &token_a, a).await;
    assert_eq!(rows.len(), 3);
    let c1 = &rows[0];
    assert_eq!(
        (c1.date.as_str(), c1.external_id.as_str(), c1.level()),
        ("2024-03-01", "c1", pb::RecordLevel::Campaign)
    );
    assert_eq!(
        (c1.impressions, c1.clicks, c1.spend.as_str()),
        (999, 9, "1.5")
    );
    assert_eq!(c1.campaign_external_id, "c1");
    assert_eq!(c1.currency, "EUR");
    assert_eq!(
        before[0].create_time, c1.create_time,
        "updated, not recreated"
    );
}

#[tokio::test]
async fn a_mixed_stream_lands_good_records_and_reports_each_bad_one() {
    let db = TestDb::new().await;
    let a = seed_tenants(&db, 1).await[0];
    let analytics = start_analytics(&db).await;
    let mut client = PerformanceServiceClient::new(analytics.channel().await);
    let token_a = token(&[a], Role::Analyst);

    let good = |id: &str| record("2024-03-01", pb::RecordLevel::Campaign, id);
    let reply = ingest(
        &mut client,
        vec![
            batch(vec![
                good("ok-0"),
                pb::PerformanceRecord {
                    date: "2024-13-01".into(),
                    ..good("bad-date")
                },
                good("ok-2"),
            ]),
            batch(vec![
                pb::PerformanceRecord {
                    spend: "12,50".into(),
                    ..good("bad-spend")
                },
                pb::PerformanceRecord {
                    clicks: -3,
                    ..good("bad-clicks")
                },
                good("ok-5"),
                pb::PerformanceRecord {
                    currency: "EURO".into(),
                    ..good("bad-currency")
                },
                pb::PerformanceRecord {
                    level: 0,
                    ..good("bad-level")
                },
                pb::PerformanceRecord {
                    source: String::new(),
                    ..good("bad-source")
                },
                good(""),
            ]),
        ],
        &token_a,
        a,
    )
    .await;
    assert_eq!((reply.inserted, reply.updated, reply.rejected), (3, 0, 7));
    let rejected: Vec<(i64, &str, &str)> = reply
        .rejected_records
        .iter()
        .map(|r| {
            (
                r.index,
                r.external_id.as_str(),
                r.reason.split(':').next().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        rejected,
        vec![
            (1, "bad-date", "date"),
            (3, "bad-spend", "spend"),
            (4, "bad-clicks", "clicks"),
            (6, "bad-currency", "currency"),
            (7, "bad-level", "level"),
            (8, "bad-source", "source"),
            (9, "", "external_id"),
        ]
    );
    let stored: Vec<String> = list_all(&mut client, Default::default(), &token_a, a)
        .await
        .into_iter()
        .map(|r| r.external_id)
        .collect();
    assert_eq!(stored, vec!["ok-0", "ok-2", "ok-5"]);
}

#[tokio::test]
async fn tenant_b_cannot_list_aggregate_snapshot_or_overwrite_tenant_a_records() {
    let db = TestDb::new().await;
    let tenants = seed_tenants(&db, 2).await;
    let (a, b) = (tenants[0], tenants[1]);
    let analytics = start_analytics(&db).await;
    let mut client = PerformanceServiceClient::new(analytics.channel().await);
    let mut snapshots = SnapshotServiceClient::new(analytics.channel().await);
    let (token_a, token_b) = (token(&[a], Role::Analyst), token(&[b], Role::Analyst));
    let day = today();

    let a_record = figures(
        record(&day, pb::RecordLevel::Campaign, "shared"),
        1000,
        40,
        4,
        "20",
    );
    ingest(&mut client, vec![batch(vec![a_record])], &token_a, a).await;

    // B sees nothing of A's.
    assert!(
        list_all(&mut client, Default::default(), &token_b, b)
            .await
            .is_empty()
    );
    let metrics = query(&mut client, by_day(&day, &day), &token_b, b).await;
    assert!(metrics.series.is_empty());
    let totals = metrics.totals.unwrap();
    assert_eq!((totals.impressions, totals.spend.as_str()), (0, "0"));
    assert_eq!(totals.ctr, None);
    let snap = snapshots
        .get_snapshot(request(
            pb::GetSnapshotRequest::default(),
            &token_b,
            Some(b),
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(snap.snapshot.unwrap().totals.unwrap().impressions, 0);

    // B ingesting the very same key makes B's own row, leaving A's alone.
    let b_record = figures(
        record(&day, pb::RecordLevel::Campaign, "shared"),
        7,
        7,
        7,
        "7",
    );
    let reply = ingest(&mut client, vec![batch(vec![b_record])], &token_b, b).await;
    assert_eq!((reply.inserted, reply.updated), (1, 0));

    let a_rows = list_all(&mut client, Default::default(), &token_a, a).await;
    assert_eq!(a_rows.len(), 1);
    assert_eq!(
        (a_rows[0].impressions, a_rows[0].spend.as_str()),
        (1000, "20")
    );
    let a_totals = query(&mut client, by_day(&day, &day), &token_a, a)
        .await
        .totals
        .unwrap();
    assert_eq!((a_totals.impressions, a_totals.clicks), (1000, 40));
    let a_snap = snapshots
        .get_snapshot(request(
            pb::GetSnapshotRequest::default(),
            &token_a,
            Some(a),
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(a_snap.snapshot.unwrap().totals.unwrap().impressions, 1000);
    let b_rows = list_all(&mut client, Default::default(), &token_b, b).await;
    assert_eq!(b_rows.len(), 1);
    assert_eq!(b_rows[0].impressions, 7);
    // B's aggregates are B's row alone: A's 1000 impressions would show here
    // if the sums crossed tenants, and zeros would mean B's row was lost.
    let b_metrics = query(&mut client, by_day(&day, &day), &token_b, b).await;
    let b_totals = b_metrics.totals.unwrap();
    assert_eq!(
        (
            b_totals.impressions,
            b_totals.clicks,
            b_totals.conversions,
            b_totals.spend.as_str()
        ),
        (7, 7, 7, "7")
    );
    assert_eq!(
        b_metrics
            .series
            .iter()
            .map(|row| (row.key.as_str(), row.impressions))
            .collect::<Vec<_>>(),
        vec![(day.as_str(), 7)]
    );

    // A's page token is refused to B.
    let page = client
        .list_records(request(
            pb::ListRecordsRequest {
                page_size: 1,
                ..Default::default()
            },
            &token_a,
            Some(a),
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(page.next_page_token.is_empty());
    ingest(
        &mut client,
        vec![batch(vec![record(
            &day,
            pb::RecordLevel::Campaign,
            "second",
        )])],
        &token_a,
        a,
    )
    .await;
    let page = client
        .list_records(request(
            pb::ListRecordsRequest {
                page_size: 1,
                ..Default::default()
            },
            &token_a,
            Some(a),
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(!page.next_page_token.is_empty());
    let replay = client
        .list_records(request(
            pb::ListRecordsRequest {
                page_size: 1,
                page_token: page.next_page_token,
                ..Default::default()
            },
            &token_b,
            Some(b),
        ))
        .await
        .unwrap_err();
    assert_eq!(replay.code(), Code::InvalidArgument);
}

#[tokio::test]
async fn metrics_match_hand_computed_values_and_zero_denominators_are_absent() {
    let db = TestDb::new().await;
    let tenants = seed_tenants(&db, 2).await;
    let (a, b) = (tenants[0], tenants[1]);
    let analytics = start_analytics(&db).await;
    let mut client = PerformanceServiceClient::new(analytics.channel().await);
    let mut campaigns = CampaignServiceClient::new(analytics.channel().await);
    let (token_a, token_b) = (token(&[a], Role::Analyst), token(&[b], Role::Analyst));

    let mut campaign_ids = Vec::new();
    for (ext, name, platform) in [
        ("c1", "Spring", pb::Platform::Meta),
        ("c2", "Summer", pb::Platform::GoogleAds),
    ] {
        let created = campaigns
            .create_campaign(request(
                pb::CreateCampaignRequest {
                    campaign: Some(pb::Campaign {
                        external_id: ext.into(),
                        name: name.into(),
                        platform: platform.into(),
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
        campaign_ids.push(created.id);
    }
    // B owns a campaign with the same external id: A's records must not link to it.
    campaigns
        .create_campaign(request(
            pb::CreateCampaignRequest {
                campaign: Some(pb::Campaign {
                    external_id: "c1".into(),
                    name: "B's".into(),
                    platform: pb::Platform::Tiktok.into(),
                    currency: "EUR".into(),
                    ..Default::default()
                }),
            },
            &token_b,
            Some(b),
        ))
        .await
        .unwrap();

    let campaign = pb::RecordLevel::Campaign;
    let mut ad_set = figures(
        record("2024-05-01", pb::RecordLevel::AdSet, "s1"),
        500,
        5,
        1,
        "3",
    );
    ad_set.campaign_external_id = "c1".into();
    ingest(
        &mut client,
        vec![batch(vec![
            figures(record("2024-05-01", campaign, "c1"), 1000, 50, 5, "25.00"),
            figures(record("2024-05-02", campaign, "c1"), 0, 0, 0, "0"),
            figures(record("2024-05-01", campaign, "c2"), 2000, 0, 0, "10"),
            figures(record("2024-05-03", campaign, "c9"), 400, 4, 2, "0"),
            ad_set,
        ])],
        &token_a,
        a,
    )
    .await;

    let listed = list_all(&mut client, Default::default(), &token_a, a).await;
    let c1 = listed.iter().find(|r| r.external_id == "c1").unwrap();
    assert_eq!(
        c1.campaign_id, campaign_ids[0],
        "linked to A's own campaign"
    );
    let c9 = listed.iter().find(|r| r.external_id == "c9").unwrap();
    assert_eq!(c9.campaign_id, "", "no campaign c9 stored");

    // By day, campaign level only (the ad-set record is not counted twice).
    let m = query(&mut client, by_day("2024-05-01", "2024-05-03"), &token_a, a).await;
    let keys: Vec<&str> = m.series.iter().map(|r| r.key.as_str()).collect();
    assert_eq!(keys, vec!["2024-05-01", "2024-05-02", "2024-05-03"]);
    let d1 = &m.series[0];
    assert_eq!((d1.impressions, d1.clicks, d1.conversions), (3000, 50, 5));
    assert_eq!(d1.spend, "35");
    close(d1.ctr, 50.0 / 3000.0);
    close(d1.cpc, 35.0 / 50.0);
    close(d1.cpm, 1000.0 * 35.0 / 3000.0);
    close(d1.cpa, 35.0 / 5.0);
    close(d1.roas, 5.0 / 35.0);
    let d2 = &m.series[1];
    assert_eq!(
        (d2.ctr, d2.cpc, d2.cpm, d2.cpa, d2.roas),
        (None, None, None, None, None)
    );
    let d3 = &m.series[2];
    close(d3.ctr, 0.01);
    close(d3.cpc, 0.0);
    close(d3.cpa, 0.0);
    assert_eq!(d3.roas, None, "zero spend: no ROAS");
    let t = m.totals.unwrap();
    assert_eq!(
        (t.impressions, t.clicks, t.conversions, t.spend.as_str()),
        (3400, 54, 7, "35")
    );
    assert_eq!(t.reach, 320);
    close(t.ctr, 54.0 / 3400.0);
    close(t.cpm, 1000.0 * 35.0 / 3400.0);

    // By campaign: keyed by UUID when linked, by external id otherwise.
    let m = query(
        &mut client,
        pb::QueryMetricsRequest {
            group_by: pb::MetricsGroupBy::Campaign.into(),
            ..by_day("2024-05-01", "2024-05-31")
        },
        &token_a,
        a,
    )
    .await;
    let rows: Vec<(&str, &str, i64)> = m
        .series
        .iter()
        .map(|r| (r.key.as_str(), r.label.as_str(), r.impressions))
        .collect();
    let mut expected = vec![
        (campaign_ids[0].as_str(), "Spring", 1000),
        (campaign_ids[1].as_str(), "Summer", 2000),
        ("c9", "c9", 400),
    ];
    expected.sort();
    assert_eq!(rows, expected);
    let summer = m.series.iter().find(|r| r.label == "Summer").unwrap();
    assert_eq!(
        (summer.ctr, summer.cpc),
        (Some(0.0), None),
        "no clicks: no CPC"
    );

    // By platform, and filtered to one platform.
    let m = query(
        &mut client,
        pb::QueryMetricsRequest {
            group_by: pb::MetricsGroupBy::Platform.into(),
            ..by_day("2024-05-01", "2024-05-31")
        },
        &token_a,
        a,
    )
    .await;
    let rows: Vec<(&str, i64)> = m
        .series
        .iter()
        .map(|r| (r.key.as_str(), r.impressions))
        .collect();
    assert_eq!(
        rows,
        vec![
            ("PLATFORM_GOOGLE_ADS", 2000),
            ("PLATFORM_META", 1000),
            ("PLATFORM_UNSPECIFIED", 400)
        ]
    );
    let m = query(
        &mut client,
        pb::QueryMetricsRequest {
            platform: pb::Platform::GoogleAds.into(),
            ..by_day("2024-05-01", "2024-05-31")
        },
        &token_a,
        a,
    )
    .await;
    assert_eq!(m.totals.unwrap().impressions, 2000);

    // AD_SET grouping defaults to ad-set records.
    let m = query(
        &mut client,
        pb::QueryMetricsRequest {
            group_by: pb::MetricsGroupBy::AdSet.into(),
            ..by_day("2024-05-01", "2024-05-31")
        },
        &token_a,
        a,
    )
    .await;
    assert_eq!(m.series.len(), 1);
    assert_eq!(
        (m.series[0].key.as_str(), m.series[0].impressions),
        ("s1", 500)
    );
    close(m.series[0].roas, 1.0 / 3.0);

    // Campaign filter.
    let m = query(
        &mut client,
        pb::QueryMetricsRequest {
            campaign_id: campaign_ids[0].clone(),
            ..by_day("2024-05-01", "2024-05-31")
        },
        &token_a,
        a,
    )
    .await;
    assert_eq!(m.totals.unwrap().impressions, 1000);

    // Bad requests name the field.
    let err = client
        .query_metrics(request(
            pb::QueryMetricsRequest {
                start_date: "2024-05-09".into(),
                end_date: "2024-05-01".into(),
                ..Default::default()
            },
            &token_a,
            Some(a),
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("group_by"), "{}", err.message());
    assert!(err.message().contains("end_date"), "{}", err.message());
}

#[tokio::test]
async fn pagination_serves_every_row_exactly_once_with_inserts_in_between() {
    let db = TestDb::new().await;
    let a = seed_tenants(&db, 1).await[0];
    let analytics = start_analytics(&db).await;
    let mut client = PerformanceServiceClient::new(analytics.channel().await);
    let token_a = token(&[a], Role::Analyst);

    let originals: Vec<pb::PerformanceRecord> = (0..25)
        .map(|i| {
            record(
                &format!("2024-06-{:02}", i % 10 + 10),
                pb::RecordLevel::Campaign,
                &format!("c{i:02}"),
            )
        })
        .collect();
    ingest(&mut client, vec![batch(originals.clone())], &token_a, a).await;

    let filter = pb::ListRecordsRequest {
        start_date: "2024-06-01".into(),
        level: pb::RecordLevel::Campaign.into(),
        source: "meta".into(),
        page_size: 7,
        ..Default::default()
    };
    let mut seen: Vec<(String, String)> = Vec::new();
    let mut page_token = String::new();
    let mut pages = 0;
    loop {
        let page = client
            .list_records(request(
                pb::ListRecordsRequest {
                    page_token: page_token.clone(),
                    ..filter.clone()
                },
                &token_a,
                Some(a),
            ))
            .await
            .unwrap()
            .into_inner();
        assert!(page.records.len() <= 7);
        seen.extend(page.records.into_iter().map(|r| (r.date, r.external_id)));
        pages += 1;
        // New rows land before and after the cursor between pages.
        ingest(
            &mut client,
            vec![batch(vec![
                record(
                    "2024-06-01",
                    pb::RecordLevel::Campaign,
                    &format!("early{pages}"),
                ),
                record(
                    "2024-06-30",
                    pb::RecordLevel::Campaign,
                    &format!("late{pages}"),
                ),
            ])],
            &token_a,
            a,
        )
        .await;
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    assert!(pages >= 4);
    let unique: HashSet<_> = seen.iter().cloned().collect();
    assert_eq!(unique.len(), seen.len(), "no row twice");
    for original in &originals {
        assert!(
            unique.contains(&(original.date.clone(), original.external_id.clone())),
            "{} missing",
            original.external_id
        );
    }
    assert!(
        seen.windows(2).all(|w| w[0] <= w[1]),
        "ordered by date, external id"
    );

    // A token is bound to its filters.
    let first = client
        .list_records(request(filter.clone(), &token_a, Some(a)))
        .await
        .unwrap()
        .into_inner();
    let err = client
        .list_records(request(
            pb::ListRecordsRequest {
                source: "google_ads".into(),
                page_token: first.next_page_token,
                ..filter
            },
            &token_a,
            Some(a),
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
}

#[tokio::test]
async fn viewers_read_but_cannot_ingest() {
    let db = TestDb::new().await;
    let a = seed_tenants(&db, 1).await[0];
    let analytics = start_analytics(&db).await;
    let mut client = PerformanceServiceClient::new(analytics.channel().await);
    let viewer = token(&[a], Role::Viewer);
    // A record written by an analyst gives the viewer something to read, so an
    // empty listing cannot pass for a working one.
    let analyst = token(&[a], Role::Analyst);
    let stored = record("2024-01-01", pb::RecordLevel::Campaign, "by-analyst");
    let reply = ingest(&mut client, vec![batch(vec![stored])], &analyst, a).await;
    assert_eq!((reply.inserted, reply.rejected), (1, 0));
    let err = client
        .ingest_records(request(
            tokio_stream::iter(vec![batch(vec![record(
                "2024-01-01",
                pb::RecordLevel::Campaign,
                "by-viewer",
            )])]),
            &viewer,
            Some(a),
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    // The viewer reads exactly the analyst's record: the refused ingest, with
    // a key of its own, wrote nothing.
    let seen: Vec<String> = list_all(&mut client, Default::default(), &viewer, a)
        .await
        .into_iter()
        .map(|r| r.external_id)
        .collect();
    assert_eq!(seen, vec!["by-analyst"]);
}

async fn get(
    client: &mut SnapshotServiceClient<Channel>,
    source: &str,
    token: &str,
    tenant: TenantId,
) -> pb::GetSnapshotResponse {
    client
        .get_snapshot(request(
            pb::GetSnapshotRequest {
                source: source.into(),
            },
            token,
            Some(tenant),
        ))
        .await
        .unwrap()
        .into_inner()
}

fn status(code: i32) -> pb::SnapshotCacheStatus {
    pb::SnapshotCacheStatus::try_from(code).unwrap()
}

#[tokio::test]
async fn snapshot_is_a_miss_then_a_hit_then_refreshed_with_new_figures() {
    let db = TestDb::new().await;
    let a = seed_tenants(&db, 1).await[0];
    let analytics = start_analytics(&db).await;
    let mut perf = PerformanceServiceClient::new(analytics.channel().await);
    let mut client = SnapshotServiceClient::new(analytics.channel().await);
    let token_a = token(&[a], Role::Analyst);
    let day = today();
    let mut google = figures(record(&day, pb::RecordLevel::Campaign, "g1"), 50, 5, 0, "1");
    google.source = "google_ads".into();
    ingest(
        &mut perf,
        vec![batch(vec![
            figures(
                record(&day, pb::RecordLevel::Campaign, "c1"),
                1000,
                20,
                2,
                "10",
            ),
            google,
        ])],
        &token_a,
        a,
    )
    .await;

    let miss = get(&mut client, "meta", &token_a, a).await;
    assert_eq!(status(miss.cache_status), pb::SnapshotCacheStatus::Miss);
    assert_eq!(miss.ttl_seconds, 300);
    let snap = miss.snapshot.unwrap();
    assert_eq!(
        (snap.source.as_str(), snap.end_date.as_str()),
        ("meta", day.as_str())
    );
    let totals = snap.totals.clone().unwrap();
    assert_eq!((totals.impressions, totals.spend.as_str()), (1000, "10"));
    close(totals.cpa, 5.0);
    let groups: Vec<pb::MetricsGroupBy> = snap.breakdowns.iter().map(|b| b.group_by()).collect();
    assert_eq!(
        groups,
        vec![
            pb::MetricsGroupBy::Day,
            pb::MetricsGroupBy::Campaign,
            pb::MetricsGroupBy::Platform
        ]
    );
    assert_eq!(snap.breakdowns[0].rows[0].key, day);

    let hit = get(&mut client, "meta", &token_a, a).await;
    assert_eq!(status(hit.cache_status), pb::SnapshotCacheStatus::Hit);
    assert_eq!(hit.generate_time, miss.generate_time);
    assert_eq!(hit.snapshot.unwrap(), snap);

    // Every source together is its own snapshot.
    let all = get(&mut client, "", &token_a, a).await;
    assert_eq!(status(all.cache_status), pb::SnapshotCacheStatus::Miss);
    assert_eq!(all.snapshot.unwrap().totals.unwrap().impressions, 1050);

    // New data is not visible until a refresh.
    ingest(
        &mut perf,
        vec![batch(vec![figures(
            record(&day, pb::RecordLevel::Campaign, "c2"),
            500,
            0,
            0,
            "5",
        )])],
        &token_a,
        a,
    )
    .await;
    let stale = get(&mut client, "meta", &token_a, a).await;
    assert_eq!(status(stale.cache_status), pb::SnapshotCacheStatus::Hit);
    assert_eq!(stale.snapshot.unwrap().totals.unwrap().impressions, 1000);

    let refreshed = client
        .refresh_snapshot(request(
            pb::RefreshSnapshotRequest {
                source: "meta".into(),
            },
            &token_a,
            Some(a),
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        status(refreshed.cache_status),
        pb::SnapshotCacheStatus::Refreshed
    );
    assert_eq!(
        refreshed.snapshot.unwrap().totals.unwrap().impressions,
        1500
    );
    assert!(refreshed.generate_time.unwrap().seconds >= miss.generate_time.unwrap().seconds);
    assert_ne!(refreshed.generate_time, miss.generate_time);

    let after = get(&mut client, "meta", &token_a, a).await;
    assert_eq!(status(after.cache_status), pb::SnapshotCacheStatus::Hit);
    assert_eq!(after.generate_time, refreshed.generate_time);
    assert_eq!(after.snapshot.unwrap().totals.unwrap().impressions, 1500);
}

/// Analytics' snapshot service with a given TTL, wired as `server()` does.
async fn snapshots_with_ttl(
    db: &TestDb,
    ttl: Duration,
) -> (Channel, tokio::sync::oneshot::Sender<()>) {
    let cfg = config(db, ServiceRole::Analytics);
    let database = Database::connect(&cfg.db_config(ServiceRole::Analytics)).unwrap();
    let server = GrpcServer::from_config(&cfg, adscope_analytics::policy())
        .add_service(pb::snapshot_service_server::SnapshotServiceServer::new(
            adscope_analytics::snapshots::Snapshots::with_ttl(database.clone(), ttl),
        ))
        .add_service(
            pb::performance_service_server::PerformanceServiceServer::new(
                adscope_analytics::performance::Performance::new(database),
            ),
        );
    let listener = TcpListener::bind(cfg.listen_addr).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(server.serve(listener, async move {
        let _ = stopped.await;
    }));
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    (channel, stop)
}

#[tokio::test]
async fn a_snapshot_older_than_its_ttl_is_recomputed() {
    let db = TestDb::new().await;
    let a = seed_tenants(&db, 1).await[0];
    let (channel, _stop) = snapshots_with_ttl(&db, Duration::from_secs(1)).await;
    let mut client = SnapshotServiceClient::new(channel.clone());
    let mut perf = PerformanceServiceClient::new(channel);
    let token_a = token(&[a], Role::Analyst);
    ingest(
        &mut perf,
        vec![batch(vec![record(
            &today(),
            pb::RecordLevel::Campaign,
            "c1",
        )])],
        &token_a,
        a,
    )
    .await;

    let miss = get(&mut client, "meta", &token_a, a).await;
    assert_eq!(status(miss.cache_status), pb::SnapshotCacheStatus::Miss);
    assert_eq!(miss.ttl_seconds, 1);
    let hit = get(&mut client, "meta", &token_a, a).await;
    assert_eq!(status(hit.cache_status), pb::SnapshotCacheStatus::Hit);
    tokio::time::sleep(Duration::from_millis(1300)).await;
    let expired = get(&mut client, "meta", &token_a, a).await;
    assert_eq!(status(expired.cache_status), pb::SnapshotCacheStatus::Miss);
    assert!(expired.generate_time.unwrap().seconds > miss.generate_time.unwrap().seconds);
    assert_eq!(expired.snapshot.unwrap().totals.unwrap().impressions, 100);
}

#[tokio::test]
async fn concurrent_snapshot_misses_compute_one_consistent_row() {
    let db = TestDb::new().await;
    let tenants = seed_tenants(&db, 2).await;
    let (a, b) = (tenants[0], tenants[1]);
    let analytics = start_analytics(&db).await;
    let channel = analytics.channel().await;
    let mut perf = PerformanceServiceClient::new(channel.clone());
    let (token_a, token_b) = (token(&[a], Role::Analyst), token(&[b], Role::Analyst));
    let day = today();
    ingest(
        &mut perf,
        vec![batch(vec![figures(
            record(&day, pb::RecordLevel::Campaign, "c1"),
            777,
            7,
            1,
            "3",
        )])],
        &token_a,
        a,
    )
    .await;

    let calls = (0..8).map(|i| {
        let mut client = SnapshotServiceClient::new(channel.clone());
        let (token, tenant) = if i % 4 == 3 {
            (token_b.clone(), b)
        } else {
            (token_a.clone(), a)
        };
        async move { (tenant, get(&mut client, "meta", &token, tenant).await) }
    });
    let replies = futures_util::future::join_all(calls).await;
    let a_replies: Vec<_> = replies
        .iter()
        .filter(|(t, _)| *t == a)
        .map(|(_, r)| r)
        .collect();
    let b_replies: Vec<_> = replies
        .iter()
        .filter(|(t, _)| *t == b)
        .map(|(_, r)| r)
        .collect();
    assert_eq!((a_replies.len(), b_replies.len()), (6, 2));
    for replies in [&a_replies, &b_replies] {
        let misses = replies
            .iter()
            .filter(|r| status(r.cache_status) == pb::SnapshotCacheStatus::Miss)
            .count();
        assert_eq!(misses, 1, "computed once per tenant");
        let times: HashSet<_> = replies
            .iter()
            .map(|r| {
                r.generate_time.unwrap().seconds * 1_000_000_000
                    + i64::from(r.generate_time.unwrap().nanos)
            })
            .collect();
        assert_eq!(times.len(), 1, "every caller got the same row");
    }
    for r in &a_replies {
        assert_eq!(
            r.snapshot
                .as_ref()
                .unwrap()
                .totals
                .as_ref()
                .unwrap()
                .impressions,
            777
        );
    }
    for r in &b_replies {
        assert_eq!(
            r.snapshot
                .as_ref()
                .unwrap()
                .totals
                .as_ref()
                .unwrap()
                .impressions,
            0
        );
    }
    let mut client = SnapshotServiceClient::new(channel);
    let again = get(&mut client, "meta", &token_a, a).await;
    assert_eq!(status(again.cache_status), pb::SnapshotCacheStatus::Hit);
    assert_eq!(again.generate_time, a_replies[0].generate_time);
}

#[tokio::test]
async fn a_flood_of_bad_records_is_counted_in_full_and_listed_up_to_the_bound() {
    use adscope_analytics::performance::MAX_LISTED_REJECTIONS;

    let db = TestDb::new().await;
    let a = seed_tenants(&db, 1).await[0];
    let analytics = start_analytics(&db).await;
    let mut client = PerformanceServiceClient::new(analytics.channel().await);
    let token_a = token(&[a], Role::Analyst);

    let bad = MAX_LISTED_REJECTIONS + 250;
    let mut records: Vec<pb::PerformanceRecord> = (0..bad)
        .map(|i| pb::PerformanceRecord {
            spend: "not money".into(),
            ..record("2024-03-01", pb::RecordLevel::Campaign, &format!("bad-{i}"))
        })
        .collect();
    records.push(record("2024-03-01", pb::RecordLevel::Campaign, "good"));
    let reply = ingest(&mut client, vec![batch(records)], &token_a, a).await;

    assert_eq!(reply.inserted, 1, "the good record still lands");
    assert_eq!(reply.rejected, bad as i64, "every rejection is counted");
    assert_eq!(reply.rejected_records.len(), MAX_LISTED_REJECTIONS);
    // The listed ones are the first, in stream order.
    let indexes: Vec<i64> = reply.rejected_records.iter().map(|r| r.index).collect();
    let first: Vec<i64> = (0..MAX_LISTED_REJECTIONS as i64).collect();
    assert_eq!(indexes, first);
    assert_eq!(reply.rejected_records[0].external_id, "bad-0");
}

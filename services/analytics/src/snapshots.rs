//! `adscope.analytics.v1.SnapshotService`: cached metrics payloads.
//!
//! One row per tenant and source in `snapshots`. A read that finds a row
//! younger than the TTL is a HIT and costs one statement. Otherwise the
//! recompute runs in one tenant-scoped transaction that first takes a
//! transaction-level advisory lock on (tenant, source): concurrent misses
//! queue on it, the first computes and upserts the whole row, and the rest
//! then find that fresh row and serve it, so the row is written once and
//! never half-written.

use std::time::Duration;

use adscope_db::Database;
use adscope_proto::analytics::v1 as pb;
use adscope_tenancy::{TenantContext, tenant_context};
use chrono::{DateTime, Utc};
use diesel::QueryableByName;
use diesel::sql_types::{Bool, Int4, Jsonb, Text, Timestamptz};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use futures_util::FutureExt;
use tonic::{Request, Response, Status};

use crate::convert::timestamp;
use crate::error::ApiError;
use crate::performance::metrics::{self, MetricsQuery, MetricsSqlRow};

/// TTL unless `ADSCOPE_SNAPSHOT_TTL_SECS` says otherwise.
pub const DEFAULT_TTL: Duration = Duration::from_secs(300);
/// Days a snapshot covers, ending today (UTC).
pub const WINDOW_DAYS: i64 = 30;
/// The breakdowns every snapshot carries.
const BREAKDOWNS: [pb::MetricsGroupBy; 3] = [
    pb::MetricsGroupBy::Day,
    pb::MetricsGroupBy::Campaign,
    pb::MetricsGroupBy::Platform,
];

/// Handlers over the tenant-scoped pool.
#[derive(Debug, Clone)]
pub struct Snapshots {
    db: Database,
    ttl_seconds: i32,
}

impl Snapshots {
    /// Snapshots served from cache for `ttl` after they are computed
    /// (whole seconds; capped at `i32::MAX`).
    pub fn with_ttl(db: Database, ttl: Duration) -> Self {
        let ttl_seconds = i32::try_from(ttl.as_secs()).unwrap_or(i32::MAX);
        Snapshots { db, ttl_seconds }
    }
}

/// A stored snapshot and whether it is younger than the TTL.
#[derive(QueryableByName)]
struct Stored {
    #[diesel(sql_type = Jsonb)]
    payload: serde_json::Value,
    #[diesel(sql_type = Timestamptz)]
    generated_at: DateTime<Utc>,
    #[diesel(sql_type = Bool)]
    fresh: bool,
}

const READ: &str = "SELECT payload, generated_at,
       generated_at > now() - make_interval(secs => $2) AS fresh
FROM snapshots WHERE source = $1";

const LOCK: &str = "SELECT pg_advisory_xact_lock(hashtextextended(current_setting('app.tenant_id') || '/' || $1, 0))";

const UPSERT: &str = "INSERT INTO snapshots AS s (tenant_id, source, payload, generated_at)
VALUES (current_setting('app.tenant_id')::uuid, $1, $2, now())
ON CONFLICT (tenant_id, source) DO UPDATE SET payload = EXCLUDED.payload,
    generated_at = EXCLUDED.generated_at
RETURNING payload, generated_at, true AS fresh";

/// A metrics row as stored in the payload.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct RowJson {
    key: String,
    label: String,
    impressions: i64,
    clicks: i64,
    reach: i64,
    conversions: i64,
    spend: String,
    ctr: Option<f64>,
    cpc: Option<f64>,
    cpm: Option<f64>,
    cpa: Option<f64>,
    roas: Option<f64>,
}

#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct BreakdownJson {
    /// The MetricsGroupBy value name, e.g. "METRICS_GROUP_BY_DAY".
    group_by: String,
    rows: Vec<RowJson>,
}

/// The stored payload: `MetricsSnapshot` as readable JSON.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct PayloadJson {
    source: String,
    start_date: String,
    end_date: String,
    totals: RowJson,
    breakdowns: Vec<BreakdownJson>,
}

impl From<pb::MetricsRow> for RowJson {
    fn from(r: pb::MetricsRow) -> Self {
        RowJson {
            key: r.key,
            label: r.label,
            impressions: r.impressions,
            clicks: r.clicks,
            reach: r.reach,
            conversions: r.conversions,
            spend: r.spend,
            ctr: r.ctr,
            cpc: r.cpc,
            cpm: r.cpm,
            cpa: r.cpa,
            roas: r.roas,
        }
    }
}

impl From<RowJson> for pb::MetricsRow {
    fn from(r: RowJson) -> Self {
        pb::MetricsRow {
            key: r.key,
            label: r.label,
            impressions: r.impressions,
            clicks: r.clicks,
            reach: r.reach,
            conversions: r.conversions,
            spend: r.spend,
            ctr: r.ctr,
            cpc: r.cpc,
            cpm: r.cpm,
            cpa: r.cpa,
            roas: r.roas,
        }
    }
}

fn to_json(snapshot: pb::MetricsSnapshot) -> serde_json::Value {
    let payload = PayloadJson {
        source: snapshot.source,
        start_date: snapshot.start_date,
        end_date: snapshot.end_date,
        totals: snapshot.totals.unwrap_or_default().into(),
        breakdowns: snapshot
            .breakdowns
            .into_iter()
            .map(|b| BreakdownJson {
                group_by: pb::MetricsGroupBy::try_from(b.group_by)
                    .unwrap_or_default()
                    .as_str_name()
                    .to_owned(),
                rows: b.rows.into_iter().map(Into::into).collect(),
            })
            .collect(),
    };
    // Plain strings, integers and finite floats (SQL float8 from sums of
    // finite numbers) always serialise.
    serde_json::to_value(payload).unwrap_or_default()
}

/// The stored payload as a message; `None` when it does not parse (it is
/// then recomputed).
fn from_json(value: serde_json::Value) -> Option<pb::MetricsSnapshot> {
    let payload: PayloadJson = serde_json::from_value(value).ok()?;
    Some(pb::MetricsSnapshot {
        source: payload.source,
        start_date: payload.start_date,
        end_date: payload.end_date,
        totals: Some(payload.totals.into()),
        breakdowns: payload
            .breakdowns
            .into_iter()
            .map(|b| pb::MetricsBreakdown {
                group_by: pb::MetricsGroupBy::from_str_name(&b.group_by)
                    .unwrap_or_default()
                    .into(),
                rows: b.rows.into_iter().map(Into::into).collect(),
            })
            .collect(),
    })
}

/// A snapshot as served, with how it was produced.
struct Served {
    snapshot: pb::MetricsSnapshot,
    generated_at: DateTime<Utc>,
    status: pb::SnapshotCacheStatus,
}

/// The snapshot a READ found, when its row is fresh and its payload parses;
/// otherwise the caller recomputes.
fn hit(stored: Vec<Stored>) -> Option<Served> {
    let row = stored.into_iter().next().filter(|row| row.fresh)?;
    Some(Served {
        snapshot: from_json(row.payload)?,
        generated_at: row.generated_at,
        status: pb::SnapshotCacheStatus::Hit,
    })
}

fn validate_source(source: &str) -> Result<String, ApiError> {
    let source = source.trim();
    if source.len() > 100 {
        return Err(ApiError::invalid(
            "source",
            "must be at most 100 characters",
        ));
    }
    Ok(source.to_owned())
}

/// Computes the snapshot of `source` over the window ending today, one
/// pipelined statement per part on the unit's connection.
async fn compute(conn: &AsyncPgConnection, source: &str) -> Result<pb::MetricsSnapshot, ApiError> {
    let end = Utc::now().date_naive();
    let start = end - chrono::Duration::days(WINDOW_DAYS - 1);
    let query = |group_by| MetricsQuery {
        start,
        end,
        group_by,
        // Campaign-level figures: every breakdown here groups at or above
        // the campaign, so lower levels would count the same spend again.
        level: "campaign",
        source: (!source.is_empty()).then(|| source.to_owned()),
        campaign_id: None,
        platform: None,
    };
    let (mut c1, mut c2, mut c3) = (conn, conn, conn);
    let (day, campaign, platform) = tokio::join!(
        metrics::statement(&query(BREAKDOWNS[0])).load::<MetricsSqlRow>(&mut c1),
        metrics::statement(&query(BREAKDOWNS[1])).load::<MetricsSqlRow>(&mut c2),
        metrics::statement(&query(BREAKDOWNS[2])).load::<MetricsSqlRow>(&mut c3),
    );
    let (totals, day) = metrics::assemble(day?);
    let breakdowns = [
        (BREAKDOWNS[0], day),
        (BREAKDOWNS[1], metrics::assemble(campaign?).1),
    ]
    .into_iter()
    .chain([(BREAKDOWNS[2], metrics::assemble(platform?).1)])
    .map(|(group_by, rows)| pb::MetricsBreakdown {
        group_by: group_by.into(),
        rows,
    })
    .collect();
    Ok(pb::MetricsSnapshot {
        source: source.to_owned(),
        start_date: start.format("%Y-%m-%d").to_string(),
        end_date: end.format("%Y-%m-%d").to_string(),
        totals: Some(totals),
        breakdowns,
    })
}

impl Snapshots {
    /// Under the (tenant, source) lock: serve a row another caller just
    /// made fresh (unless `force`), else compute and upsert.
    async fn recompute(
        &self,
        ctx: &TenantContext,
        source: String,
        force: bool,
    ) -> Result<Served, ApiError> {
        let ttl = self.ttl_seconds;
        self.db
            .scoped(ctx, move |conn| {
                async move {
                    let mut c = conn;
                    diesel::sql_query(LOCK)
                        .bind::<Text, _>(&source)
                        .execute(&mut c)
                        .await?;
                    if !force {
                        let stored: Vec<Stored> = diesel::sql_query(READ)
                            .bind::<Text, _>(&source)
                            .bind::<Int4, _>(ttl)
                            .load(&mut c)
                            .await?;
                        if let Some(served) = hit(stored) {
                            return Ok(served);
                        }
                    }
                    let snapshot = compute(conn, &source).await?;
                    let written: Vec<Stored> = diesel::sql_query(UPSERT)
                        .bind::<Text, _>(&source)
                        .bind::<Jsonb, _>(to_json(snapshot.clone()))
                        .load(&mut c)
                        .await?;
                    let generated_at = written
                        .into_iter()
                        .next()
                        .map(|r| r.generated_at)
                        .ok_or(diesel::result::Error::NotFound)?;
                    Ok(Served {
                        snapshot,
                        generated_at,
                        status: if force {
                            pb::SnapshotCacheStatus::Refreshed
                        } else {
                            pb::SnapshotCacheStatus::Miss
                        },
                    })
                }
                .boxed()
            })
            .await
    }
}

#[tonic::async_trait]
impl pb::snapshot_service_server::SnapshotService for Snapshots {
    async fn get_snapshot(
        &self,
        request: Request<pb::GetSnapshotRequest>,
    ) -> Result<Response<pb::GetSnapshotResponse>, Status> {
        let ctx = tenant_context(&request)?.clone();
        let source = validate_source(&request.get_ref().source)?;
        let stored: Vec<Stored> = self
            .db
            .scoped_load(
                &ctx,
                diesel::sql_query(READ)
                    .bind::<Text, _>(source.clone())
                    .bind::<Int4, _>(self.ttl_seconds),
            )
            .await
            .map_err(ApiError::from)?;
        let served = match hit(stored) {
            Some(served) => served,
            None => self.recompute(&ctx, source, false).await?,
        };
        Ok(Response::new(pb::GetSnapshotResponse {
            snapshot: Some(served.snapshot),
            cache_status: served.status.into(),
            generate_time: Some(timestamp(served.generated_at)),
            ttl_seconds: self.ttl_seconds,
        }))
    }

    async fn refresh_snapshot(
        &self,
        request: Request<pb::RefreshSnapshotRequest>,
    ) -> Result<Response<pb::RefreshSnapshotResponse>, Status> {
        let ctx = tenant_context(&request)?.clone();
        let source = validate_source(&request.get_ref().source)?;
        let served = self.recompute(&ctx, source, true).await?;
        Ok(Response::new(pb::RefreshSnapshotResponse {
            snapshot: Some(served.snapshot),
            cache_status: served.status.into(),
            generate_time: Some(timestamp(served.generated_at)),
            ttl_seconds: self.ttl_seconds,
        }))
    }
}

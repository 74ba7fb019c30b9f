//! `adscope.analytics.v1.PerformanceService`: ingest, records and metrics.

pub(crate) mod metrics;
mod validate;

use std::collections::HashSet;

use adscope_db::Database;
use adscope_proto::analytics::v1 as pb;
use adscope_tenancy::{TenantContext, tenant_context};
use chrono::{DateTime, NaiveDate, Utc};
use diesel::QueryableByName;
use diesel::sql_types::{Array, Bool, Date, Int8, Nullable, Text, Timestamptz, Uuid as SqlUuid};
use tonic::{Request, Response, Status, Streaming};
use uuid::Uuid;

use crate::convert::{platform_name, timestamp};
use crate::error::{ApiError, Violations};
use crate::pagination;
use metrics::{MetricsQuery, MetricsSqlRow};
use validate::{Valid, parse_date, validate_record};

/// Records written per statement. The rows travel as one array per column
/// (14 bind parameters whatever the size), so PostgreSQL's 65535-parameter
/// limit does not bound it; the size only trades memory for round trips.
const CHUNK: usize = 5000;

/// How many rejected records a reply lists (its `rejected` count covers
/// them all): a stream of millions of bad records must not become a reply
/// too large to send.
pub const MAX_LISTED_REJECTIONS: usize = 1000;

/// Handlers over the tenant-scoped pool.
#[derive(Debug, Clone)]
pub struct Performance {
    db: Database,
}

impl Performance {
    pub fn new(db: Database) -> Self {
        Performance { db }
    }
}

/// Upserts one chunk in the tenant's scope, linking each record to the
/// tenant's campaign, ad set and ad of the same external id (row-level
/// security restricts the joins to the tenant's own rows). Re-ingesting a
/// record refreshes its links, so records sent before their campaign existed
/// link once sent again.
const UPSERT: &str = "
INSERT INTO performance_records AS r (
    tenant_id, date, level, source, external_id,
    campaign_external_id, ad_set_external_id, ad_external_id,
    campaign_id, ad_set_id, ad_id,
    impressions, reach, clicks, conversions, spend, currency)
SELECT $1, u.date, u.level, u.source, u.external_id,
       u.campaign_external_id, u.ad_set_external_id, u.ad_external_id,
       c.id, s.id, a.id,
       u.impressions, u.reach, u.clicks, u.conversions, u.spend::numeric, u.currency
FROM unnest($2::date[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[],
            $9::int8[], $10::int8[], $11::int8[], $12::int8[], $13::text[], $14::text[])
     AS u(date, level, source, external_id, campaign_external_id, ad_set_external_id,
          ad_external_id, impressions, reach, clicks, conversions, spend, currency)
LEFT JOIN campaigns c ON u.campaign_external_id <> '' AND c.tenant_id = $1
                     AND c.external_id = u.campaign_external_id
LEFT JOIN ad_sets s ON u.ad_set_external_id <> '' AND s.tenant_id = $1
                   AND s.external_id = u.ad_set_external_id
LEFT JOIN ads a ON u.ad_external_id <> '' AND a.tenant_id = $1
               AND a.external_id = u.ad_external_id
ON CONFLICT (tenant_id, source, external_id, date, level) DO UPDATE SET
    campaign_external_id = EXCLUDED.campaign_external_id,
    ad_set_external_id = EXCLUDED.ad_set_external_id,
    ad_external_id = EXCLUDED.ad_external_id,
    campaign_id = EXCLUDED.campaign_id,
    ad_set_id = EXCLUDED.ad_set_id,
    ad_id = EXCLUDED.ad_id,
    impressions = EXCLUDED.impressions,
    reach = EXCLUDED.reach,
    clicks = EXCLUDED.clicks,
    conversions = EXCLUDED.conversions,
    spend = EXCLUDED.spend,
    currency = EXCLUDED.currency,
    updated_at = now()
RETURNING (xmax = 0) AS inserted";

#[derive(QueryableByName)]
struct Upserted {
    #[diesel(sql_type = Bool)]
    inserted: bool,
}

/// The records a stream rejected: all counted, the first
/// [`MAX_LISTED_REJECTIONS`] listed.
#[derive(Default)]
struct Rejections {
    count: i64,
    listed: Vec<pb::RejectedRecord>,
}

impl Rejections {
    fn push(&mut self, record: pb::RejectedRecord) {
        self.count += 1;
        if self.listed.len() < MAX_LISTED_REJECTIONS {
            self.listed.push(record);
        }
    }
}

/// A chunk of valid records, column by column.
#[derive(Default)]
struct Chunk {
    keys: HashSet<(String, String, NaiveDate, &'static str)>,
    date: Vec<NaiveDate>,
    level: Vec<&'static str>,
    source: Vec<String>,
    external_id: Vec<String>,
    campaign_external_id: Vec<String>,
    ad_set_external_id: Vec<String>,
    ad_external_id: Vec<String>,
    impressions: Vec<i64>,
    reach: Vec<i64>,
    clicks: Vec<i64>,
    conversions: Vec<i64>,
    spend: Vec<String>,
    currency: Vec<String>,
}

impl Chunk {
    fn len(&self) -> usize {
        self.date.len()
    }

    /// Whether the chunk already holds a record with `v`'s key: one
    /// statement cannot upsert the same row twice, so such a record starts
    /// the next chunk (and then counts as an update, as it would if sent
    /// later).
    fn holds(&self, v: &Valid) -> bool {
        self.keys
            .contains(&(v.source.clone(), v.external_id.clone(), v.date, v.level))
    }

    fn push(&mut self, v: Valid) {
        self.keys
            .insert((v.source.clone(), v.external_id.clone(), v.date, v.level));
        self.date.push(v.date);
        self.level.push(v.level);
        self.source.push(v.source);
        self.external_id.push(v.external_id);
        self.campaign_external_id.push(v.campaign_external_id);
        self.ad_set_external_id.push(v.ad_set_external_id);
        self.ad_external_id.push(v.ad_external_id);
        self.impressions.push(v.impressions);
        self.reach.push(v.reach);
        self.clicks.push(v.clicks);
        self.conversions.push(v.conversions);
        self.spend.push(v.spend);
        self.currency.push(v.currency);
    }

    /// Writes the chunk as one statement in its own tenant-scoped
    /// transaction; returns (inserted, updated).
    async fn write(self, db: &Database, ctx: &TenantContext) -> Result<(i64, i64), ApiError> {
        let statement = diesel::sql_query(UPSERT)
            .bind::<SqlUuid, _>(*ctx.tenant_id().as_uuid())
            .bind::<Array<Date>, _>(self.date)
            .bind::<Array<Text>, _>(self.level)
            .bind::<Array<Text>, _>(self.source)
            .bind::<Array<Text>, _>(self.external_id)
            .bind::<Array<Text>, _>(self.campaign_external_id)
            .bind::<Array<Text>, _>(self.ad_set_external_id)
            .bind::<Array<Text>, _>(self.ad_external_id)
            .bind::<Array<Int8>, _>(self.impressions)
            .bind::<Array<Int8>, _>(self.reach)
            .bind::<Array<Int8>, _>(self.clicks)
            .bind::<Array<Int8>, _>(self.conversions)
            .bind::<Array<Text>, _>(self.spend)
            .bind::<Array<Text>, _>(self.currency);
        let rows: Vec<Upserted> = db.scoped_load(ctx, statement).await?;
        let inserted = rows.iter().filter(|r| r.inserted).count() as i64;
        Ok((inserted, rows.len() as i64 - inserted))
    }
}

/// One stored record as ListRecords reads it.
#[derive(QueryableByName)]
struct RecordRow {
    #[diesel(sql_type = SqlUuid)]
    id: Uuid,
    #[diesel(sql_type = Text)]
    date: String,
    #[diesel(sql_type = Text)]
    level: String,
    #[diesel(sql_type = Text)]
    source: String,
    #[diesel(sql_type = Text)]
    external_id: String,
    #[diesel(sql_type = Text)]
    campaign_external_id: String,
    #[diesel(sql_type = Text)]
    ad_set_external_id: String,
    #[diesel(sql_type = Text)]
    ad_external_id: String,
    #[diesel(sql_type = Nullable<SqlUuid>)]
    campaign_id: Option<Uuid>,
    #[diesel(sql_type = Nullable<SqlUuid>)]
    ad_set_id: Option<Uuid>,
    #[diesel(sql_type = Nullable<SqlUuid>)]
    ad_id: Option<Uuid>,
    #[diesel(sql_type = Int8)]
    impressions: i64,
    #[diesel(sql_type = Int8)]
    reach: i64,
    #[diesel(sql_type = Int8)]
    clicks: i64,
    #[diesel(sql_type = Int8)]
    conversions: i64,
    #[diesel(sql_type = Text)]
    spend: String,
    #[diesel(sql_type = Text)]
    currency: String,
    #[diesel(sql_type = Timestamptz)]
    created_at: DateTime<Utc>,
    #[diesel(sql_type = Timestamptz)]
    updated_at: DateTime<Utc>,
}

impl From<RecordRow> for pb::PerformanceRecord {
    fn from(row: RecordRow) -> Self {
        let id = |id: Option<Uuid>| id.map(|id| id.to_string()).unwrap_or_default();
        pb::PerformanceRecord {
            date: row.date,
            level: metrics::level_of(&row.level).into(),
            source: row.source,
            external_id: row.external_id,
            campaign_external_id: row.campaign_external_id,
            ad_set_external_id: row.ad_set_external_id,
            ad_external_id: row.ad_external_id,
            impressions: row.impressions,
            reach: row.reach,
            clicks: row.clicks,
            conversions: row.conversions,
            spend: row.spend,
            currency: row.currency,
            campaign_id: id(row.campaign_id),
            ad_set_id: id(row.ad_set_id),
            ad_id: id(row.ad_id),
            create_time: Some(timestamp(row.created_at)),
            update_time: Some(timestamp(row.updated_at)),
        }
    }
}

/// Keyset listing in (date, external_id, id) order; every filter is a
/// nullable parameter, so the statement text never changes.
const LIST: &str = "
SELECT r.id, to_char(r.date, 'YYYY-MM-DD') AS date, r.level, r.source, r.external_id,
       r.campaign_external_id, r.ad_set_external_id, r.ad_external_id,
       r.campaign_id, r.ad_set_id, r.ad_id,
       r.impressions, r.reach, r.clicks, r.conversions, trim_scale(r.spend)::text AS spend,
       r.currency, r.created_at, r.updated_at
FROM performance_records r
WHERE ($1::date IS NULL OR r.date >= $1)
  AND ($2::date IS NULL OR r.date <= $2)
  AND ($3::text IS NULL OR r.level = $3)
  AND ($4::text IS NULL OR r.source = $4)
  AND ($5::uuid IS NULL OR r.campaign_id = $5)
  AND ($6::date IS NULL OR (r.date, r.external_id, r.id) > ($6, $7, $8))
ORDER BY r.date, r.external_id, r.id
LIMIT $9";

fn optional_date(field: &str, text: &str, violations: &mut Violations) -> Option<NaiveDate> {
    if text.is_empty() {
        return None;
    }
    violations.check(parse_date(text).map_err(|reason| ApiError::invalid(field, reason)))
}

fn optional_uuid(field: &str, text: &str, violations: &mut Violations) -> Option<Uuid> {
    if text.is_empty() {
        return None;
    }
    violations.check(
        Uuid::parse_str(text).map_err(|_| ApiError::invalid(field, "must be a UUID or empty")),
    )
}

fn level_filter(raw: i32, violations: &mut Violations) -> Option<Option<&'static str>> {
    match pb::RecordLevel::try_from(raw) {
        Ok(level) => Some(metrics::level_name(level)),
        Err(_) => {
            violations.add("level", format!("unknown record level {raw}"));
            None
        }
    }
}

#[tonic::async_trait]
impl pb::performance_service_server::PerformanceService for Performance {
    /// Validates every record, rejecting bad ones with their index in the
    /// whole stream, and upserts the good ones in chunks of [`CHUNK`].
    ///
    /// Each chunk is its own transaction: a stream that fails midway (the
    /// client goes away, the database fails) keeps the chunks already
    /// committed, which is safe because the upsert is idempotent and the
    /// client can resend the whole stream. Reading and validating the next
    /// chunk overlaps the write of the previous one.
    async fn ingest_records(
        &self,
        request: Request<Streaming<pb::IngestRecordsRequest>>,
    ) -> Result<Response<pb::IngestRecordsResponse>, Status> {
        let ctx = tenant_context(&request)?.clone();
        let mut stream = request.into_inner();
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Chunk>(2);

        let reader = async move {
            let mut rejected = Rejections::default();
            let mut index: i64 = 0;
            let mut chunk = Chunk::default();
            while let Some(message) = stream.message().await? {
                for record in message.records {
                    let position = index;
                    index += 1;
                    match validate_record(record) {
                        Ok(valid) => {
                            if chunk.len() >= CHUNK || chunk.holds(&valid) {
                                let full = std::mem::take(&mut chunk);
                                if tx.send(full).await.is_err() {
                                    // The writer stopped; its error is the answer.
                                    return Ok(rejected);
                                }
                            }
                            chunk.push(valid);
                        }
                        Err((external_id, reason)) => rejected.push(pb::RejectedRecord {
                            index: position,
                            reason,
                            external_id,
                        }),
                    }
                }
            }
            if chunk.len() > 0 {
                let _ = tx.send(chunk).await;
            }
            Ok::<_, Status>(rejected)
        };
        let writer = async {
            let (mut inserted, mut updated) = (0i64, 0i64);
            while let Some(chunk) = rx.recv().await {
                let (i, u) = chunk.write(&self.db, &ctx).await.map_err(Status::from)?;
                inserted += i;
                updated += u;
            }
            Ok::<_, Status>((inserted, updated))
        };
        // Either side failing ends the call at once: a failed write stops
        // reading the stream, a broken stream stops writing.
        let (rejected, (inserted, updated)) = tokio::try_join!(reader, writer)?;
        Ok(Response::new(pb::IngestRecordsResponse {
            inserted,
            updated,
            rejected: rejected.count,
            rejected_records: rejected.listed,
        }))
    }

    async fn list_records(
        &self,
        request: Request<pb::ListRecordsRequest>,
    ) -> Result<Response<pb::ListRecordsResponse>, Status> {
        let ctx = tenant_context(&request)?.clone();
        let req = request.into_inner();
        let mut violations = Violations::new();
        let start = optional_date("start_date", &req.start_date, &mut violations);
        let end = optional_date("end_date", &req.end_date, &mut violations);
        let level = level_filter(req.level, &mut violations).flatten();
        let campaign_id = optional_uuid("campaign_id", &req.campaign_id, &mut violations);
        let size = violations.check(pagination::page_size(req.page_size));
        if let (Some(start), Some(end)) = (start, end)
            && end < start
        {
            violations.add("end_date", "must not be before start_date");
        }
        violations.finish()?;
        let size = size.unwrap_or(pagination::DEFAULT_PAGE_SIZE);

        let tenant = *ctx.tenant_id().as_uuid();
        let query = pagination::fingerprint(&[
            "performance_records",
            &req.start_date,
            &req.end_date,
            level.unwrap_or(""),
            &req.source,
            &req.campaign_id,
        ]);
        let cursor = pagination::decode(&req.page_token, tenant, query)?;
        let bad_token =
            || ApiError::invalid("page_token", "is not a page token this listing issued");
        let after = match cursor {
            None => None,
            Some(k) => {
                let [date, external_id, id] =
                    <[String; 3]>::try_from(k).map_err(|_| bad_token())?;
                let date = parse_date(&date).map_err(|_| bad_token())?;
                let id = Uuid::parse_str(&id).map_err(|_| bad_token())?;
                Some((date, external_id, id))
            }
        };
        let source = (!req.source.is_empty()).then_some(req.source);
        let statement = diesel::sql_query(LIST)
            .bind::<Nullable<Date>, _>(start)
            .bind::<Nullable<Date>, _>(end)
            .bind::<Nullable<Text>, _>(level)
            .bind::<Nullable<Text>, _>(source)
            .bind::<Nullable<SqlUuid>, _>(campaign_id)
            .bind::<Nullable<Date>, _>(after.as_ref().map(|a| a.0))
            .bind::<Nullable<Text>, _>(after.as_ref().map(|a| a.1.clone()))
            .bind::<Nullable<SqlUuid>, _>(after.as_ref().map(|a| a.2))
            .bind::<Int8, _>(size + 1);
        let mut rows: Vec<RecordRow> = self
            .db
            .scoped_load(&ctx, statement)
            .await
            .map_err(ApiError::from)?;
        let next_page_token = adscope_server::page::trim_page(&mut rows, size)
            .map(|last| {
                pagination::encode(
                    tenant,
                    query,
                    vec![
                        last.date.clone(),
                        last.external_id.clone(),
                        last.id.to_string(),
                    ],
                )
            })
            .unwrap_or_default();
        Ok(Response::new(pb::ListRecordsResponse {
            records: rows.into_iter().map(Into::into).collect(),
            next_page_token,
        }))
    }

    async fn query_metrics(
        &self,
        request: Request<pb::QueryMetricsRequest>,
    ) -> Result<Response<pb::QueryMetricsResponse>, Status> {
        let ctx = tenant_context(&request)?.clone();
        let req = request.into_inner();
        let query = metrics_query(req)?;
        let rows: Vec<MetricsSqlRow> = self
            .db
            .scoped_load(&ctx, metrics::statement(&query))
            .await
            .map_err(ApiError::from)?;
        let (totals, series) = metrics::assemble(rows);
        Ok(Response::new(pb::QueryMetricsResponse {
            totals: Some(totals),
            series,
        }))
    }
}

/// Validates a QueryMetrics request, reporting every bad field at once.
fn metrics_query(req: pb::QueryMetricsRequest) -> Result<MetricsQuery, ApiError> {
    let mut violations = Violations::new();
    let required = |field: &str, text: &str, violations: &mut Violations| {
        if text.is_empty() {
            violations.add(field, "is required, as \"YYYY-MM-DD\"");
            None
        } else {
            optional_date(field, text, violations)
        }
    };
    let start = required("start_date", &req.start_date, &mut violations);
    let end = required("end_date", &req.end_date, &mut violations);
    if let (Some(start), Some(end)) = (start, end)
        && end < start
    {
        violations.add("end_date", "must not be before start_date");
    }
    let group_by = match pb::MetricsGroupBy::try_from(req.group_by) {
        Ok(pb::MetricsGroupBy::Unspecified) => {
            violations.add(
                "group_by",
                "is required: DAY, CAMPAIGN, AD_SET, AD or PLATFORM",
            );
            None
        }
        Ok(group_by) => Some(group_by),
        Err(_) => {
            violations.add("group_by", format!("unknown grouping {}", req.group_by));
            None
        }
    };
    let level = level_filter(req.level, &mut violations);
    let platform = match pb::Platform::try_from(req.platform) {
        Ok(platform) => platform_name(platform),
        Err(_) => {
            violations.add("platform", format!("unknown platform {}", req.platform));
            None
        }
    };
    let campaign_id = optional_uuid("campaign_id", &req.campaign_id, &mut violations);
    violations.finish()?;
    match (start, end, group_by, level) {
        (Some(start), Some(end), Some(group_by), Some(level)) => Ok(MetricsQuery {
            start,
            end,
            group_by,
            level: level.unwrap_or_else(|| metrics::default_level(group_by)),
            source: (!req.source.is_empty()).then_some(req.source),
            campaign_id,
            platform: platform.map(str::to_owned),
        }),
        // Every `None` above recorded a violation, so finish() returned.
        _ => Err(ApiError::invalid("", "invalid metrics query")),
    }
}

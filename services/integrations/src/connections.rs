//! `adscope.integrations.v1.ConnectionService`, and the sync operations the
//! webhook and the scheduler share with it.

use std::str::FromStr;

use adscope_db::Database;
use adscope_db::schema::{connections, sync_jobs};
use adscope_proto::integrations::v1 as pb;
use adscope_tenancy::{TenantContext, tenant_context};
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Int4, Nullable, Text, Timestamptz, Uuid as SqlUuid};
use diesel_async::RunQueryDsl;
use futures_util::FutureExt;
use prost_types::Timestamp;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::airbyte::{AirbyteClient, AirbyteError, JobReport, JobState};
use crate::error::ApiError;

/// Handlers over the tenant-scoped pool and the Airbyte API.
#[derive(Debug, Clone)]
pub struct Connections {
    db: Database,
    airbyte: Option<AirbyteClient>,
}

impl Connections {
    pub fn new(db: Database, airbyte: Option<AirbyteClient>) -> Self {
        Connections { db, airbyte }
    }
}

/// A stored connection.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = connections)]
pub struct ConnectionRow {
    pub id: Uuid,
    pub name: String,
    pub provider: String,
    pub airbyte_connection_id: Uuid,
    pub workspace_id: Option<Uuid>,
    pub schedule_kind: String,
    pub schedule_interval_minutes: Option<i32>,
    pub schedule_cron: Option<String>,
    pub active: bool,
    pub last_job_id: Option<i64>,
    pub last_job_status: Option<String>,
    pub last_job_started_at: Option<DateTime<Utc>>,
    pub last_job_ended_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A stored sync job.
#[derive(Debug, Clone, Queryable, Selectable, QueryableByName)]
#[diesel(table_name = sync_jobs)]
pub struct JobRow {
    pub id: Uuid,
    pub connection_id: Uuid,
    pub airbyte_job_id: i64,
    pub status: String,
    pub started_at: Option<DateTime<Utc>>,
    pub ended_at: Option<DateTime<Utc>>,
    pub duration_seconds: Option<i64>,
    pub records_synced: i64,
    pub bytes_synced: i64,
    pub error: Option<String>,
    pub attempts: i32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// When a connection syncs on its own.
#[derive(Debug, Clone, PartialEq)]
pub enum Schedule {
    Manual,
    Interval {
        minutes: i32,
    },
    Cron {
        expression: String,
        parsed: Box<cron::Schedule>,
    },
}

/// Longest interval accepted: one year.
const MAX_INTERVAL_MINUTES: i32 = 525_600;

/// A five-field cron expression, evaluated in UTC (the parser wants a
/// leading seconds field).
pub fn parse_cron(expression: &str) -> Result<cron::Schedule, String> {
    let expression = expression.trim();
    let fields = expression.split_whitespace().count();
    if fields != 5 {
        return Err(format!(
            "must be a five-field cron expression (minute hour day month weekday), \
             e.g. \"0 */6 * * *\"; got {fields} fields"
        ));
    }
    cron::Schedule::from_str(&format!("0 {expression}"))
        .map_err(|e| format!("is not a valid cron expression: {e}"))
}

impl Schedule {
    fn from_proto(schedule: Option<&pb::Schedule>) -> Result<Schedule, ApiError> {
        use pb::schedule::Kind;
        match schedule.and_then(|s| s.kind.as_ref()) {
            None | Some(Kind::Manual(_)) => Ok(Schedule::Manual),
            Some(Kind::Interval(interval)) => {
                if interval.minutes < 1 || interval.minutes > MAX_INTERVAL_MINUTES {
                    return Err(ApiError::invalid(
                        "connection.schedule.interval.minutes",
                        format!("must be between 1 and {MAX_INTERVAL_MINUTES}"),
                    ));
                }
                Ok(Schedule::Interval {
                    minutes: interval.minutes,
                })
            }
            Some(Kind::Cron(cron)) => {
                let parsed = parse_cron(&cron.expression)
                    .map_err(|e| ApiError::invalid("connection.schedule.cron.expression", e))?;
                Ok(Schedule::Cron {
                    expression: cron.expression.trim().to_owned(),
                    parsed: Box::new(parsed),
                })
            }
        }
    }

    fn of_row(row: &ConnectionRow) -> Schedule {
        match (
            row.schedule_kind.as_str(),
            row.schedule_interval_minutes,
            &row.schedule_cron,
        ) {
            ("interval", Some(minutes), _) => Schedule::Interval { minutes },
            ("cron", _, Some(expression)) => match parse_cron(expression) {
                Ok(parsed) => Schedule::Cron {
                    expression: expression.clone(),
                    parsed: Box::new(parsed),
                },
                Err(_) => Schedule::Manual,
            },
            _ => Schedule::Manual,
        }
    }

    fn columns(&self) -> (&'static str, Option<i32>, Option<String>) {
        match self {
            Schedule::Manual => ("manual", None, None),
            Schedule::Interval { minutes } => ("interval", Some(*minutes), None),
            Schedule::Cron { expression, .. } => ("cron", None, Some(expression.clone())),
        }
    }

    fn to_proto(&self) -> pb::Schedule {
        use pb::schedule::Kind;
        let kind = match self {
            Schedule::Manual => Kind::Manual(pb::schedule::Manual {}),
            Schedule::Interval { minutes } => {
                Kind::Interval(pb::schedule::Interval { minutes: *minutes })
            }
            Schedule::Cron { expression, .. } => Kind::Cron(pb::schedule::Cron {
                expression: expression.clone(),
            }),
        };
        pb::Schedule { kind: Some(kind) }
    }
}

impl ConnectionRow {
    /// When the scheduler next syncs this connection; `None` for manual or
    /// inactive ones. A connection that never ran is due from its creation.
    pub fn next_sync_time(&self) -> Option<DateTime<Utc>> {
        if !self.active {
            return None;
        }
        let since = self.last_job_started_at;
        match Schedule::of_row(self) {
            Schedule::Manual => None,
            Schedule::Interval { minutes } => Some(match since {
                None => self.created_at,
                Some(start) => start + chrono::Duration::minutes(i64::from(minutes)),
            }),
            Schedule::Cron { parsed, .. } => match since {
                None => Some(self.created_at),
                Some(start) => parsed.after(&start).next(),
            },
        }
    }

    /// Whether a sync is due at `now`: active, scheduled, not running, and
    /// its schedule fired since the last sync started.
    pub fn is_due(&self, now: DateTime<Utc>) -> bool {
        let running = matches!(
            self.last_job_status.as_deref(),
            Some("pending") | Some("running")
        );
        !running && self.next_sync_time().is_some_and(|next| next <= now)
    }
}

fn timestamp(time: DateTime<Utc>) -> Timestamp {
    Timestamp {
        seconds: time.timestamp(),
        nanos: i32::try_from(time.timestamp_subsec_nanos()).unwrap_or(0),
    }
}

fn job_status(name: Option<&str>) -> pb::JobStatus {
    match name.map(JobState::parse) {
        None => pb::JobStatus::Unspecified,
        Some(JobState::Pending) => pb::JobStatus::Pending,
        Some(JobState::Running) => pb::JobStatus::Running,
        Some(JobState::Succeeded) => pb::JobStatus::Succeeded,
        Some(JobState::Failed) => pb::JobStatus::Failed,
        Some(JobState::Cancelled) => pb::JobStatus::Cancelled,
        Some(JobState::Incomplete) => pb::JobStatus::Incomplete,
    }
}

impl From<ConnectionRow> for pb::Connection {
    fn from(row: ConnectionRow) -> Self {
        let next = row.next_sync_time();
        pb::Connection {
            id: row.id.to_string(),
            schedule: Some(Schedule::of_row(&row).to_proto()),
            name: row.name,
            provider: row.provider,
            airbyte_connection_id: row.airbyte_connection_id.to_string(),
            workspace_id: row.workspace_id.map(|w| w.to_string()).unwrap_or_default(),
            active: row.active,
            last_job_id: row.last_job_id.unwrap_or(0),
            last_job_status: job_status(row.last_job_status.as_deref()).into(),
            last_job_start_time: row.last_job_started_at.map(timestamp),
            last_job_end_time: row.last_job_ended_at.map(timestamp),
            last_error: row.last_error.unwrap_or_default(),
            create_time: Some(timestamp(row.created_at)),
            update_time: Some(timestamp(row.updated_at)),
            next_sync_time: next.map(timestamp),
        }
    }
}

impl From<JobRow> for pb::Job {
    fn from(row: JobRow) -> Self {
        let duration = row.duration_seconds.or_else(|| {
            row.started_at
                .filter(|_| row.ended_at.is_none())
                .map(|start| (Utc::now() - start).num_seconds().max(0))
        });
        pb::Job {
            id: row.id.to_string(),
            connection_id: row.connection_id.to_string(),
            airbyte_job_id: row.airbyte_job_id,
            status: job_status(Some(&row.status)).into(),
            start_time: row.started_at.map(timestamp),
            end_time: row.ended_at.map(timestamp),
            duration_seconds: duration.unwrap_or(0),
            records_synced: row.records_synced,
            bytes_synced: row.bytes_synced,
            error: row.error.unwrap_or_default(),
            create_time: Some(timestamp(row.created_at)),
            update_time: Some(timestamp(row.updated_at)),
        }
    }
}

/// A resource id from a request: malformed is `INVALID_ARGUMENT`.
fn parse_id(field: &str, id: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(id.trim())
        .map_err(|_| ApiError::invalid(field, format!("must be a UUID, got {id:?}")))
}

/// The editable fields of a connection, validated.
#[derive(Debug, Insertable, AsChangeset)]
#[diesel(table_name = connections, treat_none_as_null = true)]
struct ConnectionFields {
    name: String,
    provider: String,
    airbyte_connection_id: Uuid,
    workspace_id: Option<Uuid>,
    schedule_kind: String,
    schedule_interval_minutes: Option<i32>,
    schedule_cron: Option<String>,
    active: bool,
}

#[derive(Debug, Insertable)]
#[diesel(table_name = connections)]
struct NewConnection {
    tenant_id: Uuid,
    #[diesel(embed)]
    fields: ConnectionFields,
}

fn field_name(value: &str) -> Result<String, String> {
    let value = value.trim();
    if value.is_empty() {
        return Err("is required".into());
    }
    if value.chars().count() > 200 {
        return Err("is longer than 200 characters".into());
    }
    Ok(value.to_owned())
}

fn field_provider(value: &str) -> Result<String, String> {
    let value = value.trim();
    if value.is_empty() {
        return Err("is required, e.g. \"meta\" or \"google_ads\"".into());
    }
    if value.len() > 64
        || !value
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    {
        return Err(format!(
            "must be lower case letters, digits and underscores (at most 64), got {value:?}"
        ));
    }
    Ok(value.to_owned())
}

fn field_uuid(value: &str, required: bool) -> Result<Option<Uuid>, String> {
    let value = value.trim();
    if value.is_empty() {
        return if required {
            Err("is required (a UUID)".into())
        } else {
            Ok(None)
        };
    }
    Uuid::parse_str(value)
        .map(Some)
        .map_err(|_| format!("must be a UUID, got {value:?}"))
}

/// Validates every field of `connection`, reporting all violations at once.
fn fields_of(connection: &pb::Connection) -> Result<ConnectionFields, ApiError> {
    let mut violations = Vec::new();
    fn check<T>(
        violations: &mut Vec<tonic_types::FieldViolation>,
        field: &str,
        result: Result<T, String>,
    ) -> Option<T> {
        match result {
            Ok(value) => Some(value),
            Err(description) => {
                violations.push(tonic_types::FieldViolation::new(
                    format!("connection.{field}"),
                    description,
                ));
                None
            }
        }
    }
    let name = check(&mut violations, "name", field_name(&connection.name));
    let provider = check(
        &mut violations,
        "provider",
        field_provider(&connection.provider),
    );
    let airbyte = check(
        &mut violations,
        "airbyte_connection_id",
        field_uuid(&connection.airbyte_connection_id, true),
    );
    let workspace = check(
        &mut violations,
        "workspace_id",
        field_uuid(&connection.workspace_id, false),
    );
    let schedule = match Schedule::from_proto(connection.schedule.as_ref()) {
        Ok(schedule) => Some(schedule),
        Err(ApiError::Invalid(mut more)) => {
            violations.append(&mut more);
            None
        }
        Err(other) => return Err(other),
    };
    match (name, provider, airbyte, workspace, schedule) {
        (Some(name), Some(provider), Some(Some(airbyte)), Some(workspace), Some(schedule))
            if violations.is_empty() =>
        {
            let (kind, minutes, cron) = schedule.columns();
            Ok(ConnectionFields {
                name,
                provider,
                airbyte_connection_id: airbyte,
                workspace_id: workspace,
                schedule_kind: kind.to_owned(),
                schedule_interval_minutes: minutes,
                schedule_cron: cron,
                active: connection.active,
            })
        }
        _ => Err(ApiError::Invalid(violations)),
    }
}

fn duplicate(error: ApiError, airbyte: Uuid) -> ApiError {
    match error {
        ApiError::Db(adscope_db::DbError::Query(diesel::result::Error::DatabaseError(
            diesel::result::DatabaseErrorKind::UniqueViolation,
            _,
        ))) => ApiError::AlreadyExists(format!(
            "a connection with airbyte_connection_id {airbyte} is already registered"
        )),
        other => other,
    }
}

/// Loads one connection of the tenant; another tenant's id is `NotFound`.
pub async fn load_connection(
    db: &Database,
    ctx: &TenantContext,
    id: Uuid,
) -> Result<ConnectionRow, ApiError> {
    let rows: Vec<ConnectionRow> = db
        .scoped_load(
            ctx,
            connections::table
                .filter(connections::id.eq(id))
                .select(ConnectionRow::as_select())
                .limit(1),
        )
        .await?;
    rows.into_iter()
        .next()
        .ok_or(ApiError::NotFound("connection"))
}

/// The tenant's active scheduled connections due at `now`.
pub async fn due_connections(
    db: &Database,
    ctx: &TenantContext,
    now: DateTime<Utc>,
) -> Result<Vec<ConnectionRow>, ApiError> {
    let rows: Vec<ConnectionRow> = db
        .scoped_load(
            ctx,
            connections::table
                .filter(connections::active.eq(true))
                .filter(connections::schedule_kind.ne("manual"))
                .order((connections::created_at.asc(), connections::id.asc()))
                .select(ConnectionRow::as_select()),
        )
        .await?;
    Ok(rows.into_iter().filter(|row| row.is_due(now)).collect())
}

/// What recording a job report did.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub job: JobRow,
    /// Whether the report changed anything; a repeated report changes nothing.
    pub changed: bool,
}

const UPSERT_JOB: &str = "\
INSERT INTO sync_jobs (tenant_id, connection_id, airbyte_job_id, status, started_at, ended_at,
                       duration_seconds, records_synced, bytes_synced, error, attempts)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
ON CONFLICT (tenant_id, connection_id, airbyte_job_id) DO UPDATE SET
    status = EXCLUDED.status, started_at = EXCLUDED.started_at, ended_at = EXCLUDED.ended_at,
    duration_seconds = EXCLUDED.duration_seconds, records_synced = EXCLUDED.records_synced,
    bytes_synced = EXCLUDED.bytes_synced, error = EXCLUDED.error, attempts = EXCLUDED.attempts,
    updated_at = now()
WHERE (sync_jobs.status, sync_jobs.started_at, sync_jobs.ended_at, sync_jobs.duration_seconds,
       sync_jobs.records_synced, sync_jobs.bytes_synced, sync_jobs.error, sync_jobs.attempts)
      IS DISTINCT FROM
      (EXCLUDED.status, EXCLUDED.started_at, EXCLUDED.ended_at, EXCLUDED.duration_seconds,
       EXCLUDED.records_synced, EXCLUDED.bytes_synced, EXCLUDED.error, EXCLUDED.attempts)
  -- A late report of a running job never undoes its end.
  AND NOT (sync_jobs.status NOT IN ('pending', 'running')
           AND EXCLUDED.status IN ('pending', 'running'))
RETURNING id, connection_id, airbyte_job_id, status, started_at, ended_at, duration_seconds,
          records_synced, bytes_synced, error, attempts, created_at, updated_at";

const UPDATE_LAST_JOB: &str = "\
UPDATE connections SET last_job_id = $2, last_job_status = $3, last_job_started_at = $4,
                       last_job_ended_at = $5, last_error = $6, updated_at = now()
WHERE id = $1
  AND (last_job_id IS NULL OR last_job_id <= $2)
  AND (last_job_id, last_job_status, last_job_started_at, last_job_ended_at, last_error)
      IS DISTINCT FROM ($2, $3, $4, $5, $6)";

/// Records a job report for a connection of the tenant: an idempotent
/// upsert of the job, and the connection's last-job fields when it is the
/// newest job.
pub async fn record_job(
    db: &Database,
    ctx: &TenantContext,
    connection_id: Uuid,
    report: &JobReport,
) -> Result<Recorded, ApiError> {
    let tenant = *ctx.tenant_id().as_uuid();
    let report = report.clone();
    db.scoped(ctx, move |conn| {
        async move {
            let mut c = conn;
            let changed: Vec<JobRow> = diesel::sql_query(UPSERT_JOB)
                .bind::<SqlUuid, _>(tenant)
                .bind::<SqlUuid, _>(connection_id)
                .bind::<BigInt, _>(report.airbyte_job_id)
                .bind::<Text, _>(report.state.as_str())
                .bind::<Nullable<Timestamptz>, _>(report.started_at)
                .bind::<Nullable<Timestamptz>, _>(report.ended_at)
                .bind::<Nullable<BigInt>, _>(report.duration_seconds())
                .bind::<BigInt, _>(report.records_synced)
                .bind::<BigInt, _>(report.bytes_synced)
                .bind::<Nullable<Text>, _>(report.error.clone())
                .bind::<Int4, _>(report.attempts)
                .load(&mut c)
                .await?;
            let (job, changed) = match changed.into_iter().next() {
                Some(job) => (job, true),
                None => {
                    let job = sync_jobs::table
                        .filter(sync_jobs::connection_id.eq(connection_id))
                        .filter(sync_jobs::airbyte_job_id.eq(report.airbyte_job_id))
                        .select(JobRow::as_select())
                        .get_result(&mut c)
                        .await?;
                    (job, false)
                }
            };
            diesel::sql_query(UPDATE_LAST_JOB)
                .bind::<SqlUuid, _>(connection_id)
                .bind::<BigInt, _>(job.airbyte_job_id)
                .bind::<Text, _>(job.status.clone())
                .bind::<Nullable<Timestamptz>, _>(job.started_at)
                .bind::<Nullable<Timestamptz>, _>(job.ended_at)
                .bind::<Nullable<Text>, _>(job.error.clone())
                .execute(&mut c)
                .await?;
            Ok::<_, ApiError>(Recorded { job, changed })
        }
        .boxed()
    })
    .await
}

/// Starts a sync of one of the tenant's connections in Airbyte and records
/// the job it started.
pub async fn trigger_sync(
    db: &Database,
    airbyte: Option<&AirbyteClient>,
    ctx: &TenantContext,
    connection_id: Uuid,
) -> Result<JobRow, ApiError> {
    let report = start_sync(db, airbyte, ctx, connection_id).await?;
    Ok(record_job(db, ctx, connection_id, &report).await?.job)
}

/// Asks Airbyte to sync the tenant's connection and returns the job it
/// started, without recording it: a caller that retries must retry the
/// recording alone, or a failed write would start a second sync.
pub async fn start_sync(
    db: &Database,
    airbyte: Option<&AirbyteClient>,
    ctx: &TenantContext,
    connection_id: Uuid,
) -> Result<JobReport, ApiError> {
    let connection = load_connection(db, ctx, connection_id).await?;
    let client = airbyte.ok_or(AirbyteError::NotConfigured)?;
    let started = client
        .trigger_sync(connection.airbyte_connection_id)
        .await?;
    // The sync answer already names the job; its details are a refinement,
    // and failing to read them must not lose the job.
    Ok(match client.get_job(started.airbyte_job_id).await {
        Ok(report) if report.airbyte_job_id == started.airbyte_job_id => report,
        Ok(_) => started,
        Err(error) => {
            tracing::warn!(%error, job = started.airbyte_job_id, "could not read the job just started");
            started
        }
    })
}

fn cursor_time(value: &str) -> Result<DateTime<Utc>, ApiError> {
    DateTime::parse_from_rfc3339(value)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| ApiError::invalid("page_token", "is not a page token this listing issued"))
}

fn cursor_id(value: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(value)
        .map_err(|_| ApiError::invalid("page_token", "is not a page token this listing issued"))
}

fn rfc3339(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
}

#[tonic::async_trait]
impl pb::connection_service_server::ConnectionService for Connections {
    async fn create_connection(
        &self,
        request: Request<pb::CreateConnectionRequest>,
    ) -> Result<Response<pb::CreateConnectionResponse>, Status> {
        let ctx = tenant_context(&request)?.clone();
        let connection = request
            .into_inner()
            .connection
            .ok_or_else(|| ApiError::invalid("connection", "is required"))?;
        let fields = fields_of(&connection)?;
        let airbyte = fields.airbyte_connection_id;
        let row = NewConnection {
            tenant_id: *ctx.tenant_id().as_uuid(),
            fields,
        };
        let created: Vec<ConnectionRow> = self
            .db
            .scoped_load(
                &ctx,
                diesel::insert_into(connections::table)
                    .values(row)
                    .returning(ConnectionRow::as_returning()),
            )
            .await
            .map_err(|e| duplicate(e.into(), airbyte))?;
        let created = created
            .into_iter()
            .next()
            .ok_or(ApiError::NotFound("connection"))?;
        Ok(Response::new(pb::CreateConnectionResponse {
            connection: Some(created.into()),
        }))
    }

    async fn get_connection(
        &self,
        request: Request<pb::GetConnectionRequest>,
    ) -> Result<Response<pb::GetConnectionResponse>, Status> {
        let ctx = tenant_context(&request)?.clone();
        let id = parse_id("id", &request.get_ref().id)?;
        let row = load_connection(&self.db, &ctx, id).await?;
        Ok(Response::new(pb::GetConnectionResponse {
            connection: Some(row.into()),
        }))
    }

    async fn list_connections(
        &self,
        request: Request<pb::ListConnectionsRequest>,
    ) -> Result<Response<pb::ListConnectionsResponse>, Status> {
        let ctx = tenant_context(&request)?.clone();
        let req = request.into_inner();
        let size = adscope_server::page::page_size(req.page_size)?;
        let by_name = req.order_by() == pb::ConnectionOrderBy::Name;
        let query_id = adscope_server::page::fingerprint(&[
            if by_name { "name" } else { "created" },
            if req.descending { "desc" } else { "asc" },
            if req.due { "due" } else { "all" },
        ]);
        let tenant = *ctx.tenant_id().as_uuid();
        let cursor = adscope_server::page::decode(&req.page_token, tenant, query_id)?;

        let mut query = connections::table
            .select(ConnectionRow::as_select())
            .into_boxed();
        if req.due {
            query = query
                .filter(connections::active.eq(true))
                .filter(connections::schedule_kind.ne("manual"));
        }
        if let Some(cursor) = &cursor {
            let [key, id] = cursor.as_slice() else {
                return Err(ApiError::invalid(
                    "page_token",
                    "is not a page token this listing issued",
                )
                .into());
            };
            let id = cursor_id(id)?;
            query = match (by_name, req.descending) {
                (true, false) => query.filter(
                    connections::name.gt(key.clone()).or(connections::name
                        .eq(key.clone())
                        .and(connections::id.gt(id))),
                ),
                (true, true) => query.filter(
                    connections::name.lt(key.clone()).or(connections::name
                        .eq(key.clone())
                        .and(connections::id.lt(id))),
                ),
                (false, false) => {
                    let at = cursor_time(key)?;
                    query.filter(
                        connections::created_at
                            .gt(at)
                            .or(connections::created_at.eq(at).and(connections::id.gt(id))),
                    )
                }
                (false, true) => {
                    let at = cursor_time(key)?;
                    query.filter(
                        connections::created_at
                            .lt(at)
                            .or(connections::created_at.eq(at).and(connections::id.lt(id))),
                    )
                }
            };
        }
        query = match (by_name, req.descending) {
            (true, false) => query.order((connections::name.asc(), connections::id.asc())),
            (true, true) => query.order((connections::name.desc(), connections::id.desc())),
            (false, false) => query.order((connections::created_at.asc(), connections::id.asc())),
            (false, true) => query.order((connections::created_at.desc(), connections::id.desc())),
        };
        // Whether a cron schedule fired is computed here, not in SQL: a due
        // listing reads the tenant's scheduled connections and filters them.
        if !req.due {
            query = query.limit(size + 1);
        }
        let rows: Vec<ConnectionRow> = self
            .db
            .scoped_load(&ctx, query)
            .await
            .map_err(ApiError::from)?;
        let now = Utc::now();
        let mut rows: Vec<ConnectionRow> = rows
            .into_iter()
            .filter(|row| !req.due || row.is_due(now))
            .take(usize::try_from(size + 1).unwrap_or(usize::MAX))
            .collect();
        let next_page_token = match adscope_server::page::trim_page(&mut rows, size) {
            Some(last) => {
                let key = if by_name {
                    last.name.clone()
                } else {
                    rfc3339(last.created_at)
                };
                adscope_server::page::encode(tenant, query_id, vec![key, last.id.to_string()])
            }
            None => String::new(),
        };
        Ok(Response::new(pb::ListConnectionsResponse {
            connections: rows.into_iter().map(Into::into).collect(),
            next_page_token,
        }))
    }

    async fn update_connection(
        &self,
        request: Request<pb::UpdateConnectionRequest>,
    ) -> Result<Response<pb::UpdateConnectionResponse>, Status> {
        let ctx = tenant_context(&request)?.clone();
        let req = request.into_inner();
        let patch = req
            .connection
            .ok_or_else(|| ApiError::invalid("connection", "is required"))?;
        let id = parse_id("connection.id", &patch.id)?;
        // An empty mask means every updatable field, as in analytics.
        let mut paths = req.update_mask.map(|m| m.paths).unwrap_or_default();
        if paths.is_empty() {
            paths = [
                "name",
                "provider",
                "airbyte_connection_id",
                "workspace_id",
                "schedule",
                "active",
            ]
            .map(String::from)
            .to_vec();
        }
        for path in &paths {
            if !matches!(
                path.as_str(),
                "name"
                    | "provider"
                    | "airbyte_connection_id"
                    | "workspace_id"
                    | "schedule"
                    | "active"
            ) {
                return Err(ApiError::invalid(
                    "update_mask",
                    format!(
                        "{path:?} cannot be updated; updatable fields are name, provider, \
                         airbyte_connection_id, workspace_id, schedule, active"
                    ),
                )
                .into());
            }
        }
        let current = load_connection(&self.db, &ctx, id).await?;
        // The new state: the current one with the masked fields replaced,
        // validated as a whole.
        let mut merged = pb::Connection::from(current.clone());
        for path in &paths {
            match path.as_str() {
                "name" => merged.name = patch.name.clone(),
                "provider" => merged.provider = patch.provider.clone(),
                "airbyte_connection_id" => {
                    merged.airbyte_connection_id = patch.airbyte_connection_id.clone();
                }
                "workspace_id" => merged.workspace_id = patch.workspace_id.clone(),
                "schedule" => merged.schedule = patch.schedule.clone(),
                _ => merged.active = patch.active,
            }
        }
        let fields = fields_of(&merged)?;
        let airbyte = fields.airbyte_connection_id;
        let updated: Vec<ConnectionRow> = self
            .db
            .scoped_load(
                &ctx,
                diesel::update(connections::table.filter(connections::id.eq(id)))
                    .set((fields, connections::updated_at.eq(Utc::now())))
                    .returning(ConnectionRow::as_returning()),
            )
            .await
            .map_err(|e| duplicate(e.into(), airbyte))?;
        let updated = updated
            .into_iter()
            .next()
            .ok_or(ApiError::NotFound("connection"))?;
        Ok(Response::new(pb::UpdateConnectionResponse {
            connection: Some(updated.into()),
        }))
    }

    async fn delete_connection(
        &self,
        request: Request<pb::DeleteConnectionRequest>,
    ) -> Result<Response<pb::DeleteConnectionResponse>, Status> {
        let ctx = tenant_context(&request)?.clone();
        let id = parse_id("id", &request.get_ref().id)?;
        let deleted = self
            .db
            .scoped_execute(
                &ctx,
                diesel::delete(connections::table.filter(connections::id.eq(id))),
            )
            .await
            .map_err(ApiError::from)?;
        if deleted == 0 {
            return Err(ApiError::NotFound("connection").into());
        }
        Ok(Response::new(pb::DeleteConnectionResponse {}))
    }

    async fn trigger_sync(
        &self,
        request: Request<pb::TriggerSyncRequest>,
    ) -> Result<Response<pb::TriggerSyncResponse>, Status> {
        let ctx = tenant_context(&request)?.clone();
        let id = parse_id("connection_id", &request.get_ref().connection_id)?;
        let job = trigger_sync(&self.db, self.airbyte.as_ref(), &ctx, id).await?;
        Ok(Response::new(pb::TriggerSyncResponse {
            job: Some(job.into()),
        }))
    }

    async fn list_jobs(
        &self,
        request: Request<pb::ListJobsRequest>,
    ) -> Result<Response<pb::ListJobsResponse>, Status> {
        let ctx = tenant_context(&request)?.clone();
        let req = request.into_inner();
        let size = adscope_server::page::page_size(req.page_size)?;
        let connection = if req.connection_id.trim().is_empty() {
            None
        } else {
            Some(parse_id("connection_id", &req.connection_id)?)
        };
        let tenant = *ctx.tenant_id().as_uuid();
        let filter = connection.map(|c| c.to_string()).unwrap_or_default();
        let query_id = adscope_server::page::fingerprint(&["jobs", &filter]);
        let cursor = match adscope_server::page::decode(&req.page_token, tenant, query_id)? {
            None => None,
            Some(cursor) => match cursor.as_slice() {
                [at, id] => Some((cursor_time(at)?, cursor_id(id)?)),
                _ => {
                    return Err(ApiError::invalid(
                        "page_token",
                        "is not a page token this listing issued",
                    )
                    .into());
                }
            },
        };
        let rows: Vec<JobRow> = self
            .db
            .scoped(&ctx, move |conn| {
                async move {
                    let mut c = conn;
                    if let Some(connection) = connection {
                        // Another tenant's connection is as absent as a
                        // missing one.
                        let found: i64 = connections::table
                            .filter(connections::id.eq(connection))
                            .count()
                            .get_result(&mut c)
                            .await?;
                        if found == 0 {
                            return Err(ApiError::NotFound("connection"));
                        }
                    }
                    let mut query = sync_jobs::table.select(JobRow::as_select()).into_boxed();
                    if let Some(connection) = connection {
                        query = query.filter(sync_jobs::connection_id.eq(connection));
                    }
                    if let Some((at, id)) = cursor {
                        query = query.filter(BoolExpressionMethods::or(
                            sync_jobs::created_at.lt(at),
                            sync_jobs::created_at.eq(at).and(sync_jobs::id.lt(id)),
                        ));
                    }
                    Ok(query
                        .order((sync_jobs::created_at.desc(), sync_jobs::id.desc()))
                        .limit(size + 1)
                        .load(&mut c)
                        .await?)
                }
                .boxed()
            })
            .await?;
        let mut rows = rows;
        let next_page_token = adscope_server::page::trim_page(&mut rows, size)
            .map(|last| {
                adscope_server::page::encode(
                    tenant,
                    query_id,
                    vec![rfc3339(last.created_at), last.id.to_string()],
                )
            })
            .unwrap_or_default();
        Ok(Response::new(pb::ListJobsResponse {
            jobs: rows.into_iter().map(Into::into).collect(),
            next_page_token,
        }))
    }

    async fn get_sync_status(
        &self,
        request: Request<pb::GetSyncStatusRequest>,
    ) -> Result<Response<pb::GetSyncStatusResponse>, Status> {
        let ctx = tenant_context(&request)?.clone();
        let (rows, latest, successes) = self
            .db
            .scoped(&ctx, |conn| {
                async move {
                    let (mut c1, mut c2, mut c3) = (conn, conn, conn);
                    // Three independent reads, pipelined on one connection.
                    let (rows, latest, successes) = tokio::join!(
                        connections::table
                            .order((connections::name.asc(), connections::id.asc()))
                            .select(ConnectionRow::as_select())
                            .load::<ConnectionRow>(&mut c1),
                        sync_jobs::table
                            .order((sync_jobs::created_at.desc(), sync_jobs::id.desc()))
                            .select(JobRow::as_select())
                            .limit(1)
                            .load::<JobRow>(&mut c2),
                        sync_jobs::table
                            .filter(sync_jobs::status.eq("succeeded"))
                            .group_by(sync_jobs::connection_id)
                            .select((
                                sync_jobs::connection_id,
                                diesel::dsl::max(sync_jobs::ended_at),
                            ))
                            .load::<(Uuid, Option<DateTime<Utc>>)>(&mut c3),
                    );
                    Ok::<_, ApiError>((rows?, latest?, successes?))
                }
                .boxed()
            })
            .await?;
        let successes: std::collections::HashMap<Uuid, DateTime<Utc>> = successes
            .into_iter()
            .filter_map(|(id, at)| at.map(|at| (id, at)))
            .collect();
        let connections = rows
            .into_iter()
            .map(|row| pb::ConnectionSyncSummary {
                connection_id: row.id.to_string(),
                last_job_status: job_status(row.last_job_status.as_deref()).into(),
                last_job_start_time: row.last_job_started_at.map(timestamp),
                last_job_end_time: row.last_job_ended_at.map(timestamp),
                last_success_time: successes.get(&row.id).copied().map(timestamp),
                last_error: row.last_error.unwrap_or_default(),
                name: row.name,
                provider: row.provider,
                active: row.active,
            })
            .collect();
        Ok(Response::new(pb::GetSyncStatusResponse {
            latest_job: latest.into_iter().next().map(Into::into),
            connections,
        }))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // unit tests

    use super::*;

    #[test]
    fn five_field_cron_expressions_parse_and_others_are_refused() {
        assert!(parse_cron("0 */6 * * *").is_ok());
        assert!(parse_cron("*/15 * * * 1-5").is_ok());
        assert!(parse_cron("0 0 */6 * * *").is_err());
        assert!(parse_cron("61 * * * *").is_err());
        assert!(parse_cron("every hour").is_err());
    }
}

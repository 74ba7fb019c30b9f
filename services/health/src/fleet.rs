//! `adscope.fleet.v1.FleetService`: ids, counts and times across tenants.
//!
//! Every figure is computed in SQL (one grouped statement per reply, plus a
//! catalog probe for the snapshots table), over the read-only fleet pool.
//! The statements name only ids, states and times: no tenant name, person,
//! token or credential column is ever selected, so none can reach a reply.

use std::time::Duration;

use adscope_db::DbError;
use adscope_db::fleet::FleetDb;
use adscope_proto::fleet::v1 as pb;
use adscope_server::page::MAX_PAGE_SIZE;
use adscope_server::serve::VERSION_HEADER;
use adscope_tenancy::fleet_context;
use chrono::{DateTime, Utc};
use diesel::QueryableByName;
use diesel::sql_types::{BigInt, Bool, Integer, Nullable, Timestamptz, Uuid as SqlUuid};
use diesel_async::RunQueryDsl;
use futures_util::FutureExt;
use tokio::sync::watch;
use tonic::transport::{Channel, Endpoint};
use tonic::{Request, Response, Status};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus as PeerStatus;
use tonic_health::pb::health_client::HealthClient;
use uuid::Uuid;

use crate::config::Thresholds;

/// Failed jobs count towards `syncs_failed` for this long.
pub const FAILED_WINDOW: Duration = Duration::from_secs(24 * 60 * 60);

/// This build's name in the fleet view.
pub const SERVICE_NAME: &str = "adscope-health";

const PAGE_TOKEN_PREFIX: &str = "th1.";

/// Each connection with its sync state (numbered as `SyncState`), its last
/// success and the time its state is measured from. Binds: $1 stale-after
/// seconds, $2 running-too-long seconds. `{join}` narrows the rows.
///
/// Only the most recent job is recorded per connection, so for a failing or
/// running connection the start of that job stands in for the last success
/// (which must have come before it): the age is a lower bound.
const CONNECTION_STATES: &str = "
    SELECT c.tenant_id,
           c.active,
           CASE
               WHEN c.last_job_status = 'failed' THEN 5
               WHEN c.last_job_status IN ('running', 'pending') THEN
                   CASE WHEN coalesce(c.last_job_started_at, c.updated_at)
                             < now() - ($2::float8 * interval '1 second') THEN 4 ELSE 1 END
               WHEN c.last_job_status IS NULL THEN 2
               WHEN coalesce(c.last_job_ended_at, c.last_job_started_at, c.updated_at)
                    < now() - ($1::float8 * interval '1 second') THEN 3
               ELSE 1
           END AS state,
           CASE WHEN c.last_job_status = 'succeeded'
                THEN coalesce(c.last_job_ended_at, c.last_job_started_at) END AS succeeded_at,
           CASE
               WHEN c.last_job_status IS NULL THEN c.created_at
               WHEN c.last_job_status IN ('failed', 'running', 'pending')
                   THEN coalesce(c.last_job_started_at, c.last_job_ended_at, c.updated_at)
               ELSE coalesce(c.last_job_ended_at, c.last_job_started_at, c.updated_at)
           END AS since
    FROM connections c {join}";

/// Fleet handlers over the read-only fleet pool.
#[derive(Debug, Clone)]
pub struct Fleet {
    db: FleetDb,
    thresholds: Thresholds,
    peers: Vec<Peer>,
    own: watch::Receiver<tonic_health::ServingStatus>,
}

/// Another adscope service whose `grpc.health.v1` the fleet view reports.
#[derive(Debug, Clone)]
pub struct Peer {
    name: &'static str,
    client: Option<HealthClient<Channel>>,
    timeout: Duration,
}

impl Peer {
    /// A peer at `url` (`None`: not configured, reported `UNKNOWN`), asked
    /// with `timeout` so a hung peer cannot stall the fleet view.
    pub fn new(
        name: &'static str,
        url: Option<&str>,
        timeout: Duration,
    ) -> Result<Peer, tonic::transport::Error> {
        let client = match url {
            None => None,
            Some(url) => {
                let channel = Endpoint::from_shared(url.to_owned())?
                    .connect_timeout(timeout)
                    .timeout(timeout)
                    .connect_lazy();
                Some(HealthClient::new(channel))
            }
        };
        Ok(Peer {
            name,
            client,
            timeout,
        })
    }

    async fn status(&self) -> pb::ServiceStatus {
        let mut reply = pb::ServiceStatus {
            name: self.name.into(),
            version: String::new(),
            status: pb::ServingStatus::Unknown.into(),
        };
        let Some(mut client) = self.client.clone() else {
            return reply;
        };
        // The whole server (empty name), as Kubernetes probes ask.
        let check = client.check(HealthCheckRequest {
            service: String::new(),
        });
        match tokio::time::timeout(self.timeout, check).await {
            Ok(Ok(answer)) => {
                reply.version = answer
                    .metadata()
                    .get(VERSION_HEADER)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned();
                reply.status = match answer.into_inner().status() {
                    PeerStatus::Serving => pb::ServingStatus::Serving,
                    PeerStatus::NotServing => pb::ServingStatus::NotServing,
                    PeerStatus::Unknown | PeerStatus::ServiceUnknown => pb::ServingStatus::Unknown,
                }
                .into();
            }
            Ok(Err(status)) => {
                tracing::debug!(peer = self.name, code = ?status.code(), "peer health check failed");
            }
            Err(_) => tracing::debug!(peer = self.name, "peer health check timed out"),
        }
        reply
    }
}

impl Fleet {
    /// The fleet view over `db`; `own` is this server's health as its
    /// monitor last reported it.
    pub fn new(
        db: FleetDb,
        thresholds: Thresholds,
        peers: Vec<Peer>,
        own: watch::Receiver<tonic_health::ServingStatus>,
    ) -> Self {
        Fleet {
            db,
            thresholds,
            peers,
            own,
        }
    }

    fn own_status(&self) -> pb::ServiceStatus {
        let status = match *self.own.borrow() {
            tonic_health::ServingStatus::Serving => pb::ServingStatus::Serving,
            tonic_health::ServingStatus::NotServing => pb::ServingStatus::NotServing,
            tonic_health::ServingStatus::Unknown => pb::ServingStatus::Unknown,
        };
        pb::ServiceStatus {
            name: SERVICE_NAME.into(),
            version: env!("CARGO_PKG_VERSION").into(),
            status: status.into(),
        }
    }
}

fn unavailable(error: DbError) -> Status {
    tracing::warn!(%error, "fleet read failed");
    Status::unavailable("the fleet database is unavailable; retry shortly")
}

fn secs(duration: Duration) -> i64 {
    i64::try_from(duration.as_secs()).unwrap_or(i64::MAX)
}

fn timestamp(time: DateTime<Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: time.timestamp(),
        nanos: i32::try_from(time.timestamp_subsec_nanos()).unwrap_or(0),
    }
}

#[derive(QueryableByName)]
struct Present {
    #[diesel(sql_type = Bool)]
    present: bool,
}

/// Whether the snapshots table exists and this role may read it; until its
/// migration has run, snapshot figures are left out rather than failing.
async fn snapshots_readable(conn: &mut &diesel_async::AsyncPgConnection) -> Result<bool, DbError> {
    let rows: Vec<Present> = diesel::sql_query(
        "SELECT CASE WHEN to_regclass('public.snapshots') IS NULL THEN false
                     ELSE has_table_privilege(to_regclass('public.snapshots'), 'SELECT')
                END AS present",
    )
    .load(conn)
    .await?;
    Ok(rows.into_iter().next().is_some_and(|r| r.present))
}

#[derive(QueryableByName)]
struct TotalsRow {
    #[diesel(sql_type = BigInt)]
    tenants: i64,
    #[diesel(sql_type = BigInt)]
    connections_active: i64,
    #[diesel(sql_type = BigInt)]
    connections_inactive: i64,
    #[diesel(sql_type = BigInt)]
    connections_failing: i64,
    #[diesel(sql_type = BigInt)]
    syncs_failed: i64,
    #[diesel(sql_type = BigInt)]
    syncs_stale: i64,
    #[diesel(sql_type = BigInt)]
    syncs_running_too_long: i64,
    #[diesel(sql_type = BigInt)]
    snapshots_stale: i64,
}

#[derive(QueryableByName)]
struct TenantRow {
    #[diesel(sql_type = SqlUuid)]
    tenant_id: Uuid,
    #[diesel(sql_type = BigInt)]
    connections_active: i64,
    #[diesel(sql_type = BigInt)]
    connections_inactive: i64,
    #[diesel(sql_type = BigInt)]
    connections_failing: i64,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    last_success: Option<DateTime<Utc>>,
    #[diesel(sql_type = Integer)]
    worst_state: i32,
    #[diesel(sql_type = BigInt)]
    worst_age_seconds: i64,
    #[diesel(sql_type = Nullable<BigInt>)]
    snapshot_age_seconds: Option<i64>,
}

fn totals_sql(with_snapshots: bool) -> String {
    let snapshots = if with_snapshots {
        "(SELECT count(DISTINCT s.tenant_id) FROM snapshots s
          WHERE s.generated_at < now() - ($4::float8 * interval '1 second'))"
    } else {
        "0::int8"
    };
    format!(
        "WITH c AS ({states})
         SELECT (SELECT count(*) FROM tenants) AS tenants,
                count(*) FILTER (WHERE c.active) AS connections_active,
                count(*) FILTER (WHERE NOT c.active) AS connections_inactive,
                count(*) FILTER (WHERE c.active AND c.state = 5) AS connections_failing,
                count(*) FILTER (WHERE c.state = 5
                                   AND c.since > now() - ($3::float8 * interval '1 second')) AS syncs_failed,
                count(*) FILTER (WHERE c.active AND c.state = 3) AS syncs_stale,
                count(*) FILTER (WHERE c.state = 4) AS syncs_running_too_long,
                {snapshots} AS snapshots_stale
         FROM c",
        states = CONNECTION_STATES.replace("{join}", ""),
    )
}

fn tenants_sql(with_snapshots: bool) -> String {
    let (snapshot_join, snapshot_age) = if with_snapshots {
        (
            "LEFT JOIN (SELECT s.tenant_id, max(s.generated_at) AS newest FROM snapshots s
                        WHERE s.tenant_id IN (SELECT id FROM page) GROUP BY s.tenant_id) sn
                   ON sn.tenant_id = p.id",
            "(CASE WHEN sn.newest IS NOT NULL
                  THEN greatest(0, floor(extract(epoch FROM now() - sn.newest)))::int8 END)",
        )
    } else {
        ("", "NULL::int8")
    };
    let group_extra = if with_snapshots { ", sn.newest" } else { "" };
    format!(
        "WITH page AS (SELECT id FROM tenants
                       WHERE ($3::uuid IS NULL OR id > $3::uuid) ORDER BY id LIMIT $4),
              c AS ({states})
         SELECT p.id AS tenant_id,
                count(c.tenant_id) FILTER (WHERE c.active) AS connections_active,
                count(c.tenant_id) FILTER (WHERE NOT c.active) AS connections_inactive,
                count(c.tenant_id) FILTER (WHERE c.active AND c.state = 5) AS connections_failing,
                max(c.succeeded_at) AS last_success,
                coalesce(max(c.state) FILTER (WHERE c.active), 0) AS worst_state,
                coalesce(greatest(0, floor(extract(epoch FROM now() -
                    (array_agg(c.since ORDER BY c.state DESC, c.since ASC)
                        FILTER (WHERE c.active))[1])))::int8, 0) AS worst_age_seconds,
                {snapshot_age} AS snapshot_age_seconds
         FROM page p
         LEFT JOIN c ON c.tenant_id = p.id
         {snapshot_join}
         GROUP BY p.id{group_extra}
         ORDER BY p.id",
        states = CONNECTION_STATES.replace("{join}", "JOIN page ON page.id = c.tenant_id"),
    )
}

fn encode_page_token(after: Uuid) -> String {
    format!("{PAGE_TOKEN_PREFIX}{}", after.simple())
}

fn decode_page_token(token: &str) -> Result<Option<Uuid>, Status> {
    if token.is_empty() {
        return Ok(None);
    }
    token
        .strip_prefix(PAGE_TOKEN_PREFIX)
        .and_then(|raw| Uuid::try_parse(raw).ok())
        .map(Some)
        .ok_or_else(|| {
            Status::invalid_argument(
                "page_token is not one returned by ListTenantHealth; \
                 send it unchanged, or empty for the first page",
            )
        })
}

/// The shared page-size rule, except that a request for more than the
/// maximum is cut to it rather than refused: an operator's dashboard asking
/// for "everything" gets the largest page.
fn page_size(requested: i32) -> Result<i64, Status> {
    let capped = i64::from(requested).min(MAX_PAGE_SIZE);
    // The cap fits an i32, and so does anything below it.
    let capped = i32::try_from(capped).unwrap_or(i32::MAX);
    Ok(adscope_server::page::page_size(capped)?)
}

fn sync_state(value: i32) -> pb::SyncState {
    pb::SyncState::try_from(value).unwrap_or(pb::SyncState::Unspecified)
}

#[tonic::async_trait]
impl pb::fleet_service_server::FleetService for Fleet {
    async fn get_fleet_status(
        &self,
        request: Request<pb::GetFleetStatusRequest>,
    ) -> Result<Response<pb::GetFleetStatusResponse>, Status> {
        let ctx = fleet_context(&request)?.clone();
        let thresholds = self.thresholds;
        let totals = self.db.read(&ctx, move |mut conn| {
            async move {
                let with_snapshots = snapshots_readable(&mut conn).await?;
                let rows: Vec<TotalsRow> = diesel::sql_query(totals_sql(with_snapshots))
                    .bind::<BigInt, _>(secs(thresholds.stale_after))
                    .bind::<BigInt, _>(secs(thresholds.running_too_long))
                    .bind::<BigInt, _>(secs(FAILED_WINDOW))
                    .bind::<BigInt, _>(secs(thresholds.snapshot_ttl))
                    .load(&mut conn)
                    .await?;
                Ok::<_, DbError>(rows.into_iter().next())
            }
            .boxed()
        });
        let peers = futures_util::future::join_all(self.peers.iter().map(Peer::status));
        let (totals, peers) = tokio::join!(totals, peers);
        let totals = totals
            .map_err(unavailable)?
            .ok_or_else(|| Status::internal("the fleet totals query returned no row"))?;

        let mut services = vec![self.own_status()];
        services.extend(peers);
        Ok(Response::new(pb::GetFleetStatusResponse {
            totals: Some(pb::FleetTotals {
                tenants: totals.tenants,
                connections_active: totals.connections_active,
                connections_inactive: totals.connections_inactive,
                connections_failing: totals.connections_failing,
                syncs_failed: totals.syncs_failed,
                syncs_stale: totals.syncs_stale,
                syncs_running_too_long: totals.syncs_running_too_long,
                snapshots_stale: totals.snapshots_stale,
            }),
            services,
            generate_time: Some(timestamp(Utc::now())),
        }))
    }

    async fn list_tenant_health(
        &self,
        request: Request<pb::ListTenantHealthRequest>,
    ) -> Result<Response<pb::ListTenantHealthResponse>, Status> {
        let ctx = fleet_context(&request)?.clone();
        let size = page_size(request.get_ref().page_size)?;
        let after = decode_page_token(&request.get_ref().page_token)?;
        let thresholds = self.thresholds;
        // One row more than the page tells whether another page follows.
        let mut rows: Vec<TenantRow> = self
            .db
            .read(&ctx, move |mut conn| {
                async move {
                    let with_snapshots = snapshots_readable(&mut conn).await?;
                    let rows = diesel::sql_query(tenants_sql(with_snapshots))
                        .bind::<BigInt, _>(secs(thresholds.stale_after))
                        .bind::<BigInt, _>(secs(thresholds.running_too_long))
                        .bind::<Nullable<SqlUuid>, _>(after)
                        .bind::<BigInt, _>(size + 1)
                        .load(&mut conn)
                        .await?;
                    Ok::<_, DbError>(rows)
                }
                .boxed()
            })
            .await
            .map_err(unavailable)?;

        let next_page_token = match adscope_server::page::trim_page(&mut rows, size) {
            Some(last) => encode_page_token(last.tenant_id),
            _ => String::new(),
        };
        let tenants = rows
            .into_iter()
            .map(|row| pb::TenantHealth {
                tenant_id: row.tenant_id.to_string(),
                connections_active: row.connections_active,
                connections_inactive: row.connections_inactive,
                connections_failing: row.connections_failing,
                last_successful_sync_time: row.last_success.map(timestamp),
                worst_sync_state: sync_state(row.worst_state).into(),
                worst_sync_age_seconds: row.worst_age_seconds,
                snapshot_age_seconds: row.snapshot_age_seconds,
            })
            .collect();
        Ok(Response::new(pb::ListTenantHealthResponse {
            tenants,
            next_page_token,
        }))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // tests fail loudly

    use super::*;

    #[test]
    fn page_tokens_round_trip_and_garbage_is_invalid() {
        let id = Uuid::new_v4();
        assert_eq!(decode_page_token(&encode_page_token(id)).unwrap(), Some(id));
        assert_eq!(decode_page_token("").unwrap(), None);
        for bad in ["nope", "th1.zzz", &id.to_string()] {
            assert_eq!(
                decode_page_token(bad).unwrap_err().code(),
                tonic::Code::InvalidArgument
            );
        }
    }

    #[test]
    fn page_size_defaults_caps_and_refuses_negatives() {
        assert_eq!(
            page_size(0).unwrap(),
            adscope_server::page::DEFAULT_PAGE_SIZE
        );
        assert_eq!(page_size(7).unwrap(), 7);
        assert_eq!(page_size(10_000).unwrap(), MAX_PAGE_SIZE);
        assert_eq!(
            page_size(-1).unwrap_err().code(),
            tonic::Code::InvalidArgument
        );
    }

    // The SQL's own numbering is checked end to end by the fleet suite,
    // which counts each state over the wire.
    #[test]
    fn sync_state_maps_each_number_the_sql_uses_to_its_proto_value() {
        assert_eq!(sync_state(1), pb::SyncState::Healthy);
        assert_eq!(sync_state(2), pb::SyncState::NeverSynced);
        assert_eq!(sync_state(3), pb::SyncState::Stale);
        assert_eq!(sync_state(4), pb::SyncState::RunningTooLong);
        assert_eq!(sync_state(5), pb::SyncState::Failing);
        assert_eq!(sync_state(0), pb::SyncState::Unspecified);
    }
}

//! The background scheduler: per pass, for every active tenant and inside
//! that tenant's scope, due syncs, sync-health reconciliation, snapshot
//! refresh, data-key rotation and expiring-credential reminders.
//!
//! Each (tenant, job) is claimed through a lease row before it runs: the
//! claim is one atomic upsert that succeeds only when no unexpired lease is
//! held, so replicas sharing a database never run the same job for the same
//! tenant at once, and a replica that dies mid-job frees it when the lease
//! expires. A job records its outcome before releasing its lease, so the
//! next holder sees the syncs it started as no longer due. One tenant's
//! failure is reported and the pass moves on to the next.

use adscope_server::health::Heartbeat;
use std::sync::Arc;
use std::time::Duration;

use adscope_db::schema::{connections, credential_reminders, data_keys, sync_jobs};
use adscope_db::{Database, DbError};
use adscope_tenancy::{Minter, TenantContext, TenantId};
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Bool, Double, Nullable, Text, Timestamptz, Uuid as SqlUuid};
use rand::Rng;
use tracing::Instrument;
use uuid::Uuid;

use crate::airbyte::{AirbyteClient, AirbyteError, JobReport, JobState};
use crate::config::{Config, SchedulerConfig};
use crate::connections::{JobRow, due_connections, record_job, start_sync};
use crate::error::ApiError;
use crate::kms::Kms;
use crate::service_calls::{Analytics, SnapshotOutcome, tenant_context};

/// A job still running after this long is checked with Airbyte.
pub const STUCK_AFTER: Duration = Duration::from_secs(2 * 3600);
/// How often a tenant's data key is rotated.
pub const ROTATION_EVERY: Duration = Duration::from_secs(7 * 24 * 3600);
/// How far ahead a credential's expiry is reminded of.
pub const REMIND_WITHIN: Duration = Duration::from_secs(7 * 24 * 3600);
/// Longest a lease is held before another replica may take over.
const LEASE: Duration = Duration::from_secs(15 * 60);
/// Tries of one transient operation (first try included).
const MAX_ATTEMPTS: u32 = 3;

/// The background jobs, by lease name.
pub const DUE_SYNCS: &str = "due_syncs";
pub const SYNC_HEALTH: &str = "sync_health";
pub const SNAPSHOT_REFRESH: &str = "snapshot_refresh";
pub const KEY_ROTATION: &str = "key_rotation";
pub const CREDENTIAL_REMINDERS: &str = "credential_reminders";

/// A job that failed for one tenant.
#[derive(Debug, Clone)]
pub struct JobFailure {
    pub tenant: TenantId,
    pub job: &'static str,
    pub error: String,
}

/// What one pass did.
#[derive(Debug, Clone, Default)]
pub struct PassReport {
    /// Tenants visited.
    pub tenants: usize,
    pub syncs_triggered: usize,
    /// Due syncs Airbyte did not start (after retries).
    pub syncs_failed: usize,
    /// Stuck jobs brought up to date or marked failed.
    pub jobs_reconciled: usize,
    pub snapshots_refreshed: usize,
    pub keys_rotated: usize,
    pub reminders: usize,
    /// (tenant, job) pairs another replica was running.
    pub skipped_locked: usize,
    pub failures: Vec<JobFailure>,
}

/// The scheduler of one replica.
#[derive(Debug, Clone)]
pub struct Scheduler {
    db: Database,
    airbyte: Option<AirbyteClient>,
    analytics: Option<Analytics>,
    minter: Option<Arc<Minter>>,
    kms: Option<Arc<dyn Kms>>,
    config: SchedulerConfig,
    /// Identifies this instance's leases.
    holder: Uuid,
}

const CLAIM: &str = "\
INSERT INTO job_leases (tenant_id, job, holder, leased_until, last_started_at, runs)
VALUES ($1, $2, $3, now() + make_interval(secs => $4), now(), 1)
ON CONFLICT (tenant_id, job) DO UPDATE
SET holder = EXCLUDED.holder, leased_until = EXCLUDED.leased_until, last_started_at = now(),
    runs = job_leases.runs + 1
WHERE job_leases.leased_until < now()";

const RELEASE: &str = "\
UPDATE job_leases SET leased_until = now(), last_finished_at = now(),
    last_succeeded_at = CASE WHEN $3 THEN now() ELSE last_succeeded_at END,
    last_error = $4
WHERE job = $1 AND holder = $2";

/// How a job run ended.
enum Outcome {
    /// Done; counts as the job's latest success.
    Done,
    /// Nothing to do this time (not due, not configured).
    Skipped,
}

fn transient(error: &ApiError) -> bool {
    match error {
        ApiError::Airbyte(error) => error.is_transient(),
        ApiError::Db(DbError::Unavailable(_)) => true,
        _ => false,
    }
}

impl Scheduler {
    /// A scheduler with `config`'s Airbyte, analytics, token minter and key file.
    pub fn new(config: &Config, db: Database) -> Result<Scheduler, AirbyteError> {
        let kms = match crate::kms::from_config(config.kms_key_file.as_deref()) {
            Ok(kms) => kms,
            Err(error) => {
                tracing::error!(%error, "scheduler: key rotation disabled");
                None
            }
        };
        Ok(Scheduler {
            airbyte: AirbyteClient::new(config.airbyte.as_ref())?,
            analytics: Analytics::new(config.analytics_url.as_deref()),
            minter: config.service_minter.clone(),
            kms,
            config: config.scheduler.clone(),
            holder: Uuid::new_v4(),
            db,
        })
    }

    /// Runs passes every `config.scheduler.interval` until the task is aborted.
    ///
    /// `heartbeat` beats after every pass: the health check reports the
    /// scheduler dead when it stops.
    pub fn spawn(self, heartbeat: Heartbeat) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(self.config.interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let report = self.run_once().await;
                heartbeat.beat();
                tracing::info!(
                    tenants = report.tenants,
                    syncs_triggered = report.syncs_triggered,
                    syncs_failed = report.syncs_failed,
                    jobs_reconciled = report.jobs_reconciled,
                    snapshots_refreshed = report.snapshots_refreshed,
                    keys_rotated = report.keys_rotated,
                    reminders = report.reminders,
                    failures = report.failures.len(),
                    "scheduler pass"
                );
            }
        })
    }

    /// One pass over every active tenant.
    pub async fn run_once(&self) -> PassReport {
        let mut report = PassReport::default();
        let tenants = match self.db.active_tenant_ids().await {
            Ok(tenants) => tenants,
            Err(error) => {
                tracing::warn!(%error, "scheduler: could not list tenants");
                return report;
            }
        };
        for tenant in tenants {
            report.tenants += 1;
            self.run_tenant(tenant, &mut report)
                .instrument(tracing::info_span!("scheduler.tenant", tenant.id = %tenant))
                .await;
        }
        report
    }

    async fn run_tenant(&self, tenant: TenantId, report: &mut PassReport) {
        for job in [
            DUE_SYNCS,
            SYNC_HEALTH,
            SNAPSHOT_REFRESH,
            KEY_ROTATION,
            CREDENTIAL_REMINDERS,
        ] {
            // A fresh context per job, with a token (it lives five minutes)
            // only for the one job that calls analytics: signing is not free
            // with an RSA key, and the other jobs present no token.
            let minter = self.minter.as_deref().filter(|_| job == SNAPSHOT_REFRESH);
            let ctx = tenant_context(tenant, minter);
            match self.claim(&ctx, job).await {
                Ok(true) => {}
                Ok(false) => {
                    report.skipped_locked += 1;
                    continue;
                }
                Err(error) => {
                    report.failures.push(JobFailure {
                        tenant,
                        job,
                        error: error.to_string(),
                    });
                    continue;
                }
            }
            let outcome = self
                .run_job(job, &ctx, report)
                .instrument(tracing::info_span!("scheduler.job", job, tenant.id = %tenant))
                .await;
            let (succeeded, error) = match &outcome {
                Ok(Outcome::Done) => (true, None),
                Ok(Outcome::Skipped) => (false, None),
                Err(error) => (false, Some(error.clone())),
            };
            if let Some(error) = &error {
                tracing::warn!(job, tenant.id = %tenant, %error, "scheduler job failed");
                report.failures.push(JobFailure {
                    tenant,
                    job,
                    error: error.clone(),
                });
            }
            if let Err(release) = self.release(&ctx, job, succeeded, error).await {
                tracing::warn!(job, tenant.id = %tenant, error = %release, "lease not released; it expires");
            }
        }
    }

    /// Claims the tenant's lease on `job`: `true` when this instance now
    /// holds it, `false` when another does.
    async fn claim(&self, ctx: &TenantContext, job: &'static str) -> Result<bool, DbError> {
        // The upsert touches no row when an unexpired lease is held.
        let claimed = self
            .db
            .scoped_execute(
                ctx,
                diesel::sql_query(CLAIM)
                    .bind::<SqlUuid, _>(*ctx.tenant_id().as_uuid())
                    .bind::<Text, _>(job)
                    .bind::<SqlUuid, _>(self.holder)
                    .bind::<Double, _>(LEASE.as_secs_f64()),
            )
            .await?;
        Ok(claimed > 0)
    }

    async fn release(
        &self,
        ctx: &TenantContext,
        job: &'static str,
        succeeded: bool,
        error: Option<String>,
    ) -> Result<usize, DbError> {
        self.db
            .scoped_execute(
                ctx,
                diesel::sql_query(RELEASE)
                    .bind::<Text, _>(job)
                    .bind::<SqlUuid, _>(self.holder)
                    .bind::<Bool, _>(succeeded)
                    .bind::<Nullable<Text>, _>(error),
            )
            .await
    }

    /// Runs `op` again on transient failures, after exponential backoff
    /// with full jitter.
    async fn retrying<T, F, Fut>(&self, mut op: F) -> Result<T, ApiError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, ApiError>>,
    {
        let mut attempt = 0;
        loop {
            match op().await {
                Ok(value) => return Ok(value),
                Err(error) if attempt + 1 < MAX_ATTEMPTS && transient(&error) => {
                    tokio::time::sleep(self.backoff(attempt)).await;
                    attempt += 1;
                }
                Err(error) => return Err(error),
            }
        }
    }

    /// A delay drawn uniformly from zero to `min(cap, base · 2^attempt)`.
    fn backoff(&self, attempt: u32) -> Duration {
        let ceiling = self
            .config
            .retry_base
            .saturating_mul(2u32.saturating_pow(attempt))
            .min(self.config.retry_cap);
        let millis = u64::try_from(ceiling.as_millis()).unwrap_or(u64::MAX);
        Duration::from_millis(rand::rng().random_range(0..=millis))
    }

    async fn run_job(
        &self,
        job: &'static str,
        ctx: &TenantContext,
        report: &mut PassReport,
    ) -> Result<Outcome, String> {
        match job {
            DUE_SYNCS => self.due_syncs(ctx, report).await,
            SYNC_HEALTH => self.sync_health(ctx, report).await,
            SNAPSHOT_REFRESH => self.snapshot_refresh(ctx, report).await,
            KEY_ROTATION => self.key_rotation(ctx, report).await,
            _ => self.credential_reminders(ctx, report).await,
        }
    }

    async fn due_syncs(
        &self,
        ctx: &TenantContext,
        report: &mut PassReport,
    ) -> Result<Outcome, String> {
        let due = self
            .retrying(|| due_connections(&self.db, ctx, Utc::now()))
            .await
            .map_err(|e| e.to_string())?;
        if due.is_empty() {
            return Ok(Outcome::Done);
        }
        if self.airbyte.is_none() {
            return Err(AirbyteError::NotConfigured.to_string());
        }
        let mut errors = Vec::new();
        for connection in due {
            // Starting and recording are retried apart: once Airbyte has
            // started the job, only the write is repeated.
            let result = async {
                let report = self
                    .retrying(|| start_sync(&self.db, self.airbyte.as_ref(), ctx, connection.id))
                    .await?;
                self.retrying(|| record_job(&self.db, ctx, connection.id, &report))
                    .await
                    .map(|recorded| recorded.job)
            }
            .await;
            match result {
                Ok(job) => {
                    report.syncs_triggered += 1;
                    tracing::info!(connection = %connection.id, airbyte_job = job.airbyte_job_id, "scheduled sync started");
                }
                Err(error) => {
                    report.syncs_failed += 1;
                    errors.push(format!("connection {}: {error}", connection.id));
                }
            }
        }
        if errors.is_empty() {
            Ok(Outcome::Done)
        } else {
            Err(errors.join("; "))
        }
    }

    async fn sync_health(
        &self,
        ctx: &TenantContext,
        report: &mut PassReport,
    ) -> Result<Outcome, String> {
        let cutoff = Utc::now()
            - chrono::Duration::from_std(STUCK_AFTER).unwrap_or(chrono::Duration::hours(2));
        let stuck: Vec<JobRow> = self
            .db
            .scoped_load(
                ctx,
                sync_jobs::table
                    .filter(sync_jobs::status.eq_any(["pending", "running"]))
                    .filter(
                        diesel::dsl::sql::<diesel::sql_types::Bool>(
                            "coalesce(started_at, created_at) < ",
                        )
                        .bind::<Timestamptz, _>(cutoff),
                    )
                    .select(JobRow::as_select()),
            )
            .await
            .map_err(|e| e.to_string())?;
        let mut errors = Vec::new();
        for job in stuck {
            let polled = match &self.airbyte {
                None => Err(AirbyteError::NotConfigured),
                Some(client) => {
                    let mut result = client.get_job(job.airbyte_job_id).await;
                    let mut attempt = 0;
                    while let Err(error) = &result {
                        if !error.is_transient() || attempt + 1 >= MAX_ATTEMPTS {
                            break;
                        }
                        tokio::time::sleep(self.backoff(attempt)).await;
                        attempt += 1;
                        result = client.get_job(job.airbyte_job_id).await;
                    }
                    result
                }
            };
            let update = match polled {
                Ok(current) => current,
                // Airbyte no longer knows the job, or cannot be asked: it
                // will never report its end, so it ends here.
                Err(error @ (AirbyteError::Rejected { .. } | AirbyteError::NotConfigured)) => {
                    JobReport {
                        airbyte_job_id: job.airbyte_job_id,
                        state: JobState::Failed,
                        started_at: job.started_at,
                        ended_at: Some(Utc::now()),
                        records_synced: job.records_synced,
                        bytes_synced: job.bytes_synced,
                        error: Some(format!(
                            "still running after {} hours and could not be checked: {error}",
                            STUCK_AFTER.as_secs() / 3600
                        )),
                        attempts: job.attempts,
                    }
                }
                Err(error) => {
                    errors.push(format!("job {}: {error}", job.airbyte_job_id));
                    continue;
                }
            };
            match record_job(&self.db, ctx, job.connection_id, &update).await {
                Ok(_) => report.jobs_reconciled += 1,
                Err(error) => errors.push(format!("job {}: {error}", job.airbyte_job_id)),
            }
        }
        if errors.is_empty() {
            Ok(Outcome::Done)
        } else {
            Err(errors.join("; "))
        }
    }

    async fn snapshot_refresh(
        &self,
        ctx: &TenantContext,
        report: &mut PassReport,
    ) -> Result<Outcome, String> {
        let Some(analytics) = &self.analytics else {
            return Ok(Outcome::Skipped);
        };
        if ctx.credential().is_none() {
            return Ok(Outcome::Skipped);
        }
        let providers: Vec<String> = self
            .db
            .scoped_load(
                ctx,
                connections::table
                    .filter(connections::active.eq(true))
                    .select(connections::provider)
                    .distinct()
                    .order(connections::provider.asc()),
            )
            .await
            .map_err(|e| e.to_string())?;
        let mut errors = Vec::new();
        for provider in providers {
            // GetSnapshot recomputes a snapshot older than its TTL and
            // serves a fresh one as it is.
            match analytics.ensure_fresh_snapshot(ctx, &provider).await {
                Ok(SnapshotOutcome::Refreshed) => report.snapshots_refreshed += 1,
                Ok(SnapshotOutcome::Fresh) => {}
                Err(status) => errors.push(format!("{provider}: {}", status.message())),
            }
        }
        if errors.is_empty() {
            Ok(Outcome::Done)
        } else {
            Err(errors.join("; "))
        }
    }

    async fn key_rotation(
        &self,
        ctx: &TenantContext,
        report: &mut PassReport,
    ) -> Result<Outcome, String> {
        let Some(kms) = &self.kms else {
            return Ok(Outcome::Skipped);
        };
        // The active key's own age decides, not this job's history: a key a
        // credential write made a minute ago is not rotated on a replica's
        // first pass, and a rotation by hand restarts the period.
        let created: Vec<DateTime<Utc>> = self
            .db
            .scoped_load(
                ctx,
                data_keys::table
                    .filter(data_keys::status.eq("active"))
                    .select(data_keys::created_at),
            )
            .await
            .map_err(|e| e.to_string())?;
        // No key yet: nothing is sealed, so nothing to rotate.
        let Some(created) = created.into_iter().next() else {
            return Ok(Outcome::Skipped);
        };
        let every = chrono::Duration::from_std(ROTATION_EVERY).unwrap_or(chrono::Duration::days(7));
        if Utc::now() - created < every {
            return Ok(Outcome::Skipped);
        }
        let rotated = crate::credentials::rotate_tenant_key(&self.db, kms.as_ref(), ctx)
            .await
            .map_err(|e| e.to_string())?;
        report.keys_rotated += 1;
        tracing::info!(
            key_version = rotated.key_version,
            reencrypted = rotated.credentials_reencrypted,
            "data key rotated"
        );
        Ok(Outcome::Done)
    }

    async fn credential_reminders(
        &self,
        ctx: &TenantContext,
        report: &mut PassReport,
    ) -> Result<Outcome, String> {
        let expiring = crate::credentials::expiring_credentials(&self.db, ctx, REMIND_WITHIN)
            .await
            .map_err(|e| e.to_string())?;
        let tenant = *ctx.tenant_id().as_uuid();
        for credential in expiring {
            // One reminder per credential and expiry, however often this runs.
            let inserted = self
                .db
                .scoped_execute(
                    ctx,
                    diesel::insert_into(credential_reminders::table)
                        .values((
                            credential_reminders::tenant_id.eq(tenant),
                            credential_reminders::credential_id.eq(credential.id),
                            credential_reminders::expires_at.eq(credential.expires_at),
                        ))
                        .on_conflict_do_nothing(),
                )
                .await
                .map_err(|e| e.to_string())?;
            if inserted > 0 {
                report.reminders += 1;
                tracing::warn!(
                    credential = %credential.id,
                    provider = ?credential.provider,
                    expires_at = %credential.expires_at,
                    "platform credential expires soon; renew it"
                );
            }
        }
        Ok(Outcome::Done)
    }
}

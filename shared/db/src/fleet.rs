//! Read-only access across tenants, for the health service alone.
//!
//! This module exists only when the `fleet` feature is on, and only the
//! health service enables it: the code that builds a [`FleetDb`] is not
//! compiled into the other services. The health login role is the one role
//! with `BYPASSRLS`, holds only `SELECT` grants and defaults to read-only
//! transactions; every unit here also opens `BEGIN READ ONLY`.

use diesel_async::{AsyncPgConnection, RunQueryDsl};
use futures_util::future::BoxFuture;
use tracing::Instrument;

use adscope_tenancy::FleetContext;

use crate::statements::{BeginReadOnly, Rollback};
use crate::{Database, DbConfig, DbError, ServiceRole};

/// A pool for fleet-wide reads.
#[derive(Debug, Clone)]
pub struct FleetDb {
    db: Database,
}

impl FleetDb {
    /// Builds the pool; the configuration must be the health role's.
    pub fn connect(config: &DbConfig) -> Result<FleetDb, DbError> {
        if config.role != ServiceRole::Health {
            return Err(DbError::Config(format!(
                "fleet access is for the health role, not {}",
                config.role
            )));
        }
        Ok(FleetDb {
            db: Database::connect(config)?,
        })
    }

    /// The underlying pool, for health checks.
    pub fn database(&self) -> &Database {
        &self.db
    }

    /// Runs `work` in a read-only transaction that sees every tenant. The
    /// transaction is always rolled back: nothing here writes.
    pub async fn read<T, E, F>(&self, _ctx: &FleetContext, work: F) -> Result<T, E>
    where
        F: for<'c> FnOnce(&'c AsyncPgConnection) -> BoxFuture<'c, Result<T, E>> + Send,
        E: From<DbError> + From<diesel::result::Error> + Send,
        T: Send,
    {
        let span = tracing::info_span!(
            "db.unit",
            adscope.scope = "fleet",
            db.system = "postgresql",
            db.user = self.db.role.login_role(),
        );
        async move {
            let mut pooled = self.db.checkout().await.map_err(E::from)?;
            pooled.in_transaction = true;
            let conn: &AsyncPgConnection = &pooled.conn;
            let (begun, outcome) = {
                let mut c = conn;
                tokio::join!(BeginReadOnly.execute(&mut c), work(conn))
            };
            let mut c = conn;
            let ended = Rollback.execute(&mut c).await;
            begun.map_err(E::from)?;
            ended.map_err(E::from)?;
            pooled.in_transaction = false;
            outcome
        }
        .instrument(span)
        .await
    }
}

//! The tenant-scoped unit of work.
//!
//! `BEGIN`, `set_config('app.tenant_id', …, true)` and the unit's first
//! statement are polled together on one connection, so tokio-postgres writes
//! them in one go and the set-up costs no round trip of its own. The setting
//! is local to the transaction: when it ends, nothing of this tenant stays on
//! the pooled connection.

use diesel_async::{AsyncPgConnection, RunQueryDsl};
use futures_util::future::BoxFuture;
use tracing::Instrument;

use adscope_tenancy::TenantContext;

use crate::statements::{Begin, Commit, Rollback, TENANT_SETTING, set_config};
use crate::{Database, DbError};

impl Database {
    /// Runs `work` inside a transaction scoped to `ctx`'s tenant and commits
    /// it when `work` succeeds (rolls back when it fails).
    ///
    /// `work` gets a shared reference to the connection: statements issued
    /// concurrently through it are pipelined. Every statement it runs sees
    /// only the tenant's rows, and any write to another tenant's rows fails
    /// the row-level security check.
    ///
    /// ```ignore
    /// let names = db
    ///     .scoped(&ctx, |mut conn| {
    ///         async move { campaigns::table.select(campaigns::name).load(&mut conn).await }
    ///             .boxed()
    ///     })
    ///     .await?;
    /// ```
    pub async fn scoped<T, E, F>(&self, ctx: &TenantContext, work: F) -> Result<T, E>
    where
        F: for<'c> FnOnce(&'c AsyncPgConnection) -> BoxFuture<'c, Result<T, E>> + Send,
        E: From<DbError> + From<diesel::result::Error> + Send,
        T: Send,
    {
        let span = tracing::info_span!(
            "db.unit",
            tenant.id = %ctx.tenant_id(),
            db.system = "postgresql",
            db.user = self.role.login_role(),
        );
        self.run_scoped(&ctx.tenant_id().to_string(), work)
            .instrument(span)
            .await
    }

    async fn run_scoped<T, E, F>(&self, tenant: &str, work: F) -> Result<T, E>
    where
        F: for<'c> FnOnce(&'c AsyncPgConnection) -> BoxFuture<'c, Result<T, E>> + Send,
        E: From<DbError> + From<diesel::result::Error> + Send,
        T: Send,
    {
        let mut pooled = self.checkout().await.map_err(E::from)?;

        // Raised before BEGIN is sent, lowered only after the transaction has
        // ended: if this future is dropped anywhere in between, the pool
        // discards the connection rather than reuse an open transaction.
        pooled.in_transaction = true;
        let conn: &AsyncPgConnection = &pooled.conn;

        let (begun, set, outcome) = {
            let mut c = conn;
            let begin = Begin.execute(&mut c);
            let mut c = conn;
            let set_tenant = diesel::select(set_config(TENANT_SETTING, tenant, true)).execute(&mut c);
            tokio::join!(begin, set_tenant, work(conn))
        };

        // A failed BEGIN or set_config means the work may have run outside the
        // intended scope (where it saw nothing and could write nothing); end
        // whatever is open and let the pool drop the connection.
        if let Err(error) = begun.and(set) {
            let mut c = conn;
            let _ = Rollback.execute(&mut c).await;
            return Err(E::from(error));
        }

        let result = match outcome {
            Ok(value) => {
                let mut c = conn;
                Commit.execute(&mut c).await.map_err(E::from)?;
                Ok(value)
            }
            Err(error) => {
                let mut c = conn;
                Rollback.execute(&mut c).await.map_err(E::from)?;
                Err(error)
            }
        };
        pooled.in_transaction = false;
        result
    }
}

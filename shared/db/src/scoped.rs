//! The tenant-scoped unit of work.
//!
//! A unit opens with two prepared statements, `BEGIN` and
//! `SELECT set_config('app.tenant_id', $1, true)`, written to the socket
//! together with the unit's first statement: the set-up costs no round trip
//! of its own. (Prepared rather than simple-protocol queries: the server
//! then parses and plans them once per connection, not once per unit; the
//! `scoped_read` bench's pgbench figures show the difference, its `scoped -M
//! prepared` line against its `scoped -M simple` line.) The setting is local
//! to the transaction, so when the unit ends nothing of this tenant stays on
//! the pooled connection.
//!
//! Two shapes:
//! - [`Database::scoped`] runs any async unit of work, then commits;
//! - [`Database::scoped_load`] / [`Database::scoped_execute`] run exactly one
//!   diesel statement and pipeline the `COMMIT` behind it too, so a
//!   single-statement unit (a get, an insert-returning) is one round trip.

use diesel::deserialize::FromSqlRow;
use diesel::expression::QueryMetadata;
use diesel::pg::Pg;
use diesel::query_builder::{AsQuery, QueryFragment, QueryId};
use diesel::query_dsl::CompatibleType;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use futures_util::future::BoxFuture;
use tracing::Instrument;

use adscope_tenancy::TenantContext;

use crate::statements::{Begin, Commit, Rollback, TENANT_SETTING, set_config};
use crate::{Database, DbError};

/// Sends the opening of a unit: `BEGIN`, then the transaction-local tenant.
/// Both requests go out on the first poll, ahead of anything polled after.
async fn open(conn: &AsyncPgConnection, ctx: &TenantContext) -> Result<(), DbError> {
    let (mut c1, mut c2) = (conn, conn);
    let set = diesel::select(set_config(
        TENANT_SETTING,
        ctx.tenant_id().to_string(),
        true,
    ));
    let (began, set) = tokio::join!(Begin.execute(&mut c1), set.execute(&mut c2));
    began?;
    set?;
    Ok(())
}

impl Database {
    fn unit_span(&self, ctx: &TenantContext) -> tracing::Span {
        tracing::info_span!(
            "db.unit",
            tenant.id = %ctx.tenant_id(),
            db.system = "postgresql",
            db.user = self.role.login_role(),
        )
    }

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
        async move {
            let mut pooled = self.checkout().await.map_err(E::from)?;

            // Raised before BEGIN is sent, lowered only after the transaction
            // has ended: if this future is dropped anywhere in between, the
            // pool discards the connection rather than reuse an open
            // transaction.
            pooled.in_transaction = true;
            let conn: &AsyncPgConnection = &pooled.conn;

            let (opened, outcome) = tokio::join!(open(conn, ctx), work(conn));

            // A failed opening means the work may have run outside the
            // intended scope (where it saw nothing and could write nothing);
            // the flag stays raised and the pool drops the connection.
            opened.map_err(E::from)?;

            let mut c = conn;
            let result = match outcome {
                Ok(value) => {
                    Commit.execute(&mut c).await.map_err(E::from)?;
                    Ok(value)
                }
                Err(error) => {
                    Rollback.execute(&mut c).await.map_err(E::from)?;
                    Err(error)
                }
            };
            pooled.in_transaction = false;
            result
        }
        .instrument(self.unit_span(ctx))
        .await
    }

    /// Runs one query in the tenant's scope and returns its rows: opening,
    /// query and `COMMIT` leave in one write.
    pub async fn scoped_load<'q, Q, U, ST>(
        &self,
        ctx: &TenantContext,
        query: Q,
    ) -> Result<Vec<U>, DbError>
    where
        Q: AsQuery + Send + 'q,
        Q::Query: QueryFragment<Pg> + QueryId + Send + 'q,
        Q::SqlType: CompatibleType<U, Pg, SqlType = ST>,
        U: FromSqlRow<ST, Pg> + Send + 'static,
        Pg: QueryMetadata<Q::SqlType>,
        ST: 'static,
    {
        async move {
            let mut pooled = self.checkout().await?;
            pooled.in_transaction = true;
            let conn: &AsyncPgConnection = &pooled.conn;
            let (mut c2, mut c3) = (conn, conn);

            // The three are polled in this order in one pass, and each sends
            // its request on that first poll, so they reach the server in
            // order. If the query fails, the transaction is aborted and the
            // server answers the COMMIT with a rollback.
            let (opened, rows, committed) = tokio::join!(
                open(conn, ctx),
                query.load::<U>(&mut c2),
                Commit.execute(&mut c3),
            );
            // A COMMIT that went through ended the transaction either way (a
            // failed query makes it a rollback), so the connection is clean.
            if opened.is_ok() && committed.is_ok() {
                pooled.in_transaction = false;
            }
            opened?;
            let rows = rows?;
            committed?;
            Ok(rows)
        }
        .instrument(self.unit_span(ctx))
        .await
    }

    /// Runs one statement (an insert, update or delete) in the tenant's
    /// scope and returns the rows it affected, in one round trip.
    pub async fn scoped_execute<Q>(
        &self,
        ctx: &TenantContext,
        statement: Q,
    ) -> Result<usize, DbError>
    where
        Q: QueryFragment<Pg> + QueryId + Send,
    {
        async move {
            let mut pooled = self.checkout().await?;
            pooled.in_transaction = true;
            let conn: &AsyncPgConnection = &pooled.conn;
            let (mut c2, mut c3) = (conn, conn);
            let (opened, affected, committed) = tokio::join!(
                open(conn, ctx),
                statement.execute(&mut c2),
                Commit.execute(&mut c3),
            );
            if opened.is_ok() && committed.is_ok() {
                pooled.in_transaction = false;
            }
            opened?;
            let affected = affected?;
            committed?;
            Ok(affected)
        }
        .instrument(self.unit_span(ctx))
        .await
    }
}

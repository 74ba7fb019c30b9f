//! Tenant-scoped PostgreSQL access for adscope services.
//!
//! A service gets a [`Database`] (a pool of connections logged in as its own
//! role) and can use it in exactly one way for tenant data:
//! [`Database::scoped`], which takes a [`TenantContext`], runs the unit of
//! work in a transaction whose first statement sets `app.tenant_id` locally,
//! and commits. Row-level security, enabled and forced on every tenant-owned
//! table, does the filtering; with no tenant set a query sees nothing.
//!
//! # Layout
//!
//! - [`pool`]: the connection manager, per-connection set-up and the flag
//!   that keeps a half-finished transaction out of the pool.
//! - [`scoped`]: the tenant-scoped unit of work and its pipelined set-up.
//! - [`lookup`]: the narrow `SECURITY DEFINER` lookups that find a tenant
//!   before one is known (jobs, webhooks); they return tenant ids only.
//! - [`migrate`]: role creation and the embedded, forward-only migrations.
//! - [`schema`]: diesel table definitions.
//! - `fleet` (feature `fleet`, health service only): read-only cross-tenant
//!   access.
//!
//! [`TenantContext`]: adscope_tenancy::TenantContext

mod error;
#[cfg(feature = "fleet")]
pub mod fleet;
pub mod lookup;
pub mod migrate;
pub mod pool;
mod role;
pub mod schema;
pub mod scoped;
mod statements;

pub use diesel_async::AsyncPgConnection;
pub use error::DbError;
pub use pool::{Database, DbConfig, SessionProbe};
pub use role::ServiceRole;

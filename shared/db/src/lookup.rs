//! Narrow look-ups for work that must find a tenant before it has one.
//!
//! A background job enumerates tenants; a webhook names an Airbyte
//! connection. Both call `SECURITY DEFINER` functions that return tenant ids
//! and nothing else, then continue inside that tenant's scope through
//! [`Database::scoped`].

use diesel::QueryableByName;
use diesel::sql_types::Uuid as SqlUuid;
use diesel_async::RunQueryDsl;
use uuid::Uuid;

use adscope_tenancy::TenantId;

use crate::{Database, DbError};

#[derive(QueryableByName)]
struct TenantRow {
    #[diesel(sql_type = SqlUuid)]
    tenant_id: Uuid,
}

impl Database {
    /// Every active tenant, in id order.
    pub async fn active_tenant_ids(&self) -> Result<Vec<TenantId>, DbError> {
        let mut pooled = self.checkout().await?;
        let rows: Vec<TenantRow> =
            diesel::sql_query("SELECT adscope_active_tenant_ids() AS tenant_id")
                .load(&mut pooled.conn)
                .await?;
        Ok(rows
            .into_iter()
            .map(|r| TenantId::new(r.tenant_id))
            .collect())
    }

    /// The tenants that registered this Airbyte connection id.
    pub async fn connection_tenants(
        &self,
        airbyte_connection_id: Uuid,
    ) -> Result<Vec<TenantId>, DbError> {
        let mut pooled = self.checkout().await?;
        let rows: Vec<TenantRow> =
            diesel::sql_query("SELECT adscope_connection_tenants($1) AS tenant_id")
                .bind::<SqlUuid, _>(airbyte_connection_id)
                .load(&mut pooled.conn)
                .await?;
        Ok(rows
            .into_iter()
            .map(|r| TenantId::new(r.tenant_id))
            .collect())
    }
}

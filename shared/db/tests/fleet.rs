//! Fleet scope: the health role reads across tenants and writes nothing.

#![allow(clippy::unwrap_used)] // a failing test should fail loudly

use std::sync::Arc;

use adscope_db::fleet::FleetDb;
use adscope_db::schema::campaigns;
use adscope_db::{DbConfig, DbError, ServiceRole};
use adscope_tenancy::{FleetContext, Principal};
use adscope_testing::TestDb;
use diesel::prelude::*;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};
use futures_util::FutureExt;
use uuid::Uuid;

fn fleet_context() -> FleetContext {
    let principal = Principal {
        subject: "fleet-operator".into(),
        tenants: vec![],
        roles: vec![],
        scopes: vec!["fleet:read".into()],
    };
    FleetContext::new(Arc::new(principal), None)
}

#[tokio::test]
async fn fleet_reads_see_every_tenant_and_cannot_write() {
    let db = TestDb::new().await;
    let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
    let mut admin = AsyncPgConnection::establish(db.admin_url()).await.unwrap();
    admin
        .batch_execute(&format!(
            "INSERT INTO tenants (id, name) VALUES ('{a}', 'a'), ('{b}', 'b');
             INSERT INTO campaigns (tenant_id, external_id, name, platform, status, currency) VALUES
               ('{a}', 'c1', 'A one', 'meta', 'active', 'EUR'),
               ('{b}', 'c1', 'B one', 'meta', 'active', 'USD');"
        ))
        .await
        .unwrap();

    let fleet = FleetDb::connect(&DbConfig::new(
        db.url(ServiceRole::Health),
        ServiceRole::Health,
    ))
    .unwrap();
    let mut tenants: Vec<Uuid> = fleet
        .read(&fleet_context(), |mut conn| {
            async move {
                campaigns::table
                    .select(campaigns::tenant_id)
                    .load(&mut conn)
                    .await
                    .map_err(DbError::from)
            }
            .boxed()
        })
        .await
        .unwrap();
    tenants.sort();
    let mut expected = vec![a, b];
    expected.sort();
    assert_eq!(tenants, expected);

    let write: Result<usize, DbError> = fleet
        .read(&fleet_context(), |mut conn| {
            async move {
                diesel::delete(campaigns::table)
                    .execute(&mut conn)
                    .await
                    .map_err(DbError::from)
            }
            .boxed()
        })
        .await;
    assert!(write.is_err(), "a fleet unit must not write");
}

#[test]
fn fleet_access_refuses_a_non_health_role() {
    let config = DbConfig::new("postgres://localhost/x", ServiceRole::Analytics);
    assert!(FleetDb::connect(&config).is_err());
}

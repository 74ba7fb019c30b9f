//! Row-level security through the scoped wrapper, against a real
//! PostgreSQL, connected as the analytics service role.

#![allow(clippy::unwrap_used)] // a failing test should fail loudly

use std::sync::Arc;
use std::time::Duration;

use adscope_db::schema::campaigns;
use adscope_db::{AsyncPgConnection, Database, DbConfig, DbError, ServiceRole};
use adscope_tenancy::{Principal, Role, TenantContext, TenantId};
use adscope_testing::TestDb;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text, Uuid as SqlUuid};
use diesel_async::{AsyncConnection, RunQueryDsl, SimpleAsyncConnection};
use futures_util::FutureExt;
use uuid::Uuid;

fn context(tenant: TenantId) -> TenantContext {
    let principal = Principal {
        subject: "test".into(),
        tenants: vec![tenant],
        roles: vec![Role::Analyst],
        scopes: vec![],
    };
    TenantContext::new(tenant, Arc::new(principal), None)
}

/// Two tenants with two campaigns each, written as the administrator.
async fn seed(db: &TestDb) -> (TenantId, TenantId) {
    let a = TenantId::new(Uuid::new_v4());
    let b = TenantId::new(Uuid::new_v4());
    let mut admin = AsyncPgConnection::establish(db.admin_url()).await.unwrap();
    admin
        .batch_execute(&format!(
            "INSERT INTO tenants (id, name) VALUES ('{a}', 'a'), ('{b}', 'b');
             INSERT INTO campaigns (tenant_id, external_id, name, platform, status, currency) VALUES
               ('{a}', 'c1', 'A one', 'meta', 'active', 'EUR'),
               ('{a}', 'c2', 'A two', 'meta', 'active', 'EUR'),
               ('{b}', 'c1', 'B one', 'meta', 'active', 'USD'),
               ('{b}', 'c2', 'B two', 'meta', 'active', 'USD');"
        ))
        .await
        .unwrap();
    (a, b)
}

fn analytics(db: &TestDb, pool_size: u32) -> Database {
    let mut config = DbConfig::new(db.url(ServiceRole::Analytics), ServiceRole::Analytics);
    config.max_connections = pool_size;
    Database::connect(&config).unwrap()
}

/// The tenant's campaign names, read through the general scoped unit.
async fn names_through_scoped(database: &Database, tenant: TenantId) -> Vec<String> {
    database
        .scoped(&context(tenant), |mut conn| {
            async move {
                campaigns::table
                    .select(campaigns::name)
                    .order(campaigns::name)
                    .load(&mut conn)
                    .await
                    .map_err(DbError::from)
            }
            .boxed()
        })
        .await
        .unwrap()
}

#[derive(QueryableByName)]
struct State {
    #[diesel(sql_type = diesel::sql_types::Nullable<Text>)]
    state: Option<String>,
}

/// A backend's state as pg_stat_activity shows it to the administrator.
async fn backend_state(db: &TestDb, pid: i32) -> Option<String> {
    let mut admin = AsyncPgConnection::establish(db.admin_url()).await.unwrap();
    let rows: Vec<State> = diesel::sql_query("SELECT state FROM pg_stat_activity WHERE pid = $1")
        .bind::<diesel::sql_types::Integer, _>(pid)
        .load(&mut admin)
        .await
        .unwrap();
    rows.into_iter().next().and_then(|r| r.state)
}

/// Whether any analytics connection to this database is idle in a transaction.
async fn idle_in_transaction(db: &TestDb) -> bool {
    let mut admin = AsyncPgConnection::establish(db.admin_url()).await.unwrap();
    let n: Count = diesel::sql_query(
        "SELECT count(*) AS n FROM pg_stat_activity \
         WHERE datname = $1 AND usename = 'adscope_analytics' AND state LIKE 'idle in transaction%'",
    )
    .bind::<Text, _>(db.name())
    .get_result(&mut admin)
    .await
    .unwrap();
    n.n > 0
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

#[tokio::test]
async fn with_no_tenant_set_the_service_role_sees_nothing_and_cannot_write() {
    let db = TestDb::new().await;
    let (a, _b) = seed(&db).await;

    // A bare connection as the service role, outside the wrapper: the path
    // that leaked in the system adscope replaces.
    let mut raw = AsyncPgConnection::establish(&db.url(ServiceRole::Analytics))
        .await
        .unwrap();
    let seen: Count = diesel::sql_query("SELECT count(*) AS n FROM campaigns")
        .get_result(&mut raw)
        .await
        .unwrap();
    assert_eq!(seen.n, 0, "no tenant set must mean no rows");

    let insert = diesel::sql_query(
        "INSERT INTO campaigns (tenant_id, external_id, name, platform, status, currency) \
         VALUES ($1, 'x', 'x', 'meta', 'active', 'EUR')",
    )
    .bind::<SqlUuid, _>(a.as_uuid())
    .execute(&mut raw)
    .await;
    assert!(insert.is_err(), "a write with no tenant set must fail");

    // The same role through the wrapper sees exactly the tenant's rows.
    let database = analytics(&db, 2);
    let names = names_through_scoped(&database, a).await;
    assert_eq!(names, ["A one", "A two"]);
}

#[tokio::test]
async fn tenant_a_cannot_read_update_delete_or_insert_tenant_b_rows_with_raw_sql() {
    let db = TestDb::new().await;
    let (a, b) = seed(&db).await;
    let database = analytics(&db, 2);

    let outcome = database
        .scoped(&context(a), |mut conn| {
            async move {
                let read: Vec<Count> =
                    diesel::sql_query("SELECT count(*) AS n FROM campaigns WHERE tenant_id = $1")
                        .bind::<SqlUuid, _>(b.as_uuid())
                        .load(&mut conn)
                        .await?;
                let updated =
                    diesel::sql_query("UPDATE campaigns SET name = 'stolen' WHERE tenant_id = $1")
                        .bind::<SqlUuid, _>(b.as_uuid())
                        .execute(&mut conn)
                        .await?;
                let deleted = diesel::sql_query("DELETE FROM campaigns WHERE tenant_id = $1")
                    .bind::<SqlUuid, _>(b.as_uuid())
                    .execute(&mut conn)
                    .await?;
                let own: Count = diesel::sql_query("SELECT count(*) AS n FROM campaigns")
                    .get_result(&mut conn)
                    .await?;
                Ok::<_, DbError>((read[0].n, updated, deleted, own.n))
            }
            .boxed()
        })
        .await
        .unwrap();
    assert_eq!(
        outcome,
        (0, 0, 0, 2),
        "B invisible and untouched; A's two rows present"
    );

    let insert: Result<usize, DbError> = database
        .scoped(&context(a), |mut conn| {
            async move {
                diesel::sql_query(
                    "INSERT INTO campaigns (tenant_id, external_id, name, platform, status, currency) \
                     VALUES ($1, 'planted', 'planted', 'meta', 'active', 'USD')",
                )
                .bind::<SqlUuid, _>(b.as_uuid())
                .execute(&mut conn)
                .await
                .map_err(DbError::from)
            }
            .boxed()
        })
        .await;
    let error = insert.expect_err("inserting a row for B while scoped to A must fail");
    assert!(
        error.to_string().contains("row-level security"),
        "unexpected error: {error}"
    );

    // B's rows are exactly as seeded, seen as B.
    let b_names = names_through_scoped(&database, b).await;
    assert_eq!(b_names, ["B one", "B two"]);
}

#[tokio::test]
async fn a_failed_unit_of_work_writes_nothing() {
    let db = TestDb::new().await;
    let (a, _) = seed(&db).await;
    let database = analytics(&db, 1);

    let failed: Result<(), DbError> = database
        .scoped(&context(a), |mut conn| {
            async move {
                diesel::update(campaigns::table)
                    .set(campaigns::name.eq("renamed"))
                    .execute(&mut conn)
                    .await?;
                // A duplicate external id: the unit fails after its first write.
                diesel::sql_query(
                    "INSERT INTO campaigns (tenant_id, external_id, name, platform, status, currency) \
                     VALUES ($1, 'c1', 'dup', 'meta', 'active', 'EUR')",
                )
                .bind::<SqlUuid, _>(a.as_uuid())
                .execute(&mut conn)
                .await?;
                Ok(())
            }
            .boxed()
        })
        .await;
    assert!(failed.is_err());

    let names = names_through_scoped(&database, a).await;
    assert_eq!(names, ["A one", "A two"], "the first write was rolled back");
}

#[tokio::test]
async fn a_pooled_connection_carries_no_tenant_into_the_next_checkout() {
    let db = TestDb::new().await;
    let (a, _) = seed(&db).await;
    let database = analytics(&db, 1);

    let pid_in_unit: i32 = database
        .scoped(&context(a), |mut conn| {
            async move {
                diesel::select(diesel::dsl::sql::<diesel::sql_types::Integer>(
                    "pg_backend_pid()",
                ))
                .get_result(&mut conn)
                .await
                .map_err(DbError::from)
            }
            .boxed()
        })
        .await
        .unwrap();

    // Seen from outside, the connection sits idle: its transaction ended.
    assert_eq!(
        backend_state(&db, pid_in_unit).await.as_deref(),
        Some("idle")
    );

    let probe = database.session_probe().await.unwrap();
    assert_eq!(
        probe.backend_pid, pid_in_unit,
        "pool of one: the same connection"
    );
    assert!(
        probe.tenant_setting.as_deref().unwrap_or("").is_empty(),
        "tenant leaked into the next checkout: {:?}",
        probe.tenant_setting
    );
}

#[tokio::test]
async fn a_cancelled_unit_leaves_no_open_transaction_and_no_tenant() {
    let db = TestDb::new().await;
    let (a, _) = seed(&db).await;
    let database = analytics(&db, 1);

    let ctx = context(a);
    let slow = database.scoped(&ctx, |mut conn| {
        async move {
            diesel::sql_query("SELECT pg_sleep(10)")
                .execute(&mut conn)
                .await
                .map_err(DbError::from)
        }
        .boxed()
    });
    let timed_out = tokio::time::timeout(Duration::from_millis(300), slow).await;
    assert!(timed_out.is_err(), "the unit should have been cancelled");

    // The only connection was mid-transaction when dropped; the next checkout
    // must not inherit that transaction or its tenant.
    let probe = tokio::time::timeout(Duration::from_secs(10), database.session_probe())
        .await
        .expect("the pool must hand out a usable connection")
        .unwrap();
    assert!(probe.tenant_setting.as_deref().unwrap_or("").is_empty());
    assert_eq!(
        backend_state(&db, probe.backend_pid).await.as_deref(),
        Some("idle"),
        "the next checkout must not be inside a transaction"
    );
    assert!(
        !idle_in_transaction(&db).await,
        "no pooled connection of the service may sit in an open transaction"
    );

    // And the tenant's data is still whole and readable.
    let n: i64 = database
        .scoped(&context(a), |mut conn| {
            async move {
                campaigns::table
                    .count()
                    .get_result(&mut conn)
                    .await
                    .map_err(DbError::from)
            }
            .boxed()
        })
        .await
        .unwrap();
    assert_eq!(n, 2);
}

#[derive(QueryableByName, Debug)]
struct TableSecurity {
    #[diesel(sql_type = Text)]
    table_name: String,
    #[diesel(sql_type = diesel::sql_types::Bool)]
    enabled: bool,
    #[diesel(sql_type = diesel::sql_types::Bool)]
    forced: bool,
    #[diesel(sql_type = Text)]
    commands: String,
    #[diesel(sql_type = diesel::sql_types::Bool)]
    writes_checked: bool,
    #[diesel(sql_type = diesel::sql_types::Bool)]
    key_starts_with_tenant: bool,
}

#[tokio::test]
async fn every_table_with_tenant_id_has_forced_rls_a_policy_per_command_and_a_tenant_first_key() {
    let db = TestDb::new().await;
    let mut admin = AsyncPgConnection::establish(db.admin_url()).await.unwrap();
    let tables: Vec<TableSecurity> = diesel::sql_query(
        "SELECT c.relname::text AS table_name,
                c.relrowsecurity AS enabled,
                c.relforcerowsecurity AS forced,
                coalesce((SELECT string_agg(p.cmd::text, ',' ORDER BY p.cmd::text)
                          FROM pg_policies p
                          WHERE p.schemaname = n.nspname AND p.tablename = c.relname), '') AS commands,
                coalesce((SELECT bool_and(p.with_check IS NOT NULL)
                          FROM pg_policies p
                          WHERE p.schemaname = n.nspname AND p.tablename = c.relname
                            AND p.cmd IN ('INSERT', 'UPDATE')), false) AS writes_checked,
                coalesce((SELECT a.attname = 'tenant_id'
                          FROM pg_index i
                          JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
                          WHERE i.indrelid = c.oid AND i.indisprimary), false) AS key_starts_with_tenant
         FROM pg_class c
         JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE c.relkind IN ('r', 'p') AND n.nspname = 'public'
           AND EXISTS (SELECT FROM pg_attribute a
                       WHERE a.attrelid = c.oid AND a.attname = 'tenant_id' AND NOT a.attisdropped)
         ORDER BY 1",
    )
    .load(&mut admin)
    .await
    .unwrap();

    assert!(
        tables.len() >= 4,
        "expected the tenant-owned tables, found {tables:?}"
    );
    for table in &tables {
        assert!(
            table.enabled && table.forced,
            "{}: RLS not enabled and forced",
            table.table_name
        );
        assert_eq!(
            table.commands, "DELETE,INSERT,SELECT,UPDATE",
            "{}: a policy per command",
            table.table_name
        );
        assert!(
            table.writes_checked,
            "{}: writes need WITH CHECK",
            table.table_name
        );
        assert!(
            table.key_starts_with_tenant,
            "{}: primary key must begin with tenant_id",
            table.table_name
        );
    }
}

#[derive(QueryableByName, Debug, PartialEq)]
struct RoleFlags {
    #[diesel(sql_type = Text)]
    name: String,
    #[diesel(sql_type = diesel::sql_types::Bool)]
    superuser: bool,
    #[diesel(sql_type = diesel::sql_types::Bool)]
    bypass_rls: bool,
}

#[tokio::test]
async fn service_roles_are_not_superusers_and_only_health_bypasses_rls() {
    let db = TestDb::new().await;
    let mut admin = AsyncPgConnection::establish(db.admin_url()).await.unwrap();
    let roles: Vec<RoleFlags> = diesel::sql_query(
        "SELECT rolname::text AS name, rolsuper AS superuser, rolbypassrls AS bypass_rls
         FROM pg_roles
         WHERE rolname IN ('adscope_analytics', 'adscope_integrations', 'adscope_health')
         ORDER BY rolname",
    )
    .load(&mut admin)
    .await
    .unwrap();
    let flags = |name: &str, bypass: bool| RoleFlags {
        name: name.into(),
        superuser: false,
        bypass_rls: bypass,
    };
    assert_eq!(
        roles,
        vec![
            flags("adscope_analytics", false),
            flags("adscope_health", true),
            flags("adscope_integrations", false),
        ]
    );
}

#[derive(QueryableByName, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct TableGrant {
    #[diesel(sql_type = Text)]
    grantee: String,
    #[diesel(sql_type = Text)]
    table_name: String,
    #[diesel(sql_type = Text)]
    privileges: String,
}

#[tokio::test]
async fn each_service_role_is_granted_only_its_own_tables() {
    let db = TestDb::new().await;
    seed(&db).await;

    // Every table-level grant to a service role (or to everyone), against the
    // sets the migrations mean to give. The health role's column grant on
    // credentials is column-level, so it is not among these.
    let mut admin = AsyncPgConnection::establish(db.admin_url()).await.unwrap();
    let mut grants: Vec<TableGrant> = diesel::sql_query(
        "SELECT grantee::text AS grantee, table_name::text AS table_name,
                string_agg(privilege_type::text, ',' ORDER BY privilege_type::text COLLATE \"C\")
                    AS privileges
         FROM information_schema.role_table_grants
         WHERE table_schema = 'public'
           AND grantee IN ('adscope_analytics', 'adscope_integrations', 'adscope_health', 'PUBLIC')
         GROUP BY grantee, table_name",
    )
    .load(&mut admin)
    .await
    .unwrap();
    let all = "DELETE,INSERT,SELECT,UPDATE";
    let grant = |grantee: &str, table: &str, privileges: &str| TableGrant {
        grantee: grantee.into(),
        table_name: table.into(),
        privileges: privileges.into(),
    };
    let mut expected = Vec::new();
    for (table, privileges) in [
        ("ad_sets", all),
        ("adscope_schema_migrations", "SELECT"),
        ("ads", all),
        ("campaigns", all),
        ("performance_records", all),
        ("snapshots", all),
        ("tenants", "SELECT"),
    ] {
        expected.push(grant("adscope_analytics", table, privileges));
    }
    for table in [
        "ad_sets",
        "adscope_schema_migrations",
        "ads",
        "campaigns",
        "connections",
        "credential_reminders",
        "job_leases",
        "performance_records",
        "snapshots",
        "sync_jobs",
        "tenants",
    ] {
        expected.push(grant("adscope_health", table, "SELECT"));
    }
    for (table, privileges) in [
        ("adscope_schema_migrations", "SELECT"),
        ("connections", all),
        ("credential_reminders", all),
        ("credentials", all),
        ("data_keys", all),
        ("job_leases", all),
        ("sync_jobs", all),
        ("tenants", "SELECT"),
    ] {
        expected.push(grant("adscope_integrations", table, privileges));
    }
    grants.sort();
    expected.sort();
    assert_eq!(grants, expected);

    let mut analytics = AsyncPgConnection::establish(&db.url(ServiceRole::Analytics))
        .await
        .unwrap();
    let denied = analytics.batch_execute("SELECT * FROM connections").await;
    assert!(
        denied
            .unwrap_err()
            .to_string()
            .contains("permission denied"),
        "analytics must not read integrations' tables"
    );

    let mut integrations = AsyncPgConnection::establish(&db.url(ServiceRole::Integrations))
        .await
        .unwrap();
    let denied = integrations.batch_execute("SELECT * FROM campaigns").await;
    assert!(
        denied
            .unwrap_err()
            .to_string()
            .contains("permission denied")
    );

    let mut health = AsyncPgConnection::establish(&db.url(ServiceRole::Health))
        .await
        .unwrap();
    let write = health
        .batch_execute("DELETE FROM campaigns")
        .await
        .unwrap_err()
        .to_string();
    assert!(
        write.contains("read-only") || write.contains("permission denied"),
        "the health role must not write: {write}"
    );
}

#[tokio::test]
async fn tenant_lookups_return_ids_only_and_only_to_integrations() {
    let db = TestDb::new().await;
    let (a, b) = seed(&db).await;
    let airbyte = Uuid::new_v4();
    let mut admin = AsyncPgConnection::establish(db.admin_url()).await.unwrap();
    admin
        .batch_execute(&format!(
            "INSERT INTO connections (tenant_id, name, provider, airbyte_connection_id)
             VALUES ('{a}', 'meta sync', 'meta', '{airbyte}'),
                    ('{b}', 'other', 'meta', '{other}')",
            other = Uuid::new_v4()
        ))
        .await
        .unwrap();

    let config = DbConfig::new(db.url(ServiceRole::Integrations), ServiceRole::Integrations);
    let integrations = Database::connect(&config).unwrap();
    let mut tenants = integrations.active_tenant_ids().await.unwrap();
    tenants.sort();
    let mut expected = vec![a, b];
    expected.sort();
    assert_eq!(tenants, expected);
    assert_eq!(
        integrations.connection_tenants(airbyte).await.unwrap(),
        vec![a]
    );
    assert!(
        integrations
            .connection_tenants(Uuid::new_v4())
            .await
            .unwrap()
            .is_empty()
    );

    let analytics = analytics(&db, 1);
    assert!(
        analytics.active_tenant_ids().await.is_err(),
        "only integrations may enumerate tenants"
    );
}

#[tokio::test]
async fn single_statement_units_are_scoped_to_their_tenant() {
    let db = TestDb::new().await;
    let (a, b) = seed(&db).await;
    let database = analytics(&db, 1);

    let names: Vec<String> = database
        .scoped_load(
            &context(a),
            campaigns::table
                .select(campaigns::name)
                .order(campaigns::name),
        )
        .await
        .unwrap();
    assert_eq!(names, ["A one", "A two"]);

    let b_as_a: Vec<String> = database
        .scoped_load(
            &context(a),
            campaigns::table
                .filter(campaigns::tenant_id.eq(b.as_uuid()))
                .select(campaigns::name),
        )
        .await
        .unwrap();
    assert!(b_as_a.is_empty(), "A must not see B's rows");

    let renamed = database
        .scoped_execute(
            &context(a),
            diesel::update(campaigns::table.filter(campaigns::tenant_id.eq(b.as_uuid())))
                .set(campaigns::name.eq("stolen")),
        )
        .await
        .unwrap();
    assert_eq!(renamed, 0);

    let planted = database
        .scoped_execute(
            &context(a),
            diesel::insert_into(campaigns::table).values((
                campaigns::tenant_id.eq(b.as_uuid()),
                campaigns::external_id.eq("planted"),
                campaigns::name.eq("planted"),
                campaigns::platform.eq("meta"),
                campaigns::status.eq("active"),
                campaigns::currency.eq("USD"),
            )),
        )
        .await;
    assert!(planted.is_err(), "a row for B written as A must be refused");

    // The failed insert left the only connection clean: no transaction, no tenant.
    let probe = database.session_probe().await.unwrap();
    assert!(probe.tenant_setting.as_deref().unwrap_or("").is_empty());
    assert_eq!(
        backend_state(&db, probe.backend_pid).await.as_deref(),
        Some("idle")
    );

    let b_names: Vec<String> = database
        .scoped_load(
            &context(b),
            campaigns::table
                .select(campaigns::name)
                .order(campaigns::name),
        )
        .await
        .unwrap();
    assert_eq!(b_names, ["B one", "B two"], "B's rows are untouched");
}

#[tokio::test]
async fn a_single_statement_write_commits_before_it_returns() {
    let db = TestDb::new().await;
    let (a, _) = seed(&db).await;
    let database = analytics(&db, 2);

    let updated = database
        .scoped_execute(
            &context(a),
            diesel::update(campaigns::table.filter(campaigns::external_id.eq("c1")))
                .set(campaigns::name.eq("A renamed")),
        )
        .await
        .unwrap();
    assert_eq!(updated, 1);

    // Seen from a separate administrator session: committed, not pending.
    let mut admin = AsyncPgConnection::establish(db.admin_url()).await.unwrap();
    let names: Vec<String> = campaigns::table
        .filter(campaigns::tenant_id.eq(a.as_uuid()))
        .select(campaigns::name)
        .order(campaigns::name)
        .load(&mut admin)
        .await
        .unwrap();
    assert_eq!(names, ["A renamed", "A two"]);
}

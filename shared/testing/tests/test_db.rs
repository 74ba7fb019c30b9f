//! Each TestDb is its own migrated database, cloned from one template migrated once.

// Test code: a failed expectation should abort the test with its message.
#![allow(clippy::unwrap_used)]

use adscope_db::ServiceRole;
use adscope_testing::TestDb;
use diesel::sql_types::{BigInt, Bool, Text};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};

#[derive(diesel::QueryableByName)]
struct Facts {
    #[diesel(sql_type = Text)]
    database: String,
    #[diesel(sql_type = Text)]
    login: String,
    #[diesel(sql_type = Bool)]
    has_campaigns: bool,
    #[diesel(sql_type = BigInt)]
    migrations: i64,
    #[diesel(sql_type = Text)]
    migrated_at: String,
}

/// What a service role sees when it connects to `db`.
async fn facts_as_analytics(db: &TestDb) -> Facts {
    let mut conn = AsyncPgConnection::establish(&db.url(ServiceRole::Analytics))
        .await
        .unwrap();
    diesel::sql_query(
        "SELECT current_database()::text AS database,
                current_user::text AS login,
                to_regclass('public.campaigns') IS NOT NULL AS has_campaigns,
                (SELECT count(*) FROM adscope_schema_migrations) AS migrations,
                (SELECT string_agg(version || '@' || applied_at::text, ',' ORDER BY version)
                   FROM adscope_schema_migrations) AS migrated_at",
    )
    .get_result(&mut conn)
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_test_dbs_are_distinct_migrated_copies_of_one_template() {
    let (a, b) = tokio::join!(TestDb::new(), TestDb::new());
    assert_ne!(a.name(), b.name());

    let (fa, fb) = tokio::join!(facts_as_analytics(&a), facts_as_analytics(&b));
    assert_eq!(fa.database, a.name());
    assert_eq!(fb.database, b.name());
    assert_eq!(fa.login, ServiceRole::Analytics.login_role());
    assert!(
        fa.has_campaigns && fb.has_campaigns,
        "migrations must have created campaigns"
    );

    // Same rows with the same timestamps: both came from one migration run.
    assert_eq!(fa.migrations, adscope_db::migrate::MIGRATIONS.len() as i64);
    assert_eq!(fa.migrations, fb.migrations);
    assert_eq!(fa.migrated_at, fb.migrated_at);

    // A later copy is just as migrated and reuses the template without error.
    let c = TestDb::new().await;
    let fc = facts_as_analytics(&c).await;
    assert_eq!(fc.migrated_at, fa.migrated_at);
}

#[tokio::test]
async fn a_dropped_test_db_is_gone_and_works_on_a_current_thread_runtime() {
    #[derive(diesel::QueryableByName)]
    struct Count {
        #[diesel(sql_type = BigInt)]
        n: i64,
    }
    let count = |name: String| async move {
        let mut conn = AsyncPgConnection::establish(&adscope_testing::admin_url().await)
            .await
            .unwrap();
        let row: Count =
            diesel::sql_query("SELECT count(*) AS n FROM pg_database WHERE datname = $1")
                .bind::<Text, _>(name)
                .get_result(&mut conn)
                .await
                .unwrap();
        row.n
    };

    let db = TestDb::new().await;
    let name = db.name().to_owned();
    // Keep a session open so the drop has to force it out.
    let _open = AsyncPgConnection::establish(db.admin_url()).await.unwrap();
    assert_eq!(count(name.clone()).await, 1);

    drop(db);
    assert_eq!(count(name).await, 0);
}

#[tokio::test]
async fn service_role_urls_do_not_log_in_as_superuser() {
    #[derive(diesel::QueryableByName)]
    struct Super {
        #[diesel(sql_type = Bool)]
        superuser: bool,
    }
    let db = TestDb::new().await;
    for role in ServiceRole::ALL {
        let mut conn = AsyncPgConnection::establish(&db.url(role)).await.unwrap();
        let row: Super = diesel::sql_query(
            "SELECT rolsuper AS superuser FROM pg_roles WHERE rolname = current_user",
        )
        .get_result(&mut conn)
        .await
        .unwrap();
        assert!(!row.superuser, "{role:?} must not be a superuser");
    }
}

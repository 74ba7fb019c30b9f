//! Roles and embedded, forward-only migrations.
//!
//! [`run`] connects with an administrator URL, creates the roles adscope
//! needs if they are missing, then applies every migration not yet applied
//! as `adscope_owner`, each in its own transaction, under an advisory lock
//! so that concurrent runs (replicas, parallel test processes) apply each
//! migration once.

use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};

use crate::{DbError, ServiceRole};

/// The role that owns every table; migrations run as it.
pub const OWNER_ROLE: &str = "adscope_owner";
/// The role that owns the narrow tenant look-up functions.
pub const LOOKUP_ROLE: &str = "adscope_lookup";

/// Migrations in the order they apply. Never edit one that has shipped: add
/// another.
pub const MIGRATIONS: &[(&str, &str)] = &[
    (
        "0001_foundation",
        include_str!("../migrations/0001_foundation.sql"),
    ),
    (
        "0002_analytics_performance",
        include_str!("../migrations/0002_analytics_performance.sql"),
    ),
    (
        "0003_credentials",
        include_str!("../migrations/0003_credentials.sql"),
    ),
    ("0004_syncs", include_str!("../migrations/0004_syncs.sql")),
    (
        "0005_reminder_credential_fk",
        include_str!("../migrations/0005_reminder_credential_fk.sql"),
    ),
];

/// Serialises migration runs across processes (an arbitrary constant).
const MIGRATION_LOCK: i64 = 0x6164_7363_6f70_6501;

/// What a run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MigrationReport {
    /// Versions applied by this run, in order.
    pub applied: Vec<&'static str>,
    /// Versions that were already in place.
    pub already_applied: usize,
}

/// A fingerprint of the embedded migrations, stable across builds of the
/// same sources: tests name their template database after it.
pub fn fingerprint() -> String {
    fingerprint_of(MIGRATIONS)
}

// Apart from `fingerprint` so that tests can feed it migrations that differ.
fn fingerprint_of(migrations: &[(&str, &str)]) -> String {
    // FNV-1a: tiny, deterministic, and collisions here cost only a rebuild
    // of a test template.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for (version, sql) in migrations {
        for byte in version.bytes().chain([0]).chain(sql.bytes()).chain([0]) {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    }
    format!("{hash:016x}")
}

/// The newest migration version this build knows.
pub fn latest_version() -> &'static str {
    MIGRATIONS.last().map(|(v, _)| *v).unwrap_or("")
}

#[derive(diesel::QueryableByName)]
struct Version {
    #[diesel(sql_type = diesel::sql_types::Text)]
    version: String,
}

/// Creates missing roles and applies pending migrations to the database at
/// `admin_url` (a superuser, or a role with CREATEROLE that may grant
/// `BYPASSRLS`). Idempotent.
pub async fn run(admin_url: &str) -> Result<MigrationReport, DbError> {
    let mut conn = AsyncPgConnection::establish(admin_url)
        .await
        .map_err(|e| DbError::Unavailable(e.to_string()))?;

    conn.batch_execute(&format!("SELECT pg_advisory_lock({MIGRATION_LOCK})"))
        .await?;
    let outcome = apply(&mut conn).await;
    let unlocked = conn
        .batch_execute(&format!(
            "RESET ROLE; SELECT pg_advisory_unlock({MIGRATION_LOCK})"
        ))
        .await;
    let report = outcome?;
    unlocked?;
    Ok(report)
}

async fn apply(conn: &mut AsyncPgConnection) -> Result<MigrationReport, DbError> {
    conn.batch_execute(&roles_sql()).await?;

    conn.batch_execute(&format!(
        "SET ROLE {OWNER_ROLE};
         CREATE TABLE IF NOT EXISTS adscope_schema_migrations (
             version    text        PRIMARY KEY,
             applied_at timestamptz NOT NULL DEFAULT now()
         );
         GRANT SELECT ON adscope_schema_migrations TO {}, {}, {};",
        ServiceRole::Analytics.login_role(),
        ServiceRole::Integrations.login_role(),
        ServiceRole::Health.login_role(),
    ))
    .await?;

    let done: Vec<Version> = diesel::sql_query("SELECT version FROM adscope_schema_migrations")
        .load(conn)
        .await?;
    let done: std::collections::HashSet<String> = done.into_iter().map(|v| v.version).collect();

    let mut report = MigrationReport::default();
    for (version, sql) in MIGRATIONS {
        if done.contains(*version) {
            report.already_applied += 1;
            continue;
        }
        // One transaction per migration: a failure leaves none of it behind.
        let script = format!(
            "BEGIN;\n{sql}\n;INSERT INTO adscope_schema_migrations (version) VALUES ('{version}');\nCOMMIT;"
        );
        if let Err(source) = conn.batch_execute(&script).await {
            let _ = conn.batch_execute("ROLLBACK").await;
            return Err(DbError::Migration { version, source });
        }
        tracing::info!(migration = version, "applied migration");
        report.applied.push(version);
    }
    Ok(report)
}

/// Role set-up, run as the administrator before any migration.
///
/// Login roles get no password here: local clusters use trust or peer
/// authentication, and an operator sets passwords with `ALTER ROLE`.
fn roles_sql() -> String {
    let analytics = ServiceRole::Analytics.login_role();
    let integrations = ServiceRole::Integrations.login_role();
    let health = ServiceRole::Health.login_role();
    format!(
        "DO $$
         BEGIN
             IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{OWNER_ROLE}') THEN
                 CREATE ROLE {OWNER_ROLE} NOLOGIN;
             END IF;
             IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{LOOKUP_ROLE}') THEN
                 CREATE ROLE {LOOKUP_ROLE} NOLOGIN BYPASSRLS;
             END IF;
             IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{analytics}') THEN
                 CREATE ROLE {analytics} LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE;
             END IF;
             IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{integrations}') THEN
                 CREATE ROLE {integrations} LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE;
             END IF;
             IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{health}') THEN
                 CREATE ROLE {health} LOGIN NOSUPERUSER BYPASSRLS NOCREATEDB NOCREATEROLE;
             END IF;
         END
         $$;
         ALTER ROLE {health} SET default_transaction_read_only = on;
         GRANT {OWNER_ROLE} TO CURRENT_USER;
         GRANT {LOOKUP_ROLE} TO {OWNER_ROLE};
         GRANT USAGE, CREATE ON SCHEMA public TO {OWNER_ROLE}, {LOOKUP_ROLE};
         GRANT USAGE ON SCHEMA public TO {analytics}, {integrations}, {health};"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_follows_versions_and_sql_and_is_sixteen_lowercase_hex_digits() {
        let base = [
            ("0001", "CREATE TABLE a ();"),
            ("0002", "CREATE TABLE b ();"),
        ];
        let same = fingerprint_of(&base);
        let version = String::from("0002");
        let equal = [
            ("0001", "CREATE TABLE a ();"),
            (version.as_str(), "CREATE TABLE b ();"),
        ];
        assert_eq!(same, fingerprint_of(&equal));

        let mut renumbered = base;
        renumbered[1].0 = "0003";
        let mut edited = base;
        edited[1].1 = "CREATE TABLE c ();";
        // The separator keeps a byte moved across the version/SQL boundary
        // from hashing alike.
        let shifted = [
            ("0001", "CREATE TABLE a ();"),
            ("00022", "CREATE TABLE b ();"),
        ];
        let unshifted = [
            ("0001", "CREATE TABLE a ();"),
            ("0002", "2CREATE TABLE b ();"),
        ];
        for other in [
            fingerprint_of(&renumbered),
            fingerprint_of(&edited),
            fingerprint_of(&base[..1]),
        ] {
            assert_ne!(other, same);
        }
        assert_ne!(fingerprint_of(&shifted), fingerprint_of(&unshifted));

        for print in [same, fingerprint()] {
            assert_eq!(print.len(), 16, "{print}");
            assert!(
                print
                    .chars()
                    .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c)),
                "{print}"
            );
        }
    }

    #[test]
    fn migration_versions_are_unique_and_ordered() {
        let versions: Vec<_> = MIGRATIONS.iter().map(|(v, _)| *v).collect();
        let mut sorted = versions.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(versions, sorted);
    }
}

//! The migrated template database, and a fresh copy of it per test.

use std::time::Duration;

use adscope_db::ServiceRole;
use diesel::sql_types::{Bool, Text};
use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};
use tokio::sync::OnceCell;

use crate::server::admin_url;
use crate::urls::{as_user, with_database};

/// Serialises template creation across test processes (an arbitrary constant).
const TEMPLATE_LOCK: i64 = 0x6164_7363_7470_6c01;

/// PostgreSQL limits identifiers to 63 bytes; longer names are cut silently.
const MAX_IDENTIFIER: usize = 63;

/// How often to retry a copy while the template still has a session (a migration's
/// connection that has not quite closed) before giving up.
const COPY_ATTEMPTS: u32 = 50;

static TEMPLATE: OnceCell<String> = OnceCell::const_new();

/// A database of its own for one test, copied from the migrated template and
/// dropped when this value is.
#[derive(Debug)]
pub struct TestDb {
    name: String,
    admin_url: String,
    server_admin_url: String,
}

impl TestDb {
    /// Creates a fresh, migrated database.
    ///
    /// # Panics
    ///
    /// When the server cannot be reached or the template cannot be made.
    pub async fn new() -> TestDb {
        let server_admin_url = maintenance_url(&admin_url().await);
        let template = TEMPLATE
            .get_or_init(|| ensure_template(&server_admin_url))
            .await;
        let name = format!("adscope_test_{}", uuid::Uuid::new_v4().simple());

        let mut conn = connect(&server_admin_url).await;
        let create = format!("CREATE DATABASE \"{name}\" TEMPLATE \"{template}\"");
        let mut attempt = 1;
        while let Err(e) = conn.batch_execute(&create).await {
            // 55006: the template still has a session; it goes away within moments.
            let busy = e.to_string().contains("being accessed by other users");
            if !busy || attempt == COPY_ATTEMPTS {
                panic!("could not create test database {name} from {template}: {e}");
            }
            attempt += 1;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        tracing::debug!(database = %name, "created test database");

        TestDb {
            admin_url: with_database(&server_admin_url, &name),
            name,
            server_admin_url,
        }
    }

    /// The database's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A superuser URL for this database, for set-up that must bypass row-level security.
    pub fn admin_url(&self) -> &str {
        &self.admin_url
    }

    /// A URL for this database as `role`'s login role, with no password.
    pub fn url(&self, role: ServiceRole) -> String {
        as_user(&self.admin_url, &self.name, role.login_role())
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let server_admin_url = self.server_admin_url.clone();
        let drop_sql = format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.name);

        // Drop may run inside a runtime (which cannot block on another future) or
        // outside any; a thread with its own small runtime works in both. Errors are
        // ignored: a database left behind in a throwaway cluster harms nothing.
        let dropper = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            runtime.block_on(async {
                if let Ok(mut conn) = AsyncPgConnection::establish(&server_admin_url).await {
                    let _ = conn.batch_execute(&drop_sql).await;
                }
            });
        });
        let _ = dropper.join();
    }
}

#[derive(diesel::QueryableByName)]
struct TemplateRow {
    #[diesel(sql_type = Bool)]
    datistemplate: bool,
}

/// The template's name, after making sure it exists and is fully migrated.
async fn ensure_template(server_admin_url: &str) -> String {
    let name = template_name(&adscope_db::migrate::fingerprint());
    let mut conn = connect(server_admin_url).await;

    // Session-level lock on the maintenance database: every test process agrees on
    // it, and it is released when this connection closes, even after a panic.
    conn.batch_execute(&format!("SELECT pg_advisory_lock({TEMPLATE_LOCK})"))
        .await
        .unwrap_or_else(|e| panic!("could not take the template lock: {e}"));

    let state = template_state(&mut conn, &name).await;

    // The template flag is set only after migrations succeed, so a database without
    // it is one whose migration was cut short: migrating again (idempotent) finishes it.
    if state == Some(true) {
        tracing::debug!(template = %name, "reusing migrated template");
    } else {
        if state.is_none() {
            conn.batch_execute(&format!("CREATE DATABASE \"{name}\""))
                .await
                .unwrap_or_else(|e| panic!("could not create template {name}: {e}"));
        }
        let report = adscope_db::migrate::run(&with_database(server_admin_url, &name))
            .await
            .unwrap_or_else(|e| panic!("migrating template {name} failed: {e}"));
        tracing::info!(template = %name, applied = report.applied.len(), "migrated template database");

        // Copies need the template to have no sessions; end any the migration left.
        conn.batch_execute(&format!(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = '{name}' AND pid <> pg_backend_pid();
             ALTER DATABASE \"{name}\" WITH IS_TEMPLATE true"
        ))
        .await
        .unwrap_or_else(|e| panic!("could not mark {name} as a template: {e}"));
    }

    let _ = conn
        .batch_execute(&format!("SELECT pg_advisory_unlock({TEMPLATE_LOCK})"))
        .await;
    name
}

/// `None` when database `name` does not exist, else whether it is flagged a template.
async fn template_state(conn: &mut AsyncPgConnection, name: &str) -> Option<bool> {
    // Scoped here: with this trait in scope, slice methods such as `first` on the
    // result would resolve to diesel's query methods instead.
    use diesel_async::RunQueryDsl;

    let rows: Vec<TemplateRow> =
        diesel::sql_query("SELECT datistemplate FROM pg_database WHERE datname = $1")
            .bind::<Text, _>(name)
            .load(conn)
            .await
            .unwrap_or_else(|e| panic!("could not look up template {name}: {e}"));
    rows.into_iter().next().map(|row| row.datistemplate)
}

/// `adscope_tpl_<fingerprint>`, kept to characters and a length PostgreSQL takes as is.
fn template_name(fingerprint: &str) -> String {
    let mut name = String::from("adscope_tpl_");
    name.extend(fingerprint.chars().map(|c| {
        if c.is_ascii_alphanumeric() {
            c.to_ascii_lowercase()
        } else {
            '_'
        }
    }));
    name.truncate(MAX_IDENTIFIER);
    name
}

/// The admin URL on the `postgres` maintenance database, where the lock lives.
fn maintenance_url(admin_url: &str) -> String {
    with_database(admin_url, "postgres")
}

async fn connect(url: &str) -> AsyncPgConnection {
    AsyncPgConnection::establish(url).await.unwrap_or_else(|e| {
        panic!(
            "could not connect to the test PostgreSQL server: {e}; is it running, and is \
             {} a superuser URL?",
            crate::TEST_DATABASE_URL_ENV
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template_name_is_a_safe_identifier() {
        assert_eq!(template_name("00ff13a2"), "adscope_tpl_00ff13a2");
        assert_eq!(template_name("AB-cd"), "adscope_tpl_ab_cd");
        assert_eq!(template_name(&"f".repeat(100)).len(), MAX_IDENTIFIER);
    }
}

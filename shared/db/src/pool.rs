//! The connection pool and the per-connection set-up.
//!
//! Connections are handed out only inside [`Database::scoped`] (and the
//! narrow lookups); nothing public returns one. A connection carries a flag
//! that is raised when a unit of work opens its transaction and lowered only
//! once that transaction has ended; a connection returned with the flag
//! raised (its request was cancelled mid-transaction) is discarded by the
//! pool instead of being handed to the next request.

use std::time::Duration;

use diesel::ConnectionError;
use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};

use crate::{DbError, ServiceRole};

/// How a service reaches its database.
#[derive(Debug, Clone)]
pub struct DbConfig {
    /// A PostgreSQL URL logging in as the service's own role.
    pub url: String,
    /// The service the pool belongs to (sets `application_name`).
    pub role: ServiceRole,
    /// The most connections the pool opens.
    pub max_connections: u32,
    /// How long a request waits for a connection before giving up.
    pub checkout_timeout: Duration,
    /// The server-side limit on any one statement.
    pub statement_timeout: Duration,
}

impl DbConfig {
    /// Defaults suited to one service replica.
    pub fn new(url: impl Into<String>, role: ServiceRole) -> Self {
        DbConfig {
            url: url.into(),
            role,
            max_connections: 16,
            checkout_timeout: Duration::from_secs(5),
            statement_timeout: Duration::from_secs(30),
        }
    }
}

/// A pooled connection and whether a unit of work still has it mid-transaction.
pub(crate) struct TrackedConnection {
    pub(crate) conn: AsyncPgConnection,
    pub(crate) in_transaction: bool,
}

/// Opens connections with the service's settings; never runs a check query
/// on checkout (that would cost a round trip per request), relying on the
/// transaction flag and the socket state instead.
pub(crate) struct Manager {
    url: String,
    setup: String,
}

impl bb8::ManageConnection for Manager {
    type Connection = TrackedConnection;
    type Error = ConnectionError;

    async fn connect(&self) -> Result<TrackedConnection, ConnectionError> {
        let mut conn = AsyncPgConnection::establish(&self.url).await?;
        conn.batch_execute(&self.setup)
            .await
            .map_err(ConnectionError::CouldntSetupConfiguration)?;
        Ok(TrackedConnection {
            conn,
            in_transaction: false,
        })
    }

    // Required by the trait, and never called: the pool does not test on
    // checkout.
    async fn is_valid(&self, _conn: &mut TrackedConnection) -> Result<(), ConnectionError> {
        Ok(())
    }

    fn has_broken(&self, conn: &mut TrackedConnection) -> bool {
        use diesel_async::pooled_connection::PoolableConnection;
        conn.in_transaction || conn.conn.is_broken()
    }
}

/// The pool of one service. Cloning is cheap and shares the pool.
#[derive(Clone)]
pub struct Database {
    pub(crate) pool: bb8::Pool<Manager>,
    pub(crate) role: ServiceRole,
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Database")
            .field("role", &self.role)
            .field("state", &self.pool.state())
            .finish()
    }
}

impl Database {
    /// Builds the pool. Connections open lazily, so a service starts (and
    /// reports `NOT_SERVING`) while its database is still down.
    pub fn connect(config: &DbConfig) -> Result<Database, DbError> {
        if config.url.trim().is_empty() {
            return Err(DbError::Config("the database URL is empty".into()));
        }
        // One set-up hook for every connection: a name to find it by in
        // pg_stat_activity, and bounds on runaway statements and on
        // transactions left idle by a stuck client.
        let setup = format!(
            "SET application_name = '{}'; SET statement_timeout = {}; \
             SET idle_in_transaction_session_timeout = 60000",
            config.role.application_name(),
            config.statement_timeout.as_millis(),
        );
        let manager = Manager {
            url: config.url.clone(),
            setup,
        };
        let pool = bb8::Pool::builder()
            .max_size(config.max_connections)
            .min_idle(None)
            .test_on_check_out(false)
            .connection_timeout(config.checkout_timeout)
            .build_unchecked(manager);
        Ok(Database {
            pool,
            role: config.role,
        })
    }

    pub(crate) async fn checkout(&self) -> Result<bb8::PooledConnection<'_, Manager>, DbError> {
        self.pool.get().await.map_err(|error| match error {
            bb8::RunError::User(error) => DbError::Unavailable(error.to_string()),
            bb8::RunError::TimedOut => {
                DbError::Unavailable("timed out waiting for a database connection".into())
            }
        })
    }

    /// Whether the database answers, through this service's own role.
    pub async fn ping(&self) -> Result<(), DbError> {
        let mut conn = self.checkout().await?;
        conn.conn.batch_execute("SELECT 1").await?;
        Ok(())
    }
}

/// What a fresh checkout looks like from the server's side: for health
/// checks and for proving that nothing leaks between checkouts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionProbe {
    /// The server process behind the connection.
    pub backend_pid: i32,
    /// `app.tenant_id` as the session sees it outside any unit of work
    /// (`None` or empty means no tenant).
    pub tenant_setting: Option<String>,
}

#[derive(diesel::QueryableByName)]
struct ProbeRow {
    #[diesel(sql_type = diesel::sql_types::Integer)]
    pid: i32,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
    setting: Option<String>,
}

impl Database {
    /// Checks out a connection and reports its session state, without a
    /// tenant. It returns facts about the session, never rows or a connection.
    pub async fn session_probe(&self) -> Result<SessionProbe, DbError> {
        use diesel_async::RunQueryDsl;

        let mut pooled = self.checkout().await?;
        let row: ProbeRow = diesel::sql_query(
            "SELECT pg_backend_pid() AS pid, current_setting('app.tenant_id', true) AS setting",
        )
        .get_result(&mut pooled.conn)
        .await?;
        Ok(SessionProbe {
            backend_pid: row.pid,
            tenant_setting: row.setting,
        })
    }
}

#[derive(diesel::QueryableByName)]
struct LatestMigration {
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
    version: Option<String>,
}

impl Database {
    /// The newest migration applied to the database, as this role sees it.
    pub async fn applied_migration(&self) -> Result<Option<String>, DbError> {
        use diesel_async::RunQueryDsl;

        let mut pooled = self.checkout().await?;
        let row: LatestMigration =
            diesel::sql_query("SELECT max(version) AS version FROM adscope_schema_migrations")
                .get_result(&mut pooled.conn)
                .await?;
        Ok(row.version)
    }
}

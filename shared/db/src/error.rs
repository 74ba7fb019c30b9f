//! The error type of the db crate; services map it to `tonic::Status` in one
//! place of their own.

/// A failure to reach the database or to run a statement.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// No connection could be had from the pool in time, or a new one could
    /// not be established.
    #[error("database unavailable: {0}")]
    Unavailable(String),

    /// A statement failed.
    #[error(transparent)]
    Query(#[from] diesel::result::Error),

    /// The database URL or another setting is unusable.
    #[error("database configuration: {0}")]
    Config(String),

    /// A migration failed; nothing of it was applied.
    #[error("migration {version} failed: {source}")]
    Migration {
        version: &'static str,
        #[source]
        source: diesel::result::Error,
    },
}

//! Errors of the analytics handlers and their one mapping to `tonic::Status`.
//!
//! Handlers return [`ApiError`]; the database crate's errors convert into
//! it; nothing else in this crate builds a `Status` from a database error.

use adscope_db::DbError;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use tonic::Status;

/// A handler failure.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ApiError {
    #[error("{0}")]
    InvalidArgument(String),
    /// Both a missing id and another tenant's id: the two must be
    /// indistinguishable to the caller.
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<DieselError> for ApiError {
    fn from(error: DieselError) -> Self {
        ApiError::Db(DbError::Query(error))
    }
}

impl From<ApiError> for Status {
    fn from(error: ApiError) -> Status {
        match error {
            ApiError::InvalidArgument(message) => Status::invalid_argument(message),
            ApiError::NotFound(what) => Status::not_found(format!("{what} not found")),
            ApiError::Db(DbError::Unavailable(reason)) => {
                tracing::warn!(%reason, "database unavailable");
                Status::unavailable("the database is unavailable; retry shortly")
            }
            ApiError::Db(DbError::Query(DieselError::NotFound)) => {
                Status::not_found("resource not found")
            }
            ApiError::Db(DbError::Query(DieselError::DatabaseError(
                DatabaseErrorKind::UniqueViolation,
                info,
            ))) => Status::already_exists(format!(
                "a resource with the same unique key already exists ({})",
                info.constraint_name().unwrap_or("unique key")
            )),
            ApiError::Db(error) => {
                tracing::error!(%error, "database error");
                Status::internal("internal database error")
            }
        }
    }
}

//! Errors of the analytics handlers and their one mapping to `tonic::Status`.
//!
//! Handlers return [`ApiError`]; the database crate's errors convert into
//! it; nothing else in this crate builds a `Status` from a database error.

use adscope_db::DbError;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, FieldViolation, StatusExt};

/// A handler failure.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ApiError {
    /// One or more fields are invalid; reported as `INVALID_ARGUMENT` with a
    /// `google.rpc.BadRequest` listing each field and what is wrong with it.
    #[error("invalid request: {}", describe(.0))]
    Invalid(Vec<FieldViolation>),
    /// Both a missing id and another tenant's id: the two must be
    /// indistinguishable to the caller.
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("{0}")]
    AlreadyExists(String),
    #[error(transparent)]
    Db(#[from] DbError),
}

fn describe(violations: &[FieldViolation]) -> String {
    violations
        .iter()
        .map(|v| format!("{}: {}", v.field, v.description))
        .collect::<Vec<_>>()
        .join("; ")
}

impl ApiError {
    /// One invalid field.
    pub(crate) fn invalid(field: impl Into<String>, description: impl Into<String>) -> Self {
        ApiError::Invalid(vec![FieldViolation::new(field, description)])
    }
}

/// Collects field violations so a request reports all of them at once.
#[derive(Debug, Default)]
pub(crate) struct Violations(Vec<FieldViolation>);

impl Violations {
    pub(crate) fn new() -> Self {
        Violations(Vec::new())
    }

    pub(crate) fn add(&mut self, field: impl Into<String>, description: impl Into<String>) {
        self.0.push(FieldViolation::new(field, description));
    }

    /// Keeps the value of a check, recording its violation if it failed.
    pub(crate) fn check<T, E: Into<ApiError>>(&mut self, result: Result<T, E>) -> Option<T> {
        match result.map_err(Into::into) {
            Ok(value) => Some(value),
            Err(ApiError::Invalid(mut violations)) => {
                self.0.append(&mut violations);
                None
            }
            Err(other) => {
                self.0.push(FieldViolation::new("", other.to_string()));
                None
            }
        }
    }

    /// `Ok(())` when nothing was recorded.
    pub(crate) fn finish(self) -> Result<(), ApiError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(ApiError::Invalid(self.0))
        }
    }
}

/// What a write's constraint violation means for the caller: `unique` for a
/// duplicate key, `foreign_key` for a parent that is not there (missing and
/// another tenant's look the same), `check` for a check constraint; any
/// other error stays a database error.
pub(crate) fn write_error(
    error: DbError,
    unique: impl FnOnce() -> ApiError,
    foreign_key: impl FnOnce() -> ApiError,
    check: impl FnOnce() -> ApiError,
) -> ApiError {
    match &error {
        DbError::Query(DieselError::DatabaseError(kind, _)) => match kind {
            DatabaseErrorKind::UniqueViolation => unique(),
            DatabaseErrorKind::ForeignKeyViolation => foreign_key(),
            DatabaseErrorKind::CheckViolation => check(),
            _ => ApiError::Db(error),
        },
        _ => ApiError::Db(error),
    }
}

impl From<adscope_server::page::InvalidField> for ApiError {
    fn from(error: adscope_server::page::InvalidField) -> Self {
        ApiError::invalid(error.field, error.description)
    }
}

impl From<DieselError> for ApiError {
    fn from(error: DieselError) -> Self {
        ApiError::Db(DbError::Query(error))
    }
}

impl From<ApiError> for Status {
    fn from(error: ApiError) -> Status {
        match error {
            ApiError::Invalid(violations) => {
                let message = describe(&violations);
                Status::with_error_details(
                    Code::InvalidArgument,
                    message,
                    ErrorDetails::with_bad_request(violations),
                )
            }
            ApiError::NotFound(what) => Status::not_found(format!("{what} not found")),
            ApiError::AlreadyExists(message) => Status::already_exists(message),
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

//! Errors of the connection handlers and their one mapping to `tonic::Status`.

use adscope_db::DbError;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, FieldViolation, StatusExt};

use crate::airbyte::AirbyteError;

/// A handler failure.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// One or more fields are invalid: `INVALID_ARGUMENT` with a
    /// `google.rpc.BadRequest` naming each field.
    #[error("invalid request: {}", describe(.0))]
    Invalid(Vec<FieldViolation>),
    /// A missing id and another tenant's id look the same.
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("{0}")]
    AlreadyExists(String),
    #[error("{0}")]
    FailedPrecondition(String),
    #[error(transparent)]
    Airbyte(#[from] AirbyteError),
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
    pub fn invalid(field: impl Into<String>, description: impl Into<String>) -> Self {
        ApiError::Invalid(vec![FieldViolation::new(field, description)])
    }
}

impl From<DieselError> for ApiError {
    fn from(error: DieselError) -> Self {
        ApiError::Db(DbError::Query(error))
    }
}

impl From<adscope_server::page::InvalidField> for ApiError {
    fn from(error: adscope_server::page::InvalidField) -> Self {
        ApiError::invalid(error.field, error.description)
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
            ApiError::FailedPrecondition(message) => Status::failed_precondition(message),
            ApiError::Airbyte(error) => error.into(),
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

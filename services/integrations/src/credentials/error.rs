//! Errors of credential storage and their one mapping to `tonic::Status`.

use adscope_db::DbError;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, FieldViolation, StatusExt};
use uuid::Uuid;

use crate::kms::KmsError;

/// What `FAILED_PRECONDITION` says when no key-encryption key is configured.
pub const NOT_CONFIGURED: &str = "credential storage is not configured: set ADSCOPE_KMS_KEY_FILE";

/// A failure to store, open or rotate credentials. Messages never carry a
/// token or key.
#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    /// No key-encryption key is configured (or the configured one failed to
    /// load: the message says why).
    #[error("{0}")]
    NotConfigured(String),
    /// A request field is invalid.
    #[error("{field}: {description}")]
    Invalid { field: String, description: String },
    /// No such credential for this tenant (another tenant's id included).
    #[error("credential not found")]
    NotFound,
    /// A sealed credential failed authentication: tampered, or moved from
    /// another tenant or row. Nothing was changed.
    #[error(
        "credential {id} failed authentication under data key version {key_version}; \
         it was tampered with or copied from elsewhere, and nothing was changed"
    )]
    Corrupt { id: Uuid, key_version: i32 },
    /// A data key is missing, or failed to unwrap.
    #[error("data key version {key_version}: {source}")]
    DataKey {
        key_version: i32,
        #[source]
        source: KmsError,
    },
    /// A data key the credential names does not exist.
    #[error("data key version {0} does not exist")]
    MissingDataKey(i32),
    /// The tenant's keys changed while a rotation was prepared.
    #[error("the data keys changed concurrently; retry the rotation")]
    Conflict,
    /// Sealing failed (not expected with valid lengths).
    #[error("sealing a credential failed")]
    Seal,
    #[error(transparent)]
    Db(#[from] DbError),
}

impl CredentialError {
    pub(crate) fn invalid(field: impl Into<String>, description: impl Into<String>) -> Self {
        CredentialError::Invalid {
            field: field.into(),
            description: description.into(),
        }
    }
}

impl From<DieselError> for CredentialError {
    fn from(error: DieselError) -> Self {
        CredentialError::Db(DbError::Query(error))
    }
}

impl From<CredentialError> for Status {
    fn from(error: CredentialError) -> Status {
        match error {
            CredentialError::NotConfigured(message) => Status::failed_precondition(message),
            CredentialError::Invalid { field, description } => Status::with_error_details(
                Code::InvalidArgument,
                format!("{field}: {description}"),
                ErrorDetails::with_bad_request(vec![FieldViolation::new(field, description)]),
            ),
            CredentialError::NotFound => Status::not_found("credential not found"),
            error @ CredentialError::Corrupt { .. } => {
                tracing::error!(%error, "sealed credential failed authentication");
                Status::data_loss(error.to_string())
            }
            error @ (CredentialError::DataKey { .. } | CredentialError::MissingDataKey(_)) => {
                tracing::error!(%error, "data key unusable");
                Status::failed_precondition(format!(
                    "{error}; check that ADSCOPE_KMS_KEY_FILE is the key the data keys were \
                     wrapped with"
                ))
            }
            CredentialError::Conflict => Status::aborted(CredentialError::Conflict.to_string()),
            CredentialError::Seal => Status::internal("sealing the credential failed"),
            CredentialError::Db(DbError::Query(DieselError::DatabaseError(
                DatabaseErrorKind::UniqueViolation,
                _,
            ))) => Status::aborted("a concurrent change to the same credential or key; retry"),
            CredentialError::Db(DbError::Unavailable(reason)) => {
                tracing::warn!(%reason, "database unavailable");
                Status::unavailable("the database is unavailable; retry shortly")
            }
            CredentialError::Db(error) => {
                tracing::error!(%error, "database error");
                Status::internal("internal database error")
            }
        }
    }
}

impl From<adscope_server::page::InvalidField> for CredentialError {
    fn from(error: adscope_server::page::InvalidField) -> Self {
        CredentialError::invalid(error.field, error.description)
    }
}

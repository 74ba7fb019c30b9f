//! `adscope.integrations.v1.CredentialService`: platform credentials sealed
//! under per-tenant data keys, themselves wrapped by a KMS. Tokens are
//! write-only: no reply carries them.

mod error;
mod seal;
mod store;

use std::path::Path;
use std::sync::Arc;

use adscope_db::Database;
use adscope_proto::integrations::v1 as pb;
use adscope_server::page;
use adscope_tenancy::tenant_context;
use chrono::{DateTime, Utc};
use tonic::{Request, Response, Status};
use uuid::Uuid;
use zeroize::Zeroizing;

pub use error::{CredentialError, NOT_CONFIGURED};
pub use store::{
    CredentialMeta, ExpiringCredential, NewCredential, RevealedCredential, RotationReport,
    delete_credential, expiring_credentials, get_credential, list_credentials, provider_name,
    provider_of, put_credential, reveal_for_use, rotate_tenant_key,
};

use crate::kms::{self, Kms};

/// Longest token accepted (platform tokens are a few KiB at most).
const MAX_TOKEN_LEN: usize = 16 * 1024;
const MAX_SCOPES: usize = 100;

/// Handlers over the tenant-scoped pool and the KMS.
#[derive(Debug, Clone)]
pub struct Credentials {
    db: Database,
    kms: Result<Arc<dyn Kms>, String>,
}

impl Credentials {
    /// Handlers using `kms`; with `None` every call answers
    /// `FAILED_PRECONDITION`.
    pub fn new(db: Database, kms: Option<Arc<dyn Kms>>) -> Self {
        Credentials {
            db,
            kms: kms.ok_or_else(|| NOT_CONFIGURED.to_owned()),
        }
    }

    /// Handlers with the local key file at `key_file`, if any. A key file
    /// that does not load is logged and every call answers
    /// `FAILED_PRECONDITION` naming the problem (the server still starts).
    pub fn from_key_file(db: Database, key_file: Option<&Path>) -> Self {
        match kms::from_config(key_file) {
            Ok(kms) => Credentials::new(db, kms),
            Err(error) => {
                tracing::error!(%error, "credential storage disabled");
                Credentials {
                    db,
                    kms: Err(format!("credential storage is not configured: {error}")),
                }
            }
        }
    }

    fn require_kms(&self) -> Result<&dyn Kms, CredentialError> {
        self.kms
            .as_ref()
            .map(|kms| kms.as_ref())
            .map_err(|message| CredentialError::NotConfigured(message.clone()))
    }
}

fn timestamp(at: DateTime<Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: at.timestamp(),
        nanos: i32::try_from(at.timestamp_subsec_nanos()).unwrap_or(0),
    }
}

fn datetime(ts: &prost_types::Timestamp) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp(ts.seconds, u32::try_from(ts.nanos).ok()?)
}

fn to_proto(meta: CredentialMeta, now: DateTime<Utc>) -> pb::Credential {
    let status = meta.effective_status(now);
    pb::Credential {
        id: meta.id.to_string(),
        provider: provider_of(&meta.provider).into(),
        account_id: meta.account_id,
        expire_time: meta.expires_at.map(timestamp),
        status: status.into(),
        scopes: meta.scopes,
        key_version: meta.key_version,
        create_time: Some(timestamp(meta.created_at)),
        update_time: Some(timestamp(meta.updated_at)),
    }
}

fn parse_id(id: &str) -> Result<Uuid, CredentialError> {
    Uuid::parse_str(id.trim())
        .map_err(|_| CredentialError::invalid("id", format!("must be a UUID, got {id:?}")))
}

fn provider(value: i32) -> Result<pb::Provider, CredentialError> {
    pb::Provider::try_from(value).map_err(|_| {
        CredentialError::invalid("provider", format!("{value} is not a known provider"))
    })
}

fn new_credential(mut request: pb::PutCredentialRequest) -> Result<NewCredential, CredentialError> {
    // Taken out first so the tokens are wiped whatever is refused below.
    let access_token = Zeroizing::new(std::mem::take(&mut request.access_token));
    let refresh_token = Zeroizing::new(std::mem::take(&mut request.refresh_token));
    let provider = provider(request.provider)?;
    if provider == pb::Provider::Unspecified {
        return Err(CredentialError::invalid(
            "provider",
            "is required: META, GOOGLE_ADS, GA4, LINKEDIN or TIKTOK",
        ));
    }
    let account_id = request.account_id.trim().to_owned();
    if account_id.is_empty() {
        return Err(CredentialError::invalid("account_id", "is required"));
    }
    if account_id.chars().count() > 256 || account_id.chars().any(char::is_control) {
        return Err(CredentialError::invalid(
            "account_id",
            "must be at most 256 characters without control characters",
        ));
    }
    if access_token.trim().is_empty() {
        return Err(CredentialError::invalid("access_token", "is required"));
    }
    for (field, token) in [
        ("access_token", &access_token),
        ("refresh_token", &refresh_token),
    ] {
        if token.len() > MAX_TOKEN_LEN {
            return Err(CredentialError::invalid(
                field,
                format!("is longer than {MAX_TOKEN_LEN} bytes"),
            ));
        }
    }
    let expires_at = request
        .expire_time
        .as_ref()
        .map(|ts| {
            datetime(ts).ok_or_else(|| CredentialError::invalid("expire_time", "is out of range"))
        })
        .transpose()?;
    if request.scopes.len() > MAX_SCOPES {
        return Err(CredentialError::invalid(
            "scopes",
            format!("at most {MAX_SCOPES} scopes"),
        ));
    }
    let mut scopes = Vec::with_capacity(request.scopes.len());
    for (i, scope) in request.scopes.iter().enumerate() {
        let scope = scope.trim();
        if scope.is_empty() || scope.len() > 256 {
            return Err(CredentialError::invalid(
                format!("scopes[{i}]"),
                "must be 1 to 256 characters",
            ));
        }
        if !scopes.iter().any(|s: &String| s == scope) {
            scopes.push(scope.to_owned());
        }
    }
    Ok(NewCredential {
        provider,
        account_id,
        access_token,
        refresh_token,
        expires_at,
        scopes,
    })
}

/// The filters a page token is tied to.
fn filters(provider: pb::Provider, status: pb::CredentialStatus) -> String {
    format!("{}|{}", provider.as_str_name(), status.as_str_name())
}

#[tonic::async_trait]
impl pb::credential_service_server::CredentialService for Credentials {
    async fn put_credential(
        &self,
        request: Request<pb::PutCredentialRequest>,
    ) -> Result<Response<pb::PutCredentialResponse>, Status> {
        let ctx = tenant_context(&request)?.clone();
        let kms = self.require_kms()?;
        let new = new_credential(request.into_inner())?;
        let stored = put_credential(&self.db, kms, &ctx, new).await?;
        Ok(Response::new(pb::PutCredentialResponse {
            credential: Some(to_proto(stored, Utc::now())),
        }))
    }

    async fn get_credential(
        &self,
        request: Request<pb::GetCredentialRequest>,
    ) -> Result<Response<pb::GetCredentialResponse>, Status> {
        let ctx = tenant_context(&request)?.clone();
        self.require_kms()?;
        let id = parse_id(&request.get_ref().id)?;
        let found = get_credential(&self.db, &ctx, id).await?;
        Ok(Response::new(pb::GetCredentialResponse {
            credential: Some(to_proto(found, Utc::now())),
        }))
    }

    async fn list_credentials(
        &self,
        request: Request<pb::ListCredentialsRequest>,
    ) -> Result<Response<pb::ListCredentialsResponse>, Status> {
        let ctx = tenant_context(&request)?.clone();
        self.require_kms()?;
        let request = request.into_inner();
        let size = page::page_size(request.page_size)?;
        let provider = provider(request.provider)?;
        let status = pb::CredentialStatus::try_from(request.status).map_err(|_| {
            CredentialError::invalid(
                "status",
                format!("{} is not a known status", request.status),
            )
        })?;
        let tenant = *ctx.tenant_id().as_uuid();
        let filters = filters(provider, status);
        let query = page::fingerprint(&["credentials", &filters]);
        let after = match page::decode(&request.page_token, tenant, query)?.as_deref() {
            None => None,
            Some([last]) => Some(Uuid::parse_str(last).map_err(|_| {
                CredentialError::invalid("page_token", "is not a page token this listing issued")
            })?),
            Some(_) => {
                return Err(CredentialError::invalid(
                    "page_token",
                    "is not a page token this listing issued",
                )
                .into());
            }
        };
        let mut rows = list_credentials(
            &self.db,
            &ctx,
            provider_name(provider),
            status,
            after,
            size + 1,
        )
        .await?;
        let next_page_token = match page::trim_page(&mut rows, size) {
            Some(last) => page::encode(tenant, query, vec![last.id.to_string()]),
            _ => String::new(),
        };
        let now = Utc::now();
        Ok(Response::new(pb::ListCredentialsResponse {
            credentials: rows.into_iter().map(|row| to_proto(row, now)).collect(),
            next_page_token,
        }))
    }

    async fn delete_credential(
        &self,
        request: Request<pb::DeleteCredentialRequest>,
    ) -> Result<Response<pb::DeleteCredentialResponse>, Status> {
        let ctx = tenant_context(&request)?.clone();
        self.require_kms()?;
        let id = parse_id(&request.get_ref().id)?;
        delete_credential(&self.db, &ctx, id).await?;
        Ok(Response::new(pb::DeleteCredentialResponse {}))
    }

    async fn rotate_data_key(
        &self,
        request: Request<pb::RotateDataKeyRequest>,
    ) -> Result<Response<pb::RotateDataKeyResponse>, Status> {
        let ctx = tenant_context(&request)?.clone();
        let kms = self.require_kms()?;
        let report = rotate_tenant_key(&self.db, kms, &ctx).await?;
        tracing::info!(
            tenant.id = %ctx.tenant_id(),
            key_version = report.key_version,
            credentials = report.credentials_reencrypted,
            "data key rotated"
        );
        Ok(Response::new(pb::RotateDataKeyResponse {
            key_version: report.key_version,
            credentials_reencrypted: i32::try_from(report.credentials_reencrypted)
                .unwrap_or(i32::MAX),
        }))
    }
}

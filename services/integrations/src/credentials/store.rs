//! Credential storage: envelope encryption over the tenant-scoped pool.
//!
//! Each tenant has data keys (`data_keys`), stored only wrapped by the KMS.
//! Exactly one is active and seals new credentials; retired ones stay until
//! no credential names them. KMS calls happen outside transactions, so a
//! slow KMS never holds row locks.

use std::collections::HashMap;
use std::time::Duration;

use adscope_db::Database;
use adscope_db::schema::{credentials, data_keys};
use adscope_proto::integrations::v1 as pb;
use adscope_tenancy::TenantContext;
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use futures_util::FutureExt;
use uuid::Uuid;
use zeroize::Zeroizing;

use super::error::CredentialError;
use super::seal::{self, Binding, Secrets};
use crate::kms::{DataKey, Kms, WrappedKey};

/// The stored name of a provider; `None` for UNSPECIFIED.
pub fn provider_name(provider: pb::Provider) -> Option<&'static str> {
    Some(match provider {
        pb::Provider::Unspecified => return None,
        pb::Provider::Meta => "meta",
        pb::Provider::GoogleAds => "google_ads",
        pb::Provider::Ga4 => "ga4",
        pb::Provider::Linkedin => "linkedin",
        pb::Provider::Tiktok => "tiktok",
    })
}

/// The provider a stored name stands for.
pub fn provider_of(name: &str) -> pb::Provider {
    match name {
        "meta" => pb::Provider::Meta,
        "google_ads" => pb::Provider::GoogleAds,
        "ga4" => pb::Provider::Ga4,
        "linkedin" => pb::Provider::Linkedin,
        "tiktok" => pb::Provider::Tiktok,
        _ => pb::Provider::Unspecified,
    }
}

/// A credential to store. The tokens are wiped from memory when dropped.
pub struct NewCredential {
    pub provider: pb::Provider,
    pub account_id: String,
    pub access_token: Zeroizing<String>,
    pub refresh_token: Zeroizing<String>,
    pub expires_at: Option<DateTime<Utc>>,
    pub scopes: Vec<String>,
}

impl std::fmt::Debug for NewCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewCredential")
            .field("provider", &self.provider)
            .field("account_id", &self.account_id)
            .field("expires_at", &self.expires_at)
            .field("scopes", &self.scopes)
            .finish_non_exhaustive()
    }
}

/// A credential's metadata: everything but its tokens.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = credentials)]
pub struct CredentialMeta {
    pub id: Uuid,
    pub provider: String,
    pub account_id: String,
    pub key_version: i32,
    pub expires_at: Option<DateTime<Utc>>,
    pub status: String,
    pub scopes: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl CredentialMeta {
    /// The status a caller sees: an active credential past its expiry is
    /// expired.
    pub fn effective_status(&self, now: DateTime<Utc>) -> pb::CredentialStatus {
        match self.status.as_str() {
            "revoked" => pb::CredentialStatus::Revoked,
            "expired" => pb::CredentialStatus::Expired,
            "active" if self.expires_at.is_some_and(|at| at <= now) => {
                pb::CredentialStatus::Expired
            }
            "active" => pb::CredentialStatus::Active,
            _ => pb::CredentialStatus::Unspecified,
        }
    }
}

/// A credential opened for use by sync code: its tokens, in memory that is
/// wiped on drop. `Debug` never shows them.
pub struct RevealedCredential {
    pub meta: CredentialMeta,
    pub access_token: Zeroizing<String>,
    /// Empty when the platform issued none.
    pub refresh_token: Zeroizing<String>,
}

impl std::fmt::Debug for RevealedCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RevealedCredential")
            .field("meta", &self.meta)
            .field("access_token", &"<redacted>")
            .field("refresh_token", &"<redacted>")
            .finish()
    }
}

/// What a rotation did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RotationReport {
    /// Version of the new active data key.
    pub key_version: i32,
    /// The version it replaced; `None` when the tenant had no key yet.
    pub retired_version: Option<i32>,
    /// Credentials re-encrypted under the new key.
    pub credentials_reencrypted: usize,
}

/// A credential whose access token expires soon (or has expired), for
/// reminders.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpiringCredential {
    pub id: Uuid,
    pub provider: pb::Provider,
    pub account_id: String,
    pub expires_at: DateTime<Utc>,
}

#[derive(Debug, Queryable, Selectable)]
#[diesel(table_name = data_keys)]
struct KeyRow {
    version: i32,
    wrapped_key: Vec<u8>,
    kek_id: String,
    status: String,
}

impl KeyRow {
    fn wrapped(&self) -> WrappedKey {
        WrappedKey {
            kek_id: self.kek_id.clone(),
            bytes: self.wrapped_key.clone(),
        }
    }
}

#[derive(Debug, Queryable, Selectable)]
#[diesel(table_name = credentials)]
struct SealedRow {
    id: Uuid,
    provider: String,
    account_id: String,
    ciphertext: Vec<u8>,
    nonce: Vec<u8>,
    key_version: i32,
}

async fn unwrap_key(
    kms: &dyn Kms,
    ctx: &TenantContext,
    row: &KeyRow,
) -> Result<DataKey, CredentialError> {
    kms.unwrap(ctx.tenant_id(), &row.wrapped())
        .await
        .map_err(|source| CredentialError::DataKey {
            key_version: row.version,
            source,
        })
}

/// The tenant's active data key, made (version 1) if it has none yet.
async fn active_key(
    db: &Database,
    kms: &dyn Kms,
    ctx: &TenantContext,
) -> Result<(i32, DataKey), CredentialError> {
    let active = || {
        data_keys::table
            .filter(data_keys::status.eq("active"))
            .select(KeyRow::as_select())
            .limit(1)
    };
    let mut found: Vec<KeyRow> = db.scoped_load(ctx, active()).await?;
    if found.is_empty() {
        let key = DataKey::generate();
        let wrapped =
            kms.wrap(ctx.tenant_id(), &key)
                .await
                .map_err(|source| CredentialError::DataKey {
                    key_version: 1,
                    source,
                })?;
        // A concurrent first write may win the race; either way one key
        // version 1 is active afterwards and both writers use it.
        db.scoped_execute(
            ctx,
            diesel::insert_into(data_keys::table)
                .values((
                    data_keys::tenant_id.eq(*ctx.tenant_id().as_uuid()),
                    data_keys::version.eq(1),
                    data_keys::wrapped_key.eq(wrapped.bytes),
                    data_keys::kek_id.eq(wrapped.kek_id),
                    data_keys::status.eq("active"),
                ))
                .on_conflict_do_nothing(),
        )
        .await?;
        found = db.scoped_load(ctx, active()).await?;
    }
    let row = found
        .into_iter()
        .next()
        .ok_or(CredentialError::MissingDataKey(1))?;
    let key = unwrap_key(kms, ctx, &row).await?;
    Ok((row.version, key))
}

/// Stores `new`, replacing the tenant's credential with the same provider and
/// account id; returns its metadata.
pub async fn put_credential(
    db: &Database,
    kms: &dyn Kms,
    ctx: &TenantContext,
    new: NewCredential,
) -> Result<CredentialMeta, CredentialError> {
    let provider = provider_name(new.provider)
        .ok_or_else(|| CredentialError::invalid("provider", "is required"))?;
    let (key_version, key) = active_key(db, kms, ctx).await?;
    let binding = Binding {
        tenant: ctx.tenant_id(),
        provider,
        account_id: &new.account_id,
        key_version,
    };
    let secrets = Secrets {
        access_token: new.access_token,
        refresh_token: new.refresh_token,
    };
    let sealed = seal::seal(&key, &binding, &secrets).ok_or(CredentialError::Seal)?;
    drop(secrets);
    let now = Utc::now();
    let stored: Vec<CredentialMeta> = db
        .scoped_load(
            ctx,
            diesel::insert_into(credentials::table)
                .values((
                    credentials::tenant_id.eq(*ctx.tenant_id().as_uuid()),
                    credentials::provider.eq(provider),
                    credentials::account_id.eq(&new.account_id),
                    credentials::ciphertext.eq(&sealed.ciphertext),
                    credentials::nonce.eq(&sealed.nonce),
                    credentials::key_version.eq(key_version),
                    credentials::expires_at.eq(new.expires_at),
                    credentials::status.eq("active"),
                    credentials::scopes.eq(&new.scopes),
                ))
                .on_conflict((
                    credentials::tenant_id,
                    credentials::provider,
                    credentials::account_id,
                ))
                .do_update()
                .set((
                    credentials::ciphertext.eq(&sealed.ciphertext),
                    credentials::nonce.eq(&sealed.nonce),
                    credentials::key_version.eq(key_version),
                    credentials::expires_at.eq(new.expires_at),
                    credentials::status.eq("active"),
                    credentials::scopes.eq(&new.scopes),
                    credentials::updated_at.eq(now),
                ))
                .returning(CredentialMeta::as_returning()),
        )
        .await?;
    stored.into_iter().next().ok_or(CredentialError::NotFound)
}

/// One credential's metadata; another tenant's id is `NotFound`.
pub async fn get_credential(
    db: &Database,
    ctx: &TenantContext,
    id: Uuid,
) -> Result<CredentialMeta, CredentialError> {
    let found: Vec<CredentialMeta> = db
        .scoped_load(
            ctx,
            credentials::table
                .filter(credentials::id.eq(id))
                .select(CredentialMeta::as_select())
                .limit(1),
        )
        .await?;
    found.into_iter().next().ok_or(CredentialError::NotFound)
}

/// A page of credential metadata in id order, after `after`.
pub async fn list_credentials(
    db: &Database,
    ctx: &TenantContext,
    provider: Option<&'static str>,
    status: pb::CredentialStatus,
    after: Option<Uuid>,
    limit: i64,
) -> Result<Vec<CredentialMeta>, CredentialError> {
    let now = Utc::now();
    let mut query = credentials::table
        .select(CredentialMeta::as_select())
        .order(credentials::id.asc())
        .limit(limit)
        .into_boxed();
    if let Some(provider) = provider {
        query = query.filter(credentials::provider.eq(provider));
    }
    if let Some(after) = after {
        query = query.filter(credentials::id.gt(after));
    }
    let not_expired = credentials::expires_at
        .is_null()
        .or(credentials::expires_at.gt(now).assume_not_null());
    query = match status {
        pb::CredentialStatus::Unspecified => query,
        pb::CredentialStatus::Active => query
            .filter(credentials::status.eq("active"))
            .filter(not_expired),
        pb::CredentialStatus::Expired => query.filter(
            credentials::status.eq("expired").or(credentials::status
                .eq("active")
                .and(credentials::expires_at.le(now).assume_not_null())),
        ),
        pb::CredentialStatus::Revoked => query.filter(credentials::status.eq("revoked")),
    };
    Ok(db.scoped_load(ctx, query).await?)
}

/// Deletes a credential and its sealed tokens.
pub async fn delete_credential(
    db: &Database,
    ctx: &TenantContext,
    id: Uuid,
) -> Result<(), CredentialError> {
    let deleted = db
        .scoped_execute(
            ctx,
            diesel::delete(credentials::table.filter(credentials::id.eq(id))),
        )
        .await?;
    if deleted == 0 {
        return Err(CredentialError::NotFound);
    }
    Ok(())
}

/// Opens a credential for use (by sync code calling the platform). The
/// tokens never leave this process through any RPC.
pub async fn reveal_for_use(
    db: &Database,
    kms: &dyn Kms,
    ctx: &TenantContext,
    id: Uuid,
) -> Result<RevealedCredential, CredentialError> {
    let found: Vec<(CredentialMeta, SealedRow, KeyRow)> = db
        .scoped_load(
            ctx,
            credentials::table
                .inner_join(
                    data_keys::table.on(data_keys::tenant_id
                        .eq(credentials::tenant_id)
                        .and(data_keys::version.eq(credentials::key_version))),
                )
                .filter(credentials::id.eq(id))
                .select((
                    CredentialMeta::as_select(),
                    SealedRow::as_select(),
                    KeyRow::as_select(),
                ))
                .limit(1),
        )
        .await?;
    let (meta, sealed, key_row) = found.into_iter().next().ok_or(CredentialError::NotFound)?;
    let key = unwrap_key(kms, ctx, &key_row).await?;
    let secrets = open_row(ctx, &key, &sealed)?;
    Ok(RevealedCredential {
        meta,
        access_token: secrets.access_token,
        refresh_token: secrets.refresh_token,
    })
}

fn open_row(
    ctx: &TenantContext,
    key: &DataKey,
    row: &SealedRow,
) -> Result<Secrets, CredentialError> {
    let binding = Binding {
        tenant: ctx.tenant_id(),
        provider: &row.provider,
        account_id: &row.account_id,
        key_version: row.key_version,
    };
    seal::open(key, &binding, &row.ciphertext, &row.nonce).ok_or(CredentialError::Corrupt {
        id: row.id,
        key_version: row.key_version,
    })
}

/// Makes a new data key for the tenant and re-encrypts every credential
/// under it, in one transaction: if any credential fails to open, nothing
/// changes (no new key, every credential as it was).
pub async fn rotate_tenant_key(
    db: &Database,
    kms: &dyn Kms,
    ctx: &TenantContext,
) -> Result<RotationReport, CredentialError> {
    // The KMS is called before the transaction: every existing key is
    // unwrapped and the new one wrapped up front.
    let rows: Vec<KeyRow> = db
        .scoped_load(ctx, data_keys::table.select(KeyRow::as_select()))
        .await?;
    let mut keys = HashMap::with_capacity(rows.len());
    for row in &rows {
        keys.insert(row.version, unwrap_key(kms, ctx, row).await?);
    }
    let seen_active = rows
        .iter()
        .find(|row| row.status == "active")
        .map(|row| row.version);
    let new_version = rows.iter().map(|row| row.version).max().unwrap_or(0) + 1;
    let new_key = DataKey::generate();
    let wrapped = kms
        .wrap(ctx.tenant_id(), &new_key)
        .await
        .map_err(|source| CredentialError::DataKey {
            key_version: new_version,
            source,
        })?;

    let tenant = ctx.tenant_id();
    db.scoped(ctx, move |conn| {
        async move {
            let mut c = conn;
            // Locks the active key: concurrent rotations and first writes
            // queue here, and one that changed the keys meanwhile is seen.
            let active: Vec<i32> = data_keys::table
                .filter(data_keys::status.eq("active"))
                .select(data_keys::version)
                .for_update()
                .load(&mut c)
                .await?;
            let active = active.into_iter().next();
            if active != seen_active {
                return Err(CredentialError::Conflict);
            }
            let sealed: Vec<SealedRow> = credentials::table
                .select(SealedRow::as_select())
                .order(credentials::id.asc())
                .for_update()
                .load(&mut c)
                .await?;
            let mut resealed = Vec::with_capacity(sealed.len());
            for row in &sealed {
                let old = keys
                    .get(&row.key_version)
                    .ok_or(CredentialError::MissingDataKey(row.key_version))?;
                let binding = Binding {
                    tenant,
                    provider: &row.provider,
                    account_id: &row.account_id,
                    key_version: row.key_version,
                };
                let secrets = seal::open(old, &binding, &row.ciphertext, &row.nonce).ok_or(
                    CredentialError::Corrupt {
                        id: row.id,
                        key_version: row.key_version,
                    },
                )?;
                let binding = Binding {
                    key_version: new_version,
                    ..binding
                };
                let again =
                    seal::seal(&new_key, &binding, &secrets).ok_or(CredentialError::Seal)?;
                resealed.push((row.id, again));
            }
            // Retire first: the partial unique index admits one active key.
            if let Some(old) = active {
                diesel::update(data_keys::table.filter(data_keys::version.eq(old)))
                    .set((
                        data_keys::status.eq("retired"),
                        data_keys::retired_at.eq(diesel::dsl::now),
                    ))
                    .execute(&mut c)
                    .await?;
            }
            diesel::insert_into(data_keys::table)
                .values((
                    data_keys::tenant_id.eq(*tenant.as_uuid()),
                    data_keys::version.eq(new_version),
                    data_keys::wrapped_key.eq(wrapped.bytes),
                    data_keys::kek_id.eq(wrapped.kek_id),
                    data_keys::status.eq("active"),
                ))
                .execute(&mut c)
                .await?;
            for (id, again) in &resealed {
                diesel::update(credentials::table.filter(credentials::id.eq(id)))
                    .set((
                        credentials::ciphertext.eq(&again.ciphertext),
                        credentials::nonce.eq(&again.nonce),
                        credentials::key_version.eq(new_version),
                    ))
                    .execute(&mut c)
                    .await?;
            }
            Ok(RotationReport {
                key_version: new_version,
                retired_version: active,
                credentials_reencrypted: resealed.len(),
            })
        }
        .boxed()
    })
    .await
}

/// Active credentials of the tenant whose access token expires within
/// `within` from now (or already has), soonest first.
pub async fn expiring_credentials(
    db: &Database,
    ctx: &TenantContext,
    within: Duration,
) -> Result<Vec<ExpiringCredential>, CredentialError> {
    let horizon = chrono::Duration::from_std(within)
        .ok()
        .and_then(|within| Utc::now().checked_add_signed(within))
        .unwrap_or(DateTime::<Utc>::MAX_UTC);
    let rows: Vec<(Uuid, String, String, Option<DateTime<Utc>>)> = db
        .scoped_load(
            ctx,
            credentials::table
                .filter(credentials::status.eq("active"))
                .filter(credentials::expires_at.le(horizon))
                .order((credentials::expires_at.asc(), credentials::id.asc()))
                .select((
                    credentials::id,
                    credentials::provider,
                    credentials::account_id,
                    credentials::expires_at,
                )),
        )
        .await?;
    Ok(rows
        .into_iter()
        .filter_map(|(id, provider, account_id, expires_at)| {
            Some(ExpiringCredential {
                id,
                provider: provider_of(&provider),
                account_id,
                expires_at: expires_at?,
            })
        })
        .collect())
}

//! Token issuance: the operator CLI's development tokens, tests, and the
//! one-tenant tokens a service presents when it calls another on a tenant's
//! behalf.

use std::fmt;
use std::time::Duration;

use chrono::{DateTime, Utc};
use jsonwebtoken::{Algorithm, EncodingKey, Header};

use crate::claims::{Audience, Claims};
use crate::verify::KeyError;
use crate::{Role, TenantId};

/// What a minted token grants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenSpec {
    /// The `sub` claim.
    pub subject: String,
    /// The tenants the holder may act for.
    pub tenants: Vec<TenantId>,
    /// The holder's roles.
    pub roles: Vec<Role>,
    /// Scopes such as [`crate::FLEET_READ`].
    pub scopes: Vec<String>,
    /// How long the token is valid from now (or from `not_before`).
    pub ttl: Duration,
    /// When the token starts to be valid; now when absent.
    pub not_before: Option<DateTime<Utc>>,
}

/// A token could not be minted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MintError {
    /// The validity period does not fit a JWT timestamp.
    #[error("token lifetime is out of range")]
    TimeOutOfRange,
    /// The signing library refused the claims.
    #[error("token could not be signed")]
    Signing,
}

/// Signs tokens: HS256 with a shared secret, or RS256 / EdDSA with a
/// private key whose public half the verifiers trust.
pub struct Minter {
    algorithm: Algorithm,
    key: EncodingKey,
    issuer: String,
    audience: String,
}

impl fmt::Debug for Minter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Minter")
            .field("algorithm", &self.algorithm)
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .finish_non_exhaustive()
    }
}

impl Minter {
    /// A minter for the issuer and audience a [`crate::Verifier`] expects.
    pub fn hs256(
        secret: &[u8],
        issuer: impl Into<String>,
        audience: impl Into<String>,
    ) -> Result<Self, KeyError> {
        Ok(Self {
            algorithm: Algorithm::HS256,
            key: EncodingKey::from_secret(secret).map_err(|_| KeyError::EmptySecret)?,
            issuer: issuer.into(),
            audience: audience.into(),
        })
    }

    /// A minter signing with a PEM private key: Ed25519 signs EdDSA, RSA
    /// signs RS256, so that a [`crate::Verifier`] holding only the public
    /// key accepts its tokens.
    pub fn from_private_key_pem(
        pem: &[u8],
        issuer: impl Into<String>,
        audience: impl Into<String>,
    ) -> Result<Self, KeyError> {
        // The key parsers also take public keys (which cannot sign), so the
        // PEM label must say private.
        let text = std::str::from_utf8(pem).map_err(|_| KeyError::UnsupportedPrivateKey)?;
        let private = text
            .lines()
            .filter_map(|line| line.trim().strip_prefix("-----BEGIN "))
            .all(|label| label.ends_with("PRIVATE KEY-----"));
        if !private || !text.contains("-----BEGIN ") {
            return Err(KeyError::UnsupportedPrivateKey);
        }
        let (algorithm, key) = if let Ok(key) = EncodingKey::from_ed_pem(pem) {
            (Algorithm::EdDSA, key)
        } else if let Ok(key) = EncodingKey::from_rsa_pem(pem) {
            (Algorithm::RS256, key)
        } else {
            return Err(KeyError::UnsupportedPrivateKey);
        };
        Ok(Self {
            algorithm,
            key,
            issuer: issuer.into(),
            audience: audience.into(),
        })
    }

    /// The JWT `alg` this minter signs with: `HS256`, `RS256` or `EdDSA`.
    pub fn algorithm(&self) -> &'static str {
        match self.algorithm {
            Algorithm::RS256 => "RS256",
            Algorithm::EdDSA => "EdDSA",
            _ => "HS256",
        }
    }

    /// Mints a token valid for `spec.ttl` from `spec.not_before` (or now).
    pub fn mint(&self, spec: &TokenSpec) -> Result<String, MintError> {
        let now = Utc::now();
        let start = spec.not_before.unwrap_or(now);
        let ttl = chrono::Duration::from_std(spec.ttl).map_err(|_| MintError::TimeOutOfRange)?;
        let expiry = start
            .checked_add_signed(ttl)
            .ok_or(MintError::TimeOutOfRange)?;

        let claims = Claims {
            iss: self.issuer.clone(),
            aud: Audience::One(self.audience.clone()),
            sub: spec.subject.clone(),
            exp: timestamp(expiry)?,
            nbf: spec.not_before.map(timestamp).transpose()?,
            iat: Some(timestamp(now)?),
            tenants: spec.tenants.clone(),
            roles: spec.roles.clone(),
            scope: spec.scopes.join(" "),
        };
        self.sign(&claims)
    }

    /// Signs claims exactly as given, for tests that need unusual tokens
    /// (expired, for another audience, ...).
    pub fn sign(&self, claims: &Claims) -> Result<String, MintError> {
        jsonwebtoken::encode(&Header::new(self.algorithm), claims, &self.key)
            .map_err(|_| MintError::Signing)
    }
}

fn timestamp(at: DateTime<Utc>) -> Result<u64, MintError> {
    u64::try_from(at.timestamp()).map_err(|_| MintError::TimeOutOfRange)
}

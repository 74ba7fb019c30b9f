//! Token verification: signature, algorithm, time window, issuer and audience.

use std::fmt;
use std::time::Duration;

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::{Jwk, ThumbprintHash};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};

use crate::Principal;
use crate::claims::Claims;

/// Clock skew tolerated on `exp` and `nbf` unless configured otherwise.
pub const DEFAULT_LEEWAY: Duration = Duration::from_secs(30);

/// The most clock skew a verifier can be configured to tolerate.
pub const MAX_LEEWAY: Duration = Duration::from_secs(300);

/// Why a token was refused. Messages name the problem, never the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// Not three base64url segments with a JSON header, or an algorithm
    /// (such as `none`) that is never accepted.
    #[error("bearer token is malformed or uses an unsupported algorithm")]
    Malformed,
    /// A valid algorithm, but not one of the configured keys' algorithms.
    #[error("bearer token algorithm {0} is not accepted by this service")]
    AlgorithmNotAllowed(String),
    /// No configured key verifies the signature.
    #[error("bearer token signature is invalid")]
    BadSignature,
    /// `exp` is in the past (beyond the allowed clock skew).
    #[error("bearer token has expired")]
    Expired,
    /// `nbf` is in the future (beyond the allowed clock skew).
    #[error("bearer token is not valid yet")]
    NotYetValid,
    /// `iss` is not the configured issuer.
    #[error("bearer token issuer is not accepted by this service")]
    WrongIssuer,
    /// `aud` does not name the configured audience.
    #[error("bearer token audience does not include this service")]
    WrongAudience,
    /// A claim this service requires is absent.
    #[error("bearer token lacks the `{0}` claim")]
    MissingClaim(String),
    /// A claim is present but of the wrong shape.
    #[error("bearer token claims are malformed")]
    BadClaims,
}

impl From<jsonwebtoken::errors::Error> for AuthError {
    fn from(error: jsonwebtoken::errors::Error) -> Self {
        match error.into_kind() {
            ErrorKind::InvalidSignature => Self::BadSignature,
            ErrorKind::ExpiredSignature => Self::Expired,
            ErrorKind::ImmatureSignature => Self::NotYetValid,
            ErrorKind::InvalidIssuer => Self::WrongIssuer,
            ErrorKind::InvalidAudience => Self::WrongAudience,
            ErrorKind::MissingRequiredClaim(claim) => Self::MissingClaim(claim),
            ErrorKind::InvalidClaimFormat(_) | ErrorKind::Json(_) | ErrorKind::Utf8(_) => {
                Self::BadClaims
            }
            _ => Self::Malformed,
        }
    }
}

/// Why a verifier could not be built from its configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// An empty HS256 secret.
    #[error("the HS256 secret is empty")]
    EmptySecret,
    /// The public key file holds no PEM block.
    #[error("the public key file holds no PEM public key")]
    NoKeys,
    /// A PEM block that is not an RSA or Ed25519 public key.
    #[error("PEM block {index} is not an RSA or Ed25519 public key")]
    UnsupportedKey {
        /// Position of the block in the file, from 1.
        index: usize,
    },
    /// A signing key file that is not one PEM RSA or Ed25519 private key.
    #[error("the signing key is not a PEM RSA or Ed25519 private key")]
    UnsupportedPrivateKey,
}

/// One trusted key and the single algorithm it is used with.
struct TrustedKey {
    algorithm: Algorithm,
    // RFC 7638 thumbprint, matched against the header `kid` when one is sent.
    kid: Option<String>,
    key: DecodingKey,
}

/// Verifies adscope access tokens against configured keys.
pub struct Verifier {
    // Each key with the validation for its algorithm, built with the
    // verifier (and again when the leeway changes) rather than per token.
    keys: Vec<(TrustedKey, Validation)>,
    issuer: String,
    audience: String,
    leeway: Duration,
}

impl fmt::Debug for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let algorithms: Vec<_> = self.keys.iter().map(|(k, _)| k.algorithm).collect();
        f.debug_struct("Verifier")
            .field("algorithms", &algorithms)
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("leeway", &self.leeway)
            .finish_non_exhaustive()
    }
}

impl Verifier {
    /// A verifier for HS256 tokens signed with a shared secret.
    pub fn hs256(
        secret: &[u8],
        issuer: impl Into<String>,
        audience: impl Into<String>,
    ) -> Result<Self, KeyError> {
        let key = DecodingKey::from_secret(secret).map_err(|_| KeyError::EmptySecret)?;
        let keys = vec![TrustedKey {
            algorithm: Algorithm::HS256,
            kid: None,
            key,
        }];
        Ok(Self::with_keys(keys, issuer.into(), audience.into()))
    }

    /// A verifier for tokens signed by any of the public keys in a PEM file:
    /// RSA keys verify RS256, Ed25519 keys verify EdDSA.
    pub fn from_public_keys_pem(
        pem: &str,
        issuer: impl Into<String>,
        audience: impl Into<String>,
    ) -> Result<Self, KeyError> {
        let mut keys = Vec::new();
        for (position, block) in pem_blocks(pem).enumerate() {
            keys.push(trusted_public_key(block).ok_or(KeyError::UnsupportedKey {
                index: position + 1,
            })?);
        }
        if keys.is_empty() {
            return Err(KeyError::NoKeys);
        }
        Ok(Self::with_keys(keys, issuer.into(), audience.into()))
    }

    fn with_keys(keys: Vec<TrustedKey>, issuer: String, audience: String) -> Self {
        let mut verifier = Self {
            keys: Vec::new(),
            issuer,
            audience,
            leeway: DEFAULT_LEEWAY,
        };
        verifier.keys = keys
            .into_iter()
            .map(|key| {
                let validation = verifier.validation(key.algorithm);
                (key, validation)
            })
            .collect();
        verifier
    }

    /// Sets the tolerated clock skew, capped at [`MAX_LEEWAY`].
    pub fn with_leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway.min(MAX_LEEWAY);
        let keys = std::mem::take(&mut self.keys);
        self.keys = keys
            .into_iter()
            .map(|(key, _)| {
                let validation = self.validation(key.algorithm);
                (key, validation)
            })
            .collect();
        self
    }

    /// The tolerated clock skew.
    pub fn leeway(&self) -> Duration {
        self.leeway
    }

    /// The RFC 7638 SHA-256 thumbprint of each configured public key, in file
    /// order: the `kid` values an issuer can send to select a key directly.
    pub fn key_ids(&self) -> Vec<&str> {
        self.keys
            .iter()
            .filter_map(|(k, _)| k.kid.as_deref())
            .collect()
    }

    /// Checks a raw token (without `Bearer `) and returns who it speaks for.
    pub fn verify(&self, token: &str) -> Result<Principal, AuthError> {
        // The header is read unverified only to choose a key; the algorithm it
        // names must be one the configured keys are for, which rules out
        // `none` and HMAC-with-a-public-key confusion.
        let header = jsonwebtoken::decode_header(token).map_err(|_| AuthError::Malformed)?;
        let candidates: Vec<&(TrustedKey, Validation)> = self
            .keys
            .iter()
            .filter(|(k, _)| k.algorithm == header.alg)
            .collect();
        if candidates.is_empty() {
            return Err(AuthError::AlgorithmNotAllowed(format!("{:?}", header.alg)));
        }

        // A `kid` that names a configured key narrows the search to it; an
        // unknown `kid` (an issuer's own label) falls back to every key of
        // the algorithm, all of which are trusted.
        let by_kid: Vec<&(TrustedKey, Validation)> = match header.kid.as_deref() {
            Some(kid) => candidates
                .iter()
                .copied()
                .filter(|(k, _)| k.kid.as_deref() == Some(kid))
                .collect(),
            None => Vec::new(),
        };
        let candidates = if by_kid.is_empty() {
            candidates
        } else {
            by_kid
        };

        for (trusted, validation) in candidates {
            match jsonwebtoken::decode::<Claims>(token, &trusted.key, validation) {
                Ok(data) => return Ok(principal(data.claims)),
                // Another key may still match.
                Err(e) if matches!(e.kind(), ErrorKind::InvalidSignature) => continue,
                // The signature checked out; the claims are what is wrong.
                Err(e) => return Err(e.into()),
            }
        }
        Err(AuthError::BadSignature)
    }

    fn validation(&self, algorithm: Algorithm) -> Validation {
        let mut validation = Validation::new(algorithm);
        validation.leeway = self.leeway.as_secs();
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.validate_aud = true;
        validation.set_issuer(&[&self.issuer]);
        validation.set_audience(&[&self.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation
    }
}

fn principal(claims: Claims) -> Principal {
    let scopes = claims.scopes().map(str::to_owned).collect();
    Principal {
        subject: claims.sub,
        tenants: claims.tenants,
        roles: claims.roles,
        scopes,
    }
}

/// Each `-----BEGIN ...-----` to `-----END ...-----` block of a PEM file.
fn pem_blocks(pem: &str) -> impl Iterator<Item = &str> {
    let mut rest = pem;
    std::iter::from_fn(move || {
        let start = rest.find("-----BEGIN ")?;
        let after_start = &rest[start..];
        let end_marker = after_start.find("-----END ")?;
        let end_line = after_start[end_marker..]
            .find('\n')
            .map_or(after_start.len(), |n| end_marker + n + 1);
        let block = &after_start[..end_line];
        rest = &after_start[end_line..];
        Some(block)
    })
}

fn trusted_public_key(block: &str) -> Option<TrustedKey> {
    // Only public keys belong in the verifier's file; a private key there is
    // a deployment mistake worth stopping on.
    let tag = block.lines().next()?.trim();
    if tag != "-----BEGIN PUBLIC KEY-----" && tag != "-----BEGIN RSA PUBLIC KEY-----" {
        return None;
    }

    let (algorithm, key) = if let Ok(key) = DecodingKey::from_rsa_pem(block.as_bytes()) {
        (Algorithm::RS256, key)
    } else if let Ok(key) = DecodingKey::from_ed_pem(block.as_bytes()) {
        (Algorithm::EdDSA, key)
    } else {
        return None;
    };

    let kid = Jwk::from_decoding_key(&key, Some(algorithm))
        .and_then(|jwk| jwk.thumbprint(ThumbprintHash::SHA256))
        .ok();
    Some(TrustedKey {
        algorithm,
        kid,
        key,
    })
}

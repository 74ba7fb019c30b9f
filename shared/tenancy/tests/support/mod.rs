//! Keys, tokens and clocks shared by the integration tests.

// Each test binary uses a different subset of these helpers.
#![allow(dead_code)]

use std::time::Duration;

use adscope_tenancy::{Audience, Claims, Minter, Role, TenantId, TokenSpec, Verifier};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use uuid::Uuid;

pub(crate) const SECRET: &[u8] = b"integration-test-secret-0123456789abcdef";
pub(crate) const OTHER_SECRET: &[u8] = b"a-different-secret-nobody-configured-000";
pub(crate) const ISSUER: &str = "adscope-test";
pub(crate) const AUDIENCE: &str = "adscope";

pub(crate) const RSA_PRIVATE: &str = include_str!("../fixtures/rsa_private.pem");
pub(crate) const RSA_PUBLIC: &str = include_str!("../fixtures/rsa_public.pem");
pub(crate) const ED_PRIVATE: &str = include_str!("../fixtures/ed25519_private.pem");
pub(crate) const ED_PUBLIC: &str = include_str!("../fixtures/ed25519_public.pem");
pub(crate) const ED_B_PRIVATE: &str = include_str!("../fixtures/ed25519_b_private.pem");
pub(crate) const ED_B_PUBLIC: &str = include_str!("../fixtures/ed25519_b_public.pem");

pub(crate) fn tenant() -> TenantId {
    TenantId::new(Uuid::new_v4())
}

pub(crate) fn now() -> u64 {
    u64::try_from(chrono::Utc::now().timestamp()).expect("clock after 1970")
}

pub(crate) fn minter() -> Minter {
    Minter::hs256(SECRET, ISSUER, AUDIENCE).expect("minter")
}

pub(crate) fn verifier() -> Verifier {
    Verifier::hs256(SECRET, ISSUER, AUDIENCE).expect("verifier")
}

/// Claims valid for an hour, for the given tenants and roles.
pub(crate) fn claims(tenants: &[TenantId], roles: &[Role], scope: &str) -> Claims {
    Claims {
        iss: ISSUER.into(),
        aud: Audience::One(AUDIENCE.into()),
        sub: "user-1".into(),
        exp: now() + 3600,
        nbf: None,
        iat: Some(now()),
        tenants: tenants.to_vec(),
        roles: roles.to_vec(),
        scope: scope.into(),
    }
}

/// An HS256 token from the configured secret.
pub(crate) fn token(tenants: &[TenantId], roles: &[Role]) -> String {
    minter()
        .mint(&TokenSpec {
            subject: "user-1".into(),
            tenants: tenants.to_vec(),
            roles: roles.to_vec(),
            scopes: vec![],
            ttl: Duration::from_secs(3600),
            not_before: None,
        })
        .expect("mint")
}

pub(crate) fn sign_hs256(claims: &Claims, secret: &[u8]) -> String {
    let key = EncodingKey::from_secret(secret).expect("secret");
    jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &key).expect("sign")
}

pub(crate) fn sign_pem(
    claims: &Claims,
    algorithm: Algorithm,
    pem: &str,
    kid: Option<&str>,
) -> String {
    let key = match algorithm {
        Algorithm::RS256 => EncodingKey::from_rsa_pem(pem.as_bytes()),
        Algorithm::EdDSA => EncodingKey::from_ed_pem(pem.as_bytes()),
        other => panic!("no PEM signer for {other:?}"),
    }
    .expect("private key");
    let mut header = Header::new(algorithm);
    header.kid = kid.map(str::to_owned);
    jsonwebtoken::encode(&header, claims, &key).expect("sign")
}

/// A token with `alg: none` and no signature, built by hand since no
/// library will produce one.
pub(crate) fn unsigned_token(claims: &Claims) -> String {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let header = b64.encode(br#"{"alg":"none","typ":"JWT"}"#);
    let payload = b64.encode(serde_json::to_vec(claims).expect("claims json"));
    format!("{header}.{payload}.")
}

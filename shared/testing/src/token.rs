//! HS256 tokens for tests, and the verifier that accepts them.

use std::time::Duration;

use adscope_tenancy::{FLEET_READ, Minter, Role, TenantId, TokenSpec, Verifier};

/// The shared secret every test token is signed with; services under test are
/// configured with it.
pub const TEST_JWT_SECRET: &str = "adscope-test-secret-not-for-production";

/// The `iss` of test tokens (the services' default).
pub const TEST_ISSUER: &str = "adscope";

/// The `aud` of test tokens (the services' default).
pub const TEST_AUDIENCE: &str = "adscope";

/// How long a test token stays valid: longer than any test runs.
const TEST_TOKEN_TTL: Duration = Duration::from_secs(3600);

/// A minter for test tokens.
pub fn minter() -> Minter {
    Minter::hs256(TEST_JWT_SECRET.as_bytes(), TEST_ISSUER, TEST_AUDIENCE)
        .unwrap_or_else(|e| panic!("test minter: {e}"))
}

/// The verifier a service under test uses to accept test tokens.
pub fn verifier() -> Verifier {
    Verifier::hs256(TEST_JWT_SECRET.as_bytes(), TEST_ISSUER, TEST_AUDIENCE)
        .unwrap_or_else(|e| panic!("test verifier: {e}"))
}

/// An Ed25519 private key, as a production deployment gives a service that
/// signs its own calls (`ADSCOPE_SERVICE_SIGNING_KEY`).
pub const TEST_SIGNING_KEY_PEM: &str =
    include_str!("../../tenancy/tests/fixtures/ed25519_private.pem");

/// The public half of [`TEST_SIGNING_KEY_PEM`], as in a public key file
/// (`ADSCOPE_JWT_PUBLIC_KEYS`).
pub const TEST_PUBLIC_KEYS_PEM: &str =
    include_str!("../../tenancy/tests/fixtures/ed25519_public.pem");

/// A minter signing EdDSA with [`TEST_SIGNING_KEY_PEM`].
pub fn key_pair_minter() -> Minter {
    Minter::from_private_key_pem(TEST_SIGNING_KEY_PEM.as_bytes(), TEST_ISSUER, TEST_AUDIENCE)
        .unwrap_or_else(|e| panic!("test key-pair minter: {e}"))
}

/// A verifier trusting only [`TEST_PUBLIC_KEYS_PEM`]: no shared secret.
pub fn key_pair_verifier() -> Verifier {
    Verifier::from_public_keys_pem(TEST_PUBLIC_KEYS_PEM, TEST_ISSUER, TEST_AUDIENCE)
        .unwrap_or_else(|e| panic!("test key-pair verifier: {e}"))
}

/// A token for `tenants` with `role`, valid for an hour.
pub fn token(tenants: &[TenantId], role: Role) -> String {
    token_for(&TokenSpec {
        subject: "test-user".to_owned(),
        tenants: tenants.to_vec(),
        roles: vec![role],
        scopes: Vec::new(),
        ttl: TEST_TOKEN_TTL,
        not_before: None,
    })
}

/// A `fleet:read` token for the health service's fleet view; it lists no tenant.
pub fn fleet_token() -> String {
    token_for(&TokenSpec {
        subject: "test-fleet-operator".to_owned(),
        tenants: Vec::new(),
        roles: vec![Role::Viewer],
        scopes: vec![FLEET_READ.to_owned()],
        ttl: TEST_TOKEN_TTL,
        not_before: None,
    })
}

/// A token with exactly the claims in `spec` (expired or not-yet-valid ones too).
pub fn token_for(spec: &TokenSpec) -> String {
    minter()
        .mint(spec)
        .unwrap_or_else(|e| panic!("test token: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verifier_accepts_a_test_token_with_its_tenant_and_role() {
        let tenant = TenantId::new(uuid::Uuid::new_v4());
        let principal = verifier()
            .verify(&token(&[tenant], Role::Analyst))
            .expect("verifies");
        assert_eq!(principal.tenants, vec![tenant]);
        assert_eq!(principal.roles, vec![Role::Analyst]);
        assert!(!principal.has_scope(FLEET_READ));
    }

    #[test]
    fn fleet_token_carries_the_fleet_scope() {
        let principal = verifier().verify(&fleet_token()).expect("verifies");
        assert!(principal.has_scope(FLEET_READ));
        assert!(principal.tenants.is_empty());
    }
}

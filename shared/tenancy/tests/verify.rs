//! Token verification: keys, algorithms, time window, issuer and audience.

// Tests may unwrap: a panic is the failure report.
#![allow(clippy::unwrap_used)]

mod support;

use std::time::Duration;

use adscope_tenancy::verify::MAX_LEEWAY;
use adscope_tenancy::{AuthError, KeyError, Role, Verifier};
use jsonwebtoken::Algorithm;
use jsonwebtoken::jwk::{Jwk, ThumbprintHash};
use support::*;

fn pem_verifier(pem: &str) -> Verifier {
    Verifier::from_public_keys_pem(pem, ISSUER, AUDIENCE).unwrap()
}

#[test]
fn hs256_token_yields_its_principal() {
    let a = tenant();
    let principal = verifier().verify(&token(&[a], &[Role::Analyst])).unwrap();
    assert_eq!(principal.subject, "user-1");
    assert_eq!(principal.tenants, [a]);
    assert_eq!(principal.highest_role(), Some(Role::Analyst));
}

#[test]
fn forged_signature_is_rejected() {
    let forged = sign_hs256(&claims(&[tenant()], &[Role::Admin], ""), OTHER_SECRET);
    assert_eq!(verifier().verify(&forged), Err(AuthError::BadSignature));
}

#[test]
fn expired_beyond_leeway_is_rejected_and_within_leeway_accepted() {
    let mut old = claims(&[tenant()], &[], "");
    old.exp = now() - 31 - 5;
    assert_eq!(
        verifier().verify(&sign_hs256(&old, SECRET)),
        Err(AuthError::Expired)
    );

    old.exp = now() - 20;
    assert!(verifier().verify(&sign_hs256(&old, SECRET)).is_ok());
}

#[test]
fn leeway_is_configurable_and_capped() {
    let mut old = claims(&[tenant()], &[], "");
    old.exp = now() - 20;
    let strict = verifier().with_leeway(Duration::ZERO);
    assert_eq!(
        strict.verify(&sign_hs256(&old, SECRET)),
        Err(AuthError::Expired)
    );

    let lax = verifier().with_leeway(Duration::from_secs(3600));
    assert_eq!(lax.leeway(), MAX_LEEWAY);
}

#[test]
fn not_yet_valid_is_rejected() {
    let mut early = claims(&[tenant()], &[], "");
    early.nbf = Some(now() + 300);
    assert_eq!(
        verifier().verify(&sign_hs256(&early, SECRET)),
        Err(AuthError::NotYetValid)
    );
}

#[test]
fn other_audience_is_rejected_and_audience_array_accepted() {
    let mut other = claims(&[tenant()], &[], "");
    other.aud = adscope_tenancy::Audience::One("billing".into());
    assert_eq!(
        verifier().verify(&sign_hs256(&other, SECRET)),
        Err(AuthError::WrongAudience)
    );

    other.aud = adscope_tenancy::Audience::Many(vec!["billing".into(), AUDIENCE.into()]);
    assert!(verifier().verify(&sign_hs256(&other, SECRET)).is_ok());
}

#[test]
fn other_issuer_is_rejected() {
    let mut other = claims(&[tenant()], &[], "");
    other.iss = "https://evil.example".into();
    assert_eq!(
        verifier().verify(&sign_hs256(&other, SECRET)),
        Err(AuthError::WrongIssuer)
    );
}

#[test]
fn alg_none_is_rejected() {
    let token = unsigned_token(&claims(&[tenant()], &[Role::Admin], ""));
    assert!(verifier().verify(&token).is_err());
    assert!(pem_verifier(RSA_PUBLIC).verify(&token).is_err());
}

#[test]
fn garbage_is_malformed_and_error_does_not_echo_it() {
    let error = verifier().verify("not-a-jwt").unwrap_err();
    assert_eq!(error, AuthError::Malformed);
    assert!(!error.to_string().contains("not-a-jwt"));
}

#[test]
fn rs256_token_verifies_with_rsa_public_key() {
    let a = tenant();
    let token = sign_pem(
        &claims(&[a], &[Role::Viewer], ""),
        Algorithm::RS256,
        RSA_PRIVATE,
        None,
    );
    let principal = pem_verifier(RSA_PUBLIC).verify(&token).unwrap();
    assert_eq!(principal.tenants, [a]);
}

#[test]
fn eddsa_token_verifies_with_ed25519_public_key() {
    let a = tenant();
    let token = sign_pem(
        &claims(&[a], &[Role::Admin], ""),
        Algorithm::EdDSA,
        ED_PRIVATE,
        None,
    );
    let principal = pem_verifier(ED_PUBLIC).verify(&token).unwrap();
    assert_eq!(principal.highest_role(), Some(Role::Admin));
}

#[test]
fn mixed_key_file_verifies_both_algorithms_and_each_key() {
    let file = format!("{RSA_PUBLIC}\n{ED_PUBLIC}{ED_B_PUBLIC}");
    let verifier = pem_verifier(&file);
    let c = claims(&[tenant()], &[], "");
    for (algorithm, private) in [
        (Algorithm::RS256, RSA_PRIVATE),
        (Algorithm::EdDSA, ED_PRIVATE),
        (Algorithm::EdDSA, ED_B_PRIVATE),
    ] {
        assert!(
            verifier
                .verify(&sign_pem(&c, algorithm, private, None))
                .is_ok()
        );
    }
}

#[test]
fn kid_selects_the_key_it_names() {
    let verifier = pem_verifier(&format!("{ED_PUBLIC}{ED_B_PUBLIC}"));
    let key_b = jsonwebtoken::EncodingKey::from_ed_pem(ED_B_PRIVATE.as_bytes()).unwrap();
    let kid_b = Jwk::from_encoding_key(&key_b, Algorithm::EdDSA)
        .unwrap()
        .thumbprint(ThumbprintHash::SHA256)
        .unwrap();
    assert_eq!(verifier.key_ids().len(), 2);
    assert_eq!(verifier.key_ids()[1], kid_b);

    let c = claims(&[tenant()], &[], "");
    assert!(
        verifier
            .verify(&sign_pem(&c, Algorithm::EdDSA, ED_B_PRIVATE, Some(&kid_b)))
            .is_ok()
    );

    // A token claiming key B's id but signed by key A is not rescued by key A.
    let mislabelled = sign_pem(&c, Algorithm::EdDSA, ED_PRIVATE, Some(&kid_b));
    assert_eq!(verifier.verify(&mislabelled), Err(AuthError::BadSignature));
}

#[test]
fn token_from_untrusted_key_pair_is_rejected() {
    let c = claims(&[tenant()], &[], "");
    let token = sign_pem(&c, Algorithm::EdDSA, ED_B_PRIVATE, None);
    assert_eq!(
        pem_verifier(ED_PUBLIC).verify(&token),
        Err(AuthError::BadSignature)
    );
}

#[test]
fn hs256_token_is_rejected_by_public_key_verifier() {
    // The classic confusion: an HMAC over the token keyed with the public key.
    let c = claims(&[tenant()], &[Role::Admin], "");
    let token = sign_hs256(&c, RSA_PUBLIC.as_bytes());
    assert!(matches!(
        pem_verifier(RSA_PUBLIC).verify(&token),
        Err(AuthError::AlgorithmNotAllowed(_))
    ));
}

#[test]
fn public_key_tokens_are_rejected_by_hs256_verifier() {
    let c = claims(&[tenant()], &[], "");
    for (algorithm, private) in [
        (Algorithm::RS256, RSA_PRIVATE),
        (Algorithm::EdDSA, ED_PRIVATE),
    ] {
        let token = sign_pem(&c, algorithm, private, None);
        assert!(matches!(
            verifier().verify(&token),
            Err(AuthError::AlgorithmNotAllowed(_))
        ));
    }
}

#[test]
fn rsa_verifier_rejects_eddsa_token() {
    let token = sign_pem(
        &claims(&[tenant()], &[], ""),
        Algorithm::EdDSA,
        ED_PRIVATE,
        None,
    );
    assert!(matches!(
        pem_verifier(RSA_PUBLIC).verify(&token),
        Err(AuthError::AlgorithmNotAllowed(_))
    ));
}

#[test]
fn key_file_without_keys_is_rejected() {
    let error = Verifier::from_public_keys_pem("# nothing here\n", ISSUER, AUDIENCE).unwrap_err();
    assert_eq!(error, KeyError::NoKeys);
}

#[test]
fn private_key_in_key_file_is_rejected() {
    let file = format!("{ED_PUBLIC}{RSA_PRIVATE}");
    let error = Verifier::from_public_keys_pem(&file, ISSUER, AUDIENCE).unwrap_err();
    assert_eq!(error, KeyError::UnsupportedKey { index: 2 });
}

#[test]
fn empty_secret_is_rejected() {
    assert_eq!(
        Verifier::hs256(b"", ISSUER, AUDIENCE).unwrap_err(),
        KeyError::EmptySecret
    );
}

#[test]
fn minted_token_carries_spec_and_not_before_is_enforced() {
    let a = tenant();
    let spec = adscope_tenancy::TokenSpec {
        subject: "ops".into(),
        tenants: vec![a],
        roles: vec![Role::Admin],
        scopes: vec!["fleet:read".into(), "x".into()],
        ttl: Duration::from_secs(60),
        not_before: None,
    };
    let principal = verifier().verify(&minter().mint(&spec).unwrap()).unwrap();
    assert_eq!(principal.subject, "ops");
    assert_eq!(principal.tenants, [a]);
    assert_eq!(principal.scopes, ["fleet:read", "x"]);

    let later = adscope_tenancy::TokenSpec {
        not_before: Some(chrono::Utc::now() + chrono::Duration::minutes(10)),
        ..spec
    };
    let early = minter().mint(&later).unwrap();
    assert_eq!(verifier().verify(&early), Err(AuthError::NotYetValid));
}

fn one_tenant_spec(tenant: adscope_tenancy::TenantId) -> adscope_tenancy::TokenSpec {
    adscope_tenancy::TokenSpec {
        subject: "adscope-integrations".into(),
        tenants: vec![tenant],
        roles: vec![Role::Analyst],
        scopes: Vec::new(),
        ttl: Duration::from_secs(60),
        not_before: None,
    }
}

#[test]
fn private_key_minters_sign_what_public_key_verifiers_accept() {
    let a = tenant();
    for (private, public, algorithm, name) in [
        (ED_PRIVATE, ED_PUBLIC, Algorithm::EdDSA, "EdDSA"),
        (RSA_PRIVATE, RSA_PUBLIC, Algorithm::RS256, "RS256"),
    ] {
        let minter =
            adscope_tenancy::Minter::from_private_key_pem(private.as_bytes(), ISSUER, AUDIENCE)
                .unwrap();
        assert_eq!(minter.algorithm(), name);
        let token = minter.mint(&one_tenant_spec(a)).unwrap();
        let header = jsonwebtoken::decode_header(&token).unwrap();
        assert_eq!(header.alg, algorithm);
        let principal = pem_verifier(public).verify(&token).unwrap();
        assert_eq!(principal.tenants, [a]);
        assert_eq!(principal.subject, "adscope-integrations");
        // Neither a shared-secret verifier nor one trusting another key
        // accepts it.
        assert!(verifier().verify(&token).is_err());
        assert!(pem_verifier(ED_B_PUBLIC).verify(&token).is_err());
    }
}

#[test]
fn a_public_key_or_garbage_is_no_signing_key() {
    for pem in [ED_PUBLIC, RSA_PUBLIC, "not a key"] {
        assert_eq!(
            adscope_tenancy::Minter::from_private_key_pem(pem.as_bytes(), ISSUER, AUDIENCE)
                .unwrap_err(),
            KeyError::UnsupportedPrivateKey
        );
    }
}

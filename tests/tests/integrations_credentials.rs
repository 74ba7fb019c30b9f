//! Platform credentials over the wire: write-only tokens, envelope
//! encryption at rest, tenant isolation, key rotation that loses nothing,
//! and ciphertexts that open only where they were sealed.

// Tests unwrap freely: a panic is the failure report.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::sync::Arc;

use adscope_db::{Database, DbConfig, ServiceRole};
use adscope_e2e::{Running, admin, key_file, request, seed_tenants, start_integrations_with};
use adscope_integrations::credentials::{CredentialError, reveal_for_use};
use adscope_integrations::kms::LocalKeyFile;
use adscope_proto::integrations::v1 as pb;
use adscope_proto::integrations::v1::credential_service_client::CredentialServiceClient;
use adscope_tenancy::{Principal, Role, TenantContext, TenantId};
use adscope_testing::{TestDb, token};
use diesel_async::SimpleAsyncConnection;
use prost::Message;
use tonic::Code;
use tonic::transport::Channel;
use uuid::Uuid;

type Client = CredentialServiceClient<Channel>;

struct Setup {
    db: TestDb,
    tenants: Vec<TenantId>,
    server: Running,
    client: Client,
    key_file: PathBuf,
}

async fn setup() -> Setup {
    let db = TestDb::new().await;
    let tenants = seed_tenants(&db, 2).await;
    let key_file = key_file();
    let path = key_file.clone();
    let server = start_integrations_with(&db, |c| c.kms_key_file = Some(path)).await;
    let client = CredentialServiceClient::new(server.channel().await);
    Setup {
        db,
        tenants,
        server,
        client,
        key_file,
    }
}

fn put(
    provider: pb::Provider,
    account: &str,
    access: &str,
    refresh: &str,
) -> pb::PutCredentialRequest {
    pb::PutCredentialRequest {
        provider: provider.into(),
        account_id: account.into(),
        access_token: access.into(),
        refresh_token: refresh.into(),
        expire_time: Some(prost_types::Timestamp {
            seconds: 4_102_444_800,
            nanos: 0,
        }),
        scopes: vec!["ads_read".into()],
    }
}

async fn put_ok(
    client: &mut Client,
    tenant: TenantId,
    req: pb::PutCredentialRequest,
) -> pb::Credential {
    client
        .put_credential(request(req, &token(&[tenant], Role::Analyst), Some(tenant)))
        .await
        .unwrap()
        .into_inner()
        .credential
        .unwrap()
}

fn ctx(tenant: TenantId) -> TenantContext {
    TenantContext::new(
        tenant,
        Arc::new(Principal {
            subject: "sync-job".into(),
            tenants: vec![tenant],
            roles: vec![Role::Admin],
            scopes: Vec::new(),
        }),
        None,
    )
}

/// Opens a credential the way sync code does: the service's own role and
/// the same key file.
async fn reveal(
    s: &Setup,
    tenant: TenantId,
    id: &str,
) -> Result<(String, String), CredentialError> {
    let db = Database::connect(&DbConfig::new(
        s.db.url(ServiceRole::Integrations),
        ServiceRole::Integrations,
    ))
    .unwrap();
    let kms = LocalKeyFile::open(&s.key_file).unwrap();
    let revealed = reveal_for_use(&db, &kms, &ctx(tenant), Uuid::parse_str(id).unwrap()).await?;
    Ok((
        revealed.access_token.as_str().to_owned(),
        revealed.refresh_token.as_str().to_owned(),
    ))
}

/// Fails the test with `message` unless `condition` holds, evaluated by the
/// database as the superuser (row-level security does not apply).
async fn assert_sql(db: &TestDb, condition: &str, message: &str) {
    let mut conn = admin(db).await;
    conn.batch_execute(&format!(
        "DO $$ BEGIN IF NOT ({condition}) THEN RAISE EXCEPTION '{message}'; END IF; END $$"
    ))
    .await
    .unwrap_or_else(|error| panic!("{message}: {error}"));
}

fn assert_no_token(bytes: &[u8], tokens: &[&str]) {
    for token in tokens {
        assert!(
            !bytes.windows(token.len()).any(|w| w == token.as_bytes()),
            "a reply carried the token {token}"
        );
    }
}

#[tokio::test]
async fn put_get_list_delete_work_and_no_reply_carries_a_token() {
    let mut s = setup().await;
    let a = s.tenants[0];
    let analyst = token(&[a], Role::Analyst);
    let viewer = token(&[a], Role::Viewer);
    let tokens = ["EAAB-access-9f3c", "refresh-71be"];

    let put_reply = s
        .client
        .put_credential(request(
            put(pb::Provider::Meta, "act_1", tokens[0], tokens[1]),
            &analyst,
            Some(a),
        ))
        .await
        .unwrap()
        .into_inner();
    assert_no_token(&put_reply.encode_to_vec(), &tokens);
    let created = put_reply.credential.unwrap();
    assert_eq!(created.provider(), pb::Provider::Meta);
    assert_eq!(created.account_id, "act_1");
    assert_eq!(created.status(), pb::CredentialStatus::Active);
    assert_eq!(created.scopes, vec!["ads_read".to_string()]);
    assert_eq!(created.key_version, 1);
    assert_eq!(created.expire_time.unwrap().seconds, 4_102_444_800);

    let got = s
        .client
        .get_credential(request(
            pb::GetCredentialRequest {
                id: created.id.clone(),
            },
            &viewer,
            Some(a),
        ))
        .await
        .unwrap()
        .into_inner();
    assert_no_token(&got.encode_to_vec(), &tokens);
    assert_eq!(got.credential.unwrap().id, created.id);

    put_ok(
        &mut s.client,
        a,
        put(pb::Provider::Tiktok, "adv_2", "tt-access-x", ""),
    )
    .await;
    let listed = s
        .client
        .list_credentials(request(
            pb::ListCredentialsRequest::default(),
            &viewer,
            Some(a),
        ))
        .await
        .unwrap()
        .into_inner();
    assert_no_token(&listed.encode_to_vec(), &tokens);
    assert_eq!(listed.credentials.len(), 2);
    let only_meta = s
        .client
        .list_credentials(request(
            pb::ListCredentialsRequest {
                provider: pb::Provider::Meta.into(),
                page_size: 1,
                ..Default::default()
            },
            &viewer,
            Some(a),
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(only_meta.credentials.len(), 1);
    assert_eq!(only_meta.credentials[0].id, created.id);
    assert!(only_meta.next_page_token.is_empty());

    // Same provider and account: replaced in place, same id, new tokens.
    let replaced = put_ok(
        &mut s.client,
        a,
        put(
            pb::Provider::Meta,
            "act_1",
            "EAAB-access-new",
            "refresh-new",
        ),
    )
    .await;
    assert_eq!(replaced.id, created.id);
    assert_eq!(
        reveal(&s, a, &created.id).await.unwrap(),
        ("EAAB-access-new".to_string(), "refresh-new".to_string())
    );

    // Viewers read but do not write; bad input names the field.
    let denied = s
        .client
        .put_credential(request(
            put(pb::Provider::Meta, "act_9", "x", ""),
            &viewer,
            Some(a),
        ))
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);
    let invalid = s
        .client
        .put_credential(request(
            put(pb::Provider::Unspecified, "act_9", "x", ""),
            &analyst,
            Some(a),
        ))
        .await
        .unwrap_err();
    assert_eq!(invalid.code(), Code::InvalidArgument);
    assert!(
        invalid.message().contains("provider"),
        "{}",
        invalid.message()
    );

    s.client
        .delete_credential(request(
            pb::DeleteCredentialRequest {
                id: created.id.clone(),
            },
            &analyst,
            Some(a),
        ))
        .await
        .unwrap();
    let gone = s
        .client
        .get_credential(request(
            pb::GetCredentialRequest { id: created.id },
            &viewer,
            Some(a),
        ))
        .await
        .unwrap_err();
    assert_eq!(gone.code(), Code::NotFound);
    s.server.stop().await.unwrap();
}

#[tokio::test]
async fn stored_rows_hold_no_plaintext_token_or_data_key() {
    let mut s = setup().await;
    let a = s.tenants[0];
    put_ok(
        &mut s.client,
        a,
        put(
            pb::Provider::GoogleAds,
            "123-456",
            "ya29.plain-access",
            "1//plain-refresh",
        ),
    )
    .await;
    assert_sql(
        &s.db,
        "(SELECT count(*) FROM credentials) = 1",
        "one credential stored",
    )
    .await;
    for secret in [
        "ya29.plain-access",
        "1//plain-refresh",
        "plain-access",
        "plain-refresh",
    ] {
        assert_sql(
            &s.db,
            &format!(
                "NOT EXISTS (SELECT 1 FROM credentials \
                 WHERE position(convert_to('{secret}', 'UTF8') IN ciphertext) > 0 \
                    OR position(convert_to('{secret}', 'UTF8') IN nonce) > 0)"
            ),
            "a token is stored in the clear",
        )
        .await;
    }
    // The data key is stored only wrapped: nonce, 32 sealed bytes and a tag,
    // under a named key-encryption key.
    assert_sql(
        &s.db,
        "(SELECT count(*) FROM data_keys WHERE length(wrapped_key) = 12 + 32 + 16 \
           AND kek_id LIKE 'local:%' AND status = 'active') = 1",
        "the data key is not stored wrapped",
    )
    .await;
    s.server.stop().await.unwrap();
}

#[tokio::test]
async fn tenant_b_cannot_get_list_delete_or_rotate_tenant_a_credentials() {
    let mut s = setup().await;
    let (a, b) = (s.tenants[0], s.tenants[1]);
    let a_cred = put_ok(
        &mut s.client,
        a,
        put(pb::Provider::Meta, "act_a", "a-access", "a-refresh"),
    )
    .await;
    let b_cred = put_ok(
        &mut s.client,
        b,
        put(pb::Provider::Meta, "act_b", "b-access", ""),
    )
    .await;
    let b_admin = token(&[b], Role::Admin);

    let get = s
        .client
        .get_credential(request(
            pb::GetCredentialRequest {
                id: a_cred.id.clone(),
            },
            &b_admin,
            Some(b),
        ))
        .await
        .unwrap_err();
    assert_eq!(get.code(), Code::NotFound);

    let listed = s
        .client
        .list_credentials(request(
            pb::ListCredentialsRequest::default(),
            &b_admin,
            Some(b),
        ))
        .await
        .unwrap()
        .into_inner();
    let ids: Vec<_> = listed.credentials.iter().map(|c| c.id.clone()).collect();
    assert_eq!(ids, vec![b_cred.id.clone()]);

    let delete = s
        .client
        .delete_credential(request(
            pb::DeleteCredentialRequest {
                id: a_cred.id.clone(),
            },
            &b_admin,
            Some(b),
        ))
        .await
        .unwrap_err();
    assert_eq!(delete.code(), Code::NotFound);

    // B's rotation touches B's credential only.
    let rotated = s
        .client
        .rotate_data_key(request(pb::RotateDataKeyRequest {}, &b_admin, Some(b)))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (rotated.key_version, rotated.credentials_reencrypted),
        (2, 1)
    );

    // B's token cannot act for A at all.
    let cross = s
        .client
        .rotate_data_key(request(pb::RotateDataKeyRequest {}, &b_admin, Some(a)))
        .await
        .unwrap_err();
    assert_eq!(cross.code(), Code::PermissionDenied);

    // A's credential is still there, on its own key, and decrypts.
    let still = s
        .client
        .get_credential(request(
            pb::GetCredentialRequest {
                id: a_cred.id.clone(),
            },
            &token(&[a], Role::Viewer),
            Some(a),
        ))
        .await
        .unwrap()
        .into_inner()
        .credential
        .unwrap();
    assert_eq!(still.key_version, 1);
    assert_eq!(
        reveal(&s, a, &a_cred.id).await.unwrap(),
        ("a-access".to_string(), "a-refresh".to_string())
    );
    assert!(matches!(
        reveal(&s, b, &a_cred.id).await,
        Err(CredentialError::NotFound)
    ));
    s.server.stop().await.unwrap();
}

#[tokio::test]
async fn rotation_reencrypts_every_credential_and_loses_none() {
    let mut s = setup().await;
    let a = s.tenants[0];
    let admin_token = token(&[a], Role::Admin);
    let mut stored = Vec::new();
    for (i, provider) in [
        pb::Provider::Meta,
        pb::Provider::Ga4,
        pb::Provider::Linkedin,
    ]
    .into_iter()
    .enumerate()
    {
        let access = format!("access-{i}");
        let refresh = format!("refresh-{i}");
        let cred = put_ok(
            &mut s.client,
            a,
            put(provider, &format!("acct-{i}"), &access, &refresh),
        )
        .await;
        stored.push((cred.id, access, refresh));
    }

    let analyst = s
        .client
        .rotate_data_key(request(
            pb::RotateDataKeyRequest {},
            &token(&[a], Role::Analyst),
            Some(a),
        ))
        .await
        .unwrap_err();
    assert_eq!(analyst.code(), Code::PermissionDenied);

    for expected_version in [2, 3] {
        let rotated = s
            .client
            .rotate_data_key(request(pb::RotateDataKeyRequest {}, &admin_token, Some(a)))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(rotated.key_version, expected_version);
        assert_eq!(rotated.credentials_reencrypted, 3);
        for (id, access, refresh) in &stored {
            let meta = s
                .client
                .get_credential(request(
                    pb::GetCredentialRequest { id: id.clone() },
                    &admin_token,
                    Some(a),
                ))
                .await
                .unwrap()
                .into_inner()
                .credential
                .unwrap();
            assert_eq!(meta.key_version, expected_version);
            assert_eq!(
                reveal(&s, a, id).await.unwrap(),
                (access.clone(), refresh.clone())
            );
        }
    }
    assert_sql(
        &s.db,
        &format!(
            "(SELECT array_agg(version || ':' || status ORDER BY version) FROM data_keys \
              WHERE tenant_id = '{a}') = ARRAY['1:retired', '2:retired', '3:active']"
        ),
        "old keys retired, newest active",
    )
    .await;

    // New writes use the new key.
    let fresh = put_ok(
        &mut s.client,
        a,
        put(pb::Provider::Meta, "acct-new", "new-access", ""),
    )
    .await;
    assert_eq!(fresh.key_version, 3);
    assert_eq!(
        reveal(&s, a, &fresh.id).await.unwrap(),
        ("new-access".to_string(), String::new())
    );
    s.server.stop().await.unwrap();
}

#[tokio::test]
async fn a_credential_copied_to_another_tenant_fails_to_decrypt() {
    let mut s = setup().await;
    let (a, b) = (s.tenants[0], s.tenants[1]);
    put_ok(
        &mut s.client,
        a,
        put(pb::Provider::Meta, "act_a", "a-secret-access", ""),
    )
    .await;
    let b_own = put_ok(
        &mut s.client,
        b,
        put(pb::Provider::Tiktok, "adv_b", "b-access", ""),
    )
    .await;

    let copy = Uuid::new_v4();
    admin(&s.db)
        .await
        .batch_execute(&format!(
            "INSERT INTO credentials (tenant_id, id, provider, account_id, ciphertext, nonce, key_version) \
             SELECT '{b}', '{copy}', provider, account_id, ciphertext, nonce, \
                    (SELECT version FROM data_keys WHERE tenant_id = '{b}' AND status = 'active') \
             FROM credentials WHERE tenant_id = '{a}'"
        ))
        .await
        .unwrap();

    let error = reveal(&s, b, &copy.to_string()).await.unwrap_err();
    assert!(
        matches!(error, CredentialError::Corrupt { id, .. } if id == copy),
        "{error}"
    );
    assert_eq!(
        reveal(&s, b, &b_own.id).await.unwrap().0,
        "b-access".to_string()
    );
    s.server.stop().await.unwrap();
}

#[tokio::test]
async fn a_tampered_ciphertext_is_an_error_not_garbage() {
    let mut s = setup().await;
    let a = s.tenants[0];
    let cred = put_ok(
        &mut s.client,
        a,
        put(pb::Provider::Meta, "act_1", "access-t", "refresh-t"),
    )
    .await;
    admin(&s.db)
        .await
        .batch_execute(&format!(
            "UPDATE credentials SET ciphertext = set_byte(ciphertext, 3, get_byte(ciphertext, 3) # 1) \
             WHERE id = '{}'",
            cred.id
        ))
        .await
        .unwrap();
    let error = reveal(&s, a, &cred.id).await.unwrap_err();
    assert!(matches!(error, CredentialError::Corrupt { .. }), "{error}");
    s.server.stop().await.unwrap();
}

#[tokio::test]
async fn a_rotation_that_fails_midway_changes_nothing() {
    let mut s = setup().await;
    let a = s.tenants[0];
    let mut ids = Vec::new();
    for i in 0..3 {
        let cred = put_ok(
            &mut s.client,
            a,
            put(
                pb::Provider::Meta,
                &format!("act_{i}"),
                &format!("access-{i}"),
                "",
            ),
        )
        .await;
        ids.push(cred.id);
    }
    admin(&s.db)
        .await
        .batch_execute(&format!(
            "UPDATE credentials SET ciphertext = set_byte(ciphertext, 0, get_byte(ciphertext, 0) # 128) \
             WHERE id = '{}'",
            ids[1]
        ))
        .await
        .unwrap();

    let failed = s
        .client
        .rotate_data_key(request(
            pb::RotateDataKeyRequest {},
            &token(&[a], Role::Admin),
            Some(a),
        ))
        .await
        .unwrap_err();
    assert_eq!(failed.code(), Code::DataLoss);
    assert!(failed.message().contains(&ids[1]), "{}", failed.message());

    assert_sql(
        &s.db,
        &format!(
            "(SELECT array_agg(version || ':' || status) FROM data_keys WHERE tenant_id = '{a}') \
               = ARRAY['1:active'] \
             AND (SELECT bool_and(key_version = 1) AND count(*) = 3 FROM credentials \
                  WHERE tenant_id = '{a}')"
        ),
        "a failed rotation left a trace",
    )
    .await;
    for i in [0, 2] {
        assert_eq!(
            reveal(&s, a, &ids[i]).await.unwrap().0,
            format!("access-{i}")
        );
    }
    s.server.stop().await.unwrap();
}

#[tokio::test]
async fn without_a_usable_key_file_credential_calls_fail_with_failed_precondition() {
    let db = TestDb::new().await;
    let tenants = seed_tenants(&db, 1).await;
    let a = tenants[0];
    let admin_token = token(&[a], Role::Admin);

    let short = std::env::temp_dir().join(format!("adscope-kek-{}.hex", Uuid::new_v4()));
    std::fs::write(&short, "abcd").unwrap();
    for (key_file, says) in [
        (None, "set ADSCOPE_KMS_KEY_FILE"),
        (Some(short), "64 hex characters"),
    ] {
        let server = start_integrations_with(&db, |c| c.kms_key_file = key_file).await;
        let mut client = CredentialServiceClient::new(server.channel().await);
        let statuses = [
            client
                .put_credential(request(
                    put(pb::Provider::Meta, "act", "x", ""),
                    &admin_token,
                    Some(a),
                ))
                .await
                .unwrap_err(),
            client
                .get_credential(request(
                    pb::GetCredentialRequest {
                        id: Uuid::new_v4().to_string(),
                    },
                    &admin_token,
                    Some(a),
                ))
                .await
                .unwrap_err(),
            client
                .list_credentials(request(
                    pb::ListCredentialsRequest::default(),
                    &admin_token,
                    Some(a),
                ))
                .await
                .unwrap_err(),
            client
                .delete_credential(request(
                    pb::DeleteCredentialRequest {
                        id: Uuid::new_v4().to_string(),
                    },
                    &admin_token,
                    Some(a),
                ))
                .await
                .unwrap_err(),
            client
                .rotate_data_key(request(pb::RotateDataKeyRequest {}, &admin_token, Some(a)))
                .await
                .unwrap_err(),
        ];
        for status in statuses {
            assert_eq!(status.code(), Code::FailedPrecondition);
            assert!(status.message().contains(says), "{}", status.message());
            assert!(
                status
                    .message()
                    .starts_with("credential storage is not configured"),
                "{}",
                status.message()
            );
        }
        server.stop().await.unwrap();
    }
    assert_sql(
        &db,
        "NOT EXISTS (SELECT 1 FROM credentials)",
        "nothing was written",
    )
    .await;
}

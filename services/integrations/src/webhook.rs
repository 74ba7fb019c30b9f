//! `POST /webhooks/airbyte`: Airbyte reports a job of a connection.
//!
//! The request authenticates itself with the shared secret, either as the
//! `x-adscope-webhook-secret` header or as an HMAC-SHA256 of the raw body in
//! `x-adscope-signature: sha256=<hex>`, both compared in constant time. The
//! tenant is the one that registered the named Airbyte connection, never a
//! header. Should several tenants have registered the same Airbyte
//! connection, the report is applied to each of them: each holds its own
//! copy of that connection's history. A repeated delivery changes nothing.

use std::sync::Arc;

use adscope_db::Database;
use adscope_db::schema::connections;
use adscope_tenancy::Minter;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use diesel::prelude::*;
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use subtle::ConstantTimeEq;
use uuid::Uuid;

use crate::airbyte::{JobReport, JobState};
use crate::connections::record_job;
use crate::service_calls::{Analytics, tenant_context};

/// Where Airbyte posts.
pub const PATH: &str = "/webhooks/airbyte";
/// The shared-secret header.
pub const SECRET_HEADER: &str = "x-adscope-webhook-secret";
/// The signature header: `sha256=<hex of HMAC-SHA256(secret, body)>`.
pub const SIGNATURE_HEADER: &str = "x-adscope-signature";
/// The largest body accepted.
pub const MAX_BODY: usize = 256 * 1024;

/// What the webhook needs.
#[derive(Clone)]
pub struct Webhook {
    db: Database,
    secret: Option<Arc<[u8]>>,
    analytics: Option<Analytics>,
    minter: Option<Arc<Minter>>,
}

impl std::fmt::Debug for Webhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Webhook")
            .field("secret", &self.secret.as_ref().map(|_| "<redacted>"))
            .field("analytics", &self.analytics)
            .finish_non_exhaustive()
    }
}

impl Webhook {
    pub fn new(
        db: Database,
        secret: Option<&str>,
        analytics: Option<Analytics>,
        minter: Option<Arc<Minter>>,
    ) -> Webhook {
        Webhook {
            db,
            secret: secret
                .filter(|s| !s.is_empty())
                .map(|s| Arc::from(s.as_bytes())),
            analytics,
            minter,
        }
    }

    /// The route, with its body limit.
    pub fn router(self) -> axum::Router {
        axum::Router::new()
            .route(PATH, post(handle))
            .layer(DefaultBodyLimit::max(MAX_BODY))
            .with_state(self)
    }
}

type Reply = (StatusCode, Json<Value>);

fn reply(status: StatusCode, message: impl Into<String>) -> Reply {
    (status, Json(json!({ "error": message.into() })))
}

/// The `x-adscope-signature` value for `body` under `secret`.
pub fn signature(secret: &[u8], body: &[u8]) -> String {
    // HMAC takes keys of any length.
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret)
        .unwrap_or_else(|_| unreachable!("HMAC accepts every key length"));
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Checks the request's secret or signature against `secret`.
fn authenticate(secret: &[u8], headers: &HeaderMap, body: &[u8]) -> Result<(), Reply> {
    if let Some(given) = headers.get(SECRET_HEADER) {
        return if bool::from(given.as_bytes().ct_eq(secret)) {
            Ok(())
        } else {
            Err(reply(
                StatusCode::FORBIDDEN,
                "the webhook secret does not match",
            ))
        };
    }
    if let Some(signature) = headers.get(SIGNATURE_HEADER) {
        let wrong = || {
            reply(
                StatusCode::FORBIDDEN,
                "the webhook signature does not match",
            )
        };
        let hex_sig = signature
            .to_str()
            .ok()
            .and_then(|s| s.trim().strip_prefix("sha256="))
            .ok_or_else(wrong)?;
        let expected = hex::decode(hex_sig).map_err(|_| wrong())?;
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret).map_err(|_| wrong())?;
        mac.update(body);
        return mac.verify_slice(&expected).map_err(|_| wrong());
    }
    Err(reply(
        StatusCode::UNAUTHORIZED,
        format!(
            "send the shared secret in `{SECRET_HEADER}` or a body signature in `{SIGNATURE_HEADER}`"
        ),
    ))
}

/// The Airbyte connection a payload names.
fn connection_of(payload: &Value) -> Option<Uuid> {
    let job = payload.get("job");
    [
        payload.get("connectionId"),
        job.and_then(|j| j.get("configId")),
        job.and_then(|j| j.get("connectionId")),
    ]
    .into_iter()
    .flatten()
    .find_map(|v| v.as_str().and_then(|s| Uuid::parse_str(s).ok()))
}

async fn handle(State(hook): State<Webhook>, headers: HeaderMap, body: Bytes) -> Reply {
    let Some(secret) = hook.secret.as_deref() else {
        return reply(
            StatusCode::SERVICE_UNAVAILABLE,
            "the webhook is not configured: set ADSCOPE_WEBHOOK_SECRET",
        );
    };
    if let Err(refused) = authenticate(secret, &headers, &body) {
        return refused;
    }
    let Ok(payload) = serde_json::from_slice::<Value>(&body) else {
        return reply(StatusCode::BAD_REQUEST, "the body is not JSON");
    };
    let Some(airbyte_connection) = connection_of(&payload) else {
        return reply(
            StatusCode::BAD_REQUEST,
            "name the connection: `connectionId`, `job.configId` or `job.connectionId` (a UUID)",
        );
    };
    let report = match JobReport::from_json(&payload) {
        Ok(report) => report,
        Err(reason) => return reply(StatusCode::BAD_REQUEST, reason),
    };
    let tenants = match hook.db.connection_tenants(airbyte_connection).await {
        Ok(tenants) => tenants,
        Err(error) => {
            tracing::error!(%error, "webhook: tenant lookup failed");
            return reply(
                StatusCode::SERVICE_UNAVAILABLE,
                "the database is unavailable",
            );
        }
    };
    if tenants.is_empty() {
        return reply(
            StatusCode::NOT_FOUND,
            format!("no connection is registered for Airbyte connection {airbyte_connection}"),
        );
    }
    let mut applied = 0;
    let mut changed = 0;
    for tenant in tenants {
        let ctx = tenant_context(tenant, hook.minter.as_deref());
        let found: Result<Vec<(Uuid, String)>, _> = hook
            .db
            .scoped_load(
                &ctx,
                connections::table
                    .filter(connections::airbyte_connection_id.eq(airbyte_connection))
                    .select((connections::id, connections::provider)),
            )
            .await;
        let rows = match found {
            Ok(rows) => rows,
            Err(error) => {
                tracing::error!(%error, tenant.id = %tenant, "webhook: connection read failed");
                return reply(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the database is unavailable",
                );
            }
        };
        for (connection_id, provider) in rows {
            let recorded = match record_job(&hook.db, &ctx, connection_id, &report).await {
                Ok(recorded) => recorded,
                Err(error) => {
                    tracing::error!(%error, tenant.id = %tenant, "webhook: recording the job failed");
                    return reply(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "the job could not be recorded",
                    );
                }
            };
            applied += 1;
            if !recorded.changed {
                continue;
            }
            changed += 1;
            // Written first: analytics being down loses nothing here.
            if report.state == JobState::Succeeded
                && let Some(analytics) = &hook.analytics
                && let Err(status) = analytics.refresh_snapshot(&ctx, &provider).await
            {
                tracing::warn!(
                    tenant.id = %tenant,
                    code = ?status.code(),
                    message = status.message(),
                    "webhook: snapshot refresh failed"
                );
            }
        }
    }
    (
        StatusCode::OK,
        Json(json!({ "applied": applied, "changed": changed })),
    )
}

//! Work integrations does for a tenant without a caller (the webhook, the
//! scheduler): its own one-tenant context, and the calls it makes to
//! analytics under it.

use std::sync::Arc;
use std::time::Duration;

use adscope_proto::analytics::v1 as analytics;
use adscope_proto::analytics::v1::snapshot_service_client::SnapshotServiceClient;
use adscope_tenancy::{Credential, Minter, Principal, Role, TenantContext, TenantId, TokenSpec};

/// The subject of the tokens integrations mints for itself.
pub const SUBJECT: &str = "adscope-integrations";
/// How long such a token lives.
const TOKEN_TTL: Duration = Duration::from_secs(300);
/// How long a call to analytics may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// A context acting for exactly `tenant`, as an analyst, carrying (when a
/// minter is configured) a five-minute token for that tenant alone.
pub fn tenant_context(tenant: TenantId, minter: Option<&Minter>) -> TenantContext {
    let principal = Principal {
        subject: SUBJECT.to_owned(),
        tenants: vec![tenant],
        roles: vec![Role::Analyst],
        scopes: Vec::new(),
    };
    let credential = minter.and_then(|minter| {
        minter
            .mint(&TokenSpec {
                subject: SUBJECT.to_owned(),
                tenants: vec![tenant],
                roles: vec![Role::Analyst],
                scopes: Vec::new(),
                ttl: TOKEN_TTL,
                not_before: None,
            })
            .map_err(|error| tracing::warn!(%error, "could not mint a service token"))
            .ok()
            .map(Credential::new)
    });
    TenantContext::new(tenant, Arc::new(principal), credential)
}

/// Calls to analytics on a tenant's behalf, over one channel that every
/// call shares (it connects on first use and reconnects on its own).
#[derive(Debug, Clone)]
pub struct Analytics {
    client: SnapshotServiceClient<adscope_server::client::PropagatingChannel>,
}

/// How a snapshot call went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SnapshotOutcome {
    /// Served from a fresh stored snapshot: nothing recomputed.
    Fresh,
    /// Recomputed.
    Refreshed,
}

impl Analytics {
    /// Analytics at `url`, if one is configured; a URL that is not one is
    /// refused when the settings are read, so here it only logs.
    pub fn new(url: Option<&str>) -> Option<Analytics> {
        let channel = adscope_server::client::channel(url?)
            .map_err(
                |error| tracing::error!(%error, "analytics URL unusable: no calls to analytics"),
            )
            .ok()?;
        Some(Analytics {
            client: SnapshotServiceClient::new(channel),
        })
    }

    /// `RefreshSnapshot(source)` for `ctx`'s tenant.
    pub async fn refresh_snapshot(
        &self,
        ctx: &TenantContext,
        source: &str,
    ) -> Result<(), tonic::Status> {
        let mut client = self.client.clone();
        let request = analytics::RefreshSnapshotRequest {
            source: source.to_owned(),
        };
        ctx.clone()
            .scope(timed(client.refresh_snapshot(request)))
            .await
            .map(|_| ())
    }

    /// `GetSnapshot(source)` for `ctx`'s tenant: analytics recomputes it
    /// when it is older than its TTL.
    pub async fn ensure_fresh_snapshot(
        &self,
        ctx: &TenantContext,
        source: &str,
    ) -> Result<SnapshotOutcome, tonic::Status> {
        let mut client = self.client.clone();
        let request = analytics::GetSnapshotRequest {
            source: source.to_owned(),
        };
        let response = ctx
            .clone()
            .scope(timed(client.get_snapshot(request)))
            .await?
            .into_inner();
        Ok(
            if response.cache_status() == analytics::SnapshotCacheStatus::Hit {
                SnapshotOutcome::Fresh
            } else {
                SnapshotOutcome::Refreshed
            },
        )
    }
}

async fn timed<T>(
    call: impl Future<Output = Result<T, tonic::Status>>,
) -> Result<T, tonic::Status> {
    tokio::time::timeout(CALL_TIMEOUT, call)
        .await
        .unwrap_or_else(|_| Err(tonic::Status::deadline_exceeded("analytics did not answer")))
}

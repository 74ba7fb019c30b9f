//! adscope integrations: Airbyte connections and syncs, the Airbyte
//! webhook, encrypted platform credentials and per-tenant background jobs.
//!
//! # Layout
//!
//! - `config`: settings (Airbyte, webhook secret, key file, scheduler).
//! - `connections`: `ConnectionService` and the sync operations it shares.
//! - `airbyte`: the Airbyte API client and job-report parsing.
//! - `webhook`: `POST /webhooks/airbyte`, served next to gRPC on the same port.
//! - `scheduler`: per-tenant background jobs under lease rows.
//! - `service_calls`: one-tenant contexts and calls to analytics.
//! - `credentials`: `CredentialService`.
//!
//! Methods not built yet answer `UNIMPLEMENTED` behind the tenant layer.

use std::net::SocketAddr;

use adscope_db::{Database, ServiceRole};
use adscope_proto::integrations::v1 as pb;
use adscope_server::GrpcServer;
use adscope_server::health::{Heartbeat, database_checks, heartbeat};

pub mod airbyte;
pub mod config;
pub mod connections;
pub mod credentials;
pub mod error;
pub mod kms;
pub mod scheduler;
pub mod service_calls;
pub mod webhook;

use adscope_tenancy::{Access, MethodPolicy, Role};
pub use config::{Args, Config};
use tokio::net::TcpListener;

/// Where integrations listens unless told otherwise.
pub const DEFAULT_ADDR: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 50052);

/// The gRPC services integrations serves.
pub const SERVICES: &[&str] = &[
    "adscope.integrations.v1.ConnectionService",
    "adscope.integrations.v1.CredentialService",
];

/// Who may call what: viewers read, analysts change connections and
/// credentials, admins rotate data keys.
pub fn policy() -> MethodPolicy {
    let tenant = |min_role| Access::Tenant { min_role };
    let mut policy = MethodPolicy::new();
    for service in SERVICES {
        policy = policy.service(*service, tenant(Role::Analyst));
    }
    for method in [
        "ConnectionService/GetConnection",
        "ConnectionService/ListConnections",
        "ConnectionService/ListJobs",
        "ConnectionService/GetSyncStatus",
        "CredentialService/GetCredential",
        "CredentialService/ListCredentials",
    ] {
        policy = policy.method(
            format!("/adscope.integrations.v1.{method}"),
            tenant(Role::Viewer),
        );
    }
    policy
        .method(
            "/adscope.integrations.v1.CredentialService/RotateDataKey",
            tenant(Role::Admin),
        )
        // Plain HTTP; it authenticates itself and finds its tenant from the
        // connection its payload names.
        .method(webhook::PATH, Access::Public)
}

/// The server with every integrations service, health and reflection.
pub fn server(
    config: &Config,
    db: Database,
    airbyte: Option<airbyte::AirbyteClient>,
    scheduler: Option<&Heartbeat>,
) -> GrpcServer {
    let checks = database_checks(&db);
    let mut liveness = Vec::new();
    if let Some(beat) = scheduler {
        // A pass may legitimately take a while; three missed intervals
        // (and at least a minute) mean the loop is stuck or gone, which a
        // restart mends (a database outage does not: that check is not
        // one of liveness).
        let max_age = (config.scheduler.interval * 3).max(std::time::Duration::from_secs(60));
        liveness.push(("scheduler", heartbeat("scheduler", beat, max_age)));
    }
    // Only syncing needs Airbyte: without it the connection service reads
    // NOT_SERVING, while credentials, the webhook, reads and the server as
    // a whole stay in rotation.
    let scoped = vec![(
        pb::connection_service_server::SERVICE_NAME,
        "airbyte",
        adscope_server::health::configured("ADSCOPE_AIRBYTE_URL", config.airbyte.is_some()),
    )];
    GrpcServer::from_config(&config.common, policy())
        .add_service(pb::connection_service_server::ConnectionServiceServer::new(
            connections::Connections::new(db.clone(), airbyte),
        ))
        .add_service(pb::credential_service_server::CredentialServiceServer::new(
            credentials::Credentials::from_key_file(db.clone(), config.kms_key_file.as_deref()),
        ))
        .monitor_health_with(SERVICES, checks, scoped, liveness)
}

/// Serves integrations on `listener` until `shutdown` resolves.
pub async fn serve(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send,
) -> anyhow::Result<()> {
    let db = Database::connect(&config.common.db_config(ServiceRole::Integrations))?;
    let airbyte = airbyte::AirbyteClient::new(config.airbyte.as_ref())?;
    let analytics = service_calls::Analytics::new(config.analytics_url.as_deref());
    let hook = webhook::Webhook::new(
        db.clone(),
        config.webhook_secret.as_deref(),
        analytics,
        config.service_minter.clone(),
    );
    let beat = Heartbeat::new();
    let scheduler = if config.scheduler.enabled {
        Some(scheduler::Scheduler::new(&config, db.clone())?.spawn(beat.clone()))
    } else {
        None
    };
    let served = server(&config, db, airbyte, scheduler.as_ref().map(|_| &beat))
        .into_routes()?
        .with_http_route(webhook::PATH, hook.router())
        .serve(listener, shutdown)
        .await;
    if let Some(scheduler) = scheduler {
        scheduler.abort();
    }
    served
}

//! adscope integrations: Airbyte connections and syncs, the Airbyte
//! webhook, encrypted platform credentials and per-tenant background jobs.
//!
//! # Layout
//!
//! - `config`: settings (Airbyte, webhook secret, key file, scheduler).
//! - `connections`: `ConnectionService`.
//! - `credentials`: `CredentialService`.
//!
//! Methods not built yet answer `UNIMPLEMENTED` behind the tenant layer.

use std::net::SocketAddr;

use adscope_db::{Database, ServiceRole};
use adscope_proto::integrations::v1 as pb;
use adscope_server::GrpcServer;
use adscope_server::health::database_checks;

pub mod config;
pub mod connections;
pub mod credentials;

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
    policy.method(
        "/adscope.integrations.v1.CredentialService/RotateDataKey",
        tenant(Role::Admin),
    )
}

/// The server with every integrations service, health and reflection.
pub fn server(config: &Config, db: Database) -> GrpcServer {
    GrpcServer::from_config(&config.common, policy())
        .add_service(pb::connection_service_server::ConnectionServiceServer::new(
            connections::Connections::new(db.clone()),
        ))
        .add_service(pb::credential_service_server::CredentialServiceServer::new(
            credentials::Credentials::new(db.clone()),
        ))
        .monitor_health(SERVICES, database_checks(&db))
}

/// Serves integrations on `listener` until `shutdown` resolves.
pub async fn serve(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send,
) -> anyhow::Result<()> {
    let db = Database::connect(&config.common.db_config(ServiceRole::Integrations))?;
    server(&config, db).serve(listener, shutdown).await
}

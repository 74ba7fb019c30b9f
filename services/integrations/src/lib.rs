//! adscope integrations: Airbyte connections and syncs, the Airbyte
//! webhook, encrypted platform credentials and per-tenant background jobs.
//!
//! The services are served behind the shared tenant layer; methods not
//! built yet answer `UNIMPLEMENTED`.

use std::net::SocketAddr;

use adscope_db::{Database, DbConfig, ServiceRole};
use adscope_proto::integrations::v1 as pb;
use adscope_server::health::{HealthMonitor, database_checks};
use adscope_server::{CommonArgs, CommonConfig, GrpcServer};
use adscope_tenancy::{Access, MethodPolicy, Role};
use tokio::net::TcpListener;

/// Where integrations listens unless told otherwise.
pub const DEFAULT_ADDR: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 50052);

/// Command line and environment of `adscope-integrations`.
#[derive(Debug, clap::Parser)]
#[command(
    name = "adscope-integrations",
    version,
    about = "adscope integrations gRPC service"
)]
pub struct Args {
    #[command(flatten)]
    pub common: CommonArgs,
}

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
pub fn server(config: &CommonConfig, db: Database) -> GrpcServer {
    let server = GrpcServer::new(config.verifier.clone(), policy())
        .cors_origins(config.cors_origins.clone())
        .reflect(adscope_proto::FILE_DESCRIPTOR_SET)
        .add_service(pb::connection_service_server::ConnectionServiceServer::new(
            Unimplemented,
        ))
        .add_service(pb::credential_service_server::CredentialServiceServer::new(
            Unimplemented,
        ));
    HealthMonitor::new(server.health_reporter(), SERVICES)
        .checks(database_checks(&db))
        .spawn();
    server
}

/// Serves integrations on `listener` until `shutdown` resolves.
pub async fn serve(
    config: CommonConfig,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send,
) -> anyhow::Result<()> {
    let mut db_config = DbConfig::new(config.database_url.clone(), ServiceRole::Integrations);
    db_config.max_connections = config.pool_size;
    let db = Database::connect(&db_config)?;
    server(&config, db).serve(listener, shutdown).await
}

#[derive(Debug, Clone, Copy)]
struct Unimplemented;

impl pb::connection_service_server::ConnectionService for Unimplemented {}
impl pb::credential_service_server::CredentialService for Unimplemented {}

//! adscope health: `grpc.health.v1` and the fleet-wide view, the only
//! service with fleet scope.
//!
//! The fleet wrapper it reads through (`adscope_db::fleet`) is compiled in
//! only because this crate enables the db crate's `fleet` feature; no other
//! service does.

pub mod fleet;

use std::net::SocketAddr;

use adscope_db::ServiceRole;
use adscope_db::fleet::FleetDb;
use adscope_proto::fleet::v1 as pb;
use adscope_server::health::database_checks;
use adscope_server::{CommonArgs, CommonConfig, GrpcServer};
use adscope_tenancy::{Access, MethodPolicy};
use tokio::net::TcpListener;

/// Where health listens unless told otherwise.
pub const DEFAULT_ADDR: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 50053);

/// Command line and environment of `adscope-health`.
#[derive(Debug, clap::Parser)]
#[command(
    name = "adscope-health",
    version,
    about = "adscope health and fleet gRPC service"
)]
pub struct Args {
    #[command(flatten)]
    pub common: CommonArgs,
}

/// The gRPC services health serves besides `grpc.health.v1`.
pub const SERVICES: &[&str] = &["adscope.fleet.v1.FleetService"];

/// Fleet methods take a `fleet:read` token and no tenant.
pub fn policy() -> MethodPolicy {
    MethodPolicy::new().service("adscope.fleet.v1.FleetService", Access::Fleet)
}

/// The server with the fleet service, health and reflection.
pub fn server(config: &CommonConfig, fleet: FleetDb) -> GrpcServer {
    let checks = database_checks(fleet.database());
    GrpcServer::from_config(config, policy())
        .add_service(pb::fleet_service_server::FleetServiceServer::new(
            fleet::Fleet::new(fleet),
        ))
        .monitor_health(SERVICES, checks)
}

/// Serves health on `listener` until `shutdown` resolves.
pub async fn serve(
    config: CommonConfig,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send,
) -> anyhow::Result<()> {
    let fleet = FleetDb::connect(&config.db_config(ServiceRole::Health))?;
    server(&config, fleet).serve(listener, shutdown).await
}

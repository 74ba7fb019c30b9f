//! adscope health: `grpc.health.v1` and the fleet-wide view, the only
//! service with fleet scope.
//!
//! The fleet wrapper it reads through (`adscope_db::fleet`) is compiled in
//! only because this crate enables the db crate's `fleet` feature; no other
//! service does.
//!
//! # Layout
//!
//! - `config`: settings (peer services, health interval, fleet thresholds).
//! - `fleet`: `FleetService`, computed in SQL over the fleet pool, and the
//!   calls to the other services' health checks.

pub mod config;
pub mod fleet;

use std::net::SocketAddr;

use adscope_db::ServiceRole;
use adscope_db::fleet::FleetDb;
use adscope_proto::fleet::v1 as pb;
use adscope_server::health::{HealthMonitor, database_checks};
use adscope_server::{CommonConfig, GrpcServer};
use adscope_tenancy::{Access, MethodPolicy};
use tokio::net::TcpListener;

pub use config::{Args, Config, Thresholds};

/// Where health listens unless told otherwise.
pub const DEFAULT_ADDR: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 50053);

/// The gRPC services health serves besides `grpc.health.v1`.
pub const SERVICES: &[&str] = &["adscope.fleet.v1.FleetService"];

/// Fleet methods take a `fleet:read` token and no tenant.
pub fn policy() -> MethodPolicy {
    MethodPolicy::new().service("adscope.fleet.v1.FleetService", Access::Fleet)
}

/// The server with the fleet service, health and reflection. Its own health
/// follows its database (reached as the health role) and migrations; the
/// fleet view also reports the peers configured in `config`.
pub fn server(config: &Config, fleet: FleetDb) -> anyhow::Result<GrpcServer> {
    let server = GrpcServer::from_config(&config.common, policy());
    let monitor = HealthMonitor::new(server.health_reporter(), SERVICES)
        .checks(database_checks(fleet.database()))
        .interval(config.health_interval);
    let own = monitor.subscribe();
    let peers = [
        ("adscope-analytics", config.analytics_url.as_deref()),
        ("adscope-integrations", config.integrations_url.as_deref()),
    ]
    .into_iter()
    .map(|(name, url)| fleet::Peer::new(name, url, config.peer_timeout))
    .collect::<Result<Vec<_>, _>>()?;
    monitor.spawn();
    Ok(
        server.add_service(pb::fleet_service_server::FleetServiceServer::new(
            fleet::Fleet::new(fleet, config.thresholds, peers, own),
        )),
    )
}

/// Serves health with the default settings around `common` (no peers).
pub async fn serve(
    common: CommonConfig,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send,
) -> anyhow::Result<()> {
    serve_with(Config::new(common), listener, shutdown).await
}

/// Serves health on `listener` until `shutdown` resolves.
pub async fn serve_with(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send,
) -> anyhow::Result<()> {
    let fleet = FleetDb::connect(&config.common.db_config(ServiceRole::Health))?;
    server(&config, fleet)?.serve(listener, shutdown).await
}

//! adscope analytics: campaigns, ad sets, ads, performance data, metrics and
//! snapshots, every handler going through the tenant-scoped database wrapper.
//!
//! # Layout
//!
//! - `campaigns`, `ad_sets`, `ads`: the resource services.
//! - `performance`: ingest, records and metrics.
//! - `snapshots`: cached metrics payloads.
//! - `pagination`: page sizes and tenant-bound page tokens.
//! - `convert`: rows to messages and back (JSON ↔ `Struct`, times).
//! - `error`: the one place errors become `tonic::Status`.

pub mod ad_sets;
pub mod ads;
pub mod campaigns;
mod convert;
mod error;
mod pagination;
pub mod performance;
pub mod snapshots;

use std::net::SocketAddr;

use adscope_db::{Database, ServiceRole};
use adscope_proto::analytics::v1 as pb;
use adscope_server::health::database_checks;
use adscope_server::{CommonArgs, CommonConfig, GrpcServer};
use adscope_tenancy::{Access, MethodPolicy, Role};
use tokio::net::TcpListener;

/// Where analytics listens unless told otherwise.
pub const DEFAULT_ADDR: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 50051);

/// Command line and environment of `adscope-analytics`.
#[derive(Debug, clap::Parser)]
#[command(
    name = "adscope-analytics",
    version,
    about = "adscope analytics gRPC service"
)]
pub struct Args {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Seconds a computed snapshot is served from cache.
    #[arg(long, env = "ADSCOPE_SNAPSHOT_TTL_SECS", default_value_t = snapshots::DEFAULT_TTL.as_secs(),
          value_parser = clap::value_parser!(u64).range(1..=2_592_000))]
    pub snapshot_ttl_secs: u64,
}

/// Everything analytics runs with.
#[derive(Debug, Clone)]
pub struct Config {
    pub common: CommonConfig,
    /// How long a snapshot stays fresh.
    pub snapshot_ttl: std::time::Duration,
}

impl Config {
    /// The defaults around the common settings.
    pub fn new(common: CommonConfig) -> Config {
        Config {
            common,
            snapshot_ttl: snapshots::DEFAULT_TTL,
        }
    }
}

impl Args {
    /// Validates the settings.
    pub fn into_config(self) -> Result<Config, adscope_server::ConfigError> {
        Ok(Config {
            common: self.common.into_config(DEFAULT_ADDR)?,
            snapshot_ttl: std::time::Duration::from_secs(self.snapshot_ttl_secs),
        })
    }
}

/// The gRPC services analytics serves (for health and reflection).
pub const SERVICES: &[&str] = &[
    "adscope.analytics.v1.CampaignService",
    "adscope.analytics.v1.AdSetService",
    "adscope.analytics.v1.AdService",
    "adscope.analytics.v1.PerformanceService",
    "adscope.analytics.v1.SnapshotService",
];

/// Who may call what: viewers read, analysts and admins write.
pub fn policy() -> MethodPolicy {
    let write = Access::Tenant {
        min_role: Role::Analyst,
    };
    let read = Access::Tenant {
        min_role: Role::Viewer,
    };
    let mut policy = MethodPolicy::new();
    for service in SERVICES {
        policy = policy.service(*service, write);
    }
    for method in [
        "CampaignService/GetCampaign",
        "CampaignService/ListCampaigns",
        "AdSetService/GetAdSet",
        "AdSetService/ListAdSets",
        "AdService/GetAd",
        "AdService/ListAds",
        "PerformanceService/ListRecords",
        "PerformanceService/QueryMetrics",
        "SnapshotService/GetSnapshot",
    ] {
        policy = policy.method(format!("/adscope.analytics.v1.{method}"), read);
    }
    policy
}

/// The server with every analytics service, health and reflection.
pub fn server(config: &Config, db: Database) -> GrpcServer {
    GrpcServer::from_config(&config.common, policy())
        .add_service(pb::campaign_service_server::CampaignServiceServer::new(
            campaigns::Campaigns::new(db.clone()),
        ))
        .add_service(pb::ad_set_service_server::AdSetServiceServer::new(
            ad_sets::AdSets::new(db.clone()),
        ))
        .add_service(pb::ad_service_server::AdServiceServer::new(ads::Ads::new(
            db.clone(),
        )))
        .add_service(
            pb::performance_service_server::PerformanceServiceServer::new(
                performance::Performance::new(db.clone()),
            ),
        )
        .add_service(pb::snapshot_service_server::SnapshotServiceServer::new(
            snapshots::Snapshots::with_ttl(db.clone(), config.snapshot_ttl),
        ))
        .monitor_health(SERVICES, database_checks(&db))
}

/// Serves analytics on `listener` until `shutdown` resolves.
pub async fn serve(
    config: CommonConfig,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send,
) -> anyhow::Result<()> {
    serve_with(Config::new(config), listener, shutdown).await
}

/// Serves analytics with every setting given.
pub async fn serve_with(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send,
) -> anyhow::Result<()> {
    let db = Database::connect(&config.common.db_config(ServiceRole::Analytics))?;
    server(&config, db).serve(listener, shutdown).await
}

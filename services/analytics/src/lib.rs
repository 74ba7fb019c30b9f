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
pub fn server(config: &CommonConfig, db: Database) -> GrpcServer {
    GrpcServer::from_config(config, policy())
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
            snapshots::Snapshots::new(db.clone()),
        ))
        .monitor_health(SERVICES, database_checks(&db))
}

/// Serves analytics on `listener` until `shutdown` resolves.
pub async fn serve(
    config: CommonConfig,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send,
) -> anyhow::Result<()> {
    let db = Database::connect(&config.db_config(ServiceRole::Analytics))?;
    server(&config, db).serve(listener, shutdown).await
}

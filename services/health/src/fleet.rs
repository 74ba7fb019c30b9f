//! `adscope.fleet.v1.FleetService`: ids, counts and times across tenants.

use adscope_db::DbError;
use adscope_db::fleet::FleetDb;
use adscope_db::schema::{connections, tenants};
use adscope_proto::fleet::v1 as pb;
use adscope_tenancy::fleet_context;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use futures_util::FutureExt;
use tonic::{Request, Response, Status};

/// Fleet handlers over the read-only fleet pool.
#[derive(Debug, Clone)]
pub struct Fleet {
    db: FleetDb,
}

impl Fleet {
    pub fn new(db: FleetDb) -> Self {
        Fleet { db }
    }
}

fn unavailable(error: DbError) -> Status {
    tracing::warn!(%error, "fleet read failed");
    Status::unavailable("the fleet database is unavailable; retry shortly")
}

#[tonic::async_trait]
impl pb::fleet_service_server::FleetService for Fleet {
    async fn get_fleet_status(
        &self,
        request: Request<pb::GetFleetStatusRequest>,
    ) -> Result<Response<pb::GetFleetStatusResponse>, Status> {
        let ctx = fleet_context(&request)?.clone();
        let (tenant_count, active, inactive) = self
            .db
            .read(&ctx, |mut conn| {
                async move {
                    let tenant_count: i64 = tenants::table.count().get_result(&mut conn).await?;
                    let active: i64 = connections::table
                        .filter(connections::active.eq(true))
                        .count()
                        .get_result(&mut conn)
                        .await?;
                    let inactive: i64 = connections::table
                        .filter(connections::active.eq(false))
                        .count()
                        .get_result(&mut conn)
                        .await?;
                    Ok::<_, DbError>((tenant_count, active, inactive))
                }
                .boxed()
            })
            .await
            .map_err(unavailable)?;

        Ok(Response::new(pb::GetFleetStatusResponse {
            totals: Some(pb::FleetTotals {
                tenants: tenant_count,
                connections_active: active,
                connections_inactive: inactive,
                ..Default::default()
            }),
            services: vec![pb::ServiceStatus {
                name: "adscope-health".into(),
                version: env!("CARGO_PKG_VERSION").into(),
                status: pb::ServingStatus::Serving.into(),
            }],
            generate_time: Some(prost_types::Timestamp::from(std::time::SystemTime::now())),
        }))
    }
}

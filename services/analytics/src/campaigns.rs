//! `adscope.analytics.v1.CampaignService`.

use adscope_db::Database;
use adscope_db::schema::campaigns;
use adscope_proto::analytics::v1 as pb;
use adscope_tenancy::tenant_context;
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::convert::{datetime, from_struct, timestamp, to_struct};
use crate::error::ApiError;

/// Campaign handlers over the tenant-scoped pool.
#[derive(Debug, Clone)]
pub struct Campaigns {
    db: Database,
}

impl Campaigns {
    pub fn new(db: Database) -> Self {
        Campaigns { db }
    }
}

#[derive(Debug, Queryable, Selectable)]
#[diesel(table_name = campaigns)]
struct CampaignRow {
    id: Uuid,
    external_id: String,
    name: String,
    platform: String,
    account_external_id: String,
    status: String,
    objective: String,
    currency: String,
    metadata: serde_json::Value,
    platform_created_at: Option<DateTime<Utc>>,
    platform_updated_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

#[derive(Debug, Insertable)]
#[diesel(table_name = campaigns)]
struct NewCampaign {
    tenant_id: Uuid,
    external_id: String,
    name: String,
    platform: String,
    account_external_id: String,
    status: String,
    objective: String,
    currency: String,
    metadata: serde_json::Value,
    platform_created_at: Option<DateTime<Utc>>,
    platform_updated_at: Option<DateTime<Utc>>,
}

fn platform_name(platform: pb::Platform) -> Option<&'static str> {
    Some(match platform {
        pb::Platform::Unspecified => return None,
        pb::Platform::Meta => "meta",
        pb::Platform::GoogleAds => "google_ads",
        pb::Platform::Linkedin => "linkedin",
        pb::Platform::Tiktok => "tiktok",
        pb::Platform::Ga4 => "ga4",
        pb::Platform::Other => "other",
    })
}

fn platform_of(name: &str) -> pb::Platform {
    match name {
        "meta" => pb::Platform::Meta,
        "google_ads" => pb::Platform::GoogleAds,
        "linkedin" => pb::Platform::Linkedin,
        "tiktok" => pb::Platform::Tiktok,
        "ga4" => pb::Platform::Ga4,
        "other" => pb::Platform::Other,
        _ => pb::Platform::Unspecified,
    }
}

fn status_name(status: pb::CampaignStatus) -> Option<&'static str> {
    Some(match status {
        pb::CampaignStatus::Unspecified => return None,
        pb::CampaignStatus::Active => "active",
        pb::CampaignStatus::Paused => "paused",
        pb::CampaignStatus::Archived => "archived",
        pb::CampaignStatus::Deleted => "deleted",
    })
}

fn status_of(name: &str) -> pb::CampaignStatus {
    match name {
        "active" => pb::CampaignStatus::Active,
        "paused" => pb::CampaignStatus::Paused,
        "archived" => pb::CampaignStatus::Archived,
        "deleted" => pb::CampaignStatus::Deleted,
        _ => pb::CampaignStatus::Unspecified,
    }
}

impl From<CampaignRow> for pb::Campaign {
    fn from(row: CampaignRow) -> Self {
        pb::Campaign {
            id: row.id.to_string(),
            external_id: row.external_id,
            name: row.name,
            platform: platform_of(&row.platform).into(),
            account_external_id: row.account_external_id,
            status: status_of(&row.status).into(),
            objective: row.objective,
            currency: row.currency,
            metadata: Some(to_struct(&row.metadata)),
            platform_created_at: row.platform_created_at.map(timestamp),
            platform_updated_at: row.platform_updated_at.map(timestamp),
            create_time: Some(timestamp(row.created_at)),
            update_time: Some(timestamp(row.updated_at)),
        }
    }
}

fn text(field: &str, value: &str, max: usize, required: bool) -> Result<String, ApiError> {
    let value = value.trim();
    if required && value.is_empty() {
        return Err(ApiError::invalid(field, "is required"));
    }
    if value.chars().count() > max {
        return Err(ApiError::invalid(
            field,
            format!("is longer than {max} characters"),
        ));
    }
    Ok(value.to_owned())
}

fn optional_time(
    field: &str,
    ts: Option<&prost_types::Timestamp>,
) -> Result<Option<DateTime<Utc>>, ApiError> {
    ts.map(|ts| datetime(ts).ok_or_else(|| ApiError::invalid(field, "is out of range")))
        .transpose()
}

fn new_campaign(tenant: Uuid, campaign: pb::Campaign) -> Result<NewCampaign, ApiError> {
    let platform = platform_name(campaign.platform())
        .ok_or_else(|| ApiError::invalid("campaign.platform", "is required"))?;
    let status = status_name(campaign.status()).unwrap_or("active");
    let currency = campaign.currency.trim().to_owned();
    if currency.len() != 3 || !currency.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err(ApiError::invalid(
            "campaign.currency",
            "must be an ISO 4217 code such as EUR",
        ));
    }
    Ok(NewCampaign {
        tenant_id: tenant,
        external_id: text("campaign.external_id", &campaign.external_id, 128, true)?,
        name: text("campaign.name", &campaign.name, 256, true)?,
        platform: platform.to_owned(),
        account_external_id: text(
            "campaign.account_external_id",
            &campaign.account_external_id,
            128,
            false,
        )?,
        status: status.to_owned(),
        objective: text("campaign.objective", &campaign.objective, 128, false)?,
        currency,
        metadata: campaign
            .metadata
            .as_ref()
            .map(from_struct)
            .unwrap_or_else(|| serde_json::json!({})),
        platform_created_at: optional_time(
            "campaign.platform_created_at",
            campaign.platform_created_at.as_ref(),
        )?,
        platform_updated_at: optional_time(
            "campaign.platform_updated_at",
            campaign.platform_updated_at.as_ref(),
        )?,
    })
}

/// A resource id from a request: malformed is `INVALID_ARGUMENT`.
pub(crate) fn parse_id(field: &str, id: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(id.trim())
        .map_err(|_| ApiError::invalid(field, format!("must be a UUID, got {id:?}")))
}

#[tonic::async_trait]
impl pb::campaign_service_server::CampaignService for Campaigns {
    async fn create_campaign(
        &self,
        request: Request<pb::CreateCampaignRequest>,
    ) -> Result<Response<pb::CreateCampaignResponse>, Status> {
        let ctx = tenant_context(&request)?.clone();
        let campaign = request
            .into_inner()
            .campaign
            .ok_or_else(|| Status::invalid_argument("campaign is required"))?;
        let row = new_campaign(*ctx.tenant_id().as_uuid(), campaign)?;

        // One statement: the insert-returning, its opening and its COMMIT
        // leave in one write.
        let created: Vec<CampaignRow> = self
            .db
            .scoped_load(
                &ctx,
                diesel::insert_into(campaigns::table)
                    .values(row)
                    .returning(CampaignRow::as_returning()),
            )
            .await
            .map_err(ApiError::from)?;
        let created = created
            .into_iter()
            .next()
            .ok_or(ApiError::NotFound("campaign"))?;
        Ok(Response::new(pb::CreateCampaignResponse {
            campaign: Some(created.into()),
        }))
    }

    async fn get_campaign(
        &self,
        request: Request<pb::GetCampaignRequest>,
    ) -> Result<Response<pb::GetCampaignResponse>, Status> {
        let ctx = tenant_context(&request)?.clone();
        let id = parse_id("id", &request.get_ref().id)?;

        // Row-level security makes another tenant's id look exactly like an
        // id that does not exist.
        let found: Vec<CampaignRow> = self
            .db
            .scoped_load(
                &ctx,
                campaigns::table
                    .filter(campaigns::id.eq(id))
                    .select(CampaignRow::as_select())
                    .limit(1),
            )
            .await
            .map_err(ApiError::from)?;
        let campaign = found
            .into_iter()
            .next()
            .ok_or(ApiError::NotFound("campaign"))?;
        Ok(Response::new(pb::GetCampaignResponse {
            campaign: Some(campaign.into()),
        }))
    }
}

//! `adscope.analytics.v1.CampaignService`.

use adscope_db::Database;
use adscope_db::schema::campaigns;
use adscope_proto::analytics::v1 as pb;
use adscope_tenancy::tenant_context;
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::convert::{
    json_or_empty, mask_fields, optional_time, platform_name, status_name, status_of, text,
    timestamp, to_struct,
};
use crate::error::{ApiError, Violations, write_error};
use crate::pagination::{self, Order};

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

/// The validated values of the fields a create or update writes; `None`
/// leaves a column alone (and `Some(None)` clears a nullable one).
#[derive(Debug, Default, AsChangeset)]
#[diesel(table_name = campaigns)]
struct CampaignChanges {
    external_id: Option<String>,
    name: Option<String>,
    platform: Option<String>,
    account_external_id: Option<String>,
    status: Option<String>,
    objective: Option<String>,
    currency: Option<String>,
    metadata: Option<serde_json::Value>,
    platform_created_at: Option<Option<DateTime<Utc>>>,
    platform_updated_at: Option<Option<DateTime<Utc>>>,
}

/// The fields an update may name.
const MUTABLE: &[&str] = &[
    "external_id",
    "name",
    "platform",
    "account_external_id",
    "status",
    "objective",
    "currency",
    "metadata",
    "platform_created_at",
    "platform_updated_at",
];
/// Output-only fields: named in a mask they are refused, not ignored.
const IMMUTABLE: &[&str] = &["id", "create_time", "update_time"];

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

impl From<CampaignRow> for pb::Campaign {
    fn from(row: CampaignRow) -> Self {
        pb::Campaign {
            id: row.id.to_string(),
            external_id: row.external_id,
            name: row.name,
            platform: platform_of(&row.platform).into(),
            account_external_id: row.account_external_id,
            status: status_of(&row.status),
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

fn currency(value: &str) -> Result<String, ApiError> {
    let value = value.trim();
    if value.len() != 3 || !value.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err(ApiError::invalid(
            "campaign.currency",
            format!("must be an ISO 4217 code of three capital letters such as EUR, got {value:?}"),
        ));
    }
    Ok(value.to_owned())
}

/// Validates the `fields` of `campaign`, recording every violation. On
/// create, an unspecified status means active.
fn changes(
    campaign: &pb::Campaign,
    fields: &[&str],
    creating: bool,
    v: &mut Violations,
) -> CampaignChanges {
    let mut out = CampaignChanges::default();
    for field in fields {
        match *field {
            "external_id" => {
                out.external_id = v.check(text(
                    "campaign.external_id",
                    &campaign.external_id,
                    128,
                    true,
                ));
            }
            "name" => out.name = v.check(text("campaign.name", &campaign.name, 256, true)),
            "platform" => match platform_name(campaign.platform()) {
                Some(p) => out.platform = Some(p.to_owned()),
                None => v.add("campaign.platform", "is required (e.g. PLATFORM_META)"),
            },
            "account_external_id" => {
                out.account_external_id = v.check(text(
                    "campaign.account_external_id",
                    &campaign.account_external_id,
                    128,
                    false,
                ));
            }
            "status" => match status_name(campaign.status()) {
                Some(s) => out.status = Some(s.to_owned()),
                None if creating => out.status = Some("active".to_owned()),
                None => v.add("campaign.status", "must be set when it is updated"),
            },
            "objective" => {
                out.objective =
                    v.check(text("campaign.objective", &campaign.objective, 128, false));
            }
            "currency" => out.currency = v.check(currency(&campaign.currency)),
            "metadata" => out.metadata = Some(json_or_empty(campaign.metadata.as_ref())),
            "platform_created_at" => {
                out.platform_created_at = v.check(optional_time(
                    "campaign.platform_created_at",
                    campaign.platform_created_at.as_ref(),
                ));
            }
            "platform_updated_at" => {
                out.platform_updated_at = v.check(optional_time(
                    "campaign.platform_updated_at",
                    campaign.platform_updated_at.as_ref(),
                ));
            }
            _ => {}
        }
    }
    out
}

/// A resource id from a request: malformed is `INVALID_ARGUMENT`.
pub(crate) fn parse_id(field: &str, id: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(id.trim())
        .map_err(|_| ApiError::invalid(field, format!("must be a UUID, got {id:?}")))
}

fn duplicate() -> ApiError {
    ApiError::AlreadyExists("a campaign with this external_id already exists".into())
}

fn not_found() -> ApiError {
    ApiError::NotFound("campaign")
}

fn invalid_times() -> ApiError {
    ApiError::invalid("campaign", "violates a constraint")
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
            .ok_or_else(|| ApiError::invalid("campaign", "is required"))?;
        let mut v = Violations::new();
        let c = changes(&campaign, MUTABLE, true, &mut v);
        v.finish()?;
        let row = NewCampaign {
            tenant_id: *ctx.tenant_id().as_uuid(),
            external_id: c.external_id.unwrap_or_default(),
            name: c.name.unwrap_or_default(),
            platform: c.platform.unwrap_or_default(),
            account_external_id: c.account_external_id.unwrap_or_default(),
            status: c.status.unwrap_or_default(),
            objective: c.objective.unwrap_or_default(),
            currency: c.currency.unwrap_or_default(),
            metadata: c.metadata.unwrap_or_default(),
            platform_created_at: c.platform_created_at.flatten(),
            platform_updated_at: c.platform_updated_at.flatten(),
        };

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
            .map_err(|e| write_error(e, duplicate, not_found, invalid_times))?;
        let created = created.into_iter().next().ok_or_else(not_found)?;
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
        let campaign = found.into_iter().next().ok_or_else(not_found)?;
        Ok(Response::new(pb::GetCampaignResponse {
            campaign: Some(campaign.into()),
        }))
    }

    async fn list_campaigns(
        &self,
        request: Request<pb::ListCampaignsRequest>,
    ) -> Result<Response<pb::ListCampaignsResponse>, Status> {
        let ctx = tenant_context(&request)?.clone();
        let tenant = *ctx.tenant_id().as_uuid();
        let req = request.get_ref();
        let mut v = Violations::new();
        let size = v.check(pagination::page_size(req.page_size));
        let order = match req.order_by() {
            pb::CampaignOrderBy::Name => Order::Name,
            pb::CampaignOrderBy::Unspecified | pb::CampaignOrderBy::CreateTime => Order::CreateTime,
        };
        let status = status_name(req.status());
        let platform = platform_name(req.platform());
        let query = pagination::fingerprint(&[
            "campaigns",
            status.unwrap_or(""),
            platform.unwrap_or(""),
            order.as_str(),
            if req.descending { "desc" } else { "asc" },
        ]);
        let cursor = pagination::cursor(&mut v, &req.page_token, tenant, query, order);
        v.finish()?;
        let size = size.unwrap_or(pagination::DEFAULT_PAGE_SIZE);

        let mut q = campaigns::table
            .select(CampaignRow::as_select())
            .into_boxed();
        if let Some(status) = status {
            q = q.filter(campaigns::status.eq(status));
        }
        if let Some(platform) = platform {
            q = q.filter(campaigns::platform.eq(platform));
        }
        if let Some(cursor) = &cursor {
            q = q.filter(cursor.condition("campaigns", req.descending));
        }
        q = match (order, req.descending) {
            (Order::Name, false) => q.order((campaigns::name.asc(), campaigns::id.asc())),
            (Order::Name, true) => q.order((campaigns::name.desc(), campaigns::id.desc())),
            (Order::CreateTime, false) => {
                q.order((campaigns::created_at.asc(), campaigns::id.asc()))
            }
            (Order::CreateTime, true) => {
                q.order((campaigns::created_at.desc(), campaigns::id.desc()))
            }
        };
        // One row beyond the page says whether there is a next one.
        let mut rows: Vec<CampaignRow> = self
            .db
            .scoped_load(&ctx, q.limit(size + 1))
            .await
            .map_err(ApiError::from)?;
        let next_page_token =
            pagination::next_page_token(&mut rows, size, tenant, query, order, |last| {
                (&last.name, last.created_at, last.id)
            });
        Ok(Response::new(pb::ListCampaignsResponse {
            campaigns: rows.into_iter().map(Into::into).collect(),
            next_page_token,
        }))
    }

    async fn update_campaign(
        &self,
        request: Request<pb::UpdateCampaignRequest>,
    ) -> Result<Response<pb::UpdateCampaignResponse>, Status> {
        let ctx = tenant_context(&request)?.clone();
        let req = request.into_inner();
        let campaign = req
            .campaign
            .ok_or_else(|| ApiError::invalid("campaign", "is required"))?;
        let mut v = Violations::new();
        let id = v.check(parse_id("campaign.id", &campaign.id));
        let fields = mask_fields(req.update_mask.as_ref(), MUTABLE, IMMUTABLE, &mut v);
        let c = changes(&campaign, &fields, false, &mut v);
        v.finish()?;
        let id = id.ok_or_else(not_found)?;

        // One UPDATE ... RETURNING: another tenant's row is invisible to it,
        // so it matches nothing, exactly like a missing id.
        let updated: Vec<CampaignRow> = self
            .db
            .scoped_load(
                &ctx,
                diesel::update(campaigns::table.filter(campaigns::id.eq(id)))
                    .set((c, campaigns::updated_at.eq(diesel::dsl::now)))
                    .returning(CampaignRow::as_returning()),
            )
            .await
            .map_err(|e| write_error(e, duplicate, not_found, invalid_times))?;
        let updated = updated.into_iter().next().ok_or_else(not_found)?;
        Ok(Response::new(pb::UpdateCampaignResponse {
            campaign: Some(updated.into()),
        }))
    }

    async fn delete_campaign(
        &self,
        request: Request<pb::DeleteCampaignRequest>,
    ) -> Result<Response<pb::DeleteCampaignResponse>, Status> {
        let ctx = tenant_context(&request)?.clone();
        let id = parse_id("id", &request.get_ref().id)?;
        // The foreign keys cascade to the campaign's ad sets and their ads.
        let deleted = self
            .db
            .scoped_execute(
                &ctx,
                diesel::delete(campaigns::table.filter(campaigns::id.eq(id))),
            )
            .await
            .map_err(ApiError::from)?;
        if deleted == 0 {
            return Err(not_found().into());
        }
        Ok(Response::new(pb::DeleteCampaignResponse {}))
    }
}

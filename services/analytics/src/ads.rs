//! `adscope.analytics.v1.AdService`.

use adscope_db::Database;
use adscope_db::schema::ads;
use adscope_proto::analytics::v1 as pb;
use adscope_tenancy::tenant_context;
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::campaigns::parse_id;
use crate::convert::{
    http_url, json_or_empty, mask_fields, status_name, status_of, text, timestamp, to_struct,
};
use crate::error::{ApiError, Violations, write_error};
use crate::pagination::{self, Order};

/// Ad handlers over the tenant-scoped pool.
#[derive(Debug, Clone)]
pub struct Ads {
    db: Database,
}

impl Ads {
    pub fn new(db: Database) -> Self {
        Ads { db }
    }
}

#[derive(Debug, Queryable, Selectable)]
#[diesel(table_name = ads)]
struct AdRow {
    id: Uuid,
    ad_set_id: Uuid,
    external_id: String,
    name: String,
    status: String,
    creative: serde_json::Value,
    preview_url: String,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

/// The validated values of the fields a create or update writes.
#[derive(Debug, Default, AsChangeset)]
#[diesel(table_name = ads)]
struct AdChanges {
    external_id: Option<String>,
    name: Option<String>,
    status: Option<String>,
    creative: Option<serde_json::Value>,
    preview_url: Option<String>,
}

const MUTABLE: &[&str] = &["external_id", "name", "status", "creative", "preview_url"];
const IMMUTABLE: &[&str] = &["id", "ad_set_id", "create_time", "update_time"];

impl From<AdRow> for pb::Ad {
    fn from(row: AdRow) -> Self {
        pb::Ad {
            id: row.id.to_string(),
            ad_set_id: row.ad_set_id.to_string(),
            external_id: row.external_id,
            name: row.name,
            status: status_of(&row.status),
            creative: Some(to_struct(&row.creative)),
            preview_url: row.preview_url,
            create_time: Some(timestamp(row.created_at)),
            update_time: Some(timestamp(row.updated_at)),
        }
    }
}

fn changes(ad: &pb::Ad, fields: &[&str], creating: bool, v: &mut Violations) -> AdChanges {
    let mut out = AdChanges::default();
    for field in fields {
        match *field {
            "external_id" => {
                out.external_id = v.check(text("ad.external_id", &ad.external_id, 128, true));
            }
            "name" => out.name = v.check(text("ad.name", &ad.name, 256, true)),
            "status" => match status_name(ad.status()) {
                Some(s) => out.status = Some(s.to_owned()),
                None if creating => out.status = Some("active".to_owned()),
                None => v.add("ad.status", "must be set when it is updated"),
            },
            "creative" => out.creative = Some(json_or_empty(ad.creative.as_ref())),
            "preview_url" => {
                out.preview_url = v.check(http_url("ad.preview_url", &ad.preview_url, 2048));
            }
            _ => {}
        }
    }
    out
}

fn duplicate() -> ApiError {
    ApiError::AlreadyExists("an ad with this external_id already exists".into())
}

fn not_found() -> ApiError {
    ApiError::NotFound("ad")
}

/// The parent ad set: missing and another tenant's read the same.
fn ad_set_not_found() -> ApiError {
    ApiError::NotFound("ad set")
}

fn constraint() -> ApiError {
    ApiError::invalid("ad", "violates a constraint")
}

#[tonic::async_trait]
impl pb::ad_service_server::AdService for Ads {
    async fn create_ad(
        &self,
        request: Request<pb::CreateAdRequest>,
    ) -> Result<Response<pb::CreateAdResponse>, Status> {
        let ctx = tenant_context(&request)?.clone();
        let ad = request
            .into_inner()
            .ad
            .ok_or_else(|| ApiError::invalid("ad", "is required"))?;
        let mut v = Violations::new();
        let ad_set_id = v.check(parse_id("ad.ad_set_id", &ad.ad_set_id));
        let c = changes(&ad, MUTABLE, true, &mut v);
        v.finish()?;
        let ad_set_id = ad_set_id.ok_or_else(ad_set_not_found)?;

        // The composite foreign key admits only an ad set of this tenant.
        let created: Vec<AdRow> = self
            .db
            .scoped_load(
                &ctx,
                diesel::insert_into(ads::table)
                    .values((
                        ads::tenant_id.eq(*ctx.tenant_id().as_uuid()),
                        ads::ad_set_id.eq(ad_set_id),
                        ads::external_id.eq(c.external_id.unwrap_or_default()),
                        ads::name.eq(c.name.unwrap_or_default()),
                        ads::status.eq(c.status.unwrap_or_default()),
                        ads::creative.eq(c.creative.unwrap_or_default()),
                        ads::preview_url.eq(c.preview_url.unwrap_or_default()),
                    ))
                    .returning(AdRow::as_returning()),
            )
            .await
            .map_err(|e| write_error(e, duplicate, ad_set_not_found, constraint))?;
        let created = created.into_iter().next().ok_or_else(not_found)?;
        Ok(Response::new(pb::CreateAdResponse {
            ad: Some(created.into()),
        }))
    }

    async fn get_ad(
        &self,
        request: Request<pb::GetAdRequest>,
    ) -> Result<Response<pb::GetAdResponse>, Status> {
        let ctx = tenant_context(&request)?.clone();
        let id = parse_id("id", &request.get_ref().id)?;
        let found: Vec<AdRow> = self
            .db
            .scoped_load(
                &ctx,
                ads::table
                    .filter(ads::id.eq(id))
                    .select(AdRow::as_select())
                    .limit(1),
            )
            .await
            .map_err(ApiError::from)?;
        let ad = found.into_iter().next().ok_or_else(not_found)?;
        Ok(Response::new(pb::GetAdResponse {
            ad: Some(ad.into()),
        }))
    }

    async fn list_ads(
        &self,
        request: Request<pb::ListAdsRequest>,
    ) -> Result<Response<pb::ListAdsResponse>, Status> {
        let ctx = tenant_context(&request)?.clone();
        let tenant = *ctx.tenant_id().as_uuid();
        let req = request.get_ref();
        let mut v = Violations::new();
        let size = v.check(pagination::page_size(req.page_size));
        let ad_set_id = if req.ad_set_id.trim().is_empty() {
            None
        } else {
            v.check(parse_id("ad_set_id", &req.ad_set_id))
        };
        let order = match req.order_by() {
            pb::AdOrderBy::Name => Order::Name,
            pb::AdOrderBy::Unspecified | pb::AdOrderBy::CreateTime => Order::CreateTime,
        };
        let status = status_name(req.status());
        let ad_set_text = ad_set_id.map(|id| id.to_string()).unwrap_or_default();
        let query = pagination::fingerprint(&[
            "ads",
            &ad_set_text,
            status.unwrap_or(""),
            order.as_str(),
            if req.descending { "desc" } else { "asc" },
        ]);
        let cursor = pagination::cursor(&mut v, &req.page_token, tenant, query, order);
        v.finish()?;
        let size = size.unwrap_or(pagination::DEFAULT_PAGE_SIZE);

        let mut q = ads::table.select(AdRow::as_select()).into_boxed();
        if let Some(ad_set_id) = ad_set_id {
            q = q.filter(ads::ad_set_id.eq(ad_set_id));
        }
        if let Some(status) = status {
            q = q.filter(ads::status.eq(status));
        }
        if let Some(cursor) = &cursor {
            q = q.filter(cursor.condition("ads", req.descending));
        }
        q = match (order, req.descending) {
            (Order::Name, false) => q.order((ads::name.asc(), ads::id.asc())),
            (Order::Name, true) => q.order((ads::name.desc(), ads::id.desc())),
            (Order::CreateTime, false) => q.order((ads::created_at.asc(), ads::id.asc())),
            (Order::CreateTime, true) => q.order((ads::created_at.desc(), ads::id.desc())),
        };
        let mut rows: Vec<AdRow> = self
            .db
            .scoped_load(&ctx, q.limit(size + 1))
            .await
            .map_err(ApiError::from)?;
        let next_page_token =
            pagination::next_page_token(&mut rows, size, tenant, query, order, |last| {
                (&last.name, last.created_at, last.id)
            });
        Ok(Response::new(pb::ListAdsResponse {
            ads: rows.into_iter().map(Into::into).collect(),
            next_page_token,
        }))
    }

    async fn update_ad(
        &self,
        request: Request<pb::UpdateAdRequest>,
    ) -> Result<Response<pb::UpdateAdResponse>, Status> {
        let ctx = tenant_context(&request)?.clone();
        let req = request.into_inner();
        let ad = req
            .ad
            .ok_or_else(|| ApiError::invalid("ad", "is required"))?;
        let mut v = Violations::new();
        let id = v.check(parse_id("ad.id", &ad.id));
        let fields = mask_fields(req.update_mask.as_ref(), MUTABLE, IMMUTABLE, &mut v);
        let c = changes(&ad, &fields, false, &mut v);
        v.finish()?;
        let id = id.ok_or_else(not_found)?;

        let updated: Vec<AdRow> = self
            .db
            .scoped_load(
                &ctx,
                diesel::update(ads::table.filter(ads::id.eq(id)))
                    .set((c, ads::updated_at.eq(diesel::dsl::now)))
                    .returning(AdRow::as_returning()),
            )
            .await
            .map_err(|e| write_error(e, duplicate, not_found, constraint))?;
        let updated = updated.into_iter().next().ok_or_else(not_found)?;
        Ok(Response::new(pb::UpdateAdResponse {
            ad: Some(updated.into()),
        }))
    }

    async fn delete_ad(
        &self,
        request: Request<pb::DeleteAdRequest>,
    ) -> Result<Response<pb::DeleteAdResponse>, Status> {
        let ctx = tenant_context(&request)?.clone();
        let id = parse_id("id", &request.get_ref().id)?;
        let deleted = self
            .db
            .scoped_execute(&ctx, diesel::delete(ads::table.filter(ads::id.eq(id))))
            .await
            .map_err(ApiError::from)?;
        if deleted == 0 {
            return Err(not_found().into());
        }
        Ok(Response::new(pb::DeleteAdResponse {}))
    }
}

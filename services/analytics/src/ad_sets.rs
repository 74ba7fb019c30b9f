//! `adscope.analytics.v1.AdSetService`.

use adscope_db::Database;
use adscope_db::schema::ad_sets;
use adscope_proto::analytics::v1 as pb;
use adscope_tenancy::tenant_context;
use chrono::{DateTime, Utc};
use diesel::dsl::{AsExprOf, sql};
use diesel::expression::{SqlLiteral, UncheckedBind};
use diesel::prelude::*;
use diesel::sql_types::{Nullable, Numeric, Text};
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::campaigns::parse_id;
use crate::convert::{
    decimal, decimal_text, json_or_empty, mask_fields, optional_time, status_name, status_of, text,
    timestamp, to_struct,
};
use crate::error::{ApiError, Violations, write_error};
use crate::pagination::{self, Order};

/// Ad set handlers over the tenant-scoped pool.
#[derive(Debug, Clone)]
pub struct AdSets {
    db: Database,
}

impl AdSets {
    pub fn new(db: Database) -> Self {
        AdSets { db }
    }
}

/// `numeric(18, 4)`: 14 digits before the point, 4 after.
const BUDGET_PRECISION: usize = 18;
const BUDGET_SCALE: usize = 4;

#[derive(Debug, Queryable, Selectable)]
#[diesel(table_name = ad_sets)]
struct AdSetRow {
    id: Uuid,
    campaign_id: Uuid,
    external_id: String,
    name: String,
    status: String,
    bid_strategy: String,
    // Read as text: the amount never passes through a float.
    #[diesel(select_expression = sql::<Nullable<Text>>("ad_sets.daily_budget::text"))]
    #[diesel(select_expression_type = SqlLiteral<Nullable<Text>>)]
    daily_budget: Option<String>,
    start_time: Option<DateTime<Utc>>,
    end_time: Option<DateTime<Utc>>,
    targeting: serde_json::Value,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

/// The budget written as text and cast by the database, so no decimal type
/// is needed on this side.
type BudgetExpr = SqlLiteral<
    Nullable<Numeric>,
    UncheckedBind<SqlLiteral<Nullable<Numeric>>, AsExprOf<Option<String>, Nullable<Text>>>,
>;

fn budget_expr(value: Option<String>) -> BudgetExpr {
    sql::<Nullable<Numeric>>("CAST(")
        .bind::<Nullable<Text>, _>(value)
        .sql(" AS numeric)")
}

/// The validated values of the fields a create or update writes (the
/// budget travels separately, as text); `None` leaves a column alone.
#[derive(Debug, Default, AsChangeset)]
#[diesel(table_name = ad_sets)]
struct AdSetChanges {
    external_id: Option<String>,
    name: Option<String>,
    status: Option<String>,
    bid_strategy: Option<String>,
    start_time: Option<Option<DateTime<Utc>>>,
    end_time: Option<Option<DateTime<Utc>>>,
    targeting: Option<serde_json::Value>,
}

const MUTABLE: &[&str] = &[
    "external_id",
    "name",
    "status",
    "bid_strategy",
    "daily_budget",
    "start_time",
    "end_time",
    "targeting",
];
const IMMUTABLE: &[&str] = &["id", "campaign_id", "create_time", "update_time"];

impl From<AdSetRow> for pb::AdSet {
    fn from(row: AdSetRow) -> Self {
        pb::AdSet {
            id: row.id.to_string(),
            campaign_id: row.campaign_id.to_string(),
            external_id: row.external_id,
            name: row.name,
            status: status_of(&row.status),
            bid_strategy: row.bid_strategy,
            daily_budget: row
                .daily_budget
                .as_deref()
                .map(decimal_text)
                .unwrap_or_default(),
            start_time: row.start_time.map(timestamp),
            end_time: row.end_time.map(timestamp),
            targeting: Some(to_struct(&row.targeting)),
            create_time: Some(timestamp(row.created_at)),
            update_time: Some(timestamp(row.updated_at)),
        }
    }
}

/// Validates the `fields` of `ad_set`; the budget comes back apart
/// (`Some(None)` clears it).
fn changes(
    ad_set: &pb::AdSet,
    fields: &[&str],
    creating: bool,
    v: &mut Violations,
) -> (AdSetChanges, Option<Option<String>>) {
    let mut out = AdSetChanges::default();
    let mut budget = None;
    for field in fields {
        match *field {
            "external_id" => {
                out.external_id =
                    v.check(text("ad_set.external_id", &ad_set.external_id, 128, true));
            }
            "name" => out.name = v.check(text("ad_set.name", &ad_set.name, 256, true)),
            "status" => match status_name(ad_set.status()) {
                Some(s) => out.status = Some(s.to_owned()),
                None if creating => out.status = Some("active".to_owned()),
                None => v.add("ad_set.status", "must be set when it is updated"),
            },
            "bid_strategy" => {
                out.bid_strategy = v.check(text(
                    "ad_set.bid_strategy",
                    &ad_set.bid_strategy,
                    128,
                    false,
                ));
            }
            "daily_budget" => {
                budget = v.check(decimal(
                    "ad_set.daily_budget",
                    &ad_set.daily_budget,
                    BUDGET_PRECISION,
                    BUDGET_SCALE,
                ));
            }
            "start_time" => {
                out.start_time = v.check(optional_time(
                    "ad_set.start_time",
                    ad_set.start_time.as_ref(),
                ));
            }
            "end_time" => {
                out.end_time = v.check(optional_time("ad_set.end_time", ad_set.end_time.as_ref()));
            }
            "targeting" => out.targeting = Some(json_or_empty(ad_set.targeting.as_ref())),
            _ => {}
        }
    }
    if let (Some(Some(start)), Some(Some(end))) = (out.start_time, out.end_time)
        && start >= end
    {
        v.add("ad_set.end_time", "must be after start_time");
    }
    (out, budget)
}

fn duplicate() -> ApiError {
    ApiError::AlreadyExists("an ad set with this external_id already exists".into())
}

fn not_found() -> ApiError {
    ApiError::NotFound("ad set")
}

/// The parent campaign: missing and another tenant's read the same.
fn campaign_not_found() -> ApiError {
    ApiError::NotFound("campaign")
}

/// The only check a validated write can still break: an update moving one
/// end of the schedule past the stored other end.
fn schedule_conflict() -> ApiError {
    ApiError::invalid(
        "ad_set.end_time",
        "must be after start_time (including the stored value of the field not updated)",
    )
}

#[tonic::async_trait]
impl pb::ad_set_service_server::AdSetService for AdSets {
    async fn create_ad_set(
        &self,
        request: Request<pb::CreateAdSetRequest>,
    ) -> Result<Response<pb::CreateAdSetResponse>, Status> {
        let ctx = tenant_context(&request)?.clone();
        let ad_set = request
            .into_inner()
            .ad_set
            .ok_or_else(|| ApiError::invalid("ad_set", "is required"))?;
        let mut v = Violations::new();
        let campaign_id = v.check(parse_id("ad_set.campaign_id", &ad_set.campaign_id));
        let (c, budget) = changes(&ad_set, MUTABLE, true, &mut v);
        v.finish()?;
        let campaign_id = campaign_id.ok_or_else(campaign_not_found)?;

        // The composite foreign key (tenant_id, campaign_id) admits only a
        // campaign of this tenant: any other id fails it, the same way.
        let created: Vec<AdSetRow> = self
            .db
            .scoped_load(
                &ctx,
                diesel::insert_into(ad_sets::table)
                    .values((
                        ad_sets::tenant_id.eq(*ctx.tenant_id().as_uuid()),
                        ad_sets::campaign_id.eq(campaign_id),
                        ad_sets::external_id.eq(c.external_id.unwrap_or_default()),
                        ad_sets::name.eq(c.name.unwrap_or_default()),
                        ad_sets::status.eq(c.status.unwrap_or_default()),
                        ad_sets::bid_strategy.eq(c.bid_strategy.unwrap_or_default()),
                        ad_sets::daily_budget.eq(budget_expr(budget.flatten())),
                        ad_sets::start_time.eq(c.start_time.flatten()),
                        ad_sets::end_time.eq(c.end_time.flatten()),
                        ad_sets::targeting.eq(c.targeting.unwrap_or_default()),
                    ))
                    .returning(AdSetRow::as_returning()),
            )
            .await
            .map_err(|e| write_error(e, duplicate, campaign_not_found, schedule_conflict))?;
        let created = created.into_iter().next().ok_or_else(not_found)?;
        Ok(Response::new(pb::CreateAdSetResponse {
            ad_set: Some(created.into()),
        }))
    }

    async fn get_ad_set(
        &self,
        request: Request<pb::GetAdSetRequest>,
    ) -> Result<Response<pb::GetAdSetResponse>, Status> {
        let ctx = tenant_context(&request)?.clone();
        let id = parse_id("id", &request.get_ref().id)?;
        let found: Vec<AdSetRow> = self
            .db
            .scoped_load(
                &ctx,
                ad_sets::table
                    .filter(ad_sets::id.eq(id))
                    .select(AdSetRow::as_select())
                    .limit(1),
            )
            .await
            .map_err(ApiError::from)?;
        let ad_set = found.into_iter().next().ok_or_else(not_found)?;
        Ok(Response::new(pb::GetAdSetResponse {
            ad_set: Some(ad_set.into()),
        }))
    }

    async fn list_ad_sets(
        &self,
        request: Request<pb::ListAdSetsRequest>,
    ) -> Result<Response<pb::ListAdSetsResponse>, Status> {
        let ctx = tenant_context(&request)?.clone();
        let tenant = *ctx.tenant_id().as_uuid();
        let req = request.get_ref();
        let mut v = Violations::new();
        let size = v.check(pagination::page_size(req.page_size));
        let campaign_id = if req.campaign_id.trim().is_empty() {
            None
        } else {
            v.check(parse_id("campaign_id", &req.campaign_id))
        };
        let order = match req.order_by() {
            pb::AdSetOrderBy::Name => Order::Name,
            pb::AdSetOrderBy::Unspecified | pb::AdSetOrderBy::CreateTime => Order::CreateTime,
        };
        let status = status_name(req.status());
        let campaign_text = campaign_id.map(|id| id.to_string()).unwrap_or_default();
        let query = pagination::fingerprint(&[
            "ad_sets",
            &campaign_text,
            status.unwrap_or(""),
            order.as_str(),
            if req.descending { "desc" } else { "asc" },
        ]);
        let cursor = pagination::cursor(&mut v, &req.page_token, tenant, query, order);
        v.finish()?;
        let size = size.unwrap_or(pagination::DEFAULT_PAGE_SIZE);

        let mut q = ad_sets::table.select(AdSetRow::as_select()).into_boxed();
        if let Some(campaign_id) = campaign_id {
            q = q.filter(ad_sets::campaign_id.eq(campaign_id));
        }
        if let Some(status) = status {
            q = q.filter(ad_sets::status.eq(status));
        }
        if let Some(cursor) = &cursor {
            q = q.filter(cursor.condition("ad_sets", req.descending));
        }
        q = match (order, req.descending) {
            (Order::Name, false) => q.order((ad_sets::name.asc(), ad_sets::id.asc())),
            (Order::Name, true) => q.order((ad_sets::name.desc(), ad_sets::id.desc())),
            (Order::CreateTime, false) => q.order((ad_sets::created_at.asc(), ad_sets::id.asc())),
            (Order::CreateTime, true) => q.order((ad_sets::created_at.desc(), ad_sets::id.desc())),
        };
        let mut rows: Vec<AdSetRow> = self
            .db
            .scoped_load(&ctx, q.limit(size + 1))
            .await
            .map_err(ApiError::from)?;
        let next_page_token =
            pagination::next_page_token(&mut rows, size, tenant, query, order, |last| {
                (&last.name, last.created_at, last.id)
            });
        Ok(Response::new(pb::ListAdSetsResponse {
            ad_sets: rows.into_iter().map(Into::into).collect(),
            next_page_token,
        }))
    }

    async fn update_ad_set(
        &self,
        request: Request<pb::UpdateAdSetRequest>,
    ) -> Result<Response<pb::UpdateAdSetResponse>, Status> {
        let ctx = tenant_context(&request)?.clone();
        let req = request.into_inner();
        let ad_set = req
            .ad_set
            .ok_or_else(|| ApiError::invalid("ad_set", "is required"))?;
        let mut v = Violations::new();
        let id = v.check(parse_id("ad_set.id", &ad_set.id));
        let fields = mask_fields(req.update_mask.as_ref(), MUTABLE, IMMUTABLE, &mut v);
        let (c, budget) = changes(&ad_set, &fields, false, &mut v);
        v.finish()?;
        let id = id.ok_or_else(not_found)?;

        let updated: Vec<AdSetRow> = self
            .db
            .scoped_load(
                &ctx,
                diesel::update(ad_sets::table.filter(ad_sets::id.eq(id)))
                    .set((
                        c,
                        budget.map(|b| ad_sets::daily_budget.eq(budget_expr(b))),
                        ad_sets::updated_at.eq(diesel::dsl::now),
                    ))
                    .returning(AdSetRow::as_returning()),
            )
            .await
            .map_err(|e| write_error(e, duplicate, not_found, schedule_conflict))?;
        let updated = updated.into_iter().next().ok_or_else(not_found)?;
        Ok(Response::new(pb::UpdateAdSetResponse {
            ad_set: Some(updated.into()),
        }))
    }

    async fn delete_ad_set(
        &self,
        request: Request<pb::DeleteAdSetRequest>,
    ) -> Result<Response<pb::DeleteAdSetResponse>, Status> {
        let ctx = tenant_context(&request)?.clone();
        let id = parse_id("id", &request.get_ref().id)?;
        // The foreign key cascades to the ad set's ads.
        let deleted = self
            .db
            .scoped_execute(
                &ctx,
                diesel::delete(ad_sets::table.filter(ad_sets::id.eq(id))),
            )
            .await
            .map_err(ApiError::from)?;
        if deleted == 0 {
            return Err(not_found().into());
        }
        Ok(Response::new(pb::DeleteAdSetResponse {}))
    }
}

//! Aggregation of performance records into metrics rows, in SQL.
//!
//! One statement per query: `GROUPING SETS ((key, label), ())` yields the
//! series and the totals together, and every ratio is computed from the
//! sums with `NULLIF` on its denominator, so a zero denominator is NULL
//! (absent) rather than NaN, infinity or zero.

use adscope_proto::analytics::v1 as pb;
use chrono::NaiveDate;
use diesel::QueryableByName;
use diesel::pg::Pg;
use diesel::query_builder::{BoxedSqlQuery, SqlQuery};
use diesel::sql_types::{Bool, Date, Double, Int8, Nullable, Text, Uuid as SqlUuid};
use uuid::Uuid;

/// What to aggregate: the window, the record level and optional filters.
#[derive(Debug, Clone)]
pub(crate) struct MetricsQuery {
    pub(crate) start: NaiveDate,
    pub(crate) end: NaiveDate,
    pub(crate) group_by: pb::MetricsGroupBy,
    /// Stored level name: "campaign", "ad_set" or "ad".
    pub(crate) level: &'static str,
    pub(crate) source: Option<String>,
    pub(crate) campaign_id: Option<Uuid>,
    /// Stored platform name, e.g. "meta".
    pub(crate) platform: Option<String>,
}

/// The stored level name of a proto level; `None` for UNSPECIFIED.
pub(crate) fn level_name(level: pb::RecordLevel) -> Option<&'static str> {
    match level {
        pb::RecordLevel::Unspecified => None,
        pb::RecordLevel::Campaign => Some("campaign"),
        pb::RecordLevel::AdSet => Some("ad_set"),
        pb::RecordLevel::Ad => Some("ad"),
    }
}

/// The proto level of a stored level name.
pub(crate) fn level_of(name: &str) -> pb::RecordLevel {
    match name {
        "campaign" => pb::RecordLevel::Campaign,
        "ad_set" => pb::RecordLevel::AdSet,
        "ad" => pb::RecordLevel::Ad,
        _ => pb::RecordLevel::Unspecified,
    }
}

/// The level aggregated when a request leaves it unspecified: the one that
/// matches the grouping, so figures reported at several levels count once.
pub(crate) fn default_level(group_by: pb::MetricsGroupBy) -> &'static str {
    match group_by {
        pb::MetricsGroupBy::AdSet => "ad_set",
        pb::MetricsGroupBy::Ad => "ad",
        _ => "campaign",
    }
}

/// Group key and label expressions. Fixed strings only: nothing from the
/// request is ever spliced into the SQL.
fn key_and_label(group_by: pb::MetricsGroupBy) -> (&'static str, &'static str) {
    match group_by {
        pb::MetricsGroupBy::AdSet => (
            "coalesce(r.ad_set_id::text, r.ad_set_external_id)",
            "coalesce(s.name, r.ad_set_external_id)",
        ),
        pb::MetricsGroupBy::Ad => (
            "coalesce(r.ad_id::text, r.ad_external_id)",
            "coalesce(a.name, r.ad_external_id)",
        ),
        // Platform value names are PLATFORM_ + the stored name upper-cased.
        pb::MetricsGroupBy::Platform => (
            "'PLATFORM_' || upper(coalesce(c.platform, 'unspecified'))",
            "coalesce(c.platform, 'unspecified')",
        ),
        pb::MetricsGroupBy::Campaign => (
            "coalesce(r.campaign_id::text, r.campaign_external_id)",
            "coalesce(c.name, r.campaign_external_id)",
        ),
        pb::MetricsGroupBy::Day | pb::MetricsGroupBy::Unspecified => (
            "to_char(r.date, 'YYYY-MM-DD')",
            "to_char(r.date, 'YYYY-MM-DD')",
        ),
    }
}

/// The one statement computing `query`'s totals and series.
pub(crate) fn statement(query: &MetricsQuery) -> BoxedSqlQuery<'static, Pg, SqlQuery> {
    let (key, label) = key_and_label(query.group_by);
    let sql = format!(
        "SELECT grouping({key}) = 1 AS is_total,
                coalesce({key}, '') AS key,
                coalesce({label}, '') AS label,
                coalesce(sum(r.impressions), 0)::int8 AS impressions,
                coalesce(sum(r.clicks), 0)::int8 AS clicks,
                coalesce(sum(r.reach), 0)::int8 AS reach,
                coalesce(sum(r.conversions), 0)::int8 AS conversions,
                coalesce(trim_scale(sum(r.spend)), 0)::text AS spend,
                (sum(r.clicks)::numeric / nullif(sum(r.impressions), 0))::float8 AS ctr,
                (sum(r.spend) / nullif(sum(r.clicks), 0))::float8 AS cpc,
                (1000 * sum(r.spend) / nullif(sum(r.impressions), 0))::float8 AS cpm,
                (sum(r.spend) / nullif(sum(r.conversions), 0))::float8 AS cpa,
                (sum(r.conversions) / nullif(sum(r.spend), 0))::float8 AS roas
         FROM performance_records r
         LEFT JOIN campaigns c ON c.tenant_id = r.tenant_id AND c.id = r.campaign_id
         LEFT JOIN ad_sets s ON s.tenant_id = r.tenant_id AND s.id = r.ad_set_id
         LEFT JOIN ads a ON a.tenant_id = r.tenant_id AND a.id = r.ad_id
         WHERE r.date BETWEEN $1 AND $2
           AND r.level = $3
           AND ($4::text IS NULL OR r.source = $4)
           AND ($5::uuid IS NULL OR r.campaign_id = $5)
           AND ($6::text IS NULL OR c.platform = $6)
         GROUP BY GROUPING SETS (({key}, {label}), ())
         ORDER BY 1 DESC, 2, 3"
    );
    diesel::sql_query(sql)
        .into_boxed()
        .bind::<Date, _>(query.start)
        .bind::<Date, _>(query.end)
        .bind::<Text, _>(query.level)
        .bind::<Nullable<Text>, _>(query.source.clone())
        .bind::<Nullable<SqlUuid>, _>(query.campaign_id)
        .bind::<Nullable<Text>, _>(query.platform.clone())
}

/// One row of [`statement`].
#[derive(Debug, QueryableByName)]
pub(crate) struct MetricsSqlRow {
    #[diesel(sql_type = Bool)]
    is_total: bool,
    #[diesel(sql_type = Text)]
    key: String,
    #[diesel(sql_type = Text)]
    label: String,
    #[diesel(sql_type = Int8)]
    impressions: i64,
    #[diesel(sql_type = Int8)]
    clicks: i64,
    #[diesel(sql_type = Int8)]
    reach: i64,
    #[diesel(sql_type = Int8)]
    conversions: i64,
    #[diesel(sql_type = Text)]
    spend: String,
    #[diesel(sql_type = Nullable<Double>)]
    ctr: Option<f64>,
    #[diesel(sql_type = Nullable<Double>)]
    cpc: Option<f64>,
    #[diesel(sql_type = Nullable<Double>)]
    cpm: Option<f64>,
    #[diesel(sql_type = Nullable<Double>)]
    cpa: Option<f64>,
    #[diesel(sql_type = Nullable<Double>)]
    roas: Option<f64>,
}

/// Splits the statement's rows into totals and the ordered series.
pub(crate) fn assemble(rows: Vec<MetricsSqlRow>) -> (pb::MetricsRow, Vec<pb::MetricsRow>) {
    let mut totals = None;
    let mut series = Vec::with_capacity(rows.len());
    for row in rows {
        let is_total = row.is_total;
        let mut message = pb::MetricsRow {
            key: row.key,
            label: row.label,
            impressions: row.impressions,
            clicks: row.clicks,
            reach: row.reach,
            conversions: row.conversions,
            spend: row.spend,
            ctr: row.ctr,
            cpc: row.cpc,
            cpm: row.cpm,
            cpa: row.cpa,
            roas: row.roas,
        };
        if is_total {
            message.key.clear();
            message.label.clear();
            totals = Some(message);
        } else {
            series.push(message);
        }
    }
    let totals = totals.unwrap_or_else(|| pb::MetricsRow {
        spend: "0".into(),
        ..Default::default()
    });
    (totals, series)
}

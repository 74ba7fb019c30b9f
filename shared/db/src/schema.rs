//! diesel table definitions for the tables migrations create.

diesel::table! {
    tenants (id) {
        id -> Uuid,
        name -> Text,
        status -> Text,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    campaigns (tenant_id, id) {
        tenant_id -> Uuid,
        id -> Uuid,
        external_id -> Text,
        name -> Text,
        platform -> Text,
        account_external_id -> Text,
        status -> Text,
        objective -> Text,
        currency -> Text,
        metadata -> Jsonb,
        platform_created_at -> Nullable<Timestamptz>,
        platform_updated_at -> Nullable<Timestamptz>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    ad_sets (tenant_id, id) {
        tenant_id -> Uuid,
        id -> Uuid,
        campaign_id -> Uuid,
        external_id -> Text,
        name -> Text,
        status -> Text,
        bid_strategy -> Text,
        daily_budget -> Nullable<Numeric>,
        start_time -> Nullable<Timestamptz>,
        end_time -> Nullable<Timestamptz>,
        targeting -> Jsonb,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    ads (tenant_id, id) {
        tenant_id -> Uuid,
        id -> Uuid,
        ad_set_id -> Uuid,
        external_id -> Text,
        name -> Text,
        status -> Text,
        creative -> Jsonb,
        preview_url -> Text,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    connections (tenant_id, id) {
        tenant_id -> Uuid,
        id -> Uuid,
        name -> Text,
        provider -> Text,
        airbyte_connection_id -> Uuid,
        workspace_id -> Nullable<Uuid>,
        schedule_kind -> Text,
        schedule_interval_minutes -> Nullable<Int4>,
        schedule_cron -> Nullable<Text>,
        active -> Bool,
        last_job_id -> Nullable<Int8>,
        last_job_status -> Nullable<Text>,
        last_job_started_at -> Nullable<Timestamptz>,
        last_job_ended_at -> Nullable<Timestamptz>,
        last_error -> Nullable<Text>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

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

diesel::table! {
    performance_records (tenant_id, id) {
        tenant_id -> Uuid,
        id -> Uuid,
        date -> Date,
        level -> Text,
        source -> Text,
        external_id -> Text,
        campaign_external_id -> Text,
        ad_set_external_id -> Text,
        ad_external_id -> Text,
        campaign_id -> Nullable<Uuid>,
        ad_set_id -> Nullable<Uuid>,
        ad_id -> Nullable<Uuid>,
        impressions -> Int8,
        reach -> Int8,
        clicks -> Int8,
        conversions -> Int8,
        spend -> Numeric,
        currency -> Text,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    snapshots (tenant_id, source) {
        tenant_id -> Uuid,
        source -> Text,
        payload -> Jsonb,
        generated_at -> Timestamptz,
    }
}

diesel::table! {
    data_keys (tenant_id, version) {
        tenant_id -> Uuid,
        version -> Int4,
        wrapped_key -> Bytea,
        kek_id -> Text,
        status -> Text,
        created_at -> Timestamptz,
        retired_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    credentials (tenant_id, id) {
        tenant_id -> Uuid,
        id -> Uuid,
        provider -> Text,
        account_id -> Text,
        ciphertext -> Bytea,
        nonce -> Bytea,
        key_version -> Int4,
        expires_at -> Nullable<Timestamptz>,
        status -> Text,
        scopes -> Array<Text>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    sync_jobs (tenant_id, id) {
        tenant_id -> Uuid,
        id -> Uuid,
        connection_id -> Uuid,
        airbyte_job_id -> Int8,
        status -> Text,
        started_at -> Nullable<Timestamptz>,
        ended_at -> Nullable<Timestamptz>,
        duration_seconds -> Nullable<Int8>,
        records_synced -> Int8,
        bytes_synced -> Int8,
        error -> Nullable<Text>,
        attempts -> Int4,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    job_leases (tenant_id, job) {
        tenant_id -> Uuid,
        job -> Text,
        holder -> Uuid,
        leased_until -> Timestamptz,
        last_started_at -> Nullable<Timestamptz>,
        last_finished_at -> Nullable<Timestamptz>,
        last_succeeded_at -> Nullable<Timestamptz>,
        last_error -> Nullable<Text>,
        runs -> Int8,
    }
}

diesel::table! {
    credential_reminders (tenant_id, id) {
        tenant_id -> Uuid,
        id -> Uuid,
        credential_id -> Uuid,
        expires_at -> Timestamptz,
        created_at -> Timestamptz,
    }
}

diesel::allow_tables_to_appear_in_same_query!(data_keys, credentials);

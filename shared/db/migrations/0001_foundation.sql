-- adscope foundation: the tenant directory, the helper that protects every
-- tenant-owned table, the first tenant-owned tables of each service, the
-- narrow tenant lookups and the grants of each service role.
--
-- Runs as adscope_owner. The login roles (adscope_analytics,
-- adscope_integrations, adscope_health) and adscope_lookup are created by
-- `adscope migrate` before this file runs.

CREATE TABLE tenants (
    id         uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    name       text        NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    status     text        NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'suspended')),
    created_at timestamptz NOT NULL DEFAULT now()
);

-- A tenant may read its own directory row and nothing else.
ALTER TABLE tenants ENABLE ROW LEVEL SECURITY;
ALTER TABLE tenants FORCE ROW LEVEL SECURITY;
CREATE POLICY tenants_self ON tenants FOR SELECT
    USING (id = (SELECT nullif(current_setting('app.tenant_id', true), '')::uuid));

-- Every tenant-owned table goes through this: row-level security enabled and
-- forced (so even the owner is filtered), one policy per command, and
-- WITH CHECK on writes. With no tenant set the expression is NULL, which
-- matches no row and admits no write: closed by default. `nullif` keeps a
-- reused connection, where the ended transaction left the setting as '',
-- meaning "no tenant" rather than raising on ''::uuid.
CREATE FUNCTION adscope_protect(tbl regclass) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    name text := (SELECT relname FROM pg_class WHERE oid = tbl);
    cond text := 'tenant_id = (SELECT nullif(current_setting(''app.tenant_id'', true), '''')::uuid)';
BEGIN
    EXECUTE format('ALTER TABLE %s ENABLE ROW LEVEL SECURITY', tbl);
    EXECUTE format('ALTER TABLE %s FORCE ROW LEVEL SECURITY', tbl);
    EXECUTE format('CREATE POLICY %I ON %s FOR SELECT USING (%s)', name || '_select', tbl, cond);
    EXECUTE format('CREATE POLICY %I ON %s FOR INSERT WITH CHECK (%s)', name || '_insert', tbl, cond);
    EXECUTE format('CREATE POLICY %I ON %s FOR UPDATE USING (%s) WITH CHECK (%s)',
                   name || '_update', tbl, cond, cond);
    EXECUTE format('CREATE POLICY %I ON %s FOR DELETE USING (%s)', name || '_delete', tbl, cond);
END
$$;

-- analytics ----------------------------------------------------------------

CREATE TABLE campaigns (
    tenant_id           uuid        NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    id                  uuid        NOT NULL DEFAULT gen_random_uuid(),
    external_id         text        NOT NULL,
    name                text        NOT NULL,
    platform            text        NOT NULL,
    account_external_id text        NOT NULL DEFAULT '',
    status              text        NOT NULL,
    objective           text        NOT NULL DEFAULT '',
    currency            text        NOT NULL,
    metadata            jsonb       NOT NULL DEFAULT '{}'::jsonb,
    platform_created_at timestamptz,
    platform_updated_at timestamptz,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, external_id)
);
SELECT adscope_protect('campaigns');

CREATE TABLE ad_sets (
    tenant_id    uuid        NOT NULL,
    id           uuid        NOT NULL DEFAULT gen_random_uuid(),
    campaign_id  uuid        NOT NULL,
    external_id  text        NOT NULL,
    name         text        NOT NULL,
    status       text        NOT NULL,
    bid_strategy text        NOT NULL DEFAULT '',
    daily_budget numeric(18, 4) CHECK (daily_budget >= 0),
    start_time   timestamptz,
    end_time     timestamptz,
    targeting    jsonb       NOT NULL DEFAULT '{}'::jsonb,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, external_id),
    -- The key includes tenant_id, so an ad set can never point at another
    -- tenant's campaign, and the pair distributes on tenant_id.
    FOREIGN KEY (tenant_id, campaign_id) REFERENCES campaigns (tenant_id, id) ON DELETE CASCADE,
    CHECK (start_time IS NULL OR end_time IS NULL OR start_time < end_time)
);
CREATE INDEX ad_sets_campaign ON ad_sets (tenant_id, campaign_id);
SELECT adscope_protect('ad_sets');

CREATE TABLE ads (
    tenant_id   uuid        NOT NULL,
    id          uuid        NOT NULL DEFAULT gen_random_uuid(),
    ad_set_id   uuid        NOT NULL,
    external_id text        NOT NULL,
    name        text        NOT NULL,
    status      text        NOT NULL,
    creative    jsonb       NOT NULL DEFAULT '{}'::jsonb,
    preview_url text        NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, external_id),
    FOREIGN KEY (tenant_id, ad_set_id) REFERENCES ad_sets (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX ads_ad_set ON ads (tenant_id, ad_set_id);
SELECT adscope_protect('ads');

-- integrations ---------------------------------------------------------------

CREATE TABLE connections (
    tenant_id                 uuid        NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    id                        uuid        NOT NULL DEFAULT gen_random_uuid(),
    name                      text        NOT NULL,
    provider                  text        NOT NULL,
    airbyte_connection_id     uuid        NOT NULL,
    workspace_id              uuid,
    schedule_kind             text        NOT NULL DEFAULT 'manual'
                                          CHECK (schedule_kind IN ('manual', 'interval', 'cron')),
    schedule_interval_minutes integer     CHECK (schedule_interval_minutes > 0),
    schedule_cron             text,
    active                    boolean     NOT NULL DEFAULT true,
    last_job_id               bigint,
    last_job_status           text,
    last_job_started_at       timestamptz,
    last_job_ended_at         timestamptz,
    last_error                text,
    created_at                timestamptz NOT NULL DEFAULT now(),
    updated_at                timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, airbyte_connection_id)
);
CREATE INDEX connections_airbyte ON connections (airbyte_connection_id);
SELECT adscope_protect('connections');

-- narrow tenant lookups --------------------------------------------------------
--
-- Work that must find a tenant before it has one (a job looping over tenants,
-- a webhook naming an Airbyte connection) calls these. They run as
-- adscope_lookup, which may bypass row-level security but can read only the
-- columns granted below, and they return tenant ids and nothing else.

GRANT SELECT (id, status) ON tenants TO adscope_lookup;
GRANT SELECT (tenant_id, airbyte_connection_id) ON connections TO adscope_lookup;

CREATE FUNCTION adscope_active_tenant_ids() RETURNS SETOF uuid
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
    SELECT id FROM public.tenants WHERE status = 'active' ORDER BY id
$$;

CREATE FUNCTION adscope_connection_tenants(airbyte_connection uuid) RETURNS SETOF uuid
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
    SELECT tenant_id FROM public.connections
    WHERE airbyte_connection_id = airbyte_connection ORDER BY tenant_id
$$;

ALTER FUNCTION adscope_active_tenant_ids() OWNER TO adscope_lookup;
ALTER FUNCTION adscope_connection_tenants(uuid) OWNER TO adscope_lookup;
REVOKE ALL ON FUNCTION adscope_active_tenant_ids() FROM PUBLIC;
REVOKE ALL ON FUNCTION adscope_connection_tenants(uuid) FROM PUBLIC;
REVOKE ALL ON FUNCTION adscope_protect(regclass) FROM PUBLIC;

-- grants: each service its own tables ------------------------------------------

GRANT SELECT ON tenants TO adscope_analytics, adscope_integrations;
GRANT SELECT, INSERT, UPDATE, DELETE ON campaigns, ad_sets, ads TO adscope_analytics;
GRANT SELECT, INSERT, UPDATE, DELETE ON connections TO adscope_integrations;
GRANT EXECUTE ON FUNCTION adscope_active_tenant_ids() TO adscope_integrations;
GRANT EXECUTE ON FUNCTION adscope_connection_tenants(uuid) TO adscope_integrations;

-- The health role reads across tenants (fleet scope) and writes nothing.
GRANT SELECT ON tenants, campaigns, ad_sets, ads, connections TO adscope_health;

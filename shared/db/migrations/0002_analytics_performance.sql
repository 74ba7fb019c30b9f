-- analytics performance data: daily delivery records and the cached metrics
-- snapshots derived from them.

CREATE TABLE performance_records (
    tenant_id            uuid           NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    id                   uuid           NOT NULL DEFAULT gen_random_uuid(),
    date                 date           NOT NULL,
    level                text           NOT NULL CHECK (level IN ('campaign', 'ad_set', 'ad')),
    source               text           NOT NULL CHECK (source <> ''),
    external_id          text           NOT NULL CHECK (external_id <> ''),
    campaign_external_id text           NOT NULL DEFAULT '',
    ad_set_external_id   text           NOT NULL DEFAULT '',
    ad_external_id       text           NOT NULL DEFAULT '',
    -- Links to the tenant's own entities, resolved by external id at ingest.
    -- The keys include tenant_id, so a record can never point at another
    -- tenant's entity. Deleting the entity clears only the link column: a
    -- plain SET NULL would also null tenant_id, which is part of the key.
    campaign_id          uuid,
    ad_set_id            uuid,
    ad_id                uuid,
    impressions          bigint         NOT NULL DEFAULT 0 CHECK (impressions >= 0),
    reach                bigint         NOT NULL DEFAULT 0 CHECK (reach >= 0),
    clicks               bigint         NOT NULL DEFAULT 0 CHECK (clicks >= 0),
    conversions          bigint         NOT NULL DEFAULT 0 CHECK (conversions >= 0),
    spend                numeric(20, 6) NOT NULL DEFAULT 0 CHECK (spend >= 0),
    currency             text           NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    created_at           timestamptz    NOT NULL DEFAULT now(),
    updated_at           timestamptz    NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, source, external_id, date, level),
    FOREIGN KEY (tenant_id, campaign_id) REFERENCES campaigns (tenant_id, id)
        ON DELETE SET NULL (campaign_id),
    FOREIGN KEY (tenant_id, ad_set_id) REFERENCES ad_sets (tenant_id, id)
        ON DELETE SET NULL (ad_set_id),
    FOREIGN KEY (tenant_id, ad_id) REFERENCES ads (tenant_id, id)
        ON DELETE SET NULL (ad_id)
);
-- Date-range scans (listing, metrics, snapshots) and the keyset order of
-- ListRecords: date, then external id, then id.
CREATE INDEX performance_records_date
    ON performance_records (tenant_id, date, external_id, id);
CREATE INDEX performance_records_campaign
    ON performance_records (tenant_id, campaign_id, date) WHERE campaign_id IS NOT NULL;
CREATE INDEX performance_records_ad_set
    ON performance_records (tenant_id, ad_set_id) WHERE ad_set_id IS NOT NULL;
CREATE INDEX performance_records_ad
    ON performance_records (tenant_id, ad_id) WHERE ad_id IS NOT NULL;
SELECT adscope_protect('performance_records');

-- One cached metrics payload per tenant and source ('' = every source).
CREATE TABLE snapshots (
    tenant_id    uuid        NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    source       text        NOT NULL,
    payload      jsonb       NOT NULL,
    generated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, source)
);
SELECT adscope_protect('snapshots');

GRANT SELECT, INSERT, UPDATE, DELETE ON performance_records, snapshots TO adscope_analytics;
GRANT SELECT ON performance_records, snapshots TO adscope_health;

-- Keyset pagination of the resource lists: (tenant, ordering column, id).
CREATE INDEX campaigns_keyset_created ON campaigns (tenant_id, created_at, id);
CREATE INDEX campaigns_keyset_name    ON campaigns (tenant_id, name, id);
CREATE INDEX ad_sets_keyset_created   ON ad_sets (tenant_id, created_at, id);
CREATE INDEX ad_sets_keyset_name      ON ad_sets (tenant_id, name, id);
CREATE INDEX ads_keyset_created       ON ads (tenant_id, created_at, id);
CREATE INDEX ads_keyset_name          ON ads (tenant_id, name, id);

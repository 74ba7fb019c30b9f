-- Sync jobs of Airbyte connections and the bookkeeping of the background
-- scheduler. Every table is tenant-owned: tenant first in the key, forced
-- row-level security, grants to integrations and read-only to health.

CREATE TABLE sync_jobs (
    tenant_id        uuid        NOT NULL,
    id               uuid        NOT NULL DEFAULT gen_random_uuid(),
    connection_id    uuid        NOT NULL,
    airbyte_job_id   bigint      NOT NULL,
    status           text        NOT NULL
                                 CHECK (status IN ('pending', 'running', 'succeeded', 'failed',
                                                   'cancelled', 'incomplete')),
    started_at       timestamptz,
    ended_at         timestamptz,
    duration_seconds bigint      CHECK (duration_seconds >= 0),
    records_synced   bigint      NOT NULL DEFAULT 0 CHECK (records_synced >= 0),
    bytes_synced     bigint      NOT NULL DEFAULT 0 CHECK (bytes_synced >= 0),
    error            text,
    attempts         integer     NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    -- A repeated report of the same Airbyte job updates its one row.
    UNIQUE (tenant_id, connection_id, airbyte_job_id),
    FOREIGN KEY (tenant_id, connection_id) REFERENCES connections (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX sync_jobs_recent ON sync_jobs (tenant_id, created_at DESC, id DESC);
CREATE INDEX sync_jobs_open ON sync_jobs (tenant_id, status) WHERE status IN ('pending', 'running');
SELECT adscope_protect('sync_jobs');

-- One row per tenant and background job: who holds it (a replica claims it
-- by moving `leased_until` forward in one atomic upsert) and how it last went.
CREATE TABLE job_leases (
    tenant_id        uuid        NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    job              text        NOT NULL CHECK (length(job) BETWEEN 1 AND 64),
    holder           uuid        NOT NULL,
    leased_until     timestamptz NOT NULL,
    last_started_at  timestamptz,
    last_finished_at timestamptz,
    last_succeeded_at timestamptz,
    last_error       text,
    runs             bigint      NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant_id, job)
);
SELECT adscope_protect('job_leases');

-- Reminders that a platform credential expires soon, one per credential and
-- expiry, so a reminder is raised once however often the job runs.
CREATE TABLE credential_reminders (
    tenant_id     uuid        NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    id            uuid        NOT NULL DEFAULT gen_random_uuid(),
    credential_id uuid        NOT NULL,
    expires_at    timestamptz NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, credential_id, expires_at)
);
SELECT adscope_protect('credential_reminders');

GRANT SELECT, INSERT, UPDATE, DELETE ON sync_jobs, job_leases, credential_reminders
    TO adscope_integrations;
GRANT SELECT ON sync_jobs, job_leases, credential_reminders TO adscope_health;

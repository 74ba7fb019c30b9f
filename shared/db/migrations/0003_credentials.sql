-- Platform credentials sealed under per-tenant data keys (envelope
-- encryption). A data key is stored only wrapped by the key-encryption key of
-- a KMS; a credential's tokens only sealed under a data key. Nothing here is
-- readable as plaintext by anyone who can read the tables.

CREATE TABLE data_keys (
    tenant_id   uuid        NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    version     integer     NOT NULL CHECK (version > 0),
    -- nonce || AES-256-GCM ciphertext and tag of the 32-byte data key.
    wrapped_key bytea       NOT NULL,
    -- Which key-encryption key wrapped it, so the KMS provider can change.
    kek_id      text        NOT NULL CHECK (length(kek_id) BETWEEN 1 AND 200),
    status      text        NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'retired')),
    created_at  timestamptz NOT NULL DEFAULT now(),
    retired_at  timestamptz,
    PRIMARY KEY (tenant_id, version),
    CHECK ((status = 'retired') = (retired_at IS NOT NULL))
);
-- At most one key seals new credentials at any time.
CREATE UNIQUE INDEX data_keys_one_active ON data_keys (tenant_id) WHERE status = 'active';
SELECT adscope_protect('data_keys');

CREATE TABLE credentials (
    tenant_id   uuid        NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    id          uuid        NOT NULL DEFAULT gen_random_uuid(),
    provider    text        NOT NULL
                            CHECK (provider IN ('meta', 'google_ads', 'ga4', 'linkedin', 'tiktok')),
    account_id  text        NOT NULL CHECK (length(account_id) BETWEEN 1 AND 256),
    -- Access and refresh token sealed together; tag appended.
    ciphertext  bytea       NOT NULL,
    nonce       bytea       NOT NULL CHECK (length(nonce) = 12),
    key_version integer     NOT NULL,
    expires_at  timestamptz,
    status      text        NOT NULL DEFAULT 'active'
                            CHECK (status IN ('active', 'expired', 'revoked')),
    scopes      text[]      NOT NULL DEFAULT '{}',
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, provider, account_id),
    -- Includes tenant_id: a credential can only be sealed under its own
    -- tenant's key, and a key still sealing a credential cannot be deleted.
    FOREIGN KEY (tenant_id, key_version) REFERENCES data_keys (tenant_id, version)
);
CREATE INDEX credentials_key_version ON credentials (tenant_id, key_version);
CREATE INDEX credentials_expiry ON credentials (tenant_id, expires_at) WHERE expires_at IS NOT NULL;
SELECT adscope_protect('credentials');

GRANT SELECT, INSERT, UPDATE, DELETE ON data_keys, credentials TO adscope_integrations;
-- The fleet view may count credentials and see their state, never their
-- sealed tokens or account ids, and nothing of the data keys.
GRANT SELECT (tenant_id, id, provider, status, expires_at, key_version, created_at, updated_at)
    ON credentials TO adscope_health;

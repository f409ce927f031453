-- Identity sources: OpenID Connect providers end users sign in to the portal
-- with. A user (and a group) a source made is linked to it.

CREATE TABLE identity_sources (
    id                    TEXT COLLATE "C" PRIMARY KEY,
    tenant_id             TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    name                  TEXT NOT NULL,
    -- Only 'oidc' so far.
    kind                  TEXT NOT NULL,
    issuer                TEXT NOT NULL,
    client_id             TEXT NOT NULL,
    -- The client secret, sealed under the master key.
    sealed_client_secret  TEXT NOT NULL,
    scopes                TEXT NOT NULL,
    username_claim        TEXT NOT NULL,
    groups_claim          TEXT NOT NULL,
    created_at            BIGINT NOT NULL,
    UNIQUE (tenant_id, name)
);

-- Deleting a source keeps its users and groups, unlinked.
ALTER TABLE users ADD COLUMN source_id TEXT REFERENCES identity_sources(id) ON DELETE SET NULL;
-- The provider's `sub` of a linked user.
ALTER TABLE users ADD COLUMN external_subject TEXT;
CREATE UNIQUE INDEX users_external_subject ON users (source_id, external_subject);
ALTER TABLE groups ADD COLUMN source_id TEXT REFERENCES identity_sources(id) ON DELETE SET NULL;

-- Sign-ins in progress: what the callback checks, used once.
CREATE TABLE oidc_logins (
    -- SHA-256 of the `state` sent to the provider.
    id               TEXT COLLATE "C" PRIMARY KEY,
    source_id        TEXT NOT NULL REFERENCES identity_sources(id) ON DELETE CASCADE,
    nonce            TEXT NOT NULL,
    -- The PKCE verifier, sealed under the master key.
    sealed_verifier  TEXT NOT NULL,
    next             TEXT NOT NULL,
    created_at       BIGINT NOT NULL,
    expires_at       BIGINT NOT NULL
);

-- Tenants, administrator accounts, sessions, API keys, sign-in lock-outs and
-- the admin audit trail. Times are milliseconds since the Unix epoch (UTC).

CREATE TABLE tenants (
    id          TEXT COLLATE "C" PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    region      TEXT NOT NULL,
    state       TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);

CREATE TABLE accounts (
    id             TEXT COLLATE "C" PRIMARY KEY,
    tenant_id      TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    name           TEXT NOT NULL,
    role           TEXT NOT NULL,
    password_hash  TEXT NOT NULL,
    created_at     BIGINT NOT NULL,
    created_by     TEXT,
    last_login_at  BIGINT,
    failed_logins  BIGINT NOT NULL DEFAULT 0,
    locked_until   BIGINT,
    UNIQUE (tenant_id, name)
);
-- Exactly one owner per tenant (at most one here; creation makes the one).
CREATE UNIQUE INDEX accounts_one_owner ON accounts (tenant_id) WHERE role = 'owner';

CREATE TABLE sessions (
    id          TEXT COLLATE "C" PRIMARY KEY,
    tenant_id   TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    account_id  TEXT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    token_hash  TEXT NOT NULL UNIQUE,
    source_ip   TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL
);
CREATE INDEX sessions_expiry ON sessions (expires_at);

CREATE TABLE api_keys (
    id            TEXT COLLATE "C" PRIMARY KEY,
    tenant_id     TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    account_id    TEXT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    name          TEXT NOT NULL,
    role_cap      TEXT,
    secret_hash   TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    expires_at    BIGINT,
    last_used_at  BIGINT,
    revoked_at    BIGINT
);
CREATE INDEX api_keys_account ON api_keys (tenant_id, account_id, id);

CREATE TABLE address_lockouts (
    tenant_id     TEXT NOT NULL,
    address       TEXT NOT NULL,
    failures      BIGINT NOT NULL,
    window_start  BIGINT NOT NULL,
    locked_until  BIGINT,
    PRIMARY KEY (tenant_id, address)
);

CREATE TABLE audit_events (
    id            TEXT COLLATE "C" PRIMARY KEY,
    tenant_id     TEXT NOT NULL,
    time          BIGINT NOT NULL,
    actor_id      TEXT,
    actor_name    TEXT,
    actor_role    TEXT,
    on_behalf_of  TEXT,
    api_key_id    TEXT,
    source_ip     TEXT NOT NULL,
    action        TEXT NOT NULL,
    target        TEXT NOT NULL,
    result        TEXT NOT NULL,
    status        BIGINT NOT NULL,
    detail        TEXT
);
CREATE INDEX audit_events_tenant ON audit_events (tenant_id, id);

-- The audit trail is append-only: no row is ever changed or deleted.
CREATE FUNCTION audit_events_refuse_update() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'audit events are append-only';
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER audit_events_append_only BEFORE UPDATE OR DELETE ON audit_events
    FOR EACH ROW EXECUTE FUNCTION audit_events_refuse_update();

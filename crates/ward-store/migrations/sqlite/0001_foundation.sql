-- Tenants, administrator accounts, sessions, API keys, sign-in lock-outs and
-- the admin audit trail. Times are milliseconds since the Unix epoch (UTC).

CREATE TABLE tenants (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    region      TEXT NOT NULL,
    state       TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
);

CREATE TABLE accounts (
    id             TEXT PRIMARY KEY,
    tenant_id      TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    name           TEXT NOT NULL,
    role           TEXT NOT NULL,
    password_hash  TEXT NOT NULL,
    created_at     INTEGER NOT NULL,
    created_by     TEXT,
    last_login_at  INTEGER,
    failed_logins  INTEGER NOT NULL DEFAULT 0,
    locked_until   INTEGER,
    UNIQUE (tenant_id, name)
);
-- Exactly one owner per tenant (at most one here; creation makes the one).
CREATE UNIQUE INDEX accounts_one_owner ON accounts (tenant_id) WHERE role = 'owner';

CREATE TABLE sessions (
    id          TEXT PRIMARY KEY,
    tenant_id   TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    account_id  TEXT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    token_hash  TEXT NOT NULL UNIQUE,
    source_ip   TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL
);
CREATE INDEX sessions_expiry ON sessions (expires_at);

CREATE TABLE api_keys (
    id            TEXT PRIMARY KEY,
    tenant_id     TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    account_id    TEXT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    name          TEXT NOT NULL,
    role_cap      TEXT,
    secret_hash   TEXT NOT NULL,
    created_at    INTEGER NOT NULL,
    expires_at    INTEGER,
    last_used_at  INTEGER,
    revoked_at    INTEGER
);
CREATE INDEX api_keys_account ON api_keys (tenant_id, account_id, id);

CREATE TABLE address_lockouts (
    tenant_id     TEXT NOT NULL,
    address       TEXT NOT NULL,
    failures      INTEGER NOT NULL,
    window_start  INTEGER NOT NULL,
    locked_until  INTEGER,
    PRIMARY KEY (tenant_id, address)
);

CREATE TABLE audit_events (
    id            TEXT PRIMARY KEY,
    tenant_id     TEXT NOT NULL,
    time          INTEGER NOT NULL,
    actor_id      TEXT,
    actor_name    TEXT,
    actor_role    TEXT,
    on_behalf_of  TEXT,
    api_key_id    TEXT,
    source_ip     TEXT NOT NULL,
    action        TEXT NOT NULL,
    target        TEXT NOT NULL,
    result        TEXT NOT NULL,
    status        INTEGER NOT NULL,
    detail        TEXT
);
CREATE INDEX audit_events_tenant ON audit_events (tenant_id, id);

-- The audit trail is append-only: no row is ever changed or deleted.
CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events
BEGIN
    SELECT RAISE(ABORT, 'audit events are append-only');
END;
CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events
BEGIN
    SELECT RAISE(ABORT, 'audit events are append-only');
END;

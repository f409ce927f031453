-- Gateways (the operator's data-plane nodes), their one-time join codes, and
-- the access records they ship.

CREATE TABLE gateways (
    id              TEXT PRIMARY KEY,
    name            TEXT NOT NULL UNIQUE,
    token_hash      TEXT NOT NULL UNIQUE,
    addresses       TEXT NOT NULL,
    cert_not_after  INTEGER NOT NULL,
    created_at      INTEGER NOT NULL,
    last_seen_at    INTEGER NOT NULL
);

CREATE TABLE gateway_join_codes (
    id           TEXT PRIMARY KEY,
    secret_hash  TEXT NOT NULL UNIQUE,
    name         TEXT NOT NULL,
    created_by   TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL,
    used_at      INTEGER
);

-- One row per connection attempt. The id is made by the gateway, so a batch
-- shipped twice is stored once.
CREATE TABLE access_records (
    id           TEXT PRIMARY KEY,
    tenant_id    TEXT NOT NULL,
    started_ms   INTEGER NOT NULL,
    user_id      TEXT NOT NULL,
    device_id    TEXT NOT NULL,
    gateway_id   TEXT NOT NULL,
    source       TEXT NOT NULL,
    dest_host    TEXT NOT NULL,
    dest_addr    TEXT,
    port         INTEGER NOT NULL,
    protocol     TEXT NOT NULL,
    action       TEXT NOT NULL,
    rule_id      TEXT,
    reason       TEXT NOT NULL,
    bytes_up     INTEGER NOT NULL,
    bytes_down   INTEGER NOT NULL,
    duration_ms  INTEGER NOT NULL,
    end_reason   TEXT NOT NULL,
    received_at  INTEGER NOT NULL
);
CREATE INDEX access_records_tenant ON access_records (tenant_id, id);

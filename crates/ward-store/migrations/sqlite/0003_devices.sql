-- Devices: each tenant's certificate authority (its key sealed under the
-- server's master key), one-time enrolment codes, and enrolled devices.

CREATE TABLE tenant_cas (
    tenant_id    TEXT PRIMARY KEY REFERENCES tenants(id) ON DELETE CASCADE,
    cert_pem     TEXT NOT NULL,
    sealed_key   TEXT NOT NULL,
    created_at   INTEGER NOT NULL
);

CREATE TABLE enroll_codes (
    id           TEXT PRIMARY KEY,
    tenant_id    TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    user_id      TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    secret_hash  TEXT NOT NULL UNIQUE,
    created_by   TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL,
    used_at      INTEGER,
    device_id    TEXT
);

CREATE TABLE devices (
    id              TEXT PRIMARY KEY,
    tenant_id       TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    user_id         TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    name            TEXT NOT NULL,
    token_hash      TEXT NOT NULL UNIQUE,
    state           TEXT NOT NULL,
    posture         TEXT NOT NULL,
    compliant       INTEGER NOT NULL,
    cert_serial     TEXT NOT NULL,
    cert_not_after  INTEGER NOT NULL,
    enrolled_at     INTEGER NOT NULL,
    last_seen_at    INTEGER NOT NULL,
    revoked_at      INTEGER
);
CREATE INDEX devices_user ON devices (tenant_id, user_id);

-- What a tenant requires of a device for it to be compliant (JSON).
CREATE TABLE posture_requirements (
    tenant_id     TEXT PRIMARY KEY REFERENCES tenants(id) ON DELETE CASCADE,
    requirements  TEXT NOT NULL
);

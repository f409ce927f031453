-- The user portal: end users' sessions, and the enrolment requests an agent
-- makes without a code, which the device's user approves in the portal.

CREATE TABLE user_sessions (
    id          TEXT COLLATE "C" PRIMARY KEY,
    tenant_id   TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    user_id     TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL
);
CREATE INDEX user_sessions_user ON user_sessions (tenant_id, user_id);

CREATE TABLE enroll_requests (
    id           TEXT COLLATE "C" PRIMARY KEY,
    -- SHA-256 of the secret only the agent holds.
    secret_hash  TEXT NOT NULL UNIQUE,
    -- What the user types in the portal (short; unique while pending).
    user_code    TEXT NOT NULL UNIQUE,
    device_name  TEXT NOT NULL,
    source       TEXT NOT NULL,
    -- pending, approved, denied, collected.
    state        TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL,
    tenant_id    TEXT REFERENCES tenants(id) ON DELETE CASCADE,
    user_id      TEXT REFERENCES users(id) ON DELETE CASCADE,
    -- The enrolment code made on approval, sealed under the master key
    -- until the agent collects it (then cleared).
    sealed_code  TEXT,
    decided_at   BIGINT
);
CREATE INDEX enroll_requests_source ON enroll_requests (source, state);

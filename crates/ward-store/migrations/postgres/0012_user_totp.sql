-- Two-step sign-in of end users in the user portal: each user's TOTP
-- secret (sealed under the server's master key), the last time step a code
-- was accepted for (so no code is accepted twice), and its one-time recovery
-- codes (SHA-256 hashes only). Scoped by tenant like everything else.

CREATE TABLE user_totp (
    user_id        TEXT COLLATE "C" PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
    tenant_id      TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    sealed_secret  TEXT NOT NULL,
    -- NULL while enrolment waits for its first code.
    enabled_at     BIGINT,
    last_step      BIGINT NOT NULL DEFAULT 0,
    created_at     BIGINT NOT NULL
);

CREATE TABLE user_recovery_codes (
    user_id     TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    tenant_id   TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    code_hash   TEXT NOT NULL,
    PRIMARY KEY (user_id, code_hash)
);

-- Multi-factor authentication of administrator accounts: each account's TOTP
-- secret (sealed under the server's master key), the last time step a code
-- was accepted for (so no code is accepted twice), its one-time recovery
-- codes (SHA-256 hashes only), and the tenant's requirement that its
-- administrators use MFA.

CREATE TABLE account_totp (
    account_id     TEXT PRIMARY KEY REFERENCES accounts(id) ON DELETE CASCADE,
    tenant_id      TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    sealed_secret  TEXT NOT NULL,
    -- NULL while enrolment waits for its first code.
    enabled_at     INTEGER,
    last_step      INTEGER NOT NULL DEFAULT 0,
    created_at     INTEGER NOT NULL
);

CREATE TABLE account_recovery_codes (
    account_id  TEXT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    tenant_id   TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    code_hash   TEXT NOT NULL,
    PRIMARY KEY (account_id, code_hash)
);

ALTER TABLE tenants ADD COLUMN require_admin_mfa INTEGER NOT NULL DEFAULT 0;

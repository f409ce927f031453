-- Clientless web access: applications published through the gateway's HTTPS
-- listener under a host name, rules that admit requests without the agent,
-- the HTTP details of access records, and the one-time codes that carry a
-- portal sign-in to a published host.

-- Lowercase DNS name, unique across the whole store (a gateway routes by it).
ALTER TABLE applications ADD COLUMN public_host TEXT;
-- 'http' or 'https': how the gateway speaks to the application.
ALTER TABLE applications ADD COLUMN upstream_scheme TEXT NOT NULL DEFAULT 'http';
CREATE UNIQUE INDEX applications_public_host ON applications (public_host);

-- A rule admits clientless (agentless) requests only when this is 1.
ALTER TABLE rules ADD COLUMN agentless BIGINT NOT NULL DEFAULT 0;

-- The HTTP request of a clientless access record (no query string).
ALTER TABLE access_records ADD COLUMN method TEXT;
ALTER TABLE access_records ADD COLUMN path TEXT;
ALTER TABLE access_records ADD COLUMN status BIGINT;

-- One-time codes the portal mints after a sign-in, redeemed once by the
-- gateway serving the host they are bound to.
CREATE TABLE web_codes (
    -- SHA-256 of the code.
    id          TEXT COLLATE "C" PRIMARY KEY,
    tenant_id   TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    user_id     TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    host        TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL
);

-- Internet access control: domain lists, internet rules, each tenant's
-- internet settings (with its TLS inspection CA, sealed under the master
-- key), the credentials of the explicit proxy port, and web and DNS records
-- in access_records (told apart by `kind`).
--
-- A domain list is one row: `content` is its canonical text (one entry a
-- line), so a list of a million names is one value, not a million rows.
-- Id lists (users, groups, lists, bypass entries) are comma-separated text,
-- like the private `rules` table: none of their items can contain a comma.

CREATE TABLE domain_lists (
    id           TEXT COLLATE "C" PRIMARY KEY,
    tenant_id    TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    name         TEXT NOT NULL,
    description  TEXT NOT NULL DEFAULT '',
    content      TEXT NOT NULL,
    entries      BIGINT NOT NULL,
    sha256       TEXT NOT NULL,
    source_url   TEXT,
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL,
    UNIQUE (tenant_id, name)
);

CREATE TABLE internet_rules (
    id           TEXT COLLATE "C" PRIMARY KEY,
    tenant_id    TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    priority     BIGINT NOT NULL,
    action       TEXT NOT NULL,
    global_allow BIGINT NOT NULL,
    user_ids     TEXT NOT NULL,
    group_ids    TEXT NOT NULL,
    list_ids     TEXT NOT NULL,
    inspect      BIGINT NOT NULL,
    enabled      BIGINT NOT NULL,
    valid_from   BIGINT,
    valid_until  BIGINT,
    description  TEXT NOT NULL DEFAULT '',
    created_at   BIGINT NOT NULL
);
CREATE INDEX internet_rules_tenant ON internet_rules (tenant_id, priority);

-- One row per tenant, made the first time its settings are read or written
-- (with its `banking` and `health` lists, named by do_not_inspect).
CREATE TABLE internet_settings (
    tenant_id       TEXT COLLATE "C" PRIMARY KEY REFERENCES tenants(id) ON DELETE CASCADE,
    enabled         BIGINT NOT NULL DEFAULT 1,
    default_action  TEXT NOT NULL DEFAULT 'allow',
    dns_block_mode  TEXT NOT NULL DEFAULT 'nxdomain',
    dns_block_ipv4  TEXT,
    dns_block_ipv6  TEXT,
    inspection      BIGINT NOT NULL DEFAULT 0,
    do_not_inspect  TEXT NOT NULL DEFAULT '',
    bypass          TEXT NOT NULL DEFAULT '',
    warn_minutes    BIGINT NOT NULL DEFAULT 60,
    -- The inspection CA, made the first time inspection is turned on.
    ca_cert_pem     TEXT,
    ca_sealed_key   TEXT,
    updated_at      BIGINT NOT NULL
);

CREATE TABLE proxy_credentials (
    id             TEXT COLLATE "C" PRIMARY KEY,
    tenant_id      TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    user_id        TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    secret_sha256  TEXT NOT NULL,
    created_at     BIGINT NOT NULL
);
CREATE INDEX proxy_credentials_user ON proxy_credentials (tenant_id, user_id);

ALTER TABLE access_records ADD COLUMN kind TEXT NOT NULL DEFAULT 'private';
ALTER TABLE access_records ADD COLUMN url TEXT;
ALTER TABLE access_records ADD COLUMN upload_size BIGINT;
ALTER TABLE access_records ADD COLUMN upload_content_type TEXT;
ALTER TABLE access_records ADD COLUMN upload_file_name TEXT;
ALTER TABLE access_records ADD COLUMN upload_sha256 TEXT;
ALTER TABLE access_records ADD COLUMN inspected BIGINT NOT NULL DEFAULT 0;
ALTER TABLE access_records ADD COLUMN qtype TEXT;
ALTER TABLE access_records ADD COLUMN answer TEXT;
CREATE INDEX access_records_kind ON access_records (tenant_id, kind, started_ms);

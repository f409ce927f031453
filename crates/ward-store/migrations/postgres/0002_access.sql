-- Private access: end users and groups, applications and access rules.
-- Lists (addresses, ports, tags, ids) are stored as comma-separated text:
-- none of their items can contain a comma.

CREATE TABLE users (
    id            TEXT COLLATE "C" PRIMARY KEY,
    tenant_id     TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    name          TEXT NOT NULL,
    disabled      BIGINT NOT NULL DEFAULT 0,
    created_at    BIGINT NOT NULL,
    UNIQUE (tenant_id, name)
);

CREATE TABLE groups (
    id            TEXT COLLATE "C" PRIMARY KEY,
    tenant_id     TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    name          TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    UNIQUE (tenant_id, name)
);

CREATE TABLE group_members (
    tenant_id     TEXT NOT NULL,
    group_id      TEXT NOT NULL REFERENCES groups(id) ON DELETE CASCADE,
    user_id       TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    PRIMARY KEY (group_id, user_id)
);
CREATE INDEX group_members_user ON group_members (tenant_id, user_id);

CREATE TABLE applications (
    id            TEXT COLLATE "C" PRIMARY KEY,
    tenant_id     TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    name          TEXT NOT NULL,
    addresses     TEXT NOT NULL,
    ports         TEXT NOT NULL,
    protocol      TEXT NOT NULL,
    tags          TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    UNIQUE (tenant_id, name)
);

CREATE TABLE rules (
    id                 TEXT COLLATE "C" PRIMARY KEY,
    tenant_id          TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    priority           BIGINT NOT NULL,
    action             TEXT NOT NULL,
    app_ids            TEXT NOT NULL,
    tags               TEXT NOT NULL,
    user_ids           TEXT NOT NULL,
    group_ids          TEXT NOT NULL,
    require_compliant  BIGINT NOT NULL,
    posture            TEXT NOT NULL,
    valid_from         BIGINT,
    valid_until        BIGINT,
    sources            TEXT NOT NULL,
    enabled            BIGINT NOT NULL,
    created_at         BIGINT NOT NULL,
    UNIQUE (tenant_id, priority)
);

-- Bumped by every change that alters what a gateway must enforce.
CREATE TABLE policy_epoch (
    id       BIGINT PRIMARY KEY CHECK (id = 1),
    version  BIGINT NOT NULL
);
INSERT INTO policy_epoch (id, version) VALUES (1, 1);

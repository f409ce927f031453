-- Private access: end users and groups, applications and access rules.
-- Lists (addresses, ports, tags, ids) are stored as comma-separated text:
-- none of their items can contain a comma.

CREATE TABLE users (
    id            TEXT PRIMARY KEY,
    tenant_id     TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    name          TEXT NOT NULL,
    disabled      INTEGER NOT NULL DEFAULT 0,
    created_at    INTEGER NOT NULL,
    UNIQUE (tenant_id, name)
);

CREATE TABLE groups (
    id            TEXT PRIMARY KEY,
    tenant_id     TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    name          TEXT NOT NULL,
    created_at    INTEGER NOT NULL,
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
    id            TEXT PRIMARY KEY,
    tenant_id     TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    name          TEXT NOT NULL,
    addresses     TEXT NOT NULL,
    ports         TEXT NOT NULL,
    protocol      TEXT NOT NULL,
    tags          TEXT NOT NULL,
    created_at    INTEGER NOT NULL,
    UNIQUE (tenant_id, name)
);

CREATE TABLE rules (
    id                 TEXT PRIMARY KEY,
    tenant_id          TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    priority           INTEGER NOT NULL,
    action             TEXT NOT NULL,
    app_ids            TEXT NOT NULL,
    tags               TEXT NOT NULL,
    user_ids           TEXT NOT NULL,
    group_ids          TEXT NOT NULL,
    require_compliant  INTEGER NOT NULL,
    posture            TEXT NOT NULL,
    valid_from         INTEGER,
    valid_until        INTEGER,
    sources            TEXT NOT NULL,
    enabled            INTEGER NOT NULL,
    created_at         INTEGER NOT NULL,
    UNIQUE (tenant_id, priority)
);

-- Bumped by every change that alters what a gateway must enforce.
CREATE TABLE policy_epoch (
    id       INTEGER PRIMARY KEY CHECK (id = 1),
    version  INTEGER NOT NULL
);
INSERT INTO policy_epoch (id, version) VALUES (1, 1);

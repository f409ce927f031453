-- LDAP identity sources, users' attributes and groups defined by conditions.

-- A source's settings beyond the OIDC columns, as JSON: for `ldap` the URL,
-- CA, bind DN, bases, filter and attribute names (the bind password is in
-- sealed_client_secret); for `oidc` the attribute claims. '' when none.
ALTER TABLE identity_sources ADD COLUMN config TEXT NOT NULL DEFAULT '';
-- The last directory sync: when, whether it worked, and what it did.
ALTER TABLE identity_sources ADD COLUMN last_sync_at INTEGER;
ALTER TABLE identity_sources ADD COLUMN last_sync_ok INTEGER;
ALTER TABLE identity_sources ADD COLUMN last_sync_result TEXT;

-- A user's attributes (email, department, ...): a JSON object of strings.
ALTER TABLE users ADD COLUMN attributes TEXT NOT NULL DEFAULT '{}';
-- 1 when the directory sync disabled the user (it vanished from the
-- directory); a sync that finds it again enables it. An administrator's
-- choice (0) is never undone by a sync.
ALTER TABLE users ADD COLUMN disabled_by_source INTEGER NOT NULL DEFAULT 0;

-- A dynamic group's conditions, `key=value` lines (AND); '' for a static group.
ALTER TABLE groups ADD COLUMN conditions TEXT NOT NULL DEFAULT '';

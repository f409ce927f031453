//! Private access: end users, groups, applications and access rules.
//!
//! Every change here also bumps the policy epoch in the same transaction, so
//! a gateway that has seen epoch N knows it must fetch a new snapshot when
//! the epoch moves past N.

use std::collections::BTreeMap;

use sqlx::any::AnyRow;

use crate::{bump_epoch, get, new_id, Page, PageRequest, Result, Store, StoreError};

fn split(list: String) -> Vec<String> {
    list.split(',').filter(|s| !s.is_empty()).map(str::to_owned).collect()
}

fn join(items: &[String]) -> String {
    items.join(",")
}

/// An end user. Its password hash, if any, is not part of the row: read it
/// with [`Store::user_password_hash`], so it cannot travel by accident.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRow {
    pub id: String,
    pub tenant_id: String,
    pub name: String,
    pub disabled: bool,
    pub created_at: i64,
    /// True when the user has a password (and so may sign in to the portal).
    pub has_password: bool,
    /// Failed sign-ins since the last success.
    pub failed_logins: i64,
    /// Locked out of signing in until then (it may lie in the past).
    pub locked_until: Option<i64>,
    pub last_login_at: Option<i64>,
    /// The identity source the user came from (`idp_...`); None for a local user.
    pub source_id: Option<String>,
    /// Attributes (`email`, `department`, ...), from its source or an administrator.
    pub attributes: BTreeMap<String, String>,
    /// True when a directory sync disabled the user (it vanished from the
    /// directory); a later sync that finds it enables it again.
    pub disabled_by_source: bool,
    /// True when the user signs in to the portal with a second factor (a
    /// confirmed TOTP secret, `user_totp`).
    pub mfa_enabled: bool,
}

impl UserRow {
    pub(crate) fn from_row(row: &AnyRow) -> Result<Self> {
        let disabled: i64 = get(row, "disabled")?;
        let has_password: i64 = get(row, "has_password")?;
        Ok(UserRow {
            id: get(row, "id")?,
            tenant_id: get(row, "tenant_id")?,
            name: get(row, "name")?,
            disabled: disabled != 0,
            created_at: get(row, "created_at")?,
            has_password: has_password != 0,
            failed_logins: get(row, "failed_logins")?,
            locked_until: get(row, "locked_until")?,
            last_login_at: get(row, "last_login_at")?,
            source_id: get(row, "source_id")?,
            attributes: attributes_from_json(&get::<String>(row, "attributes")?),
            disabled_by_source: get::<i64>(row, "disabled_by_source")? != 0,
            mfa_enabled: get::<i64>(row, "mfa_factors")? > 0,
        })
    }
}

/// Attributes from their stored JSON; a value that is not a JSON object of
/// strings (changed behind Ward's back) reads as no attributes.
pub(crate) fn attributes_from_json(text: &str) -> BTreeMap<String, String> {
    serde_json::from_str(text).unwrap_or_default()
}

pub(crate) fn attributes_to_json(attrs: &BTreeMap<String, String>) -> String {
    serde_json::to_string(attrs).unwrap_or_else(|_| "{}".to_owned())
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupRow {
    pub id: String,
    pub tenant_id: String,
    pub name: String,
    pub created_at: i64,
    /// A dynamic group's conditions (`key=value`, all must hold); empty for
    /// a static group.
    pub conditions: Vec<String>,
}

impl GroupRow {
    fn from_row(row: &AnyRow) -> Result<Self> {
        Ok(GroupRow {
            id: get(row, "id")?,
            tenant_id: get(row, "tenant_id")?,
            name: get(row, "name")?,
            created_at: get(row, "created_at")?,
            conditions: get::<String>(row, "conditions")?
                .lines()
                .filter(|l| !l.is_empty())
                .map(str::to_owned)
                .collect(),
        })
    }
}

/// An application as stored: addresses and ports in their text forms.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AppRow {
    pub id: String,
    pub tenant_id: String,
    pub name: String,
    pub addresses: Vec<String>,
    pub ports: Vec<String>,
    pub protocol: String,
    pub tags: Vec<String>,
    pub created_at: i64,
    /// The host name the application is published under through the
    /// gateway's HTTPS listener (clientless access); lowercase, unique
    /// across the store.
    pub public_host: Option<String>,
    /// `http` or `https`: how the gateway speaks to a published application.
    pub upstream_scheme: String,
}

impl AppRow {
    pub(crate) fn from_row(row: &AnyRow) -> Result<Self> {
        Ok(AppRow {
            id: get(row, "id")?,
            tenant_id: get(row, "tenant_id")?,
            name: get(row, "name")?,
            addresses: split(get(row, "addresses")?),
            ports: split(get(row, "ports")?),
            protocol: get(row, "protocol")?,
            tags: split(get(row, "tags")?),
            created_at: get(row, "created_at")?,
            public_host: get(row, "public_host")?,
            upstream_scheme: get(row, "upstream_scheme")?,
        })
    }
}

/// An access rule as stored.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RuleRow {
    pub id: String,
    pub tenant_id: String,
    pub priority: i64,
    pub action: String,
    pub app_ids: Vec<String>,
    pub tags: Vec<String>,
    pub user_ids: Vec<String>,
    pub group_ids: Vec<String>,
    pub require_compliant: bool,
    pub posture: String,
    pub valid_from: Option<i64>,
    pub valid_until: Option<i64>,
    pub sources: Vec<String>,
    pub enabled: bool,
    pub created_at: i64,
    /// Whether the rule admits clientless requests (no agent, no device).
    pub agentless: bool,
}

impl RuleRow {
    fn from_row(row: &AnyRow) -> Result<Self> {
        let require_compliant: i64 = get(row, "require_compliant")?;
        let enabled: i64 = get(row, "enabled")?;
        let agentless: i64 = get(row, "agentless")?;
        Ok(RuleRow {
            id: get(row, "id")?,
            tenant_id: get(row, "tenant_id")?,
            priority: get(row, "priority")?,
            action: get(row, "action")?,
            app_ids: split(get(row, "app_ids")?),
            tags: split(get(row, "tags")?),
            user_ids: split(get(row, "user_ids")?),
            group_ids: split(get(row, "group_ids")?),
            require_compliant: require_compliant != 0,
            posture: get(row, "posture")?,
            valid_from: get(row, "valid_from")?,
            valid_until: get(row, "valid_until")?,
            sources: split(get(row, "sources")?),
            enabled: enabled != 0,
            created_at: get(row, "created_at")?,
            agentless: agentless != 0,
        })
    }
}

pub(crate) const USER_COLUMNS: &str = "id, tenant_id, name, disabled, created_at, \
     CAST(CASE WHEN password_hash IS NULL THEN 0 ELSE 1 END AS BIGINT) AS has_password, failed_logins, locked_until, \
     last_login_at, source_id, attributes, disabled_by_source, \
     (SELECT COUNT(*) FROM user_totp m WHERE m.user_id = users.id AND m.enabled_at IS NOT NULL) AS mfa_factors";
const GROUP_COLUMNS: &str = "id, tenant_id, name, created_at, conditions";
pub(crate) const APP_COLUMNS: &str =
    "id, tenant_id, name, addresses, ports, protocol, tags, created_at, public_host, upstream_scheme";
const RULE_COLUMNS: &str = "id, tenant_id, priority, action, app_ids, tags, user_ids, group_ids, require_compliant, \
                            posture, valid_from, valid_until, sources, enabled, created_at, agentless";

impl Store {
    /// The policy epoch: it moves whenever what gateways enforce changes.
    pub async fn policy_epoch(&self) -> Result<i64> {
        Ok(sqlx::query_scalar("SELECT version FROM policy_epoch WHERE id = 1")
            .fetch_one(self.pool())
            .await?)
    }

    /// Run `sql` with its binds in a transaction that also bumps the epoch;
    /// returns the rows affected.
    async fn change(&self, sql: &str, binds: Vec<Bind>) -> Result<u64> {
        let mut tx = self.pool().begin().await?;
        let mut q = sqlx::query(sql);
        for b in binds {
            q = match b {
                Bind::Text(s) => q.bind(s),
                Bind::Int(i) => q.bind(i),
                Bind::OptInt(i) => q.bind(i),
                Bind::OptText(s) => q.bind(s),
            };
        }
        let affected = q.execute(&mut *tx).await?.rows_affected();
        if affected > 0 {
            bump_epoch(&mut tx).await?;
        }
        tx.commit().await?;
        Ok(affected)
    }

    // ---- users --------------------------------------------------------------

    pub async fn create_user(&self, tenant_id: &str, name: &str, now: i64) -> Result<UserRow> {
        let id = new_id("usr");
        self.change(
            "INSERT INTO users (id, tenant_id, name, disabled, created_at) VALUES ($1, $2, $3, 0, $4)",
            vec![Bind::text(&id), Bind::text(tenant_id), Bind::text(name), Bind::Int(now)],
        )
        .await
        .map_err(|e| e.conflict_as(format!("user {name}")))?;
        Ok(UserRow {
            id,
            tenant_id: tenant_id.into(),
            name: name.into(),
            disabled: false,
            created_at: now,
            has_password: false,
            failed_logins: 0,
            locked_until: None,
            last_login_at: None,
            source_id: None,
            attributes: BTreeMap::new(),
            disabled_by_source: false,
            mfa_enabled: false,
        })
    }

    pub async fn user_by_name(&self, tenant_id: &str, name: &str) -> Result<Option<UserRow>> {
        let row = sqlx::query(&format!(
            "SELECT {USER_COLUMNS} FROM users WHERE tenant_id = $1 AND name = $2"
        ))
        .bind(tenant_id)
        .bind(name)
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(UserRow::from_row).transpose()
    }

    pub async fn user_by_id(&self, tenant_id: &str, id: &str) -> Result<Option<UserRow>> {
        let row = sqlx::query(&format!(
            "SELECT {USER_COLUMNS} FROM users WHERE tenant_id = $1 AND id = $2"
        ))
        .bind(tenant_id)
        .bind(id)
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(UserRow::from_row).transpose()
    }

    pub async fn list_users(&self, tenant_id: &str, page: &PageRequest) -> Result<Page<UserRow>> {
        let rows = sqlx::query(&format!(
            "SELECT {USER_COLUMNS} FROM users WHERE tenant_id = $1 AND ($2 = '' OR id > $2) ORDER BY id LIMIT $3"
        ))
        .bind(tenant_id)
        .bind(page.cursor.clone().unwrap_or_default())
        .bind(page.fetch())
        .fetch_all(self.pool())
        .await?;
        let items = rows.iter().map(UserRow::from_row).collect::<Result<Vec<_>>>()?;
        Ok(Page::from_rows(items, page, |u| &u.id))
    }

    /// Every user of the tenant (for a policy snapshot).
    pub async fn all_users(&self, tenant_id: &str) -> Result<Vec<UserRow>> {
        let rows = sqlx::query(&format!(
            "SELECT {USER_COLUMNS} FROM users WHERE tenant_id = $1 ORDER BY id"
        ))
        .bind(tenant_id)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(UserRow::from_row).collect()
    }

    pub async fn set_user_disabled(&self, tenant_id: &str, id: &str, disabled: bool) -> Result<bool> {
        let n = self
            .change(
                "UPDATE users SET disabled = $1, disabled_by_source = 0 WHERE tenant_id = $2 AND id = $3",
                vec![Bind::Int(i64::from(disabled)), Bind::text(tenant_id), Bind::text(id)],
            )
            .await?;
        Ok(n == 1)
    }

    /// Replace a user's attributes. Moves the policy epoch when they
    /// changed (dynamic groups follow them); returns whether they did.
    pub async fn set_user_attributes(
        &self,
        tenant_id: &str,
        id: &str,
        attributes: &BTreeMap<String, String>,
    ) -> Result<bool> {
        let n = self
            .change(
                "UPDATE users SET attributes = $1 WHERE tenant_id = $2 AND id = $3 AND attributes <> $1",
                vec![
                    Bind::text(&attributes_to_json(attributes)),
                    Bind::text(tenant_id),
                    Bind::text(id),
                ],
            )
            .await?;
        Ok(n == 1)
    }

    pub async fn delete_user(&self, tenant_id: &str, id: &str) -> Result<bool> {
        let n = self
            .change(
                "DELETE FROM users WHERE tenant_id = $1 AND id = $2",
                vec![Bind::text(tenant_id), Bind::text(id)],
            )
            .await?;
        Ok(n == 1)
    }

    // ---- users' passwords and sign-in lock-out --------------------------------
    //
    // None of these move the policy epoch: gateways do not see passwords.

    /// Set (`Some`) or remove (`None`) a user's argon2id password hash.
    /// False when the tenant has no such user.
    pub async fn set_user_password_hash(&self, tenant_id: &str, id: &str, hash: Option<&str>) -> Result<bool> {
        let r = sqlx::query("UPDATE users SET password_hash = $1 WHERE tenant_id = $2 AND id = $3")
            .bind(hash)
            .bind(tenant_id)
            .bind(id)
            .execute(self.pool())
            .await?;
        Ok(r.rows_affected() == 1)
    }

    /// A user's password hash; None when the user has none (or does not exist).
    pub async fn user_password_hash(&self, tenant_id: &str, id: &str) -> Result<Option<String>> {
        let hash: Option<Option<String>> =
            sqlx::query_scalar("SELECT password_hash FROM users WHERE tenant_id = $1 AND id = $2")
                .bind(tenant_id)
                .bind(id)
                .fetch_optional(self.pool())
                .await?;
        Ok(hash.flatten())
    }

    /// A user's successful sign-in: reset the failure count and lock.
    pub async fn record_user_login_success(&self, tenant_id: &str, id: &str, now: i64) -> Result<()> {
        sqlx::query(
            "UPDATE users SET failed_logins = 0, locked_until = NULL, last_login_at = $1 WHERE tenant_id = $2 AND id = $3",
        )
        .bind(now)
        .bind(tenant_id)
        .bind(id)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// A user's failed sign-in: count it and return the failures since the
    /// last success (0 when the tenant has no such user).
    pub async fn record_user_login_failure(&self, tenant_id: &str, id: &str) -> Result<i64> {
        let n: Option<i64> = sqlx::query_scalar(
            "UPDATE users SET failed_logins = failed_logins + 1 WHERE tenant_id = $1 AND id = $2 RETURNING failed_logins",
        )
        .bind(tenant_id)
        .bind(id)
        .fetch_optional(self.pool())
        .await?;
        Ok(n.unwrap_or(0))
    }

    /// Lock a user out of signing in until `until`.
    pub async fn lock_user(&self, tenant_id: &str, id: &str, until: i64) -> Result<()> {
        sqlx::query("UPDATE users SET locked_until = $1 WHERE tenant_id = $2 AND id = $3")
            .bind(until)
            .bind(tenant_id)
            .bind(id)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Lift a user's lock-out and forget its failures.
    pub async fn unlock_user(&self, tenant_id: &str, id: &str) -> Result<bool> {
        let r = sqlx::query("UPDATE users SET locked_until = NULL, failed_logins = 0 WHERE tenant_id = $1 AND id = $2")
            .bind(tenant_id)
            .bind(id)
            .execute(self.pool())
            .await?;
        Ok(r.rows_affected() == 1)
    }

    // ---- groups -------------------------------------------------------------

    pub async fn create_group(&self, tenant_id: &str, name: &str, now: i64) -> Result<GroupRow> {
        let id = new_id("grp");
        self.change(
            "INSERT INTO groups (id, tenant_id, name, created_at) VALUES ($1, $2, $3, $4)",
            vec![Bind::text(&id), Bind::text(tenant_id), Bind::text(name), Bind::Int(now)],
        )
        .await
        .map_err(|e| e.conflict_as(format!("group {name}")))?;
        Ok(GroupRow {
            id,
            tenant_id: tenant_id.into(),
            name: name.into(),
            created_at: now,
            conditions: Vec::new(),
        })
    }

    /// Set a group's conditions (empty: a static group again). Moves the
    /// policy epoch: the group's members may change.
    pub async fn set_group_conditions(&self, tenant_id: &str, id: &str, conditions: &[String]) -> Result<bool> {
        let n = self
            .change(
                "UPDATE groups SET conditions = $1 WHERE tenant_id = $2 AND id = $3",
                vec![
                    Bind::text(&conditions.join("\n")),
                    Bind::text(tenant_id),
                    Bind::text(id),
                ],
            )
            .await?;
        Ok(n == 1)
    }

    pub async fn group_by_name(&self, tenant_id: &str, name: &str) -> Result<Option<GroupRow>> {
        let row = sqlx::query(&format!(
            "SELECT {GROUP_COLUMNS} FROM groups WHERE tenant_id = $1 AND name = $2"
        ))
        .bind(tenant_id)
        .bind(name)
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(GroupRow::from_row).transpose()
    }

    /// Every group of the tenant, oldest first.
    pub async fn all_groups(&self, tenant_id: &str) -> Result<Vec<GroupRow>> {
        let rows = sqlx::query(&format!(
            "SELECT {GROUP_COLUMNS} FROM groups WHERE tenant_id = $1 ORDER BY id"
        ))
        .bind(tenant_id)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(GroupRow::from_row).collect()
    }

    pub async fn delete_group(&self, tenant_id: &str, id: &str) -> Result<bool> {
        let n = self
            .change(
                "DELETE FROM groups WHERE tenant_id = $1 AND id = $2",
                vec![Bind::text(tenant_id), Bind::text(id)],
            )
            .await?;
        Ok(n == 1)
    }

    /// Add a user to a group (both of this tenant); adding twice is a no-op.
    pub async fn add_member(&self, tenant_id: &str, group_id: &str, user_id: &str) -> Result<()> {
        self.change(
            "INSERT INTO group_members (tenant_id, group_id, user_id) \
             SELECT $1, g.id, u.id FROM groups g, users u \
             WHERE g.tenant_id = $1 AND g.id = $2 AND u.tenant_id = $1 AND u.id = $3 \
             ON CONFLICT (group_id, user_id) DO NOTHING",
            vec![Bind::text(tenant_id), Bind::text(group_id), Bind::text(user_id)],
        )
        .await?;
        Ok(())
    }

    pub async fn remove_member(&self, tenant_id: &str, group_id: &str, user_id: &str) -> Result<bool> {
        let n = self
            .change(
                "DELETE FROM group_members WHERE tenant_id = $1 AND group_id = $2 AND user_id = $3",
                vec![Bind::text(tenant_id), Bind::text(group_id), Bind::text(user_id)],
            )
            .await?;
        Ok(n == 1)
    }

    /// Every (group id, user id) membership of the tenant.
    pub async fn all_memberships(&self, tenant_id: &str) -> Result<Vec<(String, String)>> {
        let rows = sqlx::query("SELECT group_id, user_id FROM group_members WHERE tenant_id = $1 ORDER BY group_id")
            .bind(tenant_id)
            .fetch_all(self.pool())
            .await?;
        rows.iter()
            .map(|r| Ok((get(r, "group_id")?, get(r, "user_id")?)))
            .collect()
    }

    // ---- applications -------------------------------------------------------

    pub async fn create_app(&self, tenant_id: &str, app: &AppRow, now: i64) -> Result<AppRow> {
        let id = new_id("app");
        self.change(
            "INSERT INTO applications (id, tenant_id, name, addresses, ports, protocol, tags, created_at, \
             public_host, upstream_scheme) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            vec![
                Bind::text(&id),
                Bind::text(tenant_id),
                Bind::text(&app.name),
                Bind::Text(join(&app.addresses)),
                Bind::Text(join(&app.ports)),
                Bind::text(&app.protocol),
                Bind::Text(join(&app.tags)),
                Bind::Int(now),
                Bind::OptText(app.public_host.clone()),
                Bind::text(&app.upstream_scheme),
            ],
        )
        .await
        .map_err(|e| match &app.public_host {
            Some(host) => e.conflict_as(format!("application {} or public host {host}", app.name)),
            None => e.conflict_as(format!("application {}", app.name)),
        })?;
        Ok(AppRow {
            id,
            tenant_id: tenant_id.into(),
            created_at: now,
            ..app.clone()
        })
    }

    pub async fn app_by_name(&self, tenant_id: &str, name: &str) -> Result<Option<AppRow>> {
        let row = sqlx::query(&format!(
            "SELECT {APP_COLUMNS} FROM applications WHERE tenant_id = $1 AND name = $2"
        ))
        .bind(tenant_id)
        .bind(name)
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(AppRow::from_row).transpose()
    }

    /// Every application of the tenant, oldest first.
    pub async fn all_apps(&self, tenant_id: &str) -> Result<Vec<AppRow>> {
        let rows = sqlx::query(&format!(
            "SELECT {APP_COLUMNS} FROM applications WHERE tenant_id = $1 ORDER BY id"
        ))
        .bind(tenant_id)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(AppRow::from_row).collect()
    }

    /// Replace an application's addresses, ports, protocol, tags, public
    /// host and upstream scheme (its name and id stay). A public host another
    /// application has is a conflict.
    pub async fn update_app(&self, tenant_id: &str, app: &AppRow) -> Result<bool> {
        let n = self
            .change(
                "UPDATE applications SET addresses = $1, ports = $2, protocol = $3, tags = $4, public_host = $5, \
                 upstream_scheme = $6 WHERE tenant_id = $7 AND id = $8",
                vec![
                    Bind::Text(join(&app.addresses)),
                    Bind::Text(join(&app.ports)),
                    Bind::text(&app.protocol),
                    Bind::Text(join(&app.tags)),
                    Bind::OptText(app.public_host.clone()),
                    Bind::text(&app.upstream_scheme),
                    Bind::text(tenant_id),
                    Bind::text(&app.id),
                ],
            )
            .await
            .map_err(|e| match &app.public_host {
                Some(host) => e.conflict_as(format!("public host {host}")),
                None => e,
            })?;
        Ok(n == 1)
    }

    pub async fn delete_app(&self, tenant_id: &str, id: &str) -> Result<bool> {
        let n = self
            .change(
                "DELETE FROM applications WHERE tenant_id = $1 AND id = $2",
                vec![Bind::text(tenant_id), Bind::text(id)],
            )
            .await?;
        Ok(n == 1)
    }

    // ---- rules --------------------------------------------------------------

    /// Create a rule; a priority already taken in the tenant is a conflict.
    pub async fn create_rule(&self, tenant_id: &str, r: &RuleRow, now: i64) -> Result<RuleRow> {
        let id = new_id("rul");
        self.change(
            &format!(
                "INSERT INTO rules ({RULE_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)"
            ),
            vec![
                Bind::text(&id),
                Bind::text(tenant_id),
                Bind::Int(r.priority),
                Bind::text(&r.action),
                Bind::Text(join(&r.app_ids)),
                Bind::Text(join(&r.tags)),
                Bind::Text(join(&r.user_ids)),
                Bind::Text(join(&r.group_ids)),
                Bind::Int(i64::from(r.require_compliant)),
                Bind::text(&r.posture),
                Bind::OptInt(r.valid_from),
                Bind::OptInt(r.valid_until),
                Bind::Text(join(&r.sources)),
                Bind::Int(i64::from(r.enabled)),
                Bind::Int(now),
                Bind::Int(i64::from(r.agentless)),
            ],
        )
        .await
        .map_err(|e| e.conflict_as(format!("a rule with priority {}", r.priority)))?;
        Ok(RuleRow {
            id,
            tenant_id: tenant_id.into(),
            created_at: now,
            ..r.clone()
        })
    }

    pub async fn rule_by_id(&self, tenant_id: &str, id: &str) -> Result<Option<RuleRow>> {
        let row = sqlx::query(&format!(
            "SELECT {RULE_COLUMNS} FROM rules WHERE tenant_id = $1 AND id = $2"
        ))
        .bind(tenant_id)
        .bind(id)
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(RuleRow::from_row).transpose()
    }

    /// Every rule of the tenant, highest priority (lowest number) first.
    pub async fn all_rules(&self, tenant_id: &str) -> Result<Vec<RuleRow>> {
        let rows = sqlx::query(&format!(
            "SELECT {RULE_COLUMNS} FROM rules WHERE tenant_id = $1 ORDER BY priority, id"
        ))
        .bind(tenant_id)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(RuleRow::from_row).collect()
    }

    pub async fn delete_rule(&self, tenant_id: &str, id: &str) -> Result<bool> {
        let n = self
            .change(
                "DELETE FROM rules WHERE tenant_id = $1 AND id = $2",
                vec![Bind::text(tenant_id), Bind::text(id)],
            )
            .await?;
        Ok(n == 1)
    }

    /// Give a rule another priority; a priority already taken is a conflict.
    pub async fn set_rule_priority(&self, tenant_id: &str, id: &str, priority: i64) -> Result<bool> {
        let n = self
            .change(
                "UPDATE rules SET priority = $1 WHERE tenant_id = $2 AND id = $3",
                vec![Bind::Int(priority), Bind::text(tenant_id), Bind::text(id)],
            )
            .await
            .map_err(|e| e.conflict_as(format!("a rule with priority {priority}")))?;
        Ok(n == 1)
    }

    /// Put the tenant's rules in the order of `ids` (every rule of the
    /// tenant, each once), keeping the priority numbers in use: the first
    /// id gets the smallest. One change: the gateways see the old order or
    /// the new one, never a mix. `Ok(false)` when `ids` is not exactly the
    /// tenant's set of rules (someone changed them meanwhile).
    pub async fn reorder_rules(&self, tenant_id: &str, ids: &[String]) -> Result<bool> {
        let mut tx = self.pool().begin().await?;
        let rows = sqlx::query("SELECT id, priority FROM rules WHERE tenant_id = $1 ORDER BY priority")
            .bind(tenant_id)
            .fetch_all(&mut *tx)
            .await?;
        let mut priorities = Vec::with_capacity(rows.len());
        let mut current = std::collections::HashSet::new();
        for row in &rows {
            current.insert(get::<String>(row, "id")?);
            priorities.push(get::<i64>(row, "priority")?);
        }
        let wanted: std::collections::HashSet<&String> = ids.iter().collect();
        if ids.len() != current.len() || wanted.len() != ids.len() || !ids.iter().all(|id| current.contains(id)) {
            return Ok(false);
        }
        // Out of the way first (priorities are positive), so no step of the
        // move collides with the unique (tenant, priority) constraint.
        sqlx::query("UPDATE rules SET priority = -priority WHERE tenant_id = $1")
            .bind(tenant_id)
            .execute(&mut *tx)
            .await?;
        for (id, priority) in ids.iter().zip(&priorities) {
            sqlx::query("UPDATE rules SET priority = $1 WHERE tenant_id = $2 AND id = $3")
                .bind(*priority)
                .bind(tenant_id)
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        bump_epoch(&mut tx).await?;
        tx.commit().await?;
        Ok(true)
    }

    pub async fn set_rule_enabled(&self, tenant_id: &str, id: &str, enabled: bool) -> Result<bool> {
        let n = self
            .change(
                "UPDATE rules SET enabled = $1 WHERE tenant_id = $2 AND id = $3",
                vec![Bind::Int(i64::from(enabled)), Bind::text(tenant_id), Bind::text(id)],
            )
            .await?;
        Ok(n == 1)
    }
}

/// A value bound to a query run by [`Store::change`].
enum Bind {
    Text(String),
    Int(i64),
    OptInt(Option<i64>),
    OptText(Option<String>),
}

impl Bind {
    fn text(s: &str) -> Bind {
        Bind::Text(s.to_owned())
    }
}

impl StoreError {
    /// A unique-constraint violation becomes [`StoreError::Conflict`] naming `what`.
    pub(crate) fn conflict_as(self, what: String) -> StoreError {
        match self {
            StoreError::Database(e) => StoreError::conflict_or(e, what),
            other => other,
        }
    }
}

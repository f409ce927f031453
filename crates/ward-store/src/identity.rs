//! Identity sources (OpenID Connect providers), the users and groups linked
//! to them, and the sign-ins in progress through them.

use std::collections::{BTreeMap, HashSet};

use sqlx::any::AnyRow;

use crate::access::{attributes_to_json, UserRow, USER_COLUMNS};
use crate::{bump_epoch, get, new_id, Result, Store, StoreError};

/// An identity source as stored. The client secret stays sealed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentitySourceRow {
    pub id: String,
    pub tenant_id: String,
    pub name: String,
    /// `oidc`.
    pub kind: String,
    pub issuer: String,
    pub client_id: String,
    pub sealed_client_secret: String,
    /// Space-separated.
    pub scopes: String,
    pub username_claim: String,
    pub groups_claim: String,
    pub created_at: i64,
    /// Settings beyond the OIDC columns, as JSON ('' when none): for `ldap`
    /// the directory's, for `oidc` the attribute claims.
    pub config: String,
    pub last_sync_at: Option<i64>,
    pub last_sync_ok: Option<bool>,
    pub last_sync_result: Option<String>,
}

/// What [`Store::create_identity_source`] needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewIdentitySource {
    /// `oidc` or `ldap`.
    pub kind: String,
    pub config: String,
    pub name: String,
    pub issuer: String,
    pub client_id: String,
    pub sealed_client_secret: String,
    pub scopes: String,
    pub username_claim: String,
    pub groups_claim: String,
}

/// A sign-in in progress: what the callback checks, once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OidcLoginRow {
    /// SHA-256 of the `state`.
    pub id: String,
    pub source_id: String,
    pub nonce: String,
    pub sealed_verifier: String,
    pub next: String,
    pub created_at: i64,
    pub expires_at: i64,
}

const SOURCE_COLUMNS: &str = "id, tenant_id, name, kind, issuer, client_id, sealed_client_secret, scopes, \
                              username_claim, groups_claim, created_at, config, last_sync_at, last_sync_ok, \
                              last_sync_result";

impl IdentitySourceRow {
    fn from_row(row: &AnyRow) -> Result<Self> {
        Ok(IdentitySourceRow {
            id: get(row, "id")?,
            tenant_id: get(row, "tenant_id")?,
            name: get(row, "name")?,
            kind: get(row, "kind")?,
            issuer: get(row, "issuer")?,
            client_id: get(row, "client_id")?,
            sealed_client_secret: get(row, "sealed_client_secret")?,
            scopes: get(row, "scopes")?,
            username_claim: get(row, "username_claim")?,
            groups_claim: get(row, "groups_claim")?,
            created_at: get(row, "created_at")?,
            config: get(row, "config")?,
            last_sync_at: get(row, "last_sync_at")?,
            last_sync_ok: get::<Option<i64>>(row, "last_sync_ok")?.map(|v| v != 0),
            last_sync_result: get(row, "last_sync_result")?,
        })
    }
}

impl Store {
    // ---- identity sources ---------------------------------------------------

    /// A new OIDC source. Its id is made by the caller (`idp_...`, see
    /// [`crate::new_id`]) because the sealed secret is bound to it.
    pub async fn create_identity_source(
        &self,
        id: &str,
        tenant_id: &str,
        s: &NewIdentitySource,
        now: i64,
    ) -> Result<IdentitySourceRow> {
        sqlx::query(
            "INSERT INTO identity_sources (id, tenant_id, name, kind, issuer, client_id, sealed_client_secret, scopes, \
             username_claim, groups_claim, created_at, config) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        )
        .bind(id)
        .bind(tenant_id)
        .bind(&s.name)
        .bind(&s.kind)
        .bind(&s.issuer)
        .bind(&s.client_id)
        .bind(&s.sealed_client_secret)
        .bind(&s.scopes)
        .bind(&s.username_claim)
        .bind(&s.groups_claim)
        .bind(now)
        .bind(&s.config)
        .execute(self.pool())
        .await
        .map_err(|e| StoreError::from(e).conflict_as(format!("identity source {}", s.name)))?;
        Ok(IdentitySourceRow {
            id: id.into(),
            tenant_id: tenant_id.into(),
            name: s.name.clone(),
            kind: s.kind.clone(),
            issuer: s.issuer.clone(),
            client_id: s.client_id.clone(),
            sealed_client_secret: s.sealed_client_secret.clone(),
            scopes: s.scopes.clone(),
            username_claim: s.username_claim.clone(),
            groups_claim: s.groups_claim.clone(),
            created_at: now,
            config: s.config.clone(),
            last_sync_at: None,
            last_sync_ok: None,
            last_sync_result: None,
        })
    }

    /// The tenant's sources, oldest first.
    pub async fn identity_sources(&self, tenant_id: &str) -> Result<Vec<IdentitySourceRow>> {
        let rows = sqlx::query(&format!(
            "SELECT {SOURCE_COLUMNS} FROM identity_sources WHERE tenant_id = $1 ORDER BY id"
        ))
        .bind(tenant_id)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(IdentitySourceRow::from_row).collect()
    }

    pub async fn identity_source_by_name(&self, tenant_id: &str, name: &str) -> Result<Option<IdentitySourceRow>> {
        let row = sqlx::query(&format!(
            "SELECT {SOURCE_COLUMNS} FROM identity_sources WHERE tenant_id = $1 AND name = $2"
        ))
        .bind(tenant_id)
        .bind(name)
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(IdentitySourceRow::from_row).transpose()
    }

    /// A source by id alone: an entry point of authentication (the portal's
    /// sign-in starts from it), so it returns the tenant it belongs to.
    pub async fn identity_source_by_id(&self, id: &str) -> Result<Option<IdentitySourceRow>> {
        let row = sqlx::query(&format!("SELECT {SOURCE_COLUMNS} FROM identity_sources WHERE id = $1"))
            .bind(id)
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(IdentitySourceRow::from_row).transpose()
    }

    /// Deletes a source; its users and groups stay, unlinked.
    pub async fn delete_identity_source(&self, tenant_id: &str, id: &str) -> Result<bool> {
        let n = sqlx::query("DELETE FROM identity_sources WHERE tenant_id = $1 AND id = $2")
            .bind(tenant_id)
            .bind(id)
            .execute(self.pool())
            .await?
            .rows_affected();
        Ok(n == 1)
    }

    /// Every LDAP source of every tenant, for the scheduled directory sync.
    /// Like the gateways' calls, this serves every tenant at once.
    pub async fn all_ldap_sources(&self) -> Result<Vec<IdentitySourceRow>> {
        let rows = sqlx::query(&format!(
            "SELECT {SOURCE_COLUMNS} FROM identity_sources WHERE kind = 'ldap' ORDER BY id"
        ))
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(IdentitySourceRow::from_row).collect()
    }

    /// Records the outcome of a directory sync of the source.
    pub async fn record_source_sync(&self, tenant_id: &str, id: &str, at: i64, ok: bool, result: &str) -> Result<()> {
        sqlx::query(
            "UPDATE identity_sources SET last_sync_at = $1, last_sync_ok = $2, last_sync_result = $3 \
             WHERE tenant_id = $4 AND id = $5",
        )
        .bind(at)
        .bind(i64::from(ok))
        .bind(result)
        .bind(tenant_id)
        .bind(id)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    // ---- linked users and groups --------------------------------------------

    /// Every user linked to the source.
    pub async fn users_of_source(&self, tenant_id: &str, source_id: &str) -> Result<Vec<UserRow>> {
        let rows = sqlx::query(&format!(
            "SELECT {USER_COLUMNS} FROM users WHERE tenant_id = $1 AND source_id = $2 ORDER BY id"
        ))
        .bind(tenant_id)
        .bind(source_id)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(UserRow::from_row).collect()
    }

    /// A directory entry seen again (by a sync or a sign-in) for a linked
    /// user: its attributes follow the directory and, if a sync had disabled
    /// it, it is enabled again. One transaction, which moves the policy
    /// epoch when anything changed. Returns whether anything did.
    pub async fn refresh_linked_user(
        &self,
        tenant_id: &str,
        user_id: &str,
        attributes: &BTreeMap<String, String>,
    ) -> Result<bool> {
        let mut tx = self.pool().begin().await?;
        let n = sqlx::query("UPDATE users SET attributes = $1 WHERE tenant_id = $2 AND id = $3 AND attributes <> $1")
            .bind(attributes_to_json(attributes))
            .bind(tenant_id)
            .bind(user_id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        let m = sqlx::query(
            "UPDATE users SET disabled = 0, disabled_by_source = 0 \
             WHERE tenant_id = $1 AND id = $2 AND disabled_by_source <> 0",
        )
        .bind(tenant_id)
        .bind(user_id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        let changed = n + m > 0;
        if changed {
            bump_epoch(&mut tx).await?;
        }
        tx.commit().await?;
        Ok(changed)
    }

    /// Disables the enabled users of the source whose subject is not in
    /// `present` (they vanished from the directory), marking them as
    /// disabled by the source, ends their portal sessions and signs their
    /// devices out. One
    /// transaction, which moves the policy epoch when anyone was disabled,
    /// so gateways cut their live connections. Returns their names.
    pub async fn disable_vanished_users(
        &self,
        tenant_id: &str,
        source_id: &str,
        present: &HashSet<String>,
    ) -> Result<Vec<String>> {
        let mut tx = self.pool().begin().await?;
        let rows: Vec<(String, String, Option<String>)> = sqlx::query_as(
            "SELECT id, name, external_subject FROM users WHERE tenant_id = $1 AND source_id = $2 AND disabled = 0",
        )
        .bind(tenant_id)
        .bind(source_id)
        .fetch_all(&mut *tx)
        .await?;
        let mut gone = Vec::new();
        for (id, name, subject) in rows {
            if subject.as_ref().is_some_and(|s| present.contains(s)) {
                continue;
            }
            sqlx::query("UPDATE users SET disabled = 1, disabled_by_source = 1 WHERE tenant_id = $1 AND id = $2")
                .bind(tenant_id)
                .bind(&id)
                .execute(&mut *tx)
                .await?;
            sqlx::query("DELETE FROM user_sessions WHERE tenant_id = $1 AND user_id = $2")
                .bind(tenant_id)
                .bind(&id)
                .execute(&mut *tx)
                .await?;
            // As when an administrator disables the user: the devices are
            // signed out too, so being enabled again needs `ward agent login`.
            sqlx::query("UPDATE devices SET session_expires_at = NULL WHERE tenant_id = $1 AND user_id = $2")
                .bind(tenant_id)
                .bind(&id)
                .execute(&mut *tx)
                .await?;
            gone.push(name);
        }
        if !gone.is_empty() {
            bump_epoch(&mut tx).await?;
        }
        tx.commit().await?;
        Ok(gone)
    }

    /// The user linked to (source, subject).
    pub async fn user_by_subject(&self, tenant_id: &str, source_id: &str, subject: &str) -> Result<Option<UserRow>> {
        let row = sqlx::query(&format!(
            "SELECT {USER_COLUMNS} FROM users WHERE tenant_id = $1 AND source_id = $2 AND external_subject = $3"
        ))
        .bind(tenant_id)
        .bind(source_id)
        .bind(subject)
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(UserRow::from_row).transpose()
    }

    /// A new user linked to (source, subject). A name already taken is a
    /// conflict.
    pub async fn create_linked_user(
        &self,
        tenant_id: &str,
        name: &str,
        source_id: &str,
        subject: &str,
        now: i64,
    ) -> Result<UserRow> {
        let id = new_id("usr");
        let mut tx = self.pool().begin().await?;
        sqlx::query(
            "INSERT INTO users (id, tenant_id, name, disabled, created_at, source_id, external_subject) \
             VALUES ($1, $2, $3, 0, $4, $5, $6)",
        )
        .bind(&id)
        .bind(tenant_id)
        .bind(name)
        .bind(now)
        .bind(source_id)
        .bind(subject)
        .execute(&mut *tx)
        .await
        .map_err(|e| StoreError::from(e).conflict_as(format!("user {name}")))?;
        bump_epoch(&mut tx).await?;
        tx.commit().await?;
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
            source_id: Some(source_id.into()),
            attributes: BTreeMap::new(),
            disabled_by_source: false,
            mfa_enabled: false,
        })
    }

    /// Makes a linked user's memberships follow the provider's groups: it
    /// joins every group named (created, linked to the source, when
    /// missing) and leaves the groups the source created that are not
    /// named. Groups made elsewhere are only ever joined, never left.
    /// Returns whether anything changed.
    pub async fn sync_source_groups(
        &self,
        tenant_id: &str,
        source_id: &str,
        user_id: &str,
        names: &[String],
        now: i64,
    ) -> Result<bool> {
        let mut tx = self.pool().begin().await?;
        let mut changed = false;
        let mut wanted = HashSet::new();
        for name in names {
            let found: Option<String> = sqlx::query_scalar("SELECT id FROM groups WHERE tenant_id = $1 AND name = $2")
                .bind(tenant_id)
                .bind(name)
                .fetch_optional(&mut *tx)
                .await?;
            let group_id = match found {
                Some(id) => id,
                None => {
                    let id = new_id("grp");
                    sqlx::query(
                        "INSERT INTO groups (id, tenant_id, name, created_at, source_id) VALUES ($1, $2, $3, $4, $5)",
                    )
                    .bind(&id)
                    .bind(tenant_id)
                    .bind(name)
                    .bind(now)
                    .bind(source_id)
                    .execute(&mut *tx)
                    .await?;
                    changed = true;
                    id
                }
            };
            let n = sqlx::query(
                "INSERT INTO group_members (tenant_id, group_id, user_id) VALUES ($1, $2, $3) \
                 ON CONFLICT (group_id, user_id) DO NOTHING",
            )
            .bind(tenant_id)
            .bind(&group_id)
            .bind(user_id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            changed |= n > 0;
            wanted.insert(group_id);
        }
        let linked: Vec<String> = sqlx::query_scalar(
            "SELECT m.group_id FROM group_members m JOIN groups g ON g.id = m.group_id \
             WHERE m.tenant_id = $1 AND m.user_id = $2 AND g.source_id = $3",
        )
        .bind(tenant_id)
        .bind(user_id)
        .bind(source_id)
        .fetch_all(&mut *tx)
        .await?;
        for group_id in linked.iter().filter(|g| !wanted.contains(*g)) {
            sqlx::query("DELETE FROM group_members WHERE tenant_id = $1 AND group_id = $2 AND user_id = $3")
                .bind(tenant_id)
                .bind(group_id)
                .bind(user_id)
                .execute(&mut *tx)
                .await?;
            changed = true;
        }
        if changed {
            bump_epoch(&mut tx).await?;
        }
        tx.commit().await?;
        Ok(changed)
    }

    // ---- sign-ins in progress -----------------------------------------------

    pub async fn create_oidc_login(&self, login: &OidcLoginRow) -> Result<()> {
        sqlx::query(
            "INSERT INTO oidc_logins (id, source_id, nonce, sealed_verifier, next, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&login.id)
        .bind(&login.source_id)
        .bind(&login.nonce)
        .bind(&login.sealed_verifier)
        .bind(&login.next)
        .bind(login.created_at)
        .bind(login.expires_at)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Takes the unexpired sign-in with this state hash, once: it is
    /// deleted whether or not it has expired.
    pub async fn take_oidc_login(&self, id: &str, now: i64) -> Result<Option<OidcLoginRow>> {
        let row = sqlx::query(
            "DELETE FROM oidc_logins WHERE id = $1 \
             RETURNING id, source_id, nonce, sealed_verifier, next, created_at, expires_at",
        )
        .bind(id)
        .fetch_optional(self.pool())
        .await?;
        let Some(r) = row else {
            return Ok(None);
        };
        let login = OidcLoginRow {
            id: get(&r, "id")?,
            source_id: get(&r, "source_id")?,
            nonce: get(&r, "nonce")?,
            sealed_verifier: get(&r, "sealed_verifier")?,
            next: get(&r, "next")?,
            created_at: get(&r, "created_at")?,
            expires_at: get(&r, "expires_at")?,
        };
        Ok((login.expires_at > now).then_some(login))
    }

    /// Forgets sign-ins that were never finished.
    pub async fn delete_expired_oidc_logins(&self, now: i64) -> Result<u64> {
        Ok(sqlx::query("DELETE FROM oidc_logins WHERE expires_at <= $1")
            .bind(now)
            .execute(self.pool())
            .await?
            .rows_affected())
    }
}

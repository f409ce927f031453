//! Internet access control: domain lists, internet rules, the tenant's
//! internet settings (with its inspection CA) and proxy credentials.
//!
//! Every change here moves the policy epoch in the same transaction, like
//! the private-access tables: gateways enforce all of it.

use sqlx::any::AnyRow;

use crate::{bump_epoch, get, new_id, Result, Store, StoreError, TenantCaRow};

fn split(list: String) -> Vec<String> {
    list.split(',').filter(|s| !s.is_empty()).map(str::to_owned).collect()
}

/// A domain list without its content (read that with
/// [`Store::domain_list_contents`]: it may be tens of megabytes).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DomainListRow {
    pub id: String,
    pub tenant_id: String,
    pub name: String,
    pub description: String,
    pub entries: i64,
    /// Lowercase hex SHA-256 of the content.
    pub sha256: String,
    pub source_url: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

impl DomainListRow {
    fn from_row(row: &AnyRow) -> Result<Self> {
        Ok(DomainListRow {
            id: get(row, "id")?,
            tenant_id: get(row, "tenant_id")?,
            name: get(row, "name")?,
            description: get(row, "description")?,
            entries: get(row, "entries")?,
            sha256: get(row, "sha256")?,
            source_url: get(row, "source_url")?,
            created_at: get(row, "created_at")?,
            updated_at: get(row, "updated_at")?,
        })
    }
}

/// A list's content as written: its canonical text, entry count and hash.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ListContent {
    pub text: String,
    pub entries: i64,
    pub sha256: String,
}

/// A list the store makes with a tenant's internet settings.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DefaultList {
    pub name: String,
    pub description: String,
    pub content: ListContent,
}

/// What [`Store::delete_domain_list`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListDeletion {
    Deleted,
    NotFound,
    /// A rule or the settings' do-not-inspect name it: kept.
    InUse,
}

/// An internet rule as stored.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct InternetRuleRow {
    pub id: String,
    pub tenant_id: String,
    pub priority: i64,
    pub action: String,
    pub global_allow: bool,
    pub user_ids: Vec<String>,
    pub group_ids: Vec<String>,
    pub list_ids: Vec<String>,
    pub inspect: bool,
    pub enabled: bool,
    pub valid_from: Option<i64>,
    pub valid_until: Option<i64>,
    pub description: String,
    pub created_at: i64,
}

impl InternetRuleRow {
    fn from_row(row: &AnyRow) -> Result<Self> {
        Ok(InternetRuleRow {
            id: get(row, "id")?,
            tenant_id: get(row, "tenant_id")?,
            priority: get(row, "priority")?,
            action: get(row, "action")?,
            global_allow: get::<i64>(row, "global_allow")? != 0,
            user_ids: split(get(row, "user_ids")?),
            group_ids: split(get(row, "group_ids")?),
            list_ids: split(get(row, "list_ids")?),
            inspect: get::<i64>(row, "inspect")? != 0,
            enabled: get::<i64>(row, "enabled")? != 0,
            valid_from: get(row, "valid_from")?,
            valid_until: get(row, "valid_until")?,
            description: get(row, "description")?,
            created_at: get(row, "created_at")?,
        })
    }
}

/// A tenant's internet settings as stored.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct InternetSettingsRow {
    pub enabled: bool,
    pub default_action: String,
    pub dns_block_mode: String,
    pub dns_block_ipv4: Option<String>,
    pub dns_block_ipv6: Option<String>,
    pub inspection: bool,
    /// Domain list ids.
    pub do_not_inspect: Vec<String>,
    pub bypass: Vec<String>,
    pub warn_minutes: i64,
    /// The inspection CA (key sealed), once made.
    pub inspection_ca: Option<TenantCaRow>,
    pub updated_at: i64,
}

impl InternetSettingsRow {
    fn from_row(row: &AnyRow) -> Result<Self> {
        let cert: Option<String> = get(row, "ca_cert_pem")?;
        let key: Option<String> = get(row, "ca_sealed_key")?;
        Ok(InternetSettingsRow {
            enabled: get::<i64>(row, "enabled")? != 0,
            default_action: get(row, "default_action")?,
            dns_block_mode: get(row, "dns_block_mode")?,
            dns_block_ipv4: get(row, "dns_block_ipv4")?,
            dns_block_ipv6: get(row, "dns_block_ipv6")?,
            inspection: get::<i64>(row, "inspection")? != 0,
            do_not_inspect: split(get(row, "do_not_inspect")?),
            bypass: split(get(row, "bypass")?),
            warn_minutes: get(row, "warn_minutes")?,
            inspection_ca: match (cert, key) {
                (Some(cert_pem), Some(sealed_key)) => Some(TenantCaRow { cert_pem, sealed_key }),
                _ => None,
            },
            updated_at: get(row, "updated_at")?,
        })
    }
}

/// A credential of the explicit proxy port (the secret's hash only).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ProxyCredentialRow {
    pub id: String,
    pub tenant_id: String,
    pub user_id: String,
    pub secret_sha256: String,
    pub created_at: i64,
}

impl ProxyCredentialRow {
    fn from_row(row: &AnyRow) -> Result<Self> {
        Ok(ProxyCredentialRow {
            id: get(row, "id")?,
            tenant_id: get(row, "tenant_id")?,
            user_id: get(row, "user_id")?,
            secret_sha256: get(row, "secret_sha256")?,
            created_at: get(row, "created_at")?,
        })
    }
}

const LIST_COLUMNS: &str = "id, tenant_id, name, description, entries, sha256, source_url, created_at, updated_at";
const IRULE_COLUMNS: &str = "id, tenant_id, priority, action, global_allow, user_ids, group_ids, list_ids, inspect, \
                             enabled, valid_from, valid_until, description, created_at";
const SETTINGS_COLUMNS: &str = "enabled, default_action, dns_block_mode, dns_block_ipv4, dns_block_ipv6, inspection, \
                                do_not_inspect, bypass, warn_minutes, ca_cert_pem, ca_sealed_key, updated_at";
const CRED_COLUMNS: &str = "id, tenant_id, user_id, secret_sha256, created_at";

/// `column` (comma-separated ids) names `$n`, bound to the id made a
/// literal pattern (`crate::like_literal`): an id's `_` is no wildcard.
fn names_id(column: &str, n: usize) -> String {
    format!("(',' || {column} || ',') LIKE ('%,' || ${n} || ',%') ESCAPE '\\'")
}

impl Store {
    // ---- domain lists -------------------------------------------------------

    /// Create a list; a name taken in the tenant is a conflict.
    pub async fn create_domain_list(
        &self,
        tenant_id: &str,
        name: &str,
        description: &str,
        content: &ListContent,
        source_url: Option<&str>,
        now: i64,
    ) -> Result<DomainListRow> {
        let id = new_id("dl");
        let mut tx = self.pool().begin().await?;
        sqlx::query(&format!(
            "INSERT INTO domain_lists ({LIST_COLUMNS}, content) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8, $9)"
        ))
        .bind(&id)
        .bind(tenant_id)
        .bind(name)
        .bind(description)
        .bind(content.entries)
        .bind(&content.sha256)
        .bind(source_url)
        .bind(now)
        .bind(&content.text)
        .execute(&mut *tx)
        .await
        .map_err(|e| StoreError::conflict_or(e, format!("domain list {name}")))?;
        bump_epoch(&mut tx).await?;
        tx.commit().await?;
        Ok(DomainListRow {
            id,
            tenant_id: tenant_id.into(),
            name: name.into(),
            description: description.into(),
            entries: content.entries,
            sha256: content.sha256.clone(),
            source_url: source_url.map(str::to_owned),
            created_at: now,
            updated_at: now,
        })
    }

    pub async fn domain_list_by_name(&self, tenant_id: &str, name: &str) -> Result<Option<DomainListRow>> {
        let row = sqlx::query(&format!(
            "SELECT {LIST_COLUMNS} FROM domain_lists WHERE tenant_id = $1 AND name = $2"
        ))
        .bind(tenant_id)
        .bind(name)
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(DomainListRow::from_row).transpose()
    }

    /// Every list of the tenant (without content), by name.
    pub async fn all_domain_lists(&self, tenant_id: &str) -> Result<Vec<DomainListRow>> {
        let rows = sqlx::query(&format!(
            "SELECT {LIST_COLUMNS} FROM domain_lists WHERE tenant_id = $1 ORDER BY name"
        ))
        .bind(tenant_id)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(DomainListRow::from_row).collect()
    }

    /// The content of one list.
    pub async fn domain_list_content(&self, tenant_id: &str, id: &str) -> Result<Option<String>> {
        Ok(
            sqlx::query_scalar("SELECT content FROM domain_lists WHERE tenant_id = $1 AND id = $2")
                .bind(tenant_id)
                .bind(id)
                .fetch_optional(self.pool())
                .await?,
        )
    }

    /// The digest and size of each of `ids` that exists, without the
    /// content: `(id, sha256, entries)`, in the order of `ids`.
    pub async fn domain_list_digests(&self, tenant_id: &str, ids: &[String]) -> Result<Vec<(String, String, i64)>> {
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            let row: Option<(String, i64)> =
                sqlx::query_as("SELECT sha256, entries FROM domain_lists WHERE tenant_id = $1 AND id = $2")
                    .bind(tenant_id)
                    .bind(id)
                    .fetch_optional(self.pool())
                    .await?;
            if let Some((sha256, entries)) = row {
                out.push((id.clone(), sha256, entries));
            }
        }
        Ok(out)
    }

    /// The content of a list (of any tenant) whose text has this SHA-256:
    /// what a gateway fetches for a snapshot's list reference. Lists with the
    /// same digest have the same text.
    pub async fn domain_list_content_by_digest(&self, sha256: &str) -> Result<Option<String>> {
        Ok(
            sqlx::query_scalar("SELECT content FROM domain_lists WHERE sha256 = $1 LIMIT 1")
                .bind(sha256)
                .fetch_optional(self.pool())
                .await?,
        )
    }

    /// The content of each of `ids` that exists: `(id, text)`.
    pub async fn domain_list_contents(&self, tenant_id: &str, ids: &[String]) -> Result<Vec<(String, String)>> {
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(text) = self.domain_list_content(tenant_id, id).await? {
                out.push((id.clone(), text));
            }
        }
        Ok(out)
    }

    /// Replace a list's content (and its source URL when `source_url` is
    /// given). False when the list is gone.
    pub async fn set_domain_list_content(
        &self,
        tenant_id: &str,
        id: &str,
        content: &ListContent,
        source_url: Option<&str>,
        now: i64,
    ) -> Result<bool> {
        let mut tx = self.pool().begin().await?;
        let n = sqlx::query(
            "UPDATE domain_lists SET content = $1, entries = $2, sha256 = $3, source_url = COALESCE($4, source_url), \
             updated_at = $5 WHERE tenant_id = $6 AND id = $7",
        )
        .bind(&content.text)
        .bind(content.entries)
        .bind(&content.sha256)
        .bind(source_url)
        .bind(now)
        .bind(tenant_id)
        .bind(id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if n > 0 {
            bump_epoch(&mut tx).await?;
        }
        tx.commit().await?;
        Ok(n == 1)
    }

    pub async fn set_domain_list_description(
        &self,
        tenant_id: &str,
        id: &str,
        description: &str,
        now: i64,
    ) -> Result<bool> {
        let n =
            sqlx::query("UPDATE domain_lists SET description = $1, updated_at = $2 WHERE tenant_id = $3 AND id = $4")
                .bind(description)
                .bind(now)
                .bind(tenant_id)
                .bind(id)
                .execute(self.pool())
                .await?
                .rows_affected();
        Ok(n == 1)
    }

    /// Delete a list unless a rule or the do-not-inspect setting names it
    /// (checked in the same transaction).
    pub async fn delete_domain_list(&self, tenant_id: &str, id: &str) -> Result<ListDeletion> {
        let mut tx = self.pool().begin().await?;
        let rules: i64 = sqlx::query_scalar(&format!(
            "SELECT COUNT(*) FROM internet_rules WHERE tenant_id = $1 AND {}",
            names_id("list_ids", 2)
        ))
        .bind(tenant_id)
        .bind(crate::like_literal(id))
        .fetch_one(&mut *tx)
        .await?;
        let settings: i64 = sqlx::query_scalar(&format!(
            "SELECT COUNT(*) FROM internet_settings WHERE tenant_id = $1 AND {}",
            names_id("do_not_inspect", 2)
        ))
        .bind(tenant_id)
        .bind(crate::like_literal(id))
        .fetch_one(&mut *tx)
        .await?;
        if rules > 0 || settings > 0 {
            return Ok(ListDeletion::InUse);
        }
        let n = sqlx::query("DELETE FROM domain_lists WHERE tenant_id = $1 AND id = $2")
            .bind(tenant_id)
            .bind(id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if n == 0 {
            return Ok(ListDeletion::NotFound);
        }
        bump_epoch(&mut tx).await?;
        tx.commit().await?;
        Ok(ListDeletion::Deleted)
    }

    // ---- internet rules -----------------------------------------------------

    pub async fn create_internet_rule(
        &self,
        tenant_id: &str,
        r: &InternetRuleRow,
        now: i64,
    ) -> Result<InternetRuleRow> {
        let id = new_id("irl");
        let mut tx = self.pool().begin().await?;
        sqlx::query(&format!(
            "INSERT INTO internet_rules ({IRULE_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)"
        ))
        .bind(&id)
        .bind(tenant_id)
        .bind(r.priority)
        .bind(&r.action)
        .bind(i64::from(r.global_allow))
        .bind(r.user_ids.join(","))
        .bind(r.group_ids.join(","))
        .bind(r.list_ids.join(","))
        .bind(i64::from(r.inspect))
        .bind(i64::from(r.enabled))
        .bind(r.valid_from)
        .bind(r.valid_until)
        .bind(&r.description)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        bump_epoch(&mut tx).await?;
        tx.commit().await?;
        Ok(InternetRuleRow {
            id,
            tenant_id: tenant_id.into(),
            created_at: now,
            ..r.clone()
        })
    }

    pub async fn internet_rule_by_id(&self, tenant_id: &str, id: &str) -> Result<Option<InternetRuleRow>> {
        let row = sqlx::query(&format!(
            "SELECT {IRULE_COLUMNS} FROM internet_rules WHERE tenant_id = $1 AND id = $2"
        ))
        .bind(tenant_id)
        .bind(id)
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(InternetRuleRow::from_row).transpose()
    }

    /// Every internet rule of the tenant, by priority then id.
    pub async fn all_internet_rules(&self, tenant_id: &str) -> Result<Vec<InternetRuleRow>> {
        let rows = sqlx::query(&format!(
            "SELECT {IRULE_COLUMNS} FROM internet_rules WHERE tenant_id = $1 ORDER BY priority, id"
        ))
        .bind(tenant_id)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(InternetRuleRow::from_row).collect()
    }

    /// Write every changeable field of `r` (found by its id). False when gone.
    pub async fn update_internet_rule(&self, tenant_id: &str, r: &InternetRuleRow) -> Result<bool> {
        let mut tx = self.pool().begin().await?;
        let n = sqlx::query(
            "UPDATE internet_rules SET priority = $1, action = $2, global_allow = $3, user_ids = $4, group_ids = $5, \
             list_ids = $6, inspect = $7, enabled = $8, valid_from = $9, valid_until = $10, description = $11 \
             WHERE tenant_id = $12 AND id = $13",
        )
        .bind(r.priority)
        .bind(&r.action)
        .bind(i64::from(r.global_allow))
        .bind(r.user_ids.join(","))
        .bind(r.group_ids.join(","))
        .bind(r.list_ids.join(","))
        .bind(i64::from(r.inspect))
        .bind(i64::from(r.enabled))
        .bind(r.valid_from)
        .bind(r.valid_until)
        .bind(&r.description)
        .bind(tenant_id)
        .bind(&r.id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if n > 0 {
            bump_epoch(&mut tx).await?;
        }
        tx.commit().await?;
        Ok(n == 1)
    }

    pub async fn delete_internet_rule(&self, tenant_id: &str, id: &str) -> Result<bool> {
        let mut tx = self.pool().begin().await?;
        let n = sqlx::query("DELETE FROM internet_rules WHERE tenant_id = $1 AND id = $2")
            .bind(tenant_id)
            .bind(id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if n > 0 {
            bump_epoch(&mut tx).await?;
        }
        tx.commit().await?;
        Ok(n == 1)
    }

    // ---- settings -----------------------------------------------------------

    /// The tenant's settings, None when never made (see
    /// [`Store::internet_settings_or_init`]).
    pub async fn internet_settings(&self, tenant_id: &str) -> Result<Option<InternetSettingsRow>> {
        let row = sqlx::query(&format!(
            "SELECT {SETTINGS_COLUMNS} FROM internet_settings WHERE tenant_id = $1"
        ))
        .bind(tenant_id)
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(InternetSettingsRow::from_row).transpose()
    }

    /// The tenant's settings, made with their defaults the first time: the
    /// `defaults` lists are created (a name already taken is kept as it is)
    /// and named by `do_not_inspect`. One transaction; another replica doing
    /// the same meanwhile is harmless.
    pub async fn internet_settings_or_init(
        &self,
        tenant_id: &str,
        defaults: &[DefaultList],
        now: i64,
    ) -> Result<InternetSettingsRow> {
        if let Some(s) = self.internet_settings(tenant_id).await? {
            return Ok(s);
        }
        let mut tx = self.pool().begin().await?;
        let mut ids = Vec::new();
        for list in defaults {
            sqlx::query(&format!(
                "INSERT INTO domain_lists ({LIST_COLUMNS}, content) VALUES ($1, $2, $3, $4, $5, $6, NULL, $7, $7, $8) \
                 ON CONFLICT (tenant_id, name) DO NOTHING"
            ))
            .bind(new_id("dl"))
            .bind(tenant_id)
            .bind(&list.name)
            .bind(&list.description)
            .bind(list.content.entries)
            .bind(&list.content.sha256)
            .bind(now)
            .bind(&list.content.text)
            .execute(&mut *tx)
            .await?;
            let id: String = sqlx::query_scalar("SELECT id FROM domain_lists WHERE tenant_id = $1 AND name = $2")
                .bind(tenant_id)
                .bind(&list.name)
                .fetch_one(&mut *tx)
                .await?;
            ids.push(id);
        }
        let n = sqlx::query(
            "INSERT INTO internet_settings (tenant_id, do_not_inspect, updated_at) VALUES ($1, $2, $3) \
             ON CONFLICT (tenant_id) DO NOTHING",
        )
        .bind(tenant_id)
        .bind(ids.join(","))
        .bind(now)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if n > 0 {
            bump_epoch(&mut tx).await?;
            tx.commit().await?;
        } else {
            tx.rollback().await?;
        }
        self.internet_settings(tenant_id)
            .await?
            .ok_or_else(|| StoreError::Config("internet settings vanished".into()))
    }

    /// Write the settings (all but the inspection CA). False when the tenant
    /// has none yet.
    pub async fn update_internet_settings(&self, tenant_id: &str, s: &InternetSettingsRow, now: i64) -> Result<bool> {
        let mut tx = self.pool().begin().await?;
        let n = sqlx::query(
            "UPDATE internet_settings SET enabled = $1, default_action = $2, dns_block_mode = $3, dns_block_ipv4 = $4, \
             dns_block_ipv6 = $5, inspection = $6, do_not_inspect = $7, bypass = $8, warn_minutes = $9, \
             updated_at = $10 WHERE tenant_id = $11",
        )
        .bind(i64::from(s.enabled))
        .bind(&s.default_action)
        .bind(&s.dns_block_mode)
        .bind(&s.dns_block_ipv4)
        .bind(&s.dns_block_ipv6)
        .bind(i64::from(s.inspection))
        .bind(s.do_not_inspect.join(","))
        .bind(s.bypass.join(","))
        .bind(s.warn_minutes)
        .bind(now)
        .bind(tenant_id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if n > 0 {
            bump_epoch(&mut tx).await?;
        }
        tx.commit().await?;
        Ok(n == 1)
    }

    /// Store the tenant's inspection CA unless it has one (another replica
    /// may have been first); returns the one stored, None when the tenant
    /// has no settings row.
    pub async fn set_inspection_ca(&self, tenant_id: &str, ca: &TenantCaRow) -> Result<Option<TenantCaRow>> {
        let mut tx = self.pool().begin().await?;
        let n = sqlx::query(
            "UPDATE internet_settings SET ca_cert_pem = $1, ca_sealed_key = $2 \
             WHERE tenant_id = $3 AND ca_cert_pem IS NULL",
        )
        .bind(&ca.cert_pem)
        .bind(&ca.sealed_key)
        .bind(tenant_id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if n > 0 {
            bump_epoch(&mut tx).await?;
        }
        tx.commit().await?;
        Ok(self.internet_settings(tenant_id).await?.and_then(|s| s.inspection_ca))
    }

    /// Whether the tenant has any internet configuration (settings, a list,
    /// a rule or a proxy credential).
    pub async fn has_internet_config(&self, tenant_id: &str) -> Result<bool> {
        let n: i64 = sqlx::query_scalar(
            "SELECT (SELECT COUNT(*) FROM internet_settings WHERE tenant_id = $1) \
             + (SELECT COUNT(*) FROM internet_rules WHERE tenant_id = $1) \
             + (SELECT COUNT(*) FROM domain_lists WHERE tenant_id = $1) \
             + (SELECT COUNT(*) FROM proxy_credentials WHERE tenant_id = $1)",
        )
        .bind(tenant_id)
        .fetch_one(self.pool())
        .await?;
        Ok(n > 0)
    }

    // ---- proxy credentials --------------------------------------------------

    /// Store a credential whose id the caller made (it is part of the password).
    pub async fn create_proxy_credential(&self, c: &ProxyCredentialRow) -> Result<()> {
        let mut tx = self.pool().begin().await?;
        sqlx::query(&format!(
            "INSERT INTO proxy_credentials ({CRED_COLUMNS}) VALUES ($1, $2, $3, $4, $5)"
        ))
        .bind(&c.id)
        .bind(&c.tenant_id)
        .bind(&c.user_id)
        .bind(&c.secret_sha256)
        .bind(c.created_at)
        .execute(&mut *tx)
        .await
        .map_err(|e| StoreError::conflict_or(e, format!("proxy credential {}", c.id)))?;
        bump_epoch(&mut tx).await?;
        tx.commit().await?;
        Ok(())
    }

    /// The user's credentials (or the tenant's, with no user), oldest first.
    pub async fn proxy_credentials(&self, tenant_id: &str, user_id: Option<&str>) -> Result<Vec<ProxyCredentialRow>> {
        let rows = match user_id {
            Some(user) => {
                sqlx::query(&format!(
                    "SELECT {CRED_COLUMNS} FROM proxy_credentials WHERE tenant_id = $1 AND user_id = $2 ORDER BY id"
                ))
                .bind(tenant_id)
                .bind(user)
                .fetch_all(self.pool())
                .await?
            }
            None => {
                sqlx::query(&format!(
                    "SELECT {CRED_COLUMNS} FROM proxy_credentials WHERE tenant_id = $1 ORDER BY id"
                ))
                .bind(tenant_id)
                .fetch_all(self.pool())
                .await?
            }
        };
        rows.iter().map(ProxyCredentialRow::from_row).collect()
    }

    pub async fn delete_proxy_credential(&self, tenant_id: &str, user_id: &str, id: &str) -> Result<bool> {
        let mut tx = self.pool().begin().await?;
        let n = sqlx::query("DELETE FROM proxy_credentials WHERE tenant_id = $1 AND user_id = $2 AND id = $3")
            .bind(tenant_id)
            .bind(user_id)
            .bind(id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if n > 0 {
            bump_epoch(&mut tx).await?;
        }
        tx.commit().await?;
        Ok(n == 1)
    }
}

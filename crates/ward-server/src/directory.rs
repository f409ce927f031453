//! LDAP directories as identity sources: mapping what the directory says
//! (`auth::ldap`) to Ward users linked to the source, with their attributes
//! and groups, for a sign-in and for a sync, and the scheduled sync.
//!
//! A user is linked by (source, subject): the entry's id attribute
//! (`entryUUID`, `objectGUID`) or its DN. Its attributes follow the
//! directory; its memberships of groups the source created follow the
//! directory's groups (`Store::sync_source_groups`), groups given by hand
//! stay. A sync disables the source's users that vanished from the
//! directory (marked as disabled by the source, so a later sync that finds
//! them enables them again; an administrator's disabling is never undone).
//! Every change moves the policy epoch in its own transaction.

use std::collections::HashSet;
use std::time::Duration;

use ward_api::SyncResult;
use ward_core::time::rfc3339;
use ward_store::{IdentitySourceRow, StoreError, UserRow};

use crate::api::identity_sources::{client_secret, ldap_config};
use crate::auth::ldap::{self, DirectoryUser, LdapFailure};
use crate::error::{ApiError, ApiResult};
use crate::state::{now_ms, AppState};

/// What [`apply_user`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    Created,
    Updated,
    Unchanged,
}

/// Why [`apply_user`] could not link an entry.
#[derive(Debug)]
pub enum ApplyError {
    /// A user of that name exists and does not come from this source.
    NameTaken(String),
    Store(StoreError),
}

impl From<StoreError> for ApplyError {
    fn from(e: StoreError) -> Self {
        ApplyError::Store(e)
    }
}

/// The user linked to the entry, created when missing; its attributes and
/// the groups the source manages follow the entry.
pub async fn apply_user(
    state: &AppState,
    source: &IdentitySourceRow,
    du: &DirectoryUser,
    now: i64,
) -> Result<(UserRow, Applied), ApplyError> {
    let store = &state.store;
    let tenant = &source.tenant_id;
    let (mut user, mut applied) = match store.user_by_subject(tenant, &source.id, &du.subject).await? {
        Some(u) => (u, Applied::Unchanged),
        None => match store
            .create_linked_user(tenant, &du.username, &source.id, &du.subject, now)
            .await
        {
            Ok(u) => (u, Applied::Created),
            Err(StoreError::Conflict(_)) => return Err(ApplyError::NameTaken(du.username.clone())),
            Err(e) => return Err(e.into()),
        },
    };
    if store.refresh_linked_user(tenant, &user.id, &du.attributes).await? {
        if applied == Applied::Unchanged {
            applied = Applied::Updated;
        }
        if user.disabled_by_source {
            user.disabled = false;
            user.disabled_by_source = false;
        }
    }
    user.attributes = du.attributes.clone();
    if store
        .sync_source_groups(tenant, &source.id, &user.id, &du.groups, now)
        .await?
        && applied == Applied::Unchanged
    {
        applied = Applied::Updated;
    }
    Ok((user, applied))
}

/// Syncs one LDAP source now and records the outcome on it. A directory
/// that cannot be read is `unavailable`; a directory that returns no user
/// at all while the source has users disables nobody (a wrong base or
/// filter must not disable everyone) and is reported as a failure.
pub async fn sync_source(state: &AppState, source: &IdentitySourceRow) -> ApiResult<SyncResult> {
    let now = now_ms();
    let outcome = sync_inner(state, source, now).await;
    let (ok, text) = match &outcome {
        Ok(r) => (
            true,
            format!(
                "{} users seen, {} created, {} updated, {} disabled, {} skipped; {} groups",
                r.users_seen, r.users_created, r.users_updated, r.users_disabled, r.users_skipped, r.groups_seen
            ),
        ),
        Err(e) => (false, e.message.clone()),
    };
    if let Err(e) = state
        .store
        .record_source_sync(&source.tenant_id, &source.id, now, ok, &text)
        .await
    {
        tracing::error!(source = %source.id, error = %e, "cannot record a directory sync");
    }
    match &outcome {
        Ok(_) => tracing::info!(source = %source.id, tenant = %source.tenant_id, result = %text, "directory synced"),
        Err(_) => {
            tracing::warn!(source = %source.id, tenant = %source.tenant_id, result = %text, "directory sync failed")
        }
    }
    outcome
}

async fn sync_inner(state: &AppState, source: &IdentitySourceRow, now: i64) -> ApiResult<SyncResult> {
    let cfg = ldap_config(source)?;
    let password = client_secret(state, source)?;
    let (users, groups_seen) = ldap::read_directory(&cfg, &password).await.map_err(|e| match e {
        LdapFailure::Refused(m) | LdapFailure::Directory(m) => {
            ApiError::new(ward_core::ErrorCode::Unavailable, format!("directory: {m}"))
        }
    })?;
    let mut r = SyncResult {
        users_seen: users.len() as u64,
        users_created: 0,
        users_updated: 0,
        users_disabled: 0,
        users_skipped: 0,
        groups_seen,
        synced_at: rfc3339(now),
    };
    let mut present = HashSet::new();
    for du in &users {
        match apply_user(state, source, du, now).await {
            Ok((_, Applied::Created)) => r.users_created += 1,
            Ok((_, Applied::Updated)) => r.users_updated += 1,
            Ok((_, Applied::Unchanged)) => {}
            Err(ApplyError::NameTaken(name)) => {
                tracing::warn!(source = %source.id, user = %name, "directory user skipped: the name is taken by another user");
                r.users_skipped += 1;
            }
            Err(ApplyError::Store(e)) => return Err(e.into()),
        }
        present.insert(du.subject.clone());
    }
    if users.is_empty()
        && !state
            .store
            .users_of_source(&source.tenant_id, &source.id)
            .await?
            .is_empty()
    {
        return Err(ApiError::new(
            ward_core::ErrorCode::Unavailable,
            "the directory returned no users; nobody was disabled (check the user base and filter)",
        ));
    }
    let gone = state
        .store
        .disable_vanished_users(&source.tenant_id, &source.id, &present)
        .await?;
    r.users_disabled = gone.len() as u64;
    Ok(r)
}

/// The scheduled sync: every minute, sync each LDAP source of an active
/// tenant whose interval has passed since its last sync (one at a time).
pub async fn sync_loop(state: AppState) {
    let mut tick = tokio::time::interval(Duration::from_secs(60));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let sources = match state.store.all_ldap_sources().await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "cannot list LDAP sources to sync");
                continue;
            }
        };
        let now = now_ms();
        for s in sources {
            let Ok(cfg) = ldap_config(&s) else { continue };
            if cfg.sync_interval_secs == 0 {
                continue;
            }
            let interval_ms = i64::try_from(cfg.sync_interval_secs.saturating_mul(1000)).unwrap_or(i64::MAX);
            let due = s.last_sync_at.is_none_or(|t| now.saturating_sub(t) >= interval_ms);
            // A suspended tenant's directory is left alone until it is resumed.
            let active = matches!(
                state.store.tenant_by_id(&s.tenant_id).await,
                Ok(Some(t)) if t.state == ward_core::TenantState::Active
            );
            if due && active {
                let _ = sync_source(&state, &s).await;
            }
        }
    }
}

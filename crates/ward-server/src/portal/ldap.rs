//! Signing in to the portal through an LDAP / Active Directory source: the
//! user name and password go to the directory (`auth::ldap::authenticate`:
//! service bind, search with the escaped name, bind as the entry found),
//! the entry becomes a user linked to the source with its attributes and
//! groups (`directory::apply_user`), and the session starts as for the
//! password sign-in (`start_session`).
//!
//! The lock-out of every sign-in applies (`auth::lockout`): failures are
//! counted per source address of the tenant and per linked user, and
//! every refusal of the credentials (an unknown name, a wrong or empty
//! password, a refused name, a disabled user) is one `invalid_credentials`.
//! A directory that cannot be reached is `unavailable` and not counted.

use axum::extract::{Path, State};
use axum::response::Response;
use axum::Form;
use serde::Deserialize;
use ward_core::{ErrorCode, TenantState};

use super::{portal_next, start_session, tenant_login_page};
use crate::api::identity_sources::{client_secret, ldap_config};
use crate::audit::AuditNote;
use crate::auth::ldap::{self, LdapFailure};
use crate::auth::lockout::{self, Subject};
use crate::auth::password;
use crate::ctx::Anonymous;
use crate::directory::{apply_user, ApplyError};
use crate::error::ApiError;
use crate::state::{now_ms, AppState};

#[derive(Deserialize)]
pub struct LdapLoginForm {
    username: String,
    password: String,
    next: Option<String>,
}

/// `POST /portal/ldap/{id}/login`.
pub(super) async fn login(
    State(state): State<AppState>,
    anon: Anonymous,
    Path(id): Path<String>,
    Form(f): Form<LdapLoginForm>,
) -> Response {
    let next = f.next.clone();
    match sign_in(&state, &anon, &id, &f).await {
        Ok(r) => r,
        Err((tenant, e)) => tenant_login_page(&state, next.as_deref(), &tenant, &e.message, e.status()).await,
    }
}

fn bad_credentials() -> ApiError {
    ApiError::new(ErrorCode::InvalidCredentials, "wrong user name or password")
}

/// The sign-in; on failure the tenant's name (for the page) and the error.
async fn sign_in(
    state: &AppState,
    anon: &Anonymous,
    id: &str,
    f: &LdapLoginForm,
) -> Result<Response, (String, ApiError)> {
    let audit = &anon.audit;
    let shown: String = f.username.chars().filter(|c| !c.is_control()).take(64).collect();
    audit.set(AuditNote::target(format!("user:{shown}")));
    let store = &state.store;
    let fail = |t: &str, e: ApiError| (t.to_owned(), e);
    let source = match store.identity_source_by_id(id).await {
        Ok(Some(s)) if s.kind == "ldap" => s,
        Ok(_) => {
            audit.update(|n| n.detail = Some("unknown identity source".into()));
            return Err(fail("", bad_credentials()));
        }
        Err(e) => return Err(fail("", e.into())),
    };
    let tenant = match store.tenant_by_id(&source.tenant_id).await {
        Ok(Some(t)) => t,
        Ok(None) => return Err(fail("", bad_credentials())),
        Err(e) => return Err(fail("", e.into())),
    };
    let t = tenant.name.clone();
    audit.update(|n| {
        n.tenant_id = Some(tenant.id.clone());
        n.detail = Some(format!("through {}", source.name));
    });
    let now = now_ms();
    let ip = anon.peer.to_string();
    lockout::check_address(state, &tenant.id, &ip, audit, now)
        .await
        .map_err(|e| fail(&t, e))?;

    // The linked user this name already maps to, if any: its own count and lock.
    let known = match ldap::ward_name(&f.username) {
        Some(n) => store
            .user_by_name(&tenant.id, &n)
            .await
            .map_err(|e| fail(&t, e.into()))?
            .filter(|u| u.source_id.as_deref() == Some(source.id.as_str())),
        None => None,
    };
    if let Some(u) = &known {
        lockout::check_subject(state, Subject::User(u), audit, now).map_err(|e| fail(&t, e))?;
    }
    let (tenant_id, ip_ref, known_ref, source_name) = (&tenant.id, &ip, &known, &source.name);
    let refuse = |what: String| async move {
        let r = lockout::refuse(
            state,
            tenant_id,
            ip_ref,
            known_ref.as_ref().map(Subject::User),
            &what,
            audit,
            now,
        )
        .await;
        audit.update(|n| n.detail = Some(format!("{what} (through {source_name})")));
        match r {
            Ok(()) => bad_credentials(),
            Err(e) => e,
        }
    };

    if !ldap::username_acceptable(&f.username) {
        return Err(fail(&t, refuse("user name refused".into()).await));
    }
    if f.password.is_empty() || f.password.len() > password::MAX_LEN {
        return Err(fail(&t, refuse("empty or overlong password".into()).await));
    }
    let cfg = ldap_config(&source).map_err(|e| fail(&t, e))?;
    let bind_password = client_secret(state, &source).map_err(|e| fail(&t, e))?;
    let du = match ldap::authenticate(&cfg, &bind_password, &f.username, &f.password).await {
        Ok(du) => du,
        Err(LdapFailure::Refused(why)) => return Err(fail(&t, refuse(why).await)),
        Err(LdapFailure::Directory(why)) => {
            tracing::warn!(source = %source.id, error = %why, "LDAP sign-in: directory unavailable");
            audit.update(|n| n.detail = Some(format!("directory unavailable: {why}")));
            return Err(fail(
                &t,
                ApiError::new(
                    ErrorCode::Unavailable,
                    "your organisation's directory cannot be reached; try again later",
                ),
            ));
        }
    };
    if tenant.state != TenantState::Active {
        audit.update(|n| n.detail = Some("tenant suspended".into()));
        return Err(fail(
            &t,
            ApiError::new(
                ErrorCode::TenantSuspended,
                "the tenant is suspended; contact the operator",
            ),
        ));
    }
    let (user, _) = match apply_user(state, &source, &du, now).await {
        Ok(ok) => ok,
        Err(ApplyError::NameTaken(name)) => {
            audit.update(|n| n.detail = Some(format!("user name {name} taken by a user of another source")));
            return Err(fail(
                &t,
                ApiError::new(
                    ErrorCode::Forbidden,
                    format!(
                        "a user named {name} already exists here and does not come from {}; ask your administrator",
                        source.name
                    ),
                ),
            ));
        }
        Err(ApplyError::Store(e)) => return Err(fail(&t, e.into())),
    };
    if user.disabled {
        let r = lockout::refuse(state, &tenant.id, &ip, None, "user disabled", audit, now).await;
        audit.update(|n| n.detail = Some("password right; user disabled".into()));
        return Err(fail(&t, r.err().unwrap_or_else(bad_credentials)));
    }
    audit.update(|n| n.user = Some((user.id.clone(), user.name.clone())));
    if user.mfa_enabled {
        // The password was right; the session waits for the second factor.
        let via = format!(" (through {})", source.name);
        return Ok(super::twostep::ask(
            state,
            &tenant,
            &user,
            portal_next(f.next.as_deref()),
            &via,
            audit,
        ));
    }
    store
        .record_user_login_success(&tenant.id, &user.id, now)
        .await
        .map_err(|e| fail(&t, e.into()))?;
    state.metrics.login("success");
    tracing::info!(tenant = %tenant.name, user = %user.name, source = %source.name, "portal sign-in through LDAP");
    audit.update(|n| n.user = Some((user.id.clone(), user.name.clone())));
    Ok(start_session(state, &tenant, &user, portal_next(f.next.as_deref())).await)
}

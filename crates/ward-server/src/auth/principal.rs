//! Turning an `Authorization: Bearer` header into a [`Principal`].

use ward_core::{Actor, ErrorCode, Role, TenantState};
use ward_store::{AccountRow, TenantRow};

use super::token;
use crate::error::ApiError;
use crate::state::AppState;

/// How the caller proved who it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    Session { id: String },
    ApiKey { id: String, role_cap: Option<Role> },
}

/// An authenticated caller: an account of a tenant, through a credential.
#[derive(Debug, Clone)]
pub struct Principal {
    pub tenant: TenantRow,
    pub account: AccountRow,
    pub credential: Credential,
}

impl Principal {
    pub fn actor(&self) -> Actor {
        Actor {
            tenant_id: self.tenant.id.clone(),
            account_id: self.account.id.clone(),
            role: self.account.role,
            operator: self.tenant.is_system(),
            key_cap: match &self.credential {
                Credential::ApiKey { role_cap, .. } => *role_cap,
                Credential::Session { .. } => None,
            },
        }
    }

    pub fn api_key_id(&self) -> Option<&str> {
        match &self.credential {
            Credential::ApiKey { id, .. } => Some(id),
            Credential::Session { .. } => None,
        }
    }

    /// True when the tenant requires MFA of its administrators, this account
    /// has none yet, and it is signed in with a session: then it may only
    /// enrol (API keys, for scripts, are not held back).
    pub fn mfa_enrollment_required(&self) -> bool {
        matches!(self.credential, Credential::Session { .. })
            && self.tenant.require_admin_mfa
            && !self.account.mfa_enabled
    }

    pub fn whoami(&self) -> ward_api::WhoAmI {
        ward_api::WhoAmI {
            tenant: self.tenant.name.clone(),
            account: self.account.name.clone(),
            role: self.account.role,
            operator: self.tenant.is_system(),
            credential: match self.credential {
                Credential::Session { .. } => ward_api::CredentialKind::Session,
                Credential::ApiKey { .. } => ward_api::CredentialKind::ApiKey,
            },
            api_key_id: self.api_key_id().map(str::to_owned),
            permissions: self
                .actor()
                .permissions()
                .iter()
                .map(|p| p.as_str().to_owned())
                .collect(),
            mfa_enabled: self.account.mfa_enabled,
            mfa_enrollment_required: self.mfa_enrollment_required(),
        }
    }
}

/// Why a presented credential was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthFailure {
    #[error("no credentials: send Authorization: Bearer <token>")]
    Missing,
    #[error("the Authorization header is not a Ward bearer token")]
    Malformed,
    #[error("the token is unknown")]
    Unknown,
    #[error("the session has expired; sign in again")]
    SessionExpired,
    #[error("the API key has expired")]
    KeyExpired,
    #[error("the API key has been revoked")]
    KeyRevoked,
    #[error("the tenant is suspended")]
    TenantSuspended,
    #[error("the store is unreachable")]
    Unavailable,
}

impl From<AuthFailure> for ApiError {
    fn from(f: AuthFailure) -> Self {
        let code = match f {
            AuthFailure::TenantSuspended => ErrorCode::TenantSuspended,
            AuthFailure::Unavailable => ErrorCode::Unavailable,
            _ => ErrorCode::Unauthenticated,
        };
        ApiError::new(code, f.to_string())
    }
}

/// A refused credential, with whom it belonged to when that is known (a
/// revoked key, an expired session), so the refusal is recorded in the right
/// tenant's trail and attributed to the right account.
#[derive(Debug, Clone)]
pub struct Refusal {
    pub failure: AuthFailure,
    pub tenant_id: Option<String>,
    pub account_id: Option<String>,
    pub api_key_id: Option<String>,
}

impl From<AuthFailure> for Refusal {
    fn from(failure: AuthFailure) -> Self {
        Refusal {
            failure,
            tenant_id: None,
            account_id: None,
            api_key_id: None,
        }
    }
}

/// Resolve the bearer token in `header` (the whole header value).
pub async fn authenticate(state: &AppState, header: &str, now: i64) -> Result<Principal, Refusal> {
    let mut owner = Owner::default();
    resolve(state, header, now, &mut owner)
        .await
        .map_err(|failure| Refusal {
            failure,
            tenant_id: owner.tenant_id,
            account_id: owner.account_id,
            api_key_id: owner.api_key_id,
        })
}

/// Whose credential it was, as far as resolution got.
#[derive(Default)]
struct Owner {
    tenant_id: Option<String>,
    account_id: Option<String>,
    api_key_id: Option<String>,
}

async fn resolve(state: &AppState, header: &str, now: i64, owner: &mut Owner) -> Result<Principal, AuthFailure> {
    let bearer = header
        .strip_prefix("Bearer ")
        .or_else(|| header.strip_prefix("bearer "))
        .map(str::trim)
        .ok_or(AuthFailure::Malformed)?;
    let store = &state.store;
    let unavailable = |e: ward_store::StoreError| {
        tracing::error!(error = %e, "store error during authentication");
        AuthFailure::Unavailable
    };
    let (tenant_id, account_id, credential) = if bearer.starts_with(token::API_KEY_PREFIX) {
        let (id, secret) = token::parse_api_key(bearer).ok_or(AuthFailure::Malformed)?;
        let key = store
            .api_key_by_id(id)
            .await
            .map_err(unavailable)?
            .ok_or(AuthFailure::Unknown)?;
        if !token::hashes_equal(&key.secret_hash, &token::hash(secret)) {
            return Err(AuthFailure::Unknown);
        }
        *owner = Owner {
            tenant_id: Some(key.tenant_id.clone()),
            account_id: Some(key.account_id.clone()),
            api_key_id: Some(key.id.clone()),
        };
        if key.revoked_at.is_some() {
            return Err(AuthFailure::KeyRevoked);
        }
        if key.expires_at.is_some_and(|t| t <= now) {
            return Err(AuthFailure::KeyExpired);
        }
        store
            .touch_api_key(&key.tenant_id, &key.id, now)
            .await
            .map_err(unavailable)?;
        (
            key.tenant_id,
            key.account_id,
            Credential::ApiKey {
                id: key.id,
                role_cap: key.role_cap,
            },
        )
    } else if bearer.starts_with(token::SESSION_PREFIX) && bearer.len() < 128 {
        let session = store
            .session_by_token_hash(&token::hash(bearer))
            .await
            .map_err(unavailable)?
            .ok_or(AuthFailure::Unknown)?;
        *owner = Owner {
            tenant_id: Some(session.tenant_id.clone()),
            account_id: Some(session.account_id.clone()),
            api_key_id: None,
        };
        if session.expires_at <= now {
            return Err(AuthFailure::SessionExpired);
        }
        (
            session.tenant_id,
            session.account_id,
            Credential::Session { id: session.id },
        )
    } else {
        return Err(AuthFailure::Malformed);
    };
    let tenant = store
        .tenant_by_id(&tenant_id)
        .await
        .map_err(unavailable)?
        .ok_or(AuthFailure::Unknown)?;
    let account = store
        .account_by_id(&tenant_id, &account_id)
        .await
        .map_err(unavailable)?
        .ok_or(AuthFailure::Unknown)?;
    if tenant.state == TenantState::Suspended {
        return Err(AuthFailure::TenantSuspended);
    }
    Ok(Principal {
        tenant,
        account,
        credential,
    })
}

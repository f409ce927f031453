//! The request context every protected handler takes, and through it the one
//! authorisation check.
//!
//! A handler names the target of its action (for the audit trail), the
//! [`Permission`] it needs and the [`Target`] it touches, and calls
//! [`Ctx::authorize`]; that applies [`ward_core::authorize`] to the caller.
//! There is no other way to reach the store from a protected handler than
//! through a `Ctx`, and no `Ctx` without an authenticated principal.
//!
//! Nor is there a `Ctx` for a session that must enrol in MFA first (the
//! tenant requires it and the account has none): for every route but the
//! few of [`MFA_ENROLLMENT_ACTIONS`] the extractor answers 403
//! `mfa_enrollment_required`, before any handler runs.

use std::net::IpAddr;

use axum::extract::{FromRequestParts, MatchedPath};
use axum::http::request::Parts;
use ward_core::{ErrorCode, Permission, Target};

use crate::audit::{AuditNote, AuditSlot, Authentication, PeerAddr};
use crate::auth::{AuthFailure, Principal};
use crate::error::ApiError;
use crate::state::AppState;

/// The actions (see [`crate::api::action_name`]) a session that must enrol
/// in MFA first may still take.
pub const MFA_ENROLLMENT_ACTIONS: [&str; 4] = ["auth.whoami", "auth.logout", "mfa.enroll", "mfa.confirm"];

#[derive(Clone)]
pub struct Ctx {
    pub state: AppState,
    pub principal: Principal,
    pub peer: IpAddr,
    audit: AuditSlot,
}

impl Ctx {
    /// Name what this request is aimed at, for the audit trail (the action
    /// itself is named by the route: [`crate::api::action_name`]).
    pub fn target(&self, target: impl Into<String>) {
        let target = target.into();
        self.audit.update(|n| n.target = Some(target));
    }

    /// Add a detail to the audit record (why something failed).
    pub fn detail(&self, detail: impl Into<String>) {
        let d = detail.into();
        self.audit.update(|n| n.detail = Some(d));
    }

    /// The one authorisation check. Refusals are recorded in the trail by the
    /// audit middleware (the response is a 403).
    pub fn authorize(&self, perm: Permission, target: Target<'_>) -> Result<(), ApiError> {
        ward_core::authorize(&self.principal.actor(), perm, target).map_err(|denial| {
            self.detail(denial.to_string());
            ApiError::new(ErrorCode::Forbidden, denial.to_string())
        })
    }

    /// Shorthand: the tenant as a whole.
    pub fn tenant_target(&self) -> Target<'_> {
        Target::Tenant {
            tenant_id: &self.principal.tenant.id,
        }
    }

    pub fn audit(&self) -> &AuditSlot {
        &self.audit
    }

    pub fn tenant_id(&self) -> &str {
        &self.principal.tenant.id
    }
}

/// The request's audit slot and peer address, put there by the middleware and the listener.
fn slot_and_peer(parts: &Parts) -> (AuditSlot, IpAddr) {
    let audit = parts.extensions.get::<AuditSlot>().cloned().unwrap_or_default();
    let peer = parts
        .extensions
        .get::<PeerAddr>()
        .map(|p| p.0.ip())
        .unwrap_or(IpAddr::from([0, 0, 0, 0]));
    (audit, peer)
}

impl FromRequestParts<AppState> for Ctx {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let (audit, peer) = slot_and_peer(parts);
        let principal = match parts.extensions.get::<Authentication>() {
            Some(Authentication(Ok(p))) => p.clone(),
            Some(Authentication(Err(r))) => return Err(r.failure.clone().into()),
            None => return Err(AuthFailure::Missing.into()),
        };
        if principal.mfa_enrollment_required() {
            let action = parts.extensions.get::<MatchedPath>().and_then(|route| {
                crate::api::action_name(parts.method.as_str(), route.as_str())
                    .or_else(|| crate::console::action_name(parts.method.as_str(), route.as_str()))
            });
            if !action.is_some_and(|a| MFA_ENROLLMENT_ACTIONS.contains(&a)) {
                audit.update(|n| n.detail = Some("the tenant requires MFA; the account has not enrolled".into()));
                return Err(ApiError::new(
                    ErrorCode::MfaEnrollmentRequired,
                    "the tenant requires MFA for its administrators: turn it on for this account first \
                     (POST /api/v1/me/mfa/totp, or ward ctl mfa enable)",
                ));
            }
        }
        Ok(Ctx {
            state: state.clone(),
            principal,
            peer,
            audit,
        })
    }
}

/// The audit slot and peer for handlers that run before anyone is signed in.
pub struct Anonymous {
    pub peer: IpAddr,
    pub audit: AuditSlot,
}

impl FromRequestParts<AppState> for Anonymous {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &AppState) -> Result<Self, Self::Rejection> {
        let (audit, peer) = slot_and_peer(parts);
        Ok(Anonymous { peer, audit })
    }
}

impl Anonymous {
    pub fn note(&self, note: AuditNote) {
        self.audit.set(note);
    }
}

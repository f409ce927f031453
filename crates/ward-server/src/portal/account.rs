//! The portal's "My account" page (`/portal/account`): an end user turns
//! two-step sign-in (TOTP) on and off for their own portal sign-ins.
//!
//! Setting up shows a new secret (a QR code and base32) and waits for a
//! code of it; the confirmation turns two-step sign-in on and shows ten
//! recovery codes, only then. Turning it off needs a current code (or a
//! recovery code); a wrong one counts like a wrong password
//! (`auth::lockout`). The secret is sealed under the master key with the
//! tenant and user id (`auth::mfa`); the store keeps it in `user_totp`, the
//! recovery codes' hashes in `user_recovery_codes`. An administrator who
//! loses nothing but the user's phone resets it through
//! `POST /api/v1/users/{name}/mfa/reset`.

use axum::extract::Query;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use base64::Engine;
use maud::html;
use serde::Deserialize;
use ward_store::MfaOwner;

use super::{page, with_status, Done, Portal};
use crate::auth::lockout::{self, Subject};
use crate::auth::mfa::{self, Holder};
use crate::auth::totp;
use crate::console::layout::{csrf_field, notice};
use crate::error::ApiError;
use crate::state::now_ms;

enum Extra {
    None,
    /// The base32 secret and the QR code (SVG) of a pending enrolment.
    Enrolling(String, String),
    RecoveryCodes(Vec<String>),
}

/// `GET /portal/account`.
pub(super) async fn show(p: Portal, Query(q): Query<Done>) -> Response {
    let message = match q.done.as_deref() {
        Some("mfa-off") => Some("Two-step sign-in is off: you sign in with your password alone."),
        _ => None,
    };
    account_page(&p, message, false, StatusCode::OK, Extra::None)
}

fn account_page(p: &Portal, message: Option<&str>, error: bool, status: StatusCode, extra: Extra) -> Response {
    let body = html! {
        (notice(message, error))
        section {
            h2 { "Account" }
            p { (p.user.name) " · organisation " (p.tenant.name) }
        }
        section {
            h2 { "Two-step sign-in (TOTP)" }
            @match &extra {
                Extra::Enrolling(secret, qr_svg) => {
                    p { "Scan the code with an authenticator app, or type the secret into it, then enter the code it shows." }
                    img.qr src=(format!("data:image/svg+xml;base64,{}", base64::engine::general_purpose::STANDARD.encode(qr_svg)))
                        alt="QR code of the TOTP secret" width="220" height="220";
                    p { "Secret: " code { (secret) } }
                    form.grid method="post" action="/portal/account/mfa/confirm" {
                        (csrf_field(&p.csrf))
                        label { "Code from the app" input name="code" required inputmode="numeric" autocomplete="one-time-code" maxlength="12"; }
                        button type="submit" { "Turn on" }
                    }
                }
                Extra::RecoveryCodes(codes) => {
                    p.ok role="status" { "Two-step sign-in is on. Keep these recovery codes somewhere safe: each signs in once in place of a code, and they are shown only now." }
                    ul.codes { @for code in codes { li { code { (code) } } } }
                }
                Extra::None => {
                    @if p.user.mfa_enabled {
                        p { "On. Signing in to the portal with a password asks for a code from your authenticator app." }
                        form.grid method="post" action="/portal/account/mfa/disable" {
                            (csrf_field(&p.csrf))
                            label { "Current code (or a recovery code)" input name="code" required autocomplete="one-time-code" maxlength="20"; }
                            button.danger type="submit" { "Turn off" }
                        }
                    } @else {
                        p { "Off. With it on, signing in to the portal with a password also asks for a code from an authenticator app on your phone." }
                        p.muted { "Signing in through your organisation's single sign-on uses that provider's own second factor." }
                        form method="post" action="/portal/account/mfa" {
                            (csrf_field(&p.csrf))
                            button type="submit" { "Set up two-step sign-in" }
                        }
                    }
                }
            }
        }
    };
    with_status(page("My account", Some(p), body), status)
}

fn note(p: &Portal, what: &str) {
    if let Some(a) = &p.audit {
        a.update(|n| {
            n.target = Some(format!("user:{}", p.user.name));
            n.detail = Some(what.to_owned());
        });
    }
}

fn failed(p: &Portal, e: ApiError) -> Response {
    account_page(p, Some(&e.message), true, e.status(), Extra::None)
}

/// `POST /portal/account/mfa`: a new secret, waiting for its first code.
pub(super) async fn enroll(p: Portal) -> Response {
    note(&p, "TOTP enrolment started");
    match start(&p).await {
        Ok((secret, qr)) => account_page(&p, None, false, StatusCode::OK, Extra::Enrolling(secret, qr)),
        Err(e) => failed(&p, e),
    }
}

fn already_on() -> ApiError {
    ApiError::new(
        ward_core::ErrorCode::Conflict,
        "two-step sign-in is already on; turn it off first to set up another authenticator",
    )
}

async fn start(p: &Portal) -> Result<(String, String), ApiError> {
    let (tenant_id, user_id) = (&p.tenant.id, &p.user.id);
    if p.user.mfa_enabled {
        return Err(already_on());
    }
    let secret = totp::new_secret();
    let sealed = mfa::seal_for(&p.state, MfaOwner::User, tenant_id, user_id, &secret)?;
    if !p
        .state
        .store
        .start_totp_of(MfaOwner::User, tenant_id, user_id, &sealed, now_ms())
        .await?
    {
        return Err(already_on());
    }
    let uri = totp::otpauth_uri(&secret, &p.user.name, &p.tenant.name)?;
    Ok((totp::base32(&secret)?, totp::qr_svg(&uri)?))
}

#[derive(Debug, Deserialize)]
pub struct CodeForm {
    code: String,
}

/// `POST /portal/account/mfa/confirm`: the first code turns it on.
pub(super) async fn confirm(p: Portal, Form(f): Form<CodeForm>) -> Response {
    match confirm_code(&p, f.code.trim()).await {
        Ok(codes) => {
            note(&p, "TOTP enrolment confirmed");
            account_page(&p, None, false, StatusCode::OK, Extra::RecoveryCodes(codes))
        }
        Err(e) => {
            note(&p, "TOTP enrolment: code did not match");
            failed(&p, e)
        }
    }
}

async fn confirm_code(p: &Portal, code: &str) -> Result<Vec<String>, ApiError> {
    let (tenant_id, user_id) = (&p.tenant.id, &p.user.id);
    let store = &p.state.store;
    let nothing_pending = || {
        ApiError::new(
            ward_core::ErrorCode::Conflict,
            "no set-up of two-step sign-in is pending; start one first",
        )
    };
    if code.len() > 64 {
        return Err(ApiError::invalid("the code is too long"));
    }
    let row = store
        .totp_of(MfaOwner::User, tenant_id, user_id)
        .await?
        .filter(|r| r.enabled_at.is_none())
        .ok_or_else(nothing_pending)?;
    let secret = mfa::open_for(&p.state, MfaOwner::User, tenant_id, user_id, &row.sealed_secret)?;
    let Some(step) = totp::verify(&secret, code, mfa::unix_secs())? else {
        return Err(ApiError::invalid(
            "the code does not match; check that the phone's clock is right, then set up again",
        ));
    };
    let codes = totp::new_recovery_codes();
    let hashes: Vec<String> = codes.iter().filter_map(|c| totp::recovery_hash(c)).collect();
    let step = i64::try_from(step).map_err(|_| ApiError::internal())?;
    if !store
        .confirm_totp_of(MfaOwner::User, tenant_id, user_id, step, &hashes, now_ms())
        .await?
    {
        return Err(nothing_pending());
    }
    Ok(codes)
}

/// `POST /portal/account/mfa/disable`: off, with a current code.
pub(super) async fn disable(p: Portal, Form(f): Form<CodeForm>) -> Response {
    match disable_with(&p, f.code.trim()).await {
        Ok(()) => Redirect::to("/portal/account?done=mfa-off").into_response(),
        Err(e) => failed(&p, e),
    }
}

async fn disable_with(p: &Portal, code: &str) -> Result<(), ApiError> {
    if !p.user.mfa_enabled {
        return Err(ApiError::new(
            ward_core::ErrorCode::Conflict,
            "two-step sign-in is not on",
        ));
    }
    if code.len() > 64 {
        return Err(ApiError::invalid("the code is too long"));
    }
    let Some(accepted) = mfa::use_code_of(&p.state, Holder::User(&p.user), code, mfa::unix_secs()).await? else {
        note(p, "turning TOTP off: wrong or reused one-time code");
        // Guessing through a stolen session counts like guessing at sign-in.
        if let Some(audit) = &p.audit {
            lockout::count_failure(
                &p.state,
                Subject::User(&p.user),
                "wrong or reused one-time code",
                audit,
                now_ms(),
            )
            .await?;
        }
        return Err(ApiError::invalid("the code is wrong or was already used"));
    };
    note(p, &format!("TOTP turned off ({})", accepted.describe()));
    p.state
        .store
        .remove_totp_of(MfaOwner::User, &p.tenant.id, &p.user.id, false)
        .await?;
    Ok(())
}

//! Stable error codes of the API.
//!
//! Scripts match on these strings; never rename one, only add.

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// The body is not valid JSON, has unknown fields or wrong types.
    InvalidRequest,
    /// A field's value is not acceptable (a bad name, a short password).
    InvalidField,
    /// The body is larger than the server accepts.
    PayloadTooLarge,
    /// No credentials, or credentials that are unknown, expired or revoked.
    Unauthenticated,
    /// Tenant, user name or password wrong.
    InvalidCredentials,
    /// The password was right, but the account signs in with a second factor:
    /// send the one-time code (`otp`) too.
    MfaRequired,
    /// The tenant requires MFA of its administrators and this account has none
    /// yet: until it enrols, its sessions reach only whoami, sign-out and enrolment.
    MfaEnrollmentRequired,
    /// Too many failed sign-ins: the account or source address is locked for a while.
    LockedOut,
    /// Too many requests of this kind from this address for now (enrolment
    /// requests without a code): try again later.
    RateLimited,
    /// The tenant is suspended.
    TenantSuspended,
    /// Authenticated, but not allowed to do this.
    Forbidden,
    /// Nothing by that name or id (or not visible to the caller).
    NotFound,
    /// The tenant has no TLS-inspection CA: inspection was never turned on.
    InspectionCaMissing,
    /// A name already taken.
    Conflict,
    /// The method is not supported on this path.
    MethodNotAllowed,
    /// The store cannot be reached.
    Unavailable,
    /// A fault inside Ward; the log has the details.
    Internal,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidRequest => "invalid_request",
            ErrorCode::InvalidField => "invalid_field",
            ErrorCode::PayloadTooLarge => "payload_too_large",
            ErrorCode::Unauthenticated => "unauthenticated",
            ErrorCode::InvalidCredentials => "invalid_credentials",
            ErrorCode::MfaRequired => "mfa_required",
            ErrorCode::MfaEnrollmentRequired => "mfa_enrollment_required",
            ErrorCode::LockedOut => "locked_out",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::TenantSuspended => "tenant_suspended",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::NotFound => "not_found",
            ErrorCode::InspectionCaMissing => "inspection_ca_missing",
            ErrorCode::Conflict => "conflict",
            ErrorCode::MethodNotAllowed => "method_not_allowed",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::Internal => "internal",
        }
    }

    /// The HTTP status that goes with the code.
    pub fn http_status(self) -> u16 {
        match self {
            ErrorCode::InvalidRequest | ErrorCode::InvalidField => 400,
            ErrorCode::PayloadTooLarge => 413,
            ErrorCode::Unauthenticated | ErrorCode::InvalidCredentials | ErrorCode::MfaRequired => 401,
            ErrorCode::LockedOut | ErrorCode::RateLimited => 429,
            ErrorCode::TenantSuspended | ErrorCode::Forbidden | ErrorCode::MfaEnrollmentRequired => 403,
            ErrorCode::NotFound | ErrorCode::InspectionCaMissing => 404,
            ErrorCode::Conflict => 409,
            ErrorCode::MethodNotAllowed => 405,
            ErrorCode::Unavailable => 503,
            ErrorCode::Internal => 500,
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

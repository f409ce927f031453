//! Tenants: the customer organisations the operator serves.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The reserved tenant that holds the operator accounts.
pub const SYSTEM_TENANT: &str = "system";

/// Where a tenant is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum TenantState {
    /// In service.
    Active,
    /// Restricted by the operator (violation, unpaid, trial ended): its
    /// accounts cannot sign in and its API keys are refused.
    Suspended,
}

impl TenantState {
    pub fn as_str(self) -> &'static str {
        match self {
            TenantState::Active => "active",
            TenantState::Suspended => "suspended",
        }
    }
}

impl fmt::Display for TenantState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("unknown tenant state {0:?}: expected active or suspended")]
pub struct UnknownState(pub String);

impl FromStr for TenantState {
    type Err = UnknownState;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "active" => Ok(TenantState::Active),
            "suspended" => Ok(TenantState::Suspended),
            _ => Err(UnknownState(s.to_owned())),
        }
    }
}

//! Roles and permissions.
//!
//! A role is a named [`PermissionSet`]. Endpoints ask for a [`Permission`],
//! never for a role, so a finer-grained permission set (a custom role) can be
//! added later without touching any endpoint.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// One thing an account may do. Each endpoint requires exactly one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum Permission {
    /// See the tenants of the service (operator).
    TenantsRead = 0,
    /// Create tenants and change their state (operator).
    TenantsManage,
    /// See the tenant's administrator accounts.
    AccountsRead,
    /// Create, delete and change the role of administrator accounts.
    AccountsManage,
    /// Read the admin audit trail.
    AuditRead,
    /// Read access and web records.
    LogsRead,
    /// See end users and groups.
    UsersRead,
    /// Create and change end users and groups.
    UsersManage,
    /// See devices.
    DevicesRead,
    /// Enrol, revoke and change devices.
    DevicesManage,
    /// See applications and rules.
    PolicyRead,
    /// Change applications and rules.
    PolicyManage,
    /// See tenant settings.
    SettingsRead,
    /// Change tenant settings.
    SettingsManage,
    /// Billing and payment (owner only).
    Billing,
    /// Transfer or give up ownership of the tenant (owner only).
    Ownership,
}

impl Permission {
    pub const ALL: [Permission; 16] = [
        Permission::TenantsRead,
        Permission::TenantsManage,
        Permission::AccountsRead,
        Permission::AccountsManage,
        Permission::AuditRead,
        Permission::LogsRead,
        Permission::UsersRead,
        Permission::UsersManage,
        Permission::DevicesRead,
        Permission::DevicesManage,
        Permission::PolicyRead,
        Permission::PolicyManage,
        Permission::SettingsRead,
        Permission::SettingsManage,
        Permission::Billing,
        Permission::Ownership,
    ];

    /// Stable name used in API responses and the audit trail.
    pub fn as_str(self) -> &'static str {
        match self {
            Permission::TenantsRead => "tenants.read",
            Permission::TenantsManage => "tenants.manage",
            Permission::AccountsRead => "accounts.read",
            Permission::AccountsManage => "accounts.manage",
            Permission::AuditRead => "audit.read",
            Permission::LogsRead => "logs.read",
            Permission::UsersRead => "users.read",
            Permission::UsersManage => "users.manage",
            Permission::DevicesRead => "devices.read",
            Permission::DevicesManage => "devices.manage",
            Permission::PolicyRead => "policy.read",
            Permission::PolicyManage => "policy.manage",
            Permission::SettingsRead => "settings.read",
            Permission::SettingsManage => "settings.manage",
            Permission::Billing => "billing",
            Permission::Ownership => "ownership",
        }
    }

    fn bit(self) -> u32 {
        1 << (self as u8)
    }
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A set of permissions, as a bit set.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct PermissionSet(u32);

impl PermissionSet {
    pub const EMPTY: PermissionSet = PermissionSet(0);

    pub fn of(perms: &[Permission]) -> Self {
        perms.iter().fold(Self::EMPTY, |s, p| s.with(*p))
    }

    pub fn with(self, p: Permission) -> Self {
        PermissionSet(self.0 | p.bit())
    }

    pub fn contains(self, p: Permission) -> bool {
        self.0 & p.bit() != 0
    }

    pub fn is_subset_of(self, other: PermissionSet) -> bool {
        self.0 & !other.0 == 0
    }

    pub fn intersect(self, other: PermissionSet) -> Self {
        PermissionSet(self.0 & other.0)
    }

    pub fn iter(self) -> impl Iterator<Item = Permission> {
        Permission::ALL.into_iter().filter(move |p| self.contains(*p))
    }
}

impl fmt::Debug for PermissionSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter().map(|p| p.as_str())).finish()
    }
}

/// The role of an administrator account within its tenant.
///
/// Every tenant has exactly one `owner`; the others are sub-accounts the owner
/// (or an admin) authorised. Accounts of the reserved `system` tenant are the
/// service's operators: the same roles, applied to the operator's level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// The tenant's one owner: every permission, ownership and billing included.
    Owner,
    /// Everything but ownership and billing.
    Admin,
    /// Read-only, logs and the audit trail included.
    Auditor,
    /// End users and devices only.
    Helpdesk,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Owner, Role::Admin, Role::Auditor, Role::Helpdesk];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::Admin => "admin",
            Role::Auditor => "auditor",
            Role::Helpdesk => "helpdesk",
        }
    }

    /// What this role may do in a customer tenant (`operator == false`) or in
    /// the reserved `system` tenant (`operator == true`).
    pub fn permissions(self, operator: bool) -> PermissionSet {
        use Permission::*;
        if operator {
            // The operator's level: tenants instead of end users and devices.
            return match self {
                Role::Owner => PermissionSet::of(&[
                    TenantsRead,
                    TenantsManage,
                    AccountsRead,
                    AccountsManage,
                    AuditRead,
                    SettingsRead,
                    SettingsManage,
                    Billing,
                    Ownership,
                ]),
                Role::Admin => PermissionSet::of(&[
                    TenantsRead,
                    TenantsManage,
                    AccountsRead,
                    AccountsManage,
                    AuditRead,
                    SettingsRead,
                    SettingsManage,
                ]),
                Role::Auditor => PermissionSet::of(&[TenantsRead, AccountsRead, AuditRead, SettingsRead]),
                Role::Helpdesk => PermissionSet::of(&[TenantsRead]),
            };
        }
        match self {
            Role::Owner => PermissionSet::of(&[
                AccountsRead,
                AccountsManage,
                AuditRead,
                LogsRead,
                UsersRead,
                UsersManage,
                DevicesRead,
                DevicesManage,
                PolicyRead,
                PolicyManage,
                SettingsRead,
                SettingsManage,
                Billing,
                Ownership,
            ]),
            Role::Admin => PermissionSet::of(&[
                AccountsRead,
                AccountsManage,
                AuditRead,
                LogsRead,
                UsersRead,
                UsersManage,
                DevicesRead,
                DevicesManage,
                PolicyRead,
                PolicyManage,
                SettingsRead,
                SettingsManage,
            ]),
            Role::Auditor => PermissionSet::of(&[
                AccountsRead,
                AuditRead,
                LogsRead,
                UsersRead,
                DevicesRead,
                PolicyRead,
                SettingsRead,
            ]),
            Role::Helpdesk => PermissionSet::of(&[UsersRead, UsersManage, DevicesRead, DevicesManage]),
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("unknown role {0:?}: expected owner, admin, auditor or helpdesk")]
pub struct UnknownRole(pub String);

impl FromStr for Role {
    type Err = UnknownRole;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| UnknownRole(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_are_ordered_by_power() {
        for operator in [false, true] {
            let owner = Role::Owner.permissions(operator);
            let admin = Role::Admin.permissions(operator);
            assert!(admin.is_subset_of(owner));
            assert!(Role::Auditor.permissions(operator).is_subset_of(admin));
            assert!(Role::Helpdesk.permissions(operator).is_subset_of(admin));
            assert!(!admin.contains(Permission::Billing));
            assert!(!admin.contains(Permission::Ownership));
        }
    }

    #[test]
    fn auditor_is_read_only() {
        let auditor = Role::Auditor.permissions(false);
        for p in auditor.iter() {
            assert!(p.as_str().ends_with(".read"), "{p} is not a read permission");
        }
        assert!(auditor.contains(Permission::AuditRead));
        assert!(auditor.contains(Permission::LogsRead));
    }

    #[test]
    fn only_operators_manage_tenants() {
        for r in Role::ALL {
            assert!(!r.permissions(false).contains(Permission::TenantsManage));
        }
        assert!(Role::Owner.permissions(true).contains(Permission::TenantsManage));
    }

    #[test]
    fn role_names_round_trip() {
        for r in Role::ALL {
            assert_eq!(r.as_str().parse::<Role>(), Ok(r));
        }
        assert!("root".parse::<Role>().is_err());
    }
}

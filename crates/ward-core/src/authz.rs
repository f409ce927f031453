//! The one authorisation rule.
//!
//! Every API handler states the [`Permission`] it needs and the [`Target`] it
//! acts on, and calls [`authorize`]. The rule is deliberately small:
//!
//! 1. the actor must hold the permission (an API key holds at most what its
//!    account holds, and less when it was created with a narrower role);
//! 2. the target must belong to the actor's tenant;
//! 3. an account may only act on accounts, and grant roles, whose permissions
//!    are a subset of its own; nobody but the owner touches the owner; nobody
//!    changes their own role or deletes themself.
//!
//! So a sub-account can never raise its own role or create an account more
//! powerful than itself.

use crate::role::{Permission, PermissionSet, Role};

/// Who is acting: an authenticated account, possibly through an API key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    pub tenant_id: String,
    pub account_id: String,
    pub role: Role,
    /// True for accounts of the reserved `system` tenant.
    pub operator: bool,
    /// The narrower role an API key was limited to, if any.
    pub key_cap: Option<Role>,
}

impl Actor {
    /// What the actor may do: its role's permissions, capped by the key's.
    pub fn permissions(&self) -> PermissionSet {
        let own = self.role.permissions(self.operator);
        match self.key_cap {
            Some(cap) => own.intersect(cap.permissions(self.operator)),
            None => own,
        }
    }
}

/// What an action is aimed at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target<'a> {
    /// The tenant as a whole (lists, settings, the audit trail).
    Tenant { tenant_id: &'a str },
    /// The service's tenants, for the operator.
    Tenants,
    /// An existing administrator account.
    Account {
        tenant_id: &'a str,
        account_id: &'a str,
        role: Role,
    },
    /// Granting `role` to a new or existing account of the tenant.
    Grant { tenant_id: &'a str, role: Role },
    /// The actor's own credentials (its password, its API keys, its session).
    /// Every authenticated actor may manage these and no permission is
    /// needed, except through an API key limited to a narrower role: such a
    /// key could otherwise mint an unlimited key or reset the password.
    OwnCredentials,
}

/// Why an action was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Denial {
    #[error("this needs the permission {0}")]
    MissingPermission(Permission),
    #[error("that belongs to another tenant")]
    OtherTenant,
    #[error("only the owner manages the owner account, and ownership cannot be granted")]
    OwnerProtected,
    #[error("an account cannot change its own role or delete itself")]
    SelfChange,
    #[error("that would give more power than the acting account has")]
    MorePowerful,
    #[error("an API key limited to a narrower role cannot manage its account's credentials")]
    CappedKey,
}

/// Decide whether `actor` may do what `perm` names to `target`.
pub fn authorize(actor: &Actor, perm: Permission, target: Target<'_>) -> Result<(), Denial> {
    if target == Target::OwnCredentials {
        // A key "capped" at a role at least as strong as its account's is not narrower.
        return match actor.key_cap {
            Some(cap)
                if !actor
                    .role
                    .permissions(actor.operator)
                    .is_subset_of(cap.permissions(actor.operator)) =>
            {
                Err(Denial::CappedKey)
            }
            _ => Ok(()),
        };
    }
    let held = actor.permissions();
    if !held.contains(perm) {
        return Err(Denial::MissingPermission(perm));
    }
    match target {
        Target::OwnCredentials => Ok(()),
        Target::Tenants => {
            if actor.operator {
                Ok(())
            } else {
                Err(Denial::MissingPermission(perm))
            }
        }
        Target::Tenant { tenant_id } => same_tenant(actor, tenant_id),
        Target::Account {
            tenant_id,
            account_id,
            role,
        } => {
            same_tenant(actor, tenant_id)?;
            let reads_only = !matches!(perm, Permission::AccountsManage);
            if reads_only {
                return Ok(());
            }
            if account_id == actor.account_id {
                return Err(Denial::SelfChange);
            }
            if role == Role::Owner {
                return Err(Denial::OwnerProtected);
            }
            if !role.permissions(actor.operator).is_subset_of(held) {
                return Err(Denial::MorePowerful);
            }
            Ok(())
        }
        Target::Grant { tenant_id, role } => {
            same_tenant(actor, tenant_id)?;
            if role == Role::Owner {
                return Err(Denial::OwnerProtected);
            }
            if !role.permissions(actor.operator).is_subset_of(held) {
                return Err(Denial::MorePowerful);
            }
            Ok(())
        }
    }
}

fn same_tenant(actor: &Actor, tenant_id: &str) -> Result<(), Denial> {
    if actor.tenant_id == tenant_id {
        Ok(())
    } else {
        Err(Denial::OtherTenant)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn actor(role: Role) -> Actor {
        Actor {
            tenant_id: "t1".into(),
            account_id: "a1".into(),
            role,
            operator: false,
            key_cap: None,
        }
    }

    #[test]
    fn auditor_reads_audit_but_cannot_create_accounts() {
        let a = actor(Role::Auditor);
        assert_eq!(
            authorize(&a, Permission::AuditRead, Target::Tenant { tenant_id: "t1" }),
            Ok(())
        );
        assert_eq!(
            authorize(
                &a,
                Permission::AccountsManage,
                Target::Grant {
                    tenant_id: "t1",
                    role: Role::Helpdesk
                }
            ),
            Err(Denial::MissingPermission(Permission::AccountsManage))
        );
    }

    #[test]
    fn other_tenant_is_refused_even_for_the_owner() {
        let a = actor(Role::Owner);
        assert_eq!(
            authorize(&a, Permission::AuditRead, Target::Tenant { tenant_id: "t2" }),
            Err(Denial::OtherTenant)
        );
    }

    #[test]
    fn admin_cannot_touch_owner_or_itself() {
        let a = actor(Role::Admin);
        let owner = Target::Account {
            tenant_id: "t1",
            account_id: "o",
            role: Role::Owner,
        };
        assert_eq!(
            authorize(&a, Permission::AccountsManage, owner),
            Err(Denial::OwnerProtected)
        );
        let me = Target::Account {
            tenant_id: "t1",
            account_id: "a1",
            role: Role::Admin,
        };
        assert_eq!(authorize(&a, Permission::AccountsManage, me), Err(Denial::SelfChange));
        assert_eq!(authorize(&a, Permission::AccountsRead, me), Ok(()));
        let grant_owner = Target::Grant {
            tenant_id: "t1",
            role: Role::Owner,
        };
        assert_eq!(
            authorize(&a, Permission::AccountsManage, grant_owner),
            Err(Denial::OwnerProtected)
        );
    }

    #[test]
    fn api_key_is_capped() {
        let mut a = actor(Role::Owner);
        a.key_cap = Some(Role::Auditor);
        assert!(authorize(&a, Permission::AuditRead, Target::Tenant { tenant_id: "t1" }).is_ok());
        assert!(authorize(
            &a,
            Permission::AccountsManage,
            Target::Grant {
                tenant_id: "t1",
                role: Role::Auditor
            }
        )
        .is_err());
        assert_eq!(
            authorize(&a, Permission::AuditRead, Target::OwnCredentials),
            Err(Denial::CappedKey)
        );
        a.key_cap = None;
        assert_eq!(authorize(&a, Permission::AuditRead, Target::OwnCredentials), Ok(()));
        let mut admin = actor(Role::Admin);
        admin.key_cap = Some(Role::Owner);
        assert_eq!(
            authorize(&admin, Permission::AuditRead, Target::OwnCredentials),
            Ok(()),
            "not narrower"
        );
    }

    #[test]
    fn only_operators_reach_tenants() {
        let a = actor(Role::Owner);
        assert!(authorize(&a, Permission::TenantsRead, Target::Tenants).is_err());
        let mut op = actor(Role::Owner);
        op.operator = true;
        assert!(authorize(&op, Permission::TenantsManage, Target::Tenants).is_ok());
    }

    fn any_role() -> impl Strategy<Value = Role> {
        prop::sample::select(Role::ALL.to_vec())
    }

    proptest! {
        /// No grant an actor is allowed to make yields more permissions than it holds,
        /// and no actor may ever change its own role.
        #[test]
        fn never_escalates(role in any_role(), cap in prop::option::of(any_role()), grant in any_role(), operator in any::<bool>()) {
            let a = Actor { tenant_id: "t".into(), account_id: "me".into(), role, operator, key_cap: cap };
            if authorize(&a, Permission::AccountsManage, Target::Grant { tenant_id: "t", role: grant }).is_ok() {
                prop_assert!(grant.permissions(operator).is_subset_of(a.permissions()));
                prop_assert!(grant != Role::Owner);
            }
            let me = Target::Account { tenant_id: "t", account_id: "me", role };
            prop_assert!(authorize(&a, Permission::AccountsManage, me).is_err());
        }
    }
}

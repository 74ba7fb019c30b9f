//! Who is calling, as established by a verified token.

use crate::{Role, TenantId};

/// The verified identity behind a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The token's `sub`.
    pub subject: String,
    /// The tenants the principal may act for.
    pub tenants: Vec<TenantId>,
    /// The principal's roles.
    pub roles: Vec<Role>,
    /// The principal's scopes, one per entry.
    pub scopes: Vec<String>,
}

impl Principal {
    /// Whether the token lists `tenant`. No scope widens this: a fleet token
    /// acts only for the tenants it names.
    pub fn may_act_for(&self, tenant: TenantId) -> bool {
        self.tenants.contains(&tenant)
    }

    /// The most powerful role held, if any.
    pub fn highest_role(&self) -> Option<Role> {
        self.roles.iter().copied().max()
    }

    /// Whether `scope` was granted.
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes.iter().any(|s| s == scope)
    }
}

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::*;

    #[test]
    fn answers_membership_role_and_scope_questions() {
        let a = TenantId::new(Uuid::new_v4());
        let principal = Principal {
            subject: "u".into(),
            tenants: vec![a],
            roles: vec![Role::Viewer, Role::Admin, Role::Analyst],
            scopes: vec!["fleet:read".into()],
        };
        assert!(principal.may_act_for(a));
        assert!(!principal.may_act_for(TenantId::new(Uuid::new_v4())));
        assert_eq!(principal.highest_role(), Some(Role::Admin));
        assert!(principal.has_scope("fleet:read"));
        assert!(!principal.has_scope("fleet"));
    }

    #[test]
    fn no_roles_means_no_highest_role() {
        let principal = Principal {
            subject: "u".into(),
            tenants: vec![],
            roles: vec![],
            scopes: vec![],
        };
        assert_eq!(principal.highest_role(), None);
    }
}

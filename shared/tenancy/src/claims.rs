//! The JWT claims set adscope issues and accepts.

use serde::{Deserialize, Serialize};

use crate::{Role, TenantId};

/// The scope that grants the cross-tenant fleet view.
pub const FLEET_READ: &str = "fleet:read";

/// The `aud` claim: RFC 7519 allows one string or an array of them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Audience {
    /// A single audience.
    One(String),
    /// Several audiences.
    Many(Vec<String>),
}

impl Audience {
    /// Whether `audience` is among the values.
    pub fn contains(&self, audience: &str) -> bool {
        match self {
            Self::One(one) => one == audience,
            Self::Many(many) => many.iter().any(|a| a == audience),
        }
    }
}

/// The claims of an adscope access token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// Issuer.
    pub iss: String,
    /// Audience.
    pub aud: Audience,
    /// Subject: the user or service the token was issued to.
    pub sub: String,
    /// Expiry, seconds since the Unix epoch.
    pub exp: u64,
    /// Not valid before, seconds since the Unix epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<u64>,
    /// Issued at, seconds since the Unix epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<u64>,
    /// The tenants the subject may act for.
    #[serde(default)]
    pub tenants: Vec<TenantId>,
    /// The subject's roles, applying to each of its tenants.
    #[serde(default)]
    pub roles: Vec<Role>,
    /// Space-separated OAuth-style scopes, such as [`FLEET_READ`].
    #[serde(default)]
    pub scope: String,
}

impl Claims {
    /// The individual scopes of the `scope` claim.
    pub fn scopes(&self) -> impl Iterator<Item = &str> {
        self.scope.split_ascii_whitespace()
    }
}

#[cfg(test)]
mod tests {
    // Tests may unwrap: a panic is the failure report.
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn aud_may_be_a_string_or_an_array_and_lists_default_to_empty() {
        let one: Claims =
            serde_json::from_str(r#"{"iss":"i","aud":"adscope","sub":"s","exp":1}"#).unwrap();
        assert!(one.aud.contains("adscope"));
        assert!(one.tenants.is_empty() && one.roles.is_empty() && one.scope.is_empty());

        let many: Claims = serde_json::from_str(
            r#"{"iss":"i","aud":["x","adscope"],"sub":"s","exp":1,"scope":"a fleet:read"}"#,
        )
        .unwrap();
        assert!(many.aud.contains("adscope"));
        assert!(!many.aud.contains("other"));
        assert_eq!(many.scopes().collect::<Vec<_>>(), ["a", FLEET_READ]);
    }
}

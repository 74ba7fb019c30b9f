//! The roles a principal can hold within its tenants, ordered by power.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// What a principal may do in a tenant; each role includes the ones below it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Reads.
    Viewer,
    /// Reads and writes analytics data.
    Analyst,
    /// Everything, including connections and credentials.
    Admin,
}

impl Role {
    /// The name used in tokens and on the command line.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Viewer => "viewer",
            Self::Analyst => "analyst",
            Self::Admin => "admin",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A role name other than `viewer`, `analyst` or `admin`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown role {0:?}: expected viewer, analyst or admin")]
pub struct InvalidRole(String);

impl FromStr for Role {
    type Err = InvalidRole;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "viewer" => Ok(Self::Viewer),
            "analyst" => Ok(Self::Analyst),
            "admin" => Ok(Self::Admin),
            _ => Err(InvalidRole(s.to_owned())),
        }
    }
}

#[cfg(test)]
mod tests {
    // Tests may unwrap: a panic is the failure report.
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn roles_are_ordered_by_power() {
        assert!(Role::Viewer < Role::Analyst);
        assert!(Role::Analyst < Role::Admin);
    }

    #[test]
    fn names_round_trip_through_str_and_serde() {
        for role in [Role::Viewer, Role::Analyst, Role::Admin] {
            assert_eq!(role.to_string().parse::<Role>().unwrap(), role);
            let json = serde_json::to_string(&role).unwrap();
            assert_eq!(json, format!("\"{role}\""));
        }
        assert!("owner".parse::<Role>().is_err());
    }
}

//! The tenant identifier every scoped call and row carries.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A tenant (an agency or a brand): the unit of isolation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TenantId(Uuid);

impl TenantId {
    /// Wraps a UUID that names a tenant.
    pub const fn new(id: Uuid) -> Self {
        Self(id)
    }

    /// The UUID, for binding into queries.
    pub const fn as_uuid(&self) -> &Uuid {
        &self.0
    }
}

impl From<Uuid> for TenantId {
    fn from(id: Uuid) -> Self {
        Self(id)
    }
}

impl From<TenantId> for Uuid {
    fn from(id: TenantId) -> Self {
        id.0
    }
}

impl fmt::Display for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0.hyphenated(), f)
    }
}

/// A string that is not a UUID was given as a tenant id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("tenant id must be a UUID")]
pub struct InvalidTenantId;

impl FromStr for TenantId {
    type Err = InvalidTenantId;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Uuid::parse_str(s.trim())
            .map(Self)
            .map_err(|_| InvalidTenantId)
    }
}

#[cfg(test)]
mod tests {
    // Tests may unwrap: a panic is the failure report.
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn display_is_hyphenated_and_round_trips() {
        let id = TenantId::new(Uuid::new_v4());
        let text = id.to_string();
        assert_eq!(text.len(), 36);
        assert_eq!(text.parse::<TenantId>().unwrap(), id);
    }

    #[test]
    fn rejects_non_uuid() {
        assert_eq!("tenant-a".parse::<TenantId>(), Err(InvalidTenantId));
    }

    #[test]
    fn serde_is_a_bare_string() {
        let id = TenantId::new(Uuid::new_v4());
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(json, format!("\"{id}\""));
        assert_eq!(serde_json::from_str::<TenantId>(&json).unwrap(), id);
    }
}

//! The PostgreSQL login role of each service.

/// The service a pool logs in for. Each has its own role: no superuser, no
/// `BYPASSRLS` except the read-only health role, grants on its own tables only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ServiceRole {
    Analytics,
    Integrations,
    Health,
}

impl ServiceRole {
    /// Every service role, in a stable order.
    pub const ALL: [ServiceRole; 3] = [
        ServiceRole::Analytics,
        ServiceRole::Integrations,
        ServiceRole::Health,
    ];

    /// The login role name in PostgreSQL.
    pub fn login_role(&self) -> &'static str {
        match self {
            ServiceRole::Analytics => "adscope_analytics",
            ServiceRole::Integrations => "adscope_integrations",
            ServiceRole::Health => "adscope_health",
        }
    }

    /// The `application_name` its connections report.
    pub fn application_name(&self) -> &'static str {
        match self {
            ServiceRole::Analytics => "adscope-analytics",
            ServiceRole::Integrations => "adscope-integrations",
            ServiceRole::Health => "adscope-health",
        }
    }
}

impl std::fmt::Display for ServiceRole {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.login_role())
    }
}

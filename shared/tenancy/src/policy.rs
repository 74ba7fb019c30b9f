//! Which access each gRPC method requires; anything unlisted is refused.

use std::collections::HashMap;

use crate::Role;

/// The access a method requires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// No token needed: health checks and reflection.
    Public,
    /// A token for the tenant in `x-tenant-id`, holding at least `min_role`.
    Tenant {
        /// The lowest role allowed.
        min_role: Role,
    },
    /// A token with the `fleet:read` scope; no tenant.
    Fleet,
}

/// Access rules keyed by gRPC service and method.
#[derive(Debug, Clone)]
pub struct MethodPolicy {
    services: HashMap<String, Access>,
    methods: HashMap<String, Access>,
}

impl Default for MethodPolicy {
    fn default() -> Self {
        Self::new()
    }
}

impl MethodPolicy {
    /// Services every adscope server exposes without a token.
    pub const PUBLIC_SERVICES: [&'static str; 3] = [
        "grpc.health.v1.Health",
        "grpc.reflection.v1.ServerReflection",
        "grpc.reflection.v1alpha.ServerReflection",
    ];

    /// A policy where only health and reflection are reachable.
    pub fn new() -> Self {
        let services = Self::PUBLIC_SERVICES
            .iter()
            .map(|name| ((*name).to_owned(), Access::Public))
            .collect();
        Self {
            services,
            methods: HashMap::new(),
        }
    }

    /// The default access for every method of `service` (a fully qualified
    /// name such as `adscope.analytics.v1.CampaignService`).
    pub fn service(mut self, service: impl Into<String>, access: Access) -> Self {
        self.services.insert(service.into(), access);
        self
    }

    /// The access for one method path (`/package.Service/Method`), overriding
    /// its service's default.
    pub fn method(mut self, path: impl Into<String>, access: Access) -> Self {
        self.methods.insert(path.into(), access);
        self
    }

    /// The access for a request path: the method's own rule, else its
    /// service's, else none (and the call is refused).
    pub fn access(&self, path: &str) -> Option<Access> {
        if let Some(access) = self.methods.get(path) {
            return Some(*access);
        }
        let service = path.strip_prefix('/')?.split_once('/')?.0;
        self.services.get(service).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CAMPAIGNS: &str = "adscope.analytics.v1.CampaignService";

    #[test]
    fn method_overrides_service_and_unknown_is_none() {
        let policy = MethodPolicy::new()
            .service(
                CAMPAIGNS,
                Access::Tenant {
                    min_role: Role::Analyst,
                },
            )
            .method(
                "/adscope.analytics.v1.CampaignService/GetCampaign",
                Access::Tenant {
                    min_role: Role::Viewer,
                },
            );
        assert_eq!(
            policy.access("/adscope.analytics.v1.CampaignService/GetCampaign"),
            Some(Access::Tenant {
                min_role: Role::Viewer
            })
        );
        assert_eq!(
            policy.access("/adscope.analytics.v1.CampaignService/DeleteCampaign"),
            Some(Access::Tenant {
                min_role: Role::Analyst
            })
        );
        assert_eq!(policy.access("/adscope.analytics.v1.AdService/GetAd"), None);
        assert_eq!(
            policy.access("/grpc.health.v1.Health/Check"),
            Some(Access::Public)
        );
        assert_eq!(policy.access("garbage"), None);
    }
}

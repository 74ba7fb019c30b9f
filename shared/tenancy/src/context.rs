//! The identity a call is served under: one tenant, or the fleet view.

use std::future::Future;
use std::sync::Arc;

use tokio::task::futures::TaskLocalFuture;

use crate::{Credential, Principal, Role, TenantId};

tokio::task_local! {
    // The context of the call the current task is serving, so that outgoing
    // calls and database work find it without threading it through every
    // signature.
    pub(crate) static CURRENT: TenantContext;
}

/// A call acting for exactly one tenant, on behalf of a verified principal.
#[derive(Debug, Clone)]
pub struct TenantContext {
    tenant: TenantId,
    principal: Arc<Principal>,
    credential: Option<Credential>,
}

impl TenantContext {
    /// A context for `tenant`. The server layer builds this only after checking
    /// that the principal may act for the tenant; jobs build it for the tenant
    /// they are working on.
    pub fn new(
        tenant: TenantId,
        principal: Arc<Principal>,
        credential: Option<Credential>,
    ) -> Self {
        Self {
            tenant,
            principal,
            credential,
        }
    }

    /// The tenant the call acts for.
    pub fn tenant_id(&self) -> TenantId {
        self.tenant
    }

    /// Who is calling.
    pub fn principal(&self) -> &Principal {
        &self.principal
    }

    /// The caller's most powerful role.
    pub fn role(&self) -> Option<Role> {
        self.principal.highest_role()
    }

    /// The caller's token, to forward on calls to other services.
    pub fn credential(&self) -> Option<&Credential> {
        self.credential.as_ref()
    }

    /// Refuses the call unless the caller holds `min` or a higher role.
    pub fn require_role(&self, min: Role) -> Result<(), tonic::Status> {
        match self.role() {
            Some(role) if role >= min => Ok(()),
            Some(role) => Err(tonic::Status::permission_denied(format!(
                "this method needs role {min} or higher; the token grants {role}"
            ))),
            None => Err(tonic::Status::permission_denied(format!(
                "this method needs role {min} or higher; the token grants no role"
            ))),
        }
    }

    /// Runs `fut` with this context as [`TenantContext::current`].
    pub fn scope<F: Future>(self, fut: F) -> TaskLocalFuture<TenantContext, F> {
        CURRENT.scope(self, fut)
    }

    /// The context of the call being served by this task, if any.
    pub fn current() -> Option<TenantContext> {
        CURRENT.try_with(Clone::clone).ok()
    }
}

/// A call using the cross-tenant fleet view (a `fleet:read` token).
#[derive(Debug, Clone)]
pub struct FleetContext {
    principal: Arc<Principal>,
    credential: Option<Credential>,
}

impl FleetContext {
    /// A fleet context for a principal already checked for `fleet:read`.
    pub fn new(principal: Arc<Principal>, credential: Option<Credential>) -> Self {
        Self {
            principal,
            credential,
        }
    }

    /// Who is calling.
    pub fn principal(&self) -> &Principal {
        &self.principal
    }

    /// The caller's token.
    pub fn credential(&self) -> Option<&Credential> {
        self.credential.as_ref()
    }
}

/// The tenant context the server layer attached to a request.
///
/// Its absence means the layer did not run for this method, so the call is
/// refused rather than served without a tenant.
pub fn tenant_context<T>(req: &tonic::Request<T>) -> Result<&TenantContext, tonic::Status> {
    req.extensions().get::<TenantContext>().ok_or_else(|| {
        tonic::Status::unauthenticated(
            "no tenant context: send `authorization` and `x-tenant-id` metadata",
        )
    })
}

/// The fleet context the server layer attached to a request; refused when absent.
pub fn fleet_context<T>(req: &tonic::Request<T>) -> Result<&FleetContext, tonic::Status> {
    req.extensions().get::<FleetContext>().ok_or_else(|| {
        tonic::Status::unauthenticated("no fleet context: send a `fleet:read` bearer token")
    })
}

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::*;

    fn context(roles: Vec<Role>) -> TenantContext {
        let principal = Principal {
            subject: "u".into(),
            tenants: vec![],
            roles,
            scopes: vec![],
        };
        TenantContext::new(
            TenantId::new(Uuid::new_v4()),
            Arc::new(principal),
            Some(Credential::new("t")),
        )
    }

    #[tokio::test]
    async fn current_is_set_inside_scope_only() {
        let ctx = context(vec![Role::Viewer]);
        let tenant = ctx.tenant_id();
        assert!(TenantContext::current().is_none());
        let seen = ctx
            .scope(async { TenantContext::current().map(|c| c.tenant_id()) })
            .await;
        assert_eq!(seen, Some(tenant));
        assert!(TenantContext::current().is_none());
    }

    #[test]
    fn require_role_denies_lower_and_missing_roles() {
        assert!(
            context(vec![Role::Analyst])
                .require_role(Role::Analyst)
                .is_ok()
        );
        let low = context(vec![Role::Viewer]).require_role(Role::Analyst);
        assert_eq!(
            low.map_err(|s| s.code()),
            Err(tonic::Code::PermissionDenied)
        );
        let none = context(vec![]).require_role(Role::Viewer);
        assert_eq!(
            none.map_err(|s| s.code()),
            Err(tonic::Code::PermissionDenied)
        );
    }

    #[test]
    fn debug_does_not_print_the_token() {
        let printed = format!("{:?}", context(vec![]));
        assert!(printed.contains("<redacted>"));
        assert!(!printed.contains("\"t\""));
    }

    #[test]
    fn missing_extension_is_unauthenticated() {
        let req = tonic::Request::new(());
        assert_eq!(
            tenant_context(&req).map(|_| ()).map_err(|s| s.code()),
            Err(tonic::Code::Unauthenticated)
        );
        assert_eq!(
            fleet_context(&req).map(|_| ()).map_err(|s| s.code()),
            Err(tonic::Code::Unauthenticated)
        );
    }
}

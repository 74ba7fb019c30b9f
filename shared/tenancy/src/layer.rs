//! The server layer: metadata in, a tenant or fleet context (or a refusal) out.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use pin_project_lite::pin_project;
use tokio::task::futures::TaskLocalFuture;
use tonic::Status;
use tonic::body::Body;
use tower::{Layer, Service};

use crate::context::CURRENT;
use crate::{
    Access, Credential, FLEET_READ, FleetContext, MethodPolicy, Principal, TenantContext, TenantId,
    Verifier,
};

/// Metadata key naming the tenant a call acts for.
pub const TENANT_HEADER: &str = "x-tenant-id";

/// Applies [`TenantService`] to every method of a server.
#[derive(Debug, Clone)]
pub struct TenantLayer {
    verifier: Arc<Verifier>,
    policy: Arc<MethodPolicy>,
}

impl TenantLayer {
    /// A layer checking tokens with `verifier` against `policy`.
    pub fn new(verifier: Arc<Verifier>, policy: Arc<MethodPolicy>) -> Self {
        Self { verifier, policy }
    }
}

impl<S> Layer<S> for TenantLayer {
    type Service = TenantService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        TenantService {
            inner,
            verifier: Arc::clone(&self.verifier),
            policy: Arc::clone(&self.policy),
        }
    }
}

/// Authenticates and authorises each call before the inner service sees it.
#[derive(Debug, Clone)]
pub struct TenantService<S> {
    inner: S,
    verifier: Arc<Verifier>,
    policy: Arc<MethodPolicy>,
}

/// What a request was found to be allowed to do.
enum Admitted {
    Public,
    Fleet(FleetContext),
    Tenant(TenantContext),
}

impl<S> TenantService<S> {
    fn admit<B>(&self, req: &http::Request<B>) -> Result<Admitted, Status> {
        let path = req.uri().path();
        let access = self
            .policy
            .access(path)
            .ok_or_else(|| Status::permission_denied(format!("no access policy for {path}")))?;

        let min_role = match access {
            Access::Public => return Ok(Admitted::Public),
            Access::Fleet => {
                let (principal, credential) = self.authenticate(req.headers())?;
                if !principal.has_scope(FLEET_READ) {
                    return Err(Status::permission_denied(format!(
                        "{path} needs a bearer token with scope `{FLEET_READ}`"
                    )));
                }
                return Ok(Admitted::Fleet(FleetContext::new(
                    principal,
                    Some(credential),
                )));
            }
            Access::Tenant { min_role } => min_role,
        };

        let (principal, credential) = self.authenticate(req.headers())?;
        let tenant = requested_tenant(req.headers())?;

        // Membership is checked on the token's own list: no scope, fleet or
        // otherwise, stands in for it.
        if !principal.may_act_for(tenant) {
            return Err(Status::permission_denied(format!(
                "the bearer token does not grant access to tenant {tenant} (from `{TENANT_HEADER}`)"
            )));
        }

        let context = TenantContext::new(tenant, principal, Some(credential));
        context.require_role(min_role)?;
        Ok(Admitted::Tenant(context))
    }

    fn authenticate(
        &self,
        headers: &http::HeaderMap,
    ) -> Result<(Arc<Principal>, Credential), Status> {
        let token = bearer_token(headers)?;
        let principal = self
            .verifier
            .verify(token)
            .map_err(|error| Status::unauthenticated(error.to_string()))?;
        Ok((Arc::new(principal), Credential::new(token)))
    }
}

fn bearer_token(headers: &http::HeaderMap) -> Result<&str, Status> {
    let value = headers.get(http::header::AUTHORIZATION).ok_or_else(|| {
        Status::unauthenticated("missing `authorization` metadata: send `Bearer <token>`")
    })?;
    let malformed = || Status::unauthenticated("`authorization` metadata must be `Bearer <token>`");
    let value = value.to_str().map_err(|_| malformed())?;
    let (scheme, token) = value.split_once(' ').ok_or_else(malformed)?;
    let token = token.trim();
    if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() {
        return Err(malformed());
    }
    Ok(token)
}

fn requested_tenant(headers: &http::HeaderMap) -> Result<TenantId, Status> {
    let value = headers.get(TENANT_HEADER).ok_or_else(|| {
        Status::unauthenticated(format!(
            "missing `{TENANT_HEADER}` metadata: name the tenant this call acts for"
        ))
    })?;
    let invalid = || Status::invalid_argument(format!("`{TENANT_HEADER}` metadata must be a UUID"));
    value
        .to_str()
        .map_err(|_| invalid())?
        .parse()
        .map_err(|_| invalid())
}

impl<S, B> Service<http::Request<B>> for TenantService<S>
where
    S: Service<http::Request<B>, Response = http::Response<Body>> + Clone + Send + 'static,
    S::Future: Send,
{
    type Response = http::Response<Body>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: http::Request<B>) -> Self::Future {
        let kind = match self.admit(&req) {
            Err(status) => Kind::Refused {
                response: Some(status.into_http()),
            },
            Ok(Admitted::Public) => Kind::Plain {
                future: self.inner.call(req),
            },
            Ok(Admitted::Fleet(fleet)) => {
                tracing::Span::current().record("adscope.scope", "fleet");
                req.extensions_mut().insert(fleet);
                Kind::Plain {
                    future: self.inner.call(req),
                }
            }
            Ok(Admitted::Tenant(context)) => {
                tracing::Span::current()
                    .record("tenant.id", tracing::field::display(context.tenant_id()));
                req.extensions_mut().insert(context.clone());

                // The inner service may start work while building its future,
                // so that happens inside the scope too, not only the polling.
                let inner = &mut self.inner;
                let future = CURRENT.sync_scope(context.clone(), || inner.call(req));
                Kind::Scoped {
                    future: context.scope(future),
                }
            }
        };
        ResponseFuture { kind }
    }
}

pin_project! {
    /// The response of a [`TenantService`]: a refusal, or the inner call.
    pub struct ResponseFuture<F> {
        #[pin]
        kind: Kind<F>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<F> {
        Refused { response: Option<http::Response<Body>> },
        Plain { #[pin] future: F },
        Scoped { #[pin] future: TaskLocalFuture<TenantContext, F> },
    }
}

impl<F> fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl<F, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<http::Response<Body>, E>>,
{
    type Output = Result<http::Response<Body>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            KindProj::Refused { response } => Poll::Ready(Ok(response
                .take()
                .expect("ResponseFuture polled after completion"))),
            KindProj::Plain { future } => future.poll(cx),
            KindProj::Scoped { future } => future.poll(cx),
        }
    }
}

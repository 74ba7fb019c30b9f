//! The client layer: the current tenant context out into outgoing metadata.

use std::task::{Context, Poll};

use http::HeaderValue;
use tower::{Layer, Service};

use crate::TenantContext;
use crate::layer::TENANT_HEADER;

/// Wraps a channel so that calls carry the caller's tenant, token and trace.
#[derive(Debug, Clone, Copy, Default)]
pub struct PropagationLayer;

impl PropagationLayer {
    /// The layer; it has no settings.
    pub fn new() -> Self {
        Self
    }
}

impl<S> Layer<S> for PropagationLayer {
    type Service = PropagationService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        PropagationService { inner }
    }
}

/// Copies identity and trace context into each outgoing request.
///
/// A [`TenantContext`] in the request's extensions wins over
/// [`TenantContext::current`]. With neither, no identity is sent and the
/// callee refuses the call.
#[derive(Debug, Clone)]
pub struct PropagationService<S> {
    inner: S,
}

impl<S> PropagationService<S> {
    /// Wraps `inner` (a tonic `Channel`, typically).
    pub fn new(inner: S) -> Self {
        Self { inner }
    }
}

impl<S, B> Service<http::Request<B>> for PropagationService<S>
where
    S: Service<http::Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: http::Request<B>) -> Self::Future {
        let context = req
            .extensions()
            .get::<TenantContext>()
            .cloned()
            .or_else(TenantContext::current);
        let headers = req.headers_mut();

        if let Some(context) = context {
            // Overwrite whatever is there: the call is authorised for exactly
            // the context's tenant, with the context's own credential.
            headers.remove(http::header::AUTHORIZATION);
            if let Some(credential) = context.credential()
                && let Ok(mut value) =
                    HeaderValue::from_str(&format!("Bearer {}", credential.expose()))
            {
                value.set_sensitive(true);
                headers.insert(http::header::AUTHORIZATION, value);
            }
            if let Ok(value) = HeaderValue::from_str(&context.tenant_id().to_string()) {
                headers.insert(TENANT_HEADER, value);
            }
        }

        // Trace context carries no authority, so it travels even without a
        // tenant and keeps such calls in the caller's trace.
        adscope_telemetry::propagation::inject_current(headers);

        self.inner.call(req)
    }
}

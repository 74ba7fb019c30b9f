//! The client layer: what reaches the wire inside and outside a tenant scope.

// Tests may unwrap: a panic is the failure report.
#![allow(clippy::unwrap_used)]

mod support;

use std::convert::Infallible;
use std::sync::Arc;

use adscope_tenancy::{
    Credential, Principal, PropagationLayer, PropagationService, Role, TenantContext, TenantId,
};
use support::tenant;
use tonic::body::Body;
use tower::{ServiceBuilder, ServiceExt, service_fn};

/// Sends an empty request through the layer and returns the headers the
/// channel would have sent.
async fn outgoing(request: http::Request<Body>) -> http::HeaderMap {
    let channel =
        service_fn(
            |req: http::Request<Body>| async move { Ok::<_, Infallible>(req.headers().clone()) },
        );
    let service = ServiceBuilder::new()
        .layer(PropagationLayer::new())
        .service(channel);
    service.oneshot(request).await.unwrap()
}

fn request() -> http::Request<Body> {
    http::Request::builder()
        .uri("http://analytics/x.Y/Z")
        .body(Body::empty())
        .unwrap()
}

fn context(tenant: TenantId, token: &str) -> TenantContext {
    let principal = Principal {
        subject: "svc".into(),
        tenants: vec![tenant],
        roles: vec![Role::Viewer],
        scopes: vec![],
    };
    TenantContext::new(tenant, Arc::new(principal), Some(Credential::new(token)))
}

#[tokio::test]
async fn inside_scope_sends_token_and_tenant() {
    let a = tenant();
    let headers = context(a, "tok-a").scope(outgoing(request())).await;
    assert_eq!(headers.get("authorization").unwrap(), "Bearer tok-a");
    assert!(headers.get("authorization").unwrap().is_sensitive());
    assert_eq!(
        headers.get("x-tenant-id").unwrap().to_str().unwrap(),
        a.to_string()
    );
}

#[tokio::test]
async fn outside_scope_sends_no_identity() {
    let headers = outgoing(request()).await;
    assert!(headers.get("authorization").is_none());
    assert!(headers.get("x-tenant-id").is_none());
}

#[tokio::test]
async fn context_in_extensions_wins_over_current() {
    let (a, b) = (tenant(), tenant());
    let mut req = request();
    req.extensions_mut().insert(context(b, "tok-b"));
    let headers = context(a, "tok-a").scope(outgoing(req)).await;
    assert_eq!(headers.get("authorization").unwrap(), "Bearer tok-b");
    assert_eq!(
        headers.get("x-tenant-id").unwrap().to_str().unwrap(),
        b.to_string()
    );
}

#[test]
fn wraps_a_tonic_channel_as_a_grpc_service() {
    // Generated clients take any `GrpcService<Body>`; this fails to compile
    // if the layer's bounds stop fitting tonic's blanket impl.
    fn is_grpc_service<T>()
    where
        T: tonic::client::GrpcService<Body> + Clone + Send + 'static,
        T::ResponseBody: tonic::codegen::Body<Data = tonic::codegen::Bytes> + Send + 'static,
        <T::ResponseBody as tonic::codegen::Body>::Error: Into<tonic::codegen::StdError> + Send,
    {
    }
    is_grpc_service::<PropagationService<tonic::transport::Channel>>();
}

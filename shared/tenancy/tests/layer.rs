//! The server layer, driven as a tower service, for every row of the status table.

// Tests may unwrap: a panic is the failure report.
#![allow(clippy::unwrap_used)]

mod support;

use std::convert::Infallible;
use std::sync::Arc;

use adscope_tenancy::{
    Access, FLEET_READ, FleetContext, MethodPolicy, Role, TenantContext, TenantId, TenantLayer,
};
use support::*;
use tonic::body::Body;
use tower::{Layer, ServiceExt, service_fn};

const CAMPAIGNS: &str = "adscope.analytics.v1.CampaignService";
const GET: &str = "/adscope.analytics.v1.CampaignService/GetCampaign";
const CREATE: &str = "/adscope.analytics.v1.CampaignService/CreateCampaign";
const FLEET_STATUS: &str = "/adscope.fleet.v1.FleetService/GetFleetStatus";
const HEALTH: &str = "/grpc.health.v1.Health/Check";

/// What the inner service saw: the task-local context while it ran.
#[derive(Clone, Debug)]
struct SeenCurrent(Option<TenantId>);

fn policy() -> MethodPolicy {
    MethodPolicy::new()
        .service(
            CAMPAIGNS,
            Access::Tenant {
                min_role: Role::Viewer,
            },
        )
        .method(
            CREATE,
            Access::Tenant {
                min_role: Role::Analyst,
            },
        )
        .service("adscope.fleet.v1.FleetService", Access::Fleet)
}

/// Sends one request through the layer to an inner service that answers OK
/// and echoes the contexts it found.
async fn call(path: &str, headers: &[(&str, String)]) -> http::Response<Body> {
    let inner = service_fn(|req: http::Request<Body>| async move {
        let mut response = http::Response::new(Body::empty());
        response
            .headers_mut()
            .insert("grpc-status", http::HeaderValue::from_static("0"));
        if let Some(context) = req.extensions().get::<TenantContext>() {
            response.extensions_mut().insert(context.clone());
        }
        if let Some(fleet) = req.extensions().get::<FleetContext>() {
            response.extensions_mut().insert(fleet.clone());
        }
        let current = TenantContext::current().map(|c| c.tenant_id());
        response.extensions_mut().insert(SeenCurrent(current));
        Ok::<_, Infallible>(response)
    });
    let service = TenantLayer::new(Arc::new(verifier()), Arc::new(policy())).layer(inner);

    let mut request = http::Request::builder()
        .method("POST")
        .uri(format!("http://test{path}"));
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    let request = request.body(Body::empty()).unwrap();
    service.oneshot(request).await.unwrap()
}

fn bearer(token: &str) -> (&'static str, String) {
    ("authorization", format!("Bearer {token}"))
}

fn tenant_header(tenant: TenantId) -> (&'static str, String) {
    ("x-tenant-id", tenant.to_string())
}

fn grpc_status(response: &http::Response<Body>) -> &str {
    response
        .headers()
        .get("grpc-status")
        .unwrap()
        .to_str()
        .unwrap()
}

fn grpc_message(response: &http::Response<Body>) -> String {
    let raw = response
        .headers()
        .get("grpc-message")
        .map(|v| v.to_str().unwrap().to_owned());
    let raw = raw.unwrap_or_default();
    percent_decode(&raw)
}

fn percent_decode(raw: &str) -> String {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap();
            out.push(u8::from_str_radix(hex, 16).unwrap());
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).unwrap()
}

const OK: &str = "0";
const INVALID_ARGUMENT: &str = "3";
const PERMISSION_DENIED: &str = "7";
const UNAUTHENTICATED: &str = "16";

#[tokio::test]
async fn no_token_is_unauthenticated_and_names_the_key() {
    let response = call(GET, &[tenant_header(tenant())]).await;
    assert_eq!(grpc_status(&response), UNAUTHENTICATED);
    assert!(grpc_message(&response).contains("authorization"));
}

#[tokio::test]
async fn non_bearer_scheme_is_unauthenticated() {
    let a = tenant();
    let token = token(&[a], &[Role::Viewer]);
    let basic = ("authorization", format!("Basic {token}"));
    let response = call(GET, &[basic, tenant_header(a)]).await;
    assert_eq!(grpc_status(&response), UNAUTHENTICATED);
    assert!(!grpc_message(&response).contains(&token));
}

#[tokio::test]
async fn forged_signature_is_unauthenticated() {
    let a = tenant();
    let forged = sign_hs256(&claims(&[a], &[Role::Admin], ""), OTHER_SECRET);
    let response = call(GET, &[bearer(&forged), tenant_header(a)]).await;
    assert_eq!(grpc_status(&response), UNAUTHENTICATED);
    assert!(grpc_message(&response).contains("signature"));
    assert!(!grpc_message(&response).contains(&forged));
}

#[tokio::test]
async fn expired_token_is_unauthenticated() {
    let a = tenant();
    let mut expired = claims(&[a], &[Role::Viewer], "");
    expired.exp = now() - 120;
    let token = sign_hs256(&expired, SECRET);
    let response = call(GET, &[bearer(&token), tenant_header(a)]).await;
    assert_eq!(grpc_status(&response), UNAUTHENTICATED);
    assert!(grpc_message(&response).contains("expired"));
}

#[tokio::test]
async fn not_yet_valid_token_is_unauthenticated() {
    let a = tenant();
    let mut early = claims(&[a], &[Role::Viewer], "");
    early.nbf = Some(now() + 120);
    let token = sign_hs256(&early, SECRET);
    let response = call(GET, &[bearer(&token), tenant_header(a)]).await;
    assert_eq!(grpc_status(&response), UNAUTHENTICATED);
    assert!(grpc_message(&response).contains("not valid yet"));
}

#[tokio::test]
async fn wrong_issuer_is_unauthenticated() {
    let a = tenant();
    let mut foreign = claims(&[a], &[Role::Viewer], "");
    foreign.iss = "someone-else".into();
    let token = sign_hs256(&foreign, SECRET);
    let response = call(GET, &[bearer(&token), tenant_header(a)]).await;
    assert_eq!(grpc_status(&response), UNAUTHENTICATED);
    assert!(grpc_message(&response).contains("issuer"));
}

#[tokio::test]
async fn wrong_audience_is_unauthenticated() {
    let a = tenant();
    let mut foreign = claims(&[a], &[Role::Viewer], "");
    foreign.aud = adscope_tenancy::Audience::One("another-service".into());
    let token = sign_hs256(&foreign, SECRET);
    let response = call(GET, &[bearer(&token), tenant_header(a)]).await;
    assert_eq!(grpc_status(&response), UNAUTHENTICATED);
    assert!(grpc_message(&response).contains("audience"));
}

#[tokio::test]
async fn alg_none_token_is_unauthenticated() {
    let a = tenant();
    let token = unsigned_token(&claims(&[a], &[Role::Admin], ""));
    let response = call(GET, &[bearer(&token), tenant_header(a)]).await;
    assert_eq!(grpc_status(&response), UNAUTHENTICATED);
}

#[tokio::test]
async fn missing_tenant_header_is_unauthenticated_and_names_the_key() {
    let a = tenant();
    let response = call(GET, &[bearer(&token(&[a], &[Role::Viewer]))]).await;
    assert_eq!(grpc_status(&response), UNAUTHENTICATED);
    assert!(grpc_message(&response).contains("x-tenant-id"));
}

#[tokio::test]
async fn non_uuid_tenant_header_is_invalid_argument() {
    let a = tenant();
    let headers = [
        bearer(&token(&[a], &[Role::Viewer])),
        ("x-tenant-id", "acme".into()),
    ];
    let response = call(GET, &headers).await;
    assert_eq!(grpc_status(&response), INVALID_ARGUMENT);
    assert!(grpc_message(&response).contains("x-tenant-id"));
}

#[tokio::test]
async fn token_is_checked_before_tenant_header() {
    let response = call(GET, &[("x-tenant-id", "acme".into())]).await;
    assert_eq!(grpc_status(&response), UNAUTHENTICATED);
}

#[tokio::test]
async fn tenant_not_in_token_is_permission_denied() {
    let (a, b) = (tenant(), tenant());
    let response = call(
        GET,
        &[bearer(&token(&[a], &[Role::Admin])), tenant_header(b)],
    )
    .await;
    assert_eq!(grpc_status(&response), PERMISSION_DENIED);
    assert!(grpc_message(&response).contains(&b.to_string()));
}

#[tokio::test]
async fn viewer_on_analyst_method_is_permission_denied() {
    let a = tenant();
    let response = call(
        CREATE,
        &[bearer(&token(&[a], &[Role::Viewer])), tenant_header(a)],
    )
    .await;
    assert_eq!(grpc_status(&response), PERMISSION_DENIED);
    assert!(grpc_message(&response).contains("analyst"));
}

#[tokio::test]
async fn token_without_role_is_permission_denied() {
    let a = tenant();
    let response = call(GET, &[bearer(&token(&[a], &[])), tenant_header(a)]).await;
    assert_eq!(grpc_status(&response), PERMISSION_DENIED);
}

#[tokio::test]
async fn analyst_on_analyst_method_passes_with_context() {
    let a = tenant();
    let response = call(
        CREATE,
        &[bearer(&token(&[a], &[Role::Analyst])), tenant_header(a)],
    )
    .await;
    assert_eq!(grpc_status(&response), OK);
    let context = response.extensions().get::<TenantContext>().unwrap();
    assert_eq!(context.tenant_id(), a);
    assert_eq!(context.role(), Some(Role::Analyst));
    assert_eq!(context.principal().subject, "user-1");
    assert!(context.credential().is_some());
}

#[tokio::test]
async fn token_for_a_and_b_acts_for_each_and_not_for_c() {
    let (a, b, c) = (tenant(), tenant(), tenant());
    let token = token(&[a, b], &[Role::Viewer]);

    for wanted in [a, b] {
        let response = call(GET, &[bearer(&token), tenant_header(wanted)]).await;
        assert_eq!(grpc_status(&response), OK);
        let context = response.extensions().get::<TenantContext>().unwrap();
        assert_eq!(context.tenant_id(), wanted);
        let current = response.extensions().get::<SeenCurrent>().unwrap();
        assert_eq!(
            current.0,
            Some(wanted),
            "inner future runs inside the tenant scope"
        );
    }

    let response = call(GET, &[bearer(&token), tenant_header(c)]).await;
    assert_eq!(grpc_status(&response), PERMISSION_DENIED);
    assert!(response.extensions().get::<TenantContext>().is_none());
}

#[tokio::test]
async fn token_within_leeway_is_accepted() {
    let a = tenant();
    let mut recent = claims(&[a], &[Role::Viewer], "");
    recent.exp = now() - 10;
    let token = sign_hs256(&recent, SECRET);
    let response = call(GET, &[bearer(&token), tenant_header(a)]).await;
    assert_eq!(grpc_status(&response), OK);
}

#[tokio::test]
async fn public_health_passes_without_token() {
    let response = call(HEALTH, &[]).await;
    assert_eq!(grpc_status(&response), OK);
    assert!(response.extensions().get::<TenantContext>().is_none());
    assert_eq!(response.extensions().get::<SeenCurrent>().unwrap().0, None);
}

#[tokio::test]
async fn reflection_passes_without_token() {
    let path = "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo";
    assert_eq!(grpc_status(&call(path, &[]).await), OK);
}

#[tokio::test]
async fn path_without_policy_is_permission_denied() {
    let a = tenant();
    let path = "/adscope.analytics.v1.AdService/GetAd";
    let response = call(
        path,
        &[bearer(&token(&[a], &[Role::Admin])), tenant_header(a)],
    )
    .await;
    assert_eq!(grpc_status(&response), PERMISSION_DENIED);
    assert!(grpc_message(&response).contains(&format!("no access policy for {path}")));
}

#[tokio::test]
async fn fleet_token_on_fleet_method_passes_with_fleet_context() {
    let fleet = sign_hs256(&claims(&[], &[], FLEET_READ), SECRET);
    let response = call(FLEET_STATUS, &[bearer(&fleet)]).await;
    assert_eq!(grpc_status(&response), OK);
    let context = response.extensions().get::<FleetContext>().unwrap();
    assert!(context.principal().has_scope(FLEET_READ));
    assert!(response.extensions().get::<TenantContext>().is_none());
}

#[tokio::test]
async fn fleet_method_without_fleet_scope_is_permission_denied() {
    let a = tenant();
    let response = call(FLEET_STATUS, &[bearer(&token(&[a], &[Role::Admin]))]).await;
    assert_eq!(grpc_status(&response), PERMISSION_DENIED);
    assert!(grpc_message(&response).contains(FLEET_READ));
}

#[tokio::test]
async fn fleet_method_without_token_is_unauthenticated() {
    assert_eq!(grpc_status(&call(FLEET_STATUS, &[]).await), UNAUTHENTICATED);
}

#[tokio::test]
async fn fleet_token_on_tenant_method_gets_only_listed_tenants() {
    let (listed, unlisted) = (tenant(), tenant());
    let fleet = sign_hs256(&claims(&[listed], &[Role::Viewer], FLEET_READ), SECRET);

    let response = call(GET, &[bearer(&fleet), tenant_header(unlisted)]).await;
    assert_eq!(grpc_status(&response), PERMISSION_DENIED);

    let response = call(GET, &[bearer(&fleet), tenant_header(listed)]).await;
    assert_eq!(grpc_status(&response), OK);
}

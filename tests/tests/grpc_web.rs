//! gRPC-Web over plain HTTP/1.1, as a browser frontend sends it: the tenant
//! layer reads the same metadata, and health answers without a token.

#![allow(clippy::unwrap_used)]

use adscope_e2e::{seed_tenants, start_analytics};
use adscope_proto::analytics::v1 as pb;
use adscope_tenancy::Role;
use adscope_testing::{TestDb, token};
use prost::Message;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// One gRPC-Web call over a fresh HTTP/1.1 connection; returns the raw
/// response (head and body).
async fn grpc_web_call(
    addr: std::net::SocketAddr,
    path: &str,
    message: &[u8],
    headers: &[(&str, String)],
) -> Vec<u8> {
    let mut frame = vec![0u8];
    frame.extend_from_slice(&u32::try_from(message.len()).unwrap().to_be_bytes());
    frame.extend_from_slice(message);

    let mut head = format!(
        "POST {path} HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/grpc-web+proto\r\n\
         x-grpc-web: 1\r\ncontent-length: {}\r\nconnection: close\r\n",
        frame.len()
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");

    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(&frame).await.unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    response
}

fn text(response: &[u8]) -> String {
    String::from_utf8_lossy(response).into_owned()
}

#[tokio::test]
async fn grpc_web_over_http1_carries_tenant_metadata_through_the_tenant_layer() {
    let db = TestDb::new().await;
    let tenants = seed_tenants(&db, 2).await;
    let (a, b) = (tenants[0], tenants[1]);
    let analytics = start_analytics(&db).await;

    let create = pb::CreateCampaignRequest {
        campaign: Some(pb::Campaign {
            external_id: "web-1".into(),
            name: "from the browser".into(),
            platform: pb::Platform::Meta.into(),
            currency: "EUR".into(),
            ..Default::default()
        }),
    }
    .encode_to_vec();
    let auth = |t: adscope_tenancy::TenantId| {
        vec![
            (
                "authorization",
                format!("Bearer {}", token(&[t], Role::Analyst)),
            ),
            ("x-tenant-id", t.to_string()),
        ]
    };

    let response = grpc_web_call(
        analytics.addr,
        "/adscope.analytics.v1.CampaignService/CreateCampaign",
        &create,
        &auth(a),
    )
    .await;
    let shown = text(&response);
    assert!(shown.starts_with("HTTP/1.1 200"), "{shown}");
    assert!(shown.contains("application/grpc-web"), "{shown}");
    assert!(
        shown.contains("grpc-status:0"),
        "the call succeeded: {shown}"
    );
    assert!(
        shown.contains("from the browser"),
        "the campaign came back: {shown}"
    );

    // The same call for B without B's token: refused by the tenant layer.
    let refused = grpc_web_call(
        analytics.addr,
        "/adscope.analytics.v1.CampaignService/CreateCampaign",
        &create,
        &[
            (
                "authorization",
                format!("Bearer {}", token(&[a], Role::Analyst)),
            ),
            ("x-tenant-id", b.to_string()),
        ],
    )
    .await;
    let shown = text(&refused);
    assert!(
        shown.contains("grpc-status: 7") || shown.contains("grpc-status:7"),
        "PERMISSION_DENIED expected: {shown}"
    );

    // Health needs no token over gRPC-Web either.
    let health = grpc_web_call(analytics.addr, "/grpc.health.v1.Health/Check", &[], &[]).await;
    let shown = text(&health);
    assert!(shown.starts_with("HTTP/1.1 200"), "{shown}");
    assert!(
        shown.contains("grpc-status: 0") || shown.contains("grpc-status:0"),
        "health answers OK without a token: {shown}"
    );
}

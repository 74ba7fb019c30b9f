//! CORS for browser frontends: only the configured origins may call over
//! gRPC-Web; any other origin gets no permission to read the reply.

#![allow(clippy::unwrap_used)]

use adscope_testing::TestDb;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const ALLOWED: &str = "https://app.example";
const OTHER: &str = "https://evil.example";

/// One raw HTTP/1.1 exchange; returns the response head, lower-cased.
async fn exchange(addr: std::net::SocketAddr, request: String) -> String {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    let text = String::from_utf8_lossy(&response).to_lowercase();
    text.split("\r\n\r\n").next().unwrap_or_default().to_owned()
}

fn preflight(addr: std::net::SocketAddr, origin: &str) -> String {
    format!(
        "OPTIONS /adscope.analytics.v1.CampaignService/GetCampaign HTTP/1.1\r\n\
         host: {addr}\r\norigin: {origin}\r\n\
         access-control-request-method: POST\r\n\
         access-control-request-headers: content-type,x-grpc-web,authorization,x-tenant-id\r\n\
         connection: close\r\n\r\n"
    )
}

fn health_call(addr: std::net::SocketAddr, origin: &str) -> String {
    let frame = [0u8, 0, 0, 0, 0];
    format!(
        "POST /grpc.health.v1.Health/Check HTTP/1.1\r\nhost: {addr}\r\norigin: {origin}\r\n\
         content-type: application/grpc-web+proto\r\nx-grpc-web: 1\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n{}",
        frame.len(),
        String::from_utf8_lossy(&frame)
    )
}

#[tokio::test]
async fn only_configured_origins_may_call_over_grpc_web() {
    let db = TestDb::new().await;
    let analytics = adscope_e2e::start_analytics_with(&db, |config| {
        config.cors_origins = vec![ALLOWED.parse().unwrap()];
    })
    .await;
    let addr = analytics.addr;

    // The configured origin: the preflight grants it, naming the metadata
    // a frontend sends, and a real call's reply is readable by it.
    let allowed = exchange(addr, preflight(addr, ALLOWED)).await;
    assert!(
        allowed.contains(&format!("access-control-allow-origin: {ALLOWED}")),
        "{allowed}"
    );
    assert!(allowed.contains("x-tenant-id"), "{allowed}");
    assert!(allowed.contains("authorization"), "{allowed}");
    let call = exchange(addr, health_call(addr, ALLOWED)).await;
    assert!(call.starts_with("http/1.1 200"), "{call}");
    assert!(
        call.contains(&format!("access-control-allow-origin: {ALLOWED}")),
        "{call}"
    );
    assert!(call.contains("access-control-expose-headers"), "{call}");

    // Any other origin: answered, but with no grant, on the preflight or
    // the call (the browser then withholds the reply from the page).
    let refused = exchange(addr, preflight(addr, OTHER)).await;
    assert!(refused.starts_with("http/1.1 200"), "{refused}");
    assert!(
        !refused.contains("access-control-allow-origin"),
        "{refused}"
    );
    let call = exchange(addr, health_call(addr, OTHER)).await;
    assert!(call.starts_with("http/1.1 200"), "{call}");
    assert!(!call.contains("access-control-allow-origin"), "{call}");

    analytics.stop().await.unwrap();
}

//! Per-service health: integrations' connection service follows whether
//! Airbyte is configured, while the credential service and the whole server
//! do not depend on it.

#![allow(clippy::unwrap_used)] // tests fail loudly

use std::time::{Duration, Instant};

use adscope_e2e::Running;
use adscope_integrations::config::{AirbyteAuth, AirbyteConfig};
use adscope_testing::TestDb;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

const CONNECTIONS: &str = "adscope.integrations.v1.ConnectionService";
const CREDENTIALS: &str = "adscope.integrations.v1.CredentialService";

/// The status `service` reads now; a name not yet registered reads `Unknown`.
async fn status(
    health: &mut HealthClient<tonic::transport::Channel>,
    service: &str,
) -> ServingStatus {
    match health
        .check(HealthCheckRequest {
            service: service.into(),
        })
        .await
    {
        Ok(reply) => reply.into_inner().status(),
        Err(_) => ServingStatus::Unknown,
    }
}

/// Polls until `service` reads `wanted`: the monitor runs at start and then
/// on its interval, so the first result may take a moment.
async fn eventually(
    health: &mut HealthClient<tonic::transport::Channel>,
    service: &str,
    wanted: ServingStatus,
) {
    let deadline = Instant::now() + Duration::from_secs(8);
    loop {
        let now = status(health, service).await;
        if now == wanted {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{service:?} still reads {now:?}, expected {wanted:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn health_client(running: &Running) -> HealthClient<tonic::transport::Channel> {
    HealthClient::new(running.channel().await)
}

#[tokio::test]
async fn without_airbyte_only_the_connection_service_is_not_serving() {
    let db = TestDb::new().await;
    let integrations = adscope_e2e::start_integrations(&db).await;
    let mut health = health_client(&integrations).await;

    // Both being SERVING means the first run of the checks has reported.
    eventually(&mut health, "", ServingStatus::Serving).await;
    eventually(&mut health, CREDENTIALS, ServingStatus::Serving).await;
    assert_eq!(
        status(&mut health, CONNECTIONS).await,
        ServingStatus::NotServing
    );
    // And it stays so on later runs, while the rest stays SERVING.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        status(&mut health, CONNECTIONS).await,
        ServingStatus::NotServing
    );
    assert_eq!(status(&mut health, "").await, ServingStatus::Serving);
    assert_eq!(
        status(&mut health, CREDENTIALS).await,
        ServingStatus::Serving
    );
}

#[tokio::test]
async fn with_airbyte_configured_every_service_is_serving() {
    let db = TestDb::new().await;
    let integrations = adscope_e2e::start_integrations_with(&db, |config| {
        config.airbyte = Some(AirbyteConfig {
            base_url: "http://127.0.0.1:9".into(),
            auth: AirbyteAuth::None,
            timeout: Duration::from_secs(1),
        });
    })
    .await;
    let mut health = health_client(&integrations).await;

    eventually(&mut health, CONNECTIONS, ServingStatus::Serving).await;
    assert_eq!(status(&mut health, "").await, ServingStatus::Serving);
    eventually(&mut health, CREDENTIALS, ServingStatus::Serving).await;
}

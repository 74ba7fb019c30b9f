//! Server reflection on every service, as `grpcurl list` and `describe` use
//! it: each lists exactly the services it answers, and describes each of
//! them, without a token.

#![allow(clippy::unwrap_used)] // tests: failing loudly is the point

use adscope_e2e::{Running, start_analytics, start_health, start_integrations};
use adscope_testing::TestDb;
use prost::Message;
use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
use tonic_reflection::pb::v1::{ServerReflectionRequest, ServerReflectionResponse};

async fn ask(server: &Running, request: MessageRequest) -> MessageResponse {
    let mut client = ServerReflectionClient::new(server.channel().await);
    let outbound = tokio_stream::iter([ServerReflectionRequest {
        host: String::new(),
        message_request: Some(request),
    }]);
    let mut inbound = client
        .server_reflection_info(outbound)
        .await
        .unwrap()
        .into_inner();
    let reply: ServerReflectionResponse = inbound.message().await.unwrap().unwrap();
    reply.message_response.unwrap()
}

async fn listed(server: &Running) -> Vec<String> {
    let MessageResponse::ListServicesResponse(list) =
        ask(server, MessageRequest::ListServices(String::new())).await
    else {
        panic!("expected a service list");
    };
    let mut names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    names.sort();
    names
}

/// The service's definition, as `describe` prints it from the file that
/// declares it.
async fn described_methods(server: &Running, service: &str) -> Vec<String> {
    let MessageResponse::FileDescriptorResponse(files) =
        ask(server, MessageRequest::FileContainingSymbol(service.into())).await
    else {
        panic!("expected the file declaring {service}");
    };
    let (package, name) = service.rsplit_once('.').unwrap();
    files
        .file_descriptor_proto
        .iter()
        .map(|bytes| prost_types::FileDescriptorProto::decode(bytes.as_slice()).unwrap())
        .filter(|file| file.package() == package)
        .flat_map(|file| file.service)
        .filter(|s| s.name() == name)
        .flat_map(|s| s.method)
        .map(|m| m.name().to_owned())
        .collect()
}

#[tokio::test]
async fn every_service_lists_and_describes_exactly_what_it_serves() {
    let db = TestDb::new().await;
    let servers = [
        (start_analytics(&db).await, adscope_analytics::SERVICES),
        (
            start_integrations(&db).await,
            adscope_integrations::SERVICES,
        ),
        (start_health(&db).await, adscope_health::SERVICES),
    ];
    for (server, services) in &servers {
        let mut expected: Vec<String> = services
            .iter()
            .copied()
            .chain([
                "grpc.health.v1.Health",
                "grpc.reflection.v1.ServerReflection",
            ])
            .map(String::from)
            .collect();
        expected.sort();
        assert_eq!(listed(server).await, expected);

        for service in services.iter().copied() {
            let methods = described_methods(server, service).await;
            assert!(!methods.is_empty(), "{service} has no methods described");
        }
    }
    // A method each, to see that the description is the real contract.
    let analytics = described_methods(&servers[0].0, "adscope.analytics.v1.CampaignService").await;
    assert!(
        analytics.iter().any(|m| m == "GetCampaign"),
        "{analytics:?}"
    );
    let fleet = described_methods(&servers[2].0, "adscope.fleet.v1.FleetService").await;
    assert!(fleet.iter().any(|m| m == "GetFleetStatus"), "{fleet:?}");
}

//! The foundation over the wire: the tenant layer's status codes, isolation
//! through a real analytics server, health without a token, the fleet view,
//! and service-to-service propagation.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use adscope_e2e::{request, seed_tenants, start_analytics, start_health};
use adscope_proto::analytics::v1 as pb;
use adscope_proto::analytics::v1::campaign_service_client::CampaignServiceClient;
use adscope_proto::fleet::v1::GetFleetStatusRequest;
use adscope_proto::fleet::v1::fleet_service_client::FleetServiceClient;
use adscope_tenancy::{Credential, Principal, Role, TenantContext, TokenSpec};
use adscope_testing::{TestDb, fleet_token, token, token_for};
use tonic::Code;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

fn campaign(external_id: &str, name: &str) -> pb::CreateCampaignRequest {
    pb::CreateCampaignRequest {
        campaign: Some(pb::Campaign {
            external_id: external_id.into(),
            name: name.into(),
            platform: pb::Platform::Meta.into(),
            currency: "EUR".into(),
            ..Default::default()
        }),
    }
}

fn get(id: &str) -> pb::GetCampaignRequest {
    pb::GetCampaignRequest { id: id.into() }
}

#[tokio::test]
async fn tenant_b_cannot_read_tenant_a_campaign_and_a_still_can() {
    let db = TestDb::new().await;
    let tenants = seed_tenants(&db, 2).await;
    let (a, b) = (tenants[0], tenants[1]);
    let analytics = start_analytics(&db).await;
    let mut client = CampaignServiceClient::new(analytics.channel().await);
    let token_a = token(&[a], Role::Analyst);
    let token_b = token(&[b], Role::Analyst);

    // Both tenants use the same external id: unique per tenant, not globally.
    let created = client
        .create_campaign(request(
            campaign("shared-ext", "A spring"),
            &token_a,
            Some(a),
        ))
        .await
        .unwrap()
        .into_inner()
        .campaign
        .unwrap();
    client
        .create_campaign(request(
            campaign("shared-ext", "B spring"),
            &token_b,
            Some(b),
        ))
        .await
        .unwrap();

    let as_a = client
        .get_campaign(request(get(&created.id), &token_a, Some(a)))
        .await
        .unwrap()
        .into_inner()
        .campaign
        .unwrap();
    assert_eq!(as_a.name, "A spring");
    assert_eq!(as_a.currency, "EUR");
    assert_eq!(as_a.platform(), pb::Platform::Meta);

    let as_b = client
        .get_campaign(request(get(&created.id), &token_b, Some(b)))
        .await
        .unwrap_err();
    let missing = client
        .get_campaign(request(
            get(&uuid::Uuid::new_v4().to_string()),
            &token_b,
            Some(b),
        ))
        .await
        .unwrap_err();
    assert_eq!(as_b.code(), Code::NotFound);
    assert_eq!(
        as_b.message(),
        missing.message(),
        "another tenant's id must look exactly like a missing one"
    );
}

#[tokio::test]
async fn the_tenant_layer_answers_each_failure_with_its_status_over_the_wire() {
    let db = TestDb::new().await;
    let tenants = seed_tenants(&db, 2).await;
    let (a, b) = (tenants[0], tenants[1]);
    let analytics = start_analytics(&db).await;
    let mut client = CampaignServiceClient::new(analytics.channel().await);
    let id = uuid::Uuid::new_v4().to_string();

    let no_token = client.get_campaign(tonic::Request::new(get(&id))).await;
    assert_eq!(no_token.unwrap_err().code(), Code::Unauthenticated);

    let no_tenant = client
        .get_campaign(request(get(&id), &token(&[a], Role::Viewer), None))
        .await;
    assert_eq!(no_tenant.unwrap_err().code(), Code::Unauthenticated);

    let mut bad_tenant = request(get(&id), &token(&[a], Role::Viewer), None);
    bad_tenant
        .metadata_mut()
        .insert("x-tenant-id", "not-a-uuid".parse().unwrap());
    assert_eq!(
        client.get_campaign(bad_tenant).await.unwrap_err().code(),
        Code::InvalidArgument
    );

    let other_tenant = client
        .get_campaign(request(get(&id), &token(&[a], Role::Viewer), Some(b)))
        .await;
    assert_eq!(other_tenant.unwrap_err().code(), Code::PermissionDenied);

    let viewer_writes = client
        .create_campaign(request(
            campaign("x", "x"),
            &token(&[a], Role::Viewer),
            Some(a),
        ))
        .await;
    assert_eq!(viewer_writes.unwrap_err().code(), Code::PermissionDenied);

    let forged =
        adscope_tenancy::Minter::hs256(b"another-secret-another-secret-xx", "adscope", "adscope")
            .unwrap()
            .mint(&TokenSpec {
                subject: "mallory".into(),
                tenants: vec![a],
                roles: vec![Role::Admin],
                scopes: vec![],
                ttl: Duration::from_secs(600),
                not_before: None,
            })
            .unwrap();
    let forged = client
        .get_campaign(request(get(&id), &forged, Some(a)))
        .await;
    assert_eq!(forged.unwrap_err().code(), Code::Unauthenticated);

    let fleet_on_analytics = client
        .get_campaign(request(get(&id), &fleet_token(), Some(a)))
        .await;
    assert_eq!(
        fleet_on_analytics.unwrap_err().code(),
        Code::PermissionDenied
    );

    // A token listing both tenants acts for each in turn, and sees each one's own data.
    let both = token(&[a, b], Role::Analyst);
    let in_a = client
        .create_campaign(request(campaign("both-1", "made for A"), &both, Some(a)))
        .await
        .unwrap()
        .into_inner()
        .campaign
        .unwrap();
    assert_eq!(
        client
            .get_campaign(request(get(&in_a.id), &both, Some(a)))
            .await
            .unwrap()
            .into_inner()
            .campaign
            .unwrap()
            .name,
        "made for A"
    );
    assert_eq!(
        client
            .get_campaign(request(get(&in_a.id), &both, Some(b)))
            .await
            .unwrap_err()
            .code(),
        Code::NotFound
    );
    let in_b = client
        .create_campaign(request(campaign("both-1", "made for B"), &both, Some(b)))
        .await
        .unwrap()
        .into_inner()
        .campaign
        .unwrap();
    assert_eq!(
        client
            .get_campaign(request(get(&in_b.id), &both, Some(b)))
            .await
            .unwrap()
            .into_inner()
            .campaign
            .unwrap()
            .name,
        "made for B"
    );
    assert_eq!(
        client
            .get_campaign(request(get(&in_b.id), &both, Some(a)))
            .await
            .unwrap_err()
            .code(),
        Code::NotFound
    );

    // Bad input: a clear INVALID_ARGUMENT, nothing written.
    let bad = client
        .create_campaign(request(
            pb::CreateCampaignRequest {
                campaign: Some(pb::Campaign {
                    external_id: "bad".into(),
                    name: "bad".into(),
                    platform: pb::Platform::Meta.into(),
                    currency: "euro".into(),
                    ..Default::default()
                }),
            },
            &token(&[a], Role::Analyst),
            Some(a),
        ))
        .await
        .unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument);
    assert!(bad.message().contains("currency"), "{}", bad.message());
    let names: Vec<String> = client
        .list_campaigns(request(
            pb::ListCampaignsRequest::default(),
            &token(&[a], Role::Viewer),
            Some(a),
        ))
        .await
        .unwrap()
        .into_inner()
        .campaigns
        .into_iter()
        .map(|c| c.name)
        .collect();
    assert_eq!(names, vec!["made for A"]);
}

#[tokio::test]
async fn health_answers_without_a_token_once_the_database_is_up() {
    let db = TestDb::new().await;
    let analytics = start_analytics(&db).await;
    let channel = analytics.channel().await;

    let mut health = HealthClient::new(channel);
    let mut status = ServingStatus::Unknown;
    for _ in 0..50 {
        if let Ok(reply) = health
            .check(HealthCheckRequest {
                service: "adscope.analytics.v1.CampaignService".into(),
            })
            .await
        {
            status = reply.into_inner().status();
            if status == ServingStatus::Serving {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        status,
        ServingStatus::Serving,
        "database reachable and migrated"
    );
}

#[tokio::test]
async fn the_fleet_view_counts_every_tenant_and_refuses_tenant_tokens() {
    let db = TestDb::new().await;
    let tenants = seed_tenants(&db, 3).await;
    let health = start_health(&db).await;
    let mut fleet = FleetServiceClient::new(health.channel().await);

    let status = fleet
        .get_fleet_status(request(GetFleetStatusRequest {}, &fleet_token(), None))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(status.totals.unwrap().tenants, 3);

    let refused = fleet
        .get_fleet_status(request(
            GetFleetStatusRequest {},
            &token(&tenants, Role::Admin),
            Some(tenants[0]),
        ))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied);
}

#[tokio::test]
async fn service_to_service_calls_carry_the_tenant_without_headers_by_hand() {
    let db = TestDb::new().await;
    let tenants = seed_tenants(&db, 2).await;
    let (a, b) = (tenants[0], tenants[1]);
    let analytics = start_analytics(&db).await;

    let token_a = token(&[a], Role::Analyst);
    let mut direct = CampaignServiceClient::new(analytics.channel().await);
    let created = direct
        .create_campaign(request(campaign("s2s", "called across"), &token_a, Some(a)))
        .await
        .unwrap()
        .into_inner()
        .campaign
        .unwrap();

    // A caller acting for A (as a service handling A's request would be).
    let principal = Principal {
        subject: "svc".into(),
        tenants: vec![a],
        roles: vec![Role::Analyst],
        scopes: vec![],
    };
    let ctx = TenantContext::new(a, Arc::new(principal), Some(Credential::new(token_a)));
    let channel = adscope_server::client::channel(&analytics.url()).unwrap();
    let mut client = CampaignServiceClient::new(channel);

    let found = ctx
        .clone()
        .scope(client.get_campaign(get(&created.id)))
        .await
        .unwrap()
        .into_inner()
        .campaign
        .unwrap();
    assert_eq!(found.name, "called across");

    // Outside any tenant scope nothing is attached, and the callee refuses.
    let mut client =
        CampaignServiceClient::new(adscope_server::client::channel(&analytics.url()).unwrap());
    let outside = client.get_campaign(get(&created.id)).await.unwrap_err();
    assert_eq!(outside.code(), Code::Unauthenticated);

    // A context for B with B's own token does not reach A's row.
    let token_b = token_for(&TokenSpec {
        subject: "svc".into(),
        tenants: vec![b],
        roles: vec![Role::Viewer],
        scopes: vec![],
        ttl: Duration::from_secs(300),
        not_before: None,
    });
    let ctx_b = TenantContext::new(
        b,
        Arc::new(Principal {
            subject: "svc".into(),
            tenants: vec![b],
            roles: vec![Role::Viewer],
            scopes: vec![],
        }),
        Some(Credential::new(token_b)),
    );
    let as_b = ctx_b
        .scope(client.get_campaign(get(&created.id)))
        .await
        .unwrap_err();
    assert_eq!(as_b.code(), Code::NotFound);
}

#[tokio::test]
async fn shutdown_stops_the_server_and_closes_its_listener() {
    let db = TestDb::new().await;
    let analytics = start_analytics(&db).await;
    let addr = analytics.addr;
    let mut health = HealthClient::new(analytics.channel().await);
    health
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap();

    tokio::time::timeout(Duration::from_secs(10), analytics.stop())
        .await
        .expect("the server stops promptly once asked")
        .unwrap();
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "the listener is closed after shutdown"
    );
}

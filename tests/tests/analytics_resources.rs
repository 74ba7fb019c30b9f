//! Campaigns, ad sets and ads over the wire: CRUD, field masks, validation
//! with field violations, keyset pagination, cascades, roles, and the
//! isolation of every path between two tenants.

#![allow(clippy::unwrap_used)] // tests: failing loudly is the point

use adscope_e2e::{Running, Tenant, seed_tenants, start_analytics};
use adscope_proto::analytics::v1 as pb;
use adscope_proto::analytics::v1::ad_service_client::AdServiceClient;
use adscope_proto::analytics::v1::ad_set_service_client::AdSetServiceClient;
use adscope_proto::analytics::v1::campaign_service_client::CampaignServiceClient;
use adscope_tenancy::Role;
use adscope_testing::{TestDb, token};
use prost::Message;
use tonic::Code;
use tonic::transport::Channel;

/// `google.rpc.Status` as it travels in `grpc-status-details-bin`.
#[derive(Clone, PartialEq, prost::Message)]
struct RpcStatus {
    #[prost(int32, tag = "1")]
    code: i32,
    #[prost(string, tag = "2")]
    message: String,
    #[prost(message, repeated, tag = "3")]
    details: Vec<prost_types::Any>,
}

/// `google.rpc.BadRequest`.
#[derive(Clone, PartialEq, prost::Message)]
struct BadRequest {
    #[prost(message, repeated, tag = "1")]
    field_violations: Vec<FieldViolation>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct FieldViolation {
    #[prost(string, tag = "1")]
    field: String,
    #[prost(string, tag = "2")]
    description: String,
}

/// The fields an INVALID_ARGUMENT status names in its BadRequest details.
fn violated_fields(status: &tonic::Status) -> Vec<String> {
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    let rpc = RpcStatus::decode(status.details()).expect("google.rpc.Status details");
    let bad = rpc
        .details
        .iter()
        .find(|any| any.type_url.ends_with("google.rpc.BadRequest"))
        .expect("a BadRequest detail");
    BadRequest::decode(bad.value.as_slice())
        .unwrap()
        .field_violations
        .into_iter()
        .map(|v| v.field)
        .collect()
}

struct Clients {
    campaigns: CampaignServiceClient<Channel>,
    ad_sets: AdSetServiceClient<Channel>,
    ads: AdServiceClient<Channel>,
}

async fn setup() -> (TestDb, Running, Tenant, Tenant, Clients) {
    let db = TestDb::new().await;
    let tenants = seed_tenants(&db, 2).await;
    let analytics = start_analytics(&db).await;
    let channel = analytics.channel().await;
    let clients = Clients {
        campaigns: CampaignServiceClient::new(channel.clone()),
        ad_sets: AdSetServiceClient::new(channel.clone()),
        ads: AdServiceClient::new(channel),
    };
    (
        db,
        analytics,
        Tenant::new(tenants[0]),
        Tenant::new(tenants[1]),
        clients,
    )
}

fn struct_of(json: serde_json::Value) -> prost_types::Struct {
    let serde_json::Value::Object(map) = json else {
        panic!("an object")
    };
    prost_types::Struct {
        fields: map
            .into_iter()
            .map(|(k, v)| {
                let kind = match v {
                    serde_json::Value::String(s) => prost_types::value::Kind::StringValue(s),
                    serde_json::Value::Number(n) => {
                        prost_types::value::Kind::NumberValue(n.as_f64().unwrap())
                    }
                    serde_json::Value::Bool(b) => prost_types::value::Kind::BoolValue(b),
                    other => panic!("unsupported {other}"),
                };
                (k, prost_types::Value { kind: Some(kind) })
            })
            .collect(),
    }
}

fn campaign(external_id: &str, name: &str) -> pb::Campaign {
    pb::Campaign {
        external_id: external_id.into(),
        name: name.into(),
        platform: pb::Platform::Meta.into(),
        account_external_id: "act_1".into(),
        status: pb::CampaignStatus::Active.into(),
        objective: "CONVERSIONS".into(),
        currency: "EUR".into(),
        metadata: Some(struct_of(
            serde_json::json!({"source": "import", "rank": 3}),
        )),
        platform_created_at: Some(prost_types::Timestamp {
            seconds: 1_700_000_000,
            nanos: 0,
        }),
        ..Default::default()
    }
}

async fn create_campaign(c: &mut Clients, t: &Tenant, ext: &str, name: &str) -> pb::Campaign {
    c.campaigns
        .create_campaign(t.req(pb::CreateCampaignRequest {
            campaign: Some(campaign(ext, name)),
        }))
        .await
        .unwrap()
        .into_inner()
        .campaign
        .unwrap()
}

fn ad_set(campaign_id: &str, ext: &str) -> pb::AdSet {
    pb::AdSet {
        campaign_id: campaign_id.into(),
        external_id: ext.into(),
        name: format!("set {ext}"),
        status: pb::AdSetStatus::Active.into(),
        bid_strategy: "LOWEST_COST".into(),
        daily_budget: "12.50".into(),
        start_time: Some(prost_types::Timestamp {
            seconds: 1_700_000_000,
            nanos: 0,
        }),
        end_time: Some(prost_types::Timestamp {
            seconds: 1_800_000_000,
            nanos: 0,
        }),
        targeting: Some(struct_of(serde_json::json!({"country": "DE"}))),
        ..Default::default()
    }
}

async fn create_ad_set(c: &mut Clients, t: &Tenant, campaign_id: &str, ext: &str) -> pb::AdSet {
    c.ad_sets
        .create_ad_set(t.req(pb::CreateAdSetRequest {
            ad_set: Some(ad_set(campaign_id, ext)),
        }))
        .await
        .unwrap()
        .into_inner()
        .ad_set
        .unwrap()
}

fn ad(ad_set_id: &str, ext: &str) -> pb::Ad {
    pb::Ad {
        ad_set_id: ad_set_id.into(),
        external_id: ext.into(),
        name: format!("ad {ext}"),
        status: pb::AdStatus::Paused.into(),
        creative: Some(struct_of(serde_json::json!({"headline": "Spring sale"}))),
        preview_url: "https://example.com/preview/1".into(),
        ..Default::default()
    }
}

async fn create_ad(c: &mut Clients, t: &Tenant, ad_set_id: &str, ext: &str) -> pb::Ad {
    c.ads
        .create_ad(t.req(pb::CreateAdRequest {
            ad: Some(ad(ad_set_id, ext)),
        }))
        .await
        .unwrap()
        .into_inner()
        .ad
        .unwrap()
}

fn mask(paths: &[&str]) -> Option<prost_types::FieldMask> {
    Some(prost_types::FieldMask {
        paths: paths.iter().map(|p| (*p).to_owned()).collect(),
    })
}

async fn get_campaign(
    c: &mut Clients,
    t: &Tenant,
    id: &str,
) -> Result<pb::Campaign, tonic::Status> {
    c.campaigns
        .get_campaign(t.req(pb::GetCampaignRequest { id: id.into() }))
        .await
        .map(|r| r.into_inner().campaign.unwrap())
}

async fn list_campaigns(
    c: &mut Clients,
    t: &Tenant,
    req: pb::ListCampaignsRequest,
) -> Result<pb::ListCampaignsResponse, tonic::Status> {
    c.campaigns
        .list_campaigns(t.req(req))
        .await
        .map(|r| r.into_inner())
}

#[tokio::test]
async fn campaign_crud_round_trips_every_field() {
    let (_db, _srv, a, _b, mut c) = setup().await;
    let created = create_campaign(&mut c, &a, "cmp-1", "Spring").await;
    assert_eq!(created.external_id, "cmp-1");
    assert_eq!(created.platform(), pb::Platform::Meta);
    assert_eq!(created.status(), pb::CampaignStatus::Active);
    assert_eq!(created.objective, "CONVERSIONS");
    assert_eq!(created.account_external_id, "act_1");
    assert_eq!(created.currency, "EUR");
    assert_eq!(
        created.metadata,
        Some(struct_of(
            serde_json::json!({"source": "import", "rank": 3})
        ))
    );
    assert_eq!(created.platform_created_at.unwrap().seconds, 1_700_000_000);
    assert!(created.platform_updated_at.is_none());

    let got = get_campaign(&mut c, &a, &created.id).await.unwrap();
    assert_eq!(got, created);

    let listed = list_campaigns(&mut c, &a, Default::default())
        .await
        .unwrap();
    assert_eq!(listed.campaigns, vec![created.clone()]);
    assert!(listed.next_page_token.is_empty());

    let mut change = created.clone();
    change.name = "Summer".into();
    change.currency = "USD".into();
    let updated = c
        .campaigns
        .update_campaign(a.req(pb::UpdateCampaignRequest {
            campaign: Some(change),
            update_mask: mask(&["name", "currency"]),
        }))
        .await
        .unwrap()
        .into_inner()
        .campaign
        .unwrap();
    assert_eq!(updated.name, "Summer");
    assert_eq!(updated.currency, "USD");
    assert_eq!(updated.create_time, created.create_time);
    let (before, after) = (created.update_time.unwrap(), updated.update_time.unwrap());
    assert!((after.seconds, after.nanos) > (before.seconds, before.nanos));

    c.campaigns
        .delete_campaign(a.req(pb::DeleteCampaignRequest {
            id: created.id.clone(),
        }))
        .await
        .unwrap();
    let gone = get_campaign(&mut c, &a, &created.id).await.unwrap_err();
    assert_eq!(gone.code(), Code::NotFound);
    let again = c
        .campaigns
        .delete_campaign(a.req(pb::DeleteCampaignRequest { id: created.id }))
        .await
        .unwrap_err();
    assert_eq!(again.code(), Code::NotFound);
}

#[tokio::test]
async fn ad_set_and_ad_crud_round_trip() {
    let (_db, _srv, a, _b, mut c) = setup().await;
    let cmp = create_campaign(&mut c, &a, "cmp-1", "Spring").await;
    let set = create_ad_set(&mut c, &a, &cmp.id, "set-1").await;
    assert_eq!(set.campaign_id, cmp.id);
    assert_eq!(set.daily_budget, "12.50");
    assert_eq!(set.bid_strategy, "LOWEST_COST");
    assert_eq!(set.start_time.unwrap().seconds, 1_700_000_000);
    assert_eq!(set.end_time.unwrap().seconds, 1_800_000_000);
    assert_eq!(
        set.targeting,
        Some(struct_of(serde_json::json!({"country": "DE"})))
    );

    let got = c
        .ad_sets
        .get_ad_set(a.req(pb::GetAdSetRequest { id: set.id.clone() }))
        .await
        .unwrap()
        .into_inner()
        .ad_set
        .unwrap();
    assert_eq!(got, set);

    let mut change = set.clone();
    change.daily_budget = "0.1250".into();
    change.name = "ignored".into();
    let updated = c
        .ad_sets
        .update_ad_set(a.req(pb::UpdateAdSetRequest {
            ad_set: Some(change),
            update_mask: mask(&["daily_budget"]),
        }))
        .await
        .unwrap()
        .into_inner()
        .ad_set
        .unwrap();
    assert_eq!(updated.daily_budget, "0.125");
    assert_eq!(
        updated.name, set.name,
        "a field not in the mask is unchanged"
    );

    let created_ad = create_ad(&mut c, &a, &set.id, "ad-1").await;
    assert_eq!(created_ad.ad_set_id, set.id);
    assert_eq!(created_ad.status(), pb::AdStatus::Paused);
    assert_eq!(created_ad.preview_url, "https://example.com/preview/1");
    let listed = c
        .ads
        .list_ads(a.req(pb::ListAdsRequest {
            ad_set_id: set.id.clone(),
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.ads, vec![created_ad.clone()]);
    let mut change = created_ad.clone();
    change.status = pb::AdStatus::Active.into();
    let updated_ad = c
        .ads
        .update_ad(a.req(pb::UpdateAdRequest {
            ad: Some(change),
            update_mask: mask(&["status"]),
        }))
        .await
        .unwrap()
        .into_inner()
        .ad
        .unwrap();
    assert_eq!(updated_ad.status(), pb::AdStatus::Active);
    assert_eq!(updated_ad.name, created_ad.name);

    let sets = c
        .ad_sets
        .list_ad_sets(a.req(pb::ListAdSetsRequest {
            campaign_id: cmp.id.clone(),
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(sets.ad_sets, vec![updated]);

    c.ads
        .delete_ad(a.req(pb::DeleteAdRequest {
            id: created_ad.id.clone(),
        }))
        .await
        .unwrap();
    let gone = c
        .ads
        .get_ad(a.req(pb::GetAdRequest { id: created_ad.id }))
        .await
        .unwrap_err();
    assert_eq!(gone.code(), Code::NotFound);
    c.ad_sets
        .delete_ad_set(a.req(pb::DeleteAdSetRequest { id: set.id.clone() }))
        .await
        .unwrap();
    let gone = c
        .ad_sets
        .get_ad_set(a.req(pb::GetAdSetRequest { id: set.id }))
        .await
        .unwrap_err();
    assert_eq!(gone.code(), Code::NotFound);
}

#[tokio::test]
async fn tenant_b_cannot_touch_tenant_a_resources_which_stay_unchanged() {
    let (_db, _srv, a, b, mut c) = setup().await;
    let cmp = create_campaign(&mut c, &a, "cmp-a", "A campaign").await;
    let set = create_ad_set(&mut c, &a, &cmp.id, "set-a").await;
    let the_ad = create_ad(&mut c, &a, &set.id, "ad-a").await;
    // B has data of its own at every level, so its lists are not trivially
    // empty: an empty answer would not tell isolation from a broken listing.
    let b_cmp = create_campaign(&mut c, &b, "cmp-b", "B campaign").await;
    let b_set = create_ad_set(&mut c, &b, &b_cmp.id, "set-b").await;
    let b_ad = create_ad(&mut c, &b, &b_set.id, "ad-b").await;

    // Campaign.
    let err = get_campaign(&mut c, &b, &cmp.id).await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    let missing = get_campaign(&mut c, &b, &uuid::Uuid::new_v4().to_string())
        .await
        .unwrap_err();
    assert_eq!(err.message(), missing.message());
    let listed = list_campaigns(&mut c, &b, Default::default())
        .await
        .unwrap();
    assert_eq!(
        listed.campaigns.iter().map(|c| &c.id).collect::<Vec<_>>(),
        vec![&b_cmp.id]
    );
    let mut hijack = cmp.clone();
    hijack.name = "hijacked".into();
    let err = c
        .campaigns
        .update_campaign(b.req(pb::UpdateCampaignRequest {
            campaign: Some(hijack),
            update_mask: mask(&["name"]),
        }))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    let err = c
        .campaigns
        .delete_campaign(b.req(pb::DeleteCampaignRequest { id: cmp.id.clone() }))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);

    // Ad set.
    let err = c
        .ad_sets
        .get_ad_set(b.req(pb::GetAdSetRequest { id: set.id.clone() }))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    let listed = c
        .ad_sets
        .list_ad_sets(b.req(pb::ListAdSetsRequest {
            campaign_id: cmp.id.clone(),
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    assert!(listed.ad_sets.is_empty());
    let listed = c
        .ad_sets
        .list_ad_sets(b.req(Default::default()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.ad_sets, vec![b_set.clone()]);
    assert!(listed.ad_sets.iter().all(|s| s.id != set.id));
    let mut hijack = set.clone();
    hijack.daily_budget = "999".into();
    let err = c
        .ad_sets
        .update_ad_set(b.req(pb::UpdateAdSetRequest {
            ad_set: Some(hijack),
            update_mask: mask(&["daily_budget"]),
        }))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    let err = c
        .ad_sets
        .delete_ad_set(b.req(pb::DeleteAdSetRequest { id: set.id.clone() }))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);

    // Ad.
    let err = c
        .ads
        .get_ad(b.req(pb::GetAdRequest {
            id: the_ad.id.clone(),
        }))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    let listed = c
        .ads
        .list_ads(b.req(pb::ListAdsRequest {
            ad_set_id: set.id.clone(),
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    assert!(listed.ads.is_empty());
    let listed = c
        .ads
        .list_ads(b.req(Default::default()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.ads, vec![b_ad.clone()]);
    assert!(listed.ads.iter().all(|ad| ad.id != the_ad.id));
    let mut hijack = the_ad.clone();
    hijack.preview_url = "https://evil.example/".into();
    let err = c
        .ads
        .update_ad(b.req(pb::UpdateAdRequest {
            ad: Some(hijack),
            update_mask: mask(&["preview_url"]),
        }))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    let err = c
        .ads
        .delete_ad(b.req(pb::DeleteAdRequest {
            id: the_ad.id.clone(),
        }))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);

    // A still sees all of it, unchanged.
    assert_eq!(get_campaign(&mut c, &a, &cmp.id).await.unwrap(), cmp);
    let got_set = c
        .ad_sets
        .get_ad_set(a.req(pb::GetAdSetRequest { id: set.id.clone() }))
        .await
        .unwrap()
        .into_inner()
        .ad_set
        .unwrap();
    assert_eq!(got_set, set);
    let got_ad = c
        .ads
        .get_ad(a.req(pb::GetAdRequest {
            id: the_ad.id.clone(),
        }))
        .await
        .unwrap()
        .into_inner()
        .ad
        .unwrap();
    assert_eq!(got_ad, the_ad);
}

#[tokio::test]
async fn a_parent_of_another_tenant_is_not_found_like_a_missing_one() {
    let (_db, _srv, a, b, mut c) = setup().await;
    let b_cmp = create_campaign(&mut c, &b, "cmp-b", "B").await;
    let b_set = create_ad_set(&mut c, &b, &b_cmp.id, "set-b").await;

    let foreign = c
        .ad_sets
        .create_ad_set(a.req(pb::CreateAdSetRequest {
            ad_set: Some(ad_set(&b_cmp.id, "set-a")),
        }))
        .await
        .unwrap_err();
    let random = c
        .ad_sets
        .create_ad_set(a.req(pb::CreateAdSetRequest {
            ad_set: Some(ad_set(&uuid::Uuid::new_v4().to_string(), "set-a")),
        }))
        .await
        .unwrap_err();
    assert_eq!(foreign.code(), Code::NotFound);
    assert_eq!(random.code(), Code::NotFound);
    assert_eq!(foreign.message(), random.message());

    let foreign = c
        .ads
        .create_ad(a.req(pb::CreateAdRequest {
            ad: Some(ad(&b_set.id, "ad-a")),
        }))
        .await
        .unwrap_err();
    let random = c
        .ads
        .create_ad(a.req(pb::CreateAdRequest {
            ad: Some(ad(&uuid::Uuid::new_v4().to_string(), "ad-a")),
        }))
        .await
        .unwrap_err();
    assert_eq!(foreign.code(), Code::NotFound);
    assert_eq!(foreign.message(), random.message());

    // Nothing was written for A; B's ad set is still there under B.
    let listed = c
        .ad_sets
        .list_ad_sets(a.req(Default::default()))
        .await
        .unwrap()
        .into_inner();
    assert!(listed.ad_sets.is_empty());
    let b_sets = c
        .ad_sets
        .list_ad_sets(b.req(Default::default()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(b_sets.ad_sets, vec![b_set]);
}

#[tokio::test]
async fn external_ids_are_unique_per_tenant_only() {
    let (_db, _srv, a, b, mut c) = setup().await;
    let first = create_campaign(&mut c, &a, "dup", "First").await;
    let err = c
        .campaigns
        .create_campaign(a.req(pb::CreateCampaignRequest {
            campaign: Some(campaign("dup", "Second")),
        }))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::AlreadyExists);
    // The same external id in another tenant is fine.
    let other = create_campaign(&mut c, &b, "dup", "B's").await;
    assert_eq!(other.external_id, "dup");

    let set = create_ad_set(&mut c, &a, &first.id, "set-dup").await;
    let err = c
        .ad_sets
        .create_ad_set(a.req(pb::CreateAdSetRequest {
            ad_set: Some(ad_set(&first.id, "set-dup")),
        }))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::AlreadyExists);
    create_ad(&mut c, &a, &set.id, "ad-dup").await;
    let err = c
        .ads
        .create_ad(a.req(pb::CreateAdRequest {
            ad: Some(ad(&set.id, "ad-dup")),
        }))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::AlreadyExists);

    // Renaming onto a taken external id is ALREADY_EXISTS too.
    let second = create_campaign(&mut c, &a, "other", "Other").await;
    let mut change = second.clone();
    change.external_id = "dup".into();
    let err = c
        .campaigns
        .update_campaign(a.req(pb::UpdateCampaignRequest {
            campaign: Some(change),
            update_mask: mask(&["external_id"]),
        }))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::AlreadyExists);
    let names: Vec<String> = list_campaigns(&mut c, &a, Default::default())
        .await
        .unwrap()
        .campaigns
        .into_iter()
        .map(|c| c.name)
        .collect();
    assert_eq!(names, vec!["First", "Other"]);
}

#[tokio::test]
async fn a_field_mask_changes_only_the_listed_fields() {
    let (_db, _srv, a, _b, mut c) = setup().await;
    let created = create_campaign(&mut c, &a, "cmp", "Before").await;
    let change = pb::Campaign {
        id: created.id.clone(),
        name: "After".into(),
        status: pb::CampaignStatus::Paused.into(),
        // Not in the mask: must stay as they were, though empty here.
        external_id: String::new(),
        currency: String::new(),
        ..Default::default()
    };
    let updated = c
        .campaigns
        .update_campaign(a.req(pb::UpdateCampaignRequest {
            campaign: Some(change),
            update_mask: mask(&["name", "status"]),
        }))
        .await
        .unwrap()
        .into_inner()
        .campaign
        .unwrap();
    assert_eq!(updated.name, "After");
    assert_eq!(updated.status(), pb::CampaignStatus::Paused);
    let expected = pb::Campaign {
        name: "After".into(),
        status: pb::CampaignStatus::Paused.into(),
        update_time: updated.update_time,
        ..created.clone()
    };
    assert_eq!(updated, expected);
    assert_eq!(
        get_campaign(&mut c, &a, &created.id).await.unwrap(),
        expected
    );

    // Unknown and output-only paths are refused, nothing changes.
    for paths in [&["nme"][..], &["create_time"], &["name", "bogus"]] {
        let err = c
            .campaigns
            .update_campaign(a.req(pb::UpdateCampaignRequest {
                campaign: Some(pb::Campaign {
                    id: created.id.clone(),
                    name: "Never".into(),
                    ..Default::default()
                }),
                update_mask: mask(paths),
            }))
            .await
            .unwrap_err();
        assert!(violated_fields(&err).contains(&"update_mask".to_owned()));
    }
    assert_eq!(
        get_campaign(&mut c, &a, &created.id).await.unwrap(),
        expected
    );

    // An ad set's parent cannot be moved.
    let set = create_ad_set(&mut c, &a, &created.id, "set").await;
    let err = c
        .ad_sets
        .update_ad_set(a.req(pb::UpdateAdSetRequest {
            ad_set: Some(set.clone()),
            update_mask: mask(&["campaign_id"]),
        }))
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&err), vec!["update_mask"]);

    // An empty mask replaces every mutable field.
    let replacement = pb::Campaign {
        id: created.id.clone(),
        ..campaign("cmp-new", "Replaced")
    };
    let replaced = c
        .campaigns
        .update_campaign(a.req(pb::UpdateCampaignRequest {
            campaign: Some(replacement),
            update_mask: None,
        }))
        .await
        .unwrap()
        .into_inner()
        .campaign
        .unwrap();
    assert_eq!(replaced.external_id, "cmp-new");
    assert_eq!(replaced.name, "Replaced");
    assert_eq!(replaced.status(), pb::CampaignStatus::Active);

    // Moving the end before the stored start is refused.
    let err = c
        .ad_sets
        .update_ad_set(a.req(pb::UpdateAdSetRequest {
            ad_set: Some(pb::AdSet {
                id: set.id.clone(),
                end_time: Some(prost_types::Timestamp {
                    seconds: 1_600_000_000,
                    nanos: 0,
                }),
                ..Default::default()
            }),
            update_mask: mask(&["end_time"]),
        }))
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&err), vec!["ad_set.end_time"]);
}

#[tokio::test]
async fn invalid_input_reports_every_violation_and_writes_nothing() {
    let (_db, _srv, a, _b, mut c) = setup().await;
    let err = c
        .campaigns
        .create_campaign(a.req(pb::CreateCampaignRequest {
            campaign: Some(pb::Campaign {
                external_id: String::new(),
                name: "x".repeat(300),
                platform: pb::Platform::Unspecified.into(),
                currency: "eur".into(),
                ..Default::default()
            }),
        }))
        .await
        .unwrap_err();
    let mut fields = violated_fields(&err);
    fields.sort();
    assert_eq!(
        fields,
        vec![
            "campaign.currency",
            "campaign.external_id",
            "campaign.name",
            "campaign.platform"
        ]
    );
    assert!(err.message().contains("ISO 4217"), "{}", err.message());
    let listed = list_campaigns(&mut c, &a, Default::default())
        .await
        .unwrap();
    assert!(listed.campaigns.is_empty());

    let cmp = create_campaign(&mut c, &a, "cmp", "Valid").await;
    let err = c
        .ad_sets
        .create_ad_set(a.req(pb::CreateAdSetRequest {
            ad_set: Some(pb::AdSet {
                daily_budget: "-5".into(),
                start_time: Some(prost_types::Timestamp {
                    seconds: 1_800_000_000,
                    nanos: 0,
                }),
                end_time: Some(prost_types::Timestamp {
                    seconds: 1_700_000_000,
                    nanos: 0,
                }),
                ..ad_set("not-a-uuid", "set")
            }),
        }))
        .await
        .unwrap_err();
    let mut fields = violated_fields(&err);
    fields.sort();
    assert_eq!(
        fields,
        vec![
            "ad_set.campaign_id",
            "ad_set.daily_budget",
            "ad_set.end_time"
        ]
    );
    for bad in ["12.5.0", "1e3", "12.123456", "abc"] {
        let err = c
            .ad_sets
            .create_ad_set(a.req(pb::CreateAdSetRequest {
                ad_set: Some(pb::AdSet {
                    daily_budget: bad.into(),
                    ..ad_set(&cmp.id, "set")
                }),
            }))
            .await
            .unwrap_err();
        assert_eq!(violated_fields(&err), vec!["ad_set.daily_budget"], "{bad}");
    }
    let sets = c
        .ad_sets
        .list_ad_sets(a.req(Default::default()))
        .await
        .unwrap()
        .into_inner();
    assert!(sets.ad_sets.is_empty());

    let set = create_ad_set(&mut c, &a, &cmp.id, "set").await;
    let err = c
        .ads
        .create_ad(a.req(pb::CreateAdRequest {
            ad: Some(pb::Ad {
                preview_url: "javascript:alert(1)".into(),
                name: String::new(),
                ..ad(&set.id, "ad")
            }),
        }))
        .await
        .unwrap_err();
    let mut fields = violated_fields(&err);
    fields.sort();
    assert_eq!(fields, vec!["ad.name", "ad.preview_url"]);
    let err = c
        .campaigns
        .get_campaign(a.req(pb::GetCampaignRequest { id: "nope".into() }))
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&err), vec!["id"]);
    let ads = c
        .ads
        .list_ads(a.req(Default::default()))
        .await
        .unwrap()
        .into_inner();
    assert!(ads.ads.is_empty());
}

/// Pages through every order, inserting rows that sort before and after the
/// cursor between fetches: each row present at the start is served exactly
/// once, and no page is repeated.
#[tokio::test]
async fn keyset_pages_serve_every_row_once_across_concurrent_inserts() {
    let (_db, _srv, a, b, mut c) = setup().await;
    let mut originals = Vec::new();
    for i in 0..25 {
        let name = format!("m{i:02}");
        originals.push(
            create_campaign(&mut c, &a, &format!("ext-{i}"), &name)
                .await
                .id,
        );
    }
    create_campaign(&mut c, &b, "b-ext", "m50").await;

    for (order_by, descending) in [
        (pb::CampaignOrderBy::Name, false),
        (pb::CampaignOrderBy::Name, true),
        (pb::CampaignOrderBy::CreateTime, false),
        (pb::CampaignOrderBy::CreateTime, true),
    ] {
        let mut seen: Vec<String> = Vec::new();
        let mut names: Vec<String> = Vec::new();
        let mut token = String::new();
        let mut round = 0;
        loop {
            let page = list_campaigns(
                &mut c,
                &a,
                pb::ListCampaignsRequest {
                    page_size: 7,
                    page_token: token.clone(),
                    order_by: order_by.into(),
                    descending,
                    ..Default::default()
                },
            )
            .await
            .unwrap();
            for campaign in page.campaigns {
                seen.push(campaign.id);
                names.push(campaign.name);
            }
            if page.next_page_token.is_empty() {
                break;
            }
            token = page.next_page_token;
            // One row sorting before every name ("a…") and one after ("z…").
            round += 1;
            let tag = format!("{order_by:?}{descending}{round}");
            create_campaign(&mut c, &a, &format!("a-{tag}"), &format!("a{tag}")).await;
            create_campaign(&mut c, &a, &format!("z-{tag}"), &format!("z{tag}")).await;
        }
        let mut unique = seen.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(
            unique.len(),
            seen.len(),
            "no row twice ({order_by:?}, {descending})"
        );
        for id in &originals {
            assert!(seen.contains(id), "every original row once");
        }
        let mut sorted = names.clone();
        if order_by == pb::CampaignOrderBy::Name {
            sorted.sort();
            if descending {
                sorted.reverse();
            }
            // Only rows beyond the cursor can join: the order holds.
            assert_eq!(names, sorted);
        }
        assert!(!names.contains(&"m50".to_owned()), "B's row never appears");
    }
}

#[tokio::test]
async fn a_page_token_is_bound_to_its_tenant_and_filters() {
    let (_db, _srv, a, b, mut c) = setup().await;
    for i in 0..3 {
        create_campaign(&mut c, &a, &format!("a-{i}"), &format!("A{i}")).await;
    }
    create_campaign(&mut c, &b, "b-0", "B0").await;
    let page = list_campaigns(
        &mut c,
        &a,
        pb::ListCampaignsRequest {
            page_size: 1,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(page.campaigns.len(), 1);
    assert!(!page.next_page_token.is_empty());

    let replayed = list_campaigns(
        &mut c,
        &b,
        pb::ListCampaignsRequest {
            page_size: 1,
            page_token: page.next_page_token.clone(),
            ..Default::default()
        },
    )
    .await
    .unwrap_err();
    assert_eq!(violated_fields(&replayed), vec!["page_token"]);
    for other in [
        pb::ListCampaignsRequest {
            status: pb::CampaignStatus::Paused.into(),
            ..Default::default()
        },
        pb::ListCampaignsRequest {
            order_by: pb::CampaignOrderBy::Name.into(),
            ..Default::default()
        },
        pb::ListCampaignsRequest {
            descending: true,
            ..Default::default()
        },
    ] {
        let err = list_campaigns(
            &mut c,
            &a,
            pb::ListCampaignsRequest {
                page_size: 1,
                page_token: page.next_page_token.clone(),
                ..other
            },
        )
        .await
        .unwrap_err();
        assert_eq!(violated_fields(&err), vec!["page_token"]);
    }
    let garbage = list_campaigns(
        &mut c,
        &a,
        pb::ListCampaignsRequest {
            page_token: "not-a-token".into(),
            ..Default::default()
        },
    )
    .await
    .unwrap_err();
    assert_eq!(garbage.code(), Code::InvalidArgument);
    // The same token still works for A with the same query.
    let next = list_campaigns(
        &mut c,
        &a,
        pb::ListCampaignsRequest {
            page_size: 1,
            page_token: page.next_page_token,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(next.campaigns.len(), 1);
    assert_ne!(next.campaigns[0].id, page.campaigns[0].id);
}

#[tokio::test]
async fn filters_select_by_status_platform_and_parent() {
    let (_db, _srv, a, _b, mut c) = setup().await;
    let meta = create_campaign(&mut c, &a, "meta", "Meta").await;
    let google = c
        .campaigns
        .create_campaign(a.req(pb::CreateCampaignRequest {
            campaign: Some(pb::Campaign {
                platform: pb::Platform::GoogleAds.into(),
                status: pb::CampaignStatus::Paused.into(),
                ..campaign("google", "Google")
            }),
        }))
        .await
        .unwrap()
        .into_inner()
        .campaign
        .unwrap();
    let by_platform = list_campaigns(
        &mut c,
        &a,
        pb::ListCampaignsRequest {
            platform: pb::Platform::GoogleAds.into(),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(by_platform.campaigns, vec![google.clone()]);
    let by_status = list_campaigns(
        &mut c,
        &a,
        pb::ListCampaignsRequest {
            status: pb::CampaignStatus::Active.into(),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(by_status.campaigns, vec![meta.clone()]);

    let s1 = create_ad_set(&mut c, &a, &meta.id, "s1").await;
    let s2 = create_ad_set(&mut c, &a, &google.id, "s2").await;
    let under_google = c
        .ad_sets
        .list_ad_sets(a.req(pb::ListAdSetsRequest {
            campaign_id: google.id.clone(),
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(under_google.ad_sets, vec![s2.clone()]);
    let a1 = create_ad(&mut c, &a, &s1.id, "a1").await;
    create_ad(&mut c, &a, &s2.id, "a2").await;
    let paused_in_s1 = c
        .ads
        .list_ads(a.req(pb::ListAdsRequest {
            ad_set_id: s1.id.clone(),
            status: pb::AdStatus::Paused.into(),
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(paused_in_s1.ads, vec![a1]);
}

#[tokio::test]
async fn deleting_a_campaign_deletes_its_ad_sets_and_ads() {
    let (_db, _srv, a, b, mut c) = setup().await;
    let cmp = create_campaign(&mut c, &a, "cmp", "Doomed").await;
    let keep = create_campaign(&mut c, &a, "keep", "Kept").await;
    let set = create_ad_set(&mut c, &a, &cmp.id, "set").await;
    let the_ad = create_ad(&mut c, &a, &set.id, "ad").await;
    let kept_set = create_ad_set(&mut c, &a, &keep.id, "kept-set").await;
    let b_cmp = create_campaign(&mut c, &b, "cmp", "B's").await;
    let b_set = create_ad_set(&mut c, &b, &b_cmp.id, "set").await;

    c.campaigns
        .delete_campaign(a.req(pb::DeleteCampaignRequest { id: cmp.id }))
        .await
        .unwrap();
    let err = c
        .ad_sets
        .get_ad_set(a.req(pb::GetAdSetRequest { id: set.id }))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    let err = c
        .ads
        .get_ad(a.req(pb::GetAdRequest { id: the_ad.id }))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    let remaining = c
        .ad_sets
        .list_ad_sets(a.req(Default::default()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(remaining.ad_sets, vec![kept_set]);
    let b_remaining = c
        .ad_sets
        .list_ad_sets(b.req(Default::default()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(b_remaining.ad_sets, vec![b_set]);
}

#[tokio::test]
async fn a_viewer_reads_but_cannot_write() {
    let (_db, _srv, a, _b, mut c) = setup().await;
    let cmp = create_campaign(&mut c, &a, "cmp", "Spring").await;
    let set = create_ad_set(&mut c, &a, &cmp.id, "set").await;
    let viewer = Tenant {
        id: a.id,
        token: token(&[a.id], Role::Viewer),
    };
    assert_eq!(get_campaign(&mut c, &viewer, &cmp.id).await.unwrap(), cmp);
    let err = c
        .campaigns
        .create_campaign(viewer.req(pb::CreateCampaignRequest {
            campaign: Some(campaign("v", "Viewer's")),
        }))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    let err = c
        .campaigns
        .update_campaign(viewer.req(pb::UpdateCampaignRequest {
            campaign: Some(pb::Campaign {
                name: "Renamed".into(),
                ..cmp.clone()
            }),
            update_mask: mask(&["name"]),
        }))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    let err = c
        .ad_sets
        .delete_ad_set(viewer.req(pb::DeleteAdSetRequest { id: set.id.clone() }))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    let err = c
        .ads
        .create_ad(viewer.req(pb::CreateAdRequest {
            ad: Some(ad(&set.id, "ad")),
        }))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    // Nothing changed: the campaign keeps its name and stays alone, the ad set
    // survived the refused delete, and the refused create left no ad behind.
    assert_eq!(get_campaign(&mut c, &a, &cmp.id).await.unwrap(), cmp);
    let listed = list_campaigns(&mut c, &a, Default::default())
        .await
        .unwrap();
    assert_eq!(listed.campaigns, vec![cmp]);
    let got_set = c
        .ad_sets
        .get_ad_set(a.req(pb::GetAdSetRequest { id: set.id.clone() }))
        .await
        .unwrap()
        .into_inner()
        .ad_set
        .unwrap();
    assert_eq!(got_set, set);
    let ads = c
        .ads
        .list_ads(a.req(pb::ListAdsRequest {
            ad_set_id: set.id,
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    assert!(ads.ads.is_empty());
}

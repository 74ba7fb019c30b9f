//! Checks the published descriptor set against the service contract, so a renamed service or
//! method, or a changed streaming mode, fails here before any client breaks.

// Test code: a panic on a malformed descriptor is the failure we want.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use prost::Message;
use prost_types::FileDescriptorSet;

/// (method, client streaming, server streaming).
type Method = (&'static str, bool, bool);

/// Every service by fully-qualified name, with all of its methods.
const CONTRACT: &[(&str, &[Method])] = &[
    (
        "adscope.analytics.v1.CampaignService",
        &[
            ("CreateCampaign", false, false),
            ("GetCampaign", false, false),
            ("ListCampaigns", false, false),
            ("UpdateCampaign", false, false),
            ("DeleteCampaign", false, false),
        ],
    ),
    (
        "adscope.analytics.v1.AdSetService",
        &[
            ("CreateAdSet", false, false),
            ("GetAdSet", false, false),
            ("ListAdSets", false, false),
            ("UpdateAdSet", false, false),
            ("DeleteAdSet", false, false),
        ],
    ),
    (
        "adscope.analytics.v1.AdService",
        &[
            ("CreateAd", false, false),
            ("GetAd", false, false),
            ("ListAds", false, false),
            ("UpdateAd", false, false),
            ("DeleteAd", false, false),
        ],
    ),
    (
        "adscope.analytics.v1.PerformanceService",
        &[
            ("IngestRecords", true, false),
            ("ListRecords", false, false),
            ("QueryMetrics", false, false),
        ],
    ),
    (
        "adscope.analytics.v1.SnapshotService",
        &[
            ("GetSnapshot", false, false),
            ("RefreshSnapshot", false, false),
        ],
    ),
    (
        "adscope.integrations.v1.ConnectionService",
        &[
            ("CreateConnection", false, false),
            ("GetConnection", false, false),
            ("ListConnections", false, false),
            ("UpdateConnection", false, false),
            ("DeleteConnection", false, false),
            ("TriggerSync", false, false),
            ("ListJobs", false, false),
            ("GetSyncStatus", false, false),
        ],
    ),
    (
        "adscope.integrations.v1.CredentialService",
        &[
            ("PutCredential", false, false),
            ("GetCredential", false, false),
            ("ListCredentials", false, false),
            ("DeleteCredential", false, false),
            ("RotateDataKey", false, false),
        ],
    ),
    (
        "adscope.fleet.v1.FleetService",
        &[
            ("GetFleetStatus", false, false),
            ("ListTenantHealth", false, false),
        ],
    ),
];

/// Method name -> (client streaming, server streaming), per fully-qualified service name.
type Services = BTreeMap<String, BTreeMap<String, (bool, bool)>>;

fn decoded() -> FileDescriptorSet {
    FileDescriptorSet::decode(adscope_proto::FILE_DESCRIPTOR_SET).unwrap()
}

fn services(set: &FileDescriptorSet) -> Services {
    let mut out = Services::new();
    for file in &set.file {
        for service in &file.service {
            let name = format!("{}.{}", file.package(), service.name());
            let methods = service
                .method
                .iter()
                .map(|m| {
                    (
                        m.name().to_owned(),
                        (m.client_streaming(), m.server_streaming()),
                    )
                })
                .collect();
            out.insert(name, methods);
        }
    }
    out
}

#[test]
fn every_contract_service_has_exactly_its_methods_with_their_streaming_modes() {
    let found = services(&decoded());
    for (service, methods) in CONTRACT {
        let actual = found
            .get(*service)
            .unwrap_or_else(|| panic!("service {service} missing from the descriptor set"));
        let expected: BTreeMap<String, (bool, bool)> = methods
            .iter()
            .map(|(name, client, server)| ((*name).to_owned(), (*client, *server)))
            .collect();
        assert_eq!(actual, &expected, "methods of {service}");
    }
}

#[test]
fn descriptor_set_has_no_service_outside_the_contract() {
    let found = services(&decoded());
    let mut expected: Vec<&str> = CONTRACT.iter().map(|(s, _)| *s).collect();
    expected.sort_unstable();
    // BTreeMap keys are already sorted.
    let actual: Vec<&str> = found.keys().map(String::as_str).collect();
    assert_eq!(actual, expected);
}

#[test]
fn descriptor_set_carries_the_well_known_imports_reflection_needs() {
    let set = decoded();
    let names: Vec<&str> = set.file.iter().map(|f| f.name()).collect();
    for wkt in [
        "google/protobuf/timestamp.proto",
        "google/protobuf/struct.proto",
        "google/protobuf/field_mask.proto",
    ] {
        assert!(names.contains(&wkt), "{wkt} missing; files: {names:?}");
    }
}

#[test]
fn generated_types_are_usable_from_rust() {
    use adscope_proto::analytics::v1::{Campaign, CampaignStatus, MetricsRow, Platform};

    let campaign = Campaign {
        id: "3f2b8c1e-0000-4000-8000-000000000001".to_owned(),
        platform: Platform::GoogleAds as i32,
        status: CampaignStatus::Paused as i32,
        create_time: Some(prost_types::Timestamp {
            seconds: 1,
            nanos: 0,
        }),
        ..Campaign::default()
    };
    let round_trip = Campaign::decode(campaign.encode_to_vec().as_slice()).unwrap();
    assert_eq!(round_trip, campaign);
    assert_eq!(round_trip.platform(), Platform::GoogleAds);

    // proto3 `optional` ratios must distinguish "absent" from zero.
    let row = MetricsRow {
        ctr: Some(0.0),
        ..MetricsRow::default()
    };
    let decoded = MetricsRow::decode(row.encode_to_vec().as_slice()).unwrap();
    assert_eq!(decoded.ctr, Some(0.0));
    assert_eq!(decoded.cpc, None);
}

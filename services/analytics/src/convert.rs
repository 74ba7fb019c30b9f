//! Conversions between database values and protobuf messages.

use adscope_proto::analytics::v1 as pb;
use chrono::{DateTime, Utc};
use prost_types::value::Kind;
use prost_types::{FieldMask, ListValue, Struct, Timestamp, Value};
use serde_json::{Map, Number, Value as Json};

use crate::error::{ApiError, Violations};

/// A database time as a protobuf timestamp.
pub(crate) fn timestamp(time: DateTime<Utc>) -> Timestamp {
    Timestamp {
        seconds: time.timestamp(),
        nanos: i32::try_from(time.timestamp_subsec_nanos()).unwrap_or(0),
    }
}

/// A protobuf timestamp as a database time; `None` when out of range.
pub(crate) fn datetime(ts: &Timestamp) -> Option<DateTime<Utc>> {
    u32::try_from(ts.nanos)
        .ok()
        .and_then(|nanos| DateTime::from_timestamp(ts.seconds, nanos))
}

/// A JSON object as a `google.protobuf.Struct` (non-objects give an empty one).
pub(crate) fn to_struct(json: &Json) -> Struct {
    match json {
        Json::Object(map) => Struct {
            fields: map.iter().map(|(k, v)| (k.clone(), to_value(v))).collect(),
        },
        _ => Struct::default(),
    }
}

fn to_value(json: &Json) -> Value {
    let kind = match json {
        Json::Null => Kind::NullValue(0),
        Json::Bool(b) => Kind::BoolValue(*b),
        Json::Number(n) => Kind::NumberValue(n.as_f64().unwrap_or(0.0)),
        Json::String(s) => Kind::StringValue(s.clone()),
        Json::Array(items) => Kind::ListValue(ListValue {
            values: items.iter().map(to_value).collect(),
        }),
        Json::Object(_) => Kind::StructValue(to_struct(json)),
    };
    Value { kind: Some(kind) }
}

/// A `google.protobuf.Struct` as a JSON object. Non-finite numbers, which JSON
/// cannot hold, become null.
pub(crate) fn from_struct(value: &Struct) -> Json {
    Json::Object(
        value
            .fields
            .iter()
            .map(|(k, v)| (k.clone(), from_value(v)))
            .collect::<Map<_, _>>(),
    )
}

fn from_value(value: &Value) -> Json {
    match &value.kind {
        None | Some(Kind::NullValue(_)) => Json::Null,
        Some(Kind::BoolValue(b)) => Json::Bool(*b),
        Some(Kind::NumberValue(n)) => Number::from_f64(*n).map_or(Json::Null, Json::Number),
        Some(Kind::StringValue(s)) => Json::String(s.clone()),
        Some(Kind::ListValue(list)) => Json::Array(list.values.iter().map(from_value).collect()),
        Some(Kind::StructValue(s)) => from_struct(s),
    }
}

/// The stored platform name of a proto platform; `None` for UNSPECIFIED.
pub(crate) fn platform_name(platform: pb::Platform) -> Option<&'static str> {
    Some(match platform {
        pb::Platform::Unspecified => return None,
        pb::Platform::Meta => "meta",
        pb::Platform::GoogleAds => "google_ads",
        pb::Platform::Linkedin => "linkedin",
        pb::Platform::Tiktok => "tiktok",
        pb::Platform::Ga4 => "ga4",
        pb::Platform::Other => "other",
    })
}

/// The stored name of a campaign, ad set or ad status; `None` for
/// UNSPECIFIED and for numbers no status has. The three status enums
/// number their values alike (a test below holds them to it), so one
/// mapping over the number serves all three.
pub(crate) fn status_name(status: impl Into<i32>) -> Option<&'static str> {
    Some(
        match pb::CampaignStatus::try_from(status.into()).unwrap_or_default() {
            pb::CampaignStatus::Unspecified => return None,
            pb::CampaignStatus::Active => "active",
            pb::CampaignStatus::Paused => "paused",
            pb::CampaignStatus::Archived => "archived",
            pb::CampaignStatus::Deleted => "deleted",
        },
    )
}

/// The status number of a stored status name (UNSPECIFIED when unknown),
/// valid for campaigns, ad sets and ads alike.
pub(crate) fn status_of(name: &str) -> i32 {
    match name {
        "active" => pb::CampaignStatus::Active,
        "paused" => pb::CampaignStatus::Paused,
        "archived" => pb::CampaignStatus::Archived,
        "deleted" => pb::CampaignStatus::Deleted,
        _ => pb::CampaignStatus::Unspecified,
    }
    .into()
}

/// A text field, trimmed: required fields must not be empty, none may
/// exceed `max` characters.
pub(crate) fn text(
    field: &str,
    value: &str,
    max: usize,
    required: bool,
) -> Result<String, ApiError> {
    let value = value.trim();
    if required && value.is_empty() {
        return Err(ApiError::invalid(field, "is required"));
    }
    if value.chars().count() > max {
        return Err(ApiError::invalid(
            field,
            format!("is longer than {max} characters"),
        ));
    }
    Ok(value.to_owned())
}

/// An optional protobuf timestamp as a database time.
pub(crate) fn optional_time(
    field: &str,
    ts: Option<&Timestamp>,
) -> Result<Option<DateTime<Utc>>, ApiError> {
    ts.map(|ts| datetime(ts).ok_or_else(|| ApiError::invalid(field, "is out of range")))
        .transpose()
}

/// A `Struct` field as JSON; unset is the empty object.
pub(crate) fn json_or_empty(value: Option<&Struct>) -> Json {
    value.map_or_else(|| Json::Object(Map::new()), from_struct)
}

/// The fields an update changes, from its `update_mask`.
///
/// An empty (or absent) mask means every field in `mutable`; a path naming
/// an immutable or output-only field, or no field at all, is recorded as a
/// violation of `update_mask`.
pub(crate) fn mask_fields(
    mask: Option<&FieldMask>,
    mutable: &[&'static str],
    immutable: &[&str],
    violations: &mut Violations,
) -> Vec<&'static str> {
    let paths = mask.map(|m| m.paths.as_slice()).unwrap_or_default();
    if paths.is_empty() {
        return mutable.to_vec();
    }
    let mut fields = Vec::new();
    for path in paths {
        let path = path.trim();
        if let Some(field) = mutable.iter().find(|f| **f == path) {
            if !fields.contains(field) {
                fields.push(*field);
            }
        } else if immutable.contains(&path) {
            violations.add("update_mask", format!("{path:?} cannot be updated"));
        } else {
            violations.add(
                "update_mask",
                format!(
                    "{path:?} is not a field; updatable fields are {}",
                    mutable.join(", ")
                ),
            );
        }
    }
    fields
}

/// An optional link: empty, or an absolute `http`/`https` URL with a host.
pub(crate) fn http_url(field: &str, value: &str, max: usize) -> Result<String, ApiError> {
    let value = value.trim();
    if value.is_empty() {
        return Ok(String::new());
    }
    if value.len() > max {
        return Err(ApiError::invalid(
            field,
            format!("is longer than {max} characters"),
        ));
    }
    match url::Url::parse(value) {
        Ok(url) if matches!(url.scheme(), "http" | "https") && url.host().is_some() => {
            Ok(value.to_owned())
        }
        _ => Err(ApiError::invalid(
            field,
            "must be an absolute http or https URL, e.g. https://example.com/preview",
        )),
    }
}

/// A non-negative decimal amount as text with at most `scale` fractional
/// digits and `precision` digits in all, e.g. "12.50"; empty means none.
pub(crate) fn decimal(
    field: &str,
    value: &str,
    precision: usize,
    scale: usize,
) -> Result<Option<String>, ApiError> {
    let value = value.trim();
    if value.is_empty() {
        return Ok(None);
    }
    if value.starts_with('-') {
        return Err(ApiError::invalid(field, "must not be negative"));
    }
    let (whole, fraction) = value.split_once('.').unwrap_or((value, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty() || !digits(whole) || !digits(fraction) || value.ends_with('.') {
        return Err(ApiError::invalid(
            field,
            format!("must be a decimal number such as \"12.50\", got {value:?}"),
        ));
    }
    if fraction.len() > scale {
        return Err(ApiError::invalid(
            field,
            format!("must have at most {scale} decimal places"),
        ));
    }
    let whole = whole.trim_start_matches('0');
    if whole.len() > precision - scale {
        return Err(ApiError::invalid(field, "is too large"));
    }
    let whole = if whole.is_empty() { "0" } else { whole };
    Ok(Some(if fraction.is_empty() {
        whole.to_owned()
    } else {
        format!("{whole}.{fraction}")
    }))
}

/// A stored decimal's text with trailing zeros trimmed to two places
/// ("12.5000" → "12.50", "0.1250" → "0.125").
pub(crate) fn decimal_text(stored: &str) -> String {
    let Some((whole, fraction)) = stored.split_once('.') else {
        return format!("{stored}.00");
    };
    let mut fraction = fraction.trim_end_matches('0').to_owned();
    while fraction.len() < 2 {
        fraction.push('0');
    }
    format!("{whole}.{fraction}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_objects_survive_a_struct_round_trip() {
        let json = serde_json::json!({
            "name": "spring", "budget": 12.5, "tags": ["a", "b"], "nested": {"on": true}, "none": null
        });
        assert_eq!(from_struct(&to_struct(&json)), json);
    }

    #[test]
    fn decimals_are_checked_and_normalised() {
        assert_eq!(decimal("b", "12.50", 18, 4).unwrap(), Some("12.50".into()));
        assert_eq!(decimal("b", "007", 18, 4).unwrap(), Some("7".into()));
        assert_eq!(decimal("b", "", 18, 4).unwrap(), None);
        for bad in [
            "-1",
            "1.2.3",
            "abc",
            ".5",
            "5.",
            "1.23456",
            "1e5",
            "123456789012345",
        ] {
            assert!(decimal("b", bad, 18, 4).is_err(), "{bad}");
        }
        assert_eq!(decimal_text("12.5000"), "12.50");
        assert_eq!(decimal_text("0.1250"), "0.125");
        assert_eq!(decimal_text("3"), "3.00");
    }

    #[test]
    fn masks_name_fields_or_mean_all() {
        let mut v = Violations::new();
        assert_eq!(
            mask_fields(None, &["a", "b"], &["id"], &mut v),
            vec!["a", "b"]
        );
        let mask = FieldMask {
            paths: vec!["b".into(), "id".into(), "zzz".into()],
        };
        assert_eq!(
            mask_fields(Some(&mask), &["a", "b"], &["id"], &mut v),
            vec!["b"]
        );
        assert!(matches!(v.finish(), Err(ApiError::Invalid(list)) if list.len() == 2));
    }

    #[test]
    fn urls_must_be_http() {
        assert!(http_url("u", "https://example.com/p?x=1", 100).is_ok());
        assert_eq!(http_url("u", "", 100).unwrap(), "");
        for bad in [
            "ftp://example.com",
            "example.com",
            "javascript:alert(1)",
            "http://",
        ] {
            assert!(http_url("u", bad, 100).is_err(), "{bad}");
        }
    }

    #[test]
    fn status_enums_number_their_values_alike() {
        // Every number names the same status (or none) in all three enums,
        // which the shared status_name/status_of rely on.
        for n in -1..8 {
            let campaign = pb::CampaignStatus::try_from(n)
                .ok()
                .map(|s| s.as_str_name().strip_prefix("CAMPAIGN_STATUS_").unwrap());
            let ad_set = pb::AdSetStatus::try_from(n)
                .ok()
                .map(|s| s.as_str_name().strip_prefix("AD_SET_STATUS_").unwrap());
            let ad = pb::AdStatus::try_from(n)
                .ok()
                .map(|s| s.as_str_name().strip_prefix("AD_STATUS_").unwrap());
            assert_eq!(campaign, ad_set, "{n}");
            assert_eq!(campaign, ad, "{n}");
        }
        for name in ["active", "paused", "archived", "deleted"] {
            assert_eq!(status_name(status_of(name)), Some(name));
        }
        assert_eq!(status_name(pb::AdStatus::Unspecified), None);
        assert_eq!(status_of("gone"), 0);
    }

    #[test]
    fn timestamps_round_trip() {
        let now = DateTime::from_timestamp(1_700_000_000, 123_000_000).expect("valid");
        assert_eq!(datetime(&timestamp(now)), Some(now));
        assert_eq!(
            datetime(&Timestamp {
                seconds: 0,
                nanos: -1
            }),
            None
        );
    }
}

//! Conversions between database values and protobuf messages.

use chrono::{DateTime, Utc};
use prost_types::value::Kind;
use prost_types::{ListValue, Struct, Timestamp, Value};
use serde_json::{Map, Number, Value as Json};

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

//! Page sizes and opaque page tokens for keyset pagination.
//!
//! A token carries the tenant it was issued to, a fingerprint of the query
//! (filters and ordering) and the keyset position of the last row served.
//! Replayed by another tenant or with other filters it is refused with
//! `INVALID_ARGUMENT`; it never leaks anything but that position, which the
//! tenant itself was just shown.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, SecondsFormat, Utc};
use diesel::dsl::{AsExprOf, sql};
use diesel::expression::{SqlLiteral, UncheckedBind};
use diesel::sql_types::{Bool, Text};
use uuid::Uuid;

use crate::error::ApiError;

/// Rows per page when the caller does not say.
pub(crate) const DEFAULT_PAGE_SIZE: i64 = 50;
/// The most rows one page may hold.
pub(crate) const MAX_PAGE_SIZE: i64 = 500;

/// The page size a request asked for: 0 means the default.
pub(crate) fn page_size(requested: i32) -> Result<i64, ApiError> {
    match i64::from(requested) {
        0 => Ok(DEFAULT_PAGE_SIZE),
        n if n < 0 => Err(ApiError::invalid("page_size", "must not be negative")),
        n if n > MAX_PAGE_SIZE => Err(ApiError::invalid(
            "page_size",
            format!("must be at most {MAX_PAGE_SIZE}"),
        )),
        n => Ok(n),
    }
}

/// A fingerprint of a query's shape: everything that must stay the same
/// between the pages of one listing.
pub(crate) fn fingerprint(parts: &[&str]) -> u64 {
    // FNV-1a: stable across builds and processes, which a token must be.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for byte in part.bytes().chain([0xff]) {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    }
    hash
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Token {
    /// The tenant the token was issued to.
    t: Uuid,
    /// The query fingerprint.
    q: u64,
    /// The keyset position: the ordering values of the last row served.
    k: Vec<String>,
}

/// Encodes the position after `cursor` for `tenant` and `query`.
pub(crate) fn encode(tenant: Uuid, query: u64, cursor: Vec<String>) -> String {
    let token = Token {
        t: tenant,
        q: query,
        k: cursor,
    };
    // Serialising a struct of plain fields cannot fail.
    let json = serde_json::to_vec(&token).unwrap_or_default();
    URL_SAFE_NO_PAD.encode(json)
}

/// The keyset position a token names, or `None` for the first page.
pub(crate) fn decode(
    token: &str,
    tenant: Uuid,
    query: u64,
) -> Result<Option<Vec<String>>, ApiError> {
    if token.is_empty() {
        return Ok(None);
    }
    let invalid = || ApiError::invalid("page_token", "is not a page token this listing issued");
    let bytes = URL_SAFE_NO_PAD.decode(token).map_err(|_| invalid())?;
    let token: Token = serde_json::from_slice(&bytes).map_err(|_| invalid())?;
    if token.t != tenant {
        return Err(ApiError::invalid(
            "page_token",
            "was issued to another tenant",
        ));
    }
    if token.q != query {
        return Err(ApiError::invalid(
            "page_token",
            "was issued for other filters or ordering; start again without a page token",
        ));
    }
    Ok(Some(token.k))
}

/// The orderings the resource listings offer; `id` always breaks ties.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Order {
    Name,
    CreateTime,
}

impl Order {
    /// The name of the ordering inside a query fingerprint.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Order::Name => "name",
            Order::CreateTime => "create_time",
        }
    }
}

/// The SQL of [`Cursor::condition`]: a row comparison with two bound values.
pub(crate) type KeysetCondition = SqlLiteral<
    Bool,
    UncheckedBind<
        SqlLiteral<Bool, UncheckedBind<SqlLiteral<Bool>, AsExprOf<String, Text>>>,
        AsExprOf<String, Text>,
    >,
>;

/// A keyset position: the ordering value and id of the last row served.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Cursor {
    Name(String, Uuid),
    CreateTime(DateTime<Utc>, Uuid),
}

impl Cursor {
    /// The position after a row.
    pub(crate) fn after(order: Order, name: &str, created_at: DateTime<Utc>, id: Uuid) -> Self {
        match order {
            Order::Name => Cursor::Name(name.to_owned(), id),
            Order::CreateTime => Cursor::CreateTime(created_at, id),
        }
    }

    /// The position as token values.
    pub(crate) fn to_values(&self) -> Vec<String> {
        match self {
            Cursor::Name(name, id) => vec![name.clone(), id.to_string()],
            Cursor::CreateTime(at, id) => vec![
                at.to_rfc3339_opts(SecondsFormat::Micros, true),
                id.to_string(),
            ],
        }
    }

    /// The position a token's values name under `order`.
    pub(crate) fn from_values(order: Order, values: &[String]) -> Result<Self, ApiError> {
        let invalid = || ApiError::invalid("page_token", "is not a page token this listing issued");
        let [value, id] = values else {
            return Err(invalid());
        };
        let id = Uuid::parse_str(id).map_err(|_| invalid())?;
        Ok(match order {
            Order::Name => Cursor::Name(value.clone(), id),
            Order::CreateTime => Cursor::CreateTime(
                DateTime::parse_from_rfc3339(value)
                    .map_err(|_| invalid())?
                    .with_timezone(&Utc),
                id,
            ),
        })
    }

    /// The condition "strictly after this position" over `table`'s
    /// `name`/`created_at` and `id` columns, as one row comparison so that a
    /// `(tenant_id, <column>, id)` index can serve it.
    pub(crate) fn condition(&self, table: &str, descending: bool) -> KeysetCondition {
        let op = if descending { "<" } else { ">" };
        let (column, value, id) = match self {
            Cursor::Name(name, id) => ("name", name.clone(), id),
            Cursor::CreateTime(at, id) => (
                "created_at",
                at.to_rfc3339_opts(SecondsFormat::Micros, true),
                id,
            ),
        };
        let cast = if column == "name" {
            ""
        } else {
            "::timestamptz"
        };
        sql::<Bool>(&format!("({table}.{column}, {table}.id) {op} ("))
            .bind::<Text, _>(value)
            .sql(&format!("{cast}, "))
            .bind::<Text, _>(id.to_string())
            .sql("::uuid)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_round_trips_for_its_tenant_and_query() {
        let tenant = Uuid::new_v4();
        let q = fingerprint(&["status=active", "order=name"]);
        let token = encode(tenant, q, vec!["Spring".into(), Uuid::nil().to_string()]);
        assert_eq!(
            decode(&token, tenant, q).unwrap(),
            Some(vec!["Spring".to_string(), Uuid::nil().to_string()])
        );
        assert_eq!(decode("", tenant, q).unwrap(), None);
    }

    #[test]
    fn a_token_replayed_by_another_tenant_or_query_is_refused() {
        let tenant = Uuid::new_v4();
        let q = fingerprint(&["a"]);
        let token = encode(tenant, q, vec!["x".into()]);
        assert!(matches!(
            decode(&token, Uuid::new_v4(), q),
            Err(ApiError::Invalid(_))
        ));
        assert!(matches!(
            decode(&token, tenant, fingerprint(&["b"])),
            Err(ApiError::Invalid(_))
        ));
        assert!(matches!(
            decode("garbage!", tenant, q),
            Err(ApiError::Invalid(_))
        ));
    }

    #[test]
    fn cursors_round_trip_through_values() {
        let id = Uuid::new_v4();
        let at = DateTime::from_timestamp(1_700_000_000, 123_456_000).unwrap();
        for (order, cursor) in [
            (Order::Name, Cursor::Name("Spring, sale".into(), id)),
            (Order::CreateTime, Cursor::CreateTime(at, id)),
        ] {
            assert_eq!(
                Cursor::from_values(order, &cursor.to_values()).unwrap(),
                cursor
            );
        }
        assert!(Cursor::from_values(Order::CreateTime, &["x".into(), id.to_string()]).is_err());
        assert!(Cursor::from_values(Order::Name, &["x".into()]).is_err());
    }

    #[test]
    fn page_sizes_default_and_cap() {
        assert_eq!(page_size(0).unwrap(), DEFAULT_PAGE_SIZE);
        assert_eq!(page_size(100).unwrap(), 100);
        assert!(page_size(-1).is_err());
        assert!(page_size(501).is_err());
        assert_eq!(page_size(500).unwrap(), 500);
    }
}

//! Keyset pagination of the resource listings: their orderings and cursors,
//! over the shared tenant-bound page tokens of `adscope_server::page`.

use adscope_server::page::trim_page;
use chrono::{DateTime, SecondsFormat, Utc};
use diesel::dsl::{AsExprOf, sql};
use diesel::expression::{SqlLiteral, UncheckedBind};
use diesel::sql_types::{Bool, Text};
use uuid::Uuid;

use crate::error::{ApiError, Violations};

pub(crate) use adscope_server::page::{DEFAULT_PAGE_SIZE, decode, encode, fingerprint, page_size};

/// The position `token` resumes from under `order`, or `None` for the first
/// page. A token that does not decode for this tenant and query, or whose
/// values are not a position, is recorded in `v` rather than returned, so it
/// is reported together with the request's other violations.
pub(crate) fn cursor(
    v: &mut Violations,
    token: &str,
    tenant: Uuid,
    query: u64,
    order: Order,
) -> Option<Cursor> {
    v.check(decode(token, tenant, query))
        .flatten()
        .and_then(|values| v.check(Cursor::from_values(order, &values)))
}

/// Trims `rows` (loaded with one row beyond `size`) to the page and returns
/// the token resuming after its last row, or empty when it is the last page.
/// `key` gives a row's name, creation time and id, whichever `order` needs.
pub(crate) fn next_page_token<R>(
    rows: &mut Vec<R>,
    size: i64,
    tenant: Uuid,
    query: u64,
    order: Order,
    key: impl FnOnce(&R) -> (&str, DateTime<Utc>, Uuid),
) -> String {
    match trim_page(rows, size) {
        Some(last) => {
            let (name, created_at, id) = key(last);
            encode(
                tenant,
                query,
                Cursor::after(order, name, created_at, id).to_values(),
            )
        }
        None => String::new(),
    }
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
}

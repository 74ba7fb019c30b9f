//! Page sizes and opaque keyset page tokens, for every List method.
//!
//! A token carries the tenant it was issued to, a fingerprint of the
//! listing's filters and ordering, and the keyset position of the last row
//! served. Replayed by another tenant or with other filters it is refused
//! (`INVALID_ARGUMENT` in each service's error mapping); it reveals nothing
//! but that position, which the tenant itself was just shown.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use uuid::Uuid;

/// Rows per page when the caller does not say.
pub const DEFAULT_PAGE_SIZE: i64 = 50;
/// The most rows one page may hold.
pub const MAX_PAGE_SIZE: i64 = 500;

/// A request field that is unusable, and why: each service reports it as a
/// field violation of `INVALID_ARGUMENT`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {description}")]
pub struct InvalidField {
    pub field: &'static str,
    pub description: String,
}

/// As a status of its own: `INVALID_ARGUMENT` with a `google.rpc.BadRequest`
/// naming the field, as every service reports invalid fields.
impl From<InvalidField> for tonic::Status {
    fn from(error: InvalidField) -> tonic::Status {
        use tonic_types::{ErrorDetails, FieldViolation, StatusExt};

        tonic::Status::with_error_details(
            tonic::Code::InvalidArgument,
            error.to_string(),
            ErrorDetails::with_bad_request(vec![FieldViolation::new(
                error.field,
                error.description,
            )]),
        )
    }
}

fn invalid(field: &'static str, description: impl Into<String>) -> InvalidField {
    InvalidField {
        field,
        description: description.into(),
    }
}

/// The page size a request asked for: 0 means the default.
pub fn page_size(requested: i32) -> Result<i64, InvalidField> {
    match i64::from(requested) {
        0 => Ok(DEFAULT_PAGE_SIZE),
        n if n < 0 => Err(invalid("page_size", "must not be negative")),
        n if n > MAX_PAGE_SIZE => Err(invalid(
            "page_size",
            format!("must be at most {MAX_PAGE_SIZE}"),
        )),
        n => Ok(n),
    }
}

/// A fingerprint of a listing's shape: everything that must stay the same
/// between its pages.
pub fn fingerprint(parts: &[&str]) -> u64 {
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

/// Trims a page fetched with one row more than `size` (the way every
/// listing learns whether another page follows) and returns the last row
/// kept when one does, to build the next page token from.
pub fn trim_page<T>(rows: &mut Vec<T>, size: i64) -> Option<&T> {
    let size = usize::try_from(size).unwrap_or(usize::MAX);
    if rows.len() <= size {
        return None;
    }
    rows.truncate(size);
    rows.last()
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

/// The token for the position after `cursor`, for `tenant` and `query`.
pub fn encode(tenant: Uuid, query: u64, cursor: Vec<String>) -> String {
    let token = Token {
        t: tenant,
        q: query,
        k: cursor,
    };
    // A struct of plain fields always serialises.
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(&token).unwrap_or_default())
}

/// The keyset position a token names, or `None` for the first page.
pub fn decode(token: &str, tenant: Uuid, query: u64) -> Result<Option<Vec<String>>, InvalidField> {
    if token.is_empty() {
        return Ok(None);
    }
    let foreign = || invalid("page_token", "is not a page token this listing issued");
    let bytes = URL_SAFE_NO_PAD.decode(token).map_err(|_| foreign())?;
    let token: Token = serde_json::from_slice(&bytes).map_err(|_| foreign())?;
    if token.t != tenant {
        return Err(invalid("page_token", "was issued to another tenant"));
    }
    if token.q != query {
        return Err(invalid(
            "page_token",
            "was issued for other filters or ordering; start again without a page token",
        ));
    }
    Ok(Some(token.k))
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
        let other_tenant = decode(&token, Uuid::new_v4(), q).unwrap_err();
        assert!(other_tenant.description.contains("another tenant"));
        let other_query = decode(&token, tenant, fingerprint(&["b"])).unwrap_err();
        assert!(other_query.description.contains("other filters"));
        assert_eq!(
            decode("garbage!", tenant, q).unwrap_err().field,
            "page_token"
        );
    }

    #[test]
    fn a_page_is_trimmed_and_names_its_last_row_only_when_more_follow() {
        let mut full = vec![1, 2, 3, 4];
        assert_eq!(trim_page(&mut full, 3), Some(&3));
        assert_eq!(full, [1, 2, 3]);
        let mut last = vec![1, 2, 3];
        assert_eq!(trim_page(&mut last, 3), None);
        assert_eq!(last, [1, 2, 3]);
    }

    #[test]
    fn page_sizes_default_and_cap() {
        assert_eq!(page_size(0).unwrap(), DEFAULT_PAGE_SIZE);
        assert_eq!(page_size(100).unwrap(), 100);
        assert_eq!(page_size(500).unwrap(), 500);
        assert_eq!(page_size(-1).unwrap_err().field, "page_size");
        assert!(page_size(501).is_err());
    }
}

//! Page sizes and opaque keyset page tokens.
//!
//! A token names the tenant it was issued to, a fingerprint of the listing's
//! filters and order, and the keyset position of the last row served; any
//! other use of it is `INVALID_ARGUMENT`.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
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

/// FNV-1a over the parts of a listing's shape: stable across processes.
pub(crate) fn fingerprint(parts: &[&str]) -> u64 {
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
    t: Uuid,
    q: u64,
    k: Vec<String>,
}

/// The token for the position after `cursor`.
pub(crate) fn encode(tenant: Uuid, query: u64, cursor: Vec<String>) -> String {
    let token = Token {
        t: tenant,
        q: query,
        k: cursor,
    };
    // A struct of plain fields always serialises.
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(&token).unwrap_or_default())
}

/// The position a token names; `None` for the first page.
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

//! The caller's bearer token, kept only to forward it and never printed.

use std::fmt;
use std::sync::Arc;

/// A raw bearer token. Debug and Display redact it so that it cannot reach a
/// log line or a span by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct Credential(Arc<str>);

impl Credential {
    /// Wraps a raw token (without the `Bearer ` prefix).
    pub fn new(token: impl Into<Arc<str>>) -> Self {
        Self(token.into())
    }

    /// The raw token, for an outgoing `authorization` header and nothing else.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Credential(<redacted>)")
    }
}

impl fmt::Display for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Credential(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_redact_the_token() {
        let credential = Credential::new("secret.token.value");
        assert_eq!(format!("{credential:?}"), "Credential(<redacted>)");
        assert_eq!(credential.to_string(), "Credential(<redacted>)");
        assert_eq!(credential.expose(), "secret.token.value");
    }
}

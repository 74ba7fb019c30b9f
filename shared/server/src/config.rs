//! Configuration from the environment.
//!
//! Every binary reads its settings here at start; a missing or malformed one
//! stops it with a message naming the variable. Secret values are never
//! echoed in those messages.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;

use adscope_tenancy::Verifier;
use http::HeaderValue;

/// A setting that is missing or unusable.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{name} is not set: {hint}")]
    Missing { name: &'static str, hint: String },
    #[error("{name} is invalid: {reason}")]
    Invalid { name: &'static str, reason: String },
}

/// A non-empty environment variable.
pub fn var(name: &str) -> Option<String> {
    std::env::var(name)
        .ok()
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
}

/// A required environment variable.
pub fn required(name: &'static str, hint: &str) -> Result<String, ConfigError> {
    var(name).ok_or_else(|| ConfigError::Missing {
        name,
        hint: hint.to_owned(),
    })
}

/// An optional, parsed variable with a default; a value that does not parse
/// is an error naming the variable and the value (never use this for secrets).
pub fn parsed<T>(name: &'static str, default: T) -> Result<T, ConfigError>
where
    T: FromStr,
    T::Err: std::fmt::Display,
{
    match var(name) {
        None => Ok(default),
        Some(raw) => raw.parse().map_err(|e| ConfigError::Invalid {
            name,
            reason: format!("{raw:?}: {e}"),
        }),
    }
}

/// The token verifier, from `ADSCOPE_JWT_HS256_SECRET` (development) or
/// `ADSCOPE_JWT_PUBLIC_KEYS` (a PEM file of RSA / Ed25519 public keys), with
/// `ADSCOPE_JWT_ISSUER` and `ADSCOPE_JWT_AUDIENCE` (both default `adscope`).
pub fn verifier_from_env() -> Result<Verifier, ConfigError> {
    let issuer = var("ADSCOPE_JWT_ISSUER").unwrap_or_else(|| "adscope".into());
    let audience = var("ADSCOPE_JWT_AUDIENCE").unwrap_or_else(|| "adscope".into());
    match (var("ADSCOPE_JWT_HS256_SECRET"), var("ADSCOPE_JWT_PUBLIC_KEYS")) {
        (Some(_), Some(_)) => Err(ConfigError::Invalid {
            name: "ADSCOPE_JWT_HS256_SECRET",
            reason: "set either it or ADSCOPE_JWT_PUBLIC_KEYS, not both".into(),
        }),
        (Some(secret), None) => {
            if secret.len() < 32 {
                return Err(ConfigError::Invalid {
                    name: "ADSCOPE_JWT_HS256_SECRET",
                    reason: "must be at least 32 bytes".into(),
                });
            }
            Verifier::hs256(secret.as_bytes(), issuer, audience).map_err(|e| {
                ConfigError::Invalid {
                    name: "ADSCOPE_JWT_HS256_SECRET",
                    reason: e.to_string(),
                }
            })
        }
        (None, Some(path)) => {
            let pem = std::fs::read_to_string(&path).map_err(|e| ConfigError::Invalid {
                name: "ADSCOPE_JWT_PUBLIC_KEYS",
                reason: format!("cannot read {path}: {e}"),
            })?;
            Verifier::from_public_keys_pem(&pem, issuer, audience).map_err(|e| {
                ConfigError::Invalid {
                    name: "ADSCOPE_JWT_PUBLIC_KEYS",
                    reason: format!("{path}: {e}"),
                }
            })
        }
        (None, None) => Err(ConfigError::Missing {
            name: "ADSCOPE_JWT_HS256_SECRET",
            hint: "set it (development) or ADSCOPE_JWT_PUBLIC_KEYS (a PEM file of public keys)"
                .into(),
        }),
    }
}

/// Browser origins allowed to call over gRPC-Web (`ADSCOPE_CORS_ORIGINS`,
/// comma separated). None by default: cross-origin calls are refused.
pub fn cors_origins_from_env() -> Result<Vec<HeaderValue>, ConfigError> {
    let Some(raw) = var("ADSCOPE_CORS_ORIGINS") else {
        return Ok(Vec::new());
    };
    raw.split(',')
        .map(str::trim)
        .filter(|o| !o.is_empty())
        .map(|origin| {
            if !(origin.starts_with("http://") || origin.starts_with("https://")) {
                return Err(ConfigError::Invalid {
                    name: "ADSCOPE_CORS_ORIGINS",
                    reason: format!("{origin:?} is not an http(s) origin"),
                });
            }
            HeaderValue::from_str(origin).map_err(|e| ConfigError::Invalid {
                name: "ADSCOPE_CORS_ORIGINS",
                reason: format!("{origin:?}: {e}"),
            })
        })
        .collect()
}

/// The settings every service reads.
#[derive(Debug, Clone)]
pub struct CommonConfig {
    /// `ADSCOPE_LISTEN_ADDR`.
    pub listen_addr: SocketAddr,
    /// `DATABASE_URL`: the service's own login role.
    pub database_url: String,
    /// `ADSCOPE_DB_POOL_SIZE` (default 16).
    pub pool_size: u32,
    /// Built from the `ADSCOPE_JWT_*` settings.
    pub verifier: Arc<Verifier>,
    /// `ADSCOPE_CORS_ORIGINS`.
    pub cors_origins: Vec<HeaderValue>,
}

impl CommonConfig {
    /// Reads the common settings; `default_addr` is the service's port.
    pub fn from_env(default_addr: SocketAddr) -> Result<CommonConfig, ConfigError> {
        let pool_size = parsed("ADSCOPE_DB_POOL_SIZE", 16u32)?;
        if pool_size == 0 {
            return Err(ConfigError::Invalid {
                name: "ADSCOPE_DB_POOL_SIZE",
                reason: "must be at least 1".into(),
            });
        }
        Ok(CommonConfig {
            listen_addr: parsed("ADSCOPE_LISTEN_ADDR", default_addr)?,
            database_url: required(
                "DATABASE_URL",
                "a postgres:// URL logging in as this service's own role",
            )?,
            pool_size,
            verifier: Arc::new(verifier_from_env()?),
            cors_origins: cors_origins_from_env()?,
        })
    }
}

/// The `--help` text shared by the service binaries.
pub fn common_help(default_addr: &str) -> String {
    format!(
        "Configuration (environment):\n\
         \x20 ADSCOPE_LISTEN_ADDR         address to listen on (default {default_addr})\n\
         \x20 DATABASE_URL                postgres:// URL for this service's own role (required)\n\
         \x20 ADSCOPE_DB_POOL_SIZE        database connections (default 16)\n\
         \x20 ADSCOPE_JWT_HS256_SECRET    HS256 secret, at least 32 bytes (development)\n\
         \x20 ADSCOPE_JWT_PUBLIC_KEYS     PEM file of RS256/EdDSA public keys (production)\n\
         \x20 ADSCOPE_JWT_ISSUER          expected `iss` (default adscope)\n\
         \x20 ADSCOPE_JWT_AUDIENCE        expected `aud` (default adscope)\n\
         \x20 ADSCOPE_CORS_ORIGINS        comma-separated browser origins for gRPC-Web\n\
         \x20 OTEL_EXPORTER_OTLP_ENDPOINT OTLP/gRPC endpoint for traces (optional)\n\
         \x20 OTEL_SERVICE_NAME           service name in traces\n\
         \x20 RUST_LOG                    log filter (default info)\n"
    )
}

/// A path setting (`ADSCOPE_KMS_KEY_FILE` and the like).
pub fn path(name: &'static str) -> Option<PathBuf> {
    var(name).map(PathBuf::from)
}

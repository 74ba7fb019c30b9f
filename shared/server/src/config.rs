//! Configuration from the environment.
//!
//! Every binary reads its settings here at start; a missing or malformed one
//! stops it with a message naming the variable. Secret values are never
//! echoed in those messages.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
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
fn var(name: &str) -> Option<String> {
    std::env::var(name)
        .ok()
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
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

/// The token verifier: an HS256 secret (`ADSCOPE_JWT_HS256_SECRET`,
/// development) or a PEM file of RSA / Ed25519 public keys
/// (`ADSCOPE_JWT_PUBLIC_KEYS`, production); exactly one of them.
pub fn verifier(
    hs256_secret: Option<&str>,
    public_keys: Option<&Path>,
    issuer: String,
    audience: String,
) -> Result<Verifier, ConfigError> {
    let hs256_secret = hs256_secret.map(str::trim).filter(|s| !s.is_empty());
    match (hs256_secret, public_keys) {
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
            Verifier::hs256(secret.as_bytes(), issuer, audience).map_err(|e| ConfigError::Invalid {
                name: "ADSCOPE_JWT_HS256_SECRET",
                reason: e.to_string(),
            })
        }
        (None, Some(file)) => {
            let path = file.display();
            let pem = std::fs::read_to_string(file).map_err(|e| ConfigError::Invalid {
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
pub fn cors_origins(raw: Option<&str>) -> Result<Vec<HeaderValue>, ConfigError> {
    let Some(raw) = raw else {
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

/// The settings every service reads, as flags that mirror the environment.
#[derive(Debug, Clone, clap::Args)]
pub struct CommonArgs {
    /// Address to listen on.
    #[arg(long, env = "ADSCOPE_LISTEN_ADDR")]
    pub listen_addr: Option<SocketAddr>,
    /// postgres:// URL logging in as this service's own role.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: String,
    /// Database connections in the pool.
    #[arg(long, env = "ADSCOPE_DB_POOL_SIZE", default_value_t = 16,
          value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub db_pool_size: u32,
    /// HS256 secret for tokens, at least 32 bytes (development).
    #[arg(long, env = "ADSCOPE_JWT_HS256_SECRET", hide_env_values = true)]
    pub jwt_hs256_secret: Option<String>,
    /// PEM file of RS256 / EdDSA public keys for tokens (production).
    #[arg(long, env = "ADSCOPE_JWT_PUBLIC_KEYS")]
    pub jwt_public_keys: Option<PathBuf>,
    /// Expected token issuer (`iss`).
    #[arg(long, env = "ADSCOPE_JWT_ISSUER", default_value = "adscope")]
    pub jwt_issuer: String,
    /// Expected token audience (`aud`).
    #[arg(long, env = "ADSCOPE_JWT_AUDIENCE", default_value = "adscope")]
    pub jwt_audience: String,
    /// Comma-separated browser origins allowed to call over gRPC-Web.
    #[arg(long, env = "ADSCOPE_CORS_ORIGINS")]
    pub cors_origins: Option<String>,
    /// OTLP/gRPC endpoint for traces (read by the telemetry set-up).
    #[arg(long, env = "OTEL_EXPORTER_OTLP_ENDPOINT")]
    pub otel_exporter_otlp_endpoint: Option<String>,
    /// Service name in traces (read by the telemetry set-up).
    #[arg(long, env = "OTEL_SERVICE_NAME")]
    pub otel_service_name: Option<String>,
    /// Log filter, e.g. `info,adscope=debug`.
    #[arg(long, env = "RUST_LOG")]
    pub rust_log: Option<String>,
}

/// The validated common settings.
#[derive(Debug, Clone)]
pub struct CommonConfig {
    pub listen_addr: SocketAddr,
    pub database_url: String,
    pub pool_size: u32,
    pub verifier: Arc<Verifier>,
    pub cors_origins: Vec<HeaderValue>,
}

impl CommonConfig {
    /// The pool settings for this service's own role.
    pub fn db_config(&self, role: adscope_db::ServiceRole) -> adscope_db::DbConfig {
        let mut config = adscope_db::DbConfig::new(self.database_url.clone(), role);
        config.max_connections = self.pool_size;
        config
    }
}

impl CommonArgs {
    /// Validates the settings; `default_addr` is the service's own port.
    pub fn into_config(self, default_addr: SocketAddr) -> Result<CommonConfig, ConfigError> {
        if self.database_url.trim().is_empty() {
            return Err(ConfigError::Missing {
                name: "DATABASE_URL",
                hint: "a postgres:// URL logging in as this service's own role".into(),
            });
        }
        let verifier = verifier(
            self.jwt_hs256_secret.as_deref(),
            self.jwt_public_keys.as_deref(),
            self.jwt_issuer,
            self.jwt_audience,
        )?;
        Ok(CommonConfig {
            listen_addr: self.listen_addr.unwrap_or(default_addr),
            database_url: self.database_url,
            pool_size: self.db_pool_size,
            verifier: Arc::new(verifier),
            cors_origins: cors_origins(self.cors_origins.as_deref())?,
        })
    }
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, Parser};

    use super::*;

    #[derive(Debug, Parser)]
    struct Probe {
        #[command(flatten)]
        common: CommonArgs,
    }

    #[test]
    fn help_lists_every_setting_by_its_environment_name() {
        let help = Probe::command().render_long_help().to_string();
        for name in [
            "ADSCOPE_LISTEN_ADDR",
            "DATABASE_URL",
            "ADSCOPE_DB_POOL_SIZE",
            "ADSCOPE_JWT_HS256_SECRET",
            "ADSCOPE_JWT_PUBLIC_KEYS",
            "ADSCOPE_JWT_ISSUER",
            "ADSCOPE_JWT_AUDIENCE",
            "ADSCOPE_CORS_ORIGINS",
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            "OTEL_SERVICE_NAME",
            "RUST_LOG",
        ] {
            assert!(
                help.contains(name),
                "--help does not mention {name}:\n{help}"
            );
        }
    }

    #[test]
    fn a_missing_or_malformed_setting_names_its_variable() {
        let missing = verifier(None, None, "adscope".into(), "adscope".into()).unwrap_err();
        assert!(missing.to_string().contains("ADSCOPE_JWT_HS256_SECRET"));

        let short = verifier(Some("short"), None, "adscope".into(), "adscope".into()).unwrap_err();
        assert!(short.to_string().contains("ADSCOPE_JWT_HS256_SECRET"));
        assert!(
            !short.to_string().contains("short\""),
            "the secret is not echoed"
        );

        let unreadable = verifier(
            None,
            Some(Path::new("/nonexistent/keys.pem")),
            "adscope".into(),
            "adscope".into(),
        )
        .unwrap_err();
        assert!(unreadable.to_string().contains("ADSCOPE_JWT_PUBLIC_KEYS"));

        let origins = cors_origins(Some("https://app.example, ftp://nope")).unwrap_err();
        assert!(origins.to_string().contains("ADSCOPE_CORS_ORIGINS"));
        assert_eq!(cors_origins(Some("https://app.example")).unwrap().len(), 1);
    }

    #[test]
    fn a_good_configuration_builds() {
        let probe = Probe::try_parse_from([
            "probe",
            "--database-url",
            "postgres://adscope_analytics@127.0.0.1/adscope",
            "--jwt-hs256-secret",
            "0123456789abcdef0123456789abcdef",
        ])
        .unwrap();
        let default: SocketAddr = "127.0.0.1:50051".parse().unwrap();
        let config = probe.common.into_config(default).unwrap();
        assert_eq!(config.listen_addr, default);
        assert_eq!(config.pool_size, 16);
    }
}

//! Settings of the integrations service beyond the common ones.

use std::path::PathBuf;
use std::time::Duration;

use adscope_server::{CommonArgs, CommonConfig, ConfigError};

/// Command line and environment of `adscope-integrations`.
#[derive(Debug, clap::Parser)]
#[command(
    name = "adscope-integrations",
    version,
    about = "adscope integrations gRPC service"
)]
pub struct Args {
    #[command(flatten)]
    pub common: CommonArgs,
    /// The analytics service, called when a sync finishes.
    #[arg(long, env = "ADSCOPE_ANALYTICS_URL")]
    pub analytics_url: Option<String>,
    /// Base URL of the Airbyte API (e.g. http://airbyte:8000).
    #[arg(long, env = "ADSCOPE_AIRBYTE_URL")]
    pub airbyte_url: Option<String>,
    /// Bearer token for the Airbyte API.
    #[arg(long, env = "ADSCOPE_AIRBYTE_TOKEN", hide_env_values = true)]
    pub airbyte_token: Option<String>,
    /// Basic-auth user for the Airbyte API (instead of a token).
    #[arg(long, env = "ADSCOPE_AIRBYTE_USER")]
    pub airbyte_user: Option<String>,
    /// Basic-auth password for the Airbyte API.
    #[arg(long, env = "ADSCOPE_AIRBYTE_PASSWORD", hide_env_values = true)]
    pub airbyte_password: Option<String>,
    /// Seconds an Airbyte API call may take.
    #[arg(long, env = "ADSCOPE_AIRBYTE_TIMEOUT_SECS", default_value_t = 30)]
    pub airbyte_timeout_secs: u64,
    /// Shared secret of the Airbyte webhook (header or HMAC-SHA256 key).
    #[arg(long, env = "ADSCOPE_WEBHOOK_SECRET", hide_env_values = true)]
    pub webhook_secret: Option<String>,
    /// The local key-encryption key file (32 random bytes, hex or raw).
    #[arg(long, env = "ADSCOPE_KMS_KEY_FILE")]
    pub kms_key_file: Option<PathBuf>,
    /// Run the background scheduler in this replica.
    #[arg(long, env = "ADSCOPE_SCHEDULER", default_value_t = true, action = clap::ArgAction::Set)]
    pub scheduler: bool,
    /// Seconds between scheduler passes.
    #[arg(long, env = "ADSCOPE_SCHEDULER_INTERVAL_SECS", default_value_t = DEFAULT_SCHEDULER_INTERVAL_SECS)]
    pub scheduler_interval_secs: u64,
    /// First retry delay of a failed job, in milliseconds.
    #[arg(long, env = "ADSCOPE_RETRY_BASE_MS", default_value_t = DEFAULT_RETRY_BASE_MS)]
    pub retry_base_ms: u64,
    /// Longest retry delay, in milliseconds.
    #[arg(long, env = "ADSCOPE_RETRY_CAP_MS", default_value_t = DEFAULT_RETRY_CAP_MS)]
    pub retry_cap_ms: u64,
    /// PEM private key (Ed25519 or RSA) that signs the one-tenant tokens
    /// integrations presents to analytics; analytics' public key file must
    /// hold its public half. Without it, the HS256 secret signs them.
    #[arg(long, env = "ADSCOPE_SERVICE_SIGNING_KEY")]
    pub service_signing_key: Option<PathBuf>,
}

const SIGNING_KEY: &str = "ADSCOPE_SERVICE_SIGNING_KEY";

// Defaults shared by the flags and `Config::new`.
const DEFAULT_SCHEDULER_INTERVAL_SECS: u64 = 60;
const DEFAULT_RETRY_BASE_MS: u64 = 500;
const DEFAULT_RETRY_CAP_MS: u64 = 60_000;

impl Args {
    /// What signs the tokens integrations presents to analytics: the
    /// signing key when set, else the HS256 secret, else nothing.
    fn service_minter(&self) -> Result<Option<adscope_tenancy::Minter>, ConfigError> {
        let (issuer, audience) = (&self.common.jwt_issuer, &self.common.jwt_audience);
        if let Some(path) = &self.service_signing_key {
            let pem = std::fs::read(path).map_err(|e| ConfigError::Invalid {
                name: SIGNING_KEY,
                reason: format!("cannot read {}: {e}", path.display()),
            })?;
            let minter = adscope_tenancy::Minter::from_private_key_pem(
                &pem,
                issuer.clone(),
                audience.clone(),
            )
            .map_err(|e| ConfigError::Invalid {
                name: SIGNING_KEY,
                reason: format!("{}: {e}", path.display()),
            })?;
            return Ok(Some(minter));
        }
        let secret = self
            .common
            .jwt_hs256_secret
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty());
        let Some(secret) = secret else {
            // Calls to analytics on a tenant's behalf would all be refused:
            // say so at start rather than at the first finished sync.
            if self.analytics_url.is_some() {
                return Err(ConfigError::Missing {
                    name: SIGNING_KEY,
                    hint: "with ADSCOPE_JWT_PUBLIC_KEYS and ADSCOPE_ANALYTICS_URL, integrations \
                           needs a private key to sign its calls to analytics"
                        .into(),
                });
            }
            return Ok(None);
        };
        // An invalid secret is reported by the common settings below.
        Ok(
            adscope_tenancy::Minter::hs256(secret.as_bytes(), issuer.clone(), audience.clone())
                .ok(),
        )
    }
}

/// How to reach Airbyte.
#[derive(Debug, Clone)]
pub struct AirbyteConfig {
    pub base_url: String,
    pub auth: AirbyteAuth,
    pub timeout: Duration,
}

/// Airbyte API credentials; never logged.
#[derive(Clone)]
pub enum AirbyteAuth {
    None,
    Bearer(String),
    Basic { user: String, password: String },
}

impl std::fmt::Debug for AirbyteAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            AirbyteAuth::None => "None",
            AirbyteAuth::Bearer(_) => "Bearer(<redacted>)",
            AirbyteAuth::Basic { .. } => "Basic(<redacted>)",
        })
    }
}

/// The background scheduler's settings.
#[derive(Debug, Clone)]
pub struct SchedulerConfig {
    pub enabled: bool,
    pub interval: Duration,
    pub retry_base: Duration,
    pub retry_cap: Duration,
}

/// Everything integrations runs with.
#[derive(Clone)]
pub struct Config {
    pub common: CommonConfig,
    pub analytics_url: Option<String>,
    pub airbyte: Option<AirbyteConfig>,
    pub webhook_secret: Option<String>,
    pub kms_key_file: Option<PathBuf>,
    pub scheduler: SchedulerConfig,
    /// Signs the short-lived, one-tenant tokens integrations presents to
    /// analytics when it calls on a tenant's behalf without a caller (the
    /// webhook, the scheduler): the service signing key, or the HS256
    /// secret the services verify.
    pub service_minter: Option<std::sync::Arc<adscope_tenancy::Minter>>,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("common", &self.common)
            .field("analytics_url", &self.analytics_url)
            .field("airbyte", &self.airbyte)
            .field(
                "webhook_secret",
                &self.webhook_secret.as_ref().map(|_| "<redacted>"),
            )
            .field("kms_key_file", &self.kms_key_file)
            .field("scheduler", &self.scheduler)
            .field("service_minter", &self.service_minter)
            .finish()
    }
}

impl Config {
    /// Defaults around the common settings: no Airbyte, no webhook secret,
    /// no key file, scheduler off (tests and `adscope dev` turn on what they use).
    pub fn new(common: CommonConfig) -> Config {
        Config {
            common,
            analytics_url: None,
            airbyte: None,
            webhook_secret: None,
            kms_key_file: None,
            scheduler: SchedulerConfig {
                enabled: false,
                interval: Duration::from_secs(DEFAULT_SCHEDULER_INTERVAL_SECS),
                retry_base: Duration::from_millis(DEFAULT_RETRY_BASE_MS),
                retry_cap: Duration::from_millis(DEFAULT_RETRY_CAP_MS),
            },
            service_minter: None,
        }
    }
}

impl Args {
    /// Validates the settings.
    pub fn into_config(self) -> Result<Config, ConfigError> {
        // The common settings' errors come first: without a verifier the
        // signing key is beside the point.
        let service_minter = self.service_minter();
        let common = self.common.into_config(crate::DEFAULT_ADDR)?;
        let service_minter = service_minter?.map(std::sync::Arc::new);
        if let Some(url) = &self.analytics_url {
            tonic::transport::Endpoint::from_shared(url.clone()).map_err(|e| {
                ConfigError::Invalid {
                    name: "ADSCOPE_ANALYTICS_URL",
                    reason: format!("{url:?} is not a URL: {e}"),
                }
            })?;
        }
        let auth = match (self.airbyte_token, self.airbyte_user, self.airbyte_password) {
            (Some(_), Some(_), _) => {
                return Err(ConfigError::Invalid {
                    name: "ADSCOPE_AIRBYTE_TOKEN",
                    reason: "set either it or ADSCOPE_AIRBYTE_USER/PASSWORD, not both".into(),
                });
            }
            (Some(token), None, _) => AirbyteAuth::Bearer(token),
            (None, Some(user), Some(password)) => AirbyteAuth::Basic { user, password },
            (None, Some(_), None) => {
                return Err(ConfigError::Missing {
                    name: "ADSCOPE_AIRBYTE_PASSWORD",
                    hint: "Basic auth needs a password with ADSCOPE_AIRBYTE_USER".into(),
                });
            }
            (None, None, _) => AirbyteAuth::None,
        };
        let airbyte = match self.airbyte_url {
            None => None,
            Some(url) => {
                if !(url.starts_with("http://") || url.starts_with("https://")) {
                    return Err(ConfigError::Invalid {
                        name: "ADSCOPE_AIRBYTE_URL",
                        reason: format!("{url:?} is not an http(s) URL"),
                    });
                }
                Some(AirbyteConfig {
                    base_url: url.trim_end_matches('/').to_owned(),
                    auth,
                    timeout: Duration::from_secs(self.airbyte_timeout_secs.max(1)),
                })
            }
        };
        if self.retry_base_ms == 0 || self.retry_cap_ms < self.retry_base_ms {
            return Err(ConfigError::Invalid {
                name: "ADSCOPE_RETRY_CAP_MS",
                reason: "the base must be positive and the cap at least the base".into(),
            });
        }
        Ok(Config {
            common,
            analytics_url: self.analytics_url,
            airbyte,
            webhook_secret: self.webhook_secret,
            kms_key_file: self.kms_key_file,
            scheduler: SchedulerConfig {
                enabled: self.scheduler,
                interval: Duration::from_secs(self.scheduler_interval_secs.max(1)),
                retry_base: Duration::from_millis(self.retry_base_ms),
                retry_cap: Duration::from_millis(self.retry_cap_ms),
            },
            service_minter,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // tests: failing loudly is the point

    use clap::Parser;

    use super::*;

    fn fixture(name: &str) -> String {
        format!(
            "{}/../../shared/tenancy/tests/fixtures/{name}",
            env!("CARGO_MANIFEST_DIR")
        )
    }

    /// Settings from flags only, as a deployment with public keys gives them.
    fn parse(extra: &[&str]) -> Result<Config, ConfigError> {
        let public_keys = fixture("ed25519_public.pem");
        let mut args = vec![
            "adscope-integrations",
            "--database-url",
            "postgres://adscope_integrations@db/adscope",
            "--analytics-url",
            "http://analytics:50051",
        ];
        if !extra.contains(&"--jwt-hs256-secret") {
            args.extend(["--jwt-public-keys", &public_keys]);
        }
        args.extend(extra);
        Args::try_parse_from(args).unwrap().into_config()
    }

    #[test]
    fn public_keys_and_analytics_without_a_signing_key_is_refused_at_start() {
        let error = parse(&[]).unwrap_err();
        assert!(
            matches!(
                error,
                ConfigError::Missing {
                    name: SIGNING_KEY,
                    ..
                }
            ),
            "{error}"
        );
    }

    #[test]
    fn the_signing_key_signs_tokens_the_configured_public_keys_accept() {
        let key = fixture("ed25519_private.pem");
        let config = parse(&["--service-signing-key", &key]).unwrap();
        let minter = config.service_minter.unwrap();
        assert_eq!(minter.algorithm(), "EdDSA");
        let tenant = adscope_tenancy::TenantId::new(uuid::Uuid::new_v4());
        let token = minter
            .mint(&adscope_tenancy::TokenSpec {
                subject: "adscope-integrations".into(),
                tenants: vec![tenant],
                roles: vec![adscope_tenancy::Role::Analyst],
                scopes: Vec::new(),
                ttl: Duration::from_secs(60),
                not_before: None,
            })
            .unwrap();
        let principal = config.common.verifier.verify(&token).unwrap();
        assert_eq!(principal.tenants, [tenant]);
    }

    #[test]
    fn a_public_key_or_missing_file_as_signing_key_names_the_setting() {
        for key in [fixture("ed25519_public.pem"), fixture("no-such-key.pem")] {
            let error = parse(&["--service-signing-key", &key]).unwrap_err();
            assert!(
                matches!(
                    error,
                    ConfigError::Invalid {
                        name: SIGNING_KEY,
                        ..
                    }
                ),
                "{key}: {error}"
            );
        }
    }

    #[test]
    fn an_analytics_url_that_is_no_url_is_refused_at_start() {
        let args = Args::try_parse_from([
            "adscope-integrations",
            "--database-url",
            "postgres://adscope_integrations@db/adscope",
            "--jwt-hs256-secret",
            "a-development-secret-of-at-least-32-bytes",
            "--analytics-url",
            "not a url",
        ])
        .unwrap();
        let error = args.into_config().unwrap_err();
        assert!(
            matches!(
                error,
                ConfigError::Invalid {
                    name: "ADSCOPE_ANALYTICS_URL",
                    ..
                }
            ),
            "{error}"
        );
    }

    #[test]
    fn without_a_signing_key_the_hs256_secret_signs() {
        let secret = "a-development-secret-of-at-least-32-bytes";
        let config = parse(&["--jwt-hs256-secret", secret]).unwrap();
        let minter = config.service_minter.unwrap();
        assert_eq!(minter.algorithm(), "HS256");
    }
}

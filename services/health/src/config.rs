//! Settings of the health service beyond the common ones.

use std::time::Duration;

use adscope_server::{CommonArgs, CommonConfig, ConfigError};

/// Command line and environment of `adscope-health`.
#[derive(Debug, clap::Parser)]
#[command(
    name = "adscope-health",
    version,
    about = "adscope health and fleet gRPC service"
)]
pub struct Args {
    #[command(flatten)]
    pub common: CommonArgs,
    /// The analytics service, whose health the fleet view reports.
    #[arg(long, env = "ADSCOPE_ANALYTICS_URL")]
    pub analytics_url: Option<String>,
    /// The integrations service, whose health the fleet view reports.
    #[arg(long, env = "ADSCOPE_INTEGRATIONS_URL")]
    pub integrations_url: Option<String>,
    /// Seconds between runs of this service's own health checks.
    #[arg(long, env = "ADSCOPE_HEALTH_INTERVAL_SECS", default_value_t = adscope_server::health::DEFAULT_INTERVAL.as_secs(),
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub health_interval_secs: u64,
    /// Minutes after which a connection's last successful sync is stale.
    #[arg(long, env = "ADSCOPE_FLEET_STALE_AFTER_MINS", default_value_t = DEFAULT_STALE_AFTER_MINS,
          value_parser = clap::value_parser!(u64).range(1..=525_600))]
    pub fleet_stale_after_mins: u64,
    /// Minutes after which a running sync counts as running too long.
    #[arg(long, env = "ADSCOPE_FLEET_RUNNING_TOO_LONG_MINS",
          default_value_t = DEFAULT_RUNNING_TOO_LONG_MINS,
          value_parser = clap::value_parser!(u64).range(1..=525_600))]
    pub fleet_running_too_long_mins: u64,
    /// Seconds after which a tenant's metrics snapshot is stale.
    #[arg(long, env = "ADSCOPE_FLEET_SNAPSHOT_TTL_SECS", default_value_t = DEFAULT_SNAPSHOT_TTL_SECS,
          value_parser = clap::value_parser!(u64).range(1..=31_536_000))]
    pub fleet_snapshot_ttl_secs: u64,
}

/// The validated settings of the health service.
#[derive(Debug, Clone)]
pub struct Config {
    pub common: CommonConfig,
    /// `grpc.health.v1` of analytics, when configured.
    pub analytics_url: Option<String>,
    /// `grpc.health.v1` of integrations, when configured.
    pub integrations_url: Option<String>,
    /// How often this service runs its own checks.
    pub health_interval: Duration,
    /// How long a call to another service's health check may take.
    pub peer_timeout: Duration,
    /// The thresholds of the fleet view.
    pub thresholds: Thresholds,
}

/// The thresholds' defaults, shared by the flags and [`Thresholds::default`].
const DEFAULT_STALE_AFTER_MINS: u64 = 60;
const DEFAULT_RUNNING_TOO_LONG_MINS: u64 = 120;
const DEFAULT_SNAPSHOT_TTL_SECS: u64 = 300;

/// When a sync or a snapshot stops counting as healthy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Thresholds {
    /// A last successful sync older than this is stale.
    pub stale_after: Duration,
    /// A sync running longer than this is running too long.
    pub running_too_long: Duration,
    /// A metrics snapshot older than this is stale.
    pub snapshot_ttl: Duration,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            stale_after: Duration::from_secs(DEFAULT_STALE_AFTER_MINS * 60),
            running_too_long: Duration::from_secs(DEFAULT_RUNNING_TOO_LONG_MINS * 60),
            snapshot_ttl: Duration::from_secs(DEFAULT_SNAPSHOT_TTL_SECS),
        }
    }
}

impl Config {
    /// The defaults around `common`: no peers, 5 s checks, default thresholds.
    pub fn new(common: CommonConfig) -> Self {
        Config {
            common,
            analytics_url: None,
            integrations_url: None,
            health_interval: adscope_server::health::DEFAULT_INTERVAL,
            peer_timeout: Duration::from_secs(2),
            thresholds: Thresholds::default(),
        }
    }
}

fn peer_url(name: &'static str, raw: Option<String>) -> Result<Option<String>, ConfigError> {
    let Some(url) = raw.map(|u| u.trim().to_owned()).filter(|u| !u.is_empty()) else {
        return Ok(None);
    };
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return Err(ConfigError::Invalid {
            name,
            reason: format!("{url:?} is not an http(s) URL"),
        });
    }
    tonic::transport::Endpoint::from_shared(url.clone()).map_err(|e| ConfigError::Invalid {
        name,
        reason: format!("{url:?}: {e}"),
    })?;
    Ok(Some(url))
}

impl Args {
    /// Validates the settings; `default_addr` is the service's own port.
    pub fn into_config(self, default_addr: std::net::SocketAddr) -> Result<Config, ConfigError> {
        let common = self.common.into_config(default_addr)?;
        Ok(Config {
            analytics_url: peer_url("ADSCOPE_ANALYTICS_URL", self.analytics_url)?,
            integrations_url: peer_url("ADSCOPE_INTEGRATIONS_URL", self.integrations_url)?,
            health_interval: Duration::from_secs(self.health_interval_secs),
            thresholds: Thresholds {
                stale_after: Duration::from_secs(self.fleet_stale_after_mins * 60),
                running_too_long: Duration::from_secs(self.fleet_running_too_long_mins * 60),
                snapshot_ttl: Duration::from_secs(self.fleet_snapshot_ttl_secs),
            },
            ..Config::new(common)
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // tests fail loudly

    use clap::{CommandFactory, Parser};

    use super::*;

    const BASE: [&str; 5] = [
        "adscope-health",
        "--database-url",
        "postgres://adscope_health@127.0.0.1/adscope",
        "--jwt-hs256-secret",
        "0123456789abcdef0123456789abcdef",
    ];

    fn addr() -> std::net::SocketAddr {
        "127.0.0.1:50053".parse().unwrap()
    }

    #[test]
    fn help_lists_the_health_settings() {
        let help = Args::command().render_long_help().to_string();
        for name in [
            "ADSCOPE_ANALYTICS_URL",
            "ADSCOPE_INTEGRATIONS_URL",
            "ADSCOPE_HEALTH_INTERVAL_SECS",
            "ADSCOPE_FLEET_STALE_AFTER_MINS",
            "ADSCOPE_FLEET_RUNNING_TOO_LONG_MINS",
            "ADSCOPE_FLEET_SNAPSHOT_TTL_SECS",
        ] {
            assert!(help.contains(name), "--help does not mention {name}");
        }
    }

    #[test]
    fn defaults_and_overrides() {
        let config = Args::try_parse_from(BASE)
            .unwrap()
            .into_config(addr())
            .unwrap();
        assert_eq!(config.health_interval, Duration::from_secs(5));
        assert_eq!(config.thresholds, Thresholds::default());
        assert_eq!(config.analytics_url, None);

        let mut argv = BASE.to_vec();
        argv.extend([
            "--analytics-url",
            "http://analytics:50051",
            "--fleet-stale-after-mins",
            "30",
            "--health-interval-secs",
            "2",
        ]);
        let config = Args::try_parse_from(argv)
            .unwrap()
            .into_config(addr())
            .unwrap();
        assert_eq!(
            config.analytics_url.as_deref(),
            Some("http://analytics:50051")
        );
        assert_eq!(config.thresholds.stale_after, Duration::from_secs(1800));
        assert_eq!(config.health_interval, Duration::from_secs(2));
    }

    #[test]
    fn a_bad_setting_names_its_variable() {
        let mut argv = BASE.to_vec();
        argv.extend(["--integrations-url", "integrations:50052"]);
        let error = Args::try_parse_from(argv)
            .unwrap()
            .into_config(addr())
            .unwrap_err();
        assert!(
            error.to_string().contains("ADSCOPE_INTEGRATIONS_URL"),
            "{error}"
        );

        let mut argv = BASE.to_vec();
        argv.extend(["--health-interval-secs", "0"]);
        assert!(Args::try_parse_from(argv).is_err());
    }
}

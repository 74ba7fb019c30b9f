//! `grpc.health.v1` driven by real checks.
//!
//! A monitor task runs the service's checks on an interval and sets every
//! served name (and the empty name, meaning the whole server) to `SERVING`
//! when all pass and `NOT_SERVING` when any fails, so `Watch` streams see
//! each change and Kubernetes probes follow the database.

use std::time::Duration;

use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

/// One named check: `Ok` when healthy, else why not (logged, never returned
/// to callers of the health service).
pub type Check = Box<dyn Fn() -> BoxFuture<'static, Result<(), String>> + Send + Sync>;

/// Runs checks and reports the outcome.
pub struct HealthMonitor {
    reporter: HealthReporter,
    services: Vec<&'static str>,
    checks: Vec<(&'static str, Check)>,
    interval: Duration,
}

impl std::fmt::Debug for HealthMonitor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HealthMonitor")
            .field("services", &self.services)
            .field(
                "checks",
                &self.checks.iter().map(|(n, _)| n).collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl HealthMonitor {
    /// A monitor for the given service names; the empty name is added.
    pub fn new(reporter: HealthReporter, services: &[&'static str]) -> Self {
        let mut names = vec![""];
        names.extend_from_slice(services);
        HealthMonitor {
            reporter,
            services: names,
            checks: Vec::new(),
            interval: Duration::from_secs(5),
        }
    }

    /// Adds a check.
    pub fn check(mut self, name: &'static str, check: Check) -> Self {
        self.checks.push((name, check));
        self
    }

    /// How often checks run.
    pub fn interval(mut self, interval: Duration) -> Self {
        self.interval = interval;
        self
    }

    /// Runs every check once and reports; returns whether all passed.
    pub async fn run_once(&self) -> bool {
        let mut healthy = true;
        for (name, check) in &self.checks {
            if let Err(reason) = check().await {
                tracing::warn!(check = name, %reason, "health check failed");
                healthy = false;
            }
        }
        let status = if healthy {
            ServingStatus::Serving
        } else {
            ServingStatus::NotServing
        };
        for service in &self.services {
            self.reporter.set_service_status(*service, status).await;
        }
        healthy
    }

    /// Runs the checks forever on the interval.
    pub fn spawn(self) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(self.interval);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticker.tick().await;
                self.run_once().await;
            }
        })
    }
}

/// The checks every service runs on its own pool: the database answers
/// through the service's role, and its migrations are the ones this build
/// expects.
pub fn database_checks(db: &adscope_db::Database) -> Vec<(&'static str, Check)> {
    let reachable = db.clone();
    let migrated = db.clone();
    vec![
        (
            "database",
            Box::new(move || {
                let db = reachable.clone();
                async move { db.ping().await.map_err(|e| e.to_string()) }.boxed()
            }) as Check,
        ),
        (
            "migrations",
            Box::new(move || {
                let db = migrated.clone();
                async move {
                    let expected = adscope_db::migrate::latest_version();
                    match db.applied_migration().await.map_err(|e| e.to_string())? {
                        Some(version) if version == expected => Ok(()),
                        other => Err(format!(
                            "database is at migration {other:?}, this build expects {expected}; \
                             run `adscope migrate`"
                        )),
                    }
                }
                .boxed()
            }) as Check,
        ),
    ]
}

impl HealthMonitor {
    /// Adds several checks.
    pub fn checks(mut self, checks: Vec<(&'static str, Check)>) -> Self {
        self.checks.extend(checks);
        self
    }
}

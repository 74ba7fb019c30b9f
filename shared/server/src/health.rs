//! `grpc.health.v1` driven by real checks.
//!
//! A monitor task runs the service's checks on an interval and sets every
//! served name (and the empty name, meaning the whole server) to `SERVING`
//! when all pass and `NOT_SERVING` when any fails, so `Watch` streams see
//! each change and Kubernetes probes follow the database. Each check has a
//! time limit: a hung dependency reports `NOT_SERVING` instead of stalling
//! the monitor, and probes never wait on a check (they read the last result).
//!
//! A check may also be scoped to one served name: it then decides only that
//! name's status, so an optional dependency (one RPC family needs it, the
//! rest of the server does not) never takes the whole server out of rotation.
//!
//! One more name, [`LIVENESS`], says whether the process itself works: it
//! follows only the checks marked as in-process (a background loop's
//! heartbeat), never a dependency such as the database, so a liveness probe
//! on it restarts a stuck replica but not every replica during an outage.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use tokio::sync::watch;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

use crate::config::{ConfigError, parsed};

/// One named check: `Ok` when healthy, else why not (logged, never returned
/// to callers of the health service).
pub type Check = Box<dyn Fn() -> BoxFuture<'static, Result<(), String>> + Send + Sync>;

/// How often checks run unless configured.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(5);

/// How long one check may take before it counts as failed.
pub const DEFAULT_CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// The health name that follows only in-process checks, for liveness probes.
pub const LIVENESS: &str = "adscope.liveness";

/// The environment variable holding the interval, in whole seconds.
pub const INTERVAL_VAR: &str = "ADSCOPE_HEALTH_INTERVAL_SECS";

/// The monitor interval from `ADSCOPE_HEALTH_INTERVAL_SECS` (default 5 s);
/// zero or a non-number is an error naming the variable.
pub fn interval_from_env() -> Result<Duration, ConfigError> {
    let secs: u64 = parsed(INTERVAL_VAR, DEFAULT_INTERVAL.as_secs())?;
    if secs == 0 {
        return Err(ConfigError::Invalid {
            name: INTERVAL_VAR,
            reason: "must be at least 1 second".into(),
        });
    }
    Ok(Duration::from_secs(secs))
}

/// Runs checks and reports the outcome.
pub struct HealthMonitor {
    reporter: HealthReporter,
    services: Vec<&'static str>,
    // (check name, whether it is in-process, check): decides every name;
    // only the in-process ones also decide `LIVENESS`. The kind travels with
    // the check, not its name, so a dependency check that happens to share a
    // liveness check's name cannot decide liveness.
    checks: Vec<(&'static str, bool, Check)>,
    // (service, check name, check): decides only that service's status.
    scoped: Vec<(&'static str, &'static str, Check)>,
    interval: Duration,
    timeout: Duration,
    // The whole server's status, and the last status reported per name, so
    // that names are only set (and `Watch` streams only notified) on a change.
    status: watch::Sender<ServingStatus>,
    reported: Mutex<HashMap<&'static str, ServingStatus>>,
    // Whether a run has logged its outcome yet: the first run always does.
    logged: AtomicBool,
}

impl std::fmt::Debug for HealthMonitor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HealthMonitor")
            .field("services", &self.services)
            .field(
                "checks",
                &self.checks.iter().map(|(n, _, _)| n).collect::<Vec<_>>(),
            )
            .field(
                "service_checks",
                &self
                    .scoped
                    .iter()
                    .map(|(s, n, _)| (s, n))
                    .collect::<Vec<_>>(),
            )
            .field("interval", &self.interval)
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl HealthMonitor {
    /// A monitor for the given service names; the empty name is added.
    pub fn new(reporter: HealthReporter, services: &[&'static str]) -> Self {
        let mut names = vec!["", LIVENESS];
        names.extend(
            services
                .iter()
                .copied()
                .filter(|s| !s.is_empty() && *s != LIVENESS),
        );
        HealthMonitor {
            reporter,
            services: names,
            checks: Vec::new(),
            scoped: Vec::new(),
            interval: DEFAULT_INTERVAL,
            timeout: DEFAULT_CHECK_TIMEOUT,
            status: watch::channel(ServingStatus::Unknown).0,
            reported: Mutex::new(HashMap::new()),
            logged: AtomicBool::new(false),
        }
    }

    /// Adds a check every name depends on (the whole server and each
    /// service).
    pub fn check(mut self, name: &'static str, check: Check) -> Self {
        self.checks.push((name, false, check));
        self
    }

    /// Adds several checks.
    pub fn checks(mut self, checks: Vec<(&'static str, Check)>) -> Self {
        self.checks
            .extend(checks.into_iter().map(|(name, check)| (name, false, check)));
        self
    }

    /// Adds a check of the process itself (not of a dependency): like
    /// [`HealthMonitor::check`] it decides every name, and it alone (with
    /// the other in-process checks) decides [`LIVENESS`].
    pub fn liveness_check(mut self, name: &'static str, check: Check) -> Self {
        self.checks.push((name, true, check));
        self
    }

    /// Adds a check that only `service` depends on: that name reads
    /// `SERVING` when every global check and every check scoped to it pass,
    /// while the whole server (the empty name) and other services ignore it.
    /// A service not yet among the served names is added; the empty name
    /// (the whole server) makes it a global check.
    pub fn service_check(
        mut self,
        service: &'static str,
        name: &'static str,
        check: Check,
    ) -> Self {
        if service.is_empty() {
            return self.check(name, check);
        }
        if !self.services.contains(&service) {
            self.services.push(service);
        }
        self.scoped.push((service, name, check));
        self
    }

    /// Adds several scoped checks, each `(service, check name, check)`; see
    /// [`HealthMonitor::service_check`].
    pub fn service_checks(mut self, checks: Vec<(&'static str, &'static str, Check)>) -> Self {
        for (service, name, check) in checks {
            self = self.service_check(service, name, check);
        }
        self
    }

    /// How often checks run.
    pub fn interval(mut self, interval: Duration) -> Self {
        self.interval = interval;
        self
    }

    /// How long one check may take before it counts as failed.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The whole server's status (global checks only) as last reported
    /// (`Unknown` before the first run), for code in the same process that
    /// reports on this server.
    pub fn subscribe(&self) -> watch::Receiver<ServingStatus> {
        self.status.subscribe()
    }

    /// Runs every check once (global and scoped), concurrently and each
    /// within the time limit, and reports each name's status; returns
    /// whether every check passed.
    pub async fn run_once(&self) -> bool {
        let timeout = self.timeout;
        let run =
            |scope: Option<&'static str>, name: &'static str, liveness: bool, check: &Check| {
                let pending = check();
                async move {
                    let outcome = match tokio::time::timeout(timeout, pending).await {
                        Ok(outcome) => outcome,
                        Err(_) => Err(format!("no answer within {timeout:?}")),
                    };
                    outcome.err().map(|reason| Failure {
                        service: scope,
                        check: name,
                        liveness,
                        reason,
                    })
                }
            };
        let global = self
            .checks
            .iter()
            .map(|(name, liveness, check)| run(None, name, *liveness, check));
        let scoped = self
            .scoped
            .iter()
            .map(|(service, name, check)| run(Some(service), name, false, check));
        let failures: Vec<Failure> = futures_util::future::join_all(global.chain(scoped))
            .await
            .into_iter()
            .flatten()
            .collect();
        let statuses = self.statuses(&failures);
        self.report(statuses, &failures).await;
        failures.is_empty()
    }

    // Each name's status: global failures fail every name, a scoped failure
    // only its own service.
    fn statuses(&self, failures: &[Failure]) -> Vec<(&'static str, ServingStatus)> {
        let global_ok = failures.iter().all(|f| f.service.is_some());
        let alive = failures.iter().all(|f| !f.liveness);
        self.services
            .iter()
            .map(|&name| {
                let ok = if name == LIVENESS {
                    alive
                } else {
                    global_ok
                        && (name.is_empty() || failures.iter().all(|f| f.service != Some(name)))
                };
                let status = if ok {
                    ServingStatus::Serving
                } else {
                    ServingStatus::NotServing
                };
                (name, status)
            })
            .collect()
    }

    async fn report(&self, statuses: Vec<(&'static str, ServingStatus)>, failures: &[Failure]) {
        let changed: Vec<(&'static str, ServingStatus)> = {
            let mut reported = self
                .reported
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            statuses
                .into_iter()
                .filter(|&(name, status)| reported.insert(name, status) != Some(status))
                .collect()
        };
        let first = !self.logged.swap(true, Ordering::SeqCst);
        if changed.is_empty() && !first {
            return;
        }
        // Only changes are logged: a long outage is one warning, not one per tick.
        if failures.is_empty() {
            tracing::info!("health checks pass");
        } else {
            for failure in failures {
                tracing::warn!(
                    check = failure.check,
                    service = failure.service.unwrap_or(""),
                    reason = %failure.reason,
                    "health check failed"
                );
            }
        }
        self.publish(&changed).await;
    }

    // Sets the given names; `Watch` streams see a set even when it is
    // unchanged, so callers pass changes only.
    async fn publish(&self, statuses: &[(&'static str, ServingStatus)]) {
        for &(service, status) in statuses {
            self.reporter.set_service_status(service, status).await;
            if service.is_empty() {
                self.status.send_replace(status);
            }
        }
    }

    /// Runs the checks forever on the interval. Every name reads
    /// `NOT_SERVING` until the first run has passed, so nothing routes
    /// traffic to a server whose checks have not yet been made.
    pub fn spawn(self) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let initial: Vec<_> = self
                .services
                .iter()
                .map(|&name| (name, ServingStatus::NotServing))
                .collect();
            self.publish(&initial).await;
            self.reported
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .extend(initial);
            let mut ticker = tokio::time::interval(self.interval);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticker.tick().await;
                self.run_once().await;
            }
        })
    }
}

/// A failed check and, when scoped, the one service it decides.
struct Failure {
    service: Option<&'static str>,
    check: &'static str,
    // Whether the check is in-process, so its failure also fails `LIVENESS`.
    liveness: bool,
    reason: String,
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

/// A check on a setting fixed at start: passes when `ok`, else reports that
/// `what` (e.g. `ADSCOPE_AIRBYTE_URL`) is not configured.
pub fn configured(what: &'static str, ok: bool) -> Check {
    Box::new(move || {
        let outcome = if ok {
            Ok(())
        } else {
            Err(format!("{what} is not configured"))
        };
        futures_util::future::ready(outcome).boxed()
    })
}

/// A liveness signal of a background loop: the loop calls [`Heartbeat::beat`]
/// on every pass, and [`heartbeat`] fails once the last beat is too old.
/// Cloning shares the signal.
#[derive(Debug, Clone)]
pub struct Heartbeat {
    last: Arc<Mutex<Instant>>,
}

impl Default for Heartbeat {
    fn default() -> Self {
        Self::new()
    }
}

impl Heartbeat {
    /// A heartbeat that counts its creation as the first beat, so a loop that
    /// is just starting is not reported dead.
    pub fn new() -> Self {
        Heartbeat {
            last: Arc::new(Mutex::new(Instant::now())),
        }
    }

    /// Records that the loop is alive.
    pub fn beat(&self) {
        *self
            .last
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Instant::now();
    }

    /// Time since the last beat.
    pub fn age(&self) -> Duration {
        self.last
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .elapsed()
    }
}

/// A check that fails when `beat` has not beaten within `max_age` (e.g. two
/// or three scheduler intervals).
pub fn heartbeat(what: &'static str, beat: &Heartbeat, max_age: Duration) -> Check {
    let beat = beat.clone();
    Box::new(move || {
        let age = beat.age();
        let outcome = if age <= max_age {
            Ok(())
        } else {
            Err(format!(
                "{what} last ran {}s ago (allowed {}s)",
                age.as_secs(),
                max_age.as_secs()
            ))
        };
        futures_util::future::ready(outcome).boxed()
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // tests fail loudly

    use super::*;
    use tonic_health::pb::HealthCheckRequest;
    use tonic_health::pb::health_check_response::ServingStatus as Status;
    use tonic_health::pb::health_server::Health;
    use tonic_health::server::HealthService;

    fn toggled(flag: &Arc<AtomicBool>) -> Check {
        let flag = flag.clone();
        Box::new(move || {
            let ok = flag.load(Ordering::SeqCst);
            async move { if ok { Ok(()) } else { Err("down".into()) } }.boxed()
        })
    }

    #[tokio::test]
    async fn a_hung_check_fails_within_its_timeout() {
        let (reporter, _service) = tonic_health::server::health_reporter();
        let monitor = HealthMonitor::new(reporter, &["svc"])
            .timeout(Duration::from_millis(100))
            .check(
                "hangs",
                Box::new(|| futures_util::future::pending().boxed()),
            );
        let started = Instant::now();
        assert!(!monitor.run_once().await);
        assert!(started.elapsed() < Duration::from_secs(1));
        assert_eq!(*monitor.subscribe().borrow(), ServingStatus::NotServing);
    }

    #[tokio::test]
    async fn status_follows_the_checks_both_ways() {
        let (reporter, _service) = tonic_health::server::health_reporter();
        let flag = Arc::new(AtomicBool::new(false));
        let monitor = HealthMonitor::new(reporter, &["svc"]).check("toggle", toggled(&flag));
        let status = monitor.subscribe();
        assert!(!monitor.run_once().await);
        assert_eq!(*status.borrow(), ServingStatus::NotServing);
        flag.store(true, Ordering::SeqCst);
        assert!(monitor.run_once().await);
        assert_eq!(*status.borrow(), ServingStatus::Serving);
    }

    async fn served(service: &HealthService, name: &str) -> ServingStatus {
        let reply = service
            .check(tonic::Request::new(HealthCheckRequest {
                service: name.into(),
            }))
            .await
            .unwrap()
            .into_inner();
        match reply.status() {
            Status::Serving => ServingStatus::Serving,
            Status::NotServing => ServingStatus::NotServing,
            other => panic!("unexpected status {other:?}"),
        }
    }

    #[tokio::test]
    async fn liveness_follows_in_process_checks_and_ignores_dependencies() {
        let (reporter, _service) = tonic_health::server::health_reporter();
        let service = HealthService::from_health_reporter(reporter.clone());
        let database = Arc::new(AtomicBool::new(false));
        let heartbeat = Arc::new(AtomicBool::new(true));
        let monitor = HealthMonitor::new(reporter, &["svc"])
            .check("database", toggled(&database))
            .liveness_check("loop", toggled(&heartbeat));

        // The database is down: out of rotation, but alive.
        assert!(!monitor.run_once().await);
        assert_eq!(served(&service, "").await, ServingStatus::NotServing);
        assert_eq!(served(&service, "svc").await, ServingStatus::NotServing);
        assert_eq!(served(&service, LIVENESS).await, ServingStatus::Serving);

        // The process's own loop is stuck: not alive either.
        heartbeat.store(false, Ordering::SeqCst);
        database.store(true, Ordering::SeqCst);
        assert!(!monitor.run_once().await);
        assert_eq!(served(&service, "").await, ServingStatus::NotServing);
        assert_eq!(served(&service, LIVENESS).await, ServingStatus::NotServing);

        heartbeat.store(true, Ordering::SeqCst);
        assert!(monitor.run_once().await);
        assert_eq!(served(&service, "").await, ServingStatus::Serving);
        assert_eq!(served(&service, LIVENESS).await, ServingStatus::Serving);
    }

    #[tokio::test]
    async fn a_dependency_check_sharing_a_liveness_checks_name_does_not_decide_liveness() {
        let (reporter, _service) = tonic_health::server::health_reporter();
        let service = HealthService::from_health_reporter(reporter.clone());
        let dependency = Arc::new(AtomicBool::new(false));
        let heartbeat = Arc::new(AtomicBool::new(true));
        let monitor = HealthMonitor::new(reporter, &["svc"])
            .liveness_check("shared", toggled(&heartbeat))
            .check("shared", toggled(&dependency));

        assert!(!monitor.run_once().await);
        assert_eq!(served(&service, "").await, ServingStatus::NotServing);
        assert_eq!(served(&service, LIVENESS).await, ServingStatus::Serving);
    }

    #[tokio::test]
    async fn a_failing_scoped_check_flips_only_its_service() {
        let (reporter, _service) = tonic_health::server::health_reporter();
        let service = HealthService::from_health_reporter(reporter.clone());
        let global = Arc::new(AtomicBool::new(true));
        let optional = Arc::new(AtomicBool::new(false));
        let monitor = HealthMonitor::new(reporter, &["a.A", "b.B"])
            .check("global", toggled(&global))
            .service_check("b.B", "optional", toggled(&optional));
        let whole = monitor.subscribe();

        assert!(!monitor.run_once().await, "a scoped failure is a failure");
        assert_eq!(served(&service, "").await, ServingStatus::Serving);
        assert_eq!(served(&service, "a.A").await, ServingStatus::Serving);
        assert_eq!(served(&service, "b.B").await, ServingStatus::NotServing);
        assert_eq!(*whole.borrow(), ServingStatus::Serving);

        optional.store(true, Ordering::SeqCst);
        assert!(monitor.run_once().await);
        assert_eq!(served(&service, "b.B").await, ServingStatus::Serving);

        // A global failure takes every name down, scoped checks or not.
        global.store(false, Ordering::SeqCst);
        assert!(!monitor.run_once().await);
        for name in ["", "a.A", "b.B"] {
            assert_eq!(served(&service, name).await, ServingStatus::NotServing);
        }
        assert_eq!(*whole.borrow(), ServingStatus::NotServing);
    }

    #[tokio::test]
    async fn a_scoped_check_on_an_unlisted_service_adds_that_name() {
        let (reporter, _service) = tonic_health::server::health_reporter();
        let service = HealthService::from_health_reporter(reporter.clone());
        let monitor = HealthMonitor::new(reporter, &[]).service_check(
            "c.C",
            "hangs",
            Box::new(|| futures_util::future::pending().boxed()),
        );
        let monitor = monitor.timeout(Duration::from_millis(50));
        assert!(!monitor.run_once().await);
        assert_eq!(served(&service, "").await, ServingStatus::Serving);
        assert_eq!(served(&service, "c.C").await, ServingStatus::NotServing);
    }

    #[tokio::test]
    async fn configured_and_heartbeat_checks() {
        assert!(configured("ADSCOPE_AIRBYTE_URL", true)().await.is_ok());
        let missing = configured("ADSCOPE_AIRBYTE_URL", false)()
            .await
            .unwrap_err();
        assert!(missing.contains("ADSCOPE_AIRBYTE_URL"), "{missing}");

        let beat = Heartbeat::new();
        let check = heartbeat("scheduler", &beat, Duration::from_millis(50));
        assert!(check().await.is_ok());
        tokio::time::sleep(Duration::from_millis(80)).await;
        let dead = check().await.unwrap_err();
        assert!(dead.contains("scheduler"), "{dead}");
        beat.beat();
        assert!(check().await.is_ok());
    }
}

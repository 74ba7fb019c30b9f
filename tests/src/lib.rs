//! End-to-end harness: real adscope servers, in this process, on ephemeral
//! ports, against a fresh database from `adscope-testing`, called through
//! real tonic clients.
//!
//! Each `start_*` wires a service exactly as its binary does (the crate's
//! own `serve`), with the test verifier, and stops it when the returned
//! [`Running`] is dropped or [`Running::stop`]ped.

#![allow(clippy::unwrap_used)] // a test harness: failing loudly is the point

use std::net::SocketAddr;
use std::sync::Arc;

use adscope_db::ServiceRole;
use adscope_server::CommonConfig;
use adscope_tenancy::TenantId;
use adscope_testing::TestDb;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::metadata::MetadataValue;

/// A service running on an ephemeral port.
#[derive(Debug)]
pub struct Running {
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<anyhow::Result<()>>>,
}

impl Running {
    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A plain channel to the service.
    pub async fn channel(&self) -> tonic::transport::Channel {
        tonic::transport::Endpoint::from_shared(self.url())
            .unwrap()
            .connect()
            .await
            .unwrap()
    }

    /// Signals shutdown and waits until the server has drained.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match self.task.take() {
            Some(task) => task.await?,
            None => Ok(()),
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// The settings a service binary would read, pointed at `db` as `role`.
pub fn config(db: &TestDb, role: ServiceRole) -> CommonConfig {
    CommonConfig {
        listen_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        database_url: db.url(role),
        pool_size: 4,
        verifier: Arc::new(adscope_testing::verifier()),
        cors_origins: Vec::new(),
    }
}

async fn start<F, Fut>(config: CommonConfig, serve: F) -> Running
where
    F: FnOnce(CommonConfig, TcpListener, futures_util::future::BoxFuture<'static, ()>) -> Fut,
    Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
{
    let listener = TcpListener::bind(config.listen_addr).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let shutdown = Box::pin(async move {
        let _ = stopped.await;
    });
    let task = tokio::spawn(serve(config, listener, shutdown));
    Running {
        addr,
        stop: Some(stop),
        task: Some(task),
    }
}

/// Starts analytics against `db`.
pub async fn start_analytics(db: &TestDb) -> Running {
    start_analytics_with(db, |_| {}).await
}

/// Starts analytics against `db`, letting the test adjust its settings
/// (pool size, CORS origins).
pub async fn start_analytics_with(db: &TestDb, adjust: impl FnOnce(&mut CommonConfig)) -> Running {
    let mut config = config(db, ServiceRole::Analytics);
    adjust(&mut config);
    start(config, adscope_analytics::serve).await
}

/// Starts integrations against `db` with the default settings.
pub async fn start_integrations(db: &TestDb) -> Running {
    start_integrations_with(db, |_| {}).await
}

/// Starts integrations against `db`, letting the test adjust its settings
/// (Airbyte, webhook secret, key file, scheduler).
pub async fn start_integrations_with(
    db: &TestDb,
    adjust: impl FnOnce(&mut adscope_integrations::Config),
) -> Running {
    let mut config = adscope_integrations::Config::new(config(db, ServiceRole::Integrations));
    adjust(&mut config);
    let common = config.common.clone();
    start(common, move |_, listener, shutdown| {
        adscope_integrations::serve(config, listener, shutdown)
    })
    .await
}

/// Starts health against `db`.
pub async fn start_health(db: &TestDb) -> Running {
    start(config(db, ServiceRole::Health), adscope_health::serve).await
}

/// A request carrying a bearer token and, when given, a tenant.
pub fn request<T>(message: T, token: &str, tenant: Option<TenantId>) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    let bearer: MetadataValue<_> = format!("Bearer {token}").parse().unwrap();
    request.metadata_mut().insert("authorization", bearer);
    if let Some(tenant) = tenant {
        request
            .metadata_mut()
            .insert("x-tenant-id", tenant.to_string().parse().unwrap());
    }
    request
}

/// Inserts tenants into the directory (as the administrator) and returns them.
pub async fn seed_tenants(db: &TestDb, count: usize) -> Vec<TenantId> {
    use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};

    let tenants: Vec<TenantId> = (0..count)
        .map(|_| TenantId::new(uuid::Uuid::new_v4()))
        .collect();
    let values: Vec<String> = tenants
        .iter()
        .enumerate()
        .map(|(i, t)| format!("('{t}', 'tenant {i}')"))
        .collect();
    let mut admin = AsyncPgConnection::establish(db.admin_url()).await.unwrap();
    admin
        .batch_execute(&format!(
            "INSERT INTO tenants (id, name) VALUES {}",
            values.join(", ")
        ))
        .await
        .unwrap();
    tenants
}

/// `tests/js/node_modules/.bin`: the npm tools the tests use (the page
/// bundler, buf), installed from `tests/js`'s lock file with `npm ci` when
/// missing; panics saying what is needed when that fails, so a check that
/// needs them can never pass by being skipped.
pub fn js_tools() -> std::path::PathBuf {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("js");
    let bin = dir.join("node_modules/.bin");
    if !(bin.join("esbuild").exists() && bin.join("buf").exists()) {
        let installed = std::process::Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
            .current_dir(&dir)
            .stdin(std::process::Stdio::null())
            .status()
            .is_ok_and(|status| status.success());
        assert!(
            installed,
            "`npm ci` failed in {}: these tests need Node.js and npm (Debian nodejs npm) \
             and the npm registry",
            dir.display()
        );
    }
    bin
}

/// Creates a Meta campaign in EUR for `tenant` through analytics (as an
/// analyst) and returns it as the server stored it.
pub async fn create_campaign(
    analytics: &Running,
    tenant: TenantId,
    external_id: &str,
    name: &str,
) -> adscope_proto::analytics::v1::Campaign {
    use adscope_proto::analytics::v1 as pb;
    use adscope_proto::analytics::v1::campaign_service_client::CampaignServiceClient;

    let mut client = CampaignServiceClient::new(analytics.channel().await);
    client
        .create_campaign(request(
            pb::CreateCampaignRequest {
                campaign: Some(pb::Campaign {
                    external_id: external_id.into(),
                    name: name.into(),
                    platform: pb::Platform::Meta.into(),
                    account_external_id: "act_1".into(),
                    status: pb::CampaignStatus::Active.into(),
                    currency: "EUR".into(),
                    ..Default::default()
                }),
            },
            &adscope_testing::token(&[tenant], adscope_tenancy::Role::Analyst),
            Some(tenant),
        ))
        .await
        .unwrap()
        .into_inner()
        .campaign
        .unwrap()
}

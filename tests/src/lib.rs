//! End-to-end harness: real adscope servers, in this process, on ephemeral
//! ports, against a fresh database from `adscope-testing`, called through
//! real tonic clients.
//!
//! Each `start_*` wires a service exactly as its binary does (the crate's
//! own `serve`), with the test verifier, and stops it when the returned
//! [`Running`] is dropped or [`Running::stop`]ped.

#![allow(clippy::unwrap_used)] // a test harness: failing loudly is the point

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use adscope_db::ServiceRole;
use adscope_server::CommonConfig;
use adscope_tenancy::TenantId;
use adscope_testing::TestDb;
use diesel_async::{AsyncConnection, AsyncPgConnection};
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

/// Binds `config.listen_addr` (port 0 picks a free one) and spawns `serve`
/// on it as a binary runs its crate's `serve`, with a shutdown future the
/// returned [`Running`] resolves. The port is bound on return, so the test
/// may connect at once. Public for a service the `start_*` helpers cannot
/// set up, such as one whose database URL is not a [`TestDb`]'s.
pub async fn start<F, Fut>(config: CommonConfig, serve: F) -> Running
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

/// Starts health against `db` with the default settings.
pub async fn start_health(db: &TestDb) -> Running {
    start_health_with(db, |_| {}).await
}

/// Starts health against `db`, letting the test adjust its settings (peers,
/// check interval, fleet thresholds).
pub async fn start_health_with(
    db: &TestDb,
    adjust: impl FnOnce(&mut adscope_health::Config),
) -> Running {
    let mut config = adscope_health::Config::new(config(db, ServiceRole::Health));
    adjust(&mut config);
    let common = config.common.clone();
    start(common, move |_, listener, shutdown| {
        adscope_health::serve_with(config, listener, shutdown)
    })
    .await
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

/// A tenant with an analyst's token for it, to build its requests.
#[derive(Debug)]
pub struct Tenant {
    pub id: TenantId,
    pub token: String,
}

impl Tenant {
    /// `id` with an analyst's token for it alone.
    pub fn new(id: TenantId) -> Self {
        Tenant {
            id,
            token: adscope_testing::token(&[id], adscope_tenancy::Role::Analyst),
        }
    }

    /// `message` as this tenant sends it: its token, its `x-tenant-id`.
    pub fn req<T>(&self, message: T) -> tonic::Request<T> {
        request(message, &self.token, Some(self.id))
    }
}

/// A connection to `db` as its administrator, the superuser: row-level
/// security does not apply, so tests can seed and inspect rows of any tenant.
pub async fn admin(db: &TestDb) -> AsyncPgConnection {
    AsyncPgConnection::establish(db.admin_url()).await.unwrap()
}

/// Inserts tenants into the directory (as the administrator) and returns them.
pub async fn seed_tenants(db: &TestDb, count: usize) -> Vec<TenantId> {
    use diesel_async::SimpleAsyncConnection;

    let tenants: Vec<TenantId> = (0..count)
        .map(|_| TenantId::new(uuid::Uuid::new_v4()))
        .collect();
    let values: Vec<String> = tenants
        .iter()
        .enumerate()
        .map(|(i, t)| format!("('{t}', 'tenant {i}')"))
        .collect();
    admin(db)
        .await
        .batch_execute(&format!(
            "INSERT INTO tenants (id, name) VALUES {}",
            values.join(", ")
        ))
        .await
        .unwrap();
    tenants
}

/// Now in whole seconds since the Unix epoch, as the APIs' timestamps and
/// the fake Airbyte's job times count.
pub fn now_s() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        .try_into()
        .unwrap()
}

/// Today in UTC as `YYYY-MM-DD`: the day the services' snapshot window
/// ends on, so dated records of today fall inside it.
pub fn today() -> String {
    chrono::Utc::now()
        .date_naive()
        .format("%Y-%m-%d")
        .to_string()
}

/// A port nothing listens on: bound, read, released. Stands for a peer or
/// a database that is down.
pub fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// A fresh key-encryption key file (32 random bytes in hex), owner-only as
/// the key store demands, under a name of its own so tests do not share it.
pub fn key_file() -> PathBuf {
    let path = std::env::temp_dir().join(format!("adscope-kek-{}.hex", uuid::Uuid::new_v4()));
    let key: String = uuid::Uuid::new_v4()
        .as_bytes()
        .iter()
        .chain(uuid::Uuid::new_v4().as_bytes())
        .map(|b| format!("{b:02x}"))
        .collect();
    std::fs::write(&path, key).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    path
}

/// `tests/js/node_modules/.bin`: the npm tools the tests use (the page
/// bundler, buf), installed from `tests/js`'s lock file with `npm ci` when
/// missing; panics saying what is needed when that fails, so a check that
/// needs them can never pass by being skipped.
pub fn js_tools() -> std::path::PathBuf {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("js");
    let bin = dir.join("node_modules/.bin");
    if !(bin.join("esbuild").exists() && bin.join("buf").exists()) {
        if !on_path("npm") {
            apt_install(&["nodejs", "npm"]);
        }
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

/// Creates `connection` for `tenant` through integrations (as an analyst)
/// and returns it as the server stored it.
pub async fn create_connection(
    integrations: &Running,
    tenant: TenantId,
    connection: adscope_proto::integrations::v1::Connection,
) -> adscope_proto::integrations::v1::Connection {
    use adscope_proto::integrations::v1 as pb;
    use adscope_proto::integrations::v1::connection_service_client::ConnectionServiceClient;

    let mut client = ConnectionServiceClient::new(integrations.channel().await);
    client
        .create_connection(request(
            pb::CreateConnectionRequest {
                connection: Some(connection),
            },
            &adscope_testing::token(&[tenant], adscope_tenancy::Role::Analyst),
            Some(tenant),
        ))
        .await
        .unwrap()
        .into_inner()
        .connection
        .unwrap()
}

/// Whether `program` is on `PATH`.
pub fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
}

/// Installs Debian packages when running as root, as the harness does for
/// PostgreSQL; elsewhere (or when it fails) it does nothing, and the caller's
/// own check then fails saying what to install.
pub fn apt_install(packages: &[&str]) {
    use std::process::{Command, Stdio};

    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| out.stdout.trim_ascii() == b"0");
    if !root || !on_path("apt-get") {
        return;
    }
    let run = |args: &[&str]| {
        Command::new("apt-get")
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdin(Stdio::null())
            .status()
            .is_ok_and(|status| status.success())
    };
    if run(&["update", "-qq"]) {
        run(&[&["install", "-y", "-qq"][..], packages].concat());
    }
}

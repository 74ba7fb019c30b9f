//! `adscope dev`: everything on one machine, ready for grpcurl.
//!
//! PostgreSQL is found in this order: `DATABASE_URL` (an administrator URL),
//! a server on 127.0.0.1:5432 that accepts the `postgres` user, else a
//! throwaway cluster under the data directory started with the system's
//! `initdb` (as the `postgres` user when run as root; installing Debian's
//! `postgresql` package first when root and it is missing).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use adscope_db::ServiceRole;
use adscope_pgcluster::Cluster;
use adscope_server::CommonConfig;
use adscope_tenancy::{Minter, Role, TenantId, TokenSpec, Verifier};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};
use rand::RngCore;

use crate::urls;

#[derive(Debug, clap::Args)]
pub(crate) struct DevArgs {
    /// Where dev state lives: the throwaway cluster, the dev secret, the KMS key.
    #[arg(long, default_value = ".adscope")]
    data_dir: PathBuf,
    /// An administrator URL to use instead of finding or starting PostgreSQL.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
    #[arg(long, default_value_t = adscope_analytics::DEFAULT_ADDR)]
    analytics_addr: SocketAddr,
    #[arg(long, default_value_t = adscope_integrations::DEFAULT_ADDR)]
    integrations_addr: SocketAddr,
    #[arg(long, default_value_t = adscope_health::DEFAULT_ADDR)]
    health_addr: SocketAddr,
}

/// The database dev mode creates on a shared local server.
const DEV_DATABASE: &str = "adscope_dev";

/// The issuer and audience of dev tokens: the services' defaults.
const DEV_ISSUER: &str = "adscope";
const DEV_AUDIENCE: &str = "adscope";

pub(crate) async fn run(args: DevArgs) -> anyhow::Result<()> {
    let _telemetry = adscope_telemetry::init("adscope-dev")?;
    std::fs::create_dir_all(&args.data_dir)?;

    // Find PostgreSQL: the one given, a local one, or our own.
    let (admin_url, cluster) = find_postgres(&args).await?;
    let database = urls::database(&admin_url)?;

    let report = adscope_db::migrate::run(&admin_url).await?;
    tracing::info!(applied = report.applied.len(), "database migrated");

    let secret = secret_file(&args.data_dir.join("jwt-secret"))?;
    secret_file(&args.data_dir.join("kms.key"))?;
    let secrets = DevSecrets {
        jwt: secret.clone(),
        webhook: secret_file(&args.data_dir.join("webhook-secret"))?,
    };
    let tenant = demo_tenant(&admin_url).await?;

    // The three services, in this process, sharing one shutdown signal.
    let verifier = Arc::new(Verifier::hs256(
        secret.as_bytes(),
        DEV_ISSUER,
        DEV_AUDIENCE,
    )?);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let shutdown = move || {
        let mut rx = stop_rx.clone();
        async move {
            let _ = rx.wait_for(|stop| *stop).await;
        }
    };
    let config = |addr: SocketAddr, role: ServiceRole| -> anyhow::Result<CommonConfig> {
        Ok(CommonConfig {
            listen_addr: addr,
            database_url: urls::for_role(&admin_url, &database, role.login_role())?,
            pool_size: 8,
            verifier: verifier.clone(),
            cors_origins: Vec::new(),
        })
    };
    let analytics = config(args.analytics_addr, ServiceRole::Analytics)?;
    let integrations = config(args.integrations_addr, ServiceRole::Integrations)?;
    let health = config(args.health_addr, ServiceRole::Health)?;
    let listeners = (
        bind(analytics.listen_addr).await?,
        bind(integrations.listen_addr).await?,
        bind(health.listen_addr).await?,
    );
    let tasks = [
        tokio::spawn(adscope_analytics::serve(analytics, listeners.0, shutdown())),
        tokio::spawn(adscope_integrations::serve(
            dev_integrations(integrations, &args, &secrets)?,
            listeners.1,
            shutdown(),
        )),
        tokio::spawn(adscope_health::serve_with(
            dev_health(health, &args),
            listeners.2,
            shutdown(),
        )),
    ];

    let token = Minter::hs256(secret.as_bytes(), DEV_ISSUER, DEV_AUDIENCE)?.mint(&TokenSpec {
        subject: "adscope-dev".into(),
        tenants: vec![tenant],
        roles: vec![Role::Admin],
        scopes: vec![],
        ttl: Duration::from_secs(12 * 3600),
        not_before: None,
    })?;
    crate::println_out(&banner(&args, &admin_url, tenant, &token));

    adscope_server::shutdown::signal().await;
    let _ = stop_tx.send(true);
    for task in tasks {
        match task.await {
            Ok(Err(error)) => tracing::error!(%error, "service stopped with an error"),
            Err(error) => tracing::error!(%error, "service task failed"),
            Ok(Ok(())) => {}
        }
    }
    if let Some(cluster) = cluster {
        cluster.stop()?;
        tracing::info!("throwaway PostgreSQL stopped");
    }
    Ok(())
}

/// Integrations as dev runs it: the local key file, the webhook secret,
/// analytics next door (called with tokens minted for one tenant at a time),
/// the scheduler on.
fn dev_integrations(
    common: CommonConfig,
    args: &DevArgs,
    secrets: &DevSecrets,
) -> anyhow::Result<adscope_integrations::Config> {
    let mut config = adscope_integrations::Config::new(common);
    config.kms_key_file = Some(args.data_dir.join("kms.key"));
    config.webhook_secret = Some(secrets.webhook.clone());
    config.analytics_url = Some(format!("http://{}", args.analytics_addr));
    config.service_minter = Some(Arc::new(Minter::hs256(
        secrets.jwt.as_bytes(),
        DEV_ISSUER,
        DEV_AUDIENCE,
    )?));
    config.scheduler.enabled = true;
    Ok(config)
}

/// Health as dev runs it: it asks the other two for their health.
fn dev_health(common: CommonConfig, args: &DevArgs) -> adscope_health::Config {
    let mut config = adscope_health::Config::new(common);
    config.analytics_url = Some(format!("http://{}", args.analytics_addr));
    config.integrations_url = Some(format!("http://{}", args.integrations_addr));
    config
}

/// The secrets dev mode keeps under its data directory.
struct DevSecrets {
    jwt: String,
    webhook: String,
}

async fn bind(addr: SocketAddr) -> anyhow::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {addr}: {e} (pass another --*-addr)"))
}

/// The administrator URL to use, and the cluster we started (to stop on exit).
async fn find_postgres(args: &DevArgs) -> anyhow::Result<(String, Option<Cluster>)> {
    if let Some(url) = &args.database_url {
        return Ok((url.clone(), None));
    }

    if adscope_pgcluster::server_reachable("127.0.0.1", 5432) {
        let server = "postgres://postgres@127.0.0.1:5432/postgres";
        if let Ok(mut conn) = AsyncPgConnection::establish(server).await {
            ensure_database(&mut conn, DEV_DATABASE).await?;
            tracing::info!("using the PostgreSQL server on 127.0.0.1:5432");
            return Ok((urls::with_database(server, DEV_DATABASE)?.into(), None));
        }
        tracing::info!("127.0.0.1:5432 does not accept the postgres user; starting our own");
    }

    let data_dir = args.data_dir.join("pg");
    let cluster = tokio::task::spawn_blocking(move || {
        adscope_pgcluster::ensure_server_binaries()?;
        Cluster::ensure_running(&data_dir)
    })
    .await??;
    let mut conn = AsyncPgConnection::establish(&cluster.admin_url()).await?;
    ensure_database(&mut conn, DEV_DATABASE).await?;
    let url = urls::with_database(&cluster.admin_url(), DEV_DATABASE)?.into();
    Ok((url, Some(cluster)))
}

#[derive(diesel::QueryableByName)]
struct Exists {
    #[diesel(sql_type = diesel::sql_types::Bool)]
    exists: bool,
}

async fn ensure_database(conn: &mut AsyncPgConnection, name: &str) -> anyhow::Result<()> {
    let found: Exists =
        diesel::sql_query("SELECT EXISTS (SELECT FROM pg_database WHERE datname = $1) AS exists")
            .bind::<diesel::sql_types::Text, _>(name)
            .get_result(conn)
            .await?;
    if !found.exists {
        conn.batch_execute(&format!("CREATE DATABASE {name}"))
            .await?;
    }
    Ok(())
}

/// A random secret kept in `path` (created 0600 on first use).
fn secret_file(path: &Path) -> anyhow::Result<String> {
    if let Ok(existing) = std::fs::read_to_string(path) {
        let existing = existing.trim().to_owned();
        if existing.len() >= 64 {
            return Ok(existing);
        }
    }
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let secret: String = bytes.iter().map(|b| format!("{b:02x}")).collect();

    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    std::io::Write::write_all(&mut options.open(path)?, secret.as_bytes())?;
    Ok(secret)
}

/// The tenant named `demo`, created on first run.
async fn demo_tenant(admin_url: &str) -> anyhow::Result<TenantId> {
    let mut conn = AsyncPgConnection::establish(admin_url).await?;
    let existing = crate::tenant::list(&mut conn).await?;
    if let Some(first) = existing.into_iter().next() {
        return Ok(TenantId::new(first.id));
    }
    Ok(TenantId::new(
        crate::tenant::create(&mut conn, "demo").await?.id,
    ))
}

fn banner(args: &DevArgs, admin_url: &str, tenant: TenantId, token: &str) -> String {
    let admin = url::Url::parse(admin_url)
        .map(|mut u| {
            let _ = u.set_password(None);
            u.to_string()
        })
        .unwrap_or_default();
    format!(
        "\nadscope dev is running (Ctrl-C stops it)\n\
         \n  analytics     {a}\n  integrations  {i}\n  health        {h}\n  database      {admin}\n\
         \n  tenant        {tenant}\n  token (admin, 12h):\n{token}\n\
         \nTry:\n  export TOKEN={token}\n\
         \x20 grpcurl -plaintext -H \"authorization: Bearer $TOKEN\" -H \"x-tenant-id: {tenant}\" \\\n\
         \x20   -d '{{\"campaign\": {{\"external_id\": \"c-1\", \"name\": \"Spring\", \"platform\": \"PLATFORM_META\", \"currency\": \"EUR\"}}}}' \\\n\
         \x20   {a} adscope.analytics.v1.CampaignService/CreateCampaign\n\
         \nAirbyte webhook: POST http://{i}/webhooks/airbyte with the header\n\
         \x20 x-adscope-webhook-secret: $(cat {webhook_file})\n\
         \nMint more tokens with:\n\
         \x20 ADSCOPE_JWT_HS256_SECRET=$(cat {secret_file}) adscope token --tenant {tenant} --role viewer\n",
        a = args.analytics_addr,
        i = args.integrations_addr,
        h = args.health_addr,
        secret_file = args.data_dir.join("jwt-secret").display(),
        webhook_file = args.data_dir.join("webhook-secret").display(),
    )
}

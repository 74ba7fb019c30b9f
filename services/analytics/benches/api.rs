//! Load benchmark of the campaign API: analytics served in-process exactly
//! as the binary serves it, 1000 campaigns seeded for one tenant, then 16
//! concurrent clients (one HTTP/2 connection each) calling `GetCampaign` on
//! random ids and `ListCampaigns` with 100 rows a page. Prints requests per
//! second and the 50th and 99th percentile latencies of each.

#![allow(clippy::unwrap_used)] // a benchmark: failing loudly is the point
#![allow(clippy::print_stdout)] // printing its figures is what a benchmark is for

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use adscope_db::ServiceRole;
use adscope_proto::analytics::v1 as pb;
use adscope_proto::analytics::v1::campaign_service_client::CampaignServiceClient;
use adscope_server::CommonConfig;
use adscope_tenancy::{Role, TenantId};
use adscope_testing::TestDb;
use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};
use tokio::net::TcpListener;
use tonic::transport::Channel;

const CAMPAIGNS: usize = 1000;
const CLIENTS: usize = 16;
const GET_CALLS_PER_CLIENT: usize = 2000;
const LIST_CALLS_PER_CLIENT: usize = 500;

/// The settings the binary would read, pointed at `db` (its default pool).
fn config(db: &TestDb) -> CommonConfig {
    CommonConfig {
        listen_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        database_url: db.url(ServiceRole::Analytics),
        pool_size: 16,
        verifier: Arc::new(adscope_testing::verifier()),
        cors_origins: Vec::new(),
    }
}

fn request<T>(message: T, token: &str, tenant: TenantId) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    request
        .metadata_mut()
        .insert("x-tenant-id", tenant.to_string().parse().unwrap());
    request
}

/// A small xorshift generator: enough to spread reads over the ids.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        usize::try_from(self.0 % n as u64).unwrap()
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

/// Runs `calls` calls on each of `channels` at once and prints the figures.
async fn drive<F, Fut>(label: &str, channels: &[Channel], calls: usize, call: F)
where
    F: Fn(CampaignServiceClient<Channel>, usize, u64) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    let started = Instant::now();
    let tasks: Vec<_> = channels
        .iter()
        .enumerate()
        .map(|(i, channel)| {
            let client = CampaignServiceClient::new(channel.clone());
            let call = call.clone();
            tokio::spawn(async move {
                let mut latencies = Vec::with_capacity(calls);
                for n in 0..calls {
                    let t = Instant::now();
                    call(client.clone(), n, i as u64 + 1).await;
                    latencies.push(t.elapsed());
                }
                latencies
            })
        })
        .collect();
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await.unwrap());
    }
    let elapsed = started.elapsed();
    latencies.sort();
    println!(
        "{label:<22} {:>7} calls  {:>9.0} req/s  p50 {:>7.2} ms  p99 {:>7.2} ms",
        latencies.len(),
        latencies.len() as f64 / elapsed.as_secs_f64(),
        percentile(&latencies, 0.50).as_secs_f64() * 1e3,
        percentile(&latencies, 0.99).as_secs_f64() * 1e3,
    );
}

#[tokio::main]
async fn main() {
    let db = TestDb::new().await;
    let tenant = TenantId::new(uuid::Uuid::new_v4());
    let mut admin = AsyncPgConnection::establish(db.admin_url()).await.unwrap();
    admin
        .batch_execute(&format!(
            "INSERT INTO tenants (id, name) VALUES ('{tenant}', 'bench');
             INSERT INTO campaigns (tenant_id, external_id, name, platform, status, currency)
             SELECT '{tenant}', 'ext-' || g, 'Campaign ' || lpad(g::text, 4, '0'), 'meta',
                    'active', 'EUR'
             FROM generate_series(1, {CAMPAIGNS}) g;
             ANALYZE campaigns;"
        ))
        .await
        .unwrap();

    let config = config(&db);
    let listener = TcpListener::bind(config.listen_addr).await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(adscope_analytics::serve(config, listener, async move {
        let _ = stopped.await;
    }));

    let token: Arc<str> = adscope_testing::token(&[tenant], Role::Viewer).into();
    let mut channels = Vec::new();
    for _ in 0..CLIENTS {
        let channel = tonic::transport::Endpoint::from_shared(url.clone())
            .unwrap()
            .connect()
            .await
            .unwrap();
        channels.push(channel);
    }

    // The ids, through the API itself.
    let mut ids = Vec::new();
    let mut page_token = String::new();
    let mut client = CampaignServiceClient::new(channels[0].clone());
    loop {
        let page = client
            .list_campaigns(request(
                pb::ListCampaignsRequest {
                    page_size: 500,
                    page_token: page_token.clone(),
                    ..Default::default()
                },
                &token,
                tenant,
            ))
            .await
            .unwrap()
            .into_inner();
        ids.extend(page.campaigns.into_iter().map(|c| c.id));
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    assert_eq!(ids.len(), CAMPAIGNS);
    let ids: Arc<[String]> = ids.into();
    println!("analytics at {url}: {CAMPAIGNS} campaigns, {CLIENTS} clients");

    // Warm every connection of the pool and every prepared statement.
    let warm = {
        let (token, ids) = (token.clone(), ids.clone());
        move |mut client: CampaignServiceClient<Channel>, n: usize, _seed: u64| {
            let (token, ids) = (token.clone(), ids.clone());
            async move {
                let id = ids[n % ids.len()].clone();
                client
                    .get_campaign(request(pb::GetCampaignRequest { id }, &token, tenant))
                    .await
                    .unwrap();
            }
        }
    };
    drive("warm-up", &channels, 100, warm).await;

    let get = {
        let (token, ids) = (token.clone(), ids.clone());
        move |mut client: CampaignServiceClient<Channel>, n: usize, seed: u64| {
            let (token, ids) = (token.clone(), ids.clone());
            async move {
                let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ n as u64 | 1);
                let id = ids[rng.below(ids.len())].clone();
                let campaign = client
                    .get_campaign(request(pb::GetCampaignRequest { id }, &token, tenant))
                    .await
                    .unwrap()
                    .into_inner()
                    .campaign
                    .unwrap();
                assert!(!campaign.name.is_empty());
            }
        }
    };
    drive("GetCampaign", &channels, GET_CALLS_PER_CLIENT, get).await;

    let list = {
        let token = token.clone();
        move |mut client: CampaignServiceClient<Channel>, _n: usize, _seed: u64| {
            let token = token.clone();
            async move {
                let page = client
                    .list_campaigns(request(
                        pb::ListCampaignsRequest {
                            page_size: 100,
                            ..Default::default()
                        },
                        &token,
                        tenant,
                    ))
                    .await
                    .unwrap()
                    .into_inner();
                assert_eq!(page.campaigns.len(), 100);
            }
        }
    };
    drive("ListCampaigns(100)", &channels, LIST_CALLS_PER_CLIENT, list).await;

    let _ = stop.send(());
    server.await.unwrap().unwrap();
}

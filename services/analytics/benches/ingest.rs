//! Ingest throughput: 100k records through IngestRecords on a server wired as
//! the binary wires it, against COPY of the same rows into the same table.
//!
//! `cargo bench -p adscope-analytics --bench ingest`; prints records/s for
//! both and their ratio.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark: fail loudly
#![allow(clippy::print_stdout)] // printing the figures is its output

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::time::Instant;

use adscope_db::ServiceRole;
use adscope_proto::analytics::v1 as pb;
use adscope_proto::analytics::v1::performance_service_client::PerformanceServiceClient;
use adscope_server::CommonConfig;
use adscope_tenancy::{Role, TenantId};
use adscope_testing::TestDb;
use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};
use tonic::metadata::MetadataValue;

const RECORDS: usize = 100_000;
const CAMPAIGNS: usize = 1_000;
const PER_MESSAGE: usize = 1_000;

fn records() -> Vec<pb::PerformanceRecord> {
    let start = chrono::NaiveDate::from_ymd_opt(2024, 1, 1).unwrap();
    (0..RECORDS)
        .map(|i| {
            let day = start + chrono::Duration::days((i / CAMPAIGNS) as i64);
            let id = format!("c{:05}", i % CAMPAIGNS);
            pb::PerformanceRecord {
                date: day.format("%Y-%m-%d").to_string(),
                level: pb::RecordLevel::Campaign.into(),
                source: "meta".into(),
                campaign_external_id: id.clone(),
                external_id: id,
                impressions: (i % 5000) as i64,
                reach: (i % 4000) as i64,
                clicks: (i % 90) as i64,
                conversions: (i % 7) as i64,
                spend: format!("{}.{:02}", i % 300, i % 100),
                currency: "EUR".into(),
                ..Default::default()
            }
        })
        .collect()
}

fn psql() -> PathBuf {
    adscope_pgcluster::find_server_binaries()
        .ok()
        .and_then(|dir| dir.join("postgres").canonicalize().ok())
        .and_then(|postgres| postgres.parent().map(|d| d.join("psql")))
        .filter(|psql| psql.exists())
        .unwrap_or_else(|| PathBuf::from("psql"))
}

async fn seed(db: &TestDb) -> (TenantId, TenantId) {
    let (a, b) = (
        TenantId::new(uuid::Uuid::new_v4()),
        TenantId::new(uuid::Uuid::new_v4()),
    );
    let mut admin = AsyncPgConnection::establish(db.admin_url()).await.unwrap();
    admin
        .batch_execute(&format!(
            "INSERT INTO tenants (id, name) VALUES ('{a}', 'ingest'), ('{b}', 'copy')"
        ))
        .await
        .unwrap();
    (a, b)
}

async fn ingest(
    client: &mut PerformanceServiceClient<tonic::transport::Channel>,
    records: &[pb::PerformanceRecord],
    token: &str,
    tenant: TenantId,
) -> (pb::IngestRecordsResponse, f64) {
    let batches: Vec<pb::IngestRecordsRequest> = records
        .chunks(PER_MESSAGE)
        .map(|chunk| pb::IngestRecordsRequest {
            records: chunk.to_vec(),
        })
        .collect();
    let mut request = tonic::Request::new(tokio_stream::iter(batches));
    let bearer: MetadataValue<_> = format!("Bearer {token}").parse().unwrap();
    request.metadata_mut().insert("authorization", bearer);
    request
        .metadata_mut()
        .insert("x-tenant-id", tenant.to_string().parse().unwrap());
    let started = Instant::now();
    let reply = client
        .ingest_records(request)
        .await
        .expect("ingest")
        .into_inner();
    (reply, started.elapsed().as_secs_f64())
}

#[tokio::main]
async fn main() {
    let db = TestDb::new().await;
    let (a, b) = seed(&db).await;
    let config = CommonConfig {
        listen_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        database_url: db.url(ServiceRole::Analytics),
        pool_size: 4,
        verifier: Arc::new(adscope_testing::verifier()),
        cors_origins: Vec::new(),
    };
    let listener = tokio::net::TcpListener::bind(config.listen_addr)
        .await
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(adscope_analytics::serve(config, listener, async move {
        let _ = stopped.await;
    }));
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut client = PerformanceServiceClient::new(channel)
        .max_decoding_message_size(64 << 20)
        .max_encoding_message_size(64 << 20);
    let token = adscope_testing::token(&[a], Role::Analyst);
    let records = records();

    let (reply, ingest_secs) = ingest(&mut client, &records, &token, a).await;
    assert_eq!(reply.inserted as usize, RECORDS, "{reply:?}");
    let (again, update_secs) = ingest(&mut client, &records, &token, a).await;
    assert_eq!(again.updated as usize, RECORDS, "{again:?}");

    // The same rows for a second tenant, through COPY as the administrator.
    let csv = tempfile_path();
    {
        let mut file = std::io::BufWriter::new(std::fs::File::create(&csv).unwrap());
        for r in &records {
            writeln!(
                file,
                "{b},{},campaign,{},{},{},{},{},{},{},{},{}",
                r.date,
                r.source,
                r.external_id,
                r.campaign_external_id,
                r.impressions,
                r.reach,
                r.clicks,
                r.conversions,
                r.spend,
                r.currency
            )
            .unwrap();
        }
    }
    let copy = format!(
        "\\copy performance_records (tenant_id, date, level, source, external_id, \
         campaign_external_id, impressions, reach, clicks, conversions, spend, currency) \
         FROM '{}' WITH (FORMAT csv)",
        csv.display()
    );
    let started = Instant::now();
    let status = Command::new(psql())
        .arg(db.admin_url())
        .args(["-v", "ON_ERROR_STOP=1", "-q", "-c", &copy])
        .status()
        .expect("run psql");
    let copy_secs = started.elapsed().as_secs_f64();
    assert!(status.success(), "psql \\copy failed");
    let _ = std::fs::remove_file(&csv);

    let rate = |secs: f64| RECORDS as f64 / secs;
    println!("records:            {RECORDS}");
    println!(
        "IngestRecords:      {:>10.0} records/s ({ingest_secs:.2} s, all inserts)",
        rate(ingest_secs)
    );
    println!(
        "IngestRecords:      {:>10.0} records/s ({update_secs:.2} s, all updates)",
        rate(update_secs)
    );
    println!(
        "COPY (psql \\copy):  {:>10.0} records/s ({copy_secs:.2} s)",
        rate(copy_secs)
    );
    println!(
        "ratio ingest/COPY:  {:.2} (inserts), {:.2} (updates)",
        copy_secs / ingest_secs,
        copy_secs / update_secs
    );

    let _ = stop.send(());
    let _ = server.await;
}

fn tempfile_path() -> PathBuf {
    std::env::temp_dir().join(format!(
        "adscope-ingest-{}.csv",
        uuid::Uuid::new_v4().simple()
    ))
}

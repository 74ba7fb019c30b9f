//! Primary-key read throughput on three sides, in one run: a bare pooled
//! connection (`bare`), the single-statement scoped unit
//! (`Database::scoped_load`, `single`) and the general scoped unit
//! (`Database::scoped`, `scoped`).
//!
//! All three log in as the analytics role and go through the same
//! row-level security policy; the bare side has `app.tenant_id` set once per
//! session (the pattern adscope forbids) so that it reads the same row. The
//! difference measured is the cost of the per-unit transaction and its
//! transaction-local setting.
//!
//! `cargo bench -p adscope-db --bench scoped_read` (uses the test harness's
//! database: `ADSCOPE_TEST_DATABASE_URL` or a throwaway cluster).
//! `ADSCOPE_BENCH_OPS` sets the reads per side (default 40000).

#![allow(clippy::print_stdout, clippy::unwrap_used)] // a benchmark reports on stdout

use std::sync::Arc;
use std::time::{Duration, Instant};

use adscope_db::schema::campaigns;
use adscope_db::{AsyncPgConnection, Database, DbConfig, DbError, ServiceRole};
use adscope_tenancy::{Principal, Role, TenantContext, TenantId};
use adscope_testing::TestDb;
use diesel::prelude::*;
use diesel_async::pooled_connection::bb8::Pool;
use diesel_async::pooled_connection::{
    AsyncDieselConnectionManager, ManagerConfig, RecyclingMethod,
};
use diesel_async::{AsyncConnection, RunQueryDsl, SimpleAsyncConnection};
use futures_util::FutureExt;
use uuid::Uuid;

const TASKS: usize = 16;
const ROWS: usize = 1000;

#[derive(Queryable, Selectable)]
#[diesel(table_name = campaigns)]
#[allow(dead_code)] // read for its cost, not its content
struct Row {
    id: Uuid,
    name: String,
    status: String,
    currency: String,
}

struct Stats {
    label: &'static str,
    ops: usize,
    elapsed: Duration,
    latencies: Vec<Duration>,
}

impl Stats {
    fn per_second(&self) -> f64 {
        self.ops as f64 / self.elapsed.as_secs_f64()
    }

    fn percentile(&self, p: f64) -> Duration {
        let index = ((self.latencies.len() as f64 - 1.0) * p).round() as usize;
        self.latencies[index]
    }

    fn print(&self) {
        println!(
            "{:<8} {:>9.0} reads/s   p50 {:>7.3} ms   p99 {:>7.3} ms   ({} reads, {} tasks)",
            self.label,
            self.per_second(),
            self.percentile(0.50).as_secs_f64() * 1e3,
            self.percentile(0.99).as_secs_f64() * 1e3,
            self.ops,
            TASKS,
        );
    }
}

/// Runs `ops` reads spread over TASKS tasks, each read timed.
async fn drive<F, Fut>(label: &'static str, ops: usize, ids: Arc<Vec<Uuid>>, read: F) -> Stats
where
    F: Fn(Uuid) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send,
{
    let start = Instant::now();
    let mut handles = Vec::new();
    for task in 0..TASKS {
        let read = read.clone();
        let ids = ids.clone();
        handles.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(ops / TASKS);
            for i in 0..ops / TASKS {
                let id = ids[(task * 7919 + i) % ids.len()];
                let t = Instant::now();
                read(id).await;
                latencies.push(t.elapsed());
            }
            latencies
        }));
    }
    let mut latencies = Vec::with_capacity(ops);
    for handle in handles {
        latencies.extend(handle.await.unwrap());
    }
    let elapsed = start.elapsed();
    latencies.sort();
    Stats {
        label,
        ops: latencies.len(),
        elapsed,
        latencies,
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let ops: usize = std::env::var("ADSCOPE_BENCH_OPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(40_000);
    let db = TestDb::new().await;
    let tenant = TenantId::new(Uuid::new_v4());
    let other = Uuid::new_v4();

    // Two tenants, ROWS campaigns each, so the policy has rows to filter.
    let mut admin = AsyncPgConnection::establish(db.admin_url()).await.unwrap();
    admin
        .batch_execute(&format!(
            "INSERT INTO tenants (id, name) VALUES ('{tenant}', 'bench'), ('{other}', 'other');
             INSERT INTO campaigns (tenant_id, external_id, name, platform, status, currency)
             SELECT t, 'c' || g, 'campaign ' || g, 'meta', 'active', 'EUR'
             FROM unnest(ARRAY['{tenant}'::uuid, '{other}'::uuid]) t, generate_series(1, {ROWS}) g;
             ANALYZE campaigns;"
        ))
        .await
        .unwrap();
    let ids: Vec<Uuid> = campaigns::table
        .filter(campaigns::tenant_id.eq(tenant.as_uuid()))
        .select(campaigns::id)
        .load(&mut admin)
        .await
        .unwrap();
    let ids = Arc::new(ids);

    let url = db.url(ServiceRole::Analytics);

    // The scoped side: the production wrapper.
    let mut config = DbConfig::new(url.clone(), ServiceRole::Analytics);
    config.max_connections = TASKS as u32;
    let scoped = Database::connect(&config).unwrap();
    let ctx = TenantContext::new(
        tenant,
        Arc::new(Principal {
            subject: "bench".into(),
            tenants: vec![tenant],
            roles: vec![Role::Viewer],
            scopes: vec![],
        }),
        None,
    );

    // The bare side: a plain diesel-async pool, fast recycling, the tenant
    // set once per session.
    let mut manager_config = ManagerConfig::<AsyncPgConnection>::default();
    manager_config.recycling_method = RecyclingMethod::Fast;
    let session_tenant = tenant.to_string();
    manager_config.custom_setup = Box::new(move |url| {
        let session_tenant = session_tenant.clone();
        async move {
            let mut conn = AsyncPgConnection::establish(url).await?;
            conn.batch_execute(&format!("SET app.tenant_id = '{session_tenant}'"))
                .await
                .map_err(diesel::ConnectionError::CouldntSetupConfiguration)?;
            Ok(conn)
        }
        .boxed()
    });
    let bare: Pool<AsyncPgConnection> = Pool::builder()
        .max_size(TASKS as u32)
        .test_on_check_out(false)
        .build(AsyncDieselConnectionManager::new_with_config(
            url,
            manager_config,
        ))
        .await
        .unwrap();

    let scoped_read = {
        let scoped = scoped.clone();
        let ctx = ctx.clone();
        move |id: Uuid| {
            let scoped = scoped.clone();
            let ctx = ctx.clone();
            async move {
                let row: Row = scoped
                    .scoped(&ctx, |mut conn| {
                        async move {
                            campaigns::table
                                .filter(campaigns::id.eq(id))
                                .select(Row::as_select())
                                .first(&mut conn)
                                .await
                                .map_err(DbError::from)
                        }
                        .boxed()
                    })
                    .await
                    .unwrap();
                std::hint::black_box(row);
            }
        }
    };
    let single_read = {
        let scoped = scoped.clone();
        let ctx = ctx.clone();
        move |id: Uuid| {
            let scoped = scoped.clone();
            let ctx = ctx.clone();
            async move {
                let rows: Vec<Row> = scoped
                    .scoped_load(
                        &ctx,
                        campaigns::table
                            .filter(campaigns::id.eq(id))
                            .select(Row::as_select())
                            .limit(1),
                    )
                    .await
                    .unwrap();
                assert_eq!(rows.len(), 1);
                std::hint::black_box(rows);
            }
        }
    };
    let bare_read = {
        let bare = bare.clone();
        move |id: Uuid| {
            let bare = bare.clone();
            async move {
                let mut conn = bare.get().await.unwrap();
                let row: Row = campaigns::table
                    .filter(campaigns::id.eq(id))
                    .select(Row::as_select())
                    .first(&mut *conn)
                    .await
                    .unwrap();
                std::hint::black_box(row);
            }
        }
    };

    // Warm both pools and statement caches, then measure each side twice,
    // interleaved, so drift on a busy machine hits both alike.
    drive("warmup", TASKS * 200, ids.clone(), bare_read.clone()).await;
    drive("warmup", TASKS * 200, ids.clone(), scoped_read.clone()).await;
    drive("warmup", TASKS * 200, ids.clone(), single_read.clone()).await;
    let mut bare_runs = Vec::new();
    let mut scoped_runs = Vec::new();
    let mut single_runs = Vec::new();
    for _ in 0..2 {
        bare_runs.push(drive("bare", ops / 2, ids.clone(), bare_read.clone()).await);
        single_runs.push(drive("single", ops / 2, ids.clone(), single_read.clone()).await);
        scoped_runs.push(drive("scoped", ops / 2, ids.clone(), scoped_read.clone()).await);
    }
    let merge = |label, runs: Vec<Stats>| {
        let ops = runs.iter().map(|r| r.ops).sum();
        let elapsed = runs.iter().map(|r| r.elapsed).sum();
        let mut latencies: Vec<Duration> = runs.into_iter().flat_map(|r| r.latencies).collect();
        latencies.sort();
        Stats {
            label,
            ops,
            elapsed,
            latencies,
        }
    };
    let bare_stats = merge("bare", bare_runs);
    let scoped_stats = merge("scoped", scoped_runs);
    let single_stats = merge("single", single_runs);

    println!("primary-key read, analytics role, {TASKS} concurrent tasks");
    println!("  bare:   plain pooled connection, tenant set once per session");
    println!("  single: Database::scoped_load (opening, read and COMMIT in one write)");
    println!("  scoped: Database::scoped (opening pipelined with the read, then COMMIT)");
    bare_stats.print();
    single_stats.print();
    scoped_stats.print();
    println!(
        "single / bare throughput: {:.2}x",
        single_stats.per_second() / bare_stats.per_second()
    );
    println!(
        "scoped / bare throughput: {:.2}x",
        scoped_stats.per_second() / bare_stats.per_second()
    );

    pgbench_reference(&db.url(ServiceRole::Analytics), tenant, &ids);
}

/// The database's own figures for the same statements, from pgbench when it
/// is installed: a bare read, the scoped unit sent statement by statement,
/// and the scoped unit pipelined. They bound what any client can reach here.
/// The scoped unit runs once more over the simple protocol: the same round
/// trips as its prepared run, so the gap between the two is the parsing and
/// planning that preparing saves (the reason `Database::scoped` prepares its
/// opening).
fn pgbench_reference(url: &str, tenant: TenantId, ids: &[Uuid]) {
    // pgbench sits next to the real server binary (PATH may hold only links).
    let Some(pgbench) = adscope_pgcluster::find_server_binaries()
        .ok()
        .and_then(|dir| std::fs::canonicalize(dir.join("postgres")).ok())
        .and_then(|postgres| postgres.parent().map(|d| d.join("pgbench")))
        .filter(|p| p.exists())
    else {
        println!("(pgbench not found: no database reference figures)");
        return;
    };
    let dir = std::env::temp_dir().join(format!("adscope-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let id = ids[0];
    let read =
        format!("SELECT id, name, status, currency FROM campaigns WHERE id = '{id}' LIMIT 1;");
    let set = format!("SELECT set_config('app.tenant_id', '{tenant}', true);");
    let scoped = format!("BEGIN;\n{set}\n{read}\nCOMMIT;");
    // (script name, query mode, script); a pipeline needs the extended
    // protocol, so only the statement-by-statement unit runs in both modes.
    let runs = [
        ("bare", "prepared", read.clone()),
        ("scoped", "prepared", scoped.clone()),
        (
            "piped",
            "prepared",
            format!("\\startpipeline\nBEGIN;\n{set}\n{read}\nCOMMIT;\n\\endpipeline"),
        ),
        ("scoped", "simple", scoped),
    ];
    let clients = TASKS.to_string();
    let mut tps = Vec::new();
    let mut failed = None;
    for (name, mode, script) in runs {
        let file = dir.join(format!("{name}-{mode}.sql"));
        std::fs::write(&file, script).unwrap();
        let mut command = std::process::Command::new(&pgbench);
        command.args(["-n", "-M", mode, "-c", &clients, "-j", "2", "-T", "5", "-f"]);
        command.arg(&file).arg(url);
        if name == "bare" {
            // The bare read needs the tenant for the session, as above.
            command.env("PGOPTIONS", format!("-c app.tenant_id={tenant}"));
        }
        let output = match command.output() {
            Ok(output) => output,
            Err(error) => {
                failed = Some(format!("(pgbench {name} -M {mode} did not start: {error})"));
                break;
            }
        };
        let text = String::from_utf8_lossy(&output.stdout);
        let value = text
            .lines()
            .find_map(|l| l.strip_prefix("tps = "))
            .and_then(|l| l.split_whitespace().next())
            .and_then(|v| v.parse::<f64>().ok());
        match value {
            Some(v) => tps.push((name, mode, v)),
            None => {
                failed = Some(format!(
                    "(pgbench {name} -M {mode} failed: {})",
                    String::from_utf8_lossy(&output.stderr)
                ));
                break;
            }
        }
    }
    // Before any report, so that a failed run leaves no scripts behind either.
    let _ = std::fs::remove_dir_all(&dir);
    if let Some(message) = failed {
        println!("{message}");
        return;
    }
    let bare = tps[0].2;
    println!("pgbench, same statements, {TASKS} clients:");
    for (name, mode, v) in &tps {
        println!(
            "  {name:<7} -M {mode:<8} {v:>9.0} tps   {:.2}x bare",
            v / bare
        );
    }
}

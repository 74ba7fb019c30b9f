//! Interoperability with a client this repo did not write: Python's `grpcio`,
//! with stubs compiled from proto/ at run time, calls analytics and the
//! standard health service and must see the same answers tonic clients get.

#![allow(clippy::unwrap_used)] // tests: failing loudly is the point

use std::path::Path;
use std::process::{Command, Output};

use adscope_e2e::{create_campaign, seed_tenants, start_analytics};
use adscope_tenancy::Role;
use adscope_testing::{TestDb, token};

const CAMPAIGN_NAME: &str = "Interop spring launch";

/// The lines `client.py` prints, one per check, in order.
const CHECK_LINES: [&str; 6] = [
    "ok health: SERVING",
    "ok own campaign: Interop spring launch",
    "ok other tenant: NOT_FOUND",
    "ok no metadata: UNAUTHENTICATED",
    "ok foreign tenant header: PERMISSION_DENIED",
    "ok all checks",
];

fn python(args: &[&str]) -> std::io::Result<Output> {
    Command::new("python3").args(args).output()
}

fn has_grpc_modules() -> bool {
    python(&["-c", "import grpc, grpc_tools"]).is_ok_and(|out| out.status.success())
}

/// Makes `grpc` and `grpc_tools` importable, installing them with pip when
/// they are missing; panics with what to install when that is not possible,
/// so the check can never pass by being skipped.
fn ensure_grpcio() {
    if has_grpc_modules() {
        return;
    }
    if !python(&["-m", "pip", "--version"]).is_ok_and(|out| out.status.success()) {
        adscope_e2e::apt_install(&["python3", "python3-pip"]);
    }
    let install = ["-m", "pip", "install", "--quiet", "grpcio", "grpcio-tools"];
    // Debian 12's system Python refuses pip installs unless told otherwise.
    let with_override = [&install[..], &["--break-system-packages"]].concat();
    for args in [&install[..], &with_override[..]] {
        let _ = python(args);
        if has_grpc_modules() {
            return;
        }
    }
    panic!(
        "the interop test needs python3 with the PyPI packages grpcio and grpcio-tools: \
         install python3 and python3-pip (Debian), then run \
         `python3 -m pip install grpcio grpcio-tools`"
    );
}

#[tokio::test]
async fn python_grpcio_client_sees_health_campaigns_and_tenant_errors() {
    ensure_grpcio();

    let db = TestDb::new().await;
    let analytics = start_analytics(&db).await;
    let tenants = seed_tenants(&db, 2).await;
    let (a, b) = (tenants[0], tenants[1]);
    let token_a = token(&[a], Role::Analyst);
    let token_b = token(&[b], Role::Analyst);

    let created = create_campaign(&analytics, a, "interop-1", CAMPAIGN_NAME).await;

    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("interop/client.py");
    let addr = analytics.addr.to_string();
    let (tenant_a, tenant_b) = (a.to_string(), b.to_string());
    // The server runs on this test's single-threaded runtime: waiting for the
    // child on that thread would stall the server the child is calling.
    let output = tokio::task::spawn_blocking(move || {
        Command::new("python3")
            .arg(script)
            .args(["--addr", &addr])
            .args(["--campaign-id", &created.id])
            .args(["--campaign-name", CAMPAIGN_NAME])
            .args(["--tenant-a", &tenant_a])
            .args(["--tenant-b", &tenant_b])
            // Tokens go through the environment so they stay out of `ps`.
            .env("ADSCOPE_TOKEN_A", &token_a)
            .env("ADSCOPE_TOKEN_B", &token_b)
            .output()
    })
    .await
    .unwrap()
    .expect("python3 runs");

    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "client.py failed ({}):\nstdout:\n{stdout}\nstderr:\n{stderr}",
        output.status
    );
    let lines: Vec<&str> = stdout.lines().collect();
    for check in CHECK_LINES {
        assert!(
            lines.contains(&check),
            "client.py did not report `{check}`:\n{stdout}"
        );
    }
}

//! A real browser as the frontend: headless Chromium loads a small page that
//! calls analytics' `GetCampaign` over gRPC-Web through the Connect client
//! from npm (`tests/js`), cross-origin, with tenant metadata.
//!
//! The page is served by this test from its own origin; the analytics server
//! lists that origin in its CORS settings, so the browser's preflight and the
//! call both go through the production CORS and gRPC-Web layers. A second
//! analytics server that does not list the origin proves the browser is
//! refused there.

#![allow(clippy::unwrap_used)] // tests: failing loudly is the point

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use adscope_e2e::{create_campaign, seed_tenants, start_analytics_with};
use adscope_tenancy::Role;
use adscope_testing::{TestDb, token};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

/// gRPC status codes, as the Connect client reports them.
const NOT_FOUND: u64 = 5;
const PERMISSION_DENIED: u64 = 7;
const UNAUTHENTICATED: u64 = 16;

fn page_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("js")
}

/// The Chromium binary, installing Debian's `chromium` when running as root
/// on a machine without it; panics with the command to run otherwise, so the
/// check can never pass by being skipped.
fn chromium() -> PathBuf {
    let found = || {
        ["chromium", "chromium-browser"]
            .into_iter()
            .find_map(|name| {
                std::env::var_os("PATH").and_then(|paths| {
                    std::env::split_paths(&paths)
                        .map(|dir| dir.join(name))
                        .find(|path| path.is_file())
                })
            })
    };
    if let Some(path) = found() {
        return path;
    }
    adscope_e2e::apt_install(&["chromium"]);
    if let Some(path) = found() {
        return path;
    }
    panic!("the browser test needs Chromium: run `apt-get install chromium` (Debian) as root");
}

/// Bundles `tests/js/src/page.js` with its npm dependencies into one script.
fn bundle_page() -> Vec<u8> {
    let esbuild = adscope_e2e::js_tools().join("esbuild");
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("adscope-browser-page.js");
    let status = Command::new(&esbuild)
        .args([
            "src/page.js",
            "--bundle",
            "--format=iife",
            "--target=es2022",
        ])
        .arg(format!("--outfile={}", out.display()))
        .arg("--log-level=warning")
        .current_dir(page_dir())
        .stdin(Stdio::null())
        .status()
        .expect("esbuild runs");
    assert!(status.success(), "esbuild could not bundle the page");
    std::fs::read(out).unwrap()
}

/// What the page server hands out.
struct Site {
    script: Vec<u8>,
    config: String,
}

/// Reads one HTTP/1.1 request: method, path and body.
async fn read_request(stream: &mut TcpStream) -> Option<(String, String, Vec<u8>)> {
    let mut buf = Vec::new();
    let head_end = loop {
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut request_line = head.lines().next()?.split_whitespace();
    let method = request_line.next()?.to_owned();
    let path = request_line.next()?.to_owned();
    let length: usize = head
        .lines()
        .filter_map(|line| line.split_once(':'))
        .find(|(name, _)| name.trim().eq_ignore_ascii_case("content-length"))
        .and_then(|(_, value)| value.trim().parse().ok())
        .unwrap_or(0);
    let mut body = buf[head_end..].to_vec();
    while body.len() < length {
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    Some((method, path, body))
}

async fn respond(stream: &mut TcpStream, status: &str, content_type: &str, body: &[u8]) {
    let head = format!(
        "HTTP/1.1 {status}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\n\
         cache-control: no-store\r\nconnection: close\r\n\r\n",
        body.len()
    );
    let _ = stream.write_all(head.as_bytes()).await;
    let _ = stream.write_all(body).await;
    let _ = stream.shutdown().await;
}

/// Serves the page, its script, its settings and the descriptor set, and
/// forwards what the page posts to `/result`.
async fn serve_site(
    listener: TcpListener,
    site: std::sync::Arc<Site>,
    results: mpsc::Sender<Vec<u8>>,
) {
    loop {
        let Ok((mut stream, _)) = listener.accept().await else {
            return;
        };
        let site = site.clone();
        let results = results.clone();
        tokio::spawn(async move {
            let Some((method, path, body)) = read_request(&mut stream).await else {
                return;
            };
            match (method.as_str(), path.as_str()) {
                ("GET", "/") => {
                    let html = "<!doctype html><meta charset=\"utf-8\">\
                                <title>adscope gRPC-Web check</title>\
                                <body>running<script src=\"/page.js\"></script>";
                    respond(
                        &mut stream,
                        "200 OK",
                        "text/html; charset=utf-8",
                        html.as_bytes(),
                    )
                    .await;
                }
                ("GET", "/page.js") => {
                    respond(&mut stream, "200 OK", "text/javascript", &site.script).await;
                }
                ("GET", "/config.json") => {
                    respond(
                        &mut stream,
                        "200 OK",
                        "application/json",
                        site.config.as_bytes(),
                    )
                    .await;
                }
                ("GET", "/descriptors.binpb") => {
                    let set = adscope_proto::FILE_DESCRIPTOR_SET;
                    respond(&mut stream, "200 OK", "application/octet-stream", set).await;
                }
                ("POST", "/result") => {
                    let _ = results.send(body).await;
                    respond(&mut stream, "204 No Content", "text/plain", b"").await;
                }
                _ => respond(&mut stream, "404 Not Found", "text/plain", b"not found").await,
            }
        });
    }
}

/// A headless Chromium showing `url`, in its own process group so that
/// dropping it ends the browser and every helper process it started.
struct Browser {
    child: Child,
    profile: PathBuf,
}

impl Browser {
    fn open(url: &str) -> Self {
        use std::os::unix::process::CommandExt;

        let profile = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("chromium-profile-{}", uuid::Uuid::new_v4()));
        let log = std::fs::File::create(profile.with_extension("log")).unwrap();
        let child = Command::new(chromium())
            .args([
                "--headless",
                // Root in a container has no user namespaces for the sandbox.
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-extensions",
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg(url)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .process_group(0)
            .spawn()
            .expect("chromium starts");
        Self { child, profile }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.profile.with_extension("log")).unwrap_or_default()
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
        let _ = std::fs::remove_file(self.profile.with_extension("log"));
    }
}

fn code(outcome: &Value) -> Option<u64> {
    outcome["code"].as_u64()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_page_gets_own_campaign_over_grpc_web_and_nothing_of_another_tenant() {
    // Both before any server starts: they may install things.
    let script = bundle_page();
    chromium();

    let site_listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .unwrap();
    let origin = format!("http://{}", site_listener.local_addr().unwrap());

    let db = TestDb::new().await;
    let allowed = origin.clone();
    let analytics = start_analytics_with(&db, |config| {
        config.cors_origins = vec![allowed.parse().unwrap()];
    })
    .await;
    let elsewhere = start_analytics_with(&db, |config| {
        config.cors_origins = vec!["https://app.example".parse().unwrap()];
    })
    .await;

    let tenants = seed_tenants(&db, 2).await;
    let (a, b) = (tenants[0], tenants[1]);
    // The same external id for both tenants: ids never cross.
    let own = create_campaign(&analytics, a, "browser-1", "Browser spring launch").await;
    let other = create_campaign(&analytics, b, "browser-1", "Other tenant's launch").await;

    let config = serde_json::json!({
        "analytics": analytics.url(),
        "analyticsOtherOrigin": elsewhere.url(),
        "tenantA": a.to_string(),
        "tenantB": b.to_string(),
        "tokenA": token(&[a], Role::Viewer),
        "ownCampaign": own.id,
        "otherCampaign": other.id,
    });
    let site = std::sync::Arc::new(Site {
        script,
        config: config.to_string(),
    });
    let (results_tx, mut results) = mpsc::channel(1);
    tokio::spawn(serve_site(site_listener, site, results_tx));

    let browser = Browser::open(&format!("{origin}/"));
    let posted = tokio::time::timeout(Duration::from_secs(90), results.recv()).await;
    let posted = match posted {
        Ok(Some(body)) => body,
        _ => panic!(
            "the page reported nothing within 90 s; chromium said:\n{}",
            browser.log()
        ),
    };
    drop(browser);
    let report: Value = serde_json::from_slice(&posted).unwrap();
    assert!(report.get("error").is_none(), "the page failed: {report:#}");

    assert!(
        report["userAgent"]
            .as_str()
            .unwrap()
            .contains("HeadlessChrome"),
        "not the browser: {report:#}"
    );
    assert_eq!(report["origin"], origin.as_str());

    // A's own campaign comes back whole through the browser.
    let got = &report["own"];
    assert_eq!(got["ok"], true, "{report:#}");
    assert_eq!(got["id"], own.id.as_str());
    assert_eq!(got["name"], "Browser spring launch");

    // B's campaign, asked for as A, is absent, not forbidden.
    assert_eq!(code(&report["otherTenants"]), Some(NOT_FOUND), "{report:#}");
    assert!(report["otherTenants"].get("name").is_none());
    // A's token naming tenant B, and no token at all.
    assert_eq!(
        code(&report["foreignHeader"]),
        Some(PERMISSION_DENIED),
        "{report:#}"
    );
    assert_eq!(
        code(&report["noToken"]),
        Some(UNAUTHENTICATED),
        "{report:#}"
    );

    // The server that does not list this origin: the browser refuses to
    // hand the page anything, so the call fails without a gRPC status.
    let refused = &report["otherOrigin"];
    assert_eq!(refused["ok"], false, "{report:#}");
    assert!(refused.get("name").is_none());
    assert!(
        ![NOT_FOUND, PERMISSION_DENIED, UNAUTHENTICATED].contains(&code(refused).unwrap()),
        "a status crossed the CORS refusal: {report:#}"
    );
}

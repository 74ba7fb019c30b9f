//! The README's command-line session, run for real: every `buf curl` command
//! of the block the README marks `readme-session` is run through `sh` against
//! a live analytics server (address swapped for the test's), and its reply
//! checked. The README's grpcurl session must make the same calls with the
//! same bodies, so it cannot drift from the one that is run.

#![allow(clippy::unwrap_used)] // tests: failing loudly is the point

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Stdio};

use adscope_e2e::{create_campaign, js_tools, request, seed_tenants, start_analytics};
use adscope_proto::analytics::v1 as pb;
use adscope_proto::analytics::v1::campaign_service_client::CampaignServiceClient;
use adscope_tenancy::Role;
use adscope_testing::{TestDb, token};
use serde_json::Value;

const README_ADDR: &str = "127.0.0.1:50051";
const MARKER: &str = "<!-- readme-session:";

fn readme() -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md")).unwrap()
}

/// The commands of the first ```sh block at or after byte `from`, with
/// backslash continuations joined.
fn commands_of_block(text: &str, from: usize) -> Vec<String> {
    let start = from + text[from..].find("```sh\n").expect("a ```sh block") + "```sh\n".len();
    let end = start + text[start..].find("```").expect("the block's end");
    let mut commands = Vec::new();
    let mut current = String::new();
    for line in text[start..end].lines() {
        let line = line.trim();
        if let Some(head) = line.strip_suffix('\\') {
            current.push_str(head.trim_end());
            current.push(' ');
            continue;
        }
        current.push_str(line);
        let command = std::mem::take(&mut current);
        if !command.is_empty() && !command.starts_with('#') {
            commands.push(command);
        }
    }
    commands
}

/// The body of `-d '...'`, if any.
fn body(command: &str) -> Option<String> {
    let at = command.find("-d '")? + "-d '".len();
    let len = command[at..].find('\'')?;
    Some(command[at..at + len].to_owned())
}

/// What a command calls, with its body: `services` (grpcurl's `list`),
/// `methods` (grpcurl's `describe`, buf's `--list-methods`), or
/// `<service>/<method>`.
fn call_of_grpcurl(command: &str) -> (String, Option<String>) {
    let words: Vec<&str> = command.split_whitespace().collect();
    let target = match words.iter().position(|w| *w == "list" || *w == "describe") {
        Some(at) if words[at] == "list" => "services".to_owned(),
        Some(_) => "methods".to_owned(),
        None => (*words.last().unwrap()).to_owned(),
    };
    (target, body(command))
}

fn call_of_buf_curl(command: &str) -> (String, Option<String>) {
    let url = command
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .unwrap();
    let path = url
        .trim_start_matches("http://")
        .split_once('/')
        .map(|(_, path)| path.to_owned());
    let target = if command.contains("--list-services") {
        "services".to_owned()
    } else if command.contains("--list-methods") {
        "methods".to_owned()
    } else {
        path.unwrap()
    };
    (target, body(command))
}

/// Runs one README command through `sh` with the README's variables set.
fn run(command: &str, addr: &str, token: &str, tenant: &str) -> String {
    let path = format!(
        "{}:{}",
        js_tools().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let output = Command::new("sh")
        .args(["-c", &command.replace(README_ADDR, addr)])
        .env("PATH", path)
        .env("TOKEN", token)
        .env("TENANT", tenant)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "`{command}` failed ({}):\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

fn listed_ids(reply: &Value) -> Vec<String> {
    reply["campaigns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_in_readme_runs_against_analytics_and_matches_the_grpcurl_one() {
    let text = readme();
    let marked = text.find(MARKER).expect("the README marks its session");
    let session = commands_of_block(&text, marked);
    let grpcurl_at = text.find("grpcurl -plaintext").expect("a grpcurl session");
    let grpcurl = commands_of_block(&text, text[..grpcurl_at].rfind("```sh").unwrap());
    assert!(session.len() >= 5, "{session:#?}");
    assert!(
        session.iter().all(|c| c.starts_with("buf curl ")),
        "{session:#?}"
    );
    assert!(
        grpcurl.iter().any(|c| c.starts_with("grpcurl ")),
        "{grpcurl:#?}"
    );

    // The grpcurl session makes the same calls with the same bodies, both
    // ways: the tested session may only add its gRPC-Web repeat of a gRPC
    // call, which grpcurl cannot make.
    let grpcurl: Vec<&String> = grpcurl
        .iter()
        .filter(|c| c.starts_with("grpcurl "))
        .collect();
    let grpcurl_calls: BTreeSet<_> = grpcurl.iter().map(|c| call_of_grpcurl(c)).collect();
    let (grpc_web, grpc): (Vec<&String>, Vec<&String>) = session
        .iter()
        .partition(|c| c.contains("--protocol grpcweb"));
    let grpc_calls: BTreeSet<_> = grpc.iter().map(|c| call_of_buf_curl(c)).collect();
    for command in &grpcurl {
        let call = call_of_grpcurl(command);
        assert!(
            grpc_calls.contains(&call),
            "the grpcurl command `{command}` makes a call ({call:?}) the tested session does not"
        );
    }
    for command in &grpc {
        let call = call_of_buf_curl(command);
        assert!(
            grpcurl_calls.contains(&call),
            "the tested command `{command}` makes a call ({call:?}) the grpcurl session does not"
        );
    }
    assert_eq!(grpc_web.len(), 1, "{session:#?}");
    let call = call_of_buf_curl(grpc_web[0]);
    assert!(
        grpc_calls.contains(&call),
        "the gRPC-Web command `{}` repeats no gRPC call ({call:?})",
        grpc_web[0]
    );

    let db = TestDb::new().await;
    let analytics = start_analytics(&db).await;
    let tenants = seed_tenants(&db, 2).await;
    let (a, b) = (tenants[0], tenants[1]);
    let token_a = token(&[a], Role::Analyst);
    let token_b = token(&[b], Role::Analyst);

    // Another tenant's campaign, with the README's very external id and name.
    let theirs = create_campaign(&analytics, b, "c-1", "Spring").await;

    let addr = analytics.addr.to_string();
    let (token_a2, tenant_a) = (token_a.clone(), a.to_string());
    // The server runs on this runtime; the commands block, so off it.
    let outputs = tokio::task::spawn_blocking(move || {
        session
            .iter()
            .map(|command| (command.clone(), run(command, &addr, &token_a2, &tenant_a)))
            .collect::<Vec<_>>()
    })
    .await
    .unwrap();

    let mut created: Option<String> = None;
    let mut checked = BTreeSet::new();
    for (command, stdout) in &outputs {
        let (target, _) = call_of_buf_curl(command);
        match target.as_str() {
            "services" => {
                for service in [
                    "adscope.analytics.v1.CampaignService",
                    "adscope.analytics.v1.AdSetService",
                    "adscope.analytics.v1.AdService",
                    "adscope.analytics.v1.PerformanceService",
                    "adscope.analytics.v1.SnapshotService",
                    "grpc.health.v1.Health",
                ] {
                    assert!(stdout.lines().any(|l| l == service), "{service}:\n{stdout}");
                }
                // Integrations' contract is not listed by analytics.
                assert!(!stdout.contains("integrations"), "{stdout}");
            }
            "methods" => {
                for method in [
                    "CreateCampaign",
                    "GetCampaign",
                    "ListCampaigns",
                    "UpdateCampaign",
                    "DeleteCampaign",
                ] {
                    let full = format!("adscope.analytics.v1.CampaignService/{method}");
                    assert!(stdout.lines().any(|l| l == full), "{full}:\n{stdout}");
                }
                assert!(!stdout.contains("ConnectionService"), "{stdout}");
            }
            "adscope.analytics.v1.CampaignService/CreateCampaign" => {
                let reply: Value = serde_json::from_str(stdout).unwrap();
                assert_eq!(reply["campaign"]["name"], "Spring", "{stdout}");
                assert_eq!(reply["campaign"]["externalId"], "c-1", "{stdout}");
                let id = reply["campaign"]["id"].as_str().unwrap().to_owned();
                assert_ne!(id, theirs.id, "a new campaign, not the other tenant's");
                created = Some(id);
            }
            "adscope.analytics.v1.CampaignService/ListCampaigns" => {
                // Exactly the campaign the session created: the other
                // tenant's twin is absent.
                let reply: Value = serde_json::from_str(stdout).unwrap();
                assert_eq!(
                    listed_ids(&reply),
                    vec![created.clone().unwrap()],
                    "{stdout}"
                );
            }
            "grpc.health.v1.Health/Check" => {
                let reply: Value = serde_json::from_str(stdout).unwrap();
                assert_eq!(reply["status"], "SERVING", "{stdout}");
            }
            other => panic!("the README session calls {other}, which this test does not check"),
        }
        checked.insert(command.contains("--protocol grpcweb"));
    }
    assert_eq!(checked.len(), 2, "both gRPC and gRPC-Web were used");

    // What the session created is the calling tenant's, seen as such over
    // tonic too, and still absent for the other tenant.
    let created = created.expect("the session creates a campaign");
    let mut campaigns = CampaignServiceClient::new(analytics.channel().await);
    let got = campaigns
        .get_campaign(request(
            pb::GetCampaignRequest {
                id: created.clone(),
            },
            &token_a,
            Some(a),
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got.campaign.unwrap().name, "Spring");
    let refused = campaigns
        .get_campaign(request(
            pb::GetCampaignRequest { id: created },
            &token_b,
            Some(b),
        ))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::NotFound);
}

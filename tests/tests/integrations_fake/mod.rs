//! A fake Airbyte API for the integrations tests: plain HTTP/1.1 on an
//! ephemeral port, speaking the JSON of `/api/v1/connections/sync` and
//! `/api/v1/jobs/get`, able to refuse (4xx), fail (5xx) or hang, and
//! recording every request it saw. Also a tiny HTTP/1.1 client.

#![allow(dead_code)] // each test file uses part of it

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// How the fake answers.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Mode {
    /// Starts a job; `jobs/get` reports `get_status`.
    Ok,
    /// Answers every request with this HTTP status.
    Status(u16),
    /// Reads the request and never answers.
    Hang,
}

/// One request the fake received.
#[derive(Debug, Clone)]
pub(crate) struct Seen {
    pub(crate) path: String,
    pub(crate) headers: HashMap<String, String>,
    pub(crate) body: Value,
}

#[derive(Debug)]
struct State {
    mode: Mode,
    /// Per Airbyte connection id, overriding `mode` for its sync calls.
    by_connection: HashMap<String, Mode>,
    get_status: String,
    millis: bool,
    next_job: i64,
    jobs: HashMap<i64, String>,
    seen: Vec<Seen>,
    created: i64,
    delay: std::time::Duration,
}

/// The fake server; stops when dropped.
#[derive(Debug, Clone)]
pub(crate) struct FakeAirbyte {
    pub(crate) addr: SocketAddr,
    state: Arc<Mutex<State>>,
    task: Arc<tokio::task::JoinHandle<()>>,
}

impl Drop for FakeAirbyte {
    fn drop(&mut self) {
        if Arc::strong_count(&self.task) == 1 {
            self.task.abort();
        }
    }
}

/// Epoch seconds the fake reports jobs as created at.
pub(crate) const CREATED_S: i64 = 1_760_000_000;
/// Seconds from creation to the end of a finished attempt.
pub(crate) const RUN_S: i64 = 90;
pub(crate) const RECORDS: i64 = 1234;
pub(crate) const BYTES: i64 = 56_789;

impl FakeAirbyte {
    pub(crate) async fn start() -> FakeAirbyte {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(Mutex::new(State {
            mode: Mode::Ok,
            by_connection: HashMap::new(),
            get_status: "running".into(),
            millis: false,
            next_job: 100,
            jobs: HashMap::new(),
            seen: Vec::new(),
            created: CREATED_S,
            delay: std::time::Duration::ZERO,
        }));
        let shared = state.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let state = shared.clone();
                tokio::spawn(async move {
                    let _ = serve(stream, state).await;
                });
            }
        });
        FakeAirbyte {
            addr,
            state,
            task: Arc::new(task),
        }
    }

    pub(crate) fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub(crate) fn set_mode(&self, mode: Mode) {
        self.state.lock().unwrap().mode = mode;
    }

    pub(crate) fn set_connection_mode(&self, connection: &str, mode: Mode) {
        self.state
            .lock()
            .unwrap()
            .by_connection
            .insert(connection.to_owned(), mode);
    }

    /// The status `jobs/get` reports ("running", "succeeded", ...).
    pub(crate) fn set_get_status(&self, status: &str) {
        self.state.lock().unwrap().get_status = status.into();
    }

    /// Report times in epoch milliseconds instead of seconds.
    pub(crate) fn set_millis(&self, millis: bool) {
        self.state.lock().unwrap().millis = millis;
    }

    /// Report jobs as created at this epoch second.
    pub(crate) fn set_created(&self, epoch_s: i64) {
        self.state.lock().unwrap().created = epoch_s;
    }

    /// `jobs/get` answers 404 for this job from now on.
    pub(crate) fn forget_job(&self, id: i64) {
        self.state.lock().unwrap().jobs.remove(&id);
    }

    /// Wait this long before each answer.
    pub(crate) fn set_delay(&self, delay: std::time::Duration) {
        self.state.lock().unwrap().delay = delay;
    }

    pub(crate) fn seen(&self) -> Vec<Seen> {
        self.state.lock().unwrap().seen.clone()
    }

    /// Sync calls seen for one Airbyte connection id.
    pub(crate) fn syncs_of(&self, connection: &str) -> usize {
        self.seen()
            .iter()
            .filter(|s| {
                s.path == "/api/v1/connections/sync"
                    && s.body["connectionId"].as_str() == Some(connection)
            })
            .count()
    }
}

async fn read_request(
    stream: &mut TcpStream,
) -> Option<(String, HashMap<String, String>, Vec<u8>)> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let mut lines = head.split("\r\n");
    let request_line = lines.next()?.to_owned();
    let headers: HashMap<String, String> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let length: usize = headers
        .get("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut body = buf[head_end + 4..].to_vec();
    while body.len() < length {
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    let path = request_line.split(' ').nth(1).unwrap_or("").to_owned();
    Some((path, headers, body))
}

fn job_json(state: &State, id: i64, status: &str, connection: &str) -> Value {
    let scale = if state.millis { 1000 } else { 1 };
    let created = state.created * scale;
    let terminal = !matches!(status, "running" | "pending");
    let mut attempt = json!({
        "id": 0,
        "status": status,
        "createdAt": created,
        "updatedAt": created,
        "recordsSynced": RECORDS,
        "bytesSynced": BYTES,
        "totalStats": {"recordsEmitted": RECORDS, "bytesEmitted": BYTES},
    });
    if terminal {
        attempt["endedAt"] = json!((state.created + RUN_S) * scale);
    }
    if status == "failed" {
        attempt["failureSummary"] =
            json!({"failures": [{"externalMessage": "source auth failed"}]});
    }
    json!({
        "job": {"id": id, "configId": connection, "configType": "sync", "status": status,
                "createdAt": created, "updatedAt": created},
        "attempts": [{"attempt": {"id": 0, "status": "failed", "recordsSynced": 1}},
                     {"attempt": attempt}],
    })
}

async fn serve(mut stream: TcpStream, state: Arc<Mutex<State>>) -> std::io::Result<()> {
    while let Some((path, headers, body)) = read_request(&mut stream).await {
        let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        let delay = state.lock().unwrap().delay;
        tokio::time::sleep(delay).await;
        let (status, reply) = {
            let mut s = state.lock().unwrap();
            s.seen.push(Seen {
                path: path.clone(),
                headers,
                body: body.clone(),
            });
            let connection = body["connectionId"].as_str().unwrap_or("").to_owned();
            let mode = s
                .by_connection
                .get(&connection)
                .cloned()
                .unwrap_or_else(|| s.mode.clone());
            match (mode, path.as_str()) {
                (Mode::Hang, _) => (0, Value::Null),
                (Mode::Status(code), _) => (code, json!({"message": format!("fake says {code}")})),
                (Mode::Ok, "/api/v1/connections/sync") => {
                    let id = s.next_job;
                    s.next_job += 1;
                    s.jobs.insert(id, connection.clone());
                    (200, job_json(&s, id, "running", &connection))
                }
                (Mode::Ok, "/api/v1/jobs/get") => {
                    let id = body["id"].as_i64().unwrap_or(-1);
                    match s.jobs.get(&id).cloned() {
                        Some(connection) => {
                            let status = s.get_status.clone();
                            (200, job_json(&s, id, &status, &connection))
                        }
                        None => (404, json!({"message": "job not found"})),
                    }
                }
                (Mode::Ok, _) => (404, json!({"message": "no such endpoint"})),
            }
        };
        if status == 0 {
            // Hang: keep the connection open and never answer.
            tokio::time::sleep(std::time::Duration::from_secs(3600)).await;
            return Ok(());
        }
        let text = reply.to_string();
        let response = format!(
            "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{text}",
            text.len()
        );
        stream.write_all(response.as_bytes()).await?;
    }
    Ok(())
}

/// A plain HTTP/1.1 POST; returns the status code and the body.
pub(crate) async fn post(
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let mut head = format!(
        "POST {path} HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).await.unwrap();
    // A server may refuse before reading it all (oversize bodies).
    let _ = stream.write_all(body).await;
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response).await;
    let text = String::from_utf8_lossy(&response).to_string();
    let code = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (code, body)
}

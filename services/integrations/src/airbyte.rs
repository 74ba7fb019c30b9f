//! A small client of the Airbyte API (`/api/v1/connections/sync`,
//! `/api/v1/jobs/get`) and the parsing of the job reports it and the
//! webhook send.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::config::{AirbyteAuth, AirbyteConfig};

/// Epoch values above this are milliseconds (10^11 s is the year 5138).
const MILLIS_THRESHOLD: i64 = 100_000_000_000;

/// A failed Airbyte call, classified by what the caller can do about it.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AirbyteError {
    /// `config.airbyte` is unset.
    #[error("Airbyte is not configured: set ADSCOPE_AIRBYTE_URL")]
    NotConfigured,
    /// Airbyte refused the request (4xx): retrying will not help.
    #[error("Airbyte refused the request ({status}): {message}")]
    Rejected { status: u16, message: String },
    /// No answer in time.
    #[error("Airbyte did not answer within {0:?}")]
    Timeout(std::time::Duration),
    /// A 5xx, a refused connection or another transport failure.
    #[error("Airbyte is unavailable: {0}")]
    Unavailable(String),
    /// A 2xx whose body is not the job report expected.
    #[error("Airbyte answered with an unexpected body: {0}")]
    Malformed(String),
}

impl AirbyteError {
    /// Whether trying again later may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            AirbyteError::Timeout(_) | AirbyteError::Unavailable(_)
        )
    }
}

impl From<AirbyteError> for tonic::Status {
    fn from(error: AirbyteError) -> tonic::Status {
        let message = error.to_string();
        match error {
            AirbyteError::NotConfigured | AirbyteError::Rejected { .. } => {
                tonic::Status::failed_precondition(message)
            }
            AirbyteError::Timeout(_) => tonic::Status::deadline_exceeded(message),
            AirbyteError::Unavailable(_) | AirbyteError::Malformed(_) => {
                tonic::Status::unavailable(message)
            }
        }
    }
}

/// The state of a job, as stored (`sync_jobs.status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobState {
    Pending,
    Running,
    Succeeded,
    Failed,
    Cancelled,
    Incomplete,
}

impl JobState {
    /// Airbyte's name of a status; unknown names count as pending.
    pub fn parse(name: &str) -> JobState {
        match name.to_ascii_lowercase().as_str() {
            "running" => JobState::Running,
            "succeeded" | "completed" => JobState::Succeeded,
            "failed" => JobState::Failed,
            "cancelled" | "canceled" => JobState::Cancelled,
            "incomplete" => JobState::Incomplete,
            _ => JobState::Pending,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Pending => "pending",
            JobState::Running => "running",
            JobState::Succeeded => "succeeded",
            JobState::Failed => "failed",
            JobState::Cancelled => "cancelled",
            JobState::Incomplete => "incomplete",
        }
    }

    /// Whether the job has ended.
    pub fn is_terminal(self) -> bool {
        !matches!(self, JobState::Pending | JobState::Running)
    }
}

/// One job's telemetry, taken from its last attempt.
#[derive(Debug, Clone, PartialEq)]
pub struct JobReport {
    pub airbyte_job_id: i64,
    pub state: JobState,
    pub started_at: Option<DateTime<Utc>>,
    pub ended_at: Option<DateTime<Utc>>,
    pub records_synced: i64,
    pub bytes_synced: i64,
    pub error: Option<String>,
    pub attempts: i32,
}

impl JobReport {
    /// Duration of an ended job in whole seconds.
    pub fn duration_seconds(&self) -> Option<i64> {
        match (self.started_at, self.ended_at) {
            (Some(start), Some(end)) => Some((end - start).num_seconds().max(0)),
            _ => None,
        }
    }

    /// Parses `{"job": {...}, "attempts": [...]}` (the attempts may also sit
    /// inside the job object).
    pub fn from_json(body: &Value) -> Result<JobReport, String> {
        let job = body.get("job").unwrap_or(body);
        let id = job
            .get("id")
            .and_then(integer)
            .ok_or("job.id is missing or not an integer")?;
        let state = JobState::parse(
            job.get("status")
                .and_then(Value::as_str)
                .ok_or("job.status is missing")?,
        );
        let attempts: Vec<&Value> = body
            .get("attempts")
            .or_else(|| job.get("attempts"))
            .and_then(Value::as_array)
            .map(|list| list.iter().map(|a| a.get("attempt").unwrap_or(a)).collect())
            .unwrap_or_default();
        let last = attempts.last().copied();
        let field = |name: &str| last.and_then(|a| a.get(name));
        let stat = |direct: &str, total: &str| {
            field(direct)
                .and_then(integer)
                .or_else(|| {
                    field("totalStats")
                        .and_then(|s| s.get(total))
                        .and_then(integer)
                })
                .unwrap_or(0)
                .max(0)
        };
        let started_at = field("createdAt")
            .and_then(epoch)
            .or_else(|| job.get("createdAt").and_then(epoch));
        let ended_at = if state.is_terminal() {
            field("endedAt")
                .and_then(epoch)
                .or_else(|| job.get("updatedAt").and_then(epoch))
        } else {
            None
        };
        let error = match state {
            JobState::Failed | JobState::Incomplete | JobState::Cancelled => {
                Some(failure_message(last).unwrap_or_else(|| format!("sync {}", state.as_str())))
            }
            _ => None,
        };
        Ok(JobReport {
            airbyte_job_id: id,
            state,
            started_at,
            ended_at,
            records_synced: stat("recordsSynced", "recordsEmitted"),
            bytes_synced: stat("bytesSynced", "bytesEmitted"),
            error,
            attempts: i32::try_from(attempts.len()).unwrap_or(i32::MAX),
        })
    }
}

fn failure_message(attempt: Option<&Value>) -> Option<String> {
    let failures = attempt?
        .get("failureSummary")?
        .get("failures")?
        .as_array()?;
    let first = failures.first()?;
    first
        .get("externalMessage")
        .or_else(|| first.get("internalMessage"))
        .and_then(Value::as_str)
        .map(|m| m.chars().take(1000).collect())
}

fn integer(value: &Value) -> Option<i64> {
    value
        .as_i64()
        .or_else(|| value.as_str().and_then(|s| s.parse().ok()))
}

/// An epoch time in seconds or milliseconds.
pub fn epoch(value: &Value) -> Option<DateTime<Utc>> {
    let raw = integer(value)?;
    if raw.abs() > MILLIS_THRESHOLD {
        DateTime::from_timestamp_millis(raw)
    } else {
        DateTime::from_timestamp(raw, 0)
    }
}

/// The Airbyte API.
#[derive(Debug, Clone)]
pub struct AirbyteClient {
    http: reqwest::Client,
    config: AirbyteConfig,
}

impl AirbyteClient {
    /// A client for `config`, or `None` when Airbyte is not configured.
    pub fn new(config: Option<&AirbyteConfig>) -> Result<Option<AirbyteClient>, AirbyteError> {
        let Some(config) = config else {
            return Ok(None);
        };
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .build()
            .map_err(|e| AirbyteError::Unavailable(e.to_string()))?;
        Ok(Some(AirbyteClient {
            http,
            config: config.clone(),
        }))
    }

    /// Starts a sync of an Airbyte connection; returns the job it started.
    pub async fn trigger_sync(&self, connection: Uuid) -> Result<JobReport, AirbyteError> {
        self.post(
            "/api/v1/connections/sync",
            json!({ "connectionId": connection }),
        )
        .await
    }

    /// The current state of a job.
    pub async fn get_job(&self, job_id: i64) -> Result<JobReport, AirbyteError> {
        self.post("/api/v1/jobs/get", json!({ "id": job_id })).await
    }

    async fn post(&self, path: &str, body: Value) -> Result<JobReport, AirbyteError> {
        let url = format!("{}{}", self.config.base_url, path);
        let request = self.http.post(&url).json(&body);
        let request = match &self.config.auth {
            AirbyteAuth::None => request,
            AirbyteAuth::Bearer(token) => request.bearer_auth(token),
            AirbyteAuth::Basic { user, password } => request.basic_auth(user, Some(password)),
        };
        let response = request.send().await.map_err(|e| self.transport(e))?;
        let status = response.status();
        if status.is_client_error() {
            let text = response.text().await.unwrap_or_default();
            return Err(AirbyteError::Rejected {
                status: status.as_u16(),
                message: upstream_message(&text),
            });
        }
        if !status.is_success() {
            return Err(AirbyteError::Unavailable(format!(
                "{path} answered {status}"
            )));
        }
        let json: Value = response.json().await.map_err(|e| {
            if e.is_timeout() {
                AirbyteError::Timeout(self.config.timeout)
            } else {
                AirbyteError::Malformed(e.to_string())
            }
        })?;
        JobReport::from_json(&json).map_err(AirbyteError::Malformed)
    }

    fn transport(&self, error: reqwest::Error) -> AirbyteError {
        if error.is_timeout() {
            AirbyteError::Timeout(self.config.timeout)
        } else {
            // The URL's host and path only: reqwest errors carry no secrets.
            AirbyteError::Unavailable(error.without_url().to_string())
        }
    }
}

/// Airbyte's own error message, shortened, for the caller.
fn upstream_message(body: &str) -> String {
    let parsed: Option<Value> = serde_json::from_str(body).ok();
    let message = parsed
        .as_ref()
        .and_then(|v| v.get("message").and_then(Value::as_str))
        .unwrap_or(body);
    let message: String = message.chars().take(300).collect();
    if message.trim().is_empty() {
        "no detail".to_owned()
    } else {
        message
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // unit tests

    use super::*;

    #[test]
    fn seconds_and_milliseconds_both_parse() {
        let s = epoch(&json!(1_700_000_000)).unwrap();
        let ms = epoch(&json!(1_700_000_000_000_i64)).unwrap();
        assert_eq!(s, ms);
    }

    #[test]
    fn the_last_attempt_gives_the_metrics() {
        let body = json!({
            "job": {"id": 7, "status": "succeeded", "createdAt": 1_700_000_000},
            "attempts": [
                {"attempt": {"id": 0, "status": "failed", "recordsSynced": 1}},
                {"attempt": {"id": 1, "status": "succeeded", "createdAt": 1_700_000_100,
                             "endedAt": 1_700_000_160_000_i64,
                             "totalStats": {"recordsEmitted": 42, "bytesEmitted": 4200}}}
            ]
        });
        let report = JobReport::from_json(&body).unwrap();
        assert_eq!(report.airbyte_job_id, 7);
        assert_eq!(report.state, JobState::Succeeded);
        assert_eq!(report.records_synced, 42);
        assert_eq!(report.bytes_synced, 4200);
        assert_eq!(report.duration_seconds(), Some(60));
        assert_eq!(report.attempts, 2);
        assert_eq!(report.error, None);
    }
}

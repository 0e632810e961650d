//! The health of the background workers (instance runner, callback deliveries, node probes,
//! heartbeat): each reports when it starts, succeeds, fails and stops, so that `/healthz` and
//! `/metrics` show a worker that keeps failing or has died instead of it going silent.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

/// What one worker last said.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkerStatus {
    /// `running`, or `stopped` (at shutdown, or because it ended: then the service is unwell).
    pub state: String,
    pub consecutive_errors: u64,
    pub last_error: Option<String>,
    pub last_ok: Option<DateTime<Utc>>,
}

/// The registry, a cheap-to-clone handle.
#[derive(Debug, Clone, Default)]
pub struct Workers {
    inner: Arc<Mutex<BTreeMap<&'static str, WorkerStatus>>>,
}

impl Workers {
    fn update(&self, name: &'static str, change: impl FnOnce(&mut WorkerStatus)) {
        let mut workers = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let status = workers.entry(name).or_insert_with(|| WorkerStatus {
            state: "running".into(),
            consecutive_errors: 0,
            last_error: None,
            last_ok: None,
        });
        change(status);
    }

    pub fn started(&self, name: &'static str) {
        self.update(name, |s| s.state = "running".into());
    }

    pub fn ok(&self, name: &'static str) {
        self.update(name, |s| {
            s.consecutive_errors = 0;
            s.last_ok = Some(Utc::now());
        });
    }

    pub fn failed(&self, name: &'static str, error: &str) {
        self.update(name, |s| {
            s.consecutive_errors += 1;
            s.last_error = Some(error.to_owned());
        });
    }

    pub fn stopped(&self, name: &'static str) {
        self.update(name, |s| s.state = "stopped".into());
    }

    /// Every worker's status, by name.
    pub fn snapshot(&self) -> BTreeMap<&'static str, WorkerStatus> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// Keeps a worker's task and says it stopped when the task ends, however it ends (a panic
/// included), so that a dead worker shows in `/healthz`.
pub fn supervise<F>(workers: &Workers, name: &'static str, task: F) -> tokio::task::JoinHandle<()>
where
    F: std::future::Future<Output = ()> + Send + 'static,
{
    let workers = workers.clone();
    workers.started(name);
    tokio::spawn(async move {
        let outcome = tokio::spawn(task).await;
        if let Err(err) = outcome {
            tracing::error!(worker = name, error = %err, "worker died");
            workers.failed(name, &format!("died: {err}"));
        }
        workers.stopped(name);
    })
}

//! StateMachineInstance: one run of a state machine, in JoyOI's shape.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::blob::BlobRef;
use super::limitation::Limitation;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub enum Status {
    Queued,
    Running,
    Succeeded,
    Failed,
    Cancelled,
}

impl Status {
    pub const ALL: [Status; 5] =
        [Status::Queued, Status::Running, Status::Succeeded, Status::Failed, Status::Cancelled];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Queued => "Queued",
            Status::Running => "Running",
            Status::Succeeded => "Succeeded",
            Status::Failed => "Failed",
            Status::Cancelled => "Cancelled",
        }
    }

    /// Accepts the names case-insensitively, as query strings are typed by people.
    pub fn parse(s: &str) -> Option<Status> {
        Status::ALL.into_iter().find(|status| status.as_str().eq_ignore_ascii_case(s))
    }

    pub fn is_finished(self) -> bool {
        matches!(self, Status::Succeeded | Status::Failed | Status::Cancelled)
    }
}

/// One actor started by an instance (JoyOI's ActorInfo).
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ActorInfo {
    pub name: String,
    pub start_time: Option<DateTime<Utc>>,
    pub end_time: Option<DateTime<Utc>>,
    pub inputs: Vec<BlobRef>,
    pub outputs: Vec<BlobRef>,
    pub exceptions: Vec<String>,
    pub status: String,
    pub stage: Option<String>,
    pub tag: Option<String>,
    pub used_node: Option<String>,
    pub used_container: Option<String>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Instance {
    pub id: Uuid,
    /// The state machine's name.
    pub name: String,
    pub status: Status,
    pub stage: Option<String>,
    pub started_actors: Vec<ActorInfo>,
    pub initial_blobs: Vec<BlobRef>,
    pub limitation: Option<Limitation>,
    pub parameters: BTreeMap<String, String>,
    pub priority: i64,
    pub from_management_service: Option<String>,
    pub re_run_times: i64,
    pub exception: Option<String>,
    pub execution_key: Option<String>,
    /// The script's value when it succeeded.
    pub result: Option<serde_json::Value>,
    pub created_at: DateTime<Utc>,
    pub start_time: Option<DateTime<Utc>>,
    pub end_time: Option<DateTime<Utc>>,
}

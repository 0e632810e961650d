//! StateMachineInstance: one run of a state machine, in JoyOI's shape. `status` keeps to
//! JoyOI's enum (Running, Failed, Succeeded) so that its SDK binds every answer; wharf's finer
//! state goes beside it in `state`.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::ser::SerializeStruct;
use serde::{Deserialize, Serialize, Serializer};
use utoipa::ToSchema;
use uuid::Uuid;

use super::blob::BlobRef;
use super::limitation::Limitation;

/// Where an instance is in its life.
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

    /// The status as JoyOI tells it: a queued instance is Running (it will run), a
    /// cancelled one Failed (it did not succeed).
    pub fn joyoi(self) -> JoyStatus {
        match self {
            Status::Queued | Status::Running => JoyStatus::Running,
            Status::Succeeded => JoyStatus::Succeeded,
            Status::Failed | Status::Cancelled => JoyStatus::Failed,
        }
    }
}

/// JoyOI's `StateMachineStatus` and `ActorStatus`: the only values its clients accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub enum JoyStatus {
    Running,
    Failed,
    Succeeded,
}

impl JoyStatus {
    pub const ALL: [JoyStatus; 3] = [JoyStatus::Running, JoyStatus::Failed, JoyStatus::Succeeded];

    pub fn as_str(self) -> &'static str {
        match self {
            JoyStatus::Running => "Running",
            JoyStatus::Failed => "Failed",
            JoyStatus::Succeeded => "Succeeded",
        }
    }

    /// The states an instance in this JoyOI status can be in.
    pub fn states(self) -> &'static [Status] {
        match self {
            JoyStatus::Running => &[Status::Queued, Status::Running],
            JoyStatus::Succeeded => &[Status::Succeeded],
            JoyStatus::Failed => &[Status::Failed, Status::Cancelled],
        }
    }
}

/// The two fields an instance's status is shown as.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct StatusFields {
    /// JoyOI's status: Running (also while queued), Failed (also when cancelled), Succeeded.
    status: JoyStatus,
    /// wharf's: Queued, Running, Succeeded, Failed or Cancelled.
    state: Status,
}

fn status_fields<S: Serializer>(status: &Status, serializer: S) -> Result<S::Ok, S::Error> {
    let mut fields = serializer.serialize_struct("StatusFields", 2)?;
    fields.serialize_field("status", &status.joyoi())?;
    fields.serialize_field("state", status)?;
    fields.end()
}

/// Where an actor an instance asked for is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub enum ActorState {
    /// Waiting for a slot on a node.
    Queued,
    /// In its container.
    Running,
    Succeeded,
    Failed,
    /// Its instance was cancelled or re-run before it ended.
    Cancelled,
}

impl ActorState {
    /// Reads a recorded actor's status; anything unknown is a failure.
    pub fn parse(s: &str) -> ActorState {
        match s {
            "Queued" => ActorState::Queued,
            "Running" => ActorState::Running,
            "Succeeded" => ActorState::Succeeded,
            "Cancelled" => ActorState::Cancelled,
            _ => ActorState::Failed,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ActorState::Queued => "Queued",
            ActorState::Running => "Running",
            ActorState::Succeeded => "Succeeded",
            ActorState::Failed => "Failed",
            ActorState::Cancelled => "Cancelled",
        }
    }

    pub fn joyoi(self) -> JoyStatus {
        match self {
            ActorState::Queued | ActorState::Running => JoyStatus::Running,
            ActorState::Succeeded => JoyStatus::Succeeded,
            ActorState::Failed | ActorState::Cancelled => JoyStatus::Failed,
        }
    }
}

/// The two fields an actor's status is shown as.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct ActorStatusFields {
    /// JoyOI's status: Running (also while waiting for a node), Failed (also when cancelled), Succeeded.
    status: JoyStatus,
    /// wharf's: Queued, Running, Succeeded, Failed or Cancelled.
    state: ActorState,
}

fn actor_status_fields<S: Serializer>(state: &ActorState, serializer: S) -> Result<S::Ok, S::Error> {
    let mut fields = serializer.serialize_struct("ActorStatusFields", 2)?;
    fields.serialize_field("status", &state.joyoi())?;
    fields.serialize_field("state", state)?;
    fields.end()
}

/// One actor started by an instance (JoyOI's ActorInfo).
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ActorInfo {
    pub name: String,
    /// When the instance asked for the actor (it may have waited for a node after that).
    pub start_time: DateTime<Utc>,
    pub end_time: Option<DateTime<Utc>>,
    pub inputs: Vec<BlobRef>,
    pub outputs: Vec<BlobRef>,
    pub exceptions: Vec<String>,
    #[serde(flatten, serialize_with = "actor_status_fields")]
    #[schema(inline, value_type = ActorStatusFields)]
    pub status: ActorState,
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
    #[serde(flatten, serialize_with = "status_fields")]
    #[schema(inline, value_type = StatusFields)]
    pub status: Status,
    /// `Start` until the script sets another stage.
    pub stage: Option<String>,
    pub started_actors: Vec<ActorInfo>,
    pub initial_blobs: Vec<BlobRef>,
    pub limitation: Option<Limitation>,
    pub parameters: BTreeMap<String, String>,
    pub priority: i64,
    pub from_management_service: Option<String>,
    pub re_run_times: i64,
    pub exception: Option<String>,
    /// The id of the current execution: new on every PUT and PATCH, and after a restart.
    pub execution_key: Option<String>,
    /// The service that runs (or last ran) it.
    pub run_by: Option<String>,
    /// The script's value when it succeeded.
    pub result: Option<serde_json::Value>,
    pub created_at: DateTime<Utc>,
    /// When it began to run, or while it is queued, when it was created.
    pub start_time: DateTime<Utc>,
    pub end_time: Option<DateTime<Utc>>,
}

/// The stage an instance starts in; re-running from it re-runs the whole script.
pub const INITIAL_STAGE: &str = "Start";

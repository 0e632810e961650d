//! Actor: a named program that runs inside one container.

use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::limitation::Limitation;

#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Actor {
    pub id: Uuid,
    pub name: String,
    /// The script run as `/actor/run` (shell unless it starts with `#!`).
    pub body: String,
    /// Image to run in instead of the node's.
    pub image: Option<String>,
    /// Files the actor must leave in `/workdir`; each becomes a blob.
    pub outputs: Vec<String>,
    pub limitation: Option<Limitation>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

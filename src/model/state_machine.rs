//! StateMachine: a named Rhai script that decides which actors run, and its default limits.

use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::limitation::Limitation;

#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StateMachine {
    pub id: Uuid,
    pub name: String,
    pub body: String,
    pub limitation: Option<Limitation>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

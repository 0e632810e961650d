//! Instances by state over time: the summary's chart, read from the same table as the
//! `wharf_instances` gauge of `/metrics`.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

/// The instances created within one span of time, counted by the state each is in now.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TimelineBucket {
    /// The span's first instant.
    pub start: DateTime<Utc>,
    /// The instant after its last one.
    pub end: DateTime<Utc>,
    /// Every state (Queued, Running, Succeeded, Failed, Cancelled), with 0 where there is none.
    #[schema(example = json!({"Queued": 0, "Running": 1, "Succeeded": 40, "Failed": 2, "Cancelled": 0}))]
    pub counts: BTreeMap<String, i64>,
}

//! `GET /api/v1/StateMachineInstance/Timeline`: instances by state over time, for the
//! console's summary.

use axum::extract::State;
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::envelope::{Envelope, ErrorBody, Reply};
use super::error::ApiError;
use super::extract::QueryParams;
use crate::model::now_millis;
use crate::model::timeline::TimelineBucket;

/// The longest window the timeline covers: 30 days.
const MAX_HOURS: i64 = 720;
/// The most spans one answer holds.
const MAX_BUCKETS: i64 = 240;

/// The window and its division.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TimelineQuery {
    /// How far back the window reaches, in hours: 1 to 720 (default 24).
    #[param(minimum = 1, maximum = 720)]
    pub hours: Option<i64>,
    /// Into how many equal spans it is cut: 1 to 240 (default 24).
    #[param(minimum = 1, maximum = 240)]
    pub buckets: Option<i64>,
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(get_timeline))
}

/// A query parameter within `1..=max`, or a 400 that names it.
fn bounded(name: &str, value: Option<i64>, default: i64, max: i64) -> Result<i64, ApiError> {
    let value = value.unwrap_or(default);
    if (1..=max).contains(&value) {
        Ok(value)
    } else {
        Err(ApiError::BadRequest(format!("query parameter `{name}`: {value} is not between 1 and {max}")))
    }
}

/// Instances created in each span of the last `hours`, by the state each is in now, oldest
/// span first. Spans are aligned to their length (hourly spans start on the hour) and the last
/// one holds the present.
#[utoipa::path(get, path = "/api/v1/StateMachineInstance/Timeline", tag = "StateMachineInstance",
    params(TimelineQuery),
    responses((status = 200, body = Envelope<Vec<TimelineBucket>>), (status = 400, body = ErrorBody)))]
async fn get_timeline(
    State(state): State<AppState>,
    QueryParams(query): QueryParams<TimelineQuery>,
) -> Result<Reply<Vec<TimelineBucket>>, ApiError> {
    let hours = bounded("hours", query.hours, 24, MAX_HOURS)?;
    let buckets = bounded("buckets", query.buckets, 24, MAX_BUCKETS)?;
    let bucket_ms = hours * 3_600_000 / buckets;
    let end = (now_millis() / bucket_ms + 1) * bucket_ms;
    let timeline = state.store.instance_timeline(end - bucket_ms * buckets, bucket_ms, buckets).await?;
    Ok(Reply(timeline))
}

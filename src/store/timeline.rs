//! Instances by state over time: one grouped query over `instances`, by creation time.

use sqlx::Row;

use super::{Store, StoreError};
use crate::model::instance::Status;
use crate::model::timeline::TimelineBucket;
use crate::model::to_time;

impl Store {
    /// `buckets` spans of `bucket_ms` each, the first starting at `from` (milliseconds since the
    /// epoch): how many instances created in each are now in each state. Empty spans are listed.
    pub async fn instance_timeline(
        &self,
        from: i64,
        bucket_ms: i64,
        buckets: i64,
    ) -> Result<Vec<TimelineBucket>, StoreError> {
        const DOING: &str = "counting instances by state over time";
        let rows = sqlx::query(
            "SELECT (created_at - $1) / $2 AS bucket, status, COUNT(*) AS n FROM instances \
             WHERE created_at >= $1 AND created_at < $3 GROUP BY 1, status",
        )
        .bind(from)
        .bind(bucket_ms)
        .bind(from + bucket_ms * buckets)
        .fetch_all(&self.pool)
        .await
        .map_err(StoreError::db(DOING))?;
        let mut timeline: Vec<TimelineBucket> = (0..buckets)
            .map(|i| TimelineBucket {
                start: to_time(from + i * bucket_ms),
                end: to_time(from + (i + 1) * bucket_ms),
                counts: Status::ALL.iter().map(|status| (status.as_str().to_owned(), 0)).collect(),
            })
            .collect();
        for row in rows {
            let get = |source| StoreError::Database { doing: DOING, source };
            let bucket: i64 = row.try_get("bucket").map_err(get)?;
            let status: String = row.try_get("status").map_err(get)?;
            let n: i64 = row.try_get("n").map_err(get)?;
            let entry = usize::try_from(bucket).ok().and_then(|i| timeline.get_mut(i));
            if let Some(count) = entry.and_then(|bucket| bucket.counts.get_mut(&status)) {
                *count += n;
            }
        }
        Ok(timeline)
    }
}

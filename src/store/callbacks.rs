//! Stored callback deliveries: a POST to an instance's `Parameters.Host`, written before it
//! is sent so it survives a restart, and retried until delivered or given up.
//!
//! Several replicas may share the database, so a sender first claims a due row with
//! `claim_callback`: one conditional UPDATE that counts the attempt and moves
//! `next_attempt_at` past the send's deadline. Only one claimant's UPDATE matches; if the
//! sender dies, the row becomes due again when that lease runs out.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::Row;
use sqlx::any::AnyRow;
use utoipa::ToSchema;
use uuid::Uuid;

use super::{Store, StoreError, parse_uuid};
use crate::model::{now_millis, to_time};

const PENDING: &str = "Pending";
const DELIVERED: &str = "Delivered";
const FAILED: &str = "Failed";

/// One delivery as stored; times are epoch milliseconds.
#[derive(Debug, Clone, PartialEq)]
pub struct Callback {
    pub id: Uuid,
    pub instance_id: Uuid,
    pub url: String,
    /// The JSON body, byte for byte as it is sent (and signed).
    pub payload: String,
    /// `Pending`, `Delivered` or `Failed` (given up).
    pub status: String,
    /// Tries started so far, including one in flight.
    pub attempts: i64,
    pub next_attempt_at: i64,
    pub last_error: Option<String>,
    pub created_at: i64,
    pub delivered_at: Option<i64>,
}

/// A delivery as the API shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CallbackView {
    pub id: Uuid,
    pub url: String,
    /// `Pending`, `Delivered` or `Failed` (given up after the configured attempts).
    pub status: String,
    pub attempts: i64,
    pub last_error: Option<String>,
    /// When the next try is due; null once delivered or given up.
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub delivered_at: Option<DateTime<Utc>>,
}

impl From<&Callback> for CallbackView {
    fn from(c: &Callback) -> Self {
        CallbackView {
            id: c.id,
            url: c.url.clone(),
            status: c.status.clone(),
            attempts: c.attempts,
            last_error: c.last_error.clone(),
            next_attempt_at: (c.status == PENDING).then(|| to_time(c.next_attempt_at)),
            delivered_at: c.delivered_at.map(to_time),
        }
    }
}

const COLUMNS: &str =
    "id, instance_id, url, payload, status, attempts, next_attempt_at, last_error, created_at, delivered_at";

fn callback(row: &AnyRow) -> Result<Callback, StoreError> {
    let get = |e: sqlx::Error| StoreError::Database { doing: "reading a callback", source: e };
    Ok(Callback {
        id: parse_uuid("callback id", &row.try_get::<String, _>("id").map_err(get)?)?,
        instance_id: parse_uuid("callback instance id", &row.try_get::<String, _>("instance_id").map_err(get)?)?,
        url: row.try_get("url").map_err(get)?,
        payload: row.try_get("payload").map_err(get)?,
        status: row.try_get("status").map_err(get)?,
        attempts: row.try_get("attempts").map_err(get)?,
        next_attempt_at: row.try_get("next_attempt_at").map_err(get)?,
        last_error: row.try_get("last_error").map_err(get)?,
        created_at: row.try_get("created_at").map_err(get)?,
        delivered_at: row.try_get("delivered_at").map_err(get)?,
    })
}

/// Inserts a pending delivery on `conn`, which may be inside a transaction.
pub(super) async fn insert_callback(
    conn: &mut sqlx::AnyConnection,
    instance_id: Uuid,
    url: &str,
    payload: &serde_json::Value,
) -> Result<Uuid, StoreError> {
    let id = Uuid::new_v4();
    let now = now_millis();
    sqlx::query(
        "INSERT INTO callbacks (id, instance_id, url, payload, status, attempts, next_attempt_at, last_error, \
         created_at, delivered_at) VALUES ($1, $2, $3, $4, $5, 0, $6, NULL, $6, NULL)",
    )
    .bind(id.to_string())
    .bind(instance_id.to_string())
    .bind(url)
    .bind(payload.to_string())
    .bind(PENDING)
    .bind(now)
    .execute(&mut *conn)
    .await
    .map_err(StoreError::db("storing a callback"))?;
    Ok(id)
}

impl Store {
    /// Stores a delivery of `payload` to `url`, due at once. Wake the delivery worker after.
    pub async fn enqueue_callback(
        &self,
        instance_id: Uuid,
        url: &str,
        payload: &serde_json::Value,
    ) -> Result<Uuid, StoreError> {
        let mut conn = self.pool.acquire().await.map_err(StoreError::db("storing a callback"))?;
        insert_callback(&mut conn, instance_id, url, payload).await
    }

    /// Pending deliveries due at `now_ms`, the longest waiting first.
    pub async fn due_callbacks(&self, now_ms: i64, limit: i64) -> Result<Vec<Callback>, StoreError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM callbacks WHERE status = $1 AND next_attempt_at <= $2 \
             ORDER BY next_attempt_at, created_at LIMIT $3"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(PENDING)
            .bind(now_ms)
            .bind(limit)
            .fetch_all(&self.pool)
            .await
            .map_err(StoreError::db("listing due callbacks"))?;
        rows.iter().map(callback).collect()
    }

    /// When the next pending delivery is due (possibly in the past), if any is pending.
    pub async fn next_callback_due(&self) -> Result<Option<i64>, StoreError> {
        sqlx::query_scalar::<_, Option<i64>>("SELECT MIN(next_attempt_at) FROM callbacks WHERE status = $1")
            .bind(PENDING)
            .fetch_one(&self.pool)
            .await
            .map_err(StoreError::db("finding the next due callback"))
    }

    /// Takes `due` (as `due_callbacks` returned it) for one try: counts the attempt and
    /// moves its due time to `lease_until`, so no other sender takes it meanwhile. Returns
    /// the row as claimed, or `None` when someone else changed it first.
    pub async fn claim_callback(&self, due: &Callback, lease_until: i64) -> Result<Option<Callback>, StoreError> {
        let done = sqlx::query(
            "UPDATE callbacks SET attempts = attempts + 1, next_attempt_at = $1 \
             WHERE id = $2 AND status = $3 AND next_attempt_at = $4 AND attempts = $5",
        )
        .bind(lease_until)
        .bind(due.id.to_string())
        .bind(PENDING)
        .bind(due.next_attempt_at)
        .bind(due.attempts)
        .execute(&self.pool)
        .await
        .map_err(StoreError::db("claiming a callback"))?;
        Ok((done.rows_affected() == 1).then(|| Callback {
            attempts: due.attempts + 1,
            next_attempt_at: lease_until,
            ..due.clone()
        }))
    }

    /// Records that delivery `id` was accepted by the receiver at `now` (epoch ms).
    pub async fn callback_delivered(&self, id: Uuid, now: i64) -> Result<(), StoreError> {
        sqlx::query("UPDATE callbacks SET status = $1, delivered_at = $2 WHERE id = $3 AND status = $4")
            .bind(DELIVERED)
            .bind(now)
            .bind(id.to_string())
            .bind(PENDING)
            .execute(&self.pool)
            .await
            .map_err(StoreError::db("recording a delivered callback"))?;
        Ok(())
    }

    /// Records a failed try of delivery `id`: retried at `next_attempt_at`, or given up
    /// (status `Failed`) when it is `None`. A delivery already settled is left as it is.
    pub async fn callback_failed(&self, id: Uuid, error: &str, next_attempt_at: Option<i64>) -> Result<(), StoreError> {
        let query = match next_attempt_at {
            Some(at) => {
                sqlx::query("UPDATE callbacks SET last_error = $1, next_attempt_at = $2 WHERE id = $3 AND status = $4")
                    .bind(error)
                    .bind(at)
            }
            None => sqlx::query("UPDATE callbacks SET last_error = $1, status = $2 WHERE id = $3 AND status = $4")
                .bind(error)
                .bind(FAILED),
        };
        query
            .bind(id.to_string())
            .bind(PENDING)
            .execute(&self.pool)
            .await
            .map_err(StoreError::db("recording a failed callback"))?;
        Ok(())
    }

    /// The deliveries of one instance, oldest first.
    pub async fn callbacks_of(&self, instance_id: Uuid) -> Result<Vec<Callback>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM callbacks WHERE instance_id = $1 ORDER BY created_at, id");
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(instance_id.to_string())
            .fetch_all(&self.pool)
            .await
            .map_err(StoreError::db("listing an instance's callbacks"))?;
        rows.iter().map(callback).collect()
    }
}

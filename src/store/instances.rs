//! Stored state machine instances: their parameters, status and history fields.

use std::collections::BTreeMap;

use sqlx::Row;
use sqlx::any::AnyRow;
use uuid::Uuid;

use super::{Page, Store, StoreError, from_json, parse_uuid, to_json};
use crate::model::blob::BlobRef;
use crate::model::instance::{INITIAL_STAGE, Instance, Status};
use crate::model::limitation::Limitation;
use crate::model::{now_millis, to_time};

/// What a caller gives to start an instance.
#[derive(Debug, Clone)]
pub struct NewInstance {
    pub name: String,
    pub initial_blobs: Vec<BlobRef>,
    pub limitation: Option<Limitation>,
    pub parameters: BTreeMap<String, String>,
    pub priority: i64,
}

/// Filters of `GET /StateMachineInstance/All`; times are milliseconds, inclusive.
#[derive(Debug, Clone, Default)]
pub struct InstanceFilter {
    pub name: Option<String>,
    pub stage: Option<String>,
    /// Any of these states; empty: all.
    pub states: Vec<Status>,
    pub created_from: Option<i64>,
    pub created_to: Option<i64>,
}

const COLUMNS: &str = "id, name, status, stage, initial_blobs, limitation, parameters, priority, from_service, \
                       re_run_times, exception, execution_key, run_by, result, created_at, start_time, end_time";

fn instance(row: &AnyRow) -> Result<Instance, StoreError> {
    let get = |e: sqlx::Error| StoreError::Database { doing: "reading an instance", source: e };
    let status: String = row.try_get("status").map_err(get)?;
    let limitation: Option<String> = row.try_get("limitation").map_err(get)?;
    let result: Option<String> = row.try_get("result").map_err(get)?;
    let start: Option<i64> = row.try_get("start_time").map_err(get)?;
    let end: Option<i64> = row.try_get("end_time").map_err(get)?;
    Ok(Instance {
        id: parse_uuid("instance id", &row.try_get::<String, _>("id").map_err(get)?)?,
        name: row.try_get("name").map_err(get)?,
        status: Status::parse(&status)
            .ok_or_else(|| StoreError::Corrupt { what: "instance status", detail: status.clone() })?,
        stage: row.try_get("stage").map_err(get)?,
        started_actors: Vec::new(),
        initial_blobs: from_json("initial blobs", &row.try_get::<String, _>("initial_blobs").map_err(get)?)?,
        limitation: limitation.map(|l| from_json("instance limitation", &l)).transpose()?,
        parameters: from_json("instance parameters", &row.try_get::<String, _>("parameters").map_err(get)?)?,
        priority: row.try_get("priority").map_err(get)?,
        from_management_service: row.try_get("from_service").map_err(get)?,
        re_run_times: row.try_get("re_run_times").map_err(get)?,
        exception: row.try_get("exception").map_err(get)?,
        execution_key: row.try_get("execution_key").map_err(get)?,
        run_by: row.try_get("run_by").map_err(get)?,
        result: result.map(|r| from_json("instance result", &r)).transpose()?,
        created_at: to_time(row.try_get("created_at").map_err(get)?),
        start_time: to_time(start.unwrap_or(row.try_get("created_at").map_err(get)?)),
        end_time: end.map(to_time),
    })
}

impl Store {
    /// Stores a queued instance that will run `script` (a snapshot of its state machine).
    pub async fn create_instance(
        &self,
        new: &NewInstance,
        script: &str,
        from_service: &str,
    ) -> Result<Uuid, StoreError> {
        let id = Uuid::new_v4();
        sqlx::query(
            "INSERT INTO instances (id, name, status, stage, initial_blobs, limitation, parameters, priority, \
             from_service, re_run_times, seq, created_at, script, execution_key) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 0, $10, $11, $12, $13)",
        )
        .bind(id.to_string())
        .bind(&new.name)
        .bind(Status::Queued.as_str())
        .bind(INITIAL_STAGE)
        .bind(to_json(&new.initial_blobs))
        .bind(new.limitation.as_ref().map(to_json))
        .bind(to_json(&new.parameters))
        .bind(new.priority)
        .bind(from_service)
        .bind(crate::model::next_seq())
        .bind(now_millis())
        .bind(script)
        .bind(Uuid::new_v4().to_string())
        .execute(&self.pool)
        .await
        .map_err(StoreError::db("storing an instance"))?;
        Ok(id)
    }

    pub async fn get_instance(&self, id: Uuid) -> Result<Instance, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM instances WHERE id = $1");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await
            .map_err(StoreError::db("reading an instance"))?;
        match row {
            Some(row) => instance(&row),
            None => Err(StoreError::NotFound { kind: "instance", key: id.to_string() }),
        }
    }

    pub async fn list_instances(
        &self,
        filter: &InstanceFilter,
        page: Page,
    ) -> Result<(Vec<Instance>, i64), StoreError> {
        let mut conditions = Vec::new();
        let mut texts = Vec::new();
        let mut numbers = Vec::new();
        for (column, value) in [("name", filter.name.clone()), ("stage", filter.stage.clone())] {
            if let Some(value) = value {
                texts.push(value);
                conditions.push(format!("{column} = ${}", texts.len()));
            }
        }
        if !filter.states.is_empty() {
            let mut placeholders = Vec::new();
            for state in &filter.states {
                texts.push(state.as_str().to_owned());
                placeholders.push(format!("${}", texts.len()));
            }
            conditions.push(format!("status IN ({})", placeholders.join(", ")));
        }
        for (op, value) in [(">=", filter.created_from), ("<=", filter.created_to)] {
            if let Some(value) = value {
                numbers.push(value);
                conditions.push(format!("created_at {op} ${}", texts.len() + numbers.len()));
            }
        }
        let clause = if conditions.is_empty() { String::new() } else { format!(" WHERE {}", conditions.join(" AND ")) };
        let list_sql = format!("SELECT {COLUMNS} FROM instances{clause} ORDER BY seq DESC{}", page.sql());
        let count_sql = format!("SELECT COUNT(*) FROM instances{clause}");
        let mut list = sqlx::query(sqlx::AssertSqlSafe(list_sql));
        let mut count = sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(count_sql));
        for text in &texts {
            list = list.bind(text.clone());
            count = count.bind(text.clone());
        }
        for number in &numbers {
            list = list.bind(*number);
            count = count.bind(*number);
        }
        // An unfiltered listing's total may be an estimate (`counts.rs`); the page and the
        // total are read at once.
        let total = async {
            if conditions.is_empty() {
                return self.count("instances").await;
            }
            count.fetch_one(&self.pool).await.map_err(StoreError::db("counting instances"))
        };
        let rows = async { list.fetch_all(&self.pool).await.map_err(StoreError::db("listing instances")) };
        let (rows, total) = tokio::try_join!(rows, total)?;
        Ok((rows.iter().map(instance).collect::<Result<_, _>>()?, total))
    }

    /// How many instances have each status; every status is listed, in the order of `Status::ALL`.
    pub async fn count_instances_by_status(&self) -> Result<Vec<(Status, i64)>, StoreError> {
        let rows = sqlx::query("SELECT status, COUNT(*) AS n FROM instances GROUP BY status")
            .fetch_all(&self.pool)
            .await
            .map_err(StoreError::db("counting instances by status"))?;
        let mut counts: Vec<(Status, i64)> = Status::ALL.iter().map(|status| (*status, 0)).collect();
        for row in rows {
            let get = |e: sqlx::Error| StoreError::Database { doing: "counting instances by status", source: e };
            let status: String = row.try_get("status").map_err(get)?;
            let n: i64 = row.try_get("n").map_err(get)?;
            let status = Status::parse(&status)
                .ok_or_else(|| StoreError::Corrupt { what: "instance status", detail: status.clone() })?;
            if let Some(entry) = counts.iter_mut().find(|(s, _)| *s == status) {
                entry.1 += n;
            }
        }
        Ok(counts)
    }

    /// Removes an ended instance with its history; an unfinished one is a conflict.
    pub async fn delete_instance(&self, id: Uuid) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await.map_err(StoreError::db("deleting an instance"))?;
        let done = sqlx::query("DELETE FROM instances WHERE id = $1 AND status IN ($2, $3, $4)")
            .bind(id.to_string())
            .bind(Status::Succeeded.as_str())
            .bind(Status::Failed.as_str())
            .bind(Status::Cancelled.as_str())
            .execute(&mut *tx)
            .await
            .map_err(StoreError::db("deleting an instance"))?;
        if done.rows_affected() == 0 {
            drop(tx);
            let current = self.get_instance(id).await?;
            return Err(StoreError::Conflict(format!(
                "instance `{id}` is {}: cancel it first",
                current.status.as_str()
            )));
        }
        for table in ["instance_events", "actor_starts", "actor_logs"] {
            sqlx::query(sqlx::AssertSqlSafe(format!("DELETE FROM {table} WHERE instance_id = $1")))
                .bind(id.to_string())
                .execute(&mut *tx)
                .await
                .map_err(StoreError::db("deleting an instance's history"))?;
        }
        tx.commit().await.map_err(StoreError::db("deleting an instance"))?;
        Ok(())
    }

    /// Marks an unfinished instance Cancelled, storing the delivery of its end to `callback`
    /// (a URL and a payload) in the same transaction; a finished one is left as it is.
    pub async fn cancel_instance(
        &self,
        id: Uuid,
        callback: Option<(&str, &serde_json::Value)>,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await.map_err(StoreError::db("cancelling an instance"))?;
        let done = sqlx::query(
            "UPDATE instances SET status = $1, end_time = $2, exception = $3, run_id = NULL WHERE id = $4 AND status IN ($5, $6)",
        )
        .bind(Status::Cancelled.as_str())
        .bind(now_millis())
        .bind("cancelled by request")
        .bind(id.to_string())
        .bind(Status::Queued.as_str())
        .bind(Status::Running.as_str())
        .execute(&mut *tx)
        .await
        .map_err(StoreError::db("cancelling an instance"))?;
        if done.rows_affected() == 0 {
            drop(tx);
            let current = self.get_instance(id).await?;
            return Err(StoreError::Conflict(format!(
                "instance `{id}` has already ended ({})",
                current.status.as_str()
            )));
        }
        if let Some((url, payload)) = callback {
            super::callbacks::insert_callback(&mut tx, id, url, payload).await?;
        }
        tx.commit().await.map_err(StoreError::db("cancelling an instance"))?;
        Ok(())
    }
}

//! Instance histories and the state changes of a run: claiming a queued instance, recording
//! the script's calls and their results, finishing, re-running from a stage, recovering
//! after a crash. Every write of a run names its `run_id`, so a superseded run writes nothing.

use std::collections::BTreeMap;

use serde_json::Value;
use sqlx::Row;
use uuid::Uuid;

use super::{Store, StoreError, to_json};
use crate::model::instance::{INITIAL_STAGE, Status};
use crate::model::now_millis;
use crate::script::{ActorRecord, NewCall, RecordedCall};

/// Locks the instance row for a write of `run_id`'s run, in `tx`; false when that run is no
/// longer the instance's (re-run, cancelled, taken over). A concurrent re-run or cancel, which
/// changes the same row first, waits for this transaction, or this one for it.
async fn fence(tx: &mut sqlx::Transaction<'_, sqlx::Any>, id: &str, run_id: &str) -> Result<bool, StoreError> {
    let done =
        sqlx::query("UPDATE instances SET fence = fence + 1 WHERE id = $1 AND run_id = $2 AND status = 'Running'")
            .bind(id)
            .bind(run_id)
            .execute(&mut **tx)
            .await
            .map_err(StoreError::db("locking an instance for its run"))?;
    Ok(done.rows_affected() == 1)
}

impl Store {
    /// The script an instance runs, fixed when it was created.
    pub async fn instance_script(&self, id: Uuid) -> Result<Option<String>, StoreError> {
        sqlx::query_scalar::<_, Option<String>>("SELECT script FROM instances WHERE id = $1")
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await
            .map_err(StoreError::db("reading an instance's script"))
            .map(Option::flatten)
    }

    /// Queued instances, most urgent first.
    pub async fn queued_instances(&self, limit: i64) -> Result<Vec<Uuid>, StoreError> {
        let ids = sqlx::query_scalar::<_, String>(sqlx::AssertSqlSafe(format!(
            "SELECT id FROM instances WHERE status = 'Queued' ORDER BY priority, seq LIMIT {limit}"
        )))
        .fetch_all(&self.pool)
        .await
        .map_err(StoreError::db("listing queued instances"))?;
        Ok(ids.iter().filter_map(|id| Uuid::parse_str(id).ok()).collect())
    }

    /// Takes a queued instance for `service`; its run writes under the instance's execution
    /// key. `None` when another service took it first.
    pub async fn claim_instance(&self, id: Uuid, service: &str) -> Result<Option<String>, StoreError> {
        let fresh = Uuid::new_v4().to_string();
        let claimed = sqlx::query_scalar::<_, String>(
            "UPDATE instances SET status = 'Running', execution_key = COALESCE(execution_key, $1), \
             run_id = COALESCE(execution_key, $1), run_by = $2, start_time = COALESCE(start_time, $3), end_time = NULL \
             WHERE id = $4 AND status = 'Queued' RETURNING run_id",
        )
        .bind(&fresh)
        .bind(service)
        .bind(now_millis())
        .bind(id.to_string())
        .fetch_optional(&self.pool)
        .await
        .map_err(StoreError::db("claiming an instance"))?;
        Ok(claimed)
    }

    /// The instance's recorded calls, in order.
    pub async fn events(&self, id: Uuid) -> Result<Vec<RecordedCall>, StoreError> {
        let rows = sqlx::query(
            "SELECT position, kind, args, result, stage, created_at FROM instance_events WHERE instance_id = $1 ORDER BY position",
        )
        .bind(id.to_string())
        .fetch_all(&self.pool)
        .await
        .map_err(StoreError::db("reading an instance's history"))?;
        rows.iter()
            .map(|row| {
                let get = |e| StoreError::Database { doing: "reading an instance's history", source: e };
                let args: String = row.try_get("args").map_err(get)?;
                let result: Option<String> = row.try_get("result").map_err(get)?;
                Ok(RecordedCall {
                    position: row.try_get("position").map_err(get)?,
                    kind: row.try_get("kind").map_err(get)?,
                    args: super::from_json("event arguments", &args)?,
                    result: result.map(|r| super::from_json("event result", &r)).transpose()?,
                    stage: row.try_get("stage").map_err(get)?,
                    created_at: row.try_get("created_at").map_err(get)?,
                })
            })
            .collect()
    }

    /// Stores a call the script made for the first time, if `run_id` is still the
    /// instance's run and the call comes right after the recorded ones. A stage change also
    /// becomes the instance's stage.
    pub async fn record_event(&self, id: Uuid, run_id: &str, call: &NewCall) -> Result<(), StoreError> {
        let now = now_millis();
        let key = id.to_string();
        let mut tx = self.pool.begin().await.map_err(StoreError::db("recording a call"))?;
        if !fence(&mut tx, &key, run_id).await? {
            return Err(StoreError::Conflict(format!("instance `{id}` is no longer run by this run")));
        }
        let next: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM instance_events WHERE instance_id = $1")
            .bind(&key)
            .fetch_one(&mut *tx)
            .await
            .map_err(StoreError::db("recording a call"))?;
        if call.position != next {
            return Err(StoreError::Conflict(format!(
                "instance `{id}`: call #{} would not follow the {next} recorded ones",
                call.position + 1
            )));
        }
        sqlx::query(
            "INSERT INTO instance_events (instance_id, position, kind, args, result, stage, created_at, finished_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&key)
        .bind(call.position)
        .bind(call.kind)
        .bind(to_json(&call.args))
        .bind(call.result.as_ref().map(to_json))
        .bind(call.stage.clone())
        .bind(now)
        .bind(call.result.as_ref().map(|_| now))
        .execute(&mut *tx)
        .await
        .map_err(StoreError::db("recording a call"))?;
        if call.kind == "set_stage"
            && let Some(stage) = call.args.get("stage").and_then(Value::as_str)
        {
            sqlx::query("UPDATE instances SET stage = $1 WHERE id = $2")
                .bind(stage)
                .bind(&key)
                .execute(&mut *tx)
                .await
                .map_err(StoreError::db("updating an instance's stage"))?;
        }
        tx.commit().await.map_err(StoreError::db("recording a call"))?;
        Ok(())
    }

    /// Gives a pending call its result, if `run_id` is still the instance's run.
    pub async fn complete_event(
        &self,
        id: Uuid,
        run_id: &str,
        position: i64,
        result: &Value,
    ) -> Result<bool, StoreError> {
        let key = id.to_string();
        let mut tx = self.pool.begin().await.map_err(StoreError::db("recording a call's result"))?;
        if !fence(&mut tx, &key, run_id).await? {
            return Ok(false);
        }
        let done = sqlx::query(
            "UPDATE instance_events SET result = $1, finished_at = $2 \
             WHERE instance_id = $3 AND position = $4 AND result IS NULL",
        )
        .bind(to_json(result))
        .bind(now_millis())
        .bind(&key)
        .bind(position)
        .execute(&mut *tx)
        .await
        .map_err(StoreError::db("recording a call's result"))?;
        if done.rows_affected() != 1 {
            return Ok(false);
        }
        tx.commit().await.map_err(StoreError::db("recording a call's result"))?;
        Ok(true)
    }

    /// Marks whether `run_id`'s run is evaluating the script: a crash then may be the
    /// script's doing, and counts against its re-runs.
    pub async fn set_replaying(&self, id: Uuid, run_id: &str, replaying: bool) -> Result<(), StoreError> {
        sqlx::query("UPDATE instances SET replaying = $1 WHERE id = $2 AND run_id = $3")
            .bind(i64::from(replaying))
            .bind(id.to_string())
            .bind(run_id)
            .execute(&self.pool)
            .await
            .map_err(StoreError::db("marking an instance's evaluation"))?;
        Ok(())
    }

    /// Of `ids` (runs of this process, by instance → run id), those whose run is no longer
    /// current: re-run, cancelled or taken over by another process.
    pub async fn superseded_runs(&self, runs: &[(Uuid, String)]) -> Result<Vec<Uuid>, StoreError> {
        let mut superseded = Vec::new();
        for chunk in runs.chunks(200) {
            let placeholders: Vec<String> = (1..=chunk.len()).map(|i| format!("${i}")).collect();
            let sql = format!("SELECT id, run_id, status FROM instances WHERE id IN ({})", placeholders.join(", "));
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
            for (id, _) in chunk {
                query = query.bind(id.to_string());
            }
            let rows = query.fetch_all(&self.pool).await.map_err(StoreError::db("checking runs are current"))?;
            for (id, run_id) in chunk {
                let current = rows.iter().any(|row| {
                    row.try_get::<String, _>("id").ok().as_deref() == Some(&id.to_string())
                        && row.try_get::<Option<String>, _>("run_id").ok().flatten().as_deref() == Some(run_id)
                        && row.try_get::<String, _>("status").ok().as_deref() == Some("Running")
                });
                if !current {
                    superseded.push(*id);
                }
            }
        }
        Ok(superseded)
    }

    /// Ends a run with its outcome, and stores the delivery of its end to `callback` (a URL
    /// and a payload) in the same transaction; false when the run was superseded or cancelled.
    pub async fn finish_instance(
        &self,
        id: Uuid,
        run_id: &str,
        status: Status,
        result: Option<&Value>,
        exception: Option<&str>,
        callback: Option<(&str, &Value)>,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await.map_err(StoreError::db("finishing an instance"))?;
        let done = sqlx::query(
            "UPDATE instances SET status = $1, result = $2, exception = $3, end_time = $4, replaying = 0 \
             WHERE id = $5 AND run_id = $6 AND status = 'Running'",
        )
        .bind(status.as_str())
        .bind(result.map(to_json))
        .bind(exception)
        .bind(now_millis())
        .bind(id.to_string())
        .bind(run_id)
        .execute(&mut *tx)
        .await
        .map_err(StoreError::db("finishing an instance"))?;
        if done.rows_affected() != 1 {
            return Ok(false);
        }
        if let Some((url, payload)) = callback {
            super::callbacks::insert_callback(&mut tx, id, url, payload).await?;
        }
        tx.commit().await.map_err(StoreError::db("finishing an instance"))?;
        Ok(true)
    }

    /// Puts a run back in the queue without counting a re-run (a clean shutdown).
    pub async fn requeue_instance(&self, id: Uuid, run_id: &str) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE instances SET status = 'Queued', run_id = NULL, execution_key = $1, replaying = 0 \
             WHERE id = $2 AND run_id = $3 AND status = 'Running'",
        )
        .bind(Uuid::new_v4().to_string())
        .bind(id.to_string())
        .bind(run_id)
        .execute(&self.pool)
        .await
        .map_err(StoreError::db("requeueing an instance"))?;
        Ok(())
    }

    /// Discards the record from the first time `stage` was entered on (all of it for
    /// `Start`), changes `parameters` (`None` values remove a key), and queues the instance
    /// to continue from there under a new execution key, which it returns. What came before
    /// the stage is kept. A stage never reached is a conflict, and then nothing is written.
    pub async fn rerun_from_stage(
        &self,
        id: Uuid,
        stage: &str,
        parameters: Option<&BTreeMap<String, Option<String>>>,
    ) -> Result<String, StoreError> {
        let mut instance = self.get_instance(id).await?;
        for (key, value) in parameters.into_iter().flatten() {
            match value {
                Some(value) => instance.parameters.insert(key.clone(), value.clone()),
                None => instance.parameters.remove(key),
            };
        }
        let key = id.to_string();
        let execution_key = Uuid::new_v4().to_string();
        let mut tx = self.pool.begin().await.map_err(StoreError::db("re-running an instance"))?;
        // The row changes first: the old run's writes, fenced on it, stop here, and this
        // transaction waits for one already under way.
        sqlx::query(
            "UPDATE instances SET status = 'Queued', run_id = NULL, execution_key = $1, stage = $2, parameters = $3, \
             result = NULL, exception = NULL, end_time = NULL, replaying = 0 WHERE id = $4",
        )
        .bind(&execution_key)
        .bind(stage)
        .bind(to_json(&instance.parameters))
        .bind(&key)
        .execute(&mut *tx)
        .await
        .map_err(StoreError::db("re-running an instance"))?;
        let start = if stage == INITIAL_STAGE {
            0
        } else {
            let found: Option<i64> = sqlx::query_scalar(
                "SELECT MIN(position) FROM instance_events WHERE instance_id = $1 AND kind = 'set_stage' AND args = $2",
            )
            .bind(&key)
            .bind(to_json(&serde_json::json!({"stage": stage})))
            .fetch_one(&mut *tx)
            .await
            .map_err(StoreError::db("finding where a stage began"))?;
            // Dropping the transaction undoes the change of the row: nothing is written.
            found.ok_or_else(|| StoreError::Conflict(format!("instance `{id}` never reached stage `{stage}`")))?
        };
        for table in ["instance_events", "actor_starts"] {
            sqlx::query(sqlx::AssertSqlSafe(format!("DELETE FROM {table} WHERE instance_id = $1 AND position >= $2")))
                .bind(&key)
                .bind(start)
                .execute(&mut *tx)
                .await
                .map_err(StoreError::db("discarding an instance's history"))?;
        }
        tx.commit().await.map_err(StoreError::db("re-running an instance"))?;
        Ok(execution_key)
    }

    /// Notes that actor `index` of the call at `position` has its container on `node`.
    pub async fn actor_started(
        &self,
        id: Uuid,
        position: i64,
        index: usize,
        node: &str,
        container: &str,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO actor_starts (instance_id, position, idx, node, container, started_at) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (instance_id, position, idx) \
             DO UPDATE SET node = $4, container = $5, started_at = $6",
        )
        .bind(id.to_string())
        .bind(position)
        .bind(index as i64)
        .bind(node)
        .bind(container)
        .bind(now_millis())
        .execute(&self.pool)
        .await
        .map_err(StoreError::db("recording an actor's container"))?;
        Ok(())
    }

    /// Keeps the record of actor `index` of the pending call at `position` as soon as it ended,
    /// so that a run that continues the call after a crash does not run it again.
    pub async fn actor_ended(
        &self,
        id: Uuid,
        run_id: &str,
        position: i64,
        index: usize,
        record: &ActorRecord,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await.map_err(StoreError::db("recording an ended actor"))?;
        // A superseded run must not leave a record for the call its successor makes anew.
        if !fence(&mut tx, &id.to_string(), run_id).await? {
            return Ok(false);
        }
        sqlx::query(
            "INSERT INTO actor_starts (instance_id, position, idx, node, container, started_at, record) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (instance_id, position, idx) DO UPDATE SET record = $7",
        )
        .bind(id.to_string())
        .bind(position)
        .bind(index as i64)
        .bind(record.node.clone().unwrap_or_default())
        .bind(record.container.clone().unwrap_or_default())
        .bind(record.start_time)
        .bind(to_json(record))
        .execute(&mut *tx)
        .await
        .map_err(StoreError::db("recording an ended actor"))?;
        tx.commit().await.map_err(StoreError::db("recording an ended actor"))?;
        Ok(true)
    }

    /// The records of the actors of the pending call at `position` that have already ended.
    pub async fn ended_actors(&self, id: Uuid, position: i64) -> Result<Vec<(usize, ActorRecord)>, StoreError> {
        let rows = sqlx::query(
            "SELECT idx, record FROM actor_starts WHERE instance_id = $1 AND position = $2 AND record IS NOT NULL",
        )
        .bind(id.to_string())
        .bind(position)
        .fetch_all(&self.pool)
        .await
        .map_err(StoreError::db("reading ended actors"))?;
        rows.iter()
            .map(|row| {
                let get = |e| StoreError::Database { doing: "reading ended actors", source: e };
                let index: i64 = row.try_get("idx").map_err(get)?;
                let record: String = row.try_get("record").map_err(get)?;
                Ok((usize::try_from(index).unwrap_or(usize::MAX), super::from_json("actor record", &record)?))
            })
            .collect()
    }
}

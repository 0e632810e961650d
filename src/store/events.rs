//! Instance histories and the state changes of a run: claiming a queued instance, recording
//! the script's calls and their results, finishing, re-running from a stage, recovering
//! after a crash. Every write of a run names its `run_id`, so a superseded run writes nothing.

use std::collections::BTreeMap;

use serde_json::Value;
use sqlx::Row;
use uuid::Uuid;

use super::{Store, StoreError, to_json};
use crate::model::instance::{ActorInfo, ActorState, INITIAL_STAGE, Instance, Status};
use crate::model::{now_millis, to_time};
use crate::script::{ActorRecord, NewCall, RecordedCall};

/// What recovery at start-up did.
#[derive(Debug, Default, PartialEq)]
pub struct Recovered {
    pub requeued: Vec<Uuid>,
    pub exhausted: Vec<Uuid>,
}

/// Re-runs after a crash before an instance is given up.
pub const MAX_RE_RUNS: i64 = 3;

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
    /// instance's run. A stage change also becomes the instance's stage.
    pub async fn record_event(&self, id: Uuid, run_id: &str, call: &NewCall) -> Result<(), StoreError> {
        let now = now_millis();
        let mut tx = self.pool.begin().await.map_err(StoreError::db("recording a call"))?;
        let done = sqlx::query(
            "INSERT INTO instance_events (instance_id, position, kind, args, result, stage, created_at, finished_at) \
             SELECT $1, $2, $3, $4, $5, $6, $7, $8 WHERE EXISTS \
             (SELECT 1 FROM instances WHERE id = $1 AND run_id = $9 AND status = 'Running')",
        )
        .bind(id.to_string())
        .bind(call.position)
        .bind(call.kind)
        .bind(to_json(&call.args))
        .bind(call.result.as_ref().map(to_json))
        .bind(call.stage.clone())
        .bind(now)
        .bind(call.result.as_ref().map(|_| now))
        .bind(run_id)
        .execute(&mut *tx)
        .await
        .map_err(StoreError::db("recording a call"))?;
        if done.rows_affected() == 0 {
            return Err(StoreError::Conflict(format!("instance `{id}` is no longer run by this run")));
        }
        if call.kind == "set_stage"
            && let Some(stage) = call.args.get("stage").and_then(Value::as_str)
        {
            sqlx::query("UPDATE instances SET stage = $1 WHERE id = $2")
                .bind(stage)
                .bind(id.to_string())
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
        let done = sqlx::query(
            "UPDATE instance_events SET result = $1, finished_at = $2 \
             WHERE instance_id = $3 AND position = $4 AND result IS NULL AND EXISTS \
             (SELECT 1 FROM instances WHERE id = $3 AND run_id = $5 AND status = 'Running')",
        )
        .bind(to_json(result))
        .bind(now_millis())
        .bind(id.to_string())
        .bind(position)
        .bind(run_id)
        .execute(&self.pool)
        .await
        .map_err(StoreError::db("recording a call's result"))?;
        Ok(done.rows_affected() == 1)
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
            "UPDATE instances SET status = $1, result = $2, exception = $3, end_time = $4 \
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
            "UPDATE instances SET status = 'Queued', run_id = NULL, execution_key = $1 \
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
        let start = if stage == INITIAL_STAGE {
            0
        } else {
            self.events(id)
                .await?
                .iter()
                .find(|e| e.kind == "set_stage" && e.args.get("stage").and_then(Value::as_str) == Some(stage))
                .map(|e| e.position)
                .ok_or_else(|| StoreError::Conflict(format!("instance `{id}` never reached stage `{stage}`")))?
        };
        for (key, value) in parameters.into_iter().flatten() {
            match value {
                Some(value) => instance.parameters.insert(key.clone(), value.clone()),
                None => instance.parameters.remove(key),
            };
        }
        let execution_key = Uuid::new_v4().to_string();
        let mut tx = self.pool.begin().await.map_err(StoreError::db("re-running an instance"))?;
        for table in ["instance_events", "actor_starts"] {
            sqlx::query(sqlx::AssertSqlSafe(format!("DELETE FROM {table} WHERE instance_id = $1 AND position >= $2")))
                .bind(id.to_string())
                .bind(start)
                .execute(&mut *tx)
                .await
                .map_err(StoreError::db("discarding an instance's history"))?;
        }
        sqlx::query(
            "UPDATE instances SET status = 'Queued', run_id = NULL, execution_key = $1, stage = $2, parameters = $3, \
             result = NULL, exception = NULL, end_time = NULL WHERE id = $4",
        )
        .bind(&execution_key)
        .bind(stage)
        .bind(to_json(&instance.parameters))
        .bind(id.to_string())
        .execute(&mut *tx)
        .await
        .map_err(StoreError::db("re-running an instance"))?;
        tx.commit().await.map_err(StoreError::db("re-running an instance"))?;
        Ok(execution_key)
    }

    /// At start-up: instances this service was running when it died go back to the queue,
    /// or fail once they have been re-run `MAX_RE_RUNS` times.
    pub async fn recover_instances(&self, service: &str) -> Result<Recovered, StoreError> {
        let rows = sqlx::query("SELECT id, re_run_times FROM instances WHERE status = 'Running' AND run_by = $1")
            .bind(service)
            .fetch_all(&self.pool)
            .await
            .map_err(StoreError::db("finding interrupted instances"))?;
        let mut recovered = Recovered::default();
        for row in rows {
            let get = |e| StoreError::Database { doing: "finding interrupted instances", source: e };
            let id: String = row.try_get("id").map_err(get)?;
            let times: i64 = row.try_get("re_run_times").map_err(get)?;
            let uuid = super::parse_uuid("instance id", &id)?;
            if times >= MAX_RE_RUNS {
                sqlx::query(
                    "UPDATE instances SET status = 'Failed', run_id = NULL, exception = $1, end_time = $2 WHERE id = $3",
                )
                .bind(format!("re-run times exhausted: interrupted {} times", times + 1))
                .bind(now_millis())
                .bind(&id)
                .execute(&self.pool)
                .await
                .map_err(StoreError::db("failing an interrupted instance"))?;
                recovered.exhausted.push(uuid);
            } else {
                sqlx::query(
                    "UPDATE instances SET status = 'Queued', run_id = NULL, execution_key = $1, re_run_times = $2 \
                     WHERE id = $3",
                )
                .bind(Uuid::new_v4().to_string())
                .bind(times + 1)
                .bind(&id)
                .execute(&self.pool)
                .await
                .map_err(StoreError::db("requeueing an interrupted instance"))?;
                recovered.requeued.push(uuid);
            }
        }
        Ok(recovered)
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

    /// The actors `instance` asked for, in JoyOI's shape: ended ones from their records; of a
    /// call still pending, those with a container as Running and the others as Queued for a
    /// node, or as Cancelled when the instance ended without them. Every one carries the time
    /// it was asked for as its start.
    pub async fn started_actors(&self, instance: &Instance) -> Result<Vec<ActorInfo>, StoreError> {
        let id = instance.id;
        let mut actors = Vec::new();
        for event in self.events(id).await? {
            if event.kind != "run_actor" && event.kind != "run_actors" {
                continue;
            }
            if let Some(result) = &event.result {
                let records: Vec<ActorRecord> = serde_json::from_value(result["actors"].clone())
                    .map_err(|e| StoreError::Corrupt { what: "actor record", detail: e.to_string() })?;
                actors.extend(records.into_iter().map(actor_info));
                continue;
            }
            let starts = self.actor_starts(id, event.position).await?;
            for (index, spec) in event.args["actors"].as_array().into_iter().flatten().enumerate() {
                let started = starts.iter().find(|s| s.0 == index as i64);
                let state = match started {
                    _ if instance.status.is_finished() => ActorState::Cancelled,
                    Some(_) => ActorState::Running,
                    None => ActorState::Queued,
                };
                actors.push(ActorInfo {
                    name: spec["actor"].as_str().unwrap_or_default().to_owned(),
                    start_time: to_time(event.created_at),
                    end_time: if state == ActorState::Cancelled { instance.end_time } else { None },
                    inputs: serde_json::from_value(spec["inputs"].clone()).unwrap_or_default(),
                    outputs: Vec::new(),
                    exceptions: Vec::new(),
                    status: state,
                    stage: event.stage.clone(),
                    tag: spec["tag"].as_str().map(str::to_owned),
                    used_node: started.map(|s| s.1.clone()),
                    used_container: started.map(|s| s.2.clone()),
                });
            }
        }
        Ok(actors)
    }

    /// (index, node, container) of the actors of a pending call that have a container.
    async fn actor_starts(&self, id: Uuid, position: i64) -> Result<Vec<(i64, String, String)>, StoreError> {
        let rows =
            sqlx::query("SELECT idx, node, container FROM actor_starts WHERE instance_id = $1 AND position = $2")
                .bind(id.to_string())
                .bind(position)
                .fetch_all(&self.pool)
                .await
                .map_err(StoreError::db("reading which actors have a container"))?;
        rows.iter()
            .map(|row| {
                let get = |e| StoreError::Database { doing: "reading which actors have a container", source: e };
                Ok((
                    row.try_get("idx").map_err(get)?,
                    row.try_get("node").map_err(get)?,
                    row.try_get("container").map_err(get)?,
                ))
            })
            .collect()
    }
}

fn actor_info(record: ActorRecord) -> ActorInfo {
    ActorInfo {
        name: record.name,
        start_time: to_time(record.start_time),
        end_time: Some(to_time(record.end_time)),
        inputs: record.inputs,
        outputs: record.outputs,
        exceptions: record.exception.into_iter().collect(),
        status: ActorState::parse(&record.status),
        stage: record.stage,
        tag: record.tag,
        used_node: record.node,
        used_container: record.container,
    }
}

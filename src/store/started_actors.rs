//! The actors instances asked for, in JoyOI's shape (`startedActors`), read for a whole page of
//! instances at once: ended ones from their calls' records (or, for a call still pending, from
//! the ended actor's own record); of a pending call, those with a container as Running, the
//! others as Queued for a node, or as Cancelled when the instance ended without them. Every
//! one carries the time it was asked for as its start.

use std::collections::HashMap;

use serde_json::Value;
use sqlx::Row;
use uuid::Uuid;

use super::{Store, StoreError};
use crate::model::instance::{ActorInfo, ActorState, Instance};
use crate::model::to_time;
use crate::script::ActorRecord;

/// Instances read per query, so that the parameter list stays small on both databases.
const CHUNK: usize = 200;

/// One `run_actor(s)` call of an instance.
struct Call {
    position: i64,
    args: Value,
    result: Option<Value>,
    stage: Option<String>,
    created_at: i64,
}

/// What `actor_starts` says of one actor of a pending call.
#[derive(Default)]
struct Start {
    node: String,
    container: String,
    record: Option<ActorRecord>,
}

impl Store {
    /// The actors `instance` asked for.
    pub async fn started_actors(&self, instance: &Instance) -> Result<Vec<ActorInfo>, StoreError> {
        let mut one = [instance.clone()];
        self.fill_started_actors(&mut one).await?;
        let [filled] = one;
        Ok(filled.started_actors)
    }

    /// Sets `started_actors` of every instance, with two queries per 200 instances.
    pub async fn fill_started_actors(&self, instances: &mut [Instance]) -> Result<(), StoreError> {
        for chunk in instances.chunks_mut(CHUNK) {
            let ids: Vec<String> = chunk.iter().map(|i| i.id.to_string()).collect();
            let (mut calls, mut starts) = tokio::try_join!(self.actor_calls(&ids), self.starts(&ids))?;
            for instance in chunk.iter_mut() {
                let calls = calls.remove(&instance.id).unwrap_or_default();
                let starts = starts.remove(&instance.id).unwrap_or_default();
                instance.started_actors = actors_of(instance, &calls, &starts)?;
            }
        }
        Ok(())
    }

    async fn actor_calls(&self, ids: &[String]) -> Result<HashMap<Uuid, Vec<Call>>, StoreError> {
        let sql = format!(
            "SELECT instance_id, position, args, result, stage, created_at FROM instance_events \
             WHERE instance_id IN ({}) AND kind IN ('run_actor', 'run_actors') ORDER BY position",
            placeholders(ids.len())
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for id in ids {
            query = query.bind(id.clone());
        }
        let rows = query.fetch_all(&self.pool).await.map_err(StoreError::db("reading instances' actors"))?;
        let mut calls: HashMap<Uuid, Vec<Call>> = HashMap::new();
        for row in rows {
            let get = |e| StoreError::Database { doing: "reading instances' actors", source: e };
            let id = super::parse_uuid("instance id", &row.try_get::<String, _>("instance_id").map_err(get)?)?;
            let result: Option<String> = row.try_get("result").map_err(get)?;
            calls.entry(id).or_default().push(Call {
                position: row.try_get("position").map_err(get)?,
                args: super::from_json("event arguments", &row.try_get::<String, _>("args").map_err(get)?)?,
                result: result.map(|r| super::from_json("event result", &r)).transpose()?,
                stage: row.try_get("stage").map_err(get)?,
                created_at: row.try_get("created_at").map_err(get)?,
            });
        }
        Ok(calls)
    }

    async fn starts(&self, ids: &[String]) -> Result<HashMap<Uuid, HashMap<(i64, i64), Start>>, StoreError> {
        let sql = format!(
            "SELECT instance_id, position, idx, node, container, record FROM actor_starts WHERE instance_id IN ({})",
            placeholders(ids.len())
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for id in ids {
            query = query.bind(id.clone());
        }
        let rows = query.fetch_all(&self.pool).await.map_err(StoreError::db("reading which actors run"))?;
        let mut starts: HashMap<Uuid, HashMap<(i64, i64), Start>> = HashMap::new();
        for row in rows {
            let get = |e| StoreError::Database { doing: "reading which actors run", source: e };
            let id = super::parse_uuid("instance id", &row.try_get::<String, _>("instance_id").map_err(get)?)?;
            let record: Option<String> = row.try_get("record").map_err(get)?;
            let key = (row.try_get("position").map_err(get)?, row.try_get("idx").map_err(get)?);
            let start = Start {
                node: row.try_get("node").map_err(get)?,
                container: row.try_get("container").map_err(get)?,
                record: record.map(|r| super::from_json("actor record", &r)).transpose()?,
            };
            starts.entry(id).or_default().insert(key, start);
        }
        Ok(starts)
    }
}

fn placeholders(count: usize) -> String {
    (1..=count).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ")
}

fn actors_of(
    instance: &Instance,
    calls: &[Call],
    starts: &HashMap<(i64, i64), Start>,
) -> Result<Vec<ActorInfo>, StoreError> {
    let mut actors = Vec::new();
    for call in calls {
        if let Some(result) = &call.result {
            let records: Vec<ActorRecord> = serde_json::from_value(result["actors"].clone())
                .map_err(|e| StoreError::Corrupt { what: "actor record", detail: e.to_string() })?;
            actors.extend(records.into_iter().map(actor_info));
            continue;
        }
        for (index, spec) in call.args["actors"].as_array().into_iter().flatten().enumerate() {
            let start = starts.get(&(call.position, index as i64));
            if let Some(record) = start.and_then(|s| s.record.clone()) {
                actors.push(actor_info(record));
                continue;
            }
            let state = match start {
                _ if instance.status.is_finished() => ActorState::Cancelled,
                Some(_) => ActorState::Running,
                None => ActorState::Queued,
            };
            actors.push(ActorInfo {
                name: spec["actor"].as_str().unwrap_or_default().to_owned(),
                start_time: to_time(call.created_at),
                end_time: if state == ActorState::Cancelled { instance.end_time } else { None },
                inputs: serde_json::from_value(spec["inputs"].clone()).unwrap_or_default(),
                outputs: Vec::new(),
                exceptions: Vec::new(),
                status: state,
                stage: call.stage.clone(),
                tag: spec["tag"].as_str().map(str::to_owned),
                used_node: start.map(|s| s.node.clone()),
                used_container: start.map(|s| s.container.clone()),
            });
        }
    }
    Ok(actors)
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

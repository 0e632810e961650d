//! Actors' logs: one row per actor run with its stdout and stderr lines, read back by
//! instance, optionally by actor and tag, and after a cursor for following.

use sqlx::Row;
use sqlx::any::AnyRow;
use uuid::Uuid;

use super::{Store, StoreError, from_json, to_json};
use crate::model::log::{ActorLog, ContainerLog};

/// An actor run's log to keep.
#[derive(Debug, Clone)]
pub struct NewActorLog<'a> {
    pub instance_id: Uuid,
    pub actor: &'a str,
    pub tag: Option<&'a str>,
    pub node: &'a str,
    pub container: &'a str,
    pub state: &'a str,
    pub started_at: i64,
    pub ended_at: i64,
    pub log: &'a ContainerLog,
}

/// Which logs of an instance to read.
#[derive(Debug, Clone, Default)]
pub struct LogFilter {
    pub actor: Option<String>,
    pub tag: Option<String>,
    /// Only records with a cursor above this.
    pub after: Option<i64>,
}

fn actor_log(row: &AnyRow) -> Result<ActorLog, StoreError> {
    let get = |e: sqlx::Error| StoreError::Database { doing: "reading an actor's log", source: e };
    let log: String = row.try_get("log").map_err(get)?;
    Ok(ActorLog {
        cursor: row.try_get("seq").map_err(get)?,
        actor: row.try_get("actor").map_err(get)?,
        tag: row.try_get("tag").map_err(get)?,
        node: row.try_get("node").map_err(get)?,
        container: row.try_get("container").map_err(get)?,
        state: row.try_get("state").map_err(get)?,
        started_at: row.try_get("started_at").map_err(get)?,
        ended_at: row.try_get("ended_at").map_err(get)?,
        log: from_json("actor log", &log)?,
    })
}

impl Store {
    pub async fn put_actor_log(&self, entry: &NewActorLog<'_>) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO actor_logs (instance_id, seq, actor, tag, node, container, state, started_at, ended_at, log) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(entry.instance_id.to_string())
        .bind(crate::model::next_seq())
        .bind(entry.actor)
        .bind(entry.tag)
        .bind(entry.node)
        .bind(entry.container)
        .bind(entry.state)
        .bind(entry.started_at)
        .bind(entry.ended_at)
        .bind(to_json(entry.log))
        .execute(&self.pool)
        .await
        .map_err(StoreError::db("storing an actor's log"))?;
        Ok(())
    }

    /// The instance's actor logs matching `filter`, in the order the actors ended.
    pub async fn actor_logs(&self, instance_id: Uuid, filter: &LogFilter) -> Result<Vec<ActorLog>, StoreError> {
        let mut sql = String::from(
            "SELECT seq, actor, tag, node, container, state, started_at, ended_at, log FROM actor_logs \
             WHERE instance_id = $1 AND seq > $2",
        );
        if filter.actor.is_some() {
            sql.push_str(" AND actor = $3");
        }
        if filter.tag.is_some() {
            sql.push_str(if filter.actor.is_some() { " AND tag = $4" } else { " AND tag = $3" });
        }
        sql.push_str(" ORDER BY seq");
        let mut query =
            sqlx::query(sqlx::AssertSqlSafe(sql)).bind(instance_id.to_string()).bind(filter.after.unwrap_or(-1));
        for value in [&filter.actor, &filter.tag].into_iter().flatten() {
            query = query.bind(value.clone());
        }
        let rows = query.fetch_all(&self.pool).await.map_err(StoreError::db("reading actors' logs"))?;
        rows.iter().map(actor_log).collect()
    }
}

//! Service processes sharing the database: each registers under its own identity and keeps a
//! heartbeat; one whose heartbeat is older than the lease is dead, and exactly one live process
//! takes its work over: its running instances go back to the queue, its node slots and waits
//! are freed.

use sqlx::Row;
use uuid::Uuid;

use super::{Store, StoreError};
use crate::model::now_millis;

/// Interruptions an instance survives when it was evaluating its script each time, before it
/// is failed: only then is the instance the likely cause of the crash.
pub const MAX_SUSPECT_RUNS: i64 = 3;

/// What taking over a dead process did to its instances.
#[derive(Debug, Default, PartialEq)]
pub struct Recovered {
    /// Back in the queue, to continue where they were.
    pub requeued: Vec<Uuid>,
    /// Failed: interrupted while evaluating their script `MAX_SUSPECT_RUNS` times.
    pub exhausted: Vec<Uuid>,
}

impl Store {
    /// Registers this process (again, if a row of the same identity is left).
    pub async fn register_process(&self, id: &str, deployment: &str, host: &str) -> Result<(), StoreError> {
        let now = now_millis();
        sqlx::query(
            "INSERT INTO processes (id, deployment, host, started_at, heartbeat_at) VALUES ($1, $2, $3, $4, $4) \
             ON CONFLICT (id) DO UPDATE SET deployment = $2, host = $3, started_at = $4, heartbeat_at = $4",
        )
        .bind(id)
        .bind(deployment)
        .bind(host)
        .bind(now)
        .execute(&self.pool)
        .await
        .map_err(StoreError::db("registering this process"))?;
        Ok(())
    }

    /// Renews this process's heartbeat; false when its row is gone (another process took it
    /// for dead), and then it is registered anew.
    pub async fn heartbeat(&self, id: &str, deployment: &str, host: &str) -> Result<bool, StoreError> {
        let done = sqlx::query("UPDATE processes SET heartbeat_at = $1 WHERE id = $2")
            .bind(now_millis())
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(StoreError::db("renewing this process's heartbeat"))?;
        if done.rows_affected() == 1 {
            return Ok(true);
        }
        self.register_process(id, deployment, host).await?;
        Ok(false)
    }

    /// Removes this process's row, slots and waits at a clean stop.
    pub async fn unregister_process(&self, id: &str) -> Result<(), StoreError> {
        for table in ["node_slots", "actor_waits"] {
            sqlx::query(sqlx::AssertSqlSafe(format!("DELETE FROM {table} WHERE process = $1")))
                .bind(id)
                .execute(&self.pool)
                .await
                .map_err(StoreError::db("releasing this process's slots"))?;
        }
        sqlx::query("DELETE FROM processes WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(StoreError::db("unregistering this process"))?;
        Ok(())
    }

    /// Identities of the processes whose heartbeat is at `since` or later.
    pub async fn live_processes(&self, since: i64) -> Result<Vec<String>, StoreError> {
        sqlx::query_scalar::<_, String>("SELECT id FROM processes WHERE heartbeat_at >= $1")
            .bind(since)
            .fetch_all(&self.pool)
            .await
            .map_err(StoreError::db("listing live processes"))
    }

    /// Processes that run instances or hold slots but have no heartbeat at `since` or later
    /// (their row is stale or gone), other than `me`.
    pub async fn dead_processes(&self, since: i64, me: &str) -> Result<Vec<String>, StoreError> {
        let rows = sqlx::query(
            "SELECT id AS p FROM processes WHERE heartbeat_at < $1 AND id <> $2 \
             UNION SELECT run_by AS p FROM instances WHERE status = 'Running' AND run_by IS NOT NULL AND run_by <> $2 \
               AND run_by NOT IN (SELECT id FROM processes WHERE heartbeat_at >= $1) \
             UNION SELECT process AS p FROM node_slots WHERE process <> $2 \
               AND process NOT IN (SELECT id FROM processes WHERE heartbeat_at >= $1)",
        )
        .bind(since)
        .bind(me)
        .fetch_all(&self.pool)
        .await
        .map_err(StoreError::db("finding dead processes"))?;
        rows.iter().map(|row| row.try_get::<String, _>("p").map_err(StoreError::db("finding dead processes"))).collect()
    }

    /// Takes the work of `dead` over, unless it has beaten since `since` (then it is alive and
    /// nothing is touched). Its running instances are queued again (a re-run; also a suspect
    /// one when it was evaluating the script), or failed after `MAX_SUSPECT_RUNS` suspect ones;
    /// its slots and waits are freed. Safe to race: each instance changes once.
    pub async fn take_over(&self, dead: &str, since: i64) -> Result<Recovered, StoreError> {
        let mut tx = self.pool.begin().await.map_err(StoreError::db("taking over a dead process"))?;
        // Deleting the row first serialises two takers, and a process that beat meanwhile
        // keeps its row, so it is left alone.
        sqlx::query("DELETE FROM processes WHERE id = $1 AND heartbeat_at < $2")
            .bind(dead)
            .bind(since)
            .execute(&mut *tx)
            .await
            .map_err(StoreError::db("taking over a dead process"))?;
        let alive = sqlx::query("SELECT id FROM processes WHERE id = $1")
            .bind(dead)
            .fetch_optional(&mut *tx)
            .await
            .map_err(StoreError::db("taking over a dead process"))?
            .is_some();
        if alive {
            return Ok(Recovered::default());
        }
        let rows =
            sqlx::query("SELECT id, replaying, suspect_runs FROM instances WHERE status = 'Running' AND run_by = $1")
                .bind(dead)
                .fetch_all(&mut *tx)
                .await
                .map_err(StoreError::db("finding a dead process's instances"))?;
        let mut recovered = Recovered::default();
        for row in rows {
            let get = |e| StoreError::Database { doing: "finding a dead process's instances", source: e };
            let id: String = row.try_get("id").map_err(get)?;
            let replaying: i64 = row.try_get("replaying").map_err(get)?;
            let suspect: i64 = row.try_get::<i64, _>("suspect_runs").map_err(get)? + i64::from(replaying != 0);
            let uuid = super::parse_uuid("instance id", &id)?;
            if suspect >= MAX_SUSPECT_RUNS {
                sqlx::query(
                    "UPDATE instances SET status = 'Failed', run_id = NULL, replaying = 0, suspect_runs = $1, \
                     re_run_times = re_run_times + 1, exception = $2, end_time = $3 \
                     WHERE id = $4 AND run_by = $5 AND status = 'Running'",
                )
                .bind(suspect)
                .bind(format!(
                    "re-run times exhausted: the service stopped {suspect} times while evaluating this instance's script"
                ))
                .bind(now_millis())
                .bind(&id)
                .bind(dead)
                .execute(&mut *tx)
                .await
                .map_err(StoreError::db("failing an interrupted instance"))?;
                recovered.exhausted.push(uuid);
            } else {
                sqlx::query(
                    "UPDATE instances SET status = 'Queued', run_id = NULL, execution_key = $1, replaying = 0, \
                     suspect_runs = $2, re_run_times = re_run_times + 1 WHERE id = $3 AND run_by = $4 AND status = 'Running'",
                )
                .bind(Uuid::new_v4().to_string())
                .bind(suspect)
                .bind(&id)
                .bind(dead)
                .execute(&mut *tx)
                .await
                .map_err(StoreError::db("requeueing an interrupted instance"))?;
                recovered.requeued.push(uuid);
            }
        }
        for table in ["node_slots", "actor_waits"] {
            sqlx::query(sqlx::AssertSqlSafe(format!("DELETE FROM {table} WHERE process = $1")))
                .bind(dead)
                .execute(&mut *tx)
                .await
                .map_err(StoreError::db("freeing a dead process's slots"))?;
        }
        tx.commit().await.map_err(StoreError::db("taking over a dead process"))?;
        Ok(recovered)
    }
}

//! Node slots and waiting actors, shared by every process on the database. A slot is a row
//! keyed by (node, number below the node's capacity): inserting it is taking it, so two
//! processes can never take the same one, and a node never runs more containers than its
//! capacity. Waits are listed so that a process gives way to better-placed actors of others.

use std::collections::HashMap;

use sqlx::Row;

use super::{Store, StoreError};
use crate::model::now_millis;

impl Store {
    /// Takes a free slot on `node` for `process`; the slot's number, or `None` when all
    /// `capacity` slots are taken.
    pub async fn take_slot(
        &self,
        node: &str,
        capacity: i64,
        process: &str,
        holder: &str,
    ) -> Result<Option<i64>, StoreError> {
        let taken: Vec<i64> = sqlx::query_scalar("SELECT slot FROM node_slots WHERE node = $1")
            .bind(node)
            .fetch_all(&self.pool)
            .await
            .map_err(StoreError::db("reading a node's slots"))?;
        for slot in (0..capacity).filter(|slot| !taken.contains(slot)) {
            let done = sqlx::query(
                "INSERT INTO node_slots (node, slot, process, holder, acquired_at) VALUES ($1, $2, $3, $4, $5) \
                 ON CONFLICT (node, slot) DO NOTHING",
            )
            .bind(node)
            .bind(slot)
            .bind(process)
            .bind(holder)
            .bind(now_millis())
            .execute(&self.pool)
            .await
            .map_err(StoreError::db("taking a node slot"))?;
            if done.rows_affected() == 1 {
                return Ok(Some(slot));
            }
        }
        Ok(None)
    }

    /// Gives a slot back.
    pub async fn release_slot(&self, node: &str, slot: i64, process: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM node_slots WHERE node = $1 AND slot = $2 AND process = $3")
            .bind(node)
            .bind(slot)
            .bind(process)
            .execute(&self.pool)
            .await
            .map_err(StoreError::db("releasing a node slot"))?;
        Ok(())
    }

    /// Slots taken on each node, by every process.
    pub async fn slots_taken(&self) -> Result<HashMap<String, i64>, StoreError> {
        let rows = sqlx::query("SELECT node, COUNT(*) AS n FROM node_slots GROUP BY node")
            .fetch_all(&self.pool)
            .await
            .map_err(StoreError::db("counting node slots"))?;
        rows.iter()
            .map(|row| {
                let get = |e| StoreError::Database { doing: "counting node slots", source: e };
                Ok((row.try_get("node").map_err(get)?, row.try_get("n").map_err(get)?))
            })
            .collect()
    }

    /// Lists an actor of `process` as waiting, at (`priority`, `seq`).
    pub async fn add_wait(&self, id: &str, process: &str, priority: i64, seq: i64) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO actor_waits (id, process, priority, seq) VALUES ($1, $2, $3, $4)")
            .bind(id)
            .bind(process)
            .bind(priority)
            .bind(seq)
            .execute(&self.pool)
            .await
            .map_err(StoreError::db("listing a waiting actor"))?;
        Ok(())
    }

    pub async fn remove_wait(&self, id: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM actor_waits WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(StoreError::db("removing a waiting actor"))?;
        Ok(())
    }

    /// How many actors of other live processes wait ahead of (`priority`, `seq`).
    pub async fn waits_ahead(
        &self,
        process: &str,
        priority: i64,
        seq: i64,
        live_since: i64,
    ) -> Result<i64, StoreError> {
        sqlx::query_scalar(
            "SELECT COUNT(*) FROM actor_waits w JOIN processes p ON p.id = w.process \
             WHERE w.process <> $1 AND p.heartbeat_at >= $2 AND (w.priority < $3 OR (w.priority = $3 AND w.seq < $4))",
        )
        .bind(process)
        .bind(live_since)
        .bind(priority)
        .bind(seq)
        .fetch_one(&self.pool)
        .await
        .map_err(StoreError::db("counting actors waiting ahead"))
    }
}

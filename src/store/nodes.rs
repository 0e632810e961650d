//! Registered Docker nodes, from the config file and from the API.

use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Store, StoreError, from_json, to_json};
use crate::model::node::{NodeRecord, NodeTls};
use crate::model::now_millis;

/// Changes to a node; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct NodePatch {
    pub drained: Option<bool>,
    pub capacity: Option<i64>,
    pub image: Option<String>,
}

const COLUMNS: &str = "name, address, image, capacity, drained, tls, source, created_at";

fn node(row: &AnyRow) -> Result<NodeRecord, StoreError> {
    let get = |e: sqlx::Error| StoreError::Database { doing: "reading a node", source: e };
    let tls: Option<String> = row.try_get("tls").map_err(get)?;
    Ok(NodeRecord {
        name: row.try_get("name").map_err(get)?,
        address: row.try_get("address").map_err(get)?,
        image: row.try_get("image").map_err(get)?,
        capacity: row.try_get("capacity").map_err(get)?,
        drained: row.try_get::<i64, _>("drained").map_err(get)? != 0,
        tls: tls.map(|t| from_json::<NodeTls>("node tls", &t)).transpose()?,
        source: row.try_get("source").map_err(get)?,
        created_at: row.try_get("created_at").map_err(get)?,
    })
}

impl Store {
    pub async fn list_nodes(&self) -> Result<Vec<NodeRecord>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM nodes ORDER BY created_at, name");
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .fetch_all(&self.pool)
            .await
            .map_err(StoreError::db("listing nodes"))?;
        rows.iter().map(node).collect()
    }

    pub async fn get_node(&self, name: &str) -> Result<NodeRecord, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM nodes WHERE name = $1");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(name)
            .fetch_optional(&self.pool)
            .await
            .map_err(StoreError::db("reading a node"))?;
        match row {
            Some(row) => node(&row),
            None => Err(StoreError::NotFound { kind: "node", key: name.to_owned() }),
        }
    }

    pub async fn create_node(&self, record: &NodeRecord) -> Result<(), StoreError> {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO nodes ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
        )))
        .bind(&record.name)
        .bind(&record.address)
        .bind(&record.image)
        .bind(record.capacity)
        .bind(i64::from(record.drained))
        .bind(record.tls.as_ref().map(to_json))
        .bind(&record.source)
        .bind(record.created_at)
        .execute(&self.pool)
        .await
        .map_err(StoreError::unique("node", &record.name, "registering a node"))?;
        Ok(())
    }

    /// Makes the config file's nodes present with the file's settings; keeps their drain state.
    pub async fn sync_config_node(&self, record: &NodeRecord) -> Result<(), StoreError> {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO nodes ({COLUMNS}) VALUES ($1, $2, $3, $4, 0, $5, 'config', $6) \
             ON CONFLICT (name) DO UPDATE SET address = $2, image = $3, capacity = $4, tls = $5, source = 'config'"
        )))
        .bind(&record.name)
        .bind(&record.address)
        .bind(&record.image)
        .bind(record.capacity)
        .bind(record.tls.as_ref().map(to_json))
        .bind(now_millis())
        .execute(&self.pool)
        .await
        .map_err(StoreError::db("registering a configured node"))?;
        Ok(())
    }

    pub async fn patch_node(&self, name: &str, patch: &NodePatch) -> Result<NodeRecord, StoreError> {
        let mut current = self.get_node(name).await?;
        if let Some(drained) = patch.drained {
            current.drained = drained;
        }
        if let Some(capacity) = patch.capacity {
            current.capacity = capacity;
        }
        if let Some(image) = &patch.image {
            current.image = image.clone();
        }
        sqlx::query("UPDATE nodes SET drained = $1, capacity = $2, image = $3 WHERE name = $4")
            .bind(i64::from(current.drained))
            .bind(current.capacity)
            .bind(&current.image)
            .bind(name)
            .execute(&self.pool)
            .await
            .map_err(StoreError::db("updating a node"))?;
        Ok(current)
    }

    pub async fn delete_node(&self, name: &str) -> Result<(), StoreError> {
        self.delete_by_name("nodes", "node", name).await
    }
}

//! Stored actors, unique by name.

use sqlx::Row;
use sqlx::any::AnyRow;
use uuid::Uuid;

use super::{Page, Store, StoreError, from_json, parse_uuid, to_json};
use crate::model::actor::Actor;
use crate::model::limitation::Limitation;
use crate::model::sandbox::Sandbox;
use crate::model::{now_millis, to_time};

/// The fields of an actor a caller sets; also the result of applying a patch.
#[derive(Debug, Clone)]
pub struct ActorFields {
    pub name: String,
    pub body: String,
    pub image: Option<String>,
    pub outputs: Vec<String>,
    pub limitation: Option<Limitation>,
    pub sandbox: Sandbox,
}

impl From<Actor> for ActorFields {
    fn from(a: Actor) -> Self {
        ActorFields {
            name: a.name,
            body: a.body,
            image: a.image,
            outputs: a.outputs,
            limitation: a.limitation,
            sandbox: a.sandbox,
        }
    }
}

const COLUMNS: &str = "id, name, body, image, outputs, limitation, sandbox, created_at, updated_at";

fn actor(row: &AnyRow) -> Result<Actor, StoreError> {
    let get = |e: sqlx::Error| StoreError::Database { doing: "reading an actor", source: e };
    let limitation: Option<String> = row.try_get("limitation").map_err(get)?;
    Ok(Actor {
        id: parse_uuid("actor id", &row.try_get::<String, _>("id").map_err(get)?)?,
        name: row.try_get("name").map_err(get)?,
        body: row.try_get("body").map_err(get)?,
        image: row.try_get("image").map_err(get)?,
        outputs: from_json("actor outputs", &row.try_get::<String, _>("outputs").map_err(get)?)?,
        limitation: limitation.map(|l| from_json("actor limitation", &l)).transpose()?,
        sandbox: Sandbox::parse(&row.try_get::<String, _>("sandbox").map_err(get)?).unwrap_or_default(),
        created_at: to_time(row.try_get("created_at").map_err(get)?),
        updated_at: to_time(row.try_get("updated_at").map_err(get)?),
    })
}

impl Store {
    pub async fn list_actors(&self, page: Page) -> Result<(Vec<Actor>, i64), StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM actors ORDER BY seq DESC{}", page.sql());
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .fetch_all(&self.pool)
            .await
            .map_err(StoreError::db("listing actors"))?;
        let total = self.count("actors").await?;
        Ok((rows.iter().map(actor).collect::<Result<_, _>>()?, total))
    }

    pub async fn get_actor(&self, name: &str) -> Result<Actor, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM actors WHERE name = $1");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(name)
            .fetch_optional(&self.pool)
            .await
            .map_err(StoreError::db("reading an actor"))?;
        match row {
            Some(row) => actor(&row),
            None => Err(StoreError::NotFound { kind: "actor", key: name.to_owned() }),
        }
    }

    pub async fn create_actor(&self, fields: &ActorFields) -> Result<Uuid, StoreError> {
        let id = Uuid::new_v4();
        let now = now_millis();
        sqlx::query(
            "INSERT INTO actors (id, name, body, image, outputs, limitation, sandbox, seq, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9)",
        )
        .bind(id.to_string())
        .bind(&fields.name)
        .bind(&fields.body)
        .bind(fields.image.clone())
        .bind(to_json(&fields.outputs))
        .bind(fields.limitation.as_ref().map(to_json))
        .bind(fields.sandbox.as_str())
        .bind(crate::model::next_seq())
        .bind(now)
        .execute(&self.pool)
        .await
        .map_err(StoreError::unique("actor", &fields.name, "storing an actor"))?;
        Ok(id)
    }

    /// Replaces the stored fields of actor `name` (which may be renamed).
    pub async fn update_actor(&self, name: &str, fields: &ActorFields) -> Result<(), StoreError> {
        let done = sqlx::query(
            "UPDATE actors SET name = $1, body = $2, image = $3, outputs = $4, limitation = $5, sandbox = $6, \
             updated_at = $7 WHERE name = $8",
        )
        .bind(&fields.name)
        .bind(&fields.body)
        .bind(fields.image.clone())
        .bind(to_json(&fields.outputs))
        .bind(fields.limitation.as_ref().map(to_json))
        .bind(fields.sandbox.as_str())
        .bind(now_millis())
        .bind(name)
        .execute(&self.pool)
        .await
        .map_err(StoreError::unique("actor", &fields.name, "updating an actor"))?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound { kind: "actor", key: name.to_owned() });
        }
        Ok(())
    }

    pub async fn delete_actor(&self, name: &str) -> Result<(), StoreError> {
        self.delete_by_name("actors", "actor", name).await
    }

    /// Deletes the row of `table` named `name`.
    pub(super) async fn delete_by_name(
        &self,
        table: &'static str,
        kind: &'static str,
        name: &str,
    ) -> Result<(), StoreError> {
        let done = sqlx::query(sqlx::AssertSqlSafe(format!("DELETE FROM {table} WHERE name = $1")))
            .bind(name)
            .execute(&self.pool)
            .await
            .map_err(StoreError::db("deleting a row"))?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound { kind, key: name.to_owned() });
        }
        Ok(())
    }

    /// How many rows `table` holds: exact up to `ESTIMATE_ABOVE` rows; above, on PostgreSQL,
    /// the planner's estimate, so that a listing's `X-Total-Count` never scans a large table.
    pub(super) async fn count(&self, table: &'static str) -> Result<i64, StoreError> {
        if let Some(estimate) = self.estimated_rows(table).await? {
            return Ok(estimate);
        }
        sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(format!("SELECT COUNT(*) FROM {table}")))
            .fetch_one(&self.pool)
            .await
            .map_err(StoreError::db("counting rows"))
    }
}

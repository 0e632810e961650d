//! Stored state machines, unique by name.

use sqlx::Row;
use sqlx::any::AnyRow;
use uuid::Uuid;

use super::{Page, Store, StoreError, from_json, parse_uuid, to_json};
use crate::model::limitation::Limitation;
use crate::model::state_machine::StateMachine;
use crate::model::{now_millis, to_time};

/// The fields of a state machine a caller sets.
#[derive(Debug, Clone)]
pub struct StateMachineFields {
    pub name: String,
    pub body: String,
    pub limitation: Option<Limitation>,
}

impl From<StateMachine> for StateMachineFields {
    fn from(s: StateMachine) -> Self {
        StateMachineFields { name: s.name, body: s.body, limitation: s.limitation }
    }
}

const COLUMNS: &str = "id, name, body, limitation, created_at, updated_at";

fn state_machine(row: &AnyRow) -> Result<StateMachine, StoreError> {
    let get = |e: sqlx::Error| StoreError::Database { doing: "reading a state machine", source: e };
    let limitation: Option<String> = row.try_get("limitation").map_err(get)?;
    Ok(StateMachine {
        id: parse_uuid("state machine id", &row.try_get::<String, _>("id").map_err(get)?)?,
        name: row.try_get("name").map_err(get)?,
        body: row.try_get("body").map_err(get)?,
        limitation: limitation.map(|l| from_json("state machine limitation", &l)).transpose()?,
        created_at: to_time(row.try_get("created_at").map_err(get)?),
        updated_at: to_time(row.try_get("updated_at").map_err(get)?),
    })
}

impl Store {
    pub async fn list_state_machines(&self, page: Page) -> Result<(Vec<StateMachine>, i64), StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM state_machines ORDER BY seq DESC{}", page.sql());
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .fetch_all(&self.pool)
            .await
            .map_err(StoreError::db("listing state machines"))?;
        let total = self.count("state_machines").await?;
        Ok((rows.iter().map(state_machine).collect::<Result<_, _>>()?, total))
    }

    pub async fn get_state_machine(&self, name: &str) -> Result<StateMachine, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM state_machines WHERE name = $1");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(name)
            .fetch_optional(&self.pool)
            .await
            .map_err(StoreError::db("reading a state machine"))?;
        match row {
            Some(row) => state_machine(&row),
            None => Err(StoreError::NotFound { kind: "state machine", key: name.to_owned() }),
        }
    }

    pub async fn create_state_machine(&self, fields: &StateMachineFields) -> Result<Uuid, StoreError> {
        let id = Uuid::new_v4();
        sqlx::query(
            "INSERT INTO state_machines (id, name, body, limitation, seq, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $6)",
        )
        .bind(id.to_string())
        .bind(&fields.name)
        .bind(&fields.body)
        .bind(fields.limitation.as_ref().map(to_json))
        .bind(crate::model::next_seq())
        .bind(now_millis())
        .execute(&self.pool)
        .await
        .map_err(StoreError::unique("state machine", &fields.name, "storing a state machine"))?;
        Ok(id)
    }

    pub async fn update_state_machine(&self, name: &str, fields: &StateMachineFields) -> Result<(), StoreError> {
        let done = sqlx::query(
            "UPDATE state_machines SET name = $1, body = $2, limitation = $3, updated_at = $4 WHERE name = $5",
        )
        .bind(&fields.name)
        .bind(&fields.body)
        .bind(fields.limitation.as_ref().map(to_json))
        .bind(now_millis())
        .bind(name)
        .execute(&self.pool)
        .await
        .map_err(StoreError::unique("state machine", &fields.name, "updating a state machine"))?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound { kind: "state machine", key: name.to_owned() });
        }
        Ok(())
    }

    pub async fn delete_state_machine(&self, name: &str) -> Result<(), StoreError> {
        self.delete_by_name("state_machines", "state machine", name).await
    }
}

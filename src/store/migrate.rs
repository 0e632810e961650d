//! Schema migrations, embedded in the binary and applied in order at start-up.
//! One SQL file per version under `migrations/`, valid on SQLite and PostgreSQL alike, unless
//! its name ends in `.postgres.sql`: such a migration is only run on PostgreSQL (elsewhere it
//! is recorded as applied with nothing to do).

use sqlx::AnyPool;

use super::{Backend, StoreError};

/// Version, name, the one backend it is for (`None`: all), and its SQL.
const MIGRATIONS: &[(i64, &str, Option<Backend>, &str)] = &[
    (1, "initial", None, include_str!("../../migrations/0001_initial.sql")),
    (2, "execution", None, include_str!("../../migrations/0002_execution.sql")),
    (3, "joyoi", None, include_str!("../../migrations/0003_joyoi.sql")),
    (4, "processes", None, include_str!("../../migrations/0004_processes.sql")),
    (5, "actor_logs", None, include_str!("../../migrations/0005_actor_logs.sql")),
    (6, "streamed_blobs", None, include_str!("../../migrations/0006_streamed_blobs.sql")),
    (7, "actor_sandbox", None, include_str!("../../migrations/0007_actor_sandbox.sql")),
    (8, "chunk_storage", Some(Backend::Postgres), include_str!("../../migrations/0008_chunk_storage.postgres.sql")),
];

/// Applies every migration not yet recorded in `wharf_migrations`, each in a transaction.
pub(super) async fn run(pool: &AnyPool, backend: Backend) -> Result<(), StoreError> {
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS wharf_migrations (version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)",
    )
    .execute(pool)
    .await
    .map_err(StoreError::db("creating the migrations table"))?;
    for &(version, name, only_on, sql) in MIGRATIONS {
        let mut tx = pool.begin().await.map_err(StoreError::db("starting a migration"))?;
        if backend == Backend::Postgres {
            // Several replicas may start at once: the first one migrates, the others wait.
            sqlx::query("SELECT pg_advisory_xact_lock(7301)")
                .execute(&mut *tx)
                .await
                .map_err(StoreError::db("locking the schema"))?;
        }
        let applied = sqlx::query("SELECT version FROM wharf_migrations WHERE version = $1")
            .bind(version)
            .fetch_optional(&mut *tx)
            .await
            .map_err(StoreError::db("reading applied migrations"))?;
        if applied.is_some() {
            continue;
        }
        let sql = if only_on.is_none_or(|only| only == backend) { sql } else { "" };
        for statement in statements(sql) {
            sqlx::query(sqlx::AssertSqlSafe(statement))
                .execute(&mut *tx)
                .await
                .map_err(|source| StoreError::Migrate { version, name, source })?;
        }
        sqlx::query("INSERT INTO wharf_migrations (version, name, applied_at) VALUES ($1, $2, $3)")
            .bind(version)
            .bind(name)
            .bind(crate::model::now_millis())
            .execute(&mut *tx)
            .await
            .map_err(|source| StoreError::Migrate { version, name, source })?;
        tx.commit().await.map_err(|source| StoreError::Migrate { version, name, source })?;
        tracing::info!(version, name, "applied database migration");
    }
    Ok(())
}

/// Splits a migration into statements, dropping `--` comments.
fn statements(sql: &str) -> Vec<String> {
    let without_comments: String =
        sql.lines().map(|line| line.split("--").next().unwrap_or_default()).collect::<Vec<_>>().join("\n");
    without_comments.split(';').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect()
}

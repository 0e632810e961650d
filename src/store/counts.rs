//! Row counts for listings' `X-Total-Count` at a bounded cost. PostgreSQL's `COUNT(*)` reads
//! every row (61 times the cost of `SELECT 1` on a large `instances` table), so above
//! `ESTIMATE_ABOVE` rows an unfiltered count is the planner's estimate (`pg_class.reltuples`,
//! kept up to date by autovacuum's ANALYZE). SQLite counts are exact: in-process and cheap.

use super::{Backend, Store, StoreError};

/// Tables estimated to hold fewer rows than this are counted exactly.
pub const ESTIMATE_ABOVE: i64 = 10_000;

impl Store {
    /// The planner's estimate of the rows in `table`, when it is at least `ESTIMATE_ABOVE`;
    /// `None` on SQLite, for smaller tables, and for tables never analysed.
    pub(super) async fn estimated_rows(&self, table: &'static str) -> Result<Option<i64>, StoreError> {
        if self.backend != Backend::Postgres {
            return Ok(None);
        }
        let estimate =
            sqlx::query_scalar::<_, i64>("SELECT reltuples::BIGINT FROM pg_class WHERE oid = to_regclass($1)")
                .bind(table)
                .fetch_optional(&self.pool)
                .await
                .map_err(StoreError::db("estimating a row count"))?;
        Ok(estimate.filter(|rows| *rows >= ESTIMATE_ABOVE))
    }
}

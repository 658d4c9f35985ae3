//! A return's side tables in the receipts schema, written by Drover's own login: the values
//! before the write (kept across tries), the rows to send (one per key), what is sent of each
//! and the MAP's answers. All but the first are made anew by each try.

use drover_spec::dataset::{quoted_relation, receipts_schema, table_name};
use sqlx::AssertSqlSafe;

use super::super::{DataPlane, TaskError, TryId};

/// The quoted relations of a return's side tables.
pub(crate) struct SideTables {
    /// `(key text primary key, previous jsonb)`: each key's record before the first write,
    /// null when the MAP had none. Kept across tries: a retry never snapshots what an earlier
    /// try wrote.
    pub(crate) before: String,
    /// `(ord bigint primary key, key text, sent jsonb)`: the dataset's rows in stored order
    /// (`ord`), the key as matched and the lookup field and fields as staged.
    pub(crate) rows: String,
    /// `(ord bigint primary key, status text, reason text, payload jsonb, withheld text[])`:
    /// what is sent of each row (`status` null), or why nothing is (`unchanged`, `rejected`).
    pub(crate) plan: String,
    /// `(ord bigint, status text, reason text, map_id bigint, created boolean)`: the MAP's
    /// answers by row.
    pub(crate) answers: String,
}

impl SideTables {
    pub(crate) fn new(id: &TryId) -> Self {
        let schema = receipts_schema(&id.environment.name);
        let side =
            |suffix| quoted_relation(&schema, &table_name(&id.run, &id.task_id, Some(suffix)));
        Self {
            before: side("before"),
            rows: side("rows"),
            plan: side("plan"),
            answers: side("answers"),
        }
    }

    /// Make the tables (the values before stay if an earlier try made them).
    pub(crate) async fn create(&self, plane: &DataPlane) -> Result<(), TaskError> {
        sqlx::raw_sql(AssertSqlSafe(format!(
            "create table if not exists {before} (key text primary key, previous jsonb);
             drop table if exists {rows};
             create table {rows} (ord bigint primary key, key text, sent jsonb);
             drop table if exists {plan};
             create table {plan} (ord bigint primary key, status text, reason text, payload jsonb, withheld text[]);
             drop table if exists {answers};
             create table {answers} (ord bigint, status text, reason text, map_id bigint, created boolean);",
            before = self.before,
            rows = self.rows,
            plan = self.plan,
            answers = self.answers,
        )))
        .execute(plane.store.pool())
        .await?;
        Ok(())
    }

    /// Fresh planner statistics for the side tables, after a phase filled them: the pages of
    /// the next phase join them by key and by row number, which without statistics the
    /// planner takes for tiny tables and scans whole for every page.
    pub(crate) async fn analyze(&self, plane: &DataPlane) -> Result<(), TaskError> {
        sqlx::raw_sql(AssertSqlSafe(format!(
            "analyze {}; analyze {}; analyze {}",
            self.before, self.rows, self.plan
        )))
        .execute(plane.store.pool())
        .await?;
        Ok(())
    }

    /// Keys of the rows to send whose values before are not recorded yet (all of them on a
    /// first try, none on a retry after a complete snapshot).
    pub(crate) async fn keys_without_before(&self, plane: &DataPlane) -> Result<i64, TaskError> {
        Ok(sqlx::query_scalar(AssertSqlSafe(format!(
            "select count(*) from {rows} r where r.key is not null and r.key <> ''
             and not exists (select 1 from {before} b where b.key = r.key)",
            rows = self.rows,
            before = self.before,
        )))
        .fetch_one(plane.store.pool())
        .await?)
    }

    /// Drop the per-try tables once the receipt holds what they say.
    pub(crate) async fn drop_per_try(&self, plane: &DataPlane) -> Result<(), TaskError> {
        sqlx::raw_sql(AssertSqlSafe(format!(
            "drop table if exists {}; drop table if exists {}; drop table if exists {}",
            self.rows, self.plan, self.answers
        )))
        .execute(plane.store.pool())
        .await?;
        Ok(())
    }

    /// Add rows read from the dataset.
    pub(crate) async fn add_rows(
        &self,
        plane: &DataPlane,
        ords: &[i64],
        keys: &[Option<String>],
        sent: &[serde_json::Value],
    ) -> Result<(), TaskError> {
        sqlx::query(AssertSqlSafe(format!(
            "insert into {} (ord, key, sent) select * from unnest($1::bigint[], $2::text[], $3::jsonb[])",
            self.rows
        )))
        .bind(ords)
        .bind(keys)
        .bind(sent)
        .execute(plane.store.pool())
        .await?;
        Ok(())
    }

    /// Note what is sent of rows (or why nothing is).
    pub(crate) async fn add_plan(&self, plane: &DataPlane, p: &PlanRows) -> Result<(), TaskError> {
        sqlx::query(AssertSqlSafe(format!(
            "insert into {} (ord, status, reason, payload, withheld)
             select o, s, r, p, case when jsonb_array_length(w) = 0 then null
                                     else array(select jsonb_array_elements_text(w)) end
             from unnest($1::bigint[], $2::text[], $3::text[], $4::jsonb[], $5::jsonb[]) as t(o, s, r, p, w)",
            self.plan
        )))
        .bind(&p.ords)
        .bind(&p.statuses)
        .bind(&p.reasons)
        .bind(&p.payloads)
        .bind(&p.withheld)
        .execute(plane.store.pool())
        .await?;
        Ok(())
    }

    /// Note the MAP's answers for rows.
    pub(crate) async fn add_answers(
        &self,
        plane: &DataPlane,
        a: &Answers,
    ) -> Result<(), TaskError> {
        sqlx::query(AssertSqlSafe(format!(
            "insert into {} (ord, status, reason, map_id, created)
             select * from unnest($1::bigint[], $2::text[], $3::text[], $4::bigint[], $5::boolean[])",
            self.answers
        )))
        .bind(&a.ords)
        .bind(&a.statuses)
        .bind(&a.reasons)
        .bind(&a.ids)
        .bind(&a.created)
        .execute(plane.store.pool())
        .await?;
        Ok(())
    }

    /// Note the MAP's answers for rows named by key (an import's failures and warnings).
    pub(crate) async fn add_answers_by_key(
        &self,
        plane: &DataPlane,
        keys: &[String],
        statuses: &[&str],
        reasons: &[String],
    ) -> Result<(), TaskError> {
        sqlx::query(AssertSqlSafe(format!(
            "insert into {} (ord, status, reason)
             select r.ord, t.s, t.why from unnest($1::text[], $2::text[], $3::text[]) as t(k, s, why)
             join {} r on r.key = t.k",
            self.answers, self.rows
        )))
        .bind(keys)
        .bind(statuses)
        .bind(reasons)
        .execute(plane.store.pool())
        .await?;
        Ok(())
    }
}

/// Plan rows gathered for one insert.
#[derive(Default)]
pub(crate) struct PlanRows {
    pub(crate) ords: Vec<i64>,
    pub(crate) statuses: Vec<Option<&'static str>>,
    pub(crate) reasons: Vec<Option<String>>,
    pub(crate) payloads: Vec<Option<serde_json::Value>>,
    /// JSON arrays of field names.
    pub(crate) withheld: Vec<serde_json::Value>,
}

/// Answers gathered for one insert.
#[derive(Default)]
pub(crate) struct Answers {
    pub(crate) ords: Vec<i64>,
    pub(crate) statuses: Vec<&'static str>,
    pub(crate) reasons: Vec<Option<String>>,
    pub(crate) ids: Vec<Option<i64>>,
    pub(crate) created: Vec<bool>,
}

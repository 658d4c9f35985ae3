//! Return plans: what a return was about to do, recorded before it wrote (and by a preview
//! run, which writes nothing). Per try its totals and a digest of its records in Drover's
//! table `return_plan`; the records — per row its key, map id, status and each field's old →
//! new value — in a table of the environment's receipts schema, which the environment's SQL
//! role may read (rows may hold personal data: pages read them through the environment's
//! `rows_visible_to`).

use drover_spec::numbers::thousands;
use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use sqlx::{FromRow, PgPool, Row};
use uuid::Uuid;

use crate::{Result, Store};

/// A record's status in a plan.
pub mod status {
    /// The MAP has no record with this key: the return creates one.
    pub const CREATE: &str = "create";
    /// The record exists and at least one field changes.
    pub const UPDATE: &str = "update";
    /// Sent without a snapshot: whether it creates or updates is not known.
    pub const SEND: &str = "send";
    /// The record holds every value already: nothing is sent.
    pub const UNCHANGED: &str = "unchanged";
    /// Not sent: the row has no lookup value.
    pub const NOT_SENT: &str = "not_sent";
}

/// The totals of one try's plan.
#[derive(Debug, Clone, FromRow, Serialize)]
pub struct ReturnPlan {
    pub run_id: Uuid,
    pub task_id: String,
    pub try_number: i32,
    pub environment: String,
    /// The records' table in the environment's receipts schema (the latest try's records).
    pub table_name: String,
    /// The lookup field (`email`, `id`).
    pub lookup: String,
    /// Whether the values before were read: without them creates and updates are not told
    /// apart (`creates` and `updates` are null) and old values are unknown.
    pub snapshot: bool,
    /// Planned by a preview run: nothing was sent.
    pub preview: bool,
    /// Rows planned (one per lookup key, after `on_duplicate_key`).
    pub rows: i64,
    pub creates: Option<i64>,
    pub updates: Option<i64>,
    /// Records to send: creates and updates.
    pub sends: i64,
    /// Records holding every value already: not sent.
    pub unchanged: i64,
    /// Rows without a lookup value: not sent.
    pub not_sent: i64,
    /// Empty values not written over a value the record holds (no `write_nulls`).
    pub nulls_withheld: i64,
    /// Records whose field changes, by field (updates, or every record sent without a
    /// snapshot).
    pub field_changes: sqlx::types::Json<BTreeMap<String, i64>>,
    /// A digest of the plan's records (key, status, changes, withheld): equal digests, equal
    /// plans.
    pub digest: String,
    pub recorded_at: DateTime<Utc>,
    /// When the records were dropped after the environment's retention period.
    pub records_dropped_at: Option<DateTime<Utc>>,
}

/// One field a record's plan writes.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FieldChange {
    pub field: String,
    /// The value before (null for a new record; null and `old_known: false` without a
    /// snapshot).
    pub old: Value,
    pub old_known: bool,
    pub new: Value,
}

/// One record of a plan.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlanRecord {
    /// The row's place in the dataset: pages continue after it.
    pub ord: i64,
    pub key: Option<String>,
    /// The record's id in the MAP, when the snapshot found it.
    pub map_id: Option<i64>,
    /// See [`status`].
    pub status: String,
    /// Why a row is not sent.
    pub reason: Option<String>,
    pub changes: Vec<FieldChange>,
    /// Fields left out because the row had no value (the record has one).
    pub withheld: Vec<String>,
}

/// A plan's totals with its first records: what `dags test` and the pages show.
#[derive(Debug, Clone, Serialize)]
pub struct PlanView {
    pub plan: ReturnPlan,
    pub records: Vec<PlanRecord>,
    /// More records follow the ones listed.
    pub more: bool,
}

const PLAN_COLUMNS: &str = "p.run_id, p.task_id, p.try_number, p.environment, p.table_name, p.lookup, p.snapshot, \
     p.preview, p.rows, p.creates, p.updates, p.sends, p.unchanged, p.not_sent, p.nulls_withheld, \
     p.field_changes, p.digest, p.recorded_at, d.dropped_at as records_dropped_at";

impl ReturnPlan {
    /// The records' table as a quoted relation.
    pub fn relation(&self) -> String {
        drover_spec::dataset::quoted_relation(
            &drover_spec::dataset::receipts_schema(&self.environment),
            &self.table_name,
        )
    }

    /// The plan as the API and `drover runs plan --json` give it: its totals, `summary` in
    /// words, and `records` (null when they are not shown, `records_hidden` saying why);
    /// `next_after` continues the listing.
    pub fn to_json(
        &self,
        records: Option<&[PlanRecord]>,
        records_hidden: Option<&str>,
        next_after: Option<i64>,
    ) -> Value {
        serde_json::json!({
            "run_id": self.run_id,
            "task_id": self.task_id,
            "try_number": self.try_number,
            "environment": self.environment,
            "preview": self.preview,
            "snapshot": self.snapshot,
            "lookup": self.lookup,
            "recorded_at": self.recorded_at,
            "digest": self.digest,
            "summary": self.in_words(),
            "totals": {
                "rows": self.rows,
                "creates": self.creates,
                "updates": self.updates,
                "sends": self.sends,
                "unchanged": self.unchanged,
                "not_sent": self.not_sent,
                "nulls_withheld": self.nulls_withheld,
            },
            "field_changes": self.field_changes.0,
            "records": records,
            "records_hidden": records_hidden,
            "records_dropped_at": self.records_dropped_at,
            "next_after": next_after,
        })
    }

    /// The plan in words, e.g. "would create 12 leads, update 340 (leadScore on 340, country
    /// on 12), leave 1,020 unchanged, not send 3 without an email, withhold 8 empty values".
    pub fn in_words(&self) -> String {
        let mut parts = Vec::new();
        let fields = {
            let mut by: Vec<(&String, &i64)> = self.field_changes.0.iter().collect();
            by.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
            by.iter()
                .map(|(f, n)| format!("{f} on {}", thousands(**n)))
                .collect::<Vec<_>>()
                .join(", ")
        };
        match (self.creates, self.updates) {
            _ if self.sends == 0 => parts.push("send nothing".to_owned()),
            (Some(c), Some(u)) => {
                if c > 0 {
                    parts.push(format!("create {}", leads(c)));
                }
                if u > 0 && fields.is_empty() {
                    parts.push(format!("update {}", thousands(u)));
                } else if u > 0 {
                    parts.push(format!("update {} ({fields})", thousands(u)));
                }
            }
            _ => parts.push(format!(
                "send {} (new or existing: not known without a snapshot{})",
                leads(self.sends),
                if fields.is_empty() {
                    String::new()
                } else {
                    format!("; {fields}")
                }
            )),
        }
        if self.unchanged > 0 {
            parts.push(format!("leave {} unchanged", thousands(self.unchanged)));
        }
        if self.not_sent > 0 {
            parts.push(format!(
                "not send {} without {}",
                thousands(self.not_sent),
                article(&self.lookup)
            ));
        }
        if self.nulls_withheld > 0 {
            parts.push(format!(
                "withhold {} empty value{}",
                thousands(self.nulls_withheld),
                if self.nulls_withheld == 1 { "" } else { "s" }
            ));
        }
        format!("would {}", parts.join(", "))
    }
}

fn leads(n: i64) -> String {
    format!("{} lead{}", thousands(n), if n == 1 { "" } else { "s" })
}

/// "an email", "a leadScore".
fn article(word: &str) -> String {
    let vowel = word
        .chars()
        .next()
        .is_some_and(|c| "aeiouAEIOU".contains(c));
    format!("{} `{word}`", if vowel { "an" } else { "a" }).replace("`email`", "email")
}

impl Store {
    /// The plan of the latest try of `task_id` in `run_id` that recorded one.
    pub async fn latest_return_plan(
        &self,
        run_id: Uuid,
        task_id: &str,
    ) -> Result<Option<ReturnPlan>> {
        Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "select {PLAN_COLUMNS} from return_plan p
             left join dataset d on d.run_id = p.run_id and d.task_id = p.task_id and d.kind = 'plan'
             where p.run_id = $1 and p.task_id = $2 order by p.try_number desc limit 1"
        )))
        .bind(run_id)
        .bind(task_id)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// The latest plan of every return task of a run, by task id.
    pub async fn run_return_plans(&self, run_id: Uuid) -> Result<Vec<ReturnPlan>> {
        Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "select distinct on (p.task_id) {PLAN_COLUMNS} from return_plan p
             left join dataset d on d.run_id = p.run_id and d.task_id = p.task_id and d.kind = 'plan'
             where p.run_id = $1 order by p.task_id, p.try_number desc"
        )))
        .bind(run_id)
        .fetch_all(&self.pool)
        .await?)
    }

    /// The latest plan of `task_id` in `run_id` with its first `first` records, read by
    /// Drover's own login (for `drover dags test` and the CLI; pages read records through
    /// the environment's `rows_visible_to` with [`plan_records`]).
    pub async fn latest_return_plan_with_records(
        &self,
        run_id: Uuid,
        task_id: &str,
        first: i64,
    ) -> Result<Option<PlanView>> {
        let Some(plan) = self.latest_return_plan(run_id, task_id).await? else {
            return Ok(None);
        };
        let (records, more) = if plan.records_dropped_at.is_some() {
            (Vec::new(), false)
        } else {
            let mut records = plan_records(&self.pool, &plan, None, first.max(0) + 1).await?;
            let more = records.len() as i64 > first.max(0);
            records.truncate(usize::try_from(first.max(0)).unwrap_or(0));
            (records, more)
        };
        Ok(Some(PlanView {
            plan,
            records,
            more,
        }))
    }
}

/// Up to `limit` records of `plan` after the record `after` (see [`PlanRecord::ord`]), in
/// the dataset's order, read on `db` (Drover's login, or the environment's role).
pub async fn plan_records(
    db: &PgPool,
    plan: &ReturnPlan,
    after: Option<i64>,
    limit: i64,
) -> Result<Vec<PlanRecord>> {
    // The relation is Drover's own name for the table, quoted; values are bound.
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "select ord, key, map_id, status, reason, new, old, withheld from {}
         where ord > $1 order by ord limit $2",
        plan.relation()
    )))
    .bind(after.unwrap_or(i64::MIN))
    .bind(limit.max(0))
    .fetch_all(db)
    .await?;
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let status: String = row.try_get("status")?;
        let new: Option<sqlx::types::Json<serde_json::Map<String, Value>>> = row.try_get("new")?;
        let old: Option<sqlx::types::Json<serde_json::Map<String, Value>>> = row.try_get("old")?;
        // Old values are known but for a record sent without a snapshot (a new record's are
        // null).
        let old_known = status != status::SEND;
        let changes = new
            .map(|n| {
                n.0.into_iter()
                    .map(|(field, new)| FieldChange {
                        old: old
                            .as_ref()
                            .and_then(|o| o.0.get(&field).cloned())
                            .unwrap_or(Value::Null),
                        old_known,
                        field,
                        new,
                    })
                    .collect()
            })
            .unwrap_or_default();
        out.push(PlanRecord {
            ord: row.try_get("ord")?,
            key: row.try_get("key")?,
            map_id: row.try_get("map_id")?,
            status,
            reason: row.try_get("reason")?,
            changes,
            withheld: row
                .try_get::<Option<Vec<String>>, _>("withheld")?
                .unwrap_or_default(),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(creates: Option<i64>, updates: Option<i64>) -> ReturnPlan {
        ReturnPlan {
            run_id: Uuid::nil(),
            task_id: "push".into(),
            try_number: 1,
            environment: "dev".into(),
            table_name: "t".into(),
            lookup: "email".into(),
            snapshot: creates.is_some(),
            preview: false,
            rows: 1383,
            creates,
            updates,
            sends: 352,
            unchanged: 1020,
            not_sent: 3,
            nulls_withheld: 8,
            field_changes: sqlx::types::Json(BTreeMap::from([
                ("country".to_owned(), 12),
                ("leadScore".to_owned(), 340),
            ])),
            digest: String::new(),
            recorded_at: Utc::now(),
            records_dropped_at: None,
        }
    }

    #[test]
    fn a_plan_reads_as_one_sentence() {
        assert_eq!(
            plan(Some(12), Some(340)).in_words(),
            "would create 12 leads, update 340 (leadScore on 340, country on 12), leave 1,020 unchanged, not send 3 without an email, withhold 8 empty values"
        );
        assert_eq!(
            plan(None, None).in_words(),
            "would send 352 leads (new or existing: not known without a snapshot; leadScore on 340, country on 12), leave 1,020 unchanged, not send 3 without an email, withhold 8 empty values"
        );
        let mut p = plan(Some(0), Some(0));
        p.sends = 0;
        p.unchanged = 0;
        p.not_sent = 2;
        p.nulls_withheld = 1;
        p.lookup = "id".into();
        assert_eq!(
            p.in_words(),
            "would send nothing, not send 2 without an `id`, withhold 1 empty value"
        );
        let mut p = plan(Some(0), Some(1));
        p.sends = 1;
        p.field_changes.0.clear();
        p.unchanged = 0;
        p.not_sent = 0;
        p.nulls_withheld = 0;
        assert_eq!(p.in_words(), "would update 1");
        assert_eq!(article("id"), "an `id`");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }
}

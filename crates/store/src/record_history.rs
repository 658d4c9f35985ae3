//! Record history: every return (and revert) that touched a record, from the `record_touch`
//! index written with each receipt. Read by key (`email`, another lookup field) or by MAP id.
//! The values are lead data: callers show them only where the environment's
//! `rows_visible_to` allows.

use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use crate::{Result, Store};

/// What a history is asked for: `field = value` in an environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordQuery {
    /// `id` (the MAP id), `email`, or another lookup field.
    pub field: String,
    /// The value, normalised as a return matches it (see [`RecordQuery::parse`]).
    pub value: String,
}

impl RecordQuery {
    /// `email=a@x.io`, `id=123`, `externalId=X-1`, or a bare email (`a@x.io`). An email is
    /// trimmed and lower-cased, as a return matches it; an id must be a whole number.
    pub fn parse(text: &str) -> std::result::Result<Self, String> {
        let text = text.trim();
        let (field, value) = match text.split_once('=') {
            Some((f, v)) => (f.trim(), v.trim()),
            None if text.contains('@') => ("email", text),
            None if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) => ("id", text),
            None => {
                return Err(format!(
                    "search for FIELD=VALUE, e.g. email=ann@example.com or id=1234 (or a bare email); `{text}` is neither"
                ));
            }
        };
        if field.is_empty() || value.is_empty() {
            return Err(
                "both a field and a value are needed, e.g. email=ann@example.com".to_owned(),
            );
        }
        if field.eq_ignore_ascii_case("id") {
            if value.parse::<i64>().is_err() {
                return Err(format!(
                    "id is the record's Marketo id, a whole number (not `{value}`)"
                ));
            }
            return Ok(Self {
                field: "id".to_owned(),
                value: value.to_owned(),
            });
        }
        if field.eq_ignore_ascii_case("email") {
            return Ok(Self {
                field: "email".to_owned(),
                value: value.to_lowercase(),
            });
        }
        Ok(Self {
            field: field.to_owned(),
            value: value.to_owned(),
        })
    }

    /// `email = ann@example.com`.
    pub fn describe(&self) -> String {
        format!("{} = {}", self.field, self.value)
    }
}

/// One run's touch of a record.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct RecordTouch {
    pub id: i64,
    pub environment: String,
    pub lookup_field: String,
    pub key: String,
    pub map_id: Option<i64>,
    pub run_id: Uuid,
    pub dag_id: String,
    pub task_id: String,
    pub try_number: i32,
    pub touched_at: DateTime<Utc>,
    pub status: String,
    pub reason: Option<String>,
    /// `{"field": {"old": …, "new": …}}`; `old` absent when the values before were not read.
    pub changes: sqlx::types::Json<serde_json::Map<String, serde_json::Value>>,
    pub withheld: Option<Vec<String>>,
    pub reverted_at: Option<DateTime<Utc>>,
    pub reverted_by_job: Option<i64>,
    /// On a revert's own rows: the revert job.
    pub revert_job: Option<i64>,
}

const COLUMNS: &str = "id, environment, lookup_field, key, map_id, run_id, dag_id, task_id, \
    try_number, touched_at, status, reason, changes, withheld, reverted_at, reverted_by_job, revert_job";

impl Store {
    /// Up to `limit` touches of the record `q` names in `environment`, newest first. By key,
    /// the record's MAP ids found among its touches bring in the touches of returns keyed
    /// otherwise (on id, say); by `id`, every touch naming that MAP id. Each arm reads its
    /// index in order and stops at `limit`, so a record touched every hour for years costs
    /// what one touched twice does.
    pub async fn record_history(
        &self,
        environment: &str,
        q: &RecordQuery,
        limit: i64,
    ) -> Result<Vec<RecordTouch>> {
        let limit = limit.clamp(1, 10_000);
        let ids: Vec<i64> = if q.field == "id" {
            // `parse` made sure of it; a query built otherwise with a bad id finds nothing.
            q.value.parse::<i64>().into_iter().collect()
        } else {
            sqlx::query_scalar(
                "select distinct map_id from (
                   select map_id from record_touch
                   where environment = $1 and lookup_field = $2 and key = $3 and map_id is not null
                   order by touched_at desc limit 1000) k",
            )
            .bind(environment)
            .bind(&q.field)
            .bind(&q.value)
            .fetch_all(&self.pool)
            .await?
        };
        let by_key = q.field != "id";
        Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "select {COLUMNS} from (
               (select {COLUMNS} from record_touch
                where $5 and environment = $1 and lookup_field = $2 and key = $3
                order by touched_at desc, id desc limit $4)
               union
               (select t.* from unnest($6::bigint[]) m(id)
                cross join lateral (
                  select {COLUMNS} from record_touch
                  where environment = $1 and map_id = m.id
                  order by touched_at desc, id desc limit $4) t)
             ) h order by touched_at desc, id desc limit $4"
        )))
        .bind(environment)
        .bind(&q.field)
        .bind(&q.value)
        .bind(limit)
        .bind(by_key)
        .bind(&ids)
        .fetch_all(&self.pool)
        .await?)
    }
}

/// Days a touch is kept: a year of history and a month to spare.
pub const RECORD_HISTORY_DAYS: i32 = 400;

impl Store {
    /// Delete touches older than `days` among the `batch` oldest (by id, which follows the
    /// time they were written): a cheap statement to run often, however long the history.
    /// Returns how many were deleted.
    pub async fn prune_record_history(&self, days: i32, batch: i64) -> Result<u64> {
        Ok(sqlx::query(
            "delete from record_touch where id in (
               select id from (select id, touched_at from record_touch order by id limit $2) o
               where touched_at < now() - make_interval(days => $1))",
        )
        .bind(days)
        .bind(batch)
        .execute(&self.pool)
        .await?
        .rows_affected())
    }
}

/// One field a touch sent: its value before (`None` when the values before were not read)
/// and the value sent, as text ("(empty)" for a null or empty value).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldChange {
    pub field: String,
    pub old: Option<String>,
    pub new: String,
}

impl RecordTouch {
    /// The fields sent, by name.
    pub fn field_changes(&self) -> Vec<FieldChange> {
        let mut out: Vec<FieldChange> = self
            .changes
            .0
            .iter()
            .map(|(field, c)| FieldChange {
                field: field.clone(),
                old: c.get("old").map(shown_value),
                new: c
                    .get("new")
                    .map_or_else(|| "(empty)".to_owned(), shown_value),
            })
            .collect();
        out.sort_by(|a, b| a.field.cmp(&b.field));
        out
    }

    /// The touch as the API and `drover records history --json` give it.
    pub fn as_json(&self) -> serde_json::Value {
        serde_json::json!({
            "when": self.touched_at,
            "dag_id": self.dag_id,
            "run_id": self.run_id,
            "task_id": self.task_id,
            "try_number": self.try_number,
            "lookup_field": self.lookup_field,
            "key": self.key,
            "map_id": self.map_id,
            "status": self.status,
            "reason": self.reason,
            "changes": self.field_changes(),
            "withheld": self.withheld,
            "reverted": self.reverted(),
            "reverted_at": self.reverted_at,
            "reverted_by_job": self.reverted_by_job,
            "revert_job": self.revert_job,
        })
    }

    /// Whether a revert wrote this touch's values back.
    pub fn reverted(&self) -> bool {
        self.reverted_at.is_some()
    }
}

/// A value as people read it: text as is, numbers and booleans written out, a null or an
/// empty text as "(empty)".
pub fn shown_value(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Null => "(empty)".to_owned(),
        serde_json::Value::String(s) if s.is_empty() => "(empty)".to_owned(),
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_read_as_a_return_matches() {
        let q = |t: &str| RecordQuery::parse(t);
        assert_eq!(
            q(" Email = Ann@X.io ").map(|q| q.describe()),
            Ok("email = ann@x.io".to_owned())
        );
        assert_eq!(
            q("ANN@x.io").map(|q| q.describe()),
            Ok("email = ann@x.io".to_owned())
        );
        assert_eq!(q("id=42").map(|q| q.describe()), Ok("id = 42".to_owned()));
        assert_eq!(q("1234").map(|q| q.describe()), Ok("id = 1234".to_owned()));
        assert_eq!(
            q("externalId=X-1").map(|q| q.describe()),
            Ok("externalId = X-1".to_owned())
        );
        assert!(q("id=abc").is_err_and(|e| e.contains("whole number")));
        assert!(q("ann").is_err_and(|e| e.contains("FIELD=VALUE")));
        assert!(q("email=").is_err());
        assert!(q("").is_err());
    }

    #[test]
    fn values_read_as_people_write_them() {
        assert_eq!(shown_value(&serde_json::json!(null)), "(empty)");
        assert_eq!(shown_value(&serde_json::json!("")), "(empty)");
        assert_eq!(shown_value(&serde_json::json!("Acme")), "Acme");
        assert_eq!(shown_value(&serde_json::json!(42)), "42");
        assert_eq!(shown_value(&serde_json::json!(true)), "true");
    }
}

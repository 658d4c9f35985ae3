//! A return's receipt as a person reads it: per record its key and email, each field's old →
//! new value, and whether Marketo accepted, created or rejected it (with its reason); a
//! rejected-only filter, pages of records in key order, and the whole receipt as CSV.
//!
//! Receipts can hold 100,000+ records, so pages are read by key (`after=`), never with an
//! offset, and the CSV is streamed in chunks read the same way. Rows go through
//! [`row_access::rows_pool`]: who may not see a PROD lead's values sees counts only.

use askama::Template;
use askama_web::WebTemplate;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use drover_spec::environment::{Environment, MapKind};
use drover_store::{DatasetRow, RunRow};
use serde::Deserialize;
use serde_json::Value;
use sqlx::PgPool;

use super::Chrome;
use super::run::parse_run;
use crate::WebState;
use crate::auth::PageUser;
use crate::error::{Failure, PageError};
use crate::row_access::{self, RowsPool};
use crate::views::{self, format::thousands};

/// Records on one page.
const PAGE: i64 = 100;
/// Records read at once while streaming the CSV.
const CSV_CHUNK: i64 = 2_000;

#[derive(Debug, Deserialize)]
pub(crate) struct ReceiptQuery {
    /// `rejected` shows rejected records only.
    show: Option<String>,
    /// The last key of the previous page.
    after: Option<String>,
}

/// One field a return wrote: its value before and the value sent.
pub(crate) struct Change {
    field: String,
    old: String,
    new: String,
}

/// One record of a receipt, in words.
pub(crate) struct Line {
    key: String,
    email: String,
    /// `accepted`, `created`, `rejected`, … (a CSS class too).
    status: &'static str,
    /// What the status means, in words.
    status_words: String,
    reason: String,
    /// The record did not exist before the return.
    created: bool,
    changes: Vec<Change>,
    /// Fields sent with the value they already had.
    unchanged: usize,
}

impl Line {
    /// `email%3D…`: the record's history on the Records page.
    fn history_query(&self) -> String {
        views::url_encode(&format!("email={}", self.email))
    }
}

/// Counts over the whole receipt (not one page).
#[derive(Default)]
pub(crate) struct Counts {
    total: i64,
    accepted: i64,
    created: i64,
    rejected: i64,
    /// Values before the return were recorded (`snapshot`), so a record without them is new.
    snapshot: bool,
}

#[derive(Template, WebTemplate)]
#[template(path = "receipt.html")]
pub(crate) struct ReceiptPage {
    chrome: Chrome,
    run: RunRow,
    task: String,
    /// "Marketo".
    map: &'static str,
    counts: Counts,
    rejected_only: bool,
    lines: Vec<Line>,
    /// Records before this page (with the filter).
    before: i64,
    /// `after=` for the next page, if there is one.
    next: Option<String>,
    /// Why no records are listed (hidden, dropped, not readable here).
    note: Option<String>,
    /// The rejected rows by reason, which anyone may see.
    reasons: String,
    /// The `show=` part of links.
    show_query: &'static str,
}

impl ReceiptPage {
    fn first_shown(&self) -> String {
        thousands(self.before + 1)
    }

    fn last_shown(&self) -> String {
        thousands(self.before + self.lines.len() as i64)
    }

    fn of(&self) -> String {
        thousands(if self.rejected_only {
            self.counts.rejected
        } else {
            self.counts.total
        })
    }

    fn n(&self, v: &i64) -> String {
        thousands(*v)
    }
}

/// The environment's MAP by its product name.
pub(crate) fn map_name(env: &Environment) -> &'static str {
    match env.map.kind {
        MapKind::Marketo => "Marketo",
    }
}

async fn find_receipt(
    state: &WebState,
    run: &str,
    task: &str,
) -> Result<(RunRow, DatasetRow, Environment), Failure> {
    let run = state.store().get_run(parse_run(run)?).await?;
    let dataset = state
        .store()
        .dataset(run.id, task, "receipt")
        .await?
        .ok_or_else(|| Failure::not_found(format!("Task `{task}` of this run has no receipt.")))?;
    let env = state.ops().environment(&run.environment).await?;
    Ok((run, dataset, env))
}

/// Whether the receipt has the columns this page reads (every receipt Drover writes does).
fn readable(d: &DatasetRow) -> bool {
    ["key", "status", "reason", "previous", "sent"]
        .iter()
        .all(|c| d.columns.0.iter().any(|col| col.name == *c))
}

pub(crate) async fn page(
    State(state): State<WebState>,
    PageUser(user): PageUser,
    Path((run, task)): Path<(String, String)>,
    Query(q): Query<ReceiptQuery>,
) -> Result<ReceiptPage, PageError> {
    let (run, dataset, env) = find_receipt(&state, &run, &task).await?;
    let rejected_only = q.show.as_deref() == Some("rejected");
    let reasons = match row_access::rejection_reasons(&state, &env, &dataset).await {
        Ok(r) if !r.is_empty() => row_access::describe_reasons(&r),
        _ => String::new(),
    };
    let mut page = ReceiptPage {
        chrome: Chrome::new(&user, "runs", Some(&run.environment)),
        map: map_name(&env),
        counts: Counts::default(),
        rejected_only,
        lines: Vec::new(),
        before: 0,
        next: None,
        note: None,
        reasons,
        show_query: if rejected_only { "show=rejected&" } else { "" },
        task,
        run,
    };
    if let Some(t) = dataset.dropped_at {
        page.note = Some(format!(
            "This receipt was dropped on {} after the environment's retention period.",
            views::when(&t)
        ));
        return Ok(page);
    }
    if !readable(&dataset) {
        page.note = Some("This receipt has no record of the values sent.".to_owned());
        return Ok(page);
    }
    let pool = match row_access::rows_pool(&state, &user.actor, &env)? {
        RowsPool::Open(pool) => pool,
        // Counts are no personal data: everyone sees them.
        RowsPool::Hidden(why) => {
            if let Some(p) = row_access::counts_pool(&state, &env)? {
                page.counts = counts(&p, &dataset).await?;
            }
            page.note = Some(why);
            return Ok(page);
        }
        RowsPool::Unavailable => {
            page.note = Some("Receipts are not readable from this Drover process.".to_owned());
            return Ok(page);
        }
    };
    page.counts = counts(&pool, &dataset).await?;
    if let Some(after) = &q.after {
        page.before = count_upto(&pool, &dataset, rejected_only, after).await?;
    }
    let rows = read(&pool, &dataset, rejected_only, q.after.as_deref(), PAGE + 1).await?;
    let more = rows.len() as i64 > PAGE;
    page.lines = rows
        .into_iter()
        .take(PAGE as usize)
        .map(|r| r.line(page.counts.snapshot))
        .collect();
    if more {
        page.next = page.lines.last().map(|l| views::url_encode(&l.key));
    }
    Ok(page)
}

/// The whole receipt as CSV, streamed: one line per record.
pub(crate) async fn csv(
    State(state): State<WebState>,
    PageUser(user): PageUser,
    Path((run, task)): Path<(String, String)>,
    Query(q): Query<ReceiptQuery>,
) -> Result<Response, PageError> {
    let (run, dataset, env) = find_receipt(&state, &run, &task).await?;
    if dataset.dropped_at.is_some() {
        return Err(Failure::not_found(
            "This receipt was dropped after the environment's retention period.",
        )
        .into());
    }
    if !readable(&dataset) {
        return Err(Failure::not_found("This receipt has no record of the values sent.").into());
    }
    let pool = match row_access::rows_pool(&state, &user.actor, &env)? {
        RowsPool::Open(pool) => pool,
        RowsPool::Hidden(why) => return Err(Failure::forbidden(why).into()),
        RowsPool::Unavailable => {
            return Err(
                Failure::not_found("Receipts are not readable from this Drover process.").into(),
            );
        }
    };
    let rejected_only = q.show.as_deref() == Some("rejected");
    let snapshot = counts(&pool, &dataset).await?.snapshot;
    let stream = csv_stream(pool, dataset, rejected_only, snapshot);
    let name = format!(
        "{}-{}-{}-receipt{}.csv",
        run.dag_id,
        run.id,
        task,
        if rejected_only { "-rejected" } else { "" }
    )
    .replace(
        |c: char| !(c.is_ascii_alphanumeric() || "-_.".contains(c)),
        "_",
    );
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ),
        ],
        Body::from_stream(stream),
    )
        .into_response())
}

/// The CSV's header row.
const CSV_HEADER: [&str; 6] = ["key", "email", "status", "reason", "changes", "new_record"];

fn csv_stream(
    pool: PgPool,
    dataset: DatasetRow,
    rejected_only: bool,
    snapshot: bool,
) -> impl futures_util::Stream<Item = Result<Vec<u8>, std::io::Error>> {
    struct At {
        pool: PgPool,
        dataset: DatasetRow,
        after: Option<String>,
        header: bool,
        done: bool,
    }
    let start = At {
        pool,
        dataset,
        after: None,
        header: true,
        done: false,
    };
    futures_util::stream::unfold(start, move |mut at| async move {
        if at.done {
            return None;
        }
        let mut out = csv::Writer::from_writer(Vec::new());
        if at.header {
            at.header = false;
            if let Err(e) = out.write_record(CSV_HEADER) {
                return Some((Err(std::io::Error::other(e)), at));
            }
        }
        let rows = match read(
            &at.pool,
            &at.dataset,
            rejected_only,
            at.after.as_deref(),
            CSV_CHUNK,
        )
        .await
        {
            Ok(rows) => rows,
            Err(e) => {
                at.done = true;
                return Some((Err(std::io::Error::other(e)), at));
            }
        };
        if (rows.len() as i64) < CSV_CHUNK {
            at.done = true;
        }
        at.after = rows.last().map(|r| r.key.clone());
        for r in rows {
            let l = r.line(snapshot);
            let changes = l
                .changes
                .iter()
                .map(|c| format!("{}: {} → {}", c.field, c.old, c.new))
                .collect::<Vec<_>>()
                .join("; ");
            let record = [
                l.key.as_str(),
                l.email.as_str(),
                l.status,
                l.reason.as_str(),
                changes.as_str(),
                if l.created { "yes" } else { "no" },
            ];
            if let Err(e) = out.write_record(record.iter().map(|c| csv_cell(c).into_owned())) {
                return Some((Err(std::io::Error::other(e)), at));
            }
        }
        match out.into_inner() {
            Ok(bytes) => Some((Ok(bytes), at)),
            Err(e) => Some((Err(std::io::Error::other(e.to_string())), at)),
        }
    })
}

/// A cell safe to open in a spreadsheet: text starting with `=`, `+`, `-`, `@`, a tab or a
/// carriage return would be read as a formula, so it gets a leading `'` (OWASP's advice).
/// Quoting of commas, quotes and line breaks is the CSV writer's.
pub(crate) fn csv_cell(text: &str) -> std::borrow::Cow<'_, str> {
    if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{text}").into()
    } else {
        text.into()
    }
}

/// A receipt row as read.
struct Raw {
    key: String,
    status: String,
    reason: Option<String>,
    previous: Option<Value>,
    sent: Option<Value>,
}

impl Raw {
    fn line(self, snapshot: bool) -> Line {
        let created = snapshot && self.previous.is_none() && self.status != "rejected";
        let (status, status_words) = match self.status.as_str() {
            "rejected" => ("rejected", "rejected".to_owned()),
            "accepted" if created => ("created", "created (new record)".to_owned()),
            "accepted" => ("accepted", "accepted".to_owned()),
            "warning" => ("warning", "accepted with a warning".to_owned()),
            "unknown" => ("unknown", "sent, no answer recorded".to_owned()),
            "unchanged" => ("unchanged", "unchanged, not sent".to_owned()),
            _ => ("other", self.status.clone()),
        };
        let empty = serde_json::Map::new();
        let sent = self
            .sent
            .as_ref()
            .and_then(Value::as_object)
            .unwrap_or(&empty);
        let previous = self.previous.as_ref().and_then(Value::as_object);
        let email = ["email", "Email", "emailAddress"]
            .iter()
            .find_map(|f| {
                sent.get(*f)
                    .or_else(|| previous.and_then(|p| p.get(*f)))
                    .and_then(Value::as_str)
            })
            .unwrap_or_default()
            .to_owned();
        let mut changes = Vec::new();
        let mut unchanged = 0;
        for (field, new) in sent {
            let old = previous.and_then(|p| p.get(field));
            if old == Some(new) {
                unchanged += 1;
                continue;
            }
            changes.push(Change {
                field: field.clone(),
                old: match old {
                    Some(v) => value_text(v),
                    None if created => "new record".to_owned(),
                    None => "not recorded".to_owned(),
                },
                new: value_text(new),
            });
        }
        Line {
            key: self.key,
            email,
            status,
            status_words,
            reason: self.reason.unwrap_or_default(),
            created,
            changes,
            unchanged,
        }
    }
}

/// A field's value as shown: text bare, nothing as "empty".
fn value_text(v: &Value) -> String {
    match v {
        Value::Null => "empty".to_owned(),
        Value::String(s) if s.is_empty() => "empty".to_owned(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn filter(rejected_only: bool) -> &'static str {
    if rejected_only {
        "status = 'rejected'"
    } else {
        "true"
    }
}

async fn counts(pool: &PgPool, d: &DatasetRow) -> Result<Counts, drover_store::StoreError> {
    // The relation is Drover's own quoted name for the receipt; nothing else is spliced.
    let (total, accepted, created, rejected, snapshot): (i64, i64, i64, i64, bool) =
        sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "select count(*),
                    count(*) filter (where status in ('accepted', 'warning') and previous is not null),
                    count(*) filter (where status in ('accepted', 'warning') and previous is null),
                    count(*) filter (where status = 'rejected'),
                    coalesce(bool_or(previous is not null), false)
             from {}",
            d.relation()
        )))
        .fetch_one(pool)
        .await
        .map_err(drover_store::StoreError::from)?;
    // Without values from before, a record accepted cannot be told from one created.
    let (accepted, created) = if snapshot {
        (accepted, created)
    } else {
        (accepted + created, 0)
    };
    Ok(Counts {
        total,
        accepted,
        created,
        rejected,
        snapshot,
    })
}

/// Records (with the filter) whose key sorts at or before `after`.
async fn count_upto(
    pool: &PgPool,
    d: &DatasetRow,
    rejected_only: bool,
    after: &str,
) -> Result<i64, drover_store::StoreError> {
    sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "select count(*) from {} where {} and coalesce(key, '') <= $1",
        d.relation(),
        filter(rejected_only)
    )))
    .bind(after)
    .fetch_one(pool)
    .await
    .map_err(drover_store::StoreError::from)
}

/// Up to `limit` records after the key `after`, in key order.
async fn read(
    pool: &PgPool,
    d: &DatasetRow,
    rejected_only: bool,
    after: Option<&str>,
    limit: i64,
) -> Result<Vec<Raw>, drover_store::StoreError> {
    type Row = (
        String,
        Option<String>,
        Option<String>,
        Option<Value>,
        Option<Value>,
    );
    let rows: Vec<Row> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "select coalesce(key, ''), status, reason, previous, sent from {}
         where {} and ($1::text is null or coalesce(key, '') > $1)
         order by coalesce(key, '') limit $2",
        d.relation(),
        filter(rejected_only)
    )))
    .bind(after)
    .bind(limit.max(0))
    .fetch_all(pool)
    .await
    .map_err(drover_store::StoreError::from)?;
    Ok(rows
        .into_iter()
        .map(|(key, status, reason, previous, sent)| Raw {
            key,
            status: status.unwrap_or_default(),
            reason,
            previous: previous.filter(|v| !v.is_null()),
            sent,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_that_a_spreadsheet_would_run_get_a_quote() {
        for (cell, shown) in [
            ("=HYPERLINK(\"http://x\")", "'=HYPERLINK(\"http://x\")"),
            ("+1 555", "'+1 555"),
            ("-12", "'-12"),
            ("@SUM(A1)", "'@SUM(A1)"),
            ("\tx", "'\tx"),
            ("\rx", "'\rx"),
            ("ann@example.com", "ann@example.com"),
            ("a=b", "a=b"),
            ("", ""),
        ] {
            assert_eq!(csv_cell(cell), shown, "{cell:?}");
        }
        // Quoting is the writer's: commas, quotes and line breaks stay inside one cell.
        let mut w = csv::Writer::from_writer(Vec::new());
        w.write_record(["a,b", "say \"hi\"", "two\nlines", csv_cell("=1+1").as_ref()])
            .unwrap_or_else(|e| panic!("{e}"));
        let text = String::from_utf8(w.into_inner().unwrap_or_else(|e| panic!("{e}")))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(text, "\"a,b\",\"say \"\"hi\"\"\",\"two\nlines\",'=1+1\n");
    }

    #[test]
    fn a_record_reads_as_old_to_new() {
        let raw = |status: &str, previous: Option<Value>| Raw {
            key: "ann@example.com".into(),
            status: status.into(),
            reason: (status == "rejected").then(|| "1003 Invalid email".into()),
            previous,
            sent: Some(
                serde_json::json!({"email": "ann@example.com", "score": 80, "city": "Oslo"}),
            ),
        };
        let updated = raw(
            "accepted",
            Some(serde_json::json!({"email": "ann@example.com", "score": 40, "city": "Oslo"})),
        )
        .line(true);
        assert_eq!(updated.status, "accepted");
        assert_eq!(updated.email, "ann@example.com");
        assert_eq!(updated.unchanged, 2);
        assert_eq!(updated.changes.len(), 1);
        let c = &updated.changes[0];
        assert_eq!(
            (c.field.as_str(), c.old.as_str(), c.new.as_str()),
            ("score", "40", "80")
        );
        let created = raw("accepted", None).line(true);
        assert_eq!(created.status, "created");
        assert!(created.created);
        assert!(created.changes.iter().all(|c| c.old == "new record"));
        // Without values from before (snapshot off) nothing is claimed to be new.
        let unknown = raw("accepted", None).line(false);
        assert_eq!(unknown.status, "accepted");
        assert!(unknown.changes.iter().all(|c| c.old == "not recorded"));
        let rejected = raw("rejected", None).line(true);
        assert_eq!(rejected.status, "rejected");
        assert_eq!(rejected.reason, "1003 Invalid email");
        assert!(!rejected.created);
    }
}

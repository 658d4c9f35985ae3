//! The values before a return's write, taken from what the DAG's own export staged instead of
//! reading every lead back: a million leads cost one bulk "updated since" export instead of
//! some 3,300 Get Leads calls.
//!
//! Exact, not approximate: the staged export holds each lead as it was when its export ran.
//! Any lead changed since then (by anyone) is in a bulk export of the leads whose `updatedAt`
//! is at or after the export task's start, less a margin for clocks, and its values come from
//! that export instead. A lead in neither was not changed since the staged export and still has
//! its staged values. Keys the staged export does not hold are left to the per-lead reads.
//!
//! Used when an upstream export of this run (a direct or indirect dependency of the return)
//! staged leads with the lookup field and every returned field, within the last
//! [`MAX_EXPORT_AGE`]. Marketo subscriptions without the `updatedAt` bulk filter answer 1035;
//! the return then falls back to per-lead reads and says so in its log.
//!
//! The staged rows are read on the try's own connection (as the environment's SQL role), the
//! values are written by Drover's login: nothing staged runs as Drover's login.

use std::collections::HashSet;
use std::sync::Arc;

use chrono::{Duration, Utc};
use drover_map::{DateWindow, ExportRequest, LeadExportFilter, MapConnector, MapError};
use drover_spec::dag::TaskKind;
use drover_spec::dag::map_kinds::{ExportSpec, ReturnSpec};
use drover_spec::dataset::{quote_ident, quote_literal};
use futures_util::StreamExt;
use sqlx::{AssertSqlSafe, Executor, PgConnection, Row};

use super::super::maps::map_error;
use super::super::{DataPlane, TaskError, TryId};
use crate::runner::Job;

/// A staged export older than this is not used (its delta would be large, and a bulk filter
/// spans at most 31 days).
pub(crate) const MAX_EXPORT_AGE: Duration = Duration::hours(24);
/// How far before the export task's start the "updated since" export reaches, for the clocks
/// of Drover and the MAP.
const CLOCK_MARGIN: Duration = Duration::minutes(5);
/// Rows moved into the values-before table per statement.
const ROWS_PER_INSERT: i64 = 5_000;
/// The temporary table the delta export is loaded into (on the try's connection).
const DELTA_TABLE: &str = "pg_temp.drover_updated_since";

/// What the staged export covered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FromExport {
    /// The export task used.
    pub(crate) task: String,
    /// Keys whose values before were recorded from it.
    pub(crate) recorded: u64,
    /// Of those, the leads changed since the export, taken from the "updated since" export.
    pub(crate) changed_since: u64,
}

/// Why the staged export was not used (said in the task log).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum NotUsed {
    /// No upstream lead export holds the lookup field and every returned field.
    NoExport,
    /// The upstream export's dataset is older than [`MAX_EXPORT_AGE`] or gone.
    Stale(String),
    /// The MAP cannot filter a bulk export by `updatedAt` (1035).
    NoUpdatedAtFilter,
}

impl std::fmt::Display for NotUsed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NotUsed::NoExport => f.write_str(
                "no upstream lead export of this run holds the lookup field and every returned field",
            ),
            NotUsed::Stale(why) => f.write_str(why),
            NotUsed::NoUpdatedAtFilter => f.write_str(
                "this MAP cannot export leads by `updatedAt` (1035), so changes since the export cannot be found",
            ),
        }
    }
}

/// The nearest upstream lead export (breadth first from the return) whose fields hold
/// `needed`.
pub(crate) fn upstream_export<'d>(
    dag: &'d drover_spec::dag::Dag,
    from: &str,
    needed: &[&str],
) -> Option<(&'d str, &'d [String])> {
    let mut queue = std::collections::VecDeque::from([from]);
    let mut seen = HashSet::new();
    while let Some(name) = queue.pop_front() {
        if !seen.insert(name) {
            continue;
        }
        let Some(task) = dag.task(name) else {
            continue;
        };
        if let TaskKind::Export(ExportSpec::Leads(leads)) = &task.kind
            && needed.iter().all(|n| leads.fields.iter().any(|f| f == n))
        {
            return Some((task.id.as_str(), leads.fields.as_slice()));
        }
        queue.extend(task.depends_on.iter().map(String::as_str));
    }
    None
}

/// Records into `before` (key text primary key, previous jsonb) the values before of the keys
/// of `rows` (the relation being returned, whose key is `key` — an SQL expression over its
/// columns) that the staged export holds. A key already recorded (by an earlier try) keeps
/// what was recorded first. Its cursor and temporary table live in a transaction of `conn`
/// that is rolled back at the end.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn take(
    plane: &DataPlane,
    conn: &mut PgConnection,
    id: &TryId,
    job: &Job<'_>,
    client: &Arc<dyn MapConnector>,
    spec: &ReturnSpec,
    from: &str,
    rows: &str,
    key: &str,
    before: &str,
) -> Result<Result<FromExport, NotUsed>, TaskError> {
    let mut needed: Vec<&str> = vec![spec.lookup.as_str()];
    needed.extend(spec.fields.iter().map(String::as_str));
    let Some((task, export_fields)) = upstream_export(job.dag, from, &needed) else {
        return Ok(Err(NotUsed::NoExport));
    };
    (&mut *conn).execute("begin").await?;
    let done = from_staged(
        plane,
        conn,
        id,
        job,
        client,
        spec,
        task,
        export_fields,
        rows,
        key,
        before,
    )
    .await;
    let _ = (&mut *conn).execute("rollback").await;
    done
}

#[allow(clippy::too_many_arguments)]
async fn from_staged(
    plane: &DataPlane,
    conn: &mut PgConnection,
    id: &TryId,
    job: &Job<'_>,
    client: &Arc<dyn MapConnector>,
    spec: &ReturnSpec,
    task: &str,
    export_fields: &[String],
    rows: &str,
    key: &str,
    before: &str,
) -> Result<Result<FromExport, NotUsed>, TaskError> {
    let mut needed: Vec<&str> = vec![spec.lookup.as_str()];
    needed.extend(spec.fields.iter().map(String::as_str));
    let Some(dataset) = plane.store.dataset(id.run_id, task, "output").await? else {
        return Ok(Err(NotUsed::Stale(format!(
            "`{task}` staged no dataset in this run"
        ))));
    };
    if dataset.dropped_at.is_some() {
        return Ok(Err(NotUsed::Stale(format!(
            "the dataset of `{task}` was dropped"
        ))));
    }
    let age = Utc::now() - dataset.created_at;
    if age > MAX_EXPORT_AGE {
        return Ok(Err(NotUsed::Stale(format!(
            "the dataset of `{task}` is {} h old (at most {} h is used)",
            age.num_hours(),
            MAX_EXPORT_AGE.num_hours()
        ))));
    }
    let export_started = plane
        .store
        .task_instances(id.run_id)
        .await?
        .into_iter()
        .find(|t| t.task_id == task)
        .and_then(|t| t.started_at)
        .unwrap_or(dataset.created_at);

    // The fields recorded: id (when the export has it), the lookup field, the returned fields.
    let mut fields: Vec<String> = Vec::new();
    if export_fields.iter().any(|f| f == "id") {
        fields.push("id".to_owned());
    }
    for f in needed {
        if !fields.iter().any(|x| x == f) {
            fields.push(f.to_owned());
        }
    }

    let since = export_started - CLOCK_MARGIN;
    // To a little after now: the bulk filter counts whole seconds, and a change made in this
    // very second must be found.
    let window = DateWindow::new(since, Utc::now() + CLOCK_MARGIN).map_err(map_error)?;
    let Some(changed) = load_updated_since(conn, client, &fields, window).await? else {
        return Ok(Err(NotUsed::NoUpdatedAtFilter));
    };

    let key_of = |alias: &str| key_expr(&spec.lookup, alias);
    let object = |alias: &str| {
        let pairs: Vec<String> = fields
            .iter()
            .map(|f| format!("{}, {alias}.{}", quote_literal(f), quote_ident(f)))
            .collect();
        format!("jsonb_build_object({})", pairs.join(", "))
    };
    let query = format!(
        "select k.key, coalesce(d.previous, e.previous) as previous, d.previous is not null as changed
         from (select distinct {key} as key from {rows}) k
         left join (select distinct on (1) {ek} as key, {eo} as previous from {export} e order by 1) e on e.key = k.key
         left join (select distinct on (1) {dk} as key, {dobj} as previous from {DELTA_TABLE} d order by 1) d on d.key = k.key
         where k.key is not null and coalesce(d.previous, e.previous) is not null",
        ek = key_of("e"),
        eo = object("e"),
        export = dataset.relation(),
        dk = key_of("d"),
        dobj = object("d"),
    );
    (&mut *conn)
        .execute(AssertSqlSafe(format!(
            "declare drover_before no scroll cursor for {query}"
        )))
        .await?;
    let mut recorded = 0u64;
    let mut changed_since = 0u64;
    let outcome = async {
        loop {
            let rows = sqlx::query(AssertSqlSafe(format!(
                "fetch forward {ROWS_PER_INSERT} from drover_before"
            )))
            .fetch_all(&mut *conn)
            .await?;
            if rows.is_empty() {
                return Ok::<(), TaskError>(());
            }
            let mut keys = Vec::with_capacity(rows.len());
            let mut previous = Vec::with_capacity(rows.len());
            for row in &rows {
                keys.push(row.try_get::<String, _>("key")?);
                previous.push(row.try_get::<serde_json::Value, _>("previous")?);
                if row.try_get::<bool, _>("changed")? {
                    changed_since += 1;
                }
            }
            recorded += u64::try_from(keys.len()).unwrap_or(0);
            sqlx::query(AssertSqlSafe(format!(
                "insert into {before} (key, previous) select * from unnest($1::text[], $2::jsonb[]) on conflict (key) do nothing"
            )))
            .bind(&keys)
            .bind(&previous)
            .execute(plane.store.pool())
            .await?;
        }
    }
    .await;
    let _ = (&mut *conn).execute("close drover_before").await;
    let _ = (&mut *conn)
        .execute(AssertSqlSafe(format!("drop table if exists {DELTA_TABLE}")))
        .await;
    outcome?;
    job.log.system(format!(
        "values before the write: {recorded} from `{task}`'s staged export, {changed_since} of them changed since and taken from a bulk export of {changed} leads updated since {}",
        since.format("%Y-%m-%d %H:%M:%SZ")
    ));
    Ok(Ok(FromExport {
        task: task.to_owned(),
        recorded,
        changed_since,
    }))
}

/// Loads the leads updated in `window` into [`DELTA_TABLE`]; returns how many, or `None` when
/// the MAP cannot filter by `updatedAt`.
async fn load_updated_since(
    conn: &mut PgConnection,
    client: &Arc<dyn MapConnector>,
    fields: &[String],
    window: DateWindow,
) -> Result<Option<u64>, TaskError> {
    let types = super::super::export::lead_column_types(client.as_ref(), fields).await?;
    let definition = types
        .iter()
        .map(|(n, t)| format!("{} {t}", quote_ident(n)))
        .collect::<Vec<_>>()
        .join(", ");
    let columns = types
        .iter()
        .map(|(n, _)| quote_ident(n))
        .collect::<Vec<_>>()
        .join(", ");
    let export = match client
        .run_export(ExportRequest::Leads {
            fields: fields.to_vec(),
            filter: LeadExportFilter::UpdatedAt(window),
        })
        .await
    {
        Ok(export) => export,
        Err(e) if unsupported_filter(&e) => return Ok(None),
        Err(e) => return Err(map_error(e)),
    };
    sqlx::raw_sql(AssertSqlSafe(format!(
        "drop table if exists {DELTA_TABLE}; create temporary table {} ({definition})",
        DELTA_TABLE.trim_start_matches("pg_temp.")
    )))
    .execute(&mut *conn)
    .await?;
    let mut sink = conn
        .copy_in_raw(&format!(
            "copy {DELTA_TABLE} ({columns}) from stdin with (format csv, header match, null 'null')"
        ))
        .await?;
    let mut file = client.download_export(&export);
    while let Some(chunk) = file.next().await {
        match chunk {
            Ok(bytes) => {
                sink.send(bytes).await?;
            }
            Err(e) => {
                let _ = sink.abort("the download failed").await;
                return Err(map_error(e));
            }
        }
    }
    Ok(Some(sink.finish().await?))
}

/// Marketo's "Unsupported filter type for target subscription".
fn unsupported_filter(e: &MapError) -> bool {
    match e {
        MapError::Api { code, .. } => code == "1035",
        MapError::RetriesExhausted { last, .. } => unsupported_filter(last),
        _ => false,
    }
}

/// The key as the return compares it (see `ret::key_expr`), on `alias`'s column.
fn key_expr(lookup: &str, alias: &str) -> String {
    if lookup.eq_ignore_ascii_case("email") {
        format!("lower(btrim({alias}.{}::text))", quote_ident(lookup))
    } else {
        format!("{alias}.{}::text", quote_ident(lookup))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dag(yaml: &str) -> drover_spec::dag::Dag {
        drover_spec::dag::load_dag("t.yaml", yaml).unwrap_or_else(|e| panic!("{e:?}"))
    }

    #[test]
    fn finds_the_nearest_export_holding_the_fields() {
        let d = dag(r#"id: t
tasks:
  - id: narrow
    export: { object: leads, fields: [id, email], filter: { updated_at: { since: "2026-01-01T00:00:00Z", until: "2026-01-02T00:00:00Z" } } }
  - id: wide
    export: { object: leads, fields: [id, email, leadScore], filter: { updated_at: { since: "2026-01-01T00:00:00Z", until: "2026-01-02T00:00:00Z" } } }
  - id: score
    depends_on: [narrow, wide]
    transform:
      - from: wide
      - filter: "id > 0"
  - id: push
    depends_on: [score]
    return: { object: leads, lookup: id, fields: [leadScore] }
"#);
        assert_eq!(
            upstream_export(&d, "score", &["id", "leadScore"]).map(|(t, _)| t),
            Some("wide")
        );
        assert_eq!(
            upstream_export(&d, "score", &["id", "email"]).map(|(t, _)| t),
            Some("narrow")
        );
        assert_eq!(upstream_export(&d, "score", &["id", "country"]), None);
    }
}

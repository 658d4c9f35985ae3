//! `export`: bulk export jobs at the MAP (one per allowed window), their files streamed
//! straight into a staged table with COPY — memory stays flat whatever the size — and trimmed
//! to the half-open interval the task covers.

mod half_open;

use std::sync::Arc;

use chrono::{DateTime, Utc};
use drover_map::{DateWindow, ExportRequest, LeadExportFilter, MapConnector, MapObject};
use drover_spec::dag::map_kinds::{ActivityExport, ExportSpec, LeadFilter, ListRef, Window};
use drover_spec::dataset::quote_ident;
use drover_spec::template::render;
use drover_store::TryMetrics;
use futures_util::StreamExt;
use sqlx::{AssertSqlSafe, Executor};

use super::maps::map_error;
use super::{DataPlane, TaskError, TryId, staged};
use crate::runner::Job;

/// Export jobs in flight at once per task (the MAP queues 10 per instance, runs 2).
const EXPORT_JOBS_AT_ONCE: usize = 4;

/// Spawned jobs, aborted if the task stops before they finish.
struct AbortOnDrop(
    Vec<tokio::task::JoinHandle<Result<drover_map::CompletedExport, drover_map::MapError>>>,
);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        for h in &self.0 {
            h.abort();
        }
    }
}

/// The columns of an activity export, as the MAP documents them, with their staged types.
const ACTIVITY_COLUMNS: &[(&str, &str)] = &[
    ("marketoGUID", "text"),
    ("leadId", "bigint"),
    ("activityDate", "timestamptz"),
    ("activityTypeId", "bigint"),
    ("campaignId", "bigint"),
    ("primaryAttributeValueId", "bigint"),
    ("primaryAttributeValue", "text"),
    ("attributes", "jsonb"),
];

pub(super) async fn run(
    plane: &DataPlane,
    conn: &mut sqlx::PgConnection,
    id: &TryId,
    job: &Job<'_>,
    spec: &ExportSpec,
) -> Result<TryMetrics, TaskError> {
    let client = id.map()?;
    let (requests, columns, key, bounds) = match spec {
        ExportSpec::Leads(leads) => {
            let filters = lead_filters(job, &leads.filter, "export.filter")?;
            let bounds = lead_bounds(job, &leads.filter, &leads.fields)?;
            let mut fields = leads.fields.clone();
            if let Some(b) = bounds.as_ref().filter(|b| b.added) {
                fields.push(b.column.to_owned());
            }
            let types = lead_column_types(client.as_ref(), &fields).await?;
            let requests: Vec<ExportRequest> = filters
                .into_iter()
                .map(|filter| ExportRequest::Leads {
                    fields: fields.clone(),
                    filter,
                })
                .collect();
            (
                requests,
                types,
                leads.fields.iter().any(|f| f == "id").then_some("id"),
                bounds,
            )
        }
        ExportSpec::Activities(a) => {
            let (requests, bounds) = activity_requests(job, a)?;
            let columns = ACTIVITY_COLUMNS
                .iter()
                .map(|(n, t)| ((*n).to_owned(), (*t).to_owned()))
                .collect();
            (requests, columns, Some("marketoGUID"), Some(bounds))
        }
    };
    job.log
        .system(format!("{} export job(s) at the MAP", requests.len()));
    // The jobs run at the MAP side by side (a few at a time: the bulk queue is shared with
    // every other integration of the instance); each file is loaded as soon as its job and
    // the ones before it are done, while the later ones still run.
    let gate = Arc::new(tokio::sync::Semaphore::new(EXPORT_JOBS_AT_ONCE));
    let mut jobs = AbortOnDrop(
        requests
            .into_iter()
            .map(|request| {
                let client = client.clone();
                let gate = gate.clone();
                tokio::spawn(async move {
                    let _turn = gate.acquire_owned().await;
                    client.run_export(request).await
                })
            })
            .collect(),
    );

    let table = staged::output_table(id);
    let relation = staged::output_relation(id);
    let column_list = columns
        .iter()
        .map(|(n, _)| quote_ident(n))
        .collect::<Vec<_>>()
        .join(", ");
    let mut definition = columns
        .iter()
        .map(|(n, t)| format!("{} {t}", quote_ident(n)))
        .collect::<Vec<_>>()
        .join(", ");
    if bounds.is_some() {
        definition.push_str(&format!(", {} integer", quote_ident(half_open::JOB_COLUMN)));
    }
    sqlx::raw_sql(AssertSqlSafe(format!(
        "drop table if exists {relation}; create table {relation} ({definition})"
    )))
    .execute(&mut *conn)
    .await?;
    let copy = format!(
        "copy {relation} ({column_list}) from stdin with (format csv, header match, null 'null')"
    );
    let mut rows: u64 = 0;
    let count = jobs.0.len();
    for (i, handle) in jobs.0.iter_mut().enumerate() {
        let export = handle
            .await
            .map_err(|e| TaskError::Transient(format!("export job {}: {e}", i + 1)))?
            .map_err(map_error)?;
        job.log.system(format!(
            "job {} of {count}: {} records, {} bytes{}",
            i + 1,
            export
                .number_of_records
                .map_or("?".to_owned(), |n| n.to_string()),
            export.file_size.map_or("?".to_owned(), |n| n.to_string()),
            if export.recreated {
                " (recreated after the MAP failed the first job)"
            } else {
                ""
            }
        ));
        if bounds.is_some() {
            half_open::mark_job(conn, &relation, i).await?;
        }
        let mut sink = conn.copy_in_raw(&copy).await?;
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
        rows += sink.finish().await?;
    }
    if let Some(b) = &bounds {
        let dropped = half_open::trim(conn, &relation, b).await?;
        rows -= dropped.min(rows);
        job.log.system(format!(
            "kept rows with {} from {} up to (not including) {}: {dropped} row(s) on the boundaries dropped{}",
            b.column,
            b.since.format("%Y-%m-%dT%H:%M:%S%.fZ"),
            b.ends.last().map_or_else(String::new, |t| t.format("%Y-%m-%dT%H:%M:%S%.fZ").to_string()),
            if b.trim_start { "" } else { " (rows stamped before the start are kept: the MAP's filter saw a change inside the window)" },
        ));
    }
    if count > 1
        && let Some(key) = key
    {
        // A lead changed while the jobs ran can be in two of them (old stamp in an early
        // window, new one in a later): keep the row of the later job.
        let k = quote_ident(key);
        let removed = (&mut *conn)
            .execute(AssertSqlSafe(format!(
                "delete from {relation} a using {relation} b where a.{k} = b.{k} and a.ctid < b.ctid"
            )))
            .await?
            .rows_affected();
        rows -= removed.min(rows);
    }
    let rows = i64::try_from(rows).unwrap_or(i64::MAX);
    staged::register_output(plane, conn, id, &table, rows).await?;
    let usage = client.usage();
    job.log.system(format!(
        "staged {rows} rows ({} bytes downloaded, {} API calls, {} retries)",
        usage.bytes_downloaded, usage.calls, usage.retries
    ));
    Ok(TryMetrics {
        rows_in: Some(rows),
        rows_out: Some(rows),
        rows_rejected: None,
        api_calls: Some(i64::try_from(usage.calls).unwrap_or(i64::MAX)),
        bytes_moved: Some(i64::try_from(usage.bytes_downloaded).unwrap_or(i64::MAX)),
        rows_created: None,
        rows_unchanged: None,
    })
}

/// Column types for lead fields, from the MAP's own description of its fields.
pub(crate) async fn lead_column_types(
    client: &dyn MapConnector,
    fields: &[String],
) -> Result<Vec<(String, String)>, TaskError> {
    let described = client
        .describe_fields(MapObject::Leads)
        .await
        .map_err(map_error)?;
    fields
        .iter()
        .map(|f| {
            let Some(info) = described.iter().find(|d| &d.name == f) else {
                return Err(TaskError::Invalid(format!(
                    "the MAP has no lead field `{f}`{}",
                    drover_spec::suggest::did_you_mean(
                        f,
                        described.iter().map(|d| d.name.as_str())
                    )
                )));
            };
            Ok((f.clone(), postgres_type(&info.data_type).to_owned()))
        })
        .collect()
}

/// The staged type of a MAP data type.
fn postgres_type(data_type: &str) -> &'static str {
    match data_type {
        "integer" | "score" | "reference" => "bigint",
        "float" | "currency" | "percent" => "double precision",
        "boolean" => "boolean",
        "datetime" => "timestamptz",
        "date" => "date",
        _ => "text",
    }
}

/// The export filters of a lead filter, windows split to what one job may span.
pub(crate) fn lead_filters(
    job: &Job<'_>,
    filter: &LeadFilter,
    field: &str,
) -> Result<Vec<LeadExportFilter>, TaskError> {
    match filter {
        LeadFilter::UpdatedAt(w) => Ok(windows(job, w, &format!("{field}.updated_at"))?
            .into_iter()
            .map(LeadExportFilter::UpdatedAt)
            .collect()),
        LeadFilter::CreatedAt(w) => Ok(windows(job, w, &format!("{field}.created_at"))?
            .into_iter()
            .map(LeadExportFilter::CreatedAt)
            .collect()),
        LeadFilter::StaticList(ListRef::Id(list)) => {
            Ok(vec![LeadExportFilter::StaticListId(*list)])
        }
        LeadFilter::StaticList(ListRef::Name(name)) => Err(TaskError::Invalid(format!(
            "static list `{name}`: give the list's numeric id (exports by list name are not supported yet)"
        ))),
    }
}

fn windows(job: &Job<'_>, w: &Window, field: &str) -> Result<Vec<DateWindow>, TaskError> {
    let since = timestamp(job, &w.since, &format!("{field}.since"))?;
    let until = timestamp(job, &w.until, &format!("{field}.until"))?;
    Ok(half_open::covering_windows(since, until)?.0)
}

/// The half-open bounds of a lead export's time filter (none for a static list); `fields` are
/// the ones the DAG asks for (the filter's column is added if missing, and dropped after).
fn lead_bounds(
    job: &Job<'_>,
    filter: &LeadFilter,
    fields: &[String],
) -> Result<Option<half_open::Bounds>, TaskError> {
    let (w, column, trim_start, name) = match filter {
        LeadFilter::UpdatedAt(w) => (w, "updatedAt", false, "updated_at"),
        LeadFilter::CreatedAt(w) => (w, "createdAt", true, "created_at"),
        LeadFilter::StaticList(_) => return Ok(None),
    };
    let field = format!("export.filter.{name}");
    let since = timestamp(job, &w.since, &format!("{field}.since"))?;
    let until = timestamp(job, &w.until, &format!("{field}.until"))?;
    let (_, ends) = half_open::covering_windows(since, until)?;
    Ok(Some(half_open::Bounds {
        column,
        since,
        trim_start,
        ends,
        added: !fields.iter().any(|f| f == column),
    }))
}

fn activity_requests(
    job: &Job<'_>,
    a: &ActivityExport,
) -> Result<(Vec<ExportRequest>, half_open::Bounds), TaskError> {
    let ids = a
        .types
        .iter()
        .map(|t| {
            t.id()
                .ok_or_else(|| TaskError::Invalid(format!("unknown activity type {t:?}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let since = timestamp(job, &a.since, "export.since")?;
    let until = timestamp(job, &a.until, "export.until")?;
    let fields: Vec<String> = ACTIVITY_COLUMNS
        .iter()
        .map(|(n, _)| (*n).to_owned())
        .collect();
    let (windows, ends) = half_open::covering_windows(since, until)?;
    let requests = windows
        .into_iter()
        .map(|w| ExportRequest::Activities {
            activity_type_ids: ids.clone(),
            created_at: w,
            fields: Some(fields.clone()),
        })
        .collect();
    let bounds = half_open::Bounds {
        column: "activityDate",
        since,
        trim_start: true,
        ends,
        added: false,
    };
    Ok((requests, bounds))
}

fn timestamp(job: &Job<'_>, text: &str, field: &str) -> Result<DateTime<Utc>, TaskError> {
    let rendered =
        render(text, field, &job.context).map_err(|e| TaskError::Invalid(e.to_string()))?;
    DateTime::parse_from_rfc3339(rendered.trim())
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| {
            TaskError::Invalid(format!(
                "`{field}` is `{rendered}`, which is not a timestamp like 2026-01-01T00:00:00Z"
            ))
        })
}

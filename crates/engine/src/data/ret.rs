//! `return`: a staged dataset sent back to the MAP — sync calls for small sets, bulk import
//! files for large ones — with a receipt per row: the key, accepted / rejected / warning /
//! unchanged with the MAP's reason, the MAP id, and the record's values before the write (so
//! `revert` can restore them).
//!
//! In order: the dataset's rows are read (in their stored order), repeated lookup keys are
//! refused or collapsed (`on_duplicate_key`), the values before the write of every key are
//! read (`snapshot`), then each row is planned — only the fields whose values change, never a
//! null over a value unless `write_nulls`, nothing for a record that already holds every value
//! — and only then do writes start.
//!
//! The rows to send are read on the try's connection (as the environment's SQL role); the
//! receipt, the values before the write and the MAP's answers are written by Drover's own
//! login in the environment's receipts schema, which user SQL can read but not change.
//!
//! Retry-safe: the values before the write are kept from the first try (a retry never
//! snapshots what the first try wrote), and both write paths are upserts by key.

mod approval;
mod from_export;
mod history;
pub(crate) mod plan;
mod record_plan;
mod side;
pub(crate) mod snapshot;

use std::collections::HashMap;
use std::sync::Arc;

use drover_map::{FileFormat, ImportRequest, MapConnector, RecordStatus, SyncAction, SyncRequest};
use drover_spec::dag::map_kinds::{AUTO_SYNC_MAX_ROWS, OnDuplicateKey, ReturnMode, ReturnSpec};
use drover_spec::dataset::{quote_ident, quote_literal, quoted_relation, receipts_schema};
use drover_store::TryMetrics;
use serde_json::{Map, Value};
use sqlx::{AssertSqlSafe, Executor, Row};

use self::plan::{Current, RowPlan};
use self::side::{Answers, PlanRows, SideTables};
use super::maps::map_error;
use super::{DataPlane, TaskError, TryId, staged};
use crate::runner::Job;

/// Import files stay under the MAP's 10 MB limit with room to spare.
const IMPORT_FILE_BYTES: usize = 9 * 1024 * 1024;
/// Rows read or planned at a time.
const PAGE_ROWS: i64 = 5_000;
/// Repeated keys named in the error of `on_duplicate_key: fail`.
const KEYS_NAMED: i64 = 5;

pub(super) async fn run(
    plane: &DataPlane,
    conn: &mut sqlx::PgConnection,
    id: &TryId,
    job: &Job<'_>,
    spec: &ReturnSpec,
) -> Result<TryMetrics, TaskError> {
    let from = match &spec.from {
        Some(f) => f.clone(),
        None => job.task.depends_on.first().cloned().ok_or_else(|| {
            TaskError::Invalid("a return needs an upstream task to send".to_owned())
        })?,
    };
    let input = staged::input(plane, id, &from).await?;
    let names = input.column_names();
    for f in std::iter::once(&spec.lookup).chain(&spec.fields) {
        if !names.contains(f) {
            return Err(TaskError::Invalid(format!(
                "`{from}` has no column `{f}`{} (columns: {})",
                drover_spec::suggest::did_you_mean(f, names.iter().map(String::as_str)),
                names.join(", ")
            )));
        }
    }
    let client = id.map()?;
    // A lookup the MAP cannot search on (Marketo: 1011) fails here, before anything is sent.
    client
        .check_lookup_field(&spec.lookup)
        .await
        .map_err(|e| match e {
            drover_map::MapError::NotSearchable { .. } => TaskError::Invalid(e.to_string()),
            e => map_error(e),
        })?;
    let mode = match spec.mode {
        ReturnMode::Auto if u64::try_from(input.rows).unwrap_or(u64::MAX) <= AUTO_SYNC_MAX_ROWS => {
            ReturnMode::Sync
        }
        ReturnMode::Auto => ReturnMode::Import,
        m => m,
    };
    job.log.system(format!(
        "{} rows of `{from}` to send by {}, keyed on `{}`",
        input.rows,
        if mode == ReturnMode::Sync {
            "sync calls"
        } else {
            "bulk import"
        },
        spec.lookup
    ));
    let side = SideTables::new(id);
    side.create(plane).await?;
    let read = read_rows(plane, conn, &input.relation, spec, &side).await?;
    let rows = collapse_repeated_keys(plane, spec, &side, job, read).await?;
    if spec.snapshot && side.keys_without_before(plane).await? > 0 {
        // From the DAG's own staged export where it holds the fields; the rest read back.
        if let Err(why) = from_export::take(
            plane,
            conn,
            id,
            job,
            &client,
            spec,
            &from,
            &input.relation,
            &key_expr(&spec.lookup),
            &side.before,
        )
        .await?
        {
            job.log.system(format!(
                "values before the write: read lead by lead ({why})"
            ));
        }
        let s = snapshot::fill(plane, &client, spec, &side).await?;
        job.log.system(format!(
            "values before the write read for {} records ({} not in {}, to be created)",
            s.read,
            s.read - s.found,
            "the MAP"
        ));
    }
    side.analyze(plane).await?;
    let planned = plan_rows(plane, spec, &side).await?;
    side.analyze(plane).await?;
    // Before anything is written, the plan is recorded: what `runs plan` and the run page show.
    let recorded = record_plan::record(plane, id, job, spec, &side).await?;
    job.log.system(format!(
        "sending {} of {} rows: {} unchanged, {} nulls withheld{}",
        planned.to_send,
        rows,
        planned.unchanged,
        planned.withheld,
        if planned.blank_keys > 0 {
            format!(
                ", {} without a `{}` (rejected)",
                planned.blank_keys, spec.lookup
            )
        } else {
            String::new()
        }
    ));
    // A preview run's plan says so (read from the run when the plan was recorded).
    if recorded.preview {
        job.log.system(format!(
            "preview: nothing was sent; {} rows would be sent",
            planned.to_send
        ));
        side.drop_per_try(plane).await?;
        let usage = client.usage();
        return Ok(TryMetrics {
            rows_in: Some(input.rows),
            rows_out: Some(0),
            rows_rejected: Some(0),
            api_calls: Some(i64::try_from(usage.calls).unwrap_or(i64::MAX)),
            bytes_moved: Some(0),
            rows_created: Some(0),
            rows_unchanged: Some(i64::try_from(planned.unchanged).unwrap_or(i64::MAX)),
        });
    }
    approval::gate(plane, id, job, &recorded, &side, &client, input.rows).await?;
    match mode {
        ReturnMode::Sync => send_by_sync(plane, &client, spec, &side).await?,
        _ => send_by_import(plane, &client, spec, &side, job).await?,
    }

    let receipt = staged::receipt_table(id);
    let receipt_relation = quoted_relation(&receipts_schema(&id.environment.name), &receipt);
    let create = format!(
        "create table {receipt_relation} as
         select r.key, coalesce(p.status, a.status, {default_status}) as status,
                coalesce(p.reason, a.reason) as reason,
                coalesce(a.map_id, (b.previous->>'id')::bigint) as map_id,
                b.previous, coalesce(p.payload, r.sent) as sent, p.withheld,
                coalesce(a.created, false) as created
         from {rows} r
         left join {plan} p on p.ord = r.ord
         left join (select distinct on (ord) * from {answers} order by ord, status desc) a on a.ord = r.ord
         left join {before} b on b.key = r.key
         order by r.ord;
         grant select on {receipt_relation} to {role}",
        default_status = if mode == ReturnMode::Sync {
            "'unknown'"
        } else {
            "'accepted'"
        },
        rows = side.rows,
        plan = side.plan,
        answers = side.answers,
        before = side.before,
        role = quote_ident(&drover_spec::dataset::sql_role(&id.environment.name)),
    );
    let mut tx = plane.store.pool().begin().await?;
    sqlx::query(AssertSqlSafe(format!(
        "drop table if exists {receipt_relation}"
    )))
    .execute(&mut *tx)
    .await?;
    sqlx::raw_sql(AssertSqlSafe(create))
        .execute(&mut *tx)
        .await?;
    history::record_touches(
        &mut tx,
        id,
        spec,
        &receipt_relation,
        mode == ReturnMode::Sync,
    )
    .await?;
    tx.commit().await?;
    side.drop_per_try(plane).await?;
    // Created: the MAP said so (sync), or an accepted import row whose key the snapshot did
    // not find; without a snapshot an import cannot tell.
    let created_sql = if mode == ReturnMode::Sync {
        "count(*) filter (where created)"
    } else if spec.snapshot {
        "count(*) filter (where status in ('accepted', 'warning') and previous is null)"
    } else {
        "null::bigint"
    };
    let counts: (i64, i64, i64, Option<i64>, i64) = sqlx::query_as(AssertSqlSafe(format!(
        "select count(*) filter (where status in ('accepted', 'warning')), count(*) filter (where status = 'rejected'), \
                count(*), {created_sql}, count(*) filter (where status = 'unchanged') from {receipt_relation}"
    )))
    .fetch_one(plane.store.pool())
    .await?;
    staged::register_receipt(plane, id, &receipt, counts.2).await?;
    let usage = client.usage();
    job.log.system(format!(
        "the MAP accepted {} rows and rejected {}; {} unchanged, not sent ({} API calls, {} bytes sent)",
        counts.0, counts.1, counts.4, usage.calls, usage.bytes_uploaded
    ));
    Ok(TryMetrics {
        rows_in: Some(input.rows),
        rows_out: Some(counts.0),
        rows_rejected: Some(counts.1),
        api_calls: Some(i64::try_from(usage.calls).unwrap_or(i64::MAX)),
        bytes_moved: Some(i64::try_from(usage.bytes_uploaded).unwrap_or(i64::MAX)),
        rows_created: counts.3,
        rows_unchanged: Some(counts.4),
    })
}

/// The key as compared: emails match whatever their case and surrounding spaces.
fn key_expr(lookup: &str) -> String {
    if lookup.eq_ignore_ascii_case("email") {
        format!("lower(btrim({}::text))", quote_ident(lookup))
    } else {
        format!("{}::text", quote_ident(lookup))
    }
}

fn normalize_key(lookup: &str, key: &str) -> String {
    if lookup.eq_ignore_ascii_case("email") {
        key.trim().to_lowercase()
    } else {
        key.to_owned()
    }
}

fn json_object<'a>(fields: impl Iterator<Item = &'a String>) -> String {
    let pairs: Vec<String> = fields
        .map(|f| format!("{}, {}", quote_literal(f), quote_ident(f)))
        .collect();
    format!("jsonb_build_object({})", pairs.join(", "))
}

fn value_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Copy the dataset's rows (key and values) into `side.rows`, numbered in the table's stored
/// order (its physical order: block, then line). Returns how many.
async fn read_rows(
    plane: &DataPlane,
    conn: &mut sqlx::PgConnection,
    relation: &str,
    spec: &ReturnSpec,
    side: &SideTables,
) -> Result<i64, TaskError> {
    let key = key_expr(&spec.lookup);
    let sent = json_object(std::iter::once(&spec.lookup).chain(&spec.fields));
    (&mut *conn).execute("begin").await?;
    let outcome = async {
        (&mut *conn)
            .execute(AssertSqlSafe(format!(
                "declare drover_rows no scroll cursor for
                 select ((ctid::text::point)[0]::bigint * 65536 + (ctid::text::point)[1]::bigint) as ord,
                        {key} as key, {sent} as sent from {relation}"
            )))
            .await?;
        let mut total = 0i64;
        loop {
            let rows = sqlx::query(AssertSqlSafe(format!(
                "fetch forward {PAGE_ROWS} from drover_rows"
            )))
            .fetch_all(&mut *conn)
            .await?;
            if rows.is_empty() {
                return Ok::<i64, TaskError>(total);
            }
            let mut ords = Vec::with_capacity(rows.len());
            let mut keys = Vec::with_capacity(rows.len());
            let mut sents = Vec::with_capacity(rows.len());
            for row in &rows {
                ords.push(row.try_get::<i64, _>("ord")?);
                keys.push(row.try_get::<Option<String>, _>("key")?);
                sents.push(row.try_get::<Value, _>("sent")?);
            }
            total += i64::try_from(rows.len()).unwrap_or(i64::MAX);
            side.add_rows(plane, &ords, &keys, &sents).await?;
        }
    }
    .await;
    let _ = (&mut *conn).execute("rollback").await;
    let total = outcome?;
    sqlx::raw_sql(AssertSqlSafe(format!(
        "create index on {rows} (key); analyze {rows}",
        rows = side.rows
    )))
    .execute(plane.store.pool())
    .await?;
    Ok(total)
}

/// Refuse a dataset that repeats a lookup key, or keep one row per key, as
/// `on_duplicate_key` says. Returns the rows left.
async fn collapse_repeated_keys(
    plane: &DataPlane,
    spec: &ReturnSpec,
    side: &SideTables,
    job: &Job<'_>,
    rows: i64,
) -> Result<i64, TaskError> {
    let repeated: Vec<(String, i64, i64, i64)> = sqlx::query_as(AssertSqlSafe(format!(
        "select key, n, count(*) over ()::bigint, sum(n) over ()::bigint
         from (select key, count(*) as n from {} where key <> '' group by key having count(*) > 1) d
         order by n desc, key limit {KEYS_NAMED}",
        side.rows
    )))
    .fetch_all(plane.store.pool())
    .await?;
    let Some(&(_, _, keys, repeated_rows)) = repeated.first() else {
        return Ok(rows);
    };
    let order = match spec.on_duplicate_key {
        OnDuplicateKey::Fail => {
            let named: Vec<String> = repeated
                .iter()
                .map(|(k, n, _, _)| format!("{k} ×{n}"))
                .collect();
            return Err(TaskError::Invalid(format!(
                "the dataset repeats {keys} lookup key{} ({}) over {repeated_rows} rows: {}{} — nothing was sent; collapse them with a dedupe step or set `on_duplicate_key: first` or `last`",
                if keys == 1 { "" } else { "s" },
                spec.lookup,
                named.join(", "),
                if keys > KEYS_NAMED { ", …" } else { "" },
            )));
        }
        OnDuplicateKey::First => "asc",
        OnDuplicateKey::Last => "desc",
    };
    let dropped = sqlx::query(AssertSqlSafe(format!(
        "delete from {rows} where ord in (
           select ord from (select ord, row_number() over (partition by key order by ord {order}) as n
                            from {rows} where key <> '') x
           where n > 1)",
        rows = side.rows
    )))
    .execute(plane.store.pool())
    .await?
    .rows_affected();
    job.log.system(format!(
        "{keys} lookup keys repeat: kept the {} row of each, {dropped} rows not sent",
        if order == "asc" { "first" } else { "last" }
    ));
    Ok(rows - i64::try_from(dropped).unwrap_or(0))
}

/// What planning found.
#[derive(Debug, Default)]
struct Planned {
    to_send: u64,
    unchanged: u64,
    withheld: u64,
    blank_keys: u64,
}

/// Plan every row (see [`plan::plan`]) into `side.plan`.
async fn plan_rows(
    plane: &DataPlane,
    spec: &ReturnSpec,
    side: &SideTables,
) -> Result<Planned, TaskError> {
    let mut out = Planned::default();
    let mut after = i64::MIN;
    loop {
        let rows = sqlx::query(AssertSqlSafe(format!(
            "select r.ord, r.key, r.sent, b.previous from {rows} r left join {before} b on b.key = r.key
             where r.ord > $1 order by r.ord limit {PAGE_ROWS}",
            rows = side.rows,
            before = side.before,
        )))
        .bind(after)
        .fetch_all(plane.store.pool())
        .await?;
        if rows.is_empty() {
            return Ok(out);
        }
        let mut p = PlanRows::default();
        for row in &rows {
            let ord: i64 = row.try_get("ord")?;
            after = ord;
            let key: Option<String> = row.try_get("key")?;
            let sent: sqlx::types::Json<Map<String, Value>> = row.try_get("sent")?;
            let previous: Option<sqlx::types::Json<Map<String, Value>>> =
                row.try_get("previous")?;
            p.ords.push(ord);
            if key.as_deref().is_none_or(str::is_empty) {
                out.blank_keys += 1;
                p.statuses.push(Some("rejected"));
                p.reasons.push(Some(format!(
                    "no `{}`: a row without its lookup value cannot be matched, so it was not sent",
                    spec.lookup
                )));
                p.payloads.push(None);
                p.withheld.push(Value::Array(Vec::new()));
                continue;
            }
            let current = match (&previous, spec.snapshot) {
                (_, false) => Current::Unknown,
                (Some(prev), true) => Current::Values(&prev.0),
                (None, true) => Current::Absent,
            };
            let planned = plan::plan(
                &spec.lookup,
                &spec.fields,
                &sent.0,
                current,
                spec.write_nulls,
            );
            let (status, payload, withheld) = match planned {
                RowPlan::Unchanged { withheld } => {
                    out.unchanged += 1;
                    (Some("unchanged"), None, withheld)
                }
                RowPlan::Send { record, withheld } => {
                    out.to_send += 1;
                    (None, Some(Value::Object(record)), withheld)
                }
            };
            out.withheld += withheld.len() as u64;
            p.statuses.push(status);
            p.reasons.push(None);
            p.payloads.push(payload);
            p.withheld.push(Value::Array(
                withheld.into_iter().map(Value::String).collect(),
            ));
        }
        side.add_plan(plane, &p).await?;
    }
}

/// The planned records to send, `PAGE_ROWS` at a time, in the dataset's order: (ord, key,
/// record).
async fn to_send(
    plane: &DataPlane,
    side: &SideTables,
    after: i64,
) -> Result<Vec<(i64, String, Map<String, Value>)>, TaskError> {
    let rows = sqlx::query(AssertSqlSafe(format!(
        "select p.ord, r.key, p.payload from {plan} p join {rows} r on r.ord = p.ord
         where p.status is null and p.ord > $1 order by p.ord limit {PAGE_ROWS}",
        plan = side.plan,
        rows = side.rows,
    )))
    .bind(after)
    .fetch_all(plane.store.pool())
    .await?;
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let payload: sqlx::types::Json<Map<String, Value>> = row.try_get("payload")?;
        out.push((
            row.try_get("ord")?,
            row.try_get::<Option<String>, _>("key")?.unwrap_or_default(),
            payload.0,
        ));
    }
    Ok(out)
}

/// Sync calls of up to `batch_size` records; each result is the answer for the record at its
/// position.
struct SyncBatches<'a> {
    plane: &'a DataPlane,
    client: &'a Arc<dyn MapConnector>,
    spec: &'a ReturnSpec,
    side: &'a SideTables,
    ords: Vec<i64>,
    records: Vec<Map<String, Value>>,
}

impl<'a> SyncBatches<'a> {
    fn new(
        plane: &'a DataPlane,
        client: &'a Arc<dyn MapConnector>,
        spec: &'a ReturnSpec,
        side: &'a SideTables,
    ) -> Self {
        Self {
            plane,
            client,
            spec,
            side,
            ords: Vec::new(),
            records: Vec::new(),
        }
    }

    async fn push(&mut self, ord: i64, record: Map<String, Value>) -> Result<(), TaskError> {
        self.ords.push(ord);
        self.records.push(record);
        if self.records.len() >= self.spec.batch_size as usize {
            self.flush().await?;
        }
        Ok(())
    }

    async fn flush(&mut self) -> Result<(), TaskError> {
        if self.records.is_empty() {
            return Ok(());
        }
        let action = if self.spec.lookup == "id" {
            SyncAction::UpdateOnly
        } else {
            SyncAction::CreateOrUpdate
        };
        let results = self
            .client
            .sync_leads(SyncRequest {
                action,
                lookup_field: self.spec.lookup.clone(),
                partition_name: None,
                records: std::mem::take(&mut self.records),
            })
            .await
            .map_err(map_error)?;
        let mut a = Answers::default();
        for (r, ord) in results.iter().zip(&self.ords) {
            let (status, reason) = match &r.status {
                RecordStatus::Created | RecordStatus::Updated => ("accepted", None),
                RecordStatus::Skipped => (
                    "rejected",
                    Some(
                        r.reasons
                            .iter()
                            .map(|x| format!("{} {}", x.code, x.message))
                            .collect::<Vec<_>>()
                            .join("; "),
                    ),
                ),
                RecordStatus::Deleted => ("rejected", Some("deleted".to_owned())),
                RecordStatus::Other(s) => ("rejected", Some(s.clone())),
            };
            a.ords.push(*ord);
            a.statuses.push(status);
            a.reasons.push(reason);
            a.ids.push(r.id);
            a.created.push(r.status == RecordStatus::Created);
        }
        self.ords.clear();
        self.side.add_answers(self.plane, &a).await
    }
}

async fn send_by_sync(
    plane: &DataPlane,
    client: &Arc<dyn MapConnector>,
    spec: &ReturnSpec,
    side: &SideTables,
) -> Result<(), TaskError> {
    let mut batches = SyncBatches::new(plane, client, spec, side);
    let mut after = i64::MIN;
    loop {
        let page = to_send(plane, side, after).await?;
        let Some(last) = page.last() else {
            return batches.flush().await;
        };
        after = last.0;
        for (ord, _, record) in page {
            batches.push(ord, record).await?;
        }
    }
}

/// One import file being written: the rows that send the same fields.
struct ImportFile {
    writer: csv::Writer<Vec<u8>>,
    rows: usize,
}

/// Import files, one per set of fields sent: a row leaves out the fields it does not write
/// (a CSV cell cannot say "leave as is" in a way Marketo documents for bulk import). Rows that
/// write a null or an empty value (`write_nulls: true`) go by sync calls, whose JSON null
/// clears a field.
async fn send_by_import(
    plane: &DataPlane,
    client: &Arc<dyn MapConnector>,
    spec: &ReturnSpec,
    side: &SideTables,
    job: &Job<'_>,
) -> Result<(), TaskError> {
    let mut files: HashMap<Vec<String>, ImportFile> = HashMap::new();
    let mut sync = SyncBatches::new(plane, client, spec, side);
    let mut sent_files = 0usize;
    let mut after = i64::MIN;
    let header_of = |record: &Map<String, Value>| -> Vec<String> {
        std::iter::once(&spec.lookup)
            .chain(spec.fields.iter().filter(|f| *f != &spec.lookup))
            .filter(|f| record.contains_key(*f))
            .cloned()
            .collect()
    };
    loop {
        let page = to_send(plane, side, after).await?;
        let Some(last) = page.last() else {
            break;
        };
        after = last.0;
        for (ord, _, record) in page {
            if record.values().any(plan::is_empty) {
                sync.push(ord, record).await?;
                continue;
            }
            let header = header_of(&record);
            let file = match files.entry(header.clone()) {
                std::collections::hash_map::Entry::Occupied(o) => o.into_mut(),
                std::collections::hash_map::Entry::Vacant(v) => v.insert(new_file(&header)?),
            };
            file.writer
                .write_record(
                    header
                        .iter()
                        .map(|f| record.get(f).and_then(value_text).unwrap_or_default()),
                )
                .map_err(|e| TaskError::Transient(format!("writing the import file: {e}")))?;
            file.rows += 1;
            // A file is sent when full, and the fullest when all together hold too much.
            let buffered: usize = files.values().map(|f| f.writer.get_ref().len()).sum();
            let fullest = files
                .iter()
                .max_by_key(|(_, f)| f.writer.get_ref().len())
                .map(|(h, f)| (h.clone(), f.writer.get_ref().len()));
            if let Some((h, len)) = fullest
                && (len >= IMPORT_FILE_BYTES || buffered >= 2 * IMPORT_FILE_BYTES)
                && let Some(file) = files.get_mut(&h)
            {
                let full = std::mem::replace(file, new_file(&h)?);
                sent_files += 1;
                import_file(plane, client, spec, side, job, full, sent_files).await?;
            }
        }
    }
    sync.flush().await?;
    for (_, file) in files {
        if file.rows > 0 {
            sent_files += 1;
            import_file(plane, client, spec, side, job, file, sent_files).await?;
        }
    }
    Ok(())
}

async fn import_file(
    plane: &DataPlane,
    client: &Arc<dyn MapConnector>,
    spec: &ReturnSpec,
    side: &SideTables,
    job: &Job<'_>,
    file: ImportFile,
    n: usize,
) -> Result<(), TaskError> {
    let rows = file.rows;
    let body = file
        .writer
        .into_inner()
        .map_err(|e| TaskError::Transient(format!("writing the import file: {e}")))?;
    job.log.system(format!(
        "import file {n}: {rows} rows, {} bytes",
        body.len()
    ));
    let report = client
        .import_leads(ImportRequest {
            file: body.into(),
            format: FileFormat::Csv,
            lookup_field: spec.lookup.clone(),
            list_id: None,
            partition_name: None,
        })
        .await
        .map_err(map_error)?;
    job.log.system(format!(
        "import batch {}: {}",
        report.batch.batch_id,
        report
            .batch
            .message
            .clone()
            .unwrap_or_else(|| report.batch.status.clone())
    ));
    let mut keys = Vec::new();
    let mut statuses = Vec::new();
    let mut reasons = Vec::new();
    for (rows, status) in [
        (&report.failures, "rejected"),
        (&report.warnings, "warning"),
    ] {
        for r in rows {
            keys.push(normalize_key(
                &spec.lookup,
                r.get(&spec.lookup).unwrap_or_default(),
            ));
            statuses.push(status);
            reasons.push(r.reason.clone());
        }
    }
    side.add_answers_by_key(plane, &keys, &statuses, &reasons)
        .await
}

fn new_file(header: &[String]) -> Result<ImportFile, TaskError> {
    let mut w = csv::Writer::from_writer(Vec::with_capacity(1024 * 1024));
    w.write_record(header)
        .map_err(|e| TaskError::Transient(format!("writing the import file: {e}")))?;
    Ok(ImportFile { writer: w, rows: 0 })
}

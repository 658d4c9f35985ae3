//! `return`: a staged dataset sent back to the MAP — sync calls for small sets, bulk import
//! files for large ones — with a receipt per row: the key, accepted / rejected / warning with
//! the MAP's reason, and the record's values before the write (so `revert` can restore them).
//!
//! The rows to send are read on the try's connection (as the environment's SQL role); the
//! receipt, the values before the write and the MAP's answers are written by Drover's own
//! login in the environment's receipts schema, which user SQL can read but not change.
//!
//! Retry-safe: the values before the write are kept from the first try (a retry never
//! snapshots what the first try wrote), and both write paths are upserts by key.

use drover_map::{
    FileFormat, ImportRequest, LeadQuery, MapConnector, RecordStatus, SyncAction, SyncRequest,
};
use drover_spec::dag::map_kinds::{AUTO_SYNC_MAX_ROWS, ReturnMode, ReturnSpec};
use drover_spec::dataset::{
    quote_ident, quote_literal, quoted_relation, receipts_schema, table_name,
};
use drover_store::TryMetrics;
use futures_util::StreamExt;
use sqlx::{AssertSqlSafe, Executor, Row};

use super::maps::map_error;
use super::{DataPlane, TaskError, TryId, staged};
use crate::runner::Job;

/// Import files stay under the MAP's 10 MB limit with room to spare.
const IMPORT_FILE_BYTES: usize = 9 * 1024 * 1024;
/// Reads of the values before the write in flight at once.
const SNAPSHOT_READS_AT_ONCE: usize = 4;
/// Rows read from the dataset at a time in import mode.
const IMPORT_FETCH_ROWS: i64 = 5_000;

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
    let mode = match spec.mode {
        ReturnMode::Auto if u64::try_from(input.rows).unwrap_or(u64::MAX) <= AUTO_SYNC_MAX_ROWS => {
            ReturnMode::Sync
        }
        ReturnMode::Auto => ReturnMode::Import,
        m => m,
    };
    job.log.system(format!(
        "sending {} rows of `{from}` by {}, keyed on `{}`",
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
    let key = key_expr(&spec.lookup);
    let sent = json_object(std::iter::once(&spec.lookup).chain(&spec.fields));
    let query = match mode {
        ReturnMode::Sync => format!(
            "select {key} as key, {sent} as sent from {}",
            input.relation
        ),
        _ => format!(
            "select {key} as key, {sent} as sent, array[{}] as vals from {}",
            std::iter::once(&spec.lookup)
                .chain(&spec.fields)
                .map(|f| format!("{}::text", quote_ident(f)))
                .collect::<Vec<_>>()
                .join(", "),
            input.relation
        ),
    };
    (&mut *conn).execute("begin").await?;
    (&mut *conn)
        .execute(AssertSqlSafe(format!(
            "declare drover_rows no scroll cursor for {query}"
        )))
        .await?;
    let outcome = match mode {
        ReturnMode::Sync => send_by_sync(plane, conn, &client, spec, &side).await,
        _ => send_by_import(plane, conn, &client, spec, &side, job).await,
    };
    let _ = (&mut *conn).execute("rollback").await;
    outcome?;

    let receipt = staged::receipt_table(id);
    let receipt_relation = quoted_relation(&receipts_schema(&id.environment.name), &receipt);
    let create = format!(
        "create table {receipt_relation} as
         select i.key, coalesce(r.status, {default_status}) as status, r.reason, r.map_id, p.previous, i.sent
         from {sent_rows} i
         left join (select distinct on (key) * from {results} order by key, status desc) r on r.key = i.key
         left join {prev} p on p.key = i.key;
         grant select on {receipt_relation} to {role}",
        default_status = if mode == ReturnMode::Sync { "'unknown'" } else { "'accepted'" },
        sent_rows = side.sent,
        results = side.results,
        prev = side.prev,
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
    tx.commit().await?;
    side.drop_results(plane).await?;
    let counts: (i64, i64, i64, i64) = sqlx::query_as(AssertSqlSafe(format!(
        "select count(*) filter (where status in ('accepted', 'warning')), count(*) filter (where status = 'rejected'), count(*), \
                count(*) filter (where status in ('accepted', 'warning') and previous is null) from {receipt_relation}"
    )))
    .fetch_one(plane.store.pool())
    .await?;
    staged::register_receipt(plane, id, &receipt, counts.2).await?;
    let usage = client.usage();
    job.log.system(format!(
        "the MAP accepted {} rows and rejected {} ({} API calls, {} bytes sent)",
        counts.0, counts.1, usage.calls, usage.bytes_uploaded
    ));
    Ok(TryMetrics {
        rows_in: Some(input.rows),
        rows_out: Some(counts.0),
        rows_rejected: Some(counts.1),
        api_calls: Some(i64::try_from(usage.calls).unwrap_or(i64::MAX)),
        bytes_moved: Some(i64::try_from(usage.bytes_uploaded).unwrap_or(i64::MAX)),
        rows_created: Some(counts.3),
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

/// Per-try side tables in the receipts schema, written by Drover's own login: the values
/// before the write (kept across tries), the MAP's answers and the rows sent.
struct SideTables {
    prev: String,
    results: String,
    sent: String,
}

impl SideTables {
    fn new(id: &TryId) -> Self {
        let schema = receipts_schema(&id.environment.name);
        let side =
            |suffix| quoted_relation(&schema, &table_name(&id.run, &id.task_id, Some(suffix)));
        Self {
            prev: side("before"),
            results: side("answers"),
            sent: side("sent"),
        }
    }

    async fn create(&self, plane: &DataPlane) -> Result<(), TaskError> {
        sqlx::raw_sql(AssertSqlSafe(format!(
            "create table if not exists {} (key text primary key, previous jsonb);
             drop table if exists {};
             create table {} (key text, status text, reason text, map_id bigint);
             drop table if exists {};
             create table {} (key text, sent jsonb);",
            self.prev, self.results, self.results, self.sent, self.sent
        )))
        .execute(plane.store.pool())
        .await?;
        Ok(())
    }

    async fn drop_results(&self, plane: &DataPlane) -> Result<(), TaskError> {
        sqlx::raw_sql(AssertSqlSafe(format!(
            "drop table if exists {}; drop table if exists {}",
            self.results, self.sent
        )))
        .execute(plane.store.pool())
        .await?;
        Ok(())
    }

    /// Note the rows about to be sent.
    async fn sending(
        &self,
        plane: &DataPlane,
        keys: &[String],
        sent: &[serde_json::Value],
    ) -> Result<(), TaskError> {
        sqlx::query(AssertSqlSafe(format!(
            "insert into {} (key, sent) select * from unnest($1::text[], $2::jsonb[])",
            self.sent
        )))
        .bind(keys)
        .bind(sent)
        .execute(plane.store.pool())
        .await?;
        Ok(())
    }

    /// Record the values before the write of the keys not yet recorded.
    async fn snapshot(
        &self,
        plane: &DataPlane,
        client: &std::sync::Arc<dyn MapConnector>,
        spec: &ReturnSpec,
        keys: &[String],
    ) -> Result<(), TaskError> {
        if !spec.snapshot || keys.is_empty() {
            return Ok(());
        }
        let known: Vec<String> = sqlx::query_scalar(AssertSqlSafe(format!(
            "select key from {} where key = any($1)",
            self.prev
        )))
        .bind(keys)
        .fetch_all(plane.store.pool())
        .await?;
        let missing: Vec<String> = keys
            .iter()
            .filter(|k| !known.contains(k))
            .cloned()
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        let mut fields = vec!["id".to_owned(), spec.lookup.clone()];
        fields.extend(spec.fields.iter().filter(|f| *f != "id").cloned());
        fields.dedup();
        // Several reads at once: the client's own limiter keeps them within the MAP's limits.
        let reads: Vec<_> = missing
            .chunks(drover_map::MAX_BATCH)
            .map(|values| {
                client.fetch_leads(LeadQuery {
                    filter_type: spec.lookup.clone(),
                    values: values.to_vec(),
                    fields: fields.clone(),
                })
            })
            .collect();
        let found: Vec<drover_map::Record> = futures_util::stream::iter(reads)
            .buffer_unordered(SNAPSHOT_READS_AT_ONCE)
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .collect::<Result<Vec<_>, _>>()
            .map_err(map_error)?
            .into_iter()
            .flatten()
            .collect();
        let mut found_keys = Vec::with_capacity(found.len());
        let mut previous = Vec::with_capacity(found.len());
        for mut record in found {
            let Some(k) = record.get(&spec.lookup).and_then(value_text) else {
                continue;
            };
            // A field the MAP leaves out of a record is null: say so, so revert clears it.
            for f in &fields {
                record.entry(f.clone()).or_insert(serde_json::Value::Null);
            }
            found_keys.push(normalize_key(&spec.lookup, &k));
            previous.push(serde_json::Value::Object(record));
        }
        sqlx::query(AssertSqlSafe(format!(
            "insert into {} (key, previous) select * from unnest($1::text[], $2::jsonb[]) on conflict (key) do nothing",
            self.prev
        )))
        .bind(&found_keys)
        .bind(&previous)
        .execute(plane.store.pool())
        .await?;
        Ok(())
    }

    async fn answers(
        &self,
        plane: &DataPlane,
        keys: &[String],
        statuses: &[&str],
        reasons: &[Option<String>],
        ids: &[Option<i64>],
    ) -> Result<(), TaskError> {
        sqlx::query(AssertSqlSafe(format!(
            "insert into {} (key, status, reason, map_id) select * from unnest($1::text[], $2::text[], $3::text[], $4::bigint[])",
            self.results
        )))
        .bind(keys)
        .bind(statuses)
        .bind(reasons)
        .bind(ids)
        .execute(plane.store.pool())
        .await?;
        Ok(())
    }
}

fn value_text(v: &serde_json::Value) -> Option<String> {
    match v {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        serde_json::Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

async fn send_by_sync(
    plane: &DataPlane,
    conn: &mut sqlx::PgConnection,
    client: &std::sync::Arc<dyn MapConnector>,
    spec: &ReturnSpec,
    side: &SideTables,
) -> Result<(), TaskError> {
    let action = if spec.lookup == "id" {
        SyncAction::UpdateOnly
    } else {
        SyncAction::CreateOrUpdate
    };
    loop {
        let rows = sqlx::query(AssertSqlSafe(format!(
            "fetch forward {} from drover_rows",
            spec.batch_size
        )))
        .fetch_all(&mut *conn)
        .await?;
        if rows.is_empty() {
            return Ok(());
        }
        let mut keys = Vec::with_capacity(rows.len());
        let mut records = Vec::with_capacity(rows.len());
        for row in &rows {
            let key: Option<String> = row.try_get("key")?;
            let rec: sqlx::types::Json<serde_json::Map<String, serde_json::Value>> =
                row.try_get("sent")?;
            keys.push(key.unwrap_or_default());
            records.push(rec.0);
        }
        let sent: Vec<serde_json::Value> = records
            .iter()
            .map(|r| serde_json::Value::Object(r.clone()))
            .collect();
        side.sending(plane, &keys, &sent).await?;
        side.snapshot(plane, client, spec, &keys).await?;
        let results = client
            .sync_leads(SyncRequest {
                action,
                lookup_field: spec.lookup.clone(),
                partition_name: None,
                records,
            })
            .await
            .map_err(map_error)?;
        let mut statuses = Vec::with_capacity(results.len());
        let mut reasons = Vec::with_capacity(results.len());
        let mut ids = Vec::with_capacity(results.len());
        for r in &results {
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
            statuses.push(status);
            reasons.push(reason);
            ids.push(r.id);
        }
        let n = results.len().min(keys.len());
        side.answers(plane, &keys[..n], &statuses[..n], &reasons[..n], &ids[..n])
            .await?;
    }
}

async fn send_by_import(
    plane: &DataPlane,
    conn: &mut sqlx::PgConnection,
    client: &std::sync::Arc<dyn MapConnector>,
    spec: &ReturnSpec,
    side: &SideTables,
    job: &Job<'_>,
) -> Result<(), TaskError> {
    let header: Vec<&str> = std::iter::once(spec.lookup.as_str())
        .chain(spec.fields.iter().map(String::as_str))
        .collect();
    let mut file = new_file(&header)?;
    let mut keys: Vec<String> = Vec::new();
    let mut files = 0;
    loop {
        let rows = sqlx::query(AssertSqlSafe(format!(
            "fetch forward {IMPORT_FETCH_ROWS} from drover_rows"
        )))
        .fetch_all(&mut *conn)
        .await?;
        let last = rows.is_empty();
        let mut fetched = Vec::with_capacity(rows.len());
        let mut sent = Vec::with_capacity(rows.len());
        for row in &rows {
            let key: Option<String> = row.try_get("key")?;
            let vals: Vec<Option<String>> = row.try_get("vals")?;
            let record: serde_json::Value = row.try_get("sent")?;
            file.write_record(vals.iter().map(|v| v.as_deref().unwrap_or("")))
                .map_err(|e| TaskError::Transient(format!("writing the import file: {e}")))?;
            fetched.push(key.clone().unwrap_or_default());
            sent.push(record);
            keys.push(key.unwrap_or_default());
        }
        side.sending(plane, &fetched, &sent).await?;
        let size = file.get_ref().len();
        if (last && !keys.is_empty()) || size >= IMPORT_FILE_BYTES {
            let body = std::mem::replace(&mut file, new_file(&header)?)
                .into_inner()
                .map_err(|e| TaskError::Transient(format!("writing the import file: {e}")))?;
            files += 1;
            job.log.system(format!(
                "import file {files}: {} rows, {} bytes",
                keys.len(),
                body.len()
            ));
            for chunk in keys.chunks(10_000) {
                side.snapshot(plane, client, spec, chunk).await?;
            }
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
            let mut k = Vec::new();
            let mut statuses = Vec::new();
            let mut reasons = Vec::new();
            for (rows, status) in [
                (&report.failures, "rejected"),
                (&report.warnings, "warning"),
            ] {
                for r in rows {
                    k.push(normalize_key(
                        &spec.lookup,
                        r.get(&spec.lookup).unwrap_or_default(),
                    ));
                    statuses.push(status);
                    reasons.push(Some(r.reason.clone()));
                }
            }
            let ids = vec![None; k.len()];
            side.answers(plane, &k, &statuses, &reasons, &ids).await?;
            keys.clear();
        }
        if last {
            return Ok(());
        }
    }
}

fn new_file(header: &[&str]) -> Result<csv::Writer<Vec<u8>>, TaskError> {
    let mut w = csv::Writer::from_writer(Vec::with_capacity(IMPORT_FILE_BYTES + 1024 * 1024));
    w.write_record(header)
        .map_err(|e| TaskError::Transient(format!("writing the import file: {e}")))?;
    Ok(w)
}

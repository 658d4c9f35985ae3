//! Bulk Import of leads: multipart upload → Queued → Importing → Complete|Failed, with failure
//! and warning files (original columns plus `Import Failure Reason` / `Import Warning Reason`).

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Extension;
use axum::body::Bytes;
use axum::extract::multipart::MultipartRejection;
use axum::extract::{Multipart, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value as Json, json};
use tokio::sync::Notify;

use crate::auth::Caller;
use crate::data::{self, FIELDS};
use crate::envelope::{self, ApiError, ApiResult};
use crate::extract::Format;
use crate::faults::{PartialImportFault, Purpose};
use crate::rules;
use crate::state::AppState;
use crate::store::WriteVia;

/// Largest import file (Marketo: 10 MB).
pub(crate) const MAX_FILE: usize = 10 * 1024 * 1024;
/// Body limit of the import call: the file plus multipart overhead.
pub(crate) const MAX_BODY: usize = MAX_FILE + 64 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ImportStatus {
    Queued,
    Importing,
    Complete,
    Failed,
}

impl ImportStatus {
    fn name(self) -> &'static str {
        match self {
            ImportStatus::Queued => "Queued",
            ImportStatus::Importing => "Importing",
            ImportStatus::Complete => "Complete",
            ImportStatus::Failed => "Failed",
        }
    }
}

#[derive(Debug)]
struct ImportJob {
    id: u32,
    owner: String,
    status: ImportStatus,
    format: Format,
    lookup: usize,
    list_id: Option<u32>,
    data: Option<Bytes>,
    processed: u64,
    failed: u64,
    warned: u64,
    message: Option<String>,
    failures: Bytes,
    warnings: Bytes,
}

impl ImportJob {
    fn to_json(&self) -> Json {
        let mut o = json!({
            "batchId": self.id,
            "importId": self.id.to_string(),
            "status": self.status.name(),
            "numOfLeadsProcessed": self.processed,
            "numOfRowsFailed": self.failed,
            "numOfRowsWithWarning": self.warned,
        });
        if let (Some(m), Some(map)) = (&self.message, o.as_object_mut()) {
            map.insert("message".to_owned(), json!(m));
        }
        o
    }
}

/// All import batches.
#[derive(Debug)]
pub(crate) struct ImportQueue {
    jobs: Mutex<Vec<ImportJob>>,
    notify: Notify,
    next_id: AtomicU32,
}

impl Default for ImportQueue {
    fn default() -> Self {
        Self {
            jobs: Mutex::new(Vec::new()),
            notify: Notify::new(),
            next_id: AtomicU32::new(1001),
        }
    }
}

impl ImportQueue {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<ImportJob>> {
        self.jobs.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Counts by status, for the admin stats.
    pub(crate) fn summary(&self) -> Json {
        let jobs = self.lock();
        let mut m = serde_json::Map::new();
        for j in jobs.iter() {
            let e = m.entry(j.status.name()).or_insert(json!(0));
            *e = json!(e.as_u64().unwrap_or(0) + 1);
        }
        Json::Object(m)
    }
}

/// Query parameters of the import call (they may also come as form fields).
#[derive(Debug, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ImportQuery {
    format: Option<String>,
    lookup_field: Option<String>,
    list_id: Option<String>,
    partition_name: Option<String>,
}

fn too_large() -> Response {
    (StatusCode::PAYLOAD_TOO_LARGE, "Request Entity Too Large").into_response()
}

/// `POST /bulk/v1/leads.json`.
pub(crate) async fn create(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Query(mut q): Query<ImportQuery>,
    headers: HeaderMap,
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<Response, ApiError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > MAX_BODY) {
        return Ok(too_large());
    }
    let mut multipart = multipart.map_err(|_| ApiError::invalid_multipart())?;
    let mut file: Option<Bytes> = None;
    loop {
        let field = match multipart.next_field().await {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => return Ok(too_large()),
            Err(_) => return Err(ApiError::invalid_multipart()),
        };
        let name = field.name().unwrap_or_default().to_owned();
        let bytes = match field.bytes().await {
            Ok(b) => b,
            Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => return Ok(too_large()),
            Err(_) => return Err(ApiError::invalid_multipart()),
        };
        let text = || Some(String::from_utf8_lossy(&bytes).trim().to_owned());
        match name.as_str() {
            "file" => file = Some(bytes.clone()),
            "format" if q.format.is_none() => q.format = text(),
            "lookupField" if q.lookup_field.is_none() => q.lookup_field = text(),
            "listId" if q.list_id.is_none() => q.list_id = text(),
            "partitionName" if q.partition_name.is_none() => q.partition_name = text(),
            _ => {}
        }
    }
    let file = file.ok_or_else(ApiError::invalid_multipart)?;
    if file.len() > MAX_FILE {
        return Ok(too_large());
    }
    let format_name = q
        .format
        .filter(|f| !f.is_empty())
        .ok_or_else(|| ApiError::blank("format"))?;
    let format = Format::parse(&format_name)
        .ok_or_else(|| ApiError::invalid(format!("Invalid format '{format_name}'")))?;
    let lookup_name = q
        .lookup_field
        .filter(|f| !f.is_empty())
        .unwrap_or_else(|| "email".to_owned());
    let lookup = data::searchable_index(&lookup_name).ok_or_else(|| {
        ApiError::new(1011, format!("Lookup field '{lookup_name}' not supported"))
    })?;
    let list_id = match q.list_id.filter(|l| !l.is_empty()) {
        None => None,
        Some(l) => Some(
            l.parse::<u32>()
                .map_err(|_| ApiError::invalid(format!("Invalid listId '{l}'")))?,
        ),
    };
    let mut jobs = state.imports.lock();
    let active = jobs
        .iter()
        .filter(|j| matches!(j.status, ImportStatus::Queued | ImportStatus::Importing))
        .count();
    if active as u64 >= u64::from(state.limits.queued_jobs) {
        return Err(ApiError::new(1016, "Too many imports"));
    }
    let id = state.imports.next_id.fetch_add(1, Ordering::Relaxed);
    let job = ImportJob {
        id,
        owner: caller.client_id,
        status: ImportStatus::Queued,
        format,
        lookup,
        list_id,
        data: Some(file),
        processed: 0,
        failed: 0,
        warned: 0,
        message: None,
        failures: Bytes::new(),
        warnings: Bytes::new(),
    };
    // The docs' example shows {batchId, importId, status}; the spec also requires
    // numOfLeadsProcessed, so the zero counters are included.
    let out = job.to_json();
    jobs.push(job);
    drop(jobs);
    tokio::spawn(run_import(state.clone(), id));
    Ok(envelope::ok(vec![out]))
}

async fn pause(state: &AppState, d: Duration) {
    if !d.is_zero() {
        tokio::select! {
            () = tokio::time::sleep(d) => {}
            () = state.shutdown.cancelled() => {}
        }
    }
}

async fn run_import(state: Arc<AppState>, id: u32) {
    let (queue_latency, processing_latency) = state.job_latency();
    pause(&state, queue_latency).await;
    let (data, format, lookup, list_id) = loop {
        if state.shutdown.is_cancelled() {
            return;
        }
        {
            let mut jobs = state.imports.lock();
            let running = jobs
                .iter()
                .filter(|j| j.status == ImportStatus::Importing)
                .count();
            let first = jobs
                .iter()
                .find(|j| j.status == ImportStatus::Queued)
                .map(|j| j.id);
            if running as u64 >= u64::from(state.limits.processing_jobs) || first != Some(id) {
                // wait below
            } else if let Some(job) = jobs.iter_mut().find(|j| j.id == id) {
                job.status = ImportStatus::Importing;
                break (
                    job.data.take().unwrap_or_default(),
                    job.format,
                    job.lookup,
                    job.list_id,
                );
            } else {
                return;
            }
        }
        let _ =
            tokio::time::timeout(Duration::from_millis(100), state.imports.notify.notified()).await;
    };
    let fail = state
        .faults()
        .slow_jobs
        .is_some_and(|s| state.dice.chance(Purpose::JobFailure, s.fail_probability));
    let partial = state.faults().partial_import;
    let st = state.clone();
    let outcome = tokio::task::spawn_blocking(move || {
        process(&st, id, &data, format, lookup, list_id, partial.as_ref())
    })
    .await;
    pause(&state, processing_latency).await;
    {
        let mut jobs = state.imports.lock();
        if let Some(job) = jobs.iter_mut().find(|j| j.id == id) {
            match outcome {
                Ok(Ok(o)) if !fail => {
                    job.status = ImportStatus::Complete;
                    job.processed = o.processed;
                    job.failed = o.failed;
                    job.warned = o.warned;
                    job.failures = o.failures.into();
                    job.warnings = o.warnings.into();
                    job.message = Some(message(o.processed, o.failed, o.warned));
                }
                Ok(Ok(_)) => {
                    job.status = ImportStatus::Failed;
                    job.message = Some(
                        "Import failed due to an internal error; please retry the import"
                            .to_owned(),
                    );
                }
                Ok(Err(fatal)) => {
                    job.status = ImportStatus::Failed;
                    job.message = Some(fatal);
                }
                Err(e) => {
                    job.status = ImportStatus::Failed;
                    job.message = Some(format!("Import failed: {e}"));
                }
            }
        }
    }
    state.imports.notify.notify_waiters();
}

/// Marketo's status message for a finished batch.
fn message(processed: u64, failed: u64, warned: u64) -> String {
    if failed > 0 {
        format!(
            "Import completed with errors, {processed} records imported ({processed} members), {failed} failed"
        )
    } else if warned > 0 {
        let w = if warned == 1 { "warning" } else { "warnings" };
        format!(
            "Import succeeded, {processed} records imported ({processed} members), {warned} {w}."
        )
    } else {
        format!("Import succeeded, {processed} records imported ({processed} members)")
    }
}

struct Outcome {
    processed: u64,
    failed: u64,
    warned: u64,
    failures: Vec<u8>,
    warnings: Vec<u8>,
}

/// One parsed row waiting for the store.
struct Row {
    record: csv::StringRecord,
    values: Vec<(usize, data::Value)>,
    key: String,
    warn: Option<String>,
}

const ROWS_PER_LOCK: usize = 4096;

fn process(
    state: &AppState,
    batch: u32,
    input: &[u8],
    format: Format,
    lookup: usize,
    list_id: Option<u32>,
    partial: Option<&PartialImportFault>,
) -> Result<Outcome, String> {
    let mut rdr = csv::ReaderBuilder::new()
        .delimiter(format.delimiter())
        .has_headers(false)
        .flexible(true)
        .from_reader(input);
    let mut records = rdr.records();
    let header = match records.next() {
        Some(Ok(h)) => h,
        Some(Err(e)) => return Err(format!("Import failed: cannot read header: {e}")),
        None => return Err("Import failed: empty file".to_owned()),
    };
    let mut cols = Vec::with_capacity(header.len());
    for name in header.iter() {
        let name = name.trim();
        cols.push(
            data::field_index(name)
                .ok_or_else(|| format!("Import failed: field '{name}' not found"))?,
        );
    }
    let lookup_col = cols.iter().position(|c| *c == lookup).ok_or_else(|| {
        format!(
            "Import failed: lookup field '{}' not in file",
            FIELDS[lookup].rest
        )
    })?;
    let email_col = cols.iter().position(|c| *c == data::EMAIL);
    let writer = || {
        csv::WriterBuilder::new()
            .delimiter(format.delimiter())
            .from_writer(Vec::new())
    };
    let (mut fail_w, mut warn_w) = (writer(), writer());
    let with_extra = |extra: &str| {
        header
            .iter()
            .chain([extra])
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    let io = |e: csv::Error| format!("Import failed: {e}");
    fail_w
        .write_record(with_extra("Import Failure Reason"))
        .map_err(io)?;
    warn_w
        .write_record(with_extra("Import Warning Reason"))
        .map_err(io)?;
    let (mut processed, mut failed, mut warned) = (0u64, 0u64, 0u64);
    let source = u64::from(batch);
    let mut done = false;
    while !done {
        let mut rows: Vec<Row> = Vec::with_capacity(ROWS_PER_LOCK);
        let mut fail = |rec: &csv::StringRecord, reason: &str, w: &mut csv::Writer<Vec<u8>>| {
            failed += 1;
            w.write_record(rec.iter().chain([reason]))
        };
        while rows.len() < ROWS_PER_LOCK {
            let rec = match records.next() {
                None => {
                    done = true;
                    break;
                }
                Some(Err(e)) => return Err(format!("Import failed: malformed file: {e}")),
                Some(Ok(r)) => r,
            };
            if rec.len() != cols.len() {
                fail(&rec, "Invalid number of columns", &mut fail_w).map_err(io)?;
                continue;
            }
            let key = rec.get(lookup_col).unwrap_or_default().trim().to_owned();
            if key.is_empty() {
                fail(
                    &rec,
                    &format!(
                        "Value for lookup field '{}' not specified",
                        FIELDS[lookup].rest
                    ),
                    &mut fail_w,
                )
                .map_err(io)?;
                continue;
            }
            let mut values = Vec::with_capacity(cols.len());
            let mut bad = None;
            for (cell, &idx) in rec.iter().zip(&cols) {
                if FIELDS[idx].read_only {
                    continue;
                }
                match data::parse_text(idx, cell) {
                    Ok(Some(v)) => values.push((idx, v)),
                    Ok(None) => {}
                    Err(e) => {
                        bad = Some(e.to_string());
                        break;
                    }
                }
            }
            if let Some(reason) = bad {
                fail(&rec, &reason, &mut fail_w).map_err(io)?;
                continue;
            }
            let email = email_col.and_then(|c| rec.get(c));
            let verdict = rules::check(partial, state.seed, email, &key);
            if let Some(reason) = verdict.fail {
                fail(&rec, &reason, &mut fail_w).map_err(io)?;
                continue;
            }
            rows.push(Row {
                record: rec,
                values,
                key,
                warn: verdict.warn,
            });
        }
        let now = state.clock.now().timestamp();
        let mut store = state.write_store();
        for row in rows {
            let target = match lookup {
                data::ID => match row.key.parse::<u32>().ok().filter(|id| store.exists(*id)) {
                    Some(id) => Some(id),
                    None => {
                        fail(&row.record, "Lead not found", &mut fail_w).map_err(io)?;
                        continue;
                    }
                },
                data::EMAIL => store.find_by_email(&row.key).last().copied(),
                idx => store.find_by_field(idx, &row.key).last().copied(),
            };
            let id = match target {
                Some(id) => {
                    store.update(id, row.values, now, (WriteVia::Import, source));
                    id
                }
                None => store.create(row.values, now, (WriteVia::Import, source)),
            };
            if let Some(l) = list_id {
                store.add_to_list(l, id);
            }
            processed += 1;
            if let Some(reason) = row.warn {
                warned += 1;
                warn_w
                    .write_record(row.record.iter().chain([reason.as_str()]))
                    .map_err(io)?;
            }
        }
        drop(store);
        let mut jobs = state.imports.lock();
        if let Some(job) = jobs.iter_mut().find(|j| j.id == batch) {
            job.processed = processed;
            job.failed = failed;
            job.warned = warned;
        }
    }
    let bytes = |w: csv::Writer<Vec<u8>>| w.into_inner().map_err(|e| format!("Import failed: {e}"));
    Ok(Outcome {
        processed,
        failed,
        warned,
        failures: bytes(fail_w)?,
        warnings: bytes(warn_w)?,
    })
}

fn batch_id(raw: &str) -> Result<u32, ApiError> {
    raw.strip_suffix(".json")
        .unwrap_or(raw)
        .parse()
        .map_err(|_| ApiError::invalid(format!("Invalid batch id '{raw}'")))
}

fn not_found(id: u32) -> ApiError {
    ApiError::new(1003, format!("Import batch '{id}' not found"))
}

/// `GET /bulk/v1/leads/batch/{batchId}.json`.
pub(crate) async fn status(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path(raw): Path<String>,
) -> ApiResult {
    let id = batch_id(&raw)?;
    let jobs = state.imports.lock();
    let job = jobs
        .iter()
        .find(|j| j.id == id && j.owner == caller.client_id)
        .ok_or_else(|| not_found(id))?;
    Ok(envelope::ok(vec![job.to_json()]))
}

fn rows_file(state: &AppState, caller: &Caller, raw: &str, warnings: bool) -> ApiResult {
    let id = batch_id(raw)?;
    let jobs = state.imports.lock();
    let job = jobs
        .iter()
        .find(|j| j.id == id && j.owner == caller.client_id)
        .ok_or_else(|| not_found(id))?;
    let body = if warnings {
        job.warnings.clone()
    } else {
        job.failures.clone()
    };
    Ok(([(header::CONTENT_TYPE, "text/csv")], body).into_response())
}

/// `GET /bulk/v1/leads/batch/{batchId}/failures.json`.
pub(crate) async fn failures(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path(raw): Path<String>,
) -> ApiResult {
    rows_file(&state, &caller, &raw, false)
}

/// `GET /bulk/v1/leads/batch/{batchId}/warnings.json`.
pub(crate) async fn warnings(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path(raw): Path<String>,
) -> ApiResult {
    rows_file(&state, &caller, &raw, true)
}

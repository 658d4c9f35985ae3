//! Bulk Extract of leads and activities: create → enqueue → Queued → Processing → Completed,
//! with Marketo's queue limits (2 processing, 10 queued, shared by both objects), the daily
//! export quota, files written to the work directory, and `Range` downloads.

use std::collections::HashMap;
use std::io::{self, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Extension;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use serde::Deserialize;
use serde_json::{Value as Json, json};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio::sync::Notify;

use crate::auth::Caller;
use crate::clock::{iso, parse_iso};
use crate::data::{self, Activity, Lead, Value};
use crate::envelope::{self, ApiError, ApiResult};
use crate::faults::Purpose;
use crate::state::AppState;

/// The object a job exports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ExportObject {
    Leads,
    Activities,
}

/// Bulk job states.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum JobStatus {
    Created,
    Queued,
    Processing,
    Completed,
    Failed,
    Cancelled,
}

impl JobStatus {
    pub(crate) fn name(self) -> &'static str {
        match self {
            JobStatus::Created => "Created",
            JobStatus::Queued => "Queued",
            JobStatus::Processing => "Processing",
            JobStatus::Completed => "Completed",
            JobStatus::Failed => "Failed",
            // The docs' cancel examples say "Cancelled"; the status lists say "Canceled".
            JobStatus::Cancelled => "Cancelled",
        }
    }
}

/// File formats of bulk files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    Csv,
    Tsv,
    Ssv,
}

impl Format {
    pub(crate) fn parse(s: &str) -> Option<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "csv" => Some(Format::Csv),
            "tsv" => Some(Format::Tsv),
            "ssv" => Some(Format::Ssv),
            _ => None,
        }
    }
    pub(crate) fn name(self) -> &'static str {
        match self {
            Format::Csv => "CSV",
            Format::Tsv => "TSV",
            Format::Ssv => "SSV",
        }
    }
    /// Field delimiter (SSV is semicolon-separated).
    pub(crate) fn delimiter(self) -> u8 {
        match self {
            Format::Csv => b',',
            Format::Tsv => b'\t',
            Format::Ssv => b';',
        }
    }
}

/// Which leads a lead export selects.
#[derive(Debug, Clone)]
enum LeadFilter {
    CreatedAt(i64, i64),
    UpdatedAt(i64, i64),
    StaticList(u32),
}

/// What a job writes.
#[derive(Debug, Clone)]
enum Selection {
    Leads {
        fields: Vec<usize>,
        filter: LeadFilter,
    },
    Activities {
        columns: Vec<usize>,
        from: i64,
        to: i64,
        types: Option<Vec<u32>>,
    },
}

const ACTIVITY_COLUMNS: &[&str] = &[
    "marketoGUID",
    "leadId",
    "activityDate",
    "activityTypeId",
    "campaignId",
    "primaryAttributeValueId",
    "primaryAttributeValue",
    "attributes",
    "actionResult",
];
const DEFAULT_ACTIVITY_COLUMNS: usize = 8;

#[derive(Debug)]
struct ExportJob {
    id: String,
    object: ExportObject,
    owner: String,
    status: JobStatus,
    created_at: DateTime<Utc>,
    queued_at: Option<DateTime<Utc>>,
    started_at: Option<DateTime<Utc>>,
    finished_at: Option<DateTime<Utc>>,
    queue_seq: u64,
    format: Format,
    headers: Vec<String>,
    selection: Arc<Selection>,
    path: Option<PathBuf>,
    records: u64,
    size: u64,
    checksum: Option<String>,
    error: Option<String>,
    enqueued_by: Option<String>,
    download_token_killed: bool,
    cancel: Arc<AtomicBool>,
    /// Every status the job took, with when (the first is Created).
    history: Vec<(DateTime<Utc>, JobStatus)>,
}

impl ExportJob {
    fn to_json(&self) -> Json {
        self.json_as_of(None)
    }

    /// Moves the job to `status` and remembers when (for the `status-lag` fault).
    fn set_status(&mut self, status: JobStatus, at: DateTime<Utc>) {
        self.status = status;
        self.history.push((at, status));
    }

    /// The job as its status endpoint shows it: as it is, or (`status-lag`) as it was at the
    /// last refresh, refreshes falling every `lag_secs` from the job's creation.
    fn reported_json(&self, now: DateTime<Utc>, lag_secs: Option<u64>) -> Json {
        let Some(lag) = lag_secs.filter(|l| *l > 0) else {
            return self.to_json();
        };
        let lag_ms = i64::try_from(lag.saturating_mul(1000)).unwrap_or(i64::MAX);
        let age_ms = (now - self.created_at).num_milliseconds().max(0);
        let refreshed = self.created_at + chrono::Duration::milliseconds(age_ms - age_ms % lag_ms);
        self.json_as_of(Some(refreshed))
    }

    /// The job's JSON; with `as_of`, as it stood then.
    fn json_as_of(&self, as_of: Option<DateTime<Utc>>) -> Json {
        let seen = |t: DateTime<Utc>| as_of.is_none_or(|at| t <= at);
        let status = match as_of {
            None => self.status,
            Some(at) => self
                .history
                .iter()
                .rev()
                .find(|(t, _)| *t <= at)
                .map_or(JobStatus::Created, |(_, s)| *s),
        };
        let mut m = serde_json::Map::new();
        m.insert("exportId".into(), json!(self.id));
        m.insert("format".into(), json!(self.format.name()));
        m.insert("status".into(), json!(status.name()));
        m.insert("createdAt".into(), json!(iso(self.created_at)));
        for (k, v) in [
            ("queuedAt", self.queued_at),
            ("startedAt", self.started_at),
            ("finishedAt", self.finished_at),
        ] {
            if let Some(t) = v.filter(|t| seen(*t)) {
                m.insert(k.into(), json!(iso(t)));
            }
        }
        if status == JobStatus::Completed {
            m.insert("numberOfRecords".into(), json!(self.records));
            m.insert("fileSize".into(), json!(self.size));
            if let Some(c) = &self.checksum {
                m.insert("fileChecksum".into(), json!(c));
            }
        }
        if let Some(e) = self.error.as_ref().filter(|_| status == JobStatus::Failed) {
            m.insert("errorMsg".into(), json!(e));
        }
        Json::Object(m)
    }
}

/// All export jobs, and a wake-up for jobs waiting for a processing slot.
#[derive(Debug, Default)]
pub(crate) struct ExportQueue {
    jobs: Mutex<Vec<ExportJob>>,
    notify: Notify,
    seq: std::sync::atomic::AtomicU64,
}

impl ExportQueue {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<ExportJob>> {
        self.jobs.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// (created, queued, processing, completed, failed, cancelled) counts.
    pub(crate) fn summary(&self) -> Json {
        let jobs = self.lock();
        let mut by: HashMap<&'static str, u64> = HashMap::new();
        for j in jobs.iter() {
            *by.entry(j.status.name()).or_default() += 1;
        }
        json!(by)
    }

    /// Cancels every job and deletes the files (shutdown).
    pub(crate) fn cancel_all(&self) {
        for j in self.lock().iter() {
            j.cancel.store(true, Ordering::Relaxed);
        }
    }
}

fn not_found(id: &str) -> ApiError {
    ApiError::new(1003, format!("Export job '{id}' not found"))
}

fn range_of(v: &Json, what: &str) -> Result<(i64, i64), ApiError> {
    let start = v
        .get("startAt")
        .and_then(Json::as_str)
        .ok_or_else(|| ApiError::blank(&format!("{what}.startAt")))?;
    let end = v
        .get("endAt")
        .and_then(Json::as_str)
        .ok_or_else(|| ApiError::blank(&format!("{what}.endAt")))?;
    let (Some(s), Some(e)) = (parse_iso(start), parse_iso(end)) else {
        return Err(ApiError::new(704, "Invalid date format"));
    };
    if e < s {
        return Err(ApiError::invalid(format!("{what}.endAt is before startAt")));
    }
    if e - s > chrono::Duration::days(31) {
        return Err(ApiError::invalid(format!(
            "{what} date range exceeds 31 days"
        )));
    }
    Ok((s.timestamp(), e.timestamp()))
}

/// Body of the create calls.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct CreateRequest {
    fields: Option<Vec<String>>,
    format: Option<String>,
    column_header_names: Option<HashMap<String, String>>,
    filter: Option<Json>,
}

/// `POST /bulk/v1/{leads|activities}/export/create.json`.
pub(crate) async fn create(
    state: Arc<AppState>,
    object: ExportObject,
    caller: Caller,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult {
    let ct_ok = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.to_ascii_lowercase().starts_with("application/json"));
    if !ct_ok {
        return Err(ApiError::invalid_content_type());
    }
    let req: CreateRequest = serde_json::from_slice(&body).map_err(|_| ApiError::invalid_json())?;
    let format = match req.format.as_deref() {
        None => Format::Csv,
        Some(f) => {
            Format::parse(f).ok_or_else(|| ApiError::invalid(format!("Invalid format '{f}'")))?
        }
    };
    let filter = req
        .filter
        .filter(Json::is_object)
        .ok_or_else(|| ApiError::blank("filter"))?;
    let renames = req.column_header_names.unwrap_or_default();
    let (selection, names): (Selection, Vec<&str>) = match object {
        ExportObject::Leads => {
            let names = req
                .fields
                .filter(|f| !f.is_empty())
                .ok_or_else(|| ApiError::blank("fields"))?;
            let mut fields = Vec::with_capacity(names.len());
            for n in &names {
                fields.push(
                    data::field_index(n)
                        .ok_or_else(|| ApiError::new(1006, format!("Field '{n}' not found")))?,
                );
            }
            let keys: Vec<&String> = filter
                .as_object()
                .map(|o| o.keys().collect())
                .unwrap_or_default();
            if keys.len() != 1 {
                return Err(ApiError::invalid("Exactly one filter type is required"));
            }
            let lf = match keys[0].as_str() {
                "createdAt" => {
                    let (s, e) = range_of(&filter["createdAt"], "createdAt")?;
                    LeadFilter::CreatedAt(s, e)
                }
                "updatedAt" if !state.limits.updated_at_filter => {
                    return Err(ApiError::new(
                        1035,
                        "Unsupported filter type for target subscription: updatedAt",
                    ));
                }
                "updatedAt" => {
                    let (s, e) = range_of(&filter["updatedAt"], "updatedAt")?;
                    LeadFilter::UpdatedAt(s, e)
                }
                "staticListId" => {
                    let id = filter["staticListId"]
                        .as_u64()
                        .and_then(|v| u32::try_from(v).ok());
                    match id.filter(|id| state.read_store().list_exists(*id)) {
                        Some(id) => LeadFilter::StaticList(id),
                        None => return Err(ApiError::new(1013, "Static list not found")),
                    }
                }
                "staticListName" => {
                    let name = filter["staticListName"].as_str().unwrap_or_default();
                    match state.read_store().list_by_name(name) {
                        Some(id) => LeadFilter::StaticList(id),
                        None => return Err(ApiError::new(1013, "Static list not found")),
                    }
                }
                other => {
                    return Err(ApiError::new(
                        1035,
                        format!("Unsupported filter type for target subscription: {other}"),
                    ));
                }
            };
            let sel = Selection::Leads { fields, filter: lf };
            (
                sel,
                names
                    .iter()
                    .map(|n| data::FIELDS[data::field_index(n).unwrap_or(0)].rest)
                    .collect(),
            )
        }
        ExportObject::Activities => {
            let created = filter
                .get("createdAt")
                .ok_or_else(|| ApiError::blank("filter.createdAt"))?;
            let (from, to) = range_of(created, "createdAt")?;
            let types = match filter.get("activityTypeIds") {
                None | Some(Json::Null) => None,
                Some(Json::Array(a)) => Some(
                    a.iter()
                        .map(|v| v.as_u64().and_then(|v| u32::try_from(v).ok()))
                        .collect::<Option<Vec<u32>>>()
                        .ok_or_else(|| ApiError::invalid("Invalid activityTypeIds"))?,
                ),
                Some(_) => return Err(ApiError::invalid("Invalid activityTypeIds")),
            };
            let columns: Vec<usize> = match req.fields.filter(|f| !f.is_empty()) {
                None => (0..DEFAULT_ACTIVITY_COLUMNS).collect(),
                Some(fs) => {
                    fs.iter()
                        .map(|f| {
                            ACTIVITY_COLUMNS.iter().position(|c| c == f).ok_or_else(|| {
                                ApiError::new(1006, format!("Field '{f}' not found"))
                            })
                        })
                        .collect::<Result<_, _>>()?
                }
            };
            let names = columns.iter().map(|c| ACTIVITY_COLUMNS[*c]).collect();
            (
                Selection::Activities {
                    columns,
                    from,
                    to,
                    types,
                },
                names,
            )
        }
    };
    let today = state.clock.quota_day();
    if state.limiter.export_bytes_today(today) >= state.export_quota() {
        return Err(ApiError::new(1029, "Export daily quota exceeded"));
    }
    let headers = names
        .iter()
        .map(|n| renames.get(*n).cloned().unwrap_or_else(|| (*n).to_owned()))
        .collect();
    let now = state.clock.now();
    let job = ExportJob {
        id: uuid::Uuid::new_v4().to_string(),
        object,
        owner: caller.client_id,
        status: JobStatus::Created,
        created_at: now,
        queued_at: None,
        started_at: None,
        finished_at: None,
        queue_seq: 0,
        format,
        headers,
        selection: Arc::new(selection),
        path: None,
        records: 0,
        size: 0,
        checksum: None,
        error: None,
        enqueued_by: None,
        download_token_killed: false,
        cancel: Arc::new(AtomicBool::new(false)),
        history: vec![(now, JobStatus::Created)],
    };
    let out = job.to_json();
    state.exports.lock().push(job);
    Ok(envelope::ok(vec![out]))
}

/// `POST …/export/{exportId}/enqueue.json`.
pub(crate) fn enqueue(
    state: &Arc<AppState>,
    object: ExportObject,
    caller: &Caller,
    id: &str,
) -> ApiResult {
    let today = state.clock.quota_day();
    let quota_hit = state.limiter.export_bytes_today(today) >= state.export_quota();
    let mut jobs = state.exports.lock();
    let active = jobs
        .iter()
        .filter(|j| matches!(j.status, JobStatus::Queued | JobStatus::Processing))
        .count();
    let job = jobs
        .iter_mut()
        .find(|j| j.id == id && j.object == object && j.owner == caller.client_id)
        .ok_or_else(|| not_found(id))?;
    if job.status != JobStatus::Created {
        return Err(ApiError::new(1029, "Job already queued"));
    }
    if quota_hit {
        return Err(ApiError::new(1029, "Export daily quota exceeded"));
    }
    if active as u64 >= u64::from(state.limits.queued_jobs) {
        return Err(ApiError::new(1029, "Too many jobs in queue"));
    }
    let now = state.clock.now();
    job.set_status(JobStatus::Queued, now);
    job.queued_at = Some(now);
    job.queue_seq = state.exports.seq.fetch_add(1, Ordering::Relaxed);
    job.enqueued_by = Some(caller.token.clone());
    let out = job.to_json();
    drop(jobs);
    tokio::spawn(run_job(state.clone(), id.to_owned()));
    Ok(envelope::ok(vec![out]))
}

enum Start {
    Go {
        selection: Arc<Selection>,
        format: Format,
        headers: Vec<String>,
        cancel: Arc<AtomicBool>,
    },
    Wait,
    Gone,
}

fn try_start(state: &AppState, id: &str, path: &std::path::Path) -> Start {
    let mut jobs = state.exports.lock();
    let processing = jobs
        .iter()
        .filter(|j| j.status == JobStatus::Processing)
        .count();
    let first_queued = jobs
        .iter()
        .filter(|j| j.status == JobStatus::Queued)
        .min_by_key(|j| j.queue_seq)
        .map(|j| j.id.clone());
    let Some(job) = jobs.iter_mut().find(|j| j.id == id) else {
        return Start::Gone;
    };
    if job.status != JobStatus::Queued {
        return Start::Gone;
    }
    if processing as u64 >= u64::from(state.limits.processing_jobs)
        || first_queued.as_deref() != Some(id)
    {
        return Start::Wait;
    }
    let now = state.clock.now();
    job.set_status(JobStatus::Processing, now);
    job.started_at = Some(now);
    job.path = Some(path.to_path_buf());
    Start::Go {
        selection: job.selection.clone(),
        format: job.format,
        headers: job.headers.clone(),
        cancel: job.cancel.clone(),
    }
}

async fn sleep_unless_shutdown(state: &AppState, d: Duration) {
    if d.is_zero() {
        return;
    }
    tokio::select! {
        () = tokio::time::sleep(d) => {}
        () = state.shutdown.cancelled() => {}
    }
}

async fn run_job(state: Arc<AppState>, id: String) {
    let (queue_latency, processing_latency) = state.job_latency();
    sleep_unless_shutdown(&state, queue_latency).await;
    let path = state.work_dir.join(format!("export-{id}.csv"));
    let (selection, format, headers, cancel) = loop {
        if state.shutdown.is_cancelled() {
            return;
        }
        match try_start(&state, &id, &path) {
            Start::Go {
                selection,
                format,
                headers,
                cancel,
            } => break (selection, format, headers, cancel),
            Start::Gone => return,
            Start::Wait => {
                let _ = tokio::time::timeout(
                    Duration::from_millis(100),
                    state.exports.notify.notified(),
                )
                .await;
            }
        }
    };
    let fail = state
        .faults()
        .slow_jobs
        .is_some_and(|s| state.dice.chance(Purpose::JobFailure, s.fail_probability));
    let st = state.clone();
    let p = path.clone();
    let c = cancel.clone();
    let written =
        tokio::task::spawn_blocking(move || write_file(&st, &selection, format, &headers, &p, &c))
            .await;
    sleep_unless_shutdown(&state, processing_latency).await;
    let now = state.clock.now();
    let mut size_done = 0;
    {
        let mut jobs = state.exports.lock();
        if let Some(job) = jobs.iter_mut().find(|j| j.id == id) {
            job.finished_at = Some(now);
            if job.status == JobStatus::Cancelled || cancel.load(Ordering::Relaxed) {
                job.path = None;
                let _ = std::fs::remove_file(&path);
            } else {
                match written {
                    Ok(Ok(_)) if fail => {
                        job.set_status(JobStatus::Failed, now);
                        job.error = Some(
                            "Export job failed due to an internal error; please create a new job"
                                .to_owned(),
                        );
                        job.path = None;
                        let _ = std::fs::remove_file(&path);
                    }
                    Ok(Ok((records, size, checksum))) => {
                        job.set_status(JobStatus::Completed, now);
                        job.records = records;
                        job.size = size;
                        job.checksum = Some(checksum);
                        size_done = size;
                    }
                    Ok(Err(e)) => {
                        job.set_status(JobStatus::Failed, now);
                        job.error = Some(format!("Export failed: {e}"));
                        job.path = None;
                    }
                    Err(e) => {
                        job.set_status(JobStatus::Failed, now);
                        job.error = Some(format!("Export failed: {e}"));
                        job.path = None;
                    }
                }
            }
        }
    }
    state
        .limiter
        .add_export_bytes(state.clock.quota_day(), size_done);
    state.exports.notify.notify_waiters();
}

/// Counts and hashes what passes through.
struct HashWriter<W> {
    inner: W,
    hasher: Sha256,
    bytes: u64,
}

impl<W: Write> Write for HashWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

const CHUNK: u32 = 16_384;

/// Writes the export file; returns (records, bytes, "sha256:<hex>").
fn write_file(
    state: &AppState,
    selection: &Selection,
    format: Format,
    headers: &[String],
    path: &std::path::Path,
    cancel: &AtomicBool,
) -> io::Result<(u64, u64, String)> {
    let file = std::fs::File::create(path)?;
    let hw = HashWriter {
        inner: file,
        hasher: Sha256::new(),
        bytes: 0,
    };
    let mut w = csv::WriterBuilder::new()
        .delimiter(format.delimiter())
        .buffer_capacity(1 << 17)
        .from_writer(hw);
    w.write_record(headers)?;
    let mut records = 0u64;
    let mut buf = String::with_capacity(256);
    let end = state.read_store().id_end();
    let mut start = 1u32;
    let generator = state.read_store().generator().clone();
    let mut acts = Vec::new();
    while start < end {
        if cancel.load(Ordering::Relaxed) {
            return Err(io::Error::other("cancelled"));
        }
        let stop = start.saturating_add(CHUNK).min(end);
        match selection {
            Selection::Leads { fields, filter } => {
                let rows: Vec<Lead> = {
                    let store = state.read_store();
                    (start..stop)
                        .filter(|id| match filter {
                            LeadFilter::CreatedAt(s, e) => {
                                store.created_at(*id).is_some_and(|t| within(t, *s, *e))
                            }
                            LeadFilter::UpdatedAt(s, e) => {
                                store.updated_at(*id).is_some_and(|t| within(t, *s, *e))
                            }
                            LeadFilter::StaticList(l) => store.in_list(*l, *id),
                        })
                        .filter_map(|id| store.get(id))
                        .collect()
                };
                for lead in &rows {
                    for &f in fields {
                        buf.clear();
                        lead[f].push_csv(&mut buf);
                        w.write_field(buf.as_bytes())?;
                    }
                    w.write_record(None::<&[u8]>)?;
                    records += 1;
                }
            }
            Selection::Activities {
                columns,
                from,
                to,
                types,
            } => {
                let seeded_end = stop.min(generator_limit(state));
                for id in start..seeded_end {
                    generator.activities(id, &mut acts);
                    for a in &acts {
                        if activity_selected(a, *from, *to, types.as_deref()) {
                            write_activity(&mut w, &mut buf, a, columns)?;
                            records += 1;
                        }
                    }
                }
            }
        }
        start = stop;
    }
    if let Selection::Activities {
        columns,
        from,
        to,
        types,
    } = selection
    {
        let placed: Vec<_> = state
            .read_store()
            .placed_activities
            .iter()
            .filter(|a| activity_selected(a, *from, *to, types.as_deref()))
            .cloned()
            .collect();
        for a in &placed {
            write_activity(&mut w, &mut buf, a, columns)?;
            records += 1;
        }
    }
    let mut hw = w
        .into_inner()
        .map_err(|e| io::Error::other(e.to_string()))?;
    hw.flush()?;
    let hex: String = hw
        .hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    Ok((records, hw.bytes, format!("sha256:{hex}")))
}

/// Whether `t` is in a bulk filter's range. Marketo does not say whether `endAt` is exclusive;
/// the sandbox takes both ends inclusively, the conservative reading (a record stamped exactly at
/// `endAt` is also in the next window's export).
fn within(t: i64, start: i64, end: i64) -> bool {
    t >= start && t <= end
}

fn activity_selected(a: &Activity, from: i64, to: i64, types: Option<&[u32]>) -> bool {
    within(a.date, from, to) && types.is_none_or(|t| t.contains(&a.type_id))
}

/// Writes one activity row of `columns`.
fn write_activity<W: Write>(
    w: &mut csv::Writer<W>,
    buf: &mut String,
    a: &Activity,
    columns: &[usize],
) -> io::Result<()> {
    let (campaign, pav_id, pav, attrs) = a.details();
    for &c in columns {
        buf.clear();
        let v = match c {
            0 => Value::Str(a.guid.to_string().into()),
            1 => Value::Int(i64::from(a.lead_id)),
            2 => Value::Time(a.date),
            3 => Value::Int(i64::from(a.type_id)),
            4 => campaign.map_or(Value::Null, |c| Value::Int(i64::from(c))),
            5 => pav_id.map_or(Value::Null, |c| Value::Int(i64::from(c))),
            6 => pav.map_or(Value::Null, |p| Value::Str(p.into())),
            7 => Value::Str(attrs.as_str().into()),
            _ => Value::Str("succeeded".into()),
        };
        v.push_csv(buf);
        w.write_field(buf.as_bytes())?;
    }
    w.write_record(None::<&[u8]>)?;
    Ok(())
}

/// Seeded leads have activities; leads created through the API have none (placed ones aside).
fn generator_limit(state: &AppState) -> u32 {
    state.seeded_leads.saturating_add(1)
}

/// `GET …/export/{exportId}/status.json`.
pub(crate) fn status(
    state: &AppState,
    object: ExportObject,
    caller: &Caller,
    id: &str,
) -> ApiResult {
    let jobs = state.exports.lock();
    let job = jobs
        .iter()
        .find(|j| j.id == id && j.object == object && j.owner == caller.client_id)
        .ok_or_else(|| not_found(id))?;
    let lag = state.faults().status_lag.map(|l| l.secs);
    Ok(envelope::ok(vec![
        job.reported_json(state.clock.now(), lag),
    ]))
}

/// `POST …/export/{exportId}/cancel.json`.
pub(crate) fn cancel(
    state: &AppState,
    object: ExportObject,
    caller: &Caller,
    id: &str,
) -> ApiResult {
    let mut jobs = state.exports.lock();
    let job = jobs
        .iter_mut()
        .find(|j| j.id == id && j.object == object && j.owner == caller.client_id)
        .ok_or_else(|| not_found(id))?;
    if !matches!(
        job.status,
        JobStatus::Created | JobStatus::Queued | JobStatus::Processing
    ) {
        return Err(ApiError::invalid(format!(
            "Job cannot be cancelled in status {}",
            job.status.name()
        )));
    }
    job.set_status(JobStatus::Cancelled, state.clock.now());
    job.cancel.store(true, Ordering::Relaxed);
    let out = job.to_json();
    drop(jobs);
    state.exports.notify.notify_waiters();
    Ok(envelope::ok(vec![out]))
}

/// Query of the list call.
#[derive(Debug, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ListQuery {
    status: Option<String>,
    batch_size: Option<usize>,
    next_page_token: Option<String>,
}

/// `GET /bulk/v1/{leads|activities}/export.json`.
pub(crate) fn list(
    state: &AppState,
    object: ExportObject,
    caller: &Caller,
    q: ListQuery,
) -> ApiResult {
    let wanted: Option<Vec<String>> = q.status.as_deref().filter(|s| !s.is_empty()).map(|s| {
        s.split(',')
            .map(|x| {
                x.trim()
                    .to_ascii_lowercase()
                    .replace("canceled", "cancelled")
            })
            .collect()
    });
    let week_ago = state.clock.now() - chrono::Duration::days(7);
    let jobs = state.exports.lock();
    let all: Vec<Json> = jobs
        .iter()
        .filter(|j| j.object == object && j.owner == caller.client_id && j.created_at >= week_ago)
        .filter(|j| {
            wanted
                .as_ref()
                .is_none_or(|w| w.iter().any(|s| *s == j.status.name().to_ascii_lowercase()))
        })
        .map(ExportJob::to_json)
        .collect();
    let batch = q
        .batch_size
        .filter(|b| (1..=300).contains(b))
        .unwrap_or(300);
    let offset = match q.next_page_token.as_deref() {
        None | Some("") => 0,
        Some(t) => envelope::page_offset(t)?,
    };
    let next = (offset + batch < all.len()).then(|| envelope::page_token(offset + batch));
    let page = all.into_iter().skip(offset).take(batch).collect();
    Ok(envelope::ok_paged(page, next))
}

fn plain(status: StatusCode, text: &'static str) -> Response {
    (status, [(header::CONTENT_TYPE, "text/plain")], text).into_response()
}

/// Parses `bytes=a-b`, `bytes=a-` or `bytes=-n` against `size`; `Err` if unsatisfiable.
fn parse_range(h: &str, size: u64) -> Option<Result<(u64, u64), ()>> {
    let spec = h.trim().strip_prefix("bytes=")?;
    let (a, b) = spec.split_once('-')?;
    let (a, b) = (a.trim(), b.trim());
    let r = if a.is_empty() {
        let n: u64 = b.parse().ok()?;
        if n == 0 || size == 0 {
            Err(())
        } else {
            Ok((size.saturating_sub(n), size - 1))
        }
    } else {
        let start: u64 = a.parse().ok()?;
        let end: u64 = if b.is_empty() {
            size.saturating_sub(1)
        } else {
            b.parse::<u64>().ok()?.min(size.saturating_sub(1))
        };
        if start >= size || end < start {
            Err(())
        } else {
            Ok((start, end))
        }
    };
    Some(r)
}

/// `GET …/export/{exportId}/file.json`: the file (or a `Range` of it); 404 plaintext if the job
/// is unknown or not Completed.
pub(crate) async fn file(
    state: Arc<AppState>,
    object: ExportObject,
    caller: Caller,
    id: String,
    headers: HeaderMap,
) -> Response {
    let faults = state.faults();
    let found = {
        let mut jobs = state.exports.lock();
        match jobs
            .iter_mut()
            .find(|j| j.id == id && j.object == object && j.owner == caller.client_id)
        {
            Some(job) if job.status == JobStatus::Completed => {
                let kill = faults
                    .token_expiry
                    .as_ref()
                    .is_some_and(|f| f.expire_before_download)
                    && !job.download_token_killed
                    && job.enqueued_by.as_deref() == Some(caller.token.as_str());
                if kill {
                    job.download_token_killed = true;
                }
                job.path.clone().map(|p| (p, job.size, kill))
            }
            _ => None,
        }
    };
    let Some((path, size, kill)) = found else {
        return plain(StatusCode::NOT_FOUND, "Not Found");
    };
    if kill {
        state.tokens.kill(&caller.token);
        return ApiError::expired_token().into_response();
    }
    let range = headers
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .and_then(|h| parse_range(h, size));
    let (start, end, partial) = match range {
        None => (0, size.saturating_sub(1), false),
        Some(Ok((s, e))) => (s, e, true),
        Some(Err(())) => {
            let mut r = plain(StatusCode::RANGE_NOT_SATISFIABLE, "Range Not Satisfiable");
            if let Ok(v) = HeaderValue::from_str(&format!("bytes */{size}")) {
                r.headers_mut().insert(header::CONTENT_RANGE, v);
            }
            return r;
        }
    };
    let len = if size == 0 { 0 } else { end - start + 1 };
    let mut f = match tokio::fs::File::open(&path).await {
        Ok(f) => f,
        Err(_) => return plain(StatusCode::NOT_FOUND, "Not Found"),
    };
    if f.seek(std::io::SeekFrom::Start(start)).await.is_err() {
        return plain(StatusCode::INTERNAL_SERVER_ERROR, "Read error");
    }
    let broken = faults
        .broken_downloads
        .as_ref()
        .is_some_and(|b| len > 64 && state.dice.chance(Purpose::BrokenDownload, b.probability));
    let body = if broken {
        let cut = len / 4 + (len / 2) * (u64::from(state.dice.roll(Purpose::BrokenDownload) < 0.5));
        let stream = tokio_util::io::ReaderStream::new(f.take(cut.max(1))).chain(
            futures_util::stream::once(async {
                // Let the bytes sent so far reach the client before the connection drops.
                tokio::time::sleep(Duration::from_millis(20)).await;
                Err::<Bytes, io::Error>(io::Error::other(
                    "connection reset by sandbox (broken-downloads fault)",
                ))
            }),
        );
        Body::from_stream(stream)
    } else {
        Body::from_stream(tokio_util::io::ReaderStream::with_capacity(
            f.take(len),
            1 << 16,
        ))
    };
    let mut resp = Response::new(body);
    *resp.status_mut() = if partial {
        StatusCode::PARTIAL_CONTENT
    } else {
        StatusCode::OK
    };
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/csv"));
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    if let Ok(v) = HeaderValue::from_str(&len.to_string()) {
        h.insert(header::CONTENT_LENGTH, v);
    }
    if partial && let Ok(v) = HeaderValue::from_str(&format!("bytes {start}-{end}/{size}")) {
        h.insert(header::CONTENT_RANGE, v);
    }
    resp
}

/// Axum handlers, one set per object.
pub(crate) mod handlers {
    use super::*;

    pub(crate) async fn create_leads(
        State(s): State<Arc<AppState>>,
        Extension(c): Extension<Caller>,
        h: HeaderMap,
        b: Bytes,
    ) -> ApiResult {
        create(s, ExportObject::Leads, c, h, b).await
    }
    pub(crate) async fn create_activities(
        State(s): State<Arc<AppState>>,
        Extension(c): Extension<Caller>,
        h: HeaderMap,
        b: Bytes,
    ) -> ApiResult {
        create(s, ExportObject::Activities, c, h, b).await
    }
    pub(crate) async fn enqueue_leads(
        State(s): State<Arc<AppState>>,
        Extension(c): Extension<Caller>,
        Path(id): Path<String>,
    ) -> ApiResult {
        enqueue(&s, ExportObject::Leads, &c, &id)
    }
    pub(crate) async fn enqueue_activities(
        State(s): State<Arc<AppState>>,
        Extension(c): Extension<Caller>,
        Path(id): Path<String>,
    ) -> ApiResult {
        enqueue(&s, ExportObject::Activities, &c, &id)
    }
    pub(crate) async fn status_leads(
        State(s): State<Arc<AppState>>,
        Extension(c): Extension<Caller>,
        Path(id): Path<String>,
    ) -> ApiResult {
        status(&s, ExportObject::Leads, &c, &id)
    }
    pub(crate) async fn status_activities(
        State(s): State<Arc<AppState>>,
        Extension(c): Extension<Caller>,
        Path(id): Path<String>,
    ) -> ApiResult {
        status(&s, ExportObject::Activities, &c, &id)
    }
    pub(crate) async fn cancel_leads(
        State(s): State<Arc<AppState>>,
        Extension(c): Extension<Caller>,
        Path(id): Path<String>,
    ) -> ApiResult {
        cancel(&s, ExportObject::Leads, &c, &id)
    }
    pub(crate) async fn cancel_activities(
        State(s): State<Arc<AppState>>,
        Extension(c): Extension<Caller>,
        Path(id): Path<String>,
    ) -> ApiResult {
        cancel(&s, ExportObject::Activities, &c, &id)
    }
    pub(crate) async fn list_leads(
        State(s): State<Arc<AppState>>,
        Extension(c): Extension<Caller>,
        Query(q): Query<ListQuery>,
    ) -> ApiResult {
        list(&s, ExportObject::Leads, &c, q)
    }
    pub(crate) async fn list_activities(
        State(s): State<Arc<AppState>>,
        Extension(c): Extension<Caller>,
        Query(q): Query<ListQuery>,
    ) -> ApiResult {
        list(&s, ExportObject::Activities, &c, q)
    }
    pub(crate) async fn file_leads(
        State(s): State<Arc<AppState>>,
        Extension(c): Extension<Caller>,
        Path(id): Path<String>,
        h: HeaderMap,
    ) -> Response {
        file(s, ExportObject::Leads, c, id, h).await
    }
    pub(crate) async fn file_activities(
        State(s): State<Arc<AppState>>,
        Extension(c): Extension<Caller>,
        Path(id): Path<String>,
        h: HeaderMap,
    ) -> Response {
        file(s, ExportObject::Activities, c, id, h).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-9", 100), Some(Ok((0, 9))));
        assert_eq!(parse_range("bytes=90-", 100), Some(Ok((90, 99))));
        assert_eq!(parse_range("bytes=-10", 100), Some(Ok((90, 99))));
        assert_eq!(parse_range("bytes=100-", 100), Some(Err(())));
        assert_eq!(parse_range("items=1-2", 100), None);
    }
}

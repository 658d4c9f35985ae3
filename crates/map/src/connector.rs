//! The vendor-neutral connector interface the engine talks to, and its request/result types.

use std::fmt;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::future::BoxFuture;
use futures_util::stream::BoxStream;
use serde::{Deserialize, Serialize};

use crate::rate_limit::Observer;
use crate::windows::DateWindow;
use crate::{MapError, Usage};

/// A lead (or any MAP record) as field name → value. Missing fields mean null.
pub type Record = serde_json::Map<String, serde_json::Value>;

/// The bytes of a bulk file, streamed. It ends with an error instead of the last chunk if the file
/// turns out to be corrupt, so a consumer that commits only at the end never keeps a bad file.
pub type ByteStream = BoxStream<'static, Result<Bytes, MapError>>;

/// MAP objects whose fields can be described.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MapObject {
    /// Leads (people).
    Leads,
    /// Activities, as the bulk activity export delivers them.
    Activities,
}

/// One field of a MAP object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldInfo {
    /// The API name (Marketo `rest.name`).
    pub name: String,
    /// The label in the MAP's UI.
    pub display_name: String,
    /// The vendor's data type (`string`, `email`, `integer`, `datetime`…).
    pub data_type: String,
    /// Maximum length, for text fields.
    pub length: Option<u32>,
    /// Whether the API refuses writes to it.
    pub read_only: bool,
}

/// An activity type (e.g. 1 "Visit Webpage").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActivityType {
    /// Numeric id, as used in export filters.
    pub id: i64,
    /// Display name.
    pub name: String,
    /// API name, when the MAP has one.
    pub api_name: Option<String>,
    /// Description.
    pub description: Option<String>,
}

/// Resolves activity types given by name (case-insensitive, name or API name) or by numeric id
/// into ids, keeping the order given. Fails naming every unknown entry.
pub fn resolve_activity_types(
    known: &[ActivityType],
    wanted: &[String],
) -> Result<Vec<i64>, MapError> {
    let mut ids = Vec::with_capacity(wanted.len());
    let mut unknown = Vec::new();
    for w in wanted {
        let w_trim = w.trim();
        let found = match w_trim.parse::<i64>() {
            Ok(id) => known.iter().find(|t| t.id == id),
            Err(_) => known.iter().find(|t| {
                t.name.eq_ignore_ascii_case(w_trim)
                    || t.api_name
                        .as_deref()
                        .is_some_and(|a| a.eq_ignore_ascii_case(w_trim))
            }),
        };
        match found {
            Some(t) if !ids.contains(&t.id) => ids.push(t.id),
            Some(_) => {}
            None => unknown.push(w_trim.to_owned()),
        }
    }
    if unknown.is_empty() {
        Ok(ids)
    } else {
        Err(MapError::InvalidRequest(format!(
            "unknown activity type(s): {}",
            unknown.join(", ")
        )))
    }
}

/// Which leads a bulk lead export selects (exactly one filter per job).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LeadExportFilter {
    /// Leads created in the window (≤ 31 days).
    CreatedAt(DateWindow),
    /// Leads changed in the window (≤ 31 days; not available on every subscription → 1035).
    UpdatedAt(DateWindow),
    /// Members of a static list.
    StaticListId(i64),
}

/// A bulk export to run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExportRequest {
    /// Leads, with the fields to export.
    Leads {
        /// Field API names (columns of the file).
        fields: Vec<String>,
        /// The one filter.
        filter: LeadExportFilter,
    },
    /// Activities created in a window (≤ 31 days).
    Activities {
        /// Activity type ids (resolve names with [`resolve_activity_types`]); empty = all.
        activity_type_ids: Vec<i64>,
        /// The `createdAt` window.
        created_at: DateWindow,
        /// Columns; `None` = all documented activity columns.
        fields: Option<Vec<String>>,
    },
}

/// What was exported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExportKind {
    /// A lead export.
    Leads,
    /// An activity export.
    Activities,
}

/// A finished export job whose file can be downloaded (serializable, so the engine can persist it
/// and download later, within the vendor's retention of 7 days).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompletedExport {
    /// Leads or activities.
    pub kind: ExportKind,
    /// The vendor's job id.
    pub export_id: String,
    /// Rows in the file (header excluded), if announced.
    pub number_of_records: Option<u64>,
    /// Size of the file in bytes, if announced.
    pub file_size: Option<u64>,
    /// SHA-256 of the file (lowercase hex, no prefix), if announced.
    pub file_checksum: Option<String>,
    /// File format (`CSV`).
    pub format: String,
    /// Whether the first job failed and this is the recreated one.
    pub recreated: bool,
}

/// Leads to read by key, e.g. to capture the previous values before a write.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeadQuery {
    /// The key field (`email`, `id`, a custom string/email/integer field…).
    pub filter_type: String,
    /// Key values; any number (sent 300 per call).
    pub values: Vec<String>,
    /// Fields to return; empty = the vendor's default set.
    pub fields: Vec<String>,
}

/// How a sync (upsert) treats existing and new records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum SyncAction {
    /// Insert new records, update existing ones (the default).
    CreateOrUpdate,
    /// Insert only; existing records are skipped (1005).
    CreateOnly,
    /// Update only; unknown records are skipped (1004).
    UpdateOnly,
    /// Always insert, even if a record with the key exists.
    CreateDuplicate,
}

impl SyncAction {
    /// The vendor's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            SyncAction::CreateOrUpdate => "createOrUpdate",
            SyncAction::CreateOnly => "createOnly",
            SyncAction::UpdateOnly => "updateOnly",
            SyncAction::CreateDuplicate => "createDuplicate",
        }
    }

    /// Whether sending the same records twice leaves the same state as sending them once.
    /// `createOrUpdate` and `updateOnly` keyed on a lookup field are idempotent: a repeat finds the
    /// records by key and writes the same values again. `createOnly` would report the rows it
    /// created on the first try as skipped (1005), and `createDuplicate` would create duplicates,
    /// so those two are never re-sent after the server may have executed them.
    pub fn is_idempotent(self) -> bool {
        matches!(self, SyncAction::CreateOrUpdate | SyncAction::UpdateOnly)
    }
}

/// Records to upsert.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SyncRequest {
    /// The action.
    pub action: SyncAction,
    /// The dedupe key; must be present in every record.
    pub lookup_field: String,
    /// Lead partition, if the instance uses partitions.
    pub partition_name: Option<String>,
    /// The records (any number; sent 300 per call, and under 1 MB per body).
    pub records: Vec<Record>,
}

/// The status of one record after a sync.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordStatus {
    /// Created.
    Created,
    /// Updated.
    Updated,
    /// Deleted.
    Deleted,
    /// Not written; see the reasons.
    Skipped,
    /// A status this client does not know.
    Other(String),
}

/// Why a record was skipped (or a warning about it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reason {
    /// The vendor code, e.g. `"1004"`.
    pub code: String,
    /// The vendor message.
    pub message: String,
}

/// The result for one input record, in input order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncResult {
    /// The record's MAP id, when it was written.
    pub id: Option<i64>,
    /// What happened.
    pub status: RecordStatus,
    /// Why it was skipped.
    pub reasons: Vec<Reason>,
}

/// Delimiter of a bulk file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FileFormat {
    /// Comma-separated.
    Csv,
    /// Tab-separated.
    Tsv,
    /// Semicolon-separated.
    Ssv,
}

impl FileFormat {
    /// The vendor's spelling (`csv`).
    pub fn as_str(self) -> &'static str {
        match self {
            FileFormat::Csv => "csv",
            FileFormat::Tsv => "tsv",
            FileFormat::Ssv => "ssv",
        }
    }

    /// The field delimiter.
    pub fn delimiter(self) -> u8 {
        match self {
            FileFormat::Csv => b',',
            FileFormat::Tsv => b'\t',
            FileFormat::Ssv => b';',
        }
    }
}

/// One chunk of a bulk lead import.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportRequest {
    /// The file: a header row of API field names, then rows. At most [`crate::MAX_IMPORT_BYTES`];
    /// the caller splits bigger sets.
    pub file: Bytes,
    /// Its format.
    pub format: FileFormat,
    /// The dedupe key (default `email`; `id` makes it update-only).
    pub lookup_field: String,
    /// Also add every row to this static list.
    pub list_id: Option<i64>,
    /// Lead partition, if the instance uses partitions.
    pub partition_name: Option<String>,
}

/// A row of an import's failures or warnings file: the original columns plus the reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportRow {
    /// The original columns, in file order, as (header, value).
    pub columns: Vec<(String, String)>,
    /// The `Import Failure Reason` / `Import Warning Reason` text.
    pub reason: String,
}

impl ImportRow {
    /// The value of a column of the original file.
    pub fn get(&self, column: &str) -> Option<&str> {
        self.columns
            .iter()
            .find(|(k, _)| k == column)
            .map(|(_, v)| v.as_str())
    }
}

/// An import batch as the MAP reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportBatch {
    /// The batch id.
    pub batch_id: i64,
    /// `Queued`, `Importing`, `Complete` or `Failed`.
    pub status: String,
    /// Rows processed so far.
    pub rows_processed: u64,
    /// Rows failed so far.
    pub rows_failed: u64,
    /// Rows with a warning so far.
    pub rows_with_warning: u64,
    /// Summary message.
    pub message: Option<String>,
}

/// The outcome of one import chunk: the finished batch and its failure and warning rows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportReport {
    /// The batch as it ended (`Complete`).
    #[serde(flatten)]
    pub batch: ImportBatch,
    /// Rows that failed, with the reason.
    pub failures: Vec<ImportRow>,
    /// Rows imported with a warning, with the warning.
    pub warnings: Vec<ImportRow>,
}

/// Why `field` cannot be a lookup key given the instance's searchable keys, if it cannot: a
/// lookup is one field, so it must be a single-field key (names compared case-insensitively).
pub fn lookup_field_problem(searchable: &[Vec<String>], field: &str) -> Option<MapError> {
    fn single(k: &Vec<String>) -> Option<&str> {
        match k.as_slice() {
            [one] => Some(one.as_str()),
            _ => None,
        }
    }
    if searchable
        .iter()
        .filter_map(single)
        .any(|f| f.eq_ignore_ascii_case(field.trim()))
    {
        return None;
    }
    Some(MapError::NotSearchable {
        field: field.to_owned(),
        searchable: searchable
            .iter()
            .filter_map(single)
            .map(str::to_owned)
            .collect(),
    })
}

/// What one task's handle carries besides its usage counters.
#[derive(Debug, Clone, Default)]
pub struct Scope {
    /// Calls held back by the instance's rate or concurrency limit (606, 615) are retried until
    /// this instant, then fail saying why; `None`: for the retry policy's
    /// `rate_limited_patience` from a call's first attempt. Other failures keep the policy's
    /// attempt count.
    pub deadline: Option<tokio::time::Instant>,
    /// Told when the client's shared limiter slows down or speeds back up.
    pub observer: Option<Observer>,
}

/// A MAP client, one per environment, held by the engine as `Arc<dyn MapConnector>`.
/// Every method is cancel-safe in the sense that dropping the future stops the work (a bulk job
/// already created on the vendor side keeps running there).
pub trait MapConnector: Send + Sync + fmt::Debug {
    /// The vendor (`"marketo"`).
    fn vendor(&self) -> &'static str;

    /// Field metadata of an object.
    fn describe_fields(&self, object: MapObject)
    -> BoxFuture<'_, Result<Vec<FieldInfo>, MapError>>;

    /// All activity types (to resolve names into ids with [`resolve_activity_types`]).
    fn activity_types(&self) -> BoxFuture<'_, Result<Vec<ActivityType>, MapError>>;

    /// The keys leads can be found by (Marketo's Describe Lead2 `searchableFields`: each entry
    /// holds the field names of one key). One call, then cached for a day.
    fn searchable_fields(&self) -> BoxFuture<'_, Result<Arc<Vec<Vec<String>>>, MapError>>;

    /// Fails with [`MapError::NotSearchable`] when `field` cannot be used to find leads (as a
    /// sync or import `lookupField`, or a filter), before anything is sent with it.
    fn check_lookup_field<'a>(&'a self, field: &'a str) -> BoxFuture<'a, Result<(), MapError>> {
        Box::pin(async move {
            let searchable = self.searchable_fields().await?;
            lookup_field_problem(&searchable, field).map_or(Ok(()), Err)
        })
    }

    /// Runs a bulk export to completion: create, enqueue (waiting while the vendor queue is
    /// full), poll, and recreate once if the job fails.
    fn run_export(
        &self,
        request: ExportRequest,
    ) -> BoxFuture<'_, Result<CompletedExport, MapError>>;

    /// Streams the file of a completed export, resuming after broken connections and verifying
    /// the checksum at the end.
    fn download_export(&self, export: &CompletedExport) -> ByteStream;

    /// Reads records by key (any number of values; paged and chunked internally).
    fn fetch_leads(&self, query: LeadQuery) -> BoxFuture<'_, Result<Vec<Record>, MapError>>;

    /// Upserts records; one result per input record, in input order.
    fn sync_leads(&self, request: SyncRequest) -> BoxFuture<'_, Result<Vec<SyncResult>, MapError>>;

    /// Imports one file (≤ 10 MB) and waits for the result, failures and warnings included.
    fn import_leads(&self, request: ImportRequest)
    -> BoxFuture<'_, Result<ImportReport, MapError>>;

    /// What this handle has spent so far.
    fn usage(&self) -> Usage;

    /// A handle sharing the connection, token, limiter and budget, with its own zeroed usage
    /// counters (one per task).
    fn scoped(&self) -> Arc<dyn MapConnector>;

    /// Like [`MapConnector::scoped`], with a deadline for calls held by the MAP's limits and an
    /// observer of the limiter's pace (one per try).
    fn scoped_with(&self, scope: Scope) -> Arc<dyn MapConnector>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_must_be_a_searchable_single_field() {
        let keys = vec![
            vec!["email".to_owned()],
            vec!["id".to_owned()],
            vec!["firstName".to_owned(), "lastName".to_owned()],
        ];
        assert!(lookup_field_problem(&keys, "email").is_none());
        assert!(lookup_field_problem(&keys, "Email").is_none());
        let e = lookup_field_problem(&keys, "firstName").expect("refused");
        assert_eq!(
            e.to_string(),
            "`firstName` cannot be used as a lookup: Marketo can only find leads by email or id (the searchable fields of this instance)"
        );
    }

    #[test]
    fn resolves_names_and_ids() {
        let known = vec![
            ActivityType {
                id: 1,
                name: "Visit Webpage".into(),
                api_name: Some("visitWebpage".into()),
                description: None,
            },
            ActivityType {
                id: 12,
                name: "New Lead".into(),
                api_name: None,
                description: None,
            },
        ];
        let ids = resolve_activity_types(
            &known,
            &["new lead".into(), "1".into(), "visitwebpage".into()],
        )
        .expect("resolve");
        assert_eq!(ids, vec![12, 1]);
        let err =
            resolve_activity_types(&known, &["Nope".into(), "99".into()]).expect_err("unknown");
        assert!(err.to_string().contains("Nope, 99"));
    }
}

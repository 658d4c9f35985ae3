//! Bulk extract (export) jobs: create, enqueue, poll, recreate once on failure.

use std::time::Duration;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::time::Instant;

use super::MarketoClient;
use super::describe::ACTIVITY_FIELDS;
use super::transport::{Call, Payload};
use crate::MapError;
use crate::connector::{CompletedExport, ExportKind, ExportRequest, LeadExportFilter};

/// The state of an export job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ExportStatus {
    /// Created, not yet enqueued.
    Created,
    /// Waiting for a processing slot.
    Queued,
    /// Running.
    Processing,
    /// Done; the file can be downloaded.
    Completed,
    /// Failed; it must be recreated.
    Failed,
    /// Cancelled (both vendor spellings).
    Cancelled,
    /// A status this client does not know.
    Other(String),
}

impl ExportStatus {
    fn parse(s: &str) -> Self {
        match s.trim().to_ascii_lowercase().as_str() {
            "created" => Self::Created,
            "queued" => Self::Queued,
            "processing" => Self::Processing,
            "completed" => Self::Completed,
            "failed" => Self::Failed,
            "canceled" | "cancelled" => Self::Cancelled,
            _ => Self::Other(s.to_owned()),
        }
    }

    fn is_final(&self) -> bool {
        matches!(self, Self::Completed | Self::Failed | Self::Cancelled)
    }
}

/// An export job as Marketo reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportJob {
    /// The job id.
    pub export_id: String,
    /// Its state.
    pub status: ExportStatus,
    /// Rows in the file, once completed.
    pub number_of_records: Option<u64>,
    /// File size in bytes, once completed.
    pub file_size: Option<u64>,
    /// SHA-256 of the file (lowercase hex without the `sha256:` prefix), once completed.
    pub file_checksum: Option<String>,
    /// Why it failed.
    pub error_msg: Option<String>,
    /// File format.
    pub format: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ExportBody {
    export_id: String,
    status: String,
    number_of_records: Option<u64>,
    file_size: Option<u64>,
    file_checksum: Option<String>,
    error_msg: Option<String>,
    format: Option<String>,
}

impl From<ExportBody> for ExportJob {
    fn from(b: ExportBody) -> Self {
        Self {
            export_id: b.export_id,
            status: ExportStatus::parse(&b.status),
            number_of_records: b.number_of_records,
            file_size: b.file_size,
            file_checksum: b.file_checksum.as_deref().and_then(normalise_checksum),
            error_msg: b.error_msg,
            format: b.format,
        }
    }
}

/// `"sha256:ABC…"` → `"abc…"`; empty → `None`.
fn normalise_checksum(raw: &str) -> Option<String> {
    let raw = raw.trim();
    let hex = match raw.split_once(':') {
        Some((_, hex)) => hex,
        None => raw,
    };
    (!hex.is_empty()).then(|| hex.to_ascii_lowercase())
}

pub(crate) fn object_path(kind: ExportKind) -> &'static str {
    match kind {
        ExportKind::Leads => "leads",
        ExportKind::Activities => "activities",
    }
}

/// The `create.json` body for a request (always CSV).
fn create_body(request: &ExportRequest) -> Result<(ExportKind, serde_json::Value), MapError> {
    match request {
        ExportRequest::Leads { fields, filter } => {
            if fields.is_empty() {
                return Err(MapError::InvalidRequest(
                    "a lead export needs at least one field".to_owned(),
                ));
            }
            let filter = match filter {
                LeadExportFilter::CreatedAt(w) => {
                    w.validate_for_export()?;
                    json!({"createdAt": {"startAt": w.start_iso(), "endAt": w.end_iso()}})
                }
                LeadExportFilter::UpdatedAt(w) => {
                    w.validate_for_export()?;
                    json!({"updatedAt": {"startAt": w.start_iso(), "endAt": w.end_iso()}})
                }
                LeadExportFilter::StaticListId(id) => json!({ "staticListId": id }),
            };
            Ok((
                ExportKind::Leads,
                json!({"fields": fields, "format": "CSV", "filter": filter}),
            ))
        }
        ExportRequest::Activities {
            activity_type_ids,
            created_at,
            fields,
        } => {
            created_at.validate_for_export()?;
            let mut filter = json!({
                "createdAt": {"startAt": created_at.start_iso(), "endAt": created_at.end_iso()}
            });
            if !activity_type_ids.is_empty() {
                filter["activityTypeIds"] = json!(activity_type_ids);
            }
            // The spec marks `fields` as required; send the documented columns when none given.
            let fields: Vec<String> = match fields {
                Some(f) if !f.is_empty() => f.clone(),
                _ => ACTIVITY_FIELDS
                    .iter()
                    .map(|(n, _)| (*n).to_owned())
                    .collect(),
            };
            Ok((
                ExportKind::Activities,
                json!({"fields": fields, "format": "CSV", "filter": filter}),
            ))
        }
    }
}

impl MarketoClient {
    /// Creates an export job (`POST /bulk/v1/{obj}/export/create.json`).
    pub async fn create_export(
        &self,
        kind: ExportKind,
        body: &serde_json::Value,
    ) -> Result<ExportJob, MapError> {
        let bytes = Bytes::from(serde_json::to_vec(body).map_err(|e| {
            MapError::InvalidRequest(format!("cannot encode the export request: {e}"))
        })?);
        let mut call = Call::post(
            "create export",
            format!("/bulk/v1/{}/export/create.json", object_path(kind)),
            Payload::Json(bytes),
        );
        // Re-sending after an ambiguous failure at worst leaves an orphan job in `Created`
        // state, which uses no queue slot and no quota, so create is treated as idempotent.
        call.idempotent = true;
        call.timeout = Some(self.shared.config.request_timeout);
        self.first_job(&call).await
    }

    /// Enqueues a created job, waiting (with the poll policy) while the bulk queue is full.
    /// "Job already queued" counts as success, which makes enqueue idempotent.
    pub async fn enqueue_export(&self, kind: ExportKind, export_id: &str) -> Result<(), MapError> {
        let mut call = Call::post(
            "enqueue export",
            format!(
                "/bulk/v1/{}/export/{export_id}/enqueue.json",
                object_path(kind)
            ),
            Payload::None,
        );
        call.idempotent = true;
        call.caller_waits_for_queue = true;
        call.timeout = Some(self.shared.config.request_timeout);
        let started = Instant::now();
        let mut delays = self.shared.config.poll.delays();
        loop {
            match self.first_job(&call).await {
                Ok(_) => return Ok(()),
                Err(e) => match queue_signal(&e) {
                    Some(QueueSignal::AlreadyQueued) => return Ok(()),
                    Some(QueueSignal::Full) => {
                        let waited = started.elapsed();
                        if waited >= self.shared.config.poll.max_wait {
                            return Err(MapError::JobTimedOut {
                                job_id: export_id.to_owned(),
                                status: "waiting for a free slot in the bulk queue".to_owned(),
                                waited_secs: waited.as_secs(),
                            });
                        }
                        let delay = delays.next().unwrap_or(Duration::from_secs(60));
                        tracing::info!(
                            export_id,
                            delay_ms = delay.as_millis() as u64,
                            "Marketo bulk export queue is full; waiting"
                        );
                        tokio::time::sleep(delay).await;
                    }
                    None => return Err(e),
                },
            }
        }
    }

    /// The state of a job (`GET /bulk/v1/{obj}/export/{id}/status.json`).
    pub async fn export_status(
        &self,
        kind: ExportKind,
        export_id: &str,
    ) -> Result<ExportJob, MapError> {
        let mut call = Call::get(
            "export status",
            format!(
                "/bulk/v1/{}/export/{export_id}/status.json",
                object_path(kind)
            ),
        );
        call.timeout = Some(self.shared.config.request_timeout);
        self.first_job(&call).await
    }

    /// Polls a job until it is Completed, Failed or Cancelled, with the poll policy's growing
    /// interval (Marketo refreshes the status at most once a minute).
    pub async fn wait_export(
        &self,
        kind: ExportKind,
        export_id: &str,
    ) -> Result<ExportJob, MapError> {
        let started = Instant::now();
        let mut last = ExportStatus::Queued;
        for delay in self.shared.config.poll.delays() {
            let waited = started.elapsed();
            if waited >= self.shared.config.poll.max_wait {
                return Err(MapError::JobTimedOut {
                    job_id: export_id.to_owned(),
                    status: format!("{last:?}"),
                    waited_secs: waited.as_secs(),
                });
            }
            tokio::time::sleep(delay).await;
            let job = self.export_status(kind, export_id).await?;
            if job.status.is_final() {
                return Ok(job);
            }
            tracing::debug!(export_id, status = ?job.status, "export still running");
            last = job.status;
        }
        Err(MapError::Protocol {
            operation: "export status".to_owned(),
            message: "polling stopped unexpectedly".to_owned(),
        })
    }

    /// Runs an export to completion: create, enqueue, wait; a Failed job is recreated once.
    pub async fn run_export(&self, request: &ExportRequest) -> Result<CompletedExport, MapError> {
        let (kind, body) = create_body(request)?;
        for round in 0..2 {
            let job = self.create_export(kind, &body).await?;
            tracing::info!(export_id = %job.export_id, ?kind, "created Marketo export");
            self.enqueue_export(kind, &job.export_id).await?;
            let done = self.wait_export(kind, &job.export_id).await?;
            match done.status {
                ExportStatus::Completed => {
                    return Ok(CompletedExport {
                        kind,
                        export_id: done.export_id,
                        number_of_records: done.number_of_records,
                        file_size: done.file_size,
                        file_checksum: done.file_checksum,
                        format: done.format.unwrap_or_else(|| "CSV".to_owned()),
                        recreated: round > 0,
                    });
                }
                ExportStatus::Failed if round == 0 => {
                    tracing::warn!(
                        export_id = %done.export_id,
                        error = done.error_msg.as_deref().unwrap_or(""),
                        "Marketo export failed; recreating it once"
                    );
                }
                ExportStatus::Cancelled => {
                    return Err(MapError::JobFailed {
                        job_id: done.export_id,
                        status: "Cancelled".to_owned(),
                        message: "the export was cancelled outside Drover".to_owned(),
                    });
                }
                other => {
                    return Err(MapError::JobFailed {
                        job_id: done.export_id,
                        status: format!("{other:?}"),
                        message: format!(
                            "{} (the job had already been recreated once)",
                            done.error_msg
                                .unwrap_or_else(|| "no reason given".to_owned())
                        ),
                    });
                }
            }
        }
        Err(MapError::Protocol {
            operation: "run export".to_owned(),
            message: "the export loop ended without a result".to_owned(),
        })
    }

    async fn first_job(&self, call: &Call) -> Result<ExportJob, MapError> {
        let env = self.call_json::<ExportBody>(call).await?;
        env.result
            .into_iter()
            .next()
            .map(ExportJob::from)
            .ok_or_else(|| MapError::Protocol {
                operation: call.operation.to_owned(),
                message: "the result holds no export job".to_owned(),
            })
    }
}

enum QueueSignal {
    Full,
    AlreadyQueued,
}

fn queue_signal(e: &MapError) -> Option<QueueSignal> {
    match e {
        MapError::Api { code, message, .. } if code == "1029" => {
            let m = message.to_ascii_lowercase();
            if m.contains("already queued") {
                Some(QueueSignal::AlreadyQueued)
            } else if m.contains("too many jobs") {
                Some(QueueSignal::Full)
            } else {
                None
            }
        }
        MapError::Api { code, .. } if code == "1016" => Some(QueueSignal::Full),
        _ => None,
    }
}

pub(crate) fn is_queue_full(e: &MapError) -> bool {
    matches!(queue_signal(e), Some(QueueSignal::Full))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::windows::DateWindow;
    use chrono::{TimeZone, Utc};

    #[test]
    fn checksum_and_status_spellings() {
        assert_eq!(normalise_checksum("sha256:ABcd").as_deref(), Some("abcd"));
        assert_eq!(normalise_checksum("abcd").as_deref(), Some("abcd"));
        assert_eq!(normalise_checksum(""), None);
        assert_eq!(ExportStatus::parse("Canceled"), ExportStatus::Cancelled);
        assert_eq!(ExportStatus::parse("cancelled"), ExportStatus::Cancelled);
    }

    #[test]
    fn bodies_follow_the_spec() {
        let start = Utc
            .with_ymd_and_hms(2026, 1, 1, 0, 0, 0)
            .single()
            .expect("date");
        let end = Utc
            .with_ymd_and_hms(2026, 1, 31, 0, 0, 0)
            .single()
            .expect("date");
        let w = DateWindow::new(start, end).expect("window");
        let (_, body) = create_body(&ExportRequest::Activities {
            activity_type_ids: vec![1, 12],
            created_at: w,
            fields: None,
        })
        .expect("body");
        assert_eq!(
            body["filter"]["createdAt"]["startAt"],
            "2026-01-01T00:00:00Z"
        );
        assert_eq!(body["filter"]["activityTypeIds"], json!([1, 12]));
        let long = DateWindow::new(start, end + chrono::Duration::days(5)).expect("window");
        assert!(
            create_body(&ExportRequest::Leads {
                fields: vec!["id".into()],
                filter: LeadExportFilter::UpdatedAt(long)
            })
            .is_err()
        );
    }
}

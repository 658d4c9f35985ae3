//! Bulk lead import: upload one file, wait for the batch, read its failures and warnings.

use std::time::Duration;

use bytes::Bytes;
use serde::Deserialize;
use tokio::time::Instant;

use super::MarketoClient;
use super::extract::is_queue_full;
use super::transport::{Call, Payload, Reply};
use crate::MapError;
use crate::connector::{FileFormat, ImportBatch, ImportReport, ImportRequest, ImportRow};

/// Largest import file accepted by this client (Marketo: under 10 MB; 413 above). Callers split
/// bigger sets into chunks of at most this many bytes, each with the header row.
pub const MAX_IMPORT_BYTES: usize = 10_000_000;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct BatchBody {
    batch_id: i64,
    #[serde(default)]
    status: String,
    num_of_leads_processed: Option<u64>,
    num_of_rows_failed: Option<u64>,
    num_of_rows_with_warning: Option<u64>,
    message: Option<String>,
}

impl From<BatchBody> for ImportBatch {
    fn from(b: BatchBody) -> Self {
        Self {
            batch_id: b.batch_id,
            status: b.status,
            rows_processed: b.num_of_leads_processed.unwrap_or(0),
            rows_failed: b.num_of_rows_failed.unwrap_or(0),
            rows_with_warning: b.num_of_rows_with_warning.unwrap_or(0),
            message: b.message,
        }
    }
}

impl MarketoClient {
    /// Imports one file and waits for the outcome, failures and warnings included.
    pub async fn import_leads(&self, request: &ImportRequest) -> Result<ImportReport, MapError> {
        let submitted = self.submit_import(request).await?;
        let done = self.wait_import(submitted.batch_id).await?;
        if !done.status.eq_ignore_ascii_case("complete") {
            return Err(MapError::JobFailed {
                job_id: done.batch_id.to_string(),
                status: done.status,
                message: done
                    .message
                    .unwrap_or_else(|| "the import failed without a message".to_owned()),
            });
        }
        let failures = if done.rows_failed > 0 {
            self.import_rows(done.batch_id, "failures", request.format)
                .await?
        } else {
            Vec::new()
        };
        let warnings = if done.rows_with_warning > 0 {
            self.import_rows(done.batch_id, "warnings", request.format)
                .await?
        } else {
            Vec::new()
        };
        Ok(ImportReport {
            batch: done,
            failures,
            warnings,
        })
    }

    /// Uploads a file (`POST /bulk/v1/leads.json`, multipart), waiting with the poll policy while
    /// Marketo has too many imports queued (1016).
    ///
    /// Import is always insert-or-update by `lookupField`, so running the same file twice leaves
    /// the same data; an upload that may have reached the server is therefore retried.
    pub async fn submit_import(&self, request: &ImportRequest) -> Result<ImportBatch, MapError> {
        if request.file.len() > MAX_IMPORT_BYTES {
            return Err(MapError::TooLarge(format!(
                "an import file may hold at most {MAX_IMPORT_BYTES} bytes, this one has {}; split it",
                request.file.len()
            )));
        }
        if request.file.is_empty() {
            return Err(MapError::InvalidRequest(
                "the import file is empty".to_owned(),
            ));
        }
        let mut params = vec![
            ("format".to_owned(), request.format.as_str().to_owned()),
            ("lookupField".to_owned(), request.lookup_field.clone()),
        ];
        if let Some(id) = request.list_id {
            params.push(("listId".to_owned(), id.to_string()));
        }
        if let Some(p) = &request.partition_name {
            params.push(("partitionName".to_owned(), p.clone()));
        }
        let (file_name, mime) = match request.format {
            FileFormat::Csv => ("leads.csv", "text/csv"),
            FileFormat::Tsv => ("leads.tsv", "text/tab-separated-values"),
            FileFormat::Ssv => ("leads.ssv", "text/plain"),
        };
        let mut call = Call::post(
            "import leads",
            "/bulk/v1/leads.json",
            // The spec puts the parameters in the query, the docs' curl example in the form;
            // send both so either reading works.
            Payload::Multipart {
                fields: params.clone(),
                file: request.file.clone(),
                file_name: file_name.to_owned(),
                mime,
            },
        );
        call.query = params;
        call.idempotent = true;
        call.caller_waits_for_queue = true;
        call.timeout = Some(
            self.shared
                .config
                .request_timeout
                .max(Duration::from_secs(120)),
        );
        let started = Instant::now();
        let mut delays = self.shared.config.poll.delays();
        loop {
            match self.first_batch(&call).await {
                Ok(b) => return Ok(b),
                Err(e) if is_queue_full(&e) => {
                    let waited = started.elapsed();
                    if waited >= self.shared.config.poll.max_wait {
                        return Err(MapError::JobTimedOut {
                            job_id: "(not yet created)".to_owned(),
                            status: "waiting for a free import slot".to_owned(),
                            waited_secs: waited.as_secs(),
                        });
                    }
                    let delay = delays.next().unwrap_or(Duration::from_secs(60));
                    tracing::info!(
                        delay_ms = delay.as_millis() as u64,
                        "Marketo has too many imports queued; waiting"
                    );
                    tokio::time::sleep(delay).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// The state of a batch (`GET /bulk/v1/leads/batch/{id}.json`).
    pub async fn import_status(&self, batch_id: i64) -> Result<ImportBatch, MapError> {
        let mut call = Call::get(
            "import status",
            format!("/bulk/v1/leads/batch/{batch_id}.json"),
        );
        call.timeout = Some(self.shared.config.request_timeout);
        self.first_batch(&call).await
    }

    /// Polls a batch until it is `Complete` or `Failed`.
    pub async fn wait_import(&self, batch_id: i64) -> Result<ImportBatch, MapError> {
        let started = Instant::now();
        let mut last = String::from("Queued");
        for delay in self.shared.config.poll.delays() {
            let waited = started.elapsed();
            if waited >= self.shared.config.poll.max_wait {
                return Err(MapError::JobTimedOut {
                    job_id: batch_id.to_string(),
                    status: last,
                    waited_secs: waited.as_secs(),
                });
            }
            tokio::time::sleep(delay).await;
            let b = self.import_status(batch_id).await?;
            if b.status.eq_ignore_ascii_case("complete") || b.status.eq_ignore_ascii_case("failed")
            {
                return Ok(b);
            }
            last = b.status;
        }
        Err(MapError::Protocol {
            operation: "import status".to_owned(),
            message: "polling stopped unexpectedly".to_owned(),
        })
    }

    /// Reads `failures.json` or `warnings.json` of a batch into rows.
    async fn import_rows(
        &self,
        batch_id: i64,
        which: &'static str,
        format: FileFormat,
    ) -> Result<Vec<ImportRow>, MapError> {
        let op = if which == "failures" {
            "import failures"
        } else {
            "import warnings"
        };
        let mut call = Call::get(op, format!("/bulk/v1/leads/batch/{batch_id}/{which}.json"));
        call.raw = true;
        call.timeout = Some(self.shared.config.request_timeout);
        let body = match self.execute(&call).await? {
            Reply::Json(b) => b,
            Reply::Raw { response, permit } => {
                let b = response
                    .bytes()
                    .await
                    .map_err(|e| MapError::transport(op, e))?;
                drop(permit);
                self.usage.downloaded(b.len() as u64);
                b
            }
        };
        parse_report_rows(&body, format).map_err(|message| MapError::Protocol {
            operation: op.to_owned(),
            message,
        })
    }

    async fn first_batch(&self, call: &Call) -> Result<ImportBatch, MapError> {
        let env = self.call_json::<BatchBody>(call).await?;
        env.result
            .into_iter()
            .next()
            .map(ImportBatch::from)
            .ok_or_else(|| MapError::Protocol {
                operation: call.operation.to_owned(),
                message: "the result holds no import batch".to_owned(),
            })
    }
}

/// Parses a failures/warnings file: the original columns plus a reason column, named
/// `Import Failure Reason` or `Import Warning Reason` (the last column if neither is found).
pub(crate) fn parse_report_rows(
    body: &Bytes,
    format: FileFormat,
) -> Result<Vec<ImportRow>, String> {
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(format.delimiter())
        .flexible(true)
        .from_reader(body.as_ref());
    let headers: Vec<String> = reader
        .headers()
        .map_err(|e| format!("cannot read the header row: {e}"))?
        .iter()
        .map(|h| h.trim_start_matches('\u{feff}').to_owned())
        .collect();
    if headers.is_empty() || (headers.len() == 1 && headers[0].is_empty()) {
        return Ok(Vec::new());
    }
    let reason_at = headers
        .iter()
        .position(|h| {
            let h = h.trim().to_ascii_lowercase();
            h == "import failure reason" || h == "import warning reason"
        })
        .unwrap_or(headers.len() - 1);
    let mut rows = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|e| format!("cannot read a row: {e}"))?;
        let mut columns = Vec::with_capacity(headers.len().saturating_sub(1));
        let mut reason = String::new();
        for (i, h) in headers.iter().enumerate() {
            let v = record.get(i).unwrap_or("").to_owned();
            if i == reason_at {
                reason = v;
            } else {
                columns.push((h.clone(), v));
            }
        }
        rows.push(ImportRow { columns, reason });
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_failure_and_warning_files() {
        let body = Bytes::from_static(
            b"email,score,Import Failure Reason\na@x.com,abc,\"Invalid data type in field Lead Score\"\n",
        );
        let rows = parse_report_rows(&body, FileFormat::Csv).expect("parse");
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].get("email"), Some("a@x.com"));
        assert_eq!(rows[0].reason, "Invalid data type in field Lead Score");

        let body = Bytes::from_static(b"Import Warning Reason;email\nInvalid email address;bad\n");
        let rows = parse_report_rows(&body, FileFormat::Ssv).expect("parse");
        assert_eq!(rows[0].reason, "Invalid email address");
        assert_eq!(
            rows[0].columns,
            vec![("email".to_owned(), "bad".to_owned())]
        );
    }
}

//! Small lead reads and writes: Get Leads by Filter Type and Sync Leads.

use bytes::Bytes;
use serde::Deserialize;
use serde_json::json;

use super::MarketoClient;
use super::envelope::{ApiErrorBody, null_as_empty};
use super::transport::{Call, Payload};
use crate::MapError;
use crate::connector::{LeadQuery, Reason, Record, RecordStatus, SyncRequest, SyncResult};

/// Records or key values per lead-database call.
pub const MAX_BATCH: usize = 300;
/// Longest URI Marketo accepts (8 KB); longer reads go as `POST …?_method=GET`.
pub const MAX_URI_BYTES: usize = 8 * 1024;
/// Largest ordinary request body (1 MB).
const MAX_BODY_BYTES: usize = 1024 * 1024;
/// Room left for the envelope around the records of a sync body.
const BODY_OVERHEAD: usize = 1024;

#[derive(Debug, Deserialize)]
struct SyncBody {
    id: Option<i64>,
    #[serde(default)]
    status: String,
    #[serde(default, deserialize_with = "null_as_empty")]
    reasons: Vec<ApiErrorBody>,
    /// The spec's `Lead` model names it `reason` (singular); accept that too.
    reason: Option<ApiErrorBody>,
}

impl MarketoClient {
    /// Reads leads by key (`GET /rest/v1/leads.json?filterType=&filterValues=&fields=`): 300 values
    /// per call, following `nextPageToken`; a URI over 8 KB is sent as a form body with
    /// `POST …?_method=GET`, as documented. Leads that match nothing are simply absent.
    pub async fn fetch_leads(&self, query: &LeadQuery) -> Result<Vec<Record>, MapError> {
        if query.filter_type.trim().is_empty() {
            return Err(MapError::InvalidRequest(
                "fetching leads needs a filter type (e.g. email)".to_owned(),
            ));
        }
        let mut out = Vec::new();
        for chunk in query.values.chunks(MAX_BATCH) {
            let mut page_token: Option<String> = None;
            loop {
                let mut params = vec![
                    ("filterType".to_owned(), query.filter_type.clone()),
                    ("filterValues".to_owned(), chunk.join(",")),
                    ("batchSize".to_owned(), MAX_BATCH.to_string()),
                ];
                if !query.fields.is_empty() {
                    params.push(("fields".to_owned(), query.fields.join(",")));
                }
                if let Some(t) = &page_token {
                    params.push(("nextPageToken".to_owned(), t.clone()));
                }
                let call = self.read_call("get leads", "/rest/v1/leads.json", params);
                let env = self.call_json::<Record>(&call).await?;
                out.extend(env.result);
                match (env.more_result, env.next_page_token) {
                    (Some(true), Some(t)) if !t.is_empty() => page_token = Some(t),
                    _ => break,
                }
            }
        }
        Ok(out)
    }

    /// A GET with `params` in the query, or, if the URI would pass 8 KB, a POST with
    /// `_method=GET` and the parameters as a form body.
    fn read_call(&self, op: &'static str, path: &str, params: Vec<(String, String)>) -> Call {
        let mut probe = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in &params {
            probe.append_pair(k, v);
        }
        let uri_len = self.shared.base_url.len() + path.len() + 1 + probe.finish().len();
        let mut call = if uri_len > MAX_URI_BYTES - 256 {
            let mut c = Call::post(op, path, Payload::Form(params));
            c.query = vec![("_method".to_owned(), "GET".to_owned())];
            // A read, whatever the verb.
            c.idempotent = true;
            c
        } else {
            let mut c = Call::get(op, path);
            c.query = params;
            c
        };
        call.timeout = Some(self.shared.config.request_timeout);
        call
    }

    /// Upserts leads (`POST /rest/v1/leads.json`), at most 300 records and under 1 MB per call,
    /// returning one result per input record in input order (with `reasons` for skipped ones).
    ///
    /// Retries after an ambiguous failure (timeout, 502/504) only for `createOrUpdate` and
    /// `updateOnly`, which are idempotent by key; see [`crate::SyncAction::is_idempotent`].
    pub async fn sync_leads(&self, request: &SyncRequest) -> Result<Vec<SyncResult>, MapError> {
        if request.lookup_field.trim().is_empty() {
            return Err(MapError::InvalidRequest(
                "syncing leads needs a lookup field (e.g. email)".to_owned(),
            ));
        }
        let mut out = Vec::with_capacity(request.records.len());
        for batch in split_by_size(&request.records)? {
            let mut body = json!({
                "action": request.action.as_str(),
                "lookupField": request.lookup_field,
                "asyncProcessing": false,
                "input": batch,
            });
            if let Some(p) = &request.partition_name {
                body["partitionName"] = json!(p);
            }
            let bytes = Bytes::from(serde_json::to_vec(&body).map_err(|e| {
                MapError::InvalidRequest(format!("cannot encode the records: {e}"))
            })?);
            let mut call = Call::post("sync leads", "/rest/v1/leads.json", Payload::Json(bytes));
            call.idempotent = request.action.is_idempotent();
            call.timeout = Some(self.shared.config.sync_timeout);
            let env = self.call_json::<SyncBody>(&call).await?;
            if env.result.len() != batch.len() {
                return Err(MapError::Protocol {
                    operation: "sync leads".to_owned(),
                    message: format!(
                        "sent {} records but got {} results",
                        batch.len(),
                        env.result.len()
                    ),
                });
            }
            out.extend(env.result.into_iter().map(sync_result));
        }
        Ok(out)
    }
}

fn sync_result(b: SyncBody) -> SyncResult {
    let status = match b.status.to_ascii_lowercase().as_str() {
        "created" => RecordStatus::Created,
        "updated" => RecordStatus::Updated,
        "deleted" => RecordStatus::Deleted,
        "skipped" => RecordStatus::Skipped,
        _ => RecordStatus::Other(b.status.clone()),
    };
    let reasons = b
        .reasons
        .into_iter()
        .chain(b.reason)
        .map(|r| Reason {
            code: r.code,
            message: r.message,
        })
        .collect();
    SyncResult {
        id: b.id,
        status,
        reasons,
    }
}

/// Splits records into batches of at most 300 whose JSON stays under 1 MB.
fn split_by_size(records: &[Record]) -> Result<Vec<&[Record]>, MapError> {
    let mut batches = Vec::new();
    let mut start = 0;
    let mut size = BODY_OVERHEAD;
    for (i, r) in records.iter().enumerate() {
        let len = serde_json::to_vec(r).map(|v| v.len() + 1).unwrap_or(0);
        if len + BODY_OVERHEAD > MAX_BODY_BYTES {
            return Err(MapError::TooLarge(format!(
                "record {i} is {len} bytes of JSON; Marketo accepts at most 1 MB per call"
            )));
        }
        if i > start && (i - start == MAX_BATCH || size + len > MAX_BODY_BYTES) {
            batches.push(&records[start..i]);
            start = i;
            size = BODY_OVERHEAD;
        }
        size += len;
    }
    if start < records.len() {
        batches.push(&records[start..]);
    }
    Ok(batches)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_respect_count_and_size() {
        let small: Vec<Record> = (0..700)
            .map(|i| {
                let mut r = Record::new();
                r.insert("email".into(), json!(format!("a{i}@x.com")));
                r
            })
            .collect();
        let b = split_by_size(&small).expect("split");
        assert_eq!(
            b.iter().map(|x| x.len()).collect::<Vec<_>>(),
            vec![300, 300, 100]
        );

        let big: Vec<Record> = (0..10)
            .map(|_| {
                let mut r = Record::new();
                r.insert("notes".into(), json!("x".repeat(300_000)));
                r
            })
            .collect();
        let b = split_by_size(&big).expect("split");
        assert!(b.iter().all(|x| x.len() <= 3));
        assert_eq!(b.iter().map(|x| x.len()).sum::<usize>(), 10);
    }

    #[test]
    fn reasons_singular_or_plural() {
        let b: SyncBody = serde_json::from_str(
            r#"{"status":"skipped","reason":{"code":"1004","message":"Lead not found"}}"#,
        )
        .expect("parse");
        let r = sync_result(b);
        assert_eq!(r.status, RecordStatus::Skipped);
        assert_eq!(r.reasons[0].code, "1004");
    }
}

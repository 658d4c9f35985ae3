//! Streaming download of an export file: resumes with `Range` after a broken connection and checks
//! the SHA-256 announced in `fileChecksum` before handing over the last chunk.

use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::stream::{self, BoxStream};
use reqwest::header::CONTENT_RANGE;
use sha2::{Digest, Sha256};

use super::MarketoClient;
use super::extract::object_path;
use super::transport::{Call, Reply};
use crate::MapError;
use crate::connector::{ByteStream, CompletedExport};
use crate::rate_limit::Permit;

const OP: &str = "download export file";

struct Download {
    client: MarketoClient,
    path: String,
    export_id: String,
    expected_size: Option<u64>,
    expected_checksum: Option<String>,
    /// Bytes received and hashed so far.
    offset: u64,
    hasher: Sha256,
    body: Option<(BoxStream<'static, reqwest::Result<Bytes>>, Permit)>,
    /// Bytes to drop at the start of the current body (the server ignored our `Range`).
    skip: u64,
    /// The newest chunk, held back until the next one arrives or the checksum is verified.
    pending: Option<Bytes>,
    /// Consecutive broken connections without progress.
    failures: u32,
    done: bool,
}

impl MarketoClient {
    /// Streams the file of a completed export (`GET /bulk/v1/{obj}/export/{id}/file.json`).
    /// Memory use is one chunk whatever the file size.
    pub fn download_export(&self, export: &CompletedExport) -> ByteStream {
        let state = Download {
            client: self.clone(),
            path: format!(
                "/bulk/v1/{}/export/{}/file.json",
                object_path(export.kind),
                export.export_id
            ),
            export_id: export.export_id.clone(),
            expected_size: export.file_size,
            expected_checksum: export.file_checksum.clone(),
            offset: 0,
            hasher: Sha256::new(),
            body: None,
            skip: 0,
            pending: None,
            failures: 0,
            done: false,
        };
        stream::unfold(state, |mut s| async move {
            let item = s.next_item().await;
            item.map(|i| (i, s))
        })
        .boxed()
    }
}

impl Download {
    async fn next_item(&mut self) -> Option<Result<Bytes, MapError>> {
        loop {
            if self.done {
                return None;
            }
            if self.body.is_none()
                && let Err(e) = self.open().await
            {
                self.done = true;
                return Some(Err(e));
            }
            let Some((body, _)) = self.body.as_mut() else {
                continue;
            };
            match body.next().await {
                Some(Ok(mut chunk)) => {
                    if self.skip > 0 {
                        let drop_now = usize::try_from(self.skip.min(chunk.len() as u64))
                            .unwrap_or(chunk.len());
                        let _ = chunk.split_to(drop_now);
                        self.skip -= drop_now as u64;
                    }
                    if chunk.is_empty() {
                        continue;
                    }
                    self.hasher.update(&chunk);
                    self.offset += chunk.len() as u64;
                    self.failures = 0;
                    self.client.usage.downloaded(chunk.len() as u64);
                    if let Some(previous) = self.pending.replace(chunk) {
                        return Some(Ok(previous));
                    }
                }
                Some(Err(e)) => {
                    self.body = None;
                    let err = MapError::transport(OP, e);
                    if let Err(fatal) = self.broken(err).await {
                        self.done = true;
                        return Some(Err(fatal));
                    }
                }
                None => {
                    self.body = None;
                    match self.expected_size {
                        Some(size) if self.offset < size => {
                            let err = MapError::Transport {
                                operation: OP.to_owned(),
                                message: format!(
                                    "the connection closed after {} of {size} bytes",
                                    self.offset
                                ),
                                timeout: false,
                                maybe_executed: true,
                            };
                            if let Err(fatal) = self.broken(err).await {
                                self.done = true;
                                return Some(Err(fatal));
                            }
                        }
                        _ => {
                            self.done = true;
                            return self.finish();
                        }
                    }
                }
            }
        }
    }

    /// Opens (or reopens from `offset`) the file.
    async fn open(&mut self) -> Result<(), MapError> {
        let mut call = Call::get(OP, self.path.clone());
        call.raw = true;
        call.range_from = (self.offset > 0).then_some(self.offset);
        match self.client.execute(&call).await? {
            Reply::Json(body) => Err(MapError::Protocol {
                operation: OP.to_owned(),
                message: format!(
                    "expected the export file, got JSON: {}",
                    super::envelope::excerpt(&body)
                ),
            }),
            Reply::Raw { response, permit } => {
                let status = response.status().as_u16();
                self.skip = 0;
                if self.offset > 0 {
                    if status == 206 {
                        let start = response
                            .headers()
                            .get(CONTENT_RANGE)
                            .and_then(|v| v.to_str().ok())
                            .and_then(range_start);
                        if start != Some(self.offset) {
                            return Err(MapError::Protocol {
                                operation: OP.to_owned(),
                                message: format!(
                                    "asked for bytes from {} but got Content-Range {:?}",
                                    self.offset,
                                    response.headers().get(CONTENT_RANGE)
                                ),
                            });
                        }
                    } else {
                        // The whole file again: drop what we already have.
                        self.skip = self.offset;
                    }
                    tracing::info!(export_id = %self.export_id, offset = self.offset, "resumed export download");
                }
                self.body = Some((response.bytes_stream().boxed(), permit));
                Ok(())
            }
        }
    }

    /// Records a broken connection; errors when too many happened in a row.
    async fn broken(&mut self, err: MapError) -> Result<(), MapError> {
        self.failures += 1;
        self.client.usage.error(&err.usage_key());
        let policy = &self.client.shared.config.retry;
        if self.failures >= policy.max_attempts {
            return Err(MapError::RetriesExhausted {
                operation: OP.to_owned(),
                attempts: self.failures,
                last: Box::new(err),
            });
        }
        let delay = policy.delay(self.failures);
        self.client.usage.retry();
        tracing::warn!(
            export_id = %self.export_id,
            offset = self.offset,
            delay_ms = delay.as_millis() as u64,
            error = %err,
            "export download broke; resuming"
        );
        tokio::time::sleep(delay).await;
        Ok(())
    }

    /// The end of the file: verify size and checksum, then release the last chunk.
    fn finish(&mut self) -> Option<Result<Bytes, MapError>> {
        if let Some(size) = self.expected_size
            && self.offset != size
        {
            return Some(Err(MapError::Protocol {
                operation: OP.to_owned(),
                message: format!(
                    "the export file has {} bytes but Marketo announced {size}",
                    self.offset
                ),
            }));
        }
        let actual = hex(&std::mem::take(&mut self.hasher).finalize());
        match &self.expected_checksum {
            Some(expected) if *expected != actual => Some(Err(MapError::ChecksumMismatch {
                export_id: self.export_id.clone(),
                expected: expected.clone(),
                actual,
            })),
            expected => {
                if expected.is_none() {
                    tracing::warn!(export_id = %self.export_id, "Marketo gave no fileChecksum; file not verified");
                }
                self.pending.take().map(Ok)
            }
        }
    }
}

/// `bytes 100-199/1000` → 100.
fn range_start(v: &str) -> Option<u64> {
    let rest = v.trim().strip_prefix("bytes")?.trim();
    let (start, _) = rest.split_once('-')?;
    start.trim().parse().ok()
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_content_range() {
        assert_eq!(range_start("bytes 725-999/1000"), Some(725));
        assert_eq!(range_start("bytes */1000"), None);
        assert_eq!(hex(&[0, 255, 16]), "00ff10");
    }
}

//! Clients for marketing automation platforms (MAPs), Marketo first.
//!
//! The engine holds one [`MapConnector`] per environment (`Arc<dyn MapConnector>`). The Marketo
//! implementation, [`MarketoClient`], takes care of:
//! - tokens (OAuth client credentials, cached per client id, renewed on 600/601/602);
//! - staying inside the vendor limits with a client-side sliding window and concurrency cap
//!   ([`RateLimit`], default 50 calls / 20 s and 5 concurrent) that adapts when other
//!   integrations share the instance: a 606 halves the pace and holds calls for a window, a 615
//!   halves the calls in flight, and each quiet window gives one back ([`Notice`]s tell a
//!   handle's [`Observer`]);
//! - retries with jittered exponential backoff on transient failures ([`RetryPolicy`]), never
//!   re-sending a non-idempotent write the server may have executed; calls refused by the
//!   instance's rate or concurrency limit are retried until the handle's deadline
//!   ([`Scope`]);
//! - a daily call budget per environment ([`CallBudget`]) asked before every counted call;
//! - usage counters per handle ([`Usage`]);
//! - bulk export and import with bounded memory (streamed downloads with resume and SHA-256
//!   verification; import files of at most [`MAX_IMPORT_BYTES`]).
//!
//! Secrets never appear in errors or logs: [`Secret`] prints `***` and transport errors are
//! stripped of their URL. A rustls crypto provider must be installed by the process.

mod auth;
mod budget;
mod connector;
mod error;
mod marketo;
mod poll;
mod rate_limit;
mod retry;
mod secret;
mod usage;
mod windows;

pub use budget::{BudgetExhausted, CallBudget, MemoryBudget, Unlimited};
pub use connector::{
    ActivityType, ByteStream, CompletedExport, ExportKind, ExportRequest, FieldInfo, FileFormat,
    ImportBatch, ImportReport, ImportRequest, ImportRow, LeadExportFilter, LeadQuery, MapConnector,
    MapObject, Reason, Record, RecordStatus, Scope, SyncAction, SyncRequest, SyncResult,
    lookup_field_problem, resolve_activity_types,
};
pub use error::MapError;
pub use marketo::{
    ExportJob, ExportStatus, MAX_BATCH, MAX_IMPORT_BYTES, MAX_URI_BYTES, MarketoClient,
    MarketoConfig,
};
pub use poll::PollPolicy;
pub use rate_limit::{
    MAX_CALLS_PER_20S, MAX_CONCURRENCY, Notice, Observer, Pace, Permit, RateLimit, RateLimiter,
};
pub use retry::RetryPolicy;
pub use secret::{REDACTED, Redactor, Secret};
pub use usage::Usage;
pub use windows::{DateWindow, MAX_EXPORT_WINDOW_DAYS, split_date_range};

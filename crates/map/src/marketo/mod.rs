//! The Marketo REST client.

mod config;
mod describe;
mod download;
pub(crate) mod envelope;
mod extract;
mod import;
mod leads;
mod transport;

use std::fmt;
use std::sync::Arc;

use futures_util::future::BoxFuture;

pub use config::MarketoConfig;
pub use extract::{ExportJob, ExportStatus};
pub use import::MAX_IMPORT_BYTES;
pub use leads::{MAX_BATCH, MAX_URI_BYTES};

use crate::auth::TokenCache;
use crate::budget::CallBudget;
use crate::connector::{
    ActivityType, ByteStream, CompletedExport, ExportRequest, FieldInfo, ImportReport,
    ImportRequest, LeadQuery, MapConnector, MapObject, Record, Scope, SyncRequest, SyncResult,
};
use crate::rate_limit::RateLimiter;
use crate::usage::UsageCounters;
use crate::{MapError, Usage};

/// A Marketo client. Cheap to clone; clones share the HTTP connection pool, the token cache, the
/// rate limiter, the budget and the usage counters. [`MarketoClient::scoped`] gives a handle with
/// its own usage counters, [`MarketoClient::scoped_with`] one with its own deadline and observer
/// too.
#[derive(Clone)]
pub struct MarketoClient {
    shared: Arc<Shared>,
    usage: Arc<UsageCounters>,
    scope: Arc<Scope>,
}

struct Shared {
    http: reqwest::Client,
    config: MarketoConfig,
    base_url: String,
    tokens: TokenCache,
    limiter: RateLimiter,
    budget: Arc<dyn CallBudget>,
    /// Describe Lead2's searchable keys and when they were read.
    searchable: tokio::sync::Mutex<Option<describe::Searchable>>,
}

impl fmt::Debug for MarketoClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MarketoClient")
            .field("base_url", &self.shared.base_url)
            .field("client_id", &self.shared.config.client_id)
            .field("budget", &self.shared.budget)
            .finish_non_exhaustive()
    }
}

impl MarketoClient {
    /// A client for `config`, spending from `budget` before every counted call.
    ///
    /// The process must have installed a rustls crypto provider
    /// (`rustls::crypto::ring::default_provider().install_default()`) before this is called.
    pub fn new(config: MarketoConfig, budget: Arc<dyn CallBudget>) -> Result<Self, MapError> {
        let base_url = config.validate()?;
        let http = reqwest::Client::builder()
            .connect_timeout(config.connect_timeout)
            .read_timeout(config.read_timeout.max(config.sync_timeout))
            .user_agent(concat!("drover-map/", env!("CARGO_PKG_VERSION")))
            // `Accept-Encoding: gzip` on every call, answers decompressed as they stream in:
            // Marketo compresses REST answers of 1024 bytes or more (bulk files never).
            .gzip(true)
            .build()
            .map_err(|e| {
                MapError::Config(format!("cannot build the HTTP client: {}", e.without_url()))
            })?;
        let limiter = RateLimiter::new(&config.rate);
        Ok(Self {
            shared: Arc::new(Shared {
                http,
                config,
                base_url,
                tokens: TokenCache::default(),
                limiter,
                budget,
                searchable: tokio::sync::Mutex::new(None),
            }),
            usage: Arc::new(UsageCounters::default()),
            scope: Arc::new(Scope::default()),
        })
    }

    /// A handle sharing everything but the usage counters, which start at zero.
    pub fn scoped(&self) -> Self {
        self.scoped_with(Scope::default())
    }

    /// A handle with its own usage counters, deadline and observer; the observer hears every
    /// change of the shared limiter's pace while the handle (or a clone) lives.
    pub fn scoped_with(&self, scope: Scope) -> Self {
        if let Some(o) = &scope.observer {
            self.shared.limiter.subscribe(o);
        }
        Self {
            shared: self.shared.clone(),
            usage: Arc::new(UsageCounters::default()),
            scope: Arc::new(scope),
        }
    }

    /// What this handle (and its clones) spent so far.
    pub fn usage(&self) -> Usage {
        self.usage.snapshot()
    }

    /// The settings.
    pub fn config(&self) -> &MarketoConfig {
        &self.shared.config
    }

    /// The rate limiter shared by this client's calls.
    pub fn limiter(&self) -> &RateLimiter {
        &self.shared.limiter
    }
}

impl MapConnector for MarketoClient {
    fn vendor(&self) -> &'static str {
        "marketo"
    }

    fn describe_fields(
        &self,
        object: MapObject,
    ) -> BoxFuture<'_, Result<Vec<FieldInfo>, MapError>> {
        Box::pin(MarketoClient::describe_fields(self, object))
    }

    fn activity_types(&self) -> BoxFuture<'_, Result<Vec<ActivityType>, MapError>> {
        Box::pin(MarketoClient::activity_types(self))
    }

    fn searchable_fields(&self) -> BoxFuture<'_, Result<Arc<Vec<Vec<String>>>, MapError>> {
        Box::pin(MarketoClient::searchable_fields(self))
    }

    fn run_export(
        &self,
        request: ExportRequest,
    ) -> BoxFuture<'_, Result<CompletedExport, MapError>> {
        Box::pin(async move { MarketoClient::run_export(self, &request).await })
    }

    fn download_export(&self, export: &CompletedExport) -> ByteStream {
        MarketoClient::download_export(self, export)
    }

    fn fetch_leads(&self, query: LeadQuery) -> BoxFuture<'_, Result<Vec<Record>, MapError>> {
        Box::pin(async move { MarketoClient::fetch_leads(self, &query).await })
    }

    fn sync_leads(&self, request: SyncRequest) -> BoxFuture<'_, Result<Vec<SyncResult>, MapError>> {
        Box::pin(async move { MarketoClient::sync_leads(self, &request).await })
    }

    fn import_leads(
        &self,
        request: ImportRequest,
    ) -> BoxFuture<'_, Result<ImportReport, MapError>> {
        Box::pin(async move { MarketoClient::import_leads(self, &request).await })
    }

    fn usage(&self) -> Usage {
        MarketoClient::usage(self)
    }

    fn scoped(&self) -> Arc<dyn MapConnector> {
        Arc::new(MarketoClient::scoped(self))
    }

    fn scoped_with(&self, scope: Scope) -> Arc<dyn MapConnector> {
        Arc::new(MarketoClient::scoped_with(self, scope))
    }
}

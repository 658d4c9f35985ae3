//! A MAP client per environment, built from the environment file's connection (secrets read
//! from where it says), with the environment's daily API budget kept in Postgres.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chrono::{FixedOffset, Utc};
use drover_map::{BudgetExhausted, CallBudget, MapConnector, Secret, Unlimited};
use drover_map::{MarketoClient, MarketoConfig};
use drover_spec::dag::map_kinds::LeadFilter;
use drover_spec::environment::{Environment, MapConnection, MapKind, SecretRef};
use drover_store::Store;
use futures_util::future::BoxFuture;

use super::{TaskError, TryId};
use crate::runner::Job;

/// The MAP's day starts at midnight US Central Standard Time (Marketo's quota reset).
fn map_day() -> chrono::NaiveDate {
    let cst = FixedOffset::west_opt(6 * 3600).unwrap_or_else(|| Utc.fix());
    Utc::now().with_timezone(&cst).date_naive()
}

use chrono::Offset;

/// When the MAP's current day began.
pub(crate) fn map_day_start() -> chrono::DateTime<Utc> {
    let cst = FixedOffset::west_opt(6 * 3600).unwrap_or_else(|| Utc.fix());
    map_day()
        .and_hms_opt(0, 0, 0)
        .and_then(|midnight| midnight.and_local_timezone(cst).single())
        .map_or_else(Utc::now, |t| t.with_timezone(&Utc))
}

/// An environment's daily MAP API budget, shared by every worker through Postgres.
#[derive(Debug, Clone)]
pub struct PgBudget {
    store: Store,
    environment: String,
    budget: u64,
}

impl PgBudget {
    pub fn new(store: Store, environment: impl Into<String>, budget: u64) -> Self {
        Self {
            store,
            environment: environment.into(),
            budget,
        }
    }
}

impl CallBudget for PgBudget {
    fn spend(&self, calls: u32) -> BoxFuture<'_, Result<(), BudgetExhausted>> {
        Box::pin(async move {
            let budget = i64::try_from(self.budget).unwrap_or(i64::MAX);
            let refused = |used: i64| BudgetExhausted {
                environment: self.environment.clone(),
                budget: self.budget,
                used: u64::try_from(used).unwrap_or(0),
                resets_at: None,
            };
            match self
                .store
                .spend_api_calls(&self.environment, map_day(), i64::from(calls), budget)
                .await
            {
                Ok(Ok(_)) => Ok(()),
                Ok(Err(r)) => Err(refused(r.used)),
                Err(e) => {
                    // The budget is a backstop: when the database cannot answer, the call goes
                    // ahead rather than failing the task, and the gap is logged.
                    tracing::warn!(error = %e, environment = %self.environment, "could not count a MAP API call");
                    Ok(())
                }
            }
        })
    }
}

/// A built client and the settings it was built from.
type CachedClient = (MapConnection, Option<u64>, Arc<dyn MapConnector>);

/// One client per environment, rebuilt when the environment's connection changes.
#[derive(Debug)]
pub struct MapClients {
    store: Store,
    clients: Mutex<HashMap<String, CachedClient>>,
    /// Values for `{ env: NAME }` secrets that this process holds itself (standalone mode
    /// hands its sandboxes' credentials over this way); the process environment otherwise.
    provided: HashMap<String, Secret>,
    /// Environment → the MAP address to use instead of its file's (standalone mode, when a
    /// sandbox could not have the port the file names).
    addresses: HashMap<String, String>,
}

impl MapClients {
    pub fn new(store: Store) -> Self {
        Self {
            store,
            clients: Mutex::new(HashMap::new()),
            provided: HashMap::new(),
            addresses: HashMap::new(),
        }
    }

    /// Clients whose `{ env: NAME }` secrets come from `provided` where it has them.
    pub fn with_provided_secrets(store: Store, provided: HashMap<String, Secret>) -> Self {
        Self {
            provided,
            ..Self::new(store)
        }
    }

    /// These clients, reaching the MAP of each environment in `addresses` there instead of
    /// at its file's `base_url`.
    #[must_use]
    pub fn at_addresses(self, addresses: HashMap<String, String>) -> Self {
        Self {
            store: self.store,
            clients: Mutex::new(HashMap::new()),
            provided: self.provided,
            addresses,
        }
    }

    /// The MAP addresses used instead of the environments' files'.
    pub fn addresses(&self) -> &HashMap<String, String> {
        &self.addresses
    }

    /// The `{ env: NAME }` values this process was handed.
    pub fn provided(&self) -> &HashMap<String, Secret> {
        &self.provided
    }

    /// The client of `env` (built on first use).
    pub(crate) fn client(&self, env: &Environment) -> Result<Arc<dyn MapConnector>, TaskError> {
        let mut clients = self
            .clients
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((conn, budget, client)) = clients.get(&env.name)
            && *conn == env.map
            && *budget == env.map_daily_api_budget
        {
            return Ok(client.clone());
        }
        let client = match self.addresses.get(&env.name) {
            Some(url) => {
                let mut moved = env.clone();
                moved.map.base_url.clone_from(url);
                build(&self.store, &moved, &self.provided)?
            }
            None => build(&self.store, env, &self.provided)?,
        };
        clients.insert(
            env.name.clone(),
            (env.map.clone(), env.map_daily_api_budget, client.clone()),
        );
        Ok(client)
    }
}

fn build(
    store: &Store,
    env: &Environment,
    provided: &HashMap<String, Secret>,
) -> Result<Arc<dyn MapConnector>, TaskError> {
    let budget: Arc<dyn CallBudget> = match env.map_daily_api_budget {
        Some(b) => Arc::new(PgBudget::new(store.clone(), env.name.clone(), b)),
        None => Arc::new(Unlimited),
    };
    match env.map.kind {
        MapKind::Marketo => {
            let client_id = read_secret(&env.map.client_id, "client id", &env.name, provided)?;
            let client_secret =
                read_secret(&env.map.client_secret, "client secret", &env.name, provided)?;
            let mut config =
                MarketoConfig::new(&env.map.base_url, client_id, Secret::new(client_secret));
            config.rate.calls_per_20s = env.map.calls_per_20s;
            config.rate.concurrency = env.map.concurrent_calls;
            if let Some(p) = env.map.status_poll {
                config.poll.initial = p.first.to_std();
                config.poll.max = p.max.to_std();
            }
            config.rate.window = env.map.rate_window.to_std();
            let client = MarketoClient::new(config, budget)
                .map_err(|e| TaskError::Invalid(format!("environment `{}`: {e}", env.name)))?;
            Ok(Arc::new(client))
        }
    }
}

/// A secret from where the environment file says; the error names the place, never the value.
pub(crate) fn read_secret(
    at: &SecretRef,
    what: &str,
    env: &str,
    provided: &HashMap<String, Secret>,
) -> Result<String, TaskError> {
    match at {
        SecretRef::Env(var) if provided.contains_key(var) => Ok(provided
            .get(var)
            .map(|s| s.expose().to_owned())
            .unwrap_or_default()),
        SecretRef::Env(var) => std::env::var(var).map_err(|_| {
            TaskError::Invalid(format!(
                "the MAP {what} of environment `{env}` comes from the variable {var}, which is not set for this worker"
            ))
        }),
        SecretRef::File(path) => std::fs::read_to_string(path)
            .map(|s| s.trim().to_owned())
            .map_err(|e| {
                TaskError::Invalid(format!(
                    "the MAP {what} of environment `{env}` comes from {path}, which cannot be read: {}",
                    e.kind()
                ))
            }),
    }
}

/// A MAP error, sorted into retry-or-not for the task.
pub(crate) fn map_error(e: drover_map::MapError) -> TaskError {
    // A bulk job the MAP failed is worth a new try of the task: the MAP asks for a new job.
    if e.is_retryable() || matches!(e, drover_map::MapError::JobFailed { .. }) {
        TaskError::Transient(format!("the MAP: {e}"))
    } else {
        TaskError::Map(format!("the MAP: {e}"))
    }
}

/// How many leads match `filter` (a bulk export job's record count; the file is not read).
pub(crate) async fn count_leads(
    id: &TryId,
    job: &Job<'_>,
    filter: &LeadFilter,
) -> Result<(u64, i64), TaskError> {
    let client = id.map()?;
    let mut total = 0;
    for f in super::export::lead_filters(job, filter, "check.map.filter")? {
        let done = client
            .run_export(drover_map::ExportRequest::Leads {
                fields: vec!["id".to_owned()],
                filter: f,
            })
            .await
            .map_err(map_error)?;
        total += done.number_of_records.unwrap_or(0);
    }
    let calls = i64::try_from(client.usage().calls).unwrap_or(i64::MAX);
    Ok((total, calls))
}

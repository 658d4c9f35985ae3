//! Environment files (`environments/{dev,qa,stage,prod}.yaml`): where a DAG runs, against
//! which MAP, with which variables and limits, and who may promote into it.

use std::path::Path;

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};

use crate::diagnostic::{Diagnostic, Position, sort_diagnostics};
use crate::suggest::did_you_mean;
use crate::yaml::{Positions, from_section, parse_document};

/// A validated environment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Environment {
    /// `dev`, `qa`, `stage`, `prod`: the file name without `.yaml`.
    pub name: String,
    /// Place in the promotion chain: commits move from lower to higher.
    pub order: u32,
    /// The git branch this environment tracks (the lowest environment only).
    #[serde(default)]
    pub branch: Option<String>,
    /// A commit to start from, for environments fed by promotion.
    #[serde(default)]
    pub commit: Option<String>,
    pub map: MapConnection,
    /// Values for `{{ vars.* }}` in templates.
    #[serde(default)]
    pub variables: IndexMap<String, serde_json::Value>,
    /// Task instances that may run at once in this environment.
    #[serde(default = "default_concurrency")]
    pub concurrency: u32,
    /// MAP API calls allowed per day (the MAP's own quota is shared by all users of the account).
    #[serde(default)]
    pub map_daily_api_budget: Option<u64>,
    /// Whether schedules create runs here (manual runs are always possible).
    #[serde(default = "yes")]
    pub schedules_enabled: bool,
    /// Whether a DAG that first appears here starts paused.
    #[serde(default)]
    pub new_dags_paused: bool,
    /// Days staged datasets are kept.
    #[serde(default = "default_retention_days")]
    pub dataset_retention_days: u32,
    /// Who may see the rows of this environment's staged datasets and return receipts (they
    /// may hold personal data); everyone else sees counts, columns and rejection reasons.
    #[serde(default = "default_rows_visible_to")]
    pub rows_visible_to: Role,
    #[serde(default)]
    pub promotion: PromotionPolicy,
    /// What returns must wait for before they write to the MAP.
    #[serde(default, skip_serializing_if = "ReturnsPolicy::is_default")]
    pub returns: ReturnsPolicy,
    /// Backstops on what the environment may use.
    #[serde(default)]
    pub limits: EnvLimits,
    /// What a unit of use costs, for show-back.
    #[serde(default)]
    pub costs: Costs,
    /// Where to tell people when runs fail, give up or recover.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notifications: Vec<NotificationChannel>,
    /// Secrets command tasks of this environment may ask for by name (`secrets: [name]`),
    /// each read from where it says, by the worker, when a try starts. A task gets only those
    /// it names, as the variable of the upper-cased name (`crm_token` → `CRM_TOKEN`).
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub secrets: IndexMap<String, SecretRef>,
    /// What webhooks may leave waiting (`events: { max_waiting: 10000 }`).
    #[serde(default, skip_serializing_if = "EventsPolicy::is_default")]
    pub events: EventsPolicy,
}

/// `events:` of an environment: how many events may wait, per DAG, in runs not yet started
/// (gathering a batch, behind `max_active_runs`, a pause or maintenance) before a webhook
/// answers 429 with `Retry-After` and records nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventsPolicy {
    #[serde(default = "default_max_waiting")]
    pub max_waiting: u32,
}

/// Events one DAG may have waiting by default.
pub const DEFAULT_MAX_WAITING_EVENTS: u32 = 10_000;

fn default_max_waiting() -> u32 {
    DEFAULT_MAX_WAITING_EVENTS
}

impl Default for EventsPolicy {
    fn default() -> Self {
        Self {
            max_waiting: DEFAULT_MAX_WAITING_EVENTS,
        }
    }
}

impl EventsPolicy {
    fn is_default(&self) -> bool {
        *self == Self::default()
    }
}

/// Whether `name` may name a secret: `^[a-z][a-z0-9_]*$`.
pub fn is_secret_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// The environment variable a secret reaches a task as: its name upper-cased.
pub fn secret_variable(name: &str) -> String {
    name.to_ascii_uppercase()
}

/// `limits:` of an environment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnvLimits {
    /// Runs (of all DAGs) running at once; more wait in the queue.
    #[serde(default)]
    pub max_active_runs: Option<u32>,
    /// Staged data all runs may hold at once (checked when a task stages a dataset).
    #[serde(default)]
    pub staged_bytes: Option<crate::bytes::ByteSize>,
}

/// `costs:` of an environment: prices per unit of use, for the usage page.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Costs {
    /// Shown next to amounts; default USD.
    #[serde(default = "default_currency")]
    pub currency: String,
    #[serde(default)]
    pub per_api_call: f64,
    /// Per hour of task runtime (workers' time).
    #[serde(default)]
    pub per_runtime_hour: f64,
    /// Per gigabyte (10⁹ bytes) of staged data held for a day.
    #[serde(default)]
    pub per_gb_day: f64,
    /// Per million rows moved (rows tasks wrote).
    #[serde(default)]
    pub per_million_rows: f64,
}

impl Default for Costs {
    fn default() -> Self {
        Self {
            currency: default_currency(),
            per_api_call: 0.0,
            per_runtime_hour: 0.0,
            per_gb_day: 0.0,
            per_million_rows: 0.0,
        }
    }
}

fn default_currency() -> String {
    "USD".to_owned()
}

/// A place notifications go: a webhook taking Slack-compatible JSON, or email over SMTP.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotificationChannel {
    /// How the channel is named in the notification history.
    pub name: String,
    /// Where the webhook URL is read from (it is a secret: anyone with it can post).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook: Option<SecretRef>,
    /// Email instead of a webhook.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<EmailTarget>,
    /// Which events go there; default: all.
    #[serde(default = "all_events")]
    pub on: Vec<NotifyEvent>,
    /// Only these DAGs' events go there; default (empty): every DAG of the environment.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dags: Vec<String>,
    /// The same event of the same DAG is sent at most once per this long; the others are
    /// recorded as suppressed. Default 1h.
    #[serde(default = "default_dedup")]
    pub dedup: crate::duration::Duration,
    /// At most this many notifications an hour go to the channel; default 20.
    #[serde(default = "default_max_per_hour")]
    pub max_per_hour: u32,
}

/// Email over SMTP: the server's URL (a secret: it may hold a login), sender and recipients.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmailTarget {
    /// `smtps://user:password@host:465`, `smtp://user:password@host:587?tls=required`
    /// (STARTTLS) or `smtp://host:25` (no TLS, for a relay on the same network).
    pub smtp: SecretRef,
    pub from: String,
    pub to: Vec<String>,
}

/// What a notification is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NotifyEvent {
    /// A run failed.
    Failure,
    /// A task failed its last try.
    RetryExhausted,
    /// A run succeeded after the DAG's previous run had failed.
    Recovery,
    /// A run or task had not succeeded by its deadline.
    DeadlineMissed,
    /// A data check's value was outside its bounds.
    CheckBreach,
    /// A data SLO is spending its error budget fast.
    SloBurn,
    /// A run succeeded with warnings (a warn check breached, rows rejected, …).
    Warnings,
    /// A return planned its writes and waits for someone to approve them.
    ApprovalNeeded,
    /// A DAG's or task's data was not refreshed within its `freshness.max_age`.
    Stale,
}

impl NotifyEvent {
    pub const ALL: [NotifyEvent; 9] = [
        NotifyEvent::Failure,
        NotifyEvent::RetryExhausted,
        NotifyEvent::Recovery,
        NotifyEvent::DeadlineMissed,
        NotifyEvent::CheckBreach,
        NotifyEvent::SloBurn,
        NotifyEvent::Warnings,
        NotifyEvent::ApprovalNeeded,
        NotifyEvent::Stale,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            NotifyEvent::Failure => "failure",
            NotifyEvent::RetryExhausted => "retry_exhausted",
            NotifyEvent::Recovery => "recovery",
            NotifyEvent::DeadlineMissed => "deadline_missed",
            NotifyEvent::CheckBreach => "check_breach",
            NotifyEvent::SloBurn => "slo_burn",
            NotifyEvent::Warnings => "warnings",
            NotifyEvent::ApprovalNeeded => "approval_needed",
            NotifyEvent::Stale => "stale",
        }
    }
}

fn all_events() -> Vec<NotifyEvent> {
    NotifyEvent::ALL.to_vec()
}
fn default_dedup() -> crate::duration::Duration {
    crate::duration::Duration::from_secs(3_600)
}
fn default_max_per_hour() -> u32 {
    20
}

fn default_concurrency() -> u32 {
    8
}
fn default_retention_days() -> u32 {
    7
}
fn default_rows_visible_to() -> Role {
    Role::Viewer
}
fn yes() -> bool {
    true
}

/// How Drover reaches this environment's MAP.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MapConnection {
    pub kind: MapKind,
    /// REST base URL, e.g. `https://123-ABC-456.mktorest.com` or the sandbox's address.
    pub base_url: String,
    /// Where the OAuth client id comes from.
    pub client_id: SecretRef,
    /// Where the OAuth client secret comes from.
    pub client_secret: SecretRef,
    /// API calls Drover starts per 20 seconds (default 50, Adobe's advice for one integration;
    /// at most 100, the instance's limit).
    #[serde(default = "default_calls_per_20s")]
    pub calls_per_20s: u32,
    /// API calls in flight at once (default 5; at most 10).
    #[serde(default = "default_map_concurrency")]
    pub concurrent_calls: u32,
    /// The window `calls_per_20s` counts in (default 20s, Marketo's). Only for tests against
    /// the sandbox with its window scaled down: against Marketo a shorter window sends calls
    /// faster than the instance allows.
    #[serde(default = "default_rate_window")]
    pub rate_window: crate::duration::Duration,
    /// How often bulk job status is polled (default 5 s, doubling to 60 s: Marketo refreshes a
    /// job's status at most once a minute). Shorter only makes sense against a sandbox.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_poll: Option<StatusPoll>,
}

/// Waits between two status polls of a bulk job: `first`, doubling up to `max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatusPoll {
    pub first: crate::duration::Duration,
    pub max: crate::duration::Duration,
}

fn default_calls_per_20s() -> u32 {
    50
}

fn default_rate_window() -> crate::duration::Duration {
    crate::duration::Duration::from_secs(20)
}

fn default_map_concurrency() -> u32 {
    5
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MapKind {
    Marketo,
}

/// Where a secret is read from. Never the secret itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", try_from = "RawSecretRef")]
pub enum SecretRef {
    /// An environment variable's name.
    Env(String),
    /// A file's path (its content, trimmed).
    File(String),
}

/// `{ env: NAME }` or `{ file: PATH }` as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSecretRef {
    env: Option<String>,
    file: Option<String>,
}

impl TryFrom<RawSecretRef> for SecretRef {
    type Error = &'static str;

    fn try_from(raw: RawSecretRef) -> Result<Self, Self::Error> {
        match (raw.env, raw.file) {
            (Some(var), None) if !var.is_empty() => Ok(SecretRef::Env(var)),
            (None, Some(path)) if !path.is_empty() => Ok(SecretRef::File(path)),
            _ => Err("give exactly one of `env: VARIABLE` or `file: /path`"),
        }
    }
}

/// Who may move a commit into this environment, and what must hold first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PromotionPolicy {
    /// Roles allowed to promote into (and roll back) this environment.
    #[serde(default = "default_promoters")]
    pub allowed_roles: Vec<Role>,
    /// Each changed DAG must have a successful run at that commit in the environment below.
    #[serde(default)]
    pub require_success_below: bool,
    /// A second person, other than the one who asked, must approve.
    #[serde(default)]
    pub require_approval: bool,
}

impl Default for PromotionPolicy {
    fn default() -> Self {
        Self {
            allowed_roles: default_promoters(),
            require_success_below: false,
            require_approval: false,
        }
    }
}

/// What returns wait for before they write (`returns: { require_approval: true }`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReturnsPolicy {
    /// A return waits, once it has planned, until an operator other than the DAG's last
    /// committer (or any admin) approves its plan.
    #[serde(default)]
    pub require_approval: bool,
    /// How long a return waits for the approval before it fails; default 24h.
    #[serde(default = "default_approval_timeout")]
    pub approval_timeout: crate::duration::Duration,
}

impl Default for ReturnsPolicy {
    fn default() -> Self {
        Self {
            require_approval: false,
            approval_timeout: default_approval_timeout(),
        }
    }
}

impl ReturnsPolicy {
    fn is_default(&self) -> bool {
        *self == Self::default()
    }
}

fn default_approval_timeout() -> crate::duration::Duration {
    crate::duration::Duration::from_secs(24 * 3600)
}

fn default_promoters() -> Vec<Role> {
    vec![Role::Operator, Role::Admin]
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Viewer,
    Operator,
    Admin,
}

/// Whether `name` can name an environment: `^[a-z][a-z0-9_]{0,30}$`. The name becomes part of
/// SQL identifiers (`staging_<name>`, `drover_sql_<name>`), so nothing else is allowed.
pub fn valid_environment_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && name.len() <= 31
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// Why a MAP `base_url` has the wrong path, if it does. The instance root
/// (`https://x.mktorest.com`) and the REST endpoint Admin › Web Services shows (`…/rest`), each
/// with or without a trailing slash, are right; Drover adds `/rest`, `/bulk` and `/identity`.
fn base_url_path_problem(url: &str) -> Option<String> {
    let url = url.trim();
    let after_scheme = url.split_once("://").map_or(url, |(_, rest)| rest);
    let (host, path) = match after_scheme.find(['/', '?', '#']) {
        Some(i) => after_scheme.split_at(i),
        None => (after_scheme, ""),
    };
    let scheme = &url[..url.len() - after_scheme.len()];
    let root = format!("{scheme}{host}");
    if path.contains(['?', '#']) {
        return Some(format!(
            "`base_url` must not carry a query string or fragment: use {root}"
        ));
    }
    let path = path.trim_end_matches('/');
    if path.is_empty() || path.eq_ignore_ascii_case("/rest") {
        None
    } else {
        Some(format!(
            "`base_url` ends in {path}: use {root} — without {path} (Drover adds /rest, /bulk and /identity itself)"
        ))
    }
}

/// Parse and validate one environment file; its name must equal the file name.
pub fn load_environment(file: &str, source: &str) -> Result<Environment, Vec<Diagnostic>> {
    let doc = parse_document(file, source).map_err(|d| vec![d])?;
    let positions = || Positions::index(source);
    // A plain string where a secret reference belongs is the one mistake worth its own words.
    if let Some(map) = doc.get("map") {
        let mut diags = Vec::new();
        for key in ["client_id", "client_secret"] {
            if map.get(key).is_some_and(yaml_serde::Value::is_string) {
                let pos = positions().locate(&format!("map.{key}")).value;
                diags.push(
                    Diagnostic::new(
                        file,
                        pos,
                        format!(
                            "`{key}` must say where the secret comes from (`{{ env: VARIABLE }}` or `{{ file: /path }}`), never hold the secret itself"
                        ),
                    ),
                    // No snippet: the line holds the secret.
                );
            }
        }
        if !diags.is_empty() {
            return Err(diags);
        }
    }
    if let Some(secrets) = doc.get("secrets").and_then(yaml_serde::Value::as_mapping) {
        let mut diags = Vec::new();
        for (key, value) in secrets {
            if value.is_string() || value.is_number() || value.is_bool() {
                let name = key.as_str().unwrap_or_default();
                let pos = positions().locate(&format!("secrets.{name}")).value;
                diags.push(Diagnostic::new(
                    file,
                    pos,
                    format!(
                        "secret `{name}` must say where it comes from (`{{ env: VARIABLE }}` or `{{ file: /path }}`), never hold the secret itself"
                    ),
                ));
            }
        }
        if !diags.is_empty() {
            return Err(diags);
        }
    }
    if let Some(channels) = doc
        .get("notifications")
        .and_then(yaml_serde::Value::as_sequence)
    {
        let mut diags: Vec<Diagnostic> = Vec::new();
        for (i, c) in channels.iter().enumerate() {
            if c.get("webhook").is_some_and(yaml_serde::Value::is_string) {
                let pos = positions()
                    .locate(&format!("notifications[{i}].webhook"))
                    .value;
                diags.push(Diagnostic::new(
                    file,
                    pos,
                    "`webhook` must say where the URL comes from (`{ env: VARIABLE }` or `{ file: /path }`): a webhook URL is a secret".to_owned(),
                ));
            }
            if c.get("email")
                .and_then(|e| e.get("smtp"))
                .is_some_and(yaml_serde::Value::is_string)
            {
                let pos = positions()
                    .locate(&format!("notifications[{i}].email.smtp"))
                    .value;
                diags.push(Diagnostic::new(
                    file,
                    pos,
                    "`smtp` must say where the server URL comes from (`{ env: VARIABLE }` or `{ file: /path }`): it may hold a password".to_owned(),
                ));
            }
        }
        if !diags.is_empty() {
            return Err(diags);
        }
    }
    let env: Environment =
        from_section("", doc).map_err(|e| vec![e.locate(file, source, &positions())])?;
    let mut diags = Vec::new();
    let mut at = |path: &str, message: String| {
        let pos = positions().locate(path).value;
        diags.push(Diagnostic::new(file, pos, message).with_snippet_from(source));
    };
    let stem = Path::new(file)
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or(file);
    if !valid_environment_name(&env.name) {
        at(
            "name",
            format!(
                "invalid environment name `{}`: use a lower-case letter, then up to 30 lower-case letters, digits or `_` (it names the environment's SQL schema and role)",
                env.name
            ),
        );
    } else if env.name != stem {
        at(
            "name",
            format!(
                "environment name `{}` differs from its file name: expected `{stem}`",
                env.name
            ),
        );
    }
    if !(env.map.base_url.starts_with("http://") || env.map.base_url.starts_with("https://")) {
        at(
            "map.base_url",
            format!(
                "`base_url` must be an http:// or https:// URL, not `{}`",
                env.map.base_url
            ),
        );
    } else if let Some(problem) = base_url_path_problem(&env.map.base_url) {
        at("map.base_url", problem);
    }
    if let Some(commit) = &env.commit
        && (!(7..=40).contains(&commit.len()) || !commit.chars().all(|c| c.is_ascii_hexdigit()))
    {
        at(
            "commit",
            format!("`commit` must be a git commit id (7 to 40 hex digits), not `{commit}`"),
        );
    }
    if env.branch.is_some() && env.commit.is_some() {
        at(
            "commit",
            "give either `branch` (track it) or `commit` (pinned), not both".to_owned(),
        );
    }
    if env.limits.max_active_runs == Some(0) {
        at(
            "limits.max_active_runs",
            "`max_active_runs` must be at least 1 (leave it out for no limit)".to_owned(),
        );
    }
    for (key, price) in [
        ("per_api_call", env.costs.per_api_call),
        ("per_runtime_hour", env.costs.per_runtime_hour),
        ("per_gb_day", env.costs.per_gb_day),
        ("per_million_rows", env.costs.per_million_rows),
    ] {
        if !(price.is_finite() && price >= 0.0) {
            at(
                &format!("costs.{key}"),
                format!("`{key}` must be a price of 0 or more, not {price}"),
            );
        }
    }
    if !(1..=100).contains(&env.map.calls_per_20s) {
        at(
            "map.calls_per_20s",
            "`calls_per_20s` must be between 1 and 100 (the MAP allows 100 per 20 s for the whole instance)".to_owned(),
        );
    }
    if !(100..=20_000).contains(&env.map.rate_window.as_millis()) {
        at(
            "map.rate_window",
            format!(
                "`rate_window` must be between 100ms and 20s, not {} (leave it out for Marketo's 20s; shorter windows are for tests against the sandbox)",
                env.map.rate_window
            ),
        );
    }
    if let Some(p) = env.map.status_poll
        && (p.first.as_millis() < 100 || p.max < p.first || p.max.as_secs() > 3600)
    {
        at(
            "map.status_poll",
            "`status_poll` needs `first` of at least 100ms and `max` between `first` and 1h (default first: 5s, max: 60s)".to_owned(),
        );
    }
    if !(1..=10).contains(&env.map.concurrent_calls) {
        at(
            "map.concurrent_calls",
            "`concurrent_calls` must be between 1 and 10 (the MAP allows 10 at once for the whole instance)".to_owned(),
        );
    }
    if env.concurrency == 0 {
        at("concurrency", "`concurrency` must be at least 1".to_owned());
    }
    if env.promotion.allowed_roles.is_empty() {
        at(
            "promotion.allowed_roles",
            "nobody could promote into this environment: name at least one role".to_owned(),
        );
    }
    let timeout = env.returns.approval_timeout;
    if !(60..=30 * 24 * 3600).contains(&timeout.as_secs())
        || !timeout.as_millis().is_multiple_of(1000)
    {
        at(
            "returns.approval_timeout",
            format!(
                "`approval_timeout` must be whole seconds between 1m and 30d, not {timeout} (leave it out for 24h)"
            ),
        );
    }
    let mut names = std::collections::HashSet::new();
    for (i, c) in env.notifications.iter().enumerate() {
        if c.name.is_empty()
            || !c
                .name
                .chars()
                .all(|ch| ch.is_ascii_alphanumeric() || "_-".contains(ch))
        {
            at(
                &format!("notifications[{i}].name"),
                format!(
                    "invalid channel name `{}`: use letters, digits, `_` and `-`",
                    c.name
                ),
            );
        } else if !names.insert(c.name.clone()) {
            at(
                &format!("notifications[{i}].name"),
                format!("another channel is named `{}`", c.name),
            );
        }
        match (&c.webhook, &c.email) {
            (Some(_), Some(_)) => at(
                &format!("notifications[{i}].email"),
                "a channel is either a `webhook` or an `email`, not both".to_owned(),
            ),
            (None, None) => at(
                &format!("notifications[{i}].name"),
                "a channel needs a `webhook: {{ env: … }}` or an `email: {{ smtp: {{ env: … }}, from: …, to: [...] }}`".to_owned(),
            ),
            _ => {}
        }
        if let Some(e) = &c.email {
            let is_address = |a: &str| {
                a.split_once('@')
                    .is_some_and(|(l, d)| !l.is_empty() && d.contains('.') && !a.contains(' '))
            };
            if !is_address(&e.from) {
                at(
                    &format!("notifications[{i}].email.from"),
                    format!("`from` must be an email address, not `{}`", e.from),
                );
            }
            if e.to.is_empty() {
                at(
                    &format!("notifications[{i}].email.to"),
                    "`to` needs at least one address".to_owned(),
                );
            }
            for (j, a) in e.to.iter().enumerate() {
                if !is_address(a) {
                    at(
                        &format!("notifications[{i}].email.to[{j}]"),
                        format!("`{a}` is not an email address"),
                    );
                }
            }
        }
        if c.max_per_hour == 0 {
            at(
                &format!("notifications[{i}].max_per_hour"),
                "`max_per_hour` must be at least 1".to_owned(),
            );
        }
    }
    for key in env.variables.keys() {
        if !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') || key.is_empty() {
            at(
                &format!("variables.{key}"),
                format!("invalid variable name `{key}`: use letters, digits and `_`"),
            );
        }
    }
    for name in env.secrets.keys() {
        if !is_secret_name(name) {
            at(
                &format!("secrets.{name}"),
                format!(
                    "invalid secret name `{name}`: use lower-case letters, digits and `_`, starting with a letter"
                ),
            );
        }
    }
    if diags.is_empty() {
        Ok(env)
    } else {
        sort_diagnostics(&mut diags);
        Err(diags)
    }
}

/// Problems of the set as a whole: names and orders unique, exactly the lowest one tracks a branch.
pub fn check_chain(envs: &[(String, Environment)]) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    let mut sorted: Vec<&(String, Environment)> = envs.iter().collect();
    sorted.sort_by_key(|(_, e)| e.order);
    for pair in sorted.windows(2) {
        let ((_, a), (file_b, b)) = (pair[0], pair[1]);
        if a.order == b.order {
            out.push(Diagnostic::new(
                file_b,
                Position::START,
                format!(
                    "environments `{}` and `{}` have the same `order: {}`",
                    a.name, b.name, b.order
                ),
            ));
        }
        if a.name == b.name {
            out.push(Diagnostic::new(
                file_b,
                Position::START,
                format!("environment `{}` is defined twice", b.name),
            ));
        }
    }
    for (i, (file, env)) in sorted.iter().enumerate() {
        if i == 0 && env.branch.is_none() {
            out.push(Diagnostic::new(
                file,
                Position::START,
                format!(
                    "`{}` is the lowest environment: it must track a `branch`",
                    env.name
                ),
            ));
        }
        if i > 0 && env.branch.is_some() {
            out.push(Diagnostic::new(
                file,
                Position::START,
                format!(
                    "only the lowest environment tracks a branch; `{}` gets commits by promotion (remove `branch`)",
                    env.name
                ),
            ));
        }
    }
    out
}

/// The environment after `name` in the chain, and the one before it.
pub fn neighbours<'a>(
    envs: &'a [Environment],
    name: &str,
) -> (Option<&'a Environment>, Option<&'a Environment>) {
    let mut sorted: Vec<&Environment> = envs.iter().collect();
    sorted.sort_by_key(|e| e.order);
    let Some(i) = sorted.iter().position(|e| e.name == name) else {
        return (None, None);
    };
    let below = i.checked_sub(1).and_then(|j| sorted.get(j).copied());
    (below, sorted.get(i + 1).copied())
}

/// A suggestion for a mistyped environment name.
pub fn suggest_name<'a>(name: &str, envs: impl IntoIterator<Item = &'a str>) -> String {
    did_you_mean(name, envs)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEV: &str = "\
name: dev
order: 1
branch: main
map:
  kind: marketo
  base_url: http://127.0.0.1:9911
  client_id: { env: DROVER_DEV_MAP_CLIENT_ID }
  client_secret: { file: /run/secrets/dev_map }
variables: { sync_list: DEV Leads }
";

    #[test]
    fn reads_a_valid_environment_with_defaults() {
        let env = load_environment("environments/dev.yaml", DEV);
        let env = env.as_ref().ok();
        assert_eq!(env.map(|e| e.concurrency), Some(8));
        assert_eq!(
            env.map(|e| e.map.client_secret.clone()),
            Some(SecretRef::File("/run/secrets/dev_map".to_owned()))
        );
        assert_eq!(
            env.map(|e| e.promotion.allowed_roles.clone()),
            Some(vec![Role::Operator, Role::Admin])
        );
    }

    #[test]
    fn the_rate_window_is_marketos_unless_scaled_down_for_tests() {
        let env = load_environment("environments/dev.yaml", DEV);
        assert_eq!(
            env.as_ref().ok().map(|e| e.map.rate_window),
            Some(crate::duration::Duration::from_secs(20))
        );
        let scaled = DEV.replace(
            "  client_secret: { file: /run/secrets/dev_map }\n",
            "  client_secret: { file: /run/secrets/dev_map }\n  rate_window: 2s\n",
        );
        let env = load_environment("environments/dev.yaml", &scaled);
        assert_eq!(
            env.as_ref().ok().map(|e| e.map.rate_window),
            Some(crate::duration::Duration::from_secs(2))
        );
        let errs = load_environment(
            "environments/dev.yaml",
            &scaled.replace("rate_window: 2s", "rate_window: 1m"),
        )
        .err()
        .unwrap_or_default();
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert!(
            errs[0]
                .message
                .contains("`rate_window` must be between 100ms and 20s, not 1m"),
            "{}",
            errs[0].message
        );
    }

    #[test]
    fn refuses_a_literal_secret_and_points_at_it() {
        let src = DEV.replace("{ file: /run/secrets/dev_map }", "s3cr3t-value");
        let errs = load_environment("environments/dev.yaml", &src)
            .err()
            .unwrap_or_default();
        assert_eq!(errs.len(), 1);
        assert_eq!((errs[0].line, errs[0].column), (8, 18));
        assert!(errs[0].message.contains("never hold the secret itself"));
        assert!(
            !errs[0].to_string().contains("s3cr3t"),
            "the error must not repeat the secret"
        );
    }

    #[test]
    fn base_url_with_or_without_rest_and_other_paths_refused() {
        for good in [
            "https://x.mktorest.com",
            "https://x.mktorest.com/",
            "https://x.mktorest.com/rest",
            "https://x.mktorest.com/rest/",
        ] {
            assert_eq!(base_url_path_problem(good), None, "{good}");
            let src = DEV.replace("http://127.0.0.1:9911", good);
            assert!(
                load_environment("environments/dev.yaml", &src).is_ok(),
                "{good}"
            );
        }
        for (bad, path) in [
            ("https://x.mktorest.com/identity", "/identity"),
            ("https://x.mktorest.com/bulk/v1", "/bulk/v1"),
            ("https://x.mktorest.com/rest/v1/", "/rest/v1"),
        ] {
            let src = DEV.replace("http://127.0.0.1:9911", bad);
            let errs = load_environment("environments/dev.yaml", &src)
                .err()
                .unwrap_or_default();
            assert_eq!(errs.len(), 1, "{bad}");
            assert_eq!((errs[0].line, errs[0].column), (6, 13), "{bad}");
            assert!(
                errs[0]
                    .message
                    .contains(&format!("use https://x.mktorest.com — without {path}")),
                "{}",
                errs[0].message
            );
        }
        assert!(base_url_path_problem("https://x.mktorest.com?x=1").is_some());
    }

    #[test]
    fn status_poll_defaults_to_none_and_is_checked() {
        let env = load_environment("environments/dev.yaml", DEV).expect("valid");
        assert_eq!(env.map.status_poll, None);
        let fast = DEV.replace(
            "  client_id:",
            "  status_poll: { first: 250ms, max: 2s }\n  client_id:",
        );
        let env = load_environment("environments/dev.yaml", &fast).expect("valid");
        assert_eq!(
            env.map.status_poll,
            Some(StatusPoll {
                first: crate::duration::Duration::from_millis(250),
                max: crate::duration::Duration::from_secs(2),
            })
        );
        let bad = DEV.replace(
            "  client_id:",
            "  status_poll: { first: 10s, max: 5s }\n  client_id:",
        );
        let errs = load_environment("environments/dev.yaml", &bad)
            .err()
            .unwrap_or_default();
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert!(
            errs[0].message.contains("`status_poll` needs"),
            "{}",
            errs[0].message
        );
    }

    #[test]
    fn environment_names_are_sql_safe_and_located() {
        for good in [
            "dev",
            "prod",
            "qa_2",
            "a",
            "a234567890123456789012345678901",
        ] {
            assert!(valid_environment_name(good), "{good}");
        }
        for bad in [
            "",
            "Dev",
            "2dev",
            "dev-eu",
            "dev\"x",
            "_dev",
            "a2345678901234567890123456789012",
        ] {
            assert!(!valid_environment_name(bad), "{bad}");
        }
        let src = DEV.replace("name: dev", "name: Dev-EU");
        let errs = load_environment("environments/Dev-EU.yaml", &src)
            .err()
            .unwrap_or_default();
        assert_eq!(
            errs.first().map(|d| (d.line, d.column)),
            Some((1, 7)),
            "{errs:?}"
        );
        assert!(
            errs.first()
                .is_some_and(|d| d.message.contains("invalid environment name `Dev-EU`")),
            "{errs:?}"
        );
    }

    #[test]
    fn name_must_match_file_and_unknown_keys_are_located() {
        let errs = load_environment("environments/qa.yaml", DEV)
            .err()
            .unwrap_or_default();
        assert!(
            errs.iter()
                .any(|d| d.message.contains("differs from its file name") && d.line == 1)
        );
        let src = DEV.replace("order: 1", "ordr: 1");
        let errs = load_environment("environments/dev.yaml", &src)
            .err()
            .unwrap_or_default();
        assert_eq!(
            errs.first().map(|d| (d.line, d.message.as_str())),
            Some((2, "unknown key `ordr`, did you mean `order`?"))
        );
    }

    #[test]
    fn notification_channels_default_to_every_event_and_are_checked() {
        let src = format!(
            "{DEV}notifications:\n  - name: ops-slack\n    webhook: {{ env: SLACK_HOOK }}\n  - name: ops-slack\n    webhook: {{ env: OTHER }}\n    on: [recovery]\n    max_per_hour: 0\n"
        );
        let errs = load_environment("environments/dev.yaml", &src)
            .err()
            .unwrap_or_default();
        let found: Vec<(usize, &str)> = errs.iter().map(|d| (d.line, d.message.as_str())).collect();
        assert!(
            found.contains(&(13, "another channel is named `ops-slack`")),
            "{found:?}"
        );
        assert!(
            found.contains(&(16, "`max_per_hour` must be at least 1")),
            "{found:?}"
        );
        let ok = src.replace("  - name: ops-slack\n    webhook: { env: OTHER }\n    on: [recovery]\n    max_per_hour: 0\n", "");
        let env =
            load_environment("environments/dev.yaml", &ok).unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(env.notifications[0].on, NotifyEvent::ALL.to_vec());
        assert_eq!(env.notifications[0].max_per_hour, 20);
        assert_eq!(env.notifications[0].dedup.as_secs(), 3600);
        // A URL written in the file is refused without repeating it.
        let literal = ok.replace(
            "{ env: SLACK_HOOK }",
            "https://hooks.example.com/T0/B0/s3cr3t",
        );
        let errs = load_environment("environments/dev.yaml", &literal)
            .err()
            .unwrap_or_default();
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert_eq!(errs[0].line, 12);
        assert!(errs[0].message.contains("a webhook URL is a secret"));
        assert!(!errs[0].to_string().contains("s3cr3t"));
    }

    #[test]
    fn email_channels_are_checked_and_their_server_url_is_a_secret() {
        let ok = format!(
            "{DEV}notifications:\n  - name: mail\n    email:\n      smtp: {{ env: SMTP_URL }}\n      from: drover@example.com\n      to: [ops@example.com]\n"
        );
        let env =
            load_environment("environments/dev.yaml", &ok).unwrap_or_else(|e| panic!("{e:?}"));
        let email = env.notifications[0]
            .email
            .clone()
            .unwrap_or_else(|| panic!("no email"));
        assert_eq!(
            (email.from.as_str(), email.to.len()),
            ("drover@example.com", 1)
        );
        let errors = |text: &str| -> Vec<String> {
            load_environment("environments/dev.yaml", text)
                .err()
                .unwrap_or_default()
                .iter()
                .map(ToString::to_string)
                .collect()
        };
        let literal = ok.replace(
            "{ env: SMTP_URL }",
            "smtp://bob:hunter2@mail.example.com:587",
        );
        let errs = errors(&literal);
        assert!(
            errs.iter().any(|e| e.contains("it may hold a password")),
            "{errs:?}"
        );
        assert!(errs.iter().all(|e| !e.contains("hunter2")), "{errs:?}");
        let bad = ok.replace("to: [ops@example.com]", "to: [nobody]");
        assert!(
            errors(&bad)
                .iter()
                .any(|e| e.contains("`nobody` is not an email address"))
        );
        let both = ok.replace("    email:", "    webhook: { env: HOOK }\n    email:");
        assert!(errors(&both).iter().any(|e| e.contains("not both")));
        let neither = format!("{DEV}notifications:\n  - name: mail\n");
        assert!(
            errors(&neither)
                .iter()
                .any(|e| e.contains("needs a `webhook"))
        );
    }

    #[test]
    fn rows_are_visible_to_viewers_unless_the_file_says_otherwise() {
        let env =
            load_environment("environments/dev.yaml", DEV).unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(env.rows_visible_to, Role::Viewer);
        let src = format!("{DEV}rows_visible_to: operator\n");
        let env =
            load_environment("environments/dev.yaml", &src).unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(env.rows_visible_to, Role::Operator);
        let src = format!("{DEV}rows_visible_to: operators\n");
        let errs = load_environment("environments/dev.yaml", &src)
            .err()
            .unwrap_or_default();
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert_eq!(errs[0].line, 10, "{errs:?}");
        assert!(errs[0].message.contains("operators"), "{errs:?}");
        assert!(errs[0].message.contains("operator"), "{errs:?}");
    }

    #[test]
    fn secrets_are_named_references_never_values() {
        let ok = format!(
            "{DEV}secrets:\n  crm_token: {{ env: DROVER_DEV_CRM_TOKEN }}\n  ftp_key: {{ file: /run/secrets/ftp }}\n"
        );
        let env =
            load_environment("environments/dev.yaml", &ok).unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(
            env.secrets.get("crm_token"),
            Some(&SecretRef::Env("DROVER_DEV_CRM_TOKEN".to_owned()))
        );
        assert_eq!(secret_variable("crm_token"), "CRM_TOKEN");
        let literal = ok.replace("{ env: DROVER_DEV_CRM_TOKEN }", "tok-s3cr3t");
        let errs = load_environment("environments/dev.yaml", &literal)
            .err()
            .unwrap_or_default();
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert_eq!((errs[0].line, errs[0].column), (11, 14));
        assert!(errs[0].message.contains("never hold the secret itself"));
        assert!(!errs[0].to_string().contains("s3cr3t"));
        let bad = ok.replace("crm_token:", "CRM-Token:");
        let errs = load_environment("environments/dev.yaml", &bad)
            .err()
            .unwrap_or_default();
        assert_eq!(
            errs.first().map(|d| (d.line, d.message.as_str())),
            Some((
                11,
                "invalid secret name `CRM-Token`: use lower-case letters, digits and `_`, starting with a letter"
            ))
        );
        let neither = ok.replace("{ file: /run/secrets/ftp }", "{ path: /x }");
        assert!(load_environment("environments/dev.yaml", &neither).is_err());
    }

    #[test]
    fn secret_names() {
        for ok in ["a", "crm_token", "k2"] {
            assert!(is_secret_name(ok), "{ok}");
        }
        for bad in ["", "2k", "_a", "Crm", "a-b", "a b"] {
            assert!(!is_secret_name(bad), "{bad}");
        }
    }

    #[test]
    fn returns_may_wait_for_approval_with_a_located_timeout() {
        let plain =
            load_environment("environments/dev.yaml", DEV).unwrap_or_else(|e| panic!("{e:?}"));
        assert!(!plain.returns.require_approval);
        assert_eq!(plain.returns.approval_timeout.as_secs(), 24 * 3600);
        let on = format!("{DEV}returns: {{ require_approval: true }}\n");
        let env =
            load_environment("environments/dev.yaml", &on).unwrap_or_else(|e| panic!("{e:?}"));
        assert!(env.returns.require_approval);
        assert_eq!(env.returns.approval_timeout.as_secs(), 24 * 3600);
        let short = format!("{DEV}returns:\n  require_approval: true\n  approval_timeout: 10s\n");
        let errs = load_environment("environments/dev.yaml", &short)
            .err()
            .unwrap_or_default();
        let found: Vec<(usize, &str)> = errs.iter().map(|d| (d.line, d.message.as_str())).collect();
        assert_eq!(
            found,
            vec![(
                12,
                "`approval_timeout` must be whole seconds between 1m and 30d, not 10s (leave it out for 24h)"
            )]
        );
        let typo = format!("{DEV}returns: {{ require_aproval: true }}\n");
        let errs = load_environment("environments/dev.yaml", &typo)
            .err()
            .unwrap_or_default();
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert_eq!(errs[0].line, 10, "{errs:?}");
        assert!(errs[0].message.contains("require_approval"), "{errs:?}");
    }
}

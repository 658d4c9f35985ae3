//! Fault profiles: which Marketo failure behaviours the sandbox reproduces, and how hard.
//!
//! Parse a comma list (`"token-expiry,rate-limit"`, `"none"`, `"chaos"`) or (de)serialise the
//! struct as JSON for `PUT /_sandbox/faults`. Every random decision comes from [`Dice`], seeded by
//! the sandbox seed, so a sequential client sees the same faults on every run.

use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

/// The faults switched on. `None` means off; every part has documented defaults.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct FaultProfile {
    /// Short-lived tokens (602 mid-job).
    pub token_expiry: Option<TokenExpiryFault>,
    /// Low rate and concurrency limits (606 / 615).
    pub rate_limit: Option<RateLimitFault>,
    /// Another integration using the same instance's calls and concurrent slots (606 / 615).
    pub shared_limit: Option<SharedLimitFault>,
    /// Tiny daily quotas (607 / 1029 "Export daily quota exceeded").
    pub quota: Option<QuotaFault>,
    /// Random HTTP 502 and 604/608/611/713 before a call executes.
    pub server_errors: Option<ServerErrorFault>,
    /// Responses held longer than a client's timeout, without executing the call.
    pub timeouts: Option<TimeoutFault>,
    /// Long bulk-job latency and occasional Failed jobs.
    pub slow_jobs: Option<SlowJobsFault>,
    /// Import failures/warnings and sync-leads skips on a deterministic subset of rows.
    pub partial_import: Option<PartialImportFault>,
    /// Export downloads cut off part-way (the client must resume with `Range`).
    pub broken_downloads: Option<BrokenDownloadFault>,
    /// A bulk export's reported status changes at most once per `secs` (Marketo: once a minute).
    pub status_lag: Option<StatusLagFault>,
    /// Upserts of a new key create a lead each, as closely timed upserts can on Marketo.
    pub upsert_race: Option<UpsertRaceFault>,
}

/// `token-expiry`: tokens die after `ttl_secs` or after `max_calls` authenticated calls, and (with
/// `expire_before_download`) the token that enqueued an export dies when the file is requested.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct TokenExpiryFault {
    /// Lifetime of a new token, seconds.
    pub ttl_secs: u64,
    /// Authenticated calls a token survives (the next one gets 602).
    pub max_calls: u32,
    /// Expire the enqueueing token on the first file download of that export.
    pub expire_before_download: bool,
}

impl Default for TokenExpiryFault {
    fn default() -> Self {
        Self {
            ttl_secs: 5,
            max_calls: 25,
            expire_before_download: true,
        }
    }
}

/// `rate-limit`: a low sliding-window limit and a low concurrency limit, plus per-call latency so
/// the concurrency limit bites. The defaults (50 calls / 20 s, 5 concurrent) sit at Adobe's advice
/// for one integration, so a client that respects that advice and retries 606/615 gets through,
/// while a client that assumes the instance-wide 100 / 10 does not.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct RateLimitFault {
    /// Calls per 20 s (606 beyond).
    pub calls_per_20s: u32,
    /// Concurrent calls (615 beyond).
    pub concurrent: u32,
    /// Extra time each accepted call takes, milliseconds.
    pub latency_ms: u64,
}

impl Default for RateLimitFault {
    fn default() -> Self {
        Self {
            calls_per_20s: 50,
            concurrent: 5,
            latency_ms: 50,
        }
    }
}

/// `shared-limit`: another integration of the instance spends `other_calls_per_20s` of every
/// rate window and keeps `other_concurrent` calls in flight, all the time, so the API user gets
/// only what is left (Marketo's limits are per instance, shared by every integration). Beyond
/// it the answer is 606 naming the instance's limit, as Marketo words it, or 615. The defaults
/// leave 10 of 100 calls per window and every concurrent slot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct SharedLimitFault {
    /// Calls of the other integration in every window.
    pub other_calls_per_20s: u32,
    /// Calls of the other integration in flight at any moment.
    pub other_concurrent: u32,
}

impl Default for SharedLimitFault {
    fn default() -> Self {
        Self {
            other_calls_per_20s: 90,
            other_concurrent: 0,
        }
    }
}

/// `quota`: the daily quota is reached after `daily_calls` calls (607), and exports over
/// `export_daily_bytes` get 1029 "Export daily quota exceeded".
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct QuotaFault {
    /// Calls allowed per day; `0` makes the very first call 607.
    pub daily_calls: u64,
    /// Export bytes allowed per day.
    pub export_daily_bytes: u64,
}

/// `server-errors`: with `probability`, answer HTTP 502 or one of 604/608/611/713 instead of
/// executing the call (so a retried write never writes twice).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ServerErrorFault {
    /// Chance per call, 0.0–1.0.
    pub probability: f64,
}

impl Default for ServerErrorFault {
    fn default() -> Self {
        Self { probability: 0.2 }
    }
}

/// `timeouts`: with `probability`, hold the response for `hold_ms` and then answer 604 without
/// having executed anything.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct TimeoutFault {
    /// Chance per call, 0.0–1.0.
    pub probability: f64,
    /// How long the response is held, milliseconds.
    pub hold_ms: u64,
}

impl Default for TimeoutFault {
    fn default() -> Self {
        Self {
            probability: 0.1,
            hold_ms: 35_000,
        }
    }
}

/// `slow-jobs`: bulk jobs wait `queue_ms` in Queued and `processing_ms` more in Processing (or
/// Importing); with `fail_probability` a job ends Failed with an `errorMsg`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct SlowJobsFault {
    /// Extra time in Queued, milliseconds.
    pub queue_ms: u64,
    /// Extra time in Processing, milliseconds.
    pub processing_ms: u64,
    /// Chance that a job fails, 0.0–1.0.
    pub fail_probability: f64,
}

impl Default for SlowJobsFault {
    fn default() -> Self {
        Self {
            queue_ms: 3_000,
            processing_ms: 3_000,
            fail_probability: 0.25,
        }
    }
}

/// `partial-import`: rows whose email has no `@` are skipped by Sync Leads (1003) and get a warning
/// in imports; rows on a blocked domain fail (import) or are skipped (sync, 1003); and a
/// deterministic `fail_permille` of all rows (by hash of seed and lookup value) fail too.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct PartialImportFault {
    /// Email domains whose rows are rejected.
    pub blocked_domains: Vec<String>,
    /// Per-mille of rows rejected by a "data validation rule".
    pub fail_permille: u32,
}

impl Default for PartialImportFault {
    fn default() -> Self {
        Self {
            blocked_domains: vec!["blocked.example".to_owned(), "spamtrap.test".to_owned()],
            fail_permille: 10,
        }
    }
}

/// `broken-downloads`: with `probability`, an export download stops part-way (the connection is
/// aborted after a random share of the promised bytes).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct BrokenDownloadFault {
    /// Chance per download, 0.0–1.0.
    pub probability: f64,
}

impl Default for BrokenDownloadFault {
    fn default() -> Self {
        Self { probability: 0.5 }
    }
}

/// `status-lag`: Adobe documents that "a job status does not update more frequently than once
/// every 60 seconds". A bulk export's status endpoint reports the job as it was at the last
/// refresh, and refreshes fall every `secs` seconds counted from the job's creation: a job done
/// inside reads Queued or Processing (without its file facts) until the next refresh.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct StatusLagFault {
    /// Seconds between two refreshes of a job's reported status.
    pub secs: u64,
}

impl Default for StatusLagFault {
    fn default() -> Self {
        Self { secs: 60 }
    }
}

/// `upsert-race`: Marketo documents that concurrent or closely timed upserts of the same key can
/// each create a lead. With this fault a `createOrUpdate` Sync Leads record whose key matches no
/// lead, or only leads Sync Leads created for that key less than `window_ms` ago, creates one
/// more lead: every occurrence of a new key in one call, and in calls within the window, makes
/// a lead of its own. Later lookups of that key match several leads (1007 on sync).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct UpsertRaceFault {
    /// How long after its creation a new key's lead still races, milliseconds.
    pub window_ms: u64,
}

impl Default for UpsertRaceFault {
    fn default() -> Self {
        Self { window_ms: 2_000 }
    }
}

/// Keys whose leads Sync Leads created lately, for [`UpsertRaceFault`]: (lookup field, key as
/// matched) → when, in milliseconds of the sandbox clock.
#[derive(Debug, Default)]
pub(crate) struct RecentCreates {
    inner: std::sync::Mutex<std::collections::HashMap<(usize, String), i64>>,
}

impl RecentCreates {
    /// Whether a lead for `key` was created less than `window_ms` before `now_ms`.
    pub(crate) fn racing(&self, field: usize, key: &str, now_ms: i64, window_ms: u64) -> bool {
        let window = i64::try_from(window_ms).unwrap_or(i64::MAX);
        self.inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&(field, key.to_owned()))
            .is_some_and(|t| now_ms.saturating_sub(*t) < window)
    }

    /// Note that a lead for `key` was created at `now_ms` (the first creation opens the window).
    pub(crate) fn created(&self, field: usize, key: &str, now_ms: i64, window_ms: u64) {
        let window = i64::try_from(window_ms).unwrap_or(i64::MAX);
        let mut m = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        m.retain(|_, t| now_ms.saturating_sub(*t) < window);
        m.entry((field, key.to_owned())).or_insert(now_ms);
    }
}

/// The profile names accepted by [`FaultProfile::from_str`].
pub const FAULT_NAMES: &[&str] = &[
    "none",
    "token-expiry",
    "rate-limit",
    "shared-limit",
    "quota",
    "server-errors",
    "timeouts",
    "slow-jobs",
    "partial-import",
    "broken-downloads",
    "status-lag",
    "upsert-race",
    "chaos",
];

/// A fault profile string named something unknown.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("unknown fault profile '{name}' (known: {})", FAULT_NAMES.join(", "))]
pub struct UnknownFault {
    /// The unknown name.
    pub name: String,
}

impl FaultProfile {
    /// Every fault at once but `status-lag` (which would make every export take a minute). Quota is softened (1,000 calls, 50 MB of exports) and timeouts are
    /// rarer so that a patient client can still finish.
    pub fn chaos() -> Self {
        Self {
            token_expiry: Some(TokenExpiryFault::default()),
            rate_limit: Some(RateLimitFault::default()),
            shared_limit: None,
            quota: Some(QuotaFault {
                daily_calls: 1_000,
                export_daily_bytes: 50 * 1024 * 1024,
            }),
            server_errors: Some(ServerErrorFault { probability: 0.1 }),
            timeouts: Some(TimeoutFault {
                probability: 0.02,
                ..TimeoutFault::default()
            }),
            slow_jobs: Some(SlowJobsFault {
                fail_probability: 0.1,
                ..SlowJobsFault::default()
            }),
            partial_import: Some(PartialImportFault::default()),
            broken_downloads: Some(BrokenDownloadFault { probability: 0.3 }),
            status_lag: None,
            upsert_race: Some(UpsertRaceFault::default()),
        }
    }

    /// The names of the faults switched on, `"none"` if none.
    pub fn names(&self) -> Vec<&'static str> {
        let mut out = Vec::new();
        let flags = [
            (self.token_expiry.is_some(), "token-expiry"),
            (self.rate_limit.is_some(), "rate-limit"),
            (self.shared_limit.is_some(), "shared-limit"),
            (self.quota.is_some(), "quota"),
            (self.server_errors.is_some(), "server-errors"),
            (self.timeouts.is_some(), "timeouts"),
            (self.slow_jobs.is_some(), "slow-jobs"),
            (self.partial_import.is_some(), "partial-import"),
            (self.broken_downloads.is_some(), "broken-downloads"),
            (self.status_lag.is_some(), "status-lag"),
            (self.upsert_race.is_some(), "upsert-race"),
        ];
        for (on, name) in flags {
            if on {
                out.push(name);
            }
        }
        if out.is_empty() {
            out.push("none");
        }
        out
    }
}

impl fmt::Display for FaultProfile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.names().join(","))
    }
}

impl FromStr for FaultProfile {
    type Err = UnknownFault;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut p = FaultProfile::default();
        for name in s.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            match name.to_ascii_lowercase().as_str() {
                "none" => {}
                "token-expiry" => p.token_expiry = Some(TokenExpiryFault::default()),
                "rate-limit" => p.rate_limit = Some(RateLimitFault::default()),
                "shared-limit" => p.shared_limit = Some(SharedLimitFault::default()),
                "quota" => p.quota = Some(QuotaFault::default()),
                "server-errors" => p.server_errors = Some(ServerErrorFault::default()),
                "timeouts" => p.timeouts = Some(TimeoutFault::default()),
                "slow-jobs" => p.slow_jobs = Some(SlowJobsFault::default()),
                "partial-import" => p.partial_import = Some(PartialImportFault::default()),
                "broken-downloads" => p.broken_downloads = Some(BrokenDownloadFault::default()),
                "status-lag" => p.status_lag = Some(StatusLagFault::default()),
                "upsert-race" | "upsertrace" => p.upsert_race = Some(UpsertRaceFault::default()),
                "chaos" => p = FaultProfile::chaos(),
                _ => {
                    return Err(UnknownFault {
                        name: name.to_owned(),
                    });
                }
            }
        }
        Ok(p)
    }
}

/// Deterministic dice: roll `n` of purpose `salt` is a pure function of (seed, salt, n), where
/// `n` counts the rolls made for that purpose.
#[derive(Debug)]
pub(crate) struct Dice {
    seed: u64,
    counter: AtomicU64,
}

/// What a roll is for; each purpose has its own sequence.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Purpose {
    ServerError = 1,
    Timeout = 2,
    JobFailure = 3,
    BrokenDownload = 4,
}

impl Dice {
    pub(crate) fn new(seed: u64) -> Self {
        Self {
            seed,
            counter: AtomicU64::new(0),
        }
    }

    /// A uniform number in [0, 1).
    pub(crate) fn roll(&self, purpose: Purpose) -> f64 {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let bits = mix(self.seed ^ mix(purpose as u64) ^ n.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        (bits >> 11) as f64 / (1u64 << 53) as f64
    }

    /// True with chance `p`.
    pub(crate) fn chance(&self, purpose: Purpose, p: f64) -> bool {
        p > 0.0 && self.roll(purpose) < p
    }
}

/// SplitMix64 finaliser: a good 64-bit mixing function.
pub(crate) fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_lists_and_round_trips_json() {
        let p: FaultProfile = "token-expiry, rate-limit".parse().expect("parse");
        assert_eq!(p.names(), vec!["token-expiry", "rate-limit"]);
        assert_eq!(
            "none".parse::<FaultProfile>().expect("none"),
            FaultProfile::default()
        );
        assert!("bogus".parse::<FaultProfile>().is_err());
        let lag: FaultProfile = "status-lag".parse().expect("status-lag");
        assert_eq!(lag.status_lag, Some(StatusLagFault { secs: 60 }));
        assert_eq!(lag.to_string(), "status-lag");
        let lag: FaultProfile = serde_json::from_str(r#"{"statusLag":{"secs":2}}"#).expect("json");
        assert_eq!(lag.status_lag, Some(StatusLagFault { secs: 2 }));
        let race: FaultProfile = "upsert-race".parse().expect("race");
        assert_eq!(race.upsert_race, Some(UpsertRaceFault { window_ms: 2_000 }));
        assert_eq!(race.names(), vec!["upsert-race"]);
        let shared: FaultProfile = "shared-limit".parse().expect("shared");
        assert_eq!(shared.shared_limit, Some(SharedLimitFault::default()));
        assert_eq!(shared.to_string(), "shared-limit");
        let neighbour: FaultProfile =
            serde_json::from_str(r#"{"sharedLimit":{"otherCallsPer20s":95,"otherConcurrent":7}}"#)
                .expect("shared json");
        assert_eq!(
            neighbour.shared_limit,
            Some(SharedLimitFault {
                other_calls_per_20s: 95,
                other_concurrent: 7
            })
        );
        let chaos: FaultProfile = "chaos".parse().expect("chaos");
        let json = serde_json::to_string(&chaos).expect("json");
        assert_eq!(
            serde_json::from_str::<FaultProfile>(&json).expect("back"),
            chaos
        );
        let partial: FaultProfile =
            serde_json::from_str(r#"{"serverErrors":{"probability":1.0}}"#).expect("partial");
        assert_eq!(
            partial.server_errors,
            Some(ServerErrorFault { probability: 1.0 })
        );
    }

    #[test]
    fn dice_are_deterministic() {
        let a = Dice::new(7);
        let b = Dice::new(7);
        for _ in 0..10 {
            assert_eq!(a.roll(Purpose::ServerError), b.roll(Purpose::ServerError));
        }
    }
}

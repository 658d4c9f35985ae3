//! The MAP misbehaving, end to end: each fault profile of the sandbox against real `drover`
//! processes. A run either succeeds with every row where it belongs (retried through the
//! faults, nothing written twice in one request, no lead created) or fails with a clear
//! reason; partial import failures come back as per-row reasons in the receipt.

mod support;

use std::time::Duration;

use drover_mapsim::{FaultProfile, RateLimitFault, TimeoutFault};
use drover_store::{RunRow, RunState, Store};
use support::{
    Drover, TestDb, Workspace, runtime, serial, server_url, start_sandbox, synced, wait_finished,
    window_days,
};
use uuid::Uuid;

const CLIENT_ID: &str = "drover-faults";
const SECRET: &str = "faults-secret-3c9a";
const LEADS: usize = 2_000;

/// Leads of the last 60 days scored +3 and returned by `mode`.
fn dag(mode: &str) -> String {
    let (since, until) = window_days(60);
    format!(
        r#"id: bump
defaults: {{ retries: 3, retry_delay: 1s, retry_backoff: constant }}
tasks:
  - id: export_leads
    export:
      object: leads
      fields: [id, email, leadScore, updatedAt]
      filter: {{ updated_at: {{ since: "{since}", until: "{until}" }} }}
  - id: bump
    depends_on: [export_leads]
    transform:
      - derive: {{ leadScore: "coalesce(\"leadScore\", 0) + 3" }}
  - id: push
    depends_on: [bump]
    return: {{ object: leads, lookup: id, fields: [leadScore], mode: {mode} }}
"#
    )
}

async fn get_json(url: &str) -> serde_json::Value {
    reqwest::get(url)
        .await
        .unwrap_or_else(|e| panic!("{url}: {e}"))
        .json()
        .await
        .unwrap_or_else(|e| panic!("{url}: {e}"))
}

/// The receipt rows of `push`: (key, status, reason).
async fn receipt(store: &Store, run: Uuid) -> Vec<(String, String, Option<String>)> {
    let d = store
        .dataset(run, "push", "receipt")
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|| panic!("no receipt"));
    let staging = store
        .staging_pool(&d.environment, 1)
        .unwrap_or_else(|e| panic!("{e}"));
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "select key, status, reason from {} order by key",
        d.relation()
    )))
    .fetch_all(&staging)
    .await
    .unwrap_or_else(|e| panic!("{e}"))
}

struct Outcome {
    run: RunRow,
    errors: Vec<String>,
    receipt: Vec<(String, String, Option<String>)>,
    stats: serde_json::Value,
    base: String,
}

/// Run the DAG once against a sandbox with `faults`.
fn run_with(faults: FaultProfile, mode: &str) -> Outcome {
    run_with_budget(faults, mode, None)
}

/// Run the DAG once against a sandbox with `faults`, the environment's daily MAP API budget
/// `budget`.
fn run_with_budget(faults: FaultProfile, mode: &str, budget: Option<u64>) -> Outcome {
    let rt = runtime();
    let db = TestDb::new(&server_url());
    let ws = Workspace::new();
    rt.block_on(async {
        let map = start_sandbox(LEADS, 11, CLIENT_ID, SECRET, faults).await;
        let base = map.base_url();
        ws.map_environment(&base, CLIENT_ID, SECRET, budget);
        ws.dag("bump", &dag(mode));
        let d = Drover { db: &db, ws: &ws };
        d.ok(&["db", "migrate"]);
        let _s = d.scheduler("scheduler");
        let _w = d.worker("worker", 2, 10.0);
        let store = db.store().await;
        synced(&store, "bump").await;
        let run =
            Uuid::parse_str(&d.ok(&["runs", "trigger", "bump", "--env", "dev"])).expect("run id");
        let row = wait_finished(&store, run, Duration::from_secs(180)).await;
        let mut errors = Vec::new();
        for ti in store.task_instances(run).await.expect("tasks") {
            for t in store.task_tries(ti.id).await.expect("tries") {
                if let Some(e) = t.error {
                    errors.push(format!("{} try {}: {e}", ti.task_id, t.try_number));
                }
            }
        }
        let receipt = if row.state == RunState::Success {
            receipt(&store, run).await
        } else {
            Vec::new()
        };
        let stats = get_json(&format!("{base}/_sandbox/stats")).await;
        let out = Outcome {
            run: row,
            errors,
            receipt,
            stats,
            base: base.clone(),
        };
        // Rejected rows show on the run's page, each with the MAP's reason.
        if let Some((key, _, Some(reason))) = out.receipt.iter().find(|r| r.1 == "rejected") {
            let password = support::web::add_user(&d, "admin", "admin");
            let (_web, web) = support::web::start_web(&d, &[]).await;
            let s = support::web::login(&web, "admin", &password).await;
            let page = s.get(&format!("/runs/{run}")).await;
            assert!(page.body.contains("rejected by Marketo"), "{}", page.body);
            let escaped = |t: &str| {
                t.replace('&', "&amp;")
                    .replace('<', "&lt;")
                    .replace('>', "&gt;")
                    .replace('"', "&#34;")
                    .replace('\'', "&#39;")
            };
            assert!(
                page.body.contains(&escaped(reason)),
                "{key}: {reason} not on the page"
            );
        }
        // Every accepted lead holds its new score (checked on a sample).
        for (key, status, _) in out.receipt.iter().filter(|r| r.1 == "accepted").take(15) {
            let lead = get_json(&format!("{base}/_sandbox/leads/{key}")).await;
            assert!(
                lead["_writeCount"].as_u64().unwrap_or(0) >= 1,
                "{key} {status}: {lead}"
            );
        }
        map.shutdown().await;
        out
    })
}

/// Succeeded, every row accepted, no lead written twice by one request, no lead created.
fn assert_survived(profile: &str, o: &Outcome) {
    assert_eq!(o.run.state, RunState::Success, "{profile}: {:?}", o.errors);
    assert!(o.receipt.len() > 100, "{profile}: {} rows", o.receipt.len());
    assert!(
        o.receipt.iter().all(|r| r.1 == "accepted"),
        "{profile}: {:?}",
        o.receipt.iter().find(|r| r.1 != "accepted")
    );
    assert_eq!(
        o.stats["duplicateWrites"],
        serde_json::json!([]),
        "{profile}: {}",
        o.stats
    );
    // A lead is written once — except after an import batch the MAP failed part-way: the new
    // batch writes the same values again (an upsert by id: same end state, no new lead).
    let resent = o.stats["imports"]["Failed"].as_u64().unwrap_or(0);
    assert!(
        o.stats["maxWritesPerLead"].as_u64() <= Some(1 + resent),
        "{profile}: a lead was written twice: {}",
        o.stats
    );
    assert_eq!(
        o.stats["leads"].as_u64(),
        Some(LEADS as u64),
        "{profile}: a lead was created: {}",
        o.stats
    );
    let _ = &o.base;
}

#[test]
fn every_fault_profile_is_survived_or_fails_clearly() {
    let _turn = serial();
    let _ = rustls::crypto::ring::default_provider().install_default();
    for (profile, mode) in [
        ("token-expiry", "sync"),
        ("rate-limit", "sync"),
        ("server-errors", "sync"),
        ("server-errors", "import"),
        ("slow-jobs", "import"),
        ("broken-downloads", "sync"),
    ] {
        let faults: FaultProfile = profile.parse().unwrap_or_else(|e| panic!("{profile}: {e}"));
        let o = run_with(faults, mode);
        assert_survived(profile, &o);
        let errors = o.stats["errorsByCode"].to_string();
        match profile {
            // The client keeps within Marketo's documented limits, so it never hits them.
            "rate-limit" => assert_eq!(errors, "{}", "{}", o.stats),
            "broken-downloads" => {}
            "slow-jobs" => assert!(
                o.stats["exports"]["Failed"].as_u64().unwrap_or(0)
                    + o.stats["imports"]["Failed"].as_u64().unwrap_or(0)
                    > 0,
                "no job failed: {}",
                o.stats
            ),
            _ => assert!(
                errors.len() > 2,
                "{profile}: the sandbox injected nothing: {}",
                o.stats
            ),
        }
    }

    // Noisy neighbours: the instance's limit is lower than Drover assumes, so the MAP answers
    // 606 and 615; the client backs off and gets through.
    let crowded = FaultProfile {
        rate_limit: Some(RateLimitFault {
            calls_per_20s: 6,
            concurrent: 1,
            latency_ms: 50,
        }),
        ..FaultProfile::default()
    };
    let o = run_with(crowded, "sync");
    assert_survived("crowded rate limit", &o);
    assert!(
        o.stats["errorsByCode"]["606"].as_u64().unwrap_or(0) > 0,
        "{}",
        o.stats
    );

    // Held responses (a slow MAP) are waited out and retried.
    let held = FaultProfile {
        timeouts: Some(TimeoutFault {
            probability: 0.15,
            hold_ms: 1_500,
        }),
        ..FaultProfile::default()
    };
    assert_survived("timeouts", &run_with(held, "sync"));

    // The daily quota: a clear reason, and no retry hammering the MAP.
    let o = run_with("quota".parse().unwrap_or_else(|e| panic!("{e}")), "sync");
    assert_eq!(o.run.state, RunState::Failed);
    assert_eq!(
        o.errors.len(),
        1,
        "a spent quota is not retried: {:?}",
        o.errors
    );
    assert!(o.errors[0].contains("quota"), "{:?}", o.errors);
}

#[test]
fn partial_import_failures_come_back_as_per_row_reasons() {
    let _turn = serial();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let o = run_with(
        "partial-import".parse().unwrap_or_else(|e| panic!("{e}")),
        "import",
    );
    assert_eq!(o.run.state, RunState::Success, "{:?}", o.errors);
    let rejected: Vec<_> = o.receipt.iter().filter(|r| r.1 == "rejected").collect();
    let accepted = o.receipt.iter().filter(|r| r.1 == "accepted").count();
    assert!(!rejected.is_empty(), "the sandbox rejects about 1% of rows");
    assert!(
        accepted > rejected.len() * 20,
        "{accepted} accepted, {} rejected",
        rejected.len()
    );
    for (key, _, reason) in &rejected {
        assert!(
            reason.as_deref().is_some_and(|r| !r.trim().is_empty()),
            "{key} has no reason"
        );
    }
    assert_eq!(
        o.stats["duplicateWrites"],
        serde_json::json!([]),
        "{}",
        o.stats
    );
    assert_eq!(o.stats["maxWritesPerLead"].as_u64(), Some(1), "{}", o.stats);
}

#[test]
fn a_spent_daily_budget_stops_the_task_before_the_call() {
    let _turn = serial();
    let _ = rustls::crypto::ring::default_provider().install_default();
    // Enough for the export (describe, create, enqueue, a few polls, the file), not for it all.
    let o = run_with_budget(FaultProfile::default(), "sync", Some(4));
    assert_eq!(o.run.state, RunState::Failed);
    assert_eq!(
        o.errors.len(),
        1,
        "a spent budget is not retried: {:?}",
        o.errors
    );
    assert!(
        o.errors[0].contains("daily MAP API budget of 4 calls for environment dev is used up"),
        "{:?}",
        o.errors
    );
    // The MAP saw no more calls than the budget allowed.
    assert!(
        o.stats["dailyCalls"].as_u64().unwrap_or(u64::MAX) <= 4,
        "{}",
        o.stats
    );
}

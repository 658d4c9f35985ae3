//! End-to-end tests of the MAP task kinds: real `drover` scheduler and worker processes, a real
//! Postgres, and the MAP sandbox speaking the Marketo REST API over HTTP.

mod support;

use std::time::Duration;

use drover_mapsim::FaultProfile;
use drover_store::{RunState, Store};
use support::{
    Drover, TestDb, Workspace, runtime, serial, server_url, start_sandbox, synced, wait_finished,
    window_days,
};
use uuid::Uuid;

const CLIENT_ID: &str = "drover-test";
/// Distinctive, so a leak anywhere is found by a plain text search.
const SECRET: &str = "s3cret-9f1c2e-never-print-me";

/// Lead scoring over every lead the sandbox has, returned by `mode`.
fn scoring_dag(mode: &str) -> String {
    let (since, until) = window_days(200);
    format!(
        r#"id: scoring
defaults: {{ retries: 2, retry_delay: 1s }}
tasks:
  - id: export_leads
    export:
      object: leads
      fields: [id, email, country, leadScore, updatedAt]
      filter: {{ updated_at: {{ since: "{since}", until: "{until}" }} }}
  - id: export_activities
    export: {{ object: activities, types: [visit_web_page, fill_out_form], since: "{since}", until: "{until}" }}
  - id: score
    depends_on: [export_leads, export_activities]
    transform:
      - from: export_leads
      - normalize: {{ email: lower_trim, country: iso_alpha2 }}
      - dedupe: {{ key: email, keep: latest }}
      - sql: |
          select l.id, l.email, least(100, coalesce(l."leadScore", 0) + 7 * count(a."leadId"))::bigint as "leadScore"
          from {{{{ previous }}}} l left join {{{{ input.export_activities }}}} a on a."leadId" = l.id
          group by l.id, l.email, l."leadScore"
  - id: push_scores
    depends_on: [score]
    return: {{ object: leads, lookup: id, fields: [leadScore], mode: {mode} }}
  - id: leads_at_the_map
    depends_on: [push_scores]
    check:
      map: {{ object: leads, filter: {{ updated_at: {{ since: "{since}", until: "{until}" }} }} }}
      min: 1
"#
    )
}

async fn sandbox_lead(base: &str, id: i64) -> serde_json::Value {
    reqwest::get(format!("{base}/_sandbox/leads/{id}"))
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .json()
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

/// (id, value) pairs of a staged dataset's column.
async fn staged_scores(
    store: &Store,
    run: Uuid,
    task: &str,
    column: &str,
) -> Vec<(i64, Option<i64>)> {
    let d = store
        .dataset(run, task, "output")
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|| panic!("no dataset for {task}"));
    let staging = store
        .staging_pool(&d.environment, 1)
        .unwrap_or_else(|e| panic!("{e}"));
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "select id::bigint, {}::bigint from {} order by id",
        drover_spec::dataset::quote_ident(column),
        d.relation()
    )))
    .fetch_all(&staging)
    .await
    .unwrap_or_else(|e| panic!("{e}"))
}

fn init_tls() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

#[test]
fn lead_scoring_writes_scores_back_and_a_revert_restores_them() {
    init_tls();
    let _turn = serial();
    let rt = runtime();
    let db = TestDb::new(&server_url());
    let ws = Workspace::new();
    rt.block_on(async {
        let map = start_sandbox(2_000, 7, CLIENT_ID, SECRET, FaultProfile::default()).await;
        let base = map.base_url();
        ws.map_environment(&base, CLIENT_ID, SECRET, Some(10_000));
        ws.dag("scoring", &scoring_dag("sync"));
        let d = Drover { db: &db, ws: &ws };
        d.ok(&["db", "migrate"]);
        let _s = d.scheduler("scheduler");
        let mut w = d.worker("worker", 2, 10.0);
        let store = db.store().await;
        synced(&store, "scoring").await;
        let run = Uuid::parse_str(&d.ok(&["runs", "trigger", "scoring", "--env", "dev"])).expect("run id");
        let row = wait_finished(&store, run, Duration::from_secs(120)).await;
        assert_eq!(row.state, RunState::Success, "{row:?}\n{}", w.log());

        // The sandbox holds every score the run computed.
        let scores = staged_scores(&store, run, "score", "leadScore").await;
        let before = staged_scores(&store, run, "export_leads", "leadScore").await;
        assert!(scores.len() > 600, "{} scored", scores.len());
        let changed: Vec<_> = scores
            .iter()
            .filter(|(id, s)| before.iter().any(|(bid, b)| bid == id && b != s))
            .take(40)
            .collect();
        assert!(changed.len() >= 20, "activities should raise some scores");
        for (id, score) in &changed {
            let lead = sandbox_lead(&base, *id).await;
            assert_eq!(lead["leadScore"].as_i64(), *score, "lead {id}: {lead}");
        }
        // Receipts: one per row, each with the values before the write; only the scores
        // that change are sent, the rest are `unchanged`.
        let differing = scores
            .iter()
            .filter(|(id, s)| before.iter().any(|(bid, b)| bid == id && b != s))
            .count();
        assert!(differing < scores.len(), "some scores stay as they are");
        let receipt = store.dataset(run, "push_scores", "receipt").await.expect("registry").expect("receipt");
        assert_eq!(receipt.row_count, i64::try_from(scores.len()).expect("count"));
        let shown = d.ok(&["datasets", "show", &run.to_string(), "push_scores", "--receipt", "--limit", "3"]);
        assert!(shown.contains("previous") && (shown.contains("accepted") || shown.contains("unchanged")), "{shown}");
        let statuses: (i64, i64) = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "select count(*) filter (where status = 'accepted'), count(*) filter (where status = 'unchanged') from {}",
            receipt.relation()
        )))
        .fetch_one(store.pool())
        .await
        .expect("statuses");
        assert_eq!(statuses, (differing as i64, (scores.len() - differing) as i64));
        // Metrics: API calls and rows are on the tries.
        let moved: (Option<i64>, Option<i64>, Option<i64>) = sqlx::query_as(
            "select sum(rows_out)::bigint, sum(api_calls)::bigint, sum(rows_rejected)::bigint from task_try tt
             join task_instance ti on ti.id = tt.task_instance_id where ti.run_id = $1 and ti.task_id = 'push_scores'",
        )
        .bind(run)
        .fetch_one(store.pool())
        .await
        .expect("metrics");
        assert_eq!(moved.0, Some(i64::try_from(differing).expect("count")), "rows out: sent and accepted");
        assert!(moved.1.unwrap_or(0) >= 5, "{moved:?}");
        assert_eq!(moved.2, Some(0));
        // `runs show` says what each task moved.
        let shown = d.ok(&["runs", "show", &run.to_string()]);
        let push_line = shown
            .lines()
            .find(|l| l.trim_start().starts_with("push_scores"))
            .unwrap_or_default()
            .to_owned();
        assert!(shown.contains("ROWS OUT"), "{shown}");
        assert!(
            push_line.split_whitespace().any(|w| w == scores.len().to_string()),
            "{push_line}"
        );
        // The environment's API budget counted the calls.
        let day_calls: i64 = sqlx::query_scalar("select coalesce(sum(calls), 0)::bigint from map_api_usage where environment = 'dev'")
            .fetch_one(store.pool())
            .await
            .expect("usage");
        assert!(day_calls >= moved.1.unwrap_or(0), "{day_calls}");

        // The MAP-count check (after the return, so no lead moves between windows while it
        // counts) holds the number of leads the MAP has in the window: as many as were exported.
        let counted = store.check_history("scoring", "dev", "leads_at_the_map", 1).await.expect("history");
        assert_eq!(counted[0].value, Some(before.len() as f64), "{counted:?}");
        assert!(counted[0].passed);

        // Revert: every changed lead gets its old score back.
        let out = d.ok(&["tasks", "revert", &run.to_string(), "push_scores", "--wait"]);
        assert!(out.contains(&format!("restored {differing} record(s); 0 skipped (changed since); 0 refused")), "{out}");
        assert!(out.contains(&format!("{} never written", scores.len() - differing)), "{out}");
        for (id, _) in &changed {
            let lead = sandbox_lead(&base, *id).await;
            let old = before.iter().find(|(b, _)| b == id).and_then(|(_, s)| *s);
            assert_eq!(lead["leadScore"].as_i64(), old, "lead {id} after revert: {lead}");
        }
        // Audited on both sides of the MAP's writes: who asked before the first write, what
        // was restored after.
        let audit = store.audit_events(10).await.expect("audit");
        let actions: Vec<&str> = audit.iter().map(|a| a.action.as_str()).collect();
        let started = actions.iter().position(|a| *a == "return.revert.requested");
        let done = actions.iter().position(|a| *a == "return.revert");
        assert!(
            started.zip(done).is_some_and(|(s, d)| d < s),
            "newest first, the report after the start: {actions:?}"
        );

        // The secret appears nowhere: logs, errors, receipts, audit, the worker's own output.
        w.terminate(Duration::from_secs(10));
        let texts: Vec<String> = sqlx::query_scalar(
            "select line from task_log union all select coalesce(error, '') from task_try
             union all select details::text from audit_event union all select spec::text from environment",
        )
        .fetch_all(store.pool())
        .await
        .expect("texts");
        assert!(texts.iter().all(|t| !t.contains(SECRET)));
        assert!(!w.log().contains(SECRET));
        let staging = store.staging_pool(&receipt.environment, 1).expect("staging");
        let receipts: String = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "select coalesce(string_agg(t::text, ''), '') from {} t",
            receipt.relation()
        )))
        .fetch_one(&staging)
        .await
        .expect("receipts");
        assert!(!receipts.contains(SECRET));
        map.shutdown().await;
    });
}

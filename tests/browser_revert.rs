//! In a real headless Chromium, as an operator: Revert on a run's page queues the revert, the
//! page follows the job while a worker runs it, and then says what it did: records restored,
//! and those changed in Marketo since the return left as they are. Revert is not offered again.

mod support;

use std::time::Duration;

use drover_mapsim::FaultProfile;
use serde_json::json;
use support::browser::Browser;
use support::web::{add_user, start_web};
use support::{
    Drover, TestDb, Workspace, runtime, serial, server_url, start_sandbox, synced, wait_finished,
    window_days,
};
use uuid::Uuid;

const CLIENT_ID: &str = "drover-test";
const SECRET: &str = "revert-secret-41a7";
const LONG: Duration = Duration::from_secs(90);

fn scoring_dag() -> String {
    let (since, until) = window_days(200);
    format!(
        r#"id: scoring
tasks:
  - id: export_leads
    export:
      object: leads
      fields: [id, email, leadScore, updatedAt]
      filter: {{ updated_at: {{ since: "{since}", until: "{until}" }} }}
  - id: score
    depends_on: [export_leads]
    transform:
      - from: export_leads
      - sql: select id, coalesce("leadScore", 0) + 1 as "leadScore" from {{{{ previous }}}}
  - id: push_scores
    depends_on: [score]
    return: {{ object: leads, lookup: id, fields: [leadScore], mode: sync }}
"#
    )
}

/// Another writer changes a lead's score through the Marketo API.
async fn change_score(base: &str, id: i64, score: i64) {
    let http = reqwest::Client::new();
    let token: serde_json::Value = http
        .get(format!(
            "{base}/identity/oauth/token?grant_type=client_credentials&client_id={CLIENT_ID}&client_secret={SECRET}"
        ))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .json()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let token = token["access_token"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let answer: serde_json::Value = http
        .post(format!("{base}/rest/v1/leads.json"))
        .bearer_auth(token)
        .json(&json!({ "action": "updateOnly", "lookupField": "id", "input": [{ "id": id, "leadScore": score }] }))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .json()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(answer["result"][0]["status"], "updated", "{answer}");
}

fn thousands(n: i64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[test]
fn an_operator_reverts_on_the_run_page_and_sees_the_outcome_live() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let _turn = serial();
    let db = TestDb::new(&server_url());
    let ws = Workspace::new();
    runtime().block_on(async {
        let map = start_sandbox(1_000, 11, CLIENT_ID, SECRET, FaultProfile::default()).await;
        let base = map.base_url();
        ws.map_environment(&base, CLIENT_ID, SECRET, Some(10_000));
        ws.dag("scoring", &scoring_dag());
        let d = Drover { db: &db, ws: &ws };
        d.ok(&["db", "migrate"]);
        add_user(&d, "admin", "admin");
        let olga = add_user(&d, "olga", "operator");
        let _s = d.scheduler("scheduler");
        let w = d.worker("worker", 2, 10.0);
        let store = db.store().await;
        synced(&store, "scoring").await;
        let run = d.ok(&["runs", "trigger", "scoring", "--env", "dev", "--as", "admin"]);
        let run = Uuid::parse_str(&run).unwrap_or_else(|e| panic!("{e}"));
        let row = wait_finished(&store, run, LONG).await;
        assert_eq!(row.state, drover_store::RunState::Success, "{row:?}\n{}", w.log());
        let receipt = store
            .dataset(run, "push_scores", "receipt")
            .await
            .expect("registry")
            .expect("receipt");
        let total = receipt.row_count;
        assert!(total > 300, "{total} rows: more than one chunk");

        // Three leads are changed by someone else after the return.
        let ids: Vec<i64> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "select (previous->>'id')::bigint from {} where previous is not null order by key limit 3",
            receipt.relation()
        )))
        .fetch_all(store.pool())
        .await
        .expect("ids");
        assert_eq!(ids.len(), 3);
        for id in &ids {
            change_score(&base, *id, 4242).await;
        }

        let (_web, web) = start_web(&d, &[]).await;
        let b = Browser::start().await;
        b.goto(&format!("{web}/login")).await;
        b.find("#name").await.type_text("olga").await;
        b.find("#password").await.type_text(&olga).await;
        b.find("#login").await.click().await;
        b.wait_for_url("/dags", LONG).await;

        b.goto(&format!("{web}/runs/{run}")).await;
        let revert = "tr[data-task=push_scores] form[action$='/revert'] button";
        assert!(b.exists(revert).await, "Revert is offered to an operator");
        // The confirmation dialog is answered yes.
        b.execute("window.confirm = () => true;", &[]).await;
        b.find(revert).await.click().await;
        // The page follows the job and shows its outcome, without a reload by hand.
        let expected = format!(
            "Reverted: {} restored, 3 skipped (changed since)",
            thousands(total - 3)
        );
        let line = b.wait_for_text("#reverts li[data-task=push_scores]", &expected, LONG).await;
        assert!(line.contains("Changed since the return, left as they are"), "{line}");
        for id in &ids {
            assert!(line.contains(&id.to_string()), "{id} named: {line}");
        }
        assert!(!b.exists(revert).await, "Revert is not offered again after a completed revert");
        assert!(!b.exists("#reverts li[data-revert-live]").await, "no longer followed");
        let job = store
            .latest_revert(run, "push_scores")
            .await
            .expect("job")
            .expect("a job");
        assert_eq!(job.state, "done", "{job:?}");
        assert_eq!(job.requested_by, "olga", "{job:?}");
        drop(w);
    });
}

//! The values before a return's write taken from the DAG's own staged export plus a bulk export
//! of the leads updated since, instead of reading every lead back: real `drover` processes, a
//! real Postgres, the sandbox over HTTP. A lead changed at the MAP between the export and the
//! return must be recorded with its value at the time of the write, so revert restores it.

mod support;

use std::time::Duration;

use drover_map::{MarketoClient, MarketoConfig, SyncAction, SyncRequest, Unlimited};
use drover_mapsim::FaultProfile;
use drover_store::{RunState, Store, TaskState};
use support::{
    Drover, TestDb, Workspace, eventually, runtime, serial, server_url, start_sandbox, synced,
    wait_finished, window_days,
};
use uuid::Uuid;

const CLIENT_ID: &str = "drover-test";
const SECRET: &str = "snapshot-secret-5d1e";

fn dag(gate: &std::path::Path) -> String {
    let (since, until) = window_days(400);
    format!(
        r#"id: rescore
defaults: {{ retries: 0 }}
tasks:
  - id: export_leads
    export:
      object: leads
      fields: [id, email, leadScore, updatedAt]
      filter: {{ updated_at: {{ since: "{since}", until: "{until}" }} }}
  - id: score
    depends_on: [export_leads]
    transform:
      - filter: "id <= 400"
      - derive: {{ leadScore: "coalesce(\"leadScore\", 0) + 3" }}
  - id: gate
    depends_on: [score]
    command: {{ shell: "while [ ! -e '{gate}' ]; do sleep 0.1; done" }}
  - id: push_scores
    depends_on: [gate]
    return: {{ object: leads, lookup: id, fields: [leadScore], from: score, mode: sync }}
"#,
        gate = gate.display()
    )
}

async fn lead_score(base: &str, id: i64) -> Option<i64> {
    let lead: serde_json::Value = reqwest::get(format!("{base}/_sandbox/leads/{id}"))
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .json()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    lead["leadScore"].as_i64()
}

async fn return_log(store: &Store, run: Uuid) -> Vec<String> {
    sqlx::query_scalar(
        "select l.line from task_log l join task_instance ti on ti.id = l.task_instance_id
         where ti.run_id = $1 and ti.task_id = 'push_scores' order by l.id",
    )
    .bind(run)
    .fetch_all(store.pool())
    .await
    .expect("log")
}

async fn sandbox_stats(base: &str) -> serde_json::Value {
    reqwest::get(format!("{base}/_sandbox/stats"))
        .await
        .expect("stats")
        .json()
        .await
        .expect("stats json")
}

async fn previous(store: &Store, run: Uuid, key: &str) -> serde_json::Value {
    let d = store
        .dataset(run, "push_scores", "receipt")
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|| panic!("no receipt"));
    sqlx::query_scalar::<_, serde_json::Value>(sqlx::AssertSqlSafe(format!(
        "select coalesce(previous, 'null'::jsonb) from {} where key = $1",
        d.relation()
    )))
    .bind(key)
    .fetch_one(store.pool())
    .await
    .unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn values_before_come_from_the_staged_export_and_changes_since() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let _turn = serial();
    let rt = runtime();
    let db = TestDb::new(&server_url());
    let ws = Workspace::new();
    rt.block_on(async {
        let map = start_sandbox(1_000, 11, CLIENT_ID, SECRET, FaultProfile::default()).await;
        let base = map.base_url();
        ws.map_environment(&base, CLIENT_ID, SECRET, None);
        let gate = ws.path().join("gate-open");
        ws.dag("rescore", &dag(&gate));
        let d = Drover { db: &db, ws: &ws };
        d.ok(&["db", "migrate"]);
        let _s = d.scheduler("scheduler");
        let _w = d.worker("worker", 2, 10.0);
        let store = db.store().await;
        synced(&store, "rescore").await;
        let run = Uuid::parse_str(&d.ok(&["runs", "trigger", "rescore", "--env", "dev"]))
            .expect("run id");

        // The export is staged; before the return runs, another integration changes lead 7.
        eventually("the gate to be running", Duration::from_secs(60), || async {
            let tis = store.task_instances(run).await.ok()?;
            tis.iter()
                .any(|t| t.task_id == "gate" && t.state.0 == TaskState::Running)
                .then_some(())
        })
        .await;
        let staged_7 = lead_score(&base, 7).await;
        let staged_8 = lead_score(&base, 8).await;
        let other = MarketoClient::new(
            MarketoConfig::new(base.clone(), CLIENT_ID, SECRET),
            std::sync::Arc::new(Unlimited),
        )
        .expect("client");
        let mut record = drover_map::Record::new();
        record.insert("id".into(), serde_json::json!(7));
        record.insert("leadScore".into(), serde_json::json!(4242));
        other
            .sync_leads(&SyncRequest {
                action: SyncAction::UpdateOnly,
                lookup_field: "id".into(),
                partition_name: None,
                records: vec![record],
            })
            .await
            .expect("the other integration's write");
        let stats = |s: serde_json::Value| s["callsByEndpoint"]["GET /rest/v1/leads.json"].as_u64().unwrap_or(0);
        let reads_before: serde_json::Value = sandbox_stats(&base).await;
        std::fs::write(&gate, "open").expect("open the gate");
        let row = wait_finished(&store, run, Duration::from_secs(120)).await;
        let errors: Vec<String> = store
            .task_instances(run)
            .await
            .expect("tasks")
            .into_iter()
            .filter_map(|t| t.last_error.map(|e| format!("{}: {e}", t.task_id)))
            .collect();
        assert_eq!(row.state, RunState::Success, "{errors:?}");

        // No lead was read back one by one: the values before came from the staged export
        // and one bulk export of the leads updated since.
        let reads_after: serde_json::Value = sandbox_stats(&base).await;
        assert_eq!(stats(reads_after), stats(reads_before), "Get Leads calls during the return");
        let log = return_log(&store, run).await;
        assert!(
            log.iter().any(|l| l.contains("values before the write: 400 from `export_leads`'s staged export, 1 of them changed since")),
            "{log:#?}"
        );

        // Lead 7 is recorded as it was when written (the other integration's 4242), lead 8 as
        // staged.
        assert_eq!(previous(&store, run, "7").await["leadScore"], serde_json::json!(4242));
        assert_eq!(
            previous(&store, run, "8").await["leadScore"],
            serde_json::json!(staged_8)
        );
        assert_ne!(staged_7, Some(4242));
        assert_eq!(lead_score(&base, 7).await, Some(staged_7.unwrap_or(0) + 3));

        // Revert restores exactly that.
        let out = d.ok(&["tasks", "revert", &run.to_string(), "push_scores", "--wait"]);
        assert!(out.contains("restored 400 record(s)"), "{out}");
        assert_eq!(lead_score(&base, 7).await, Some(4242));
        assert_eq!(lead_score(&base, 8).await, staged_8);
    });
}

/// A subscription without the `updatedAt` bulk filter (1035): changes since the export cannot
/// be found in bulk, so the values before are read lead by lead, and the log says why.
#[test]
fn without_the_updated_at_filter_the_values_before_are_read_lead_by_lead() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let _turn = serial();
    let rt = runtime();
    let db = TestDb::new(&server_url());
    let ws = Workspace::new();
    rt.block_on(async {
        let map = drover_mapsim::start(
            drover_mapsim::SandboxConfig {
                leads: 600,
                seed: 12,
                client_id: CLIENT_ID.to_owned(),
                client_secret: SECRET.to_owned(),
                limits: drover_mapsim::Limits {
                    updated_at_filter: false,
                    ..drover_mapsim::Limits::default()
                },
                ..drover_mapsim::SandboxConfig::default()
            },
            std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
        )
        .await
        .expect("sandbox");
        let base = map.base_url();
        ws.map_environment(&base, CLIENT_ID, SECRET, None);
        let (since, until) = window_days(400);
        ws.dag(
            "rescore",
            &format!(
                r#"id: rescore
defaults: {{ retries: 0 }}
tasks:
  - id: export_leads
    export:
      object: leads
      fields: [id, leadScore]
      filter: {{ created_at: {{ since: "{since}", until: "{until}" }} }}
  - id: score
    depends_on: [export_leads]
    transform:
      - filter: "id <= 50"
      - derive: {{ leadScore: "coalesce(\"leadScore\", 0) + 3" }}
  - id: push_scores
    depends_on: [score]
    return: {{ object: leads, lookup: id, fields: [leadScore], mode: sync }}
"#
            ),
        );
        let d = Drover { db: &db, ws: &ws };
        d.ok(&["db", "migrate"]);
        let _s = d.scheduler("scheduler");
        let _w = d.worker("worker", 2, 10.0);
        let store = db.store().await;
        synced(&store, "rescore").await;
        let staged_9 = lead_score(&base, 9).await;
        let run = Uuid::parse_str(&d.ok(&["runs", "trigger", "rescore", "--env", "dev"]))
            .expect("run id");
        let row = wait_finished(&store, run, Duration::from_secs(120)).await;
        assert_eq!(row.state, RunState::Success);
        let log = return_log(&store, run).await;
        assert!(
            log.iter()
                .any(|l| l.contains("read lead by lead") && l.contains("1035")),
            "{log:#?}"
        );
        let stats: serde_json::Value = sandbox_stats(&base).await;
        assert!(
            stats["callsByEndpoint"]["GET /rest/v1/leads.json"]
                .as_u64()
                .unwrap_or(0)
                >= 1,
            "{stats}"
        );
        assert_eq!(
            previous(&store, run, "9").await["leadScore"],
            serde_json::json!(staged_9)
        );
    });
}

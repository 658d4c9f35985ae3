//! A return keyed on a field Marketo cannot find leads by fails before anything is sent:
//! real `drover` processes, Postgres and the sandbox, whose Describe Lead2 lists the
//! searchable fields (and which answers 1011 to any other lookup, as Marketo does).

mod support;

use std::time::Duration;

use drover_mapsim::FaultProfile;
use drover_store::RunState;
use support::tasks::task_record;
use support::{
    Drover, TestDb, Workspace, runtime, serial, server_url, start_sandbox, synced, wait_finished,
    window_days,
};
use uuid::Uuid;

const CLIENT_ID: &str = "drover-lookups";
const SECRET: &str = "lookups-secret-71d0";

#[test]
fn a_return_keyed_on_an_unsearchable_field_fails_early_and_sends_nothing() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let _turn = serial();
    let rt = runtime();
    let db = TestDb::new(&server_url());
    let ws = Workspace::new();
    let (since, until) = window_days(60);
    rt.block_on(async {
        let map = start_sandbox(500, 7, CLIENT_ID, SECRET, FaultProfile::default()).await;
        let base = map.base_url();
        ws.map_environment(&base, CLIENT_ID, SECRET, None);
        ws.dag(
            "by_name",
            &format!(
                r#"id: by_name
defaults: {{ retries: 2, retry_delay: 1s }}
tasks:
  - id: export_leads
    export:
      object: leads
      fields: [id, firstName, lastName]
      filter: {{ updated_at: {{ since: "{since}", until: "{until}" }} }}
  - id: push
    depends_on: [export_leads]
    return: {{ object: leads, lookup: firstName, fields: [lastName], mode: sync }}
"#
            ),
        );
        let d = Drover { db: &db, ws: &ws };
        d.ok(&["db", "migrate"]);
        let _s = d.scheduler("scheduler");
        let w = d.worker("worker", 1, 10.0);
        let store = db.store().await;
        synced(&store, "by_name").await;
        let run = Uuid::parse_str(&d.ok(&["runs", "trigger", "by_name", "--env", "dev"]))
            .expect("run id");
        let row = wait_finished(&store, run, Duration::from_secs(120)).await;
        assert_eq!(row.state, RunState::Failed, "{row:?}\n{}", w.log());

        let (_, tries) = task_record(&store, run, "push").await;
        assert_eq!(tries.len(), 1, "not retried: {tries:?}");
        let error = tries[0].2.clone().unwrap_or_default();
        assert!(
            error.contains(
                "`firstName` cannot be used as a lookup: Marketo can only find leads by id, email, sfdcLeadId or sfdcContactId (the searchable fields of this instance)"
            ),
            "{error}"
        );
        let stats: serde_json::Value = reqwest::get(format!("{base}/_sandbox/stats"))
            .await
            .expect("stats")
            .json()
            .await
            .expect("json");
        let calls = &stats["callsByEndpoint"];
        assert_eq!(calls["GET /rest/v1/leads/describe2.json"], 1, "{stats}");
        for write in ["POST /rest/v1/leads.json", "POST /bulk/v1/leads.json"] {
            assert!(calls.get(write).is_none(), "{write} was called: {stats}");
        }
        assert!(calls.get("GET /rest/v1/leads.json").is_none(), "no snapshot read: {stats}");
        assert_eq!(stats["writes"], 0, "{stats}");
        map.shutdown().await;
    });
}

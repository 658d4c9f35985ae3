//! The example DAGs this repository ships (`dags/`), run as they are against the MAP sandbox:
//! what the demo shows must work.

mod support;

use std::time::Duration;

use drover_store::RunState;
use support::{
    Drover, TestDb, Workspace, eventually, runtime, serial, server_url, start_sandbox, synced,
};
use uuid::Uuid;

#[test]
fn shipped_example_dags_run_against_the_sandbox() {
    let _turn = serial();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let rt = runtime();
    let db = TestDb::new(&server_url());
    let ws = Workspace::new();
    let shipped = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("dags");
    let mut ids = Vec::new();
    for entry in std::fs::read_dir(&shipped).unwrap_or_else(|e| panic!("{e}")) {
        let path = entry.unwrap_or_else(|e| panic!("{e}")).path();
        if path.extension().is_some_and(|e| e == "yaml") {
            let id = path
                .file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or_default()
                .to_owned();
            ws.dag(
                &id,
                &std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{e}")),
            );
            ids.push(id);
        }
    }
    assert!(ids.len() >= 4, "{ids:?}");
    rt.block_on(async {
        let map = start_sandbox(
            20_000,
            42,
            "examples",
            "examples-secret",
            Default::default(),
        )
        .await;
        ws.map_environment(&map.base_url(), "examples", "examples-secret", None);
        let d = Drover { db: &db, ws: &ws };
        d.ok(&["db", "migrate"]);
        let _s = d.scheduler("scheduler");
        let _w = d.worker("worker", 4, 10.0);
        let store = db.store().await;
        for id in &ids {
            synced(&store, id).await;
        }
        let runs: Vec<(String, Uuid)> = ids
            .iter()
            .map(|id| {
                let run = d.ok(&["runs", "trigger", id, "--env", "dev"]);
                (
                    id.clone(),
                    Uuid::parse_str(&run).unwrap_or_else(|e| panic!("{run}: {e}")),
                )
            })
            .collect();
        for (id, run) in runs {
            let row = eventually(
                &format!("{id} to finish"),
                Duration::from_secs(120),
                || async {
                    store
                        .get_run(run)
                        .await
                        .ok()
                        .filter(|r| r.state.is_finished())
                },
            )
            .await;
            let mut errors = Vec::new();
            for ti in store.task_instances(run).await.unwrap_or_default() {
                if let Some(e) = ti.last_error {
                    errors.push(format!("{}: {e}", ti.task_id));
                }
            }
            assert_eq!(row.state, RunState::Success, "{id}: {errors:?}");
        }
        map.shutdown().await;
    });
}

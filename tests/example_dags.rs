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
            let shown: serde_json::Value =
                serde_json::from_str(&d.ok(&["runs", "show", &run.to_string(), "--format", "json"]))
                    .unwrap_or_else(|e| panic!("{e}"));
            eprintln!(
                "{id}: {:?} {} | {} | {}",
                row.state, shown["run"]["outcome"], shown["run"]["summary"], shown["run"]["problems"]
            );
            told_truly(&store, &id, run, &row, &shown["run"], &errors).await;
        }
        map.shutdown().await;
    });
}

/// "1,234".
fn thousands(n: i64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A run's state, outcome, sentence and problems agree with what its tasks did: failed
/// exactly when a task failed or did not run for it; every export's count and every check's
/// verdict in the sentence; a warn check out of bounds among the problems; amber exactly when
/// a succeeded run has problems.
async fn told_truly(
    store: &drover_store::Store,
    dag: &str,
    run: Uuid,
    row: &drover_store::RunRow,
    shown: &serde_json::Value,
    errors: &[String],
) {
    let tasks = store.task_outcomes(&[run]).await.unwrap_or_else(|e| panic!("{e}"));
    let summary = shown["summary"].as_str().unwrap_or_default();
    let problems = shown["problems"].as_array().cloned().unwrap_or_default();
    let has_problem = |kind: &str, task: &str| {
        problems
            .iter()
            .any(|p| p["kind"] == kind && p["task"] == task)
    };
    let any_failed = tasks
        .iter()
        .any(|t| matches!(t.state.as_str(), "failed" | "upstream_failed"));
    assert_eq!(
        row.state,
        if any_failed { RunState::Failed } else { RunState::Success },
        "{dag}: {errors:?}"
    );
    let expected_outcome = match (row.state, problems.is_empty()) {
        (RunState::Success, true) => "success",
        (RunState::Success, false) => "warning",
        _ => "failed",
    };
    assert_eq!(shown["outcome"], expected_outcome, "{dag}: {shown}");
    assert!(!summary.is_empty(), "{dag}");
    let mut passed = 0;
    for t in &tasks {
        let name = t.task_id.replace('_', " ");
        let name = if name.ends_with("check") { name } else { format!("{name} check") };
        match (&t.check, t.state.as_str()) {
            (Some((true, _)), _) => passed += 1,
            (Some((false, severity)), state) => {
                let verdict = if state == "failed" { "failed" } else { "warning" };
                assert!(
                    summary.to_lowercase().contains(&format!("{name}: {verdict}")),
                    "{dag}: {summary}"
                );
                if severity == "warn" {
                    assert!(has_problem("check_warning", &t.task_id), "{dag}: {problems:?}");
                }
            }
            (None, "success") if t.task_id.starts_with("export") => {
                let n = thousands(t.metrics.rows_out.unwrap_or(0));
                assert!(
                    ["lead", "leads", "activity", "activities"]
                        .iter()
                        .any(|w| summary.to_lowercase().contains(&format!("{n} {w} read from marketo"))),
                    "{dag}: {summary}"
                );
            }
            (None, "failed") => {
                assert!(summary.to_lowercase().contains(&format!("task {} failed", t.task_id)), "{dag}: {summary}")
            }
            _ => {}
        }
        if t.metrics.rows_rejected.unwrap_or(0) > 0 && t.state.as_str() == "success" {
            assert!(has_problem("rejected_rows", &t.task_id), "{dag}: {problems:?}");
        }
    }
    match passed {
        0 => assert!(!summary.contains("passed"), "{dag}: {summary}"),
        1 => assert!(summary.contains("1 check passed"), "{dag}: {summary}"),
        n => assert!(summary.contains(&format!("{n} checks passed")), "{dag}: {summary}"),
    }
}

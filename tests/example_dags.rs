//! The example DAGs this repository ships (`dags/`), run as they are against the MAP sandbox:
//! what the demo shows must work. A DAG started by a webhook (`contact_sales`) is started by
//! posting to its hook, as Marketo would, not by hand.

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
    assert!(ids.len() >= 5, "{ids:?}");
    // Each is valid; those a webhook starts are not triggered by hand here (a run without
    // events has no `{{ events }}` to read): see `contact_sales_routes_each_fill_posted_to_its_hook`.
    let by_hook: Vec<String> = ids
        .iter()
        .filter(|id| {
            let file = shipped.join(format!("{id}.yaml"));
            let text = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{e}"));
            let dag = drover_spec::dag::load_dag(&file.display().to_string(), &text)
                .unwrap_or_else(|e| panic!("{id}: {e:?}"));
            dag.triggers
                .iter()
                .any(|t| matches!(t, drover_spec::dag::RunTrigger::Webhook(_)))
        })
        .cloned()
        .collect();
    assert_eq!(by_hook, ["contact_sales"], "{ids:?}");
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
            .filter(|id| !by_hook.contains(id))
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
            let shown: serde_json::Value = serde_json::from_str(&d.ok(&[
                "runs",
                "show",
                &run.to_string(),
                "--format",
                "json",
            ]))
            .unwrap_or_else(|e| panic!("{e}"));
            eprintln!(
                "{id}: {:?} {} | {} | {}",
                row.state,
                shown["run"]["outcome"],
                shown["run"]["summary"],
                shown["run"]["problems"]
            );
            told_truly(&store, &id, run, &row, &shown["run"], &errors).await;
            fresh_after(&store, &ws, &id, run, &row).await;
        }
        map.shutdown().await;
    });
}

/// What an example declares of its data's `freshness` holds after its run: refreshed by it
/// when it succeeded. lead_scoring declares it.
async fn fresh_after(
    store: &drover_store::Store,
    ws: &Workspace,
    dag: &str,
    run: Uuid,
    row: &drover_store::RunRow,
) {
    let file = ws.dags().join(format!("{dag}.yaml"));
    let text = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{e}"));
    let loaded = drover_spec::dag::load_dag(&file.display().to_string(), &text)
        .unwrap_or_else(|e| panic!("{dag}: {e:?}"));
    let rules = drover_engine::freshness::rules_of(&loaded, "dev");
    if dag == "lead_scoring" {
        assert_eq!(rules.len(), 1, "lead_scoring declares freshness: {rules:?}");
        assert_eq!(rules[0].max_age_secs, 26 * 3_600);
    }
    for state in store.freshness(&rules).await.unwrap_or_default() {
        if row.state == RunState::Success {
            assert_eq!(state.last_refreshed_by, Some(run), "{dag}: {state:?}");
            assert!(!state.stale, "{dag}: {state:?}");
        }
    }
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
    let tasks = store
        .task_outcomes(&[run])
        .await
        .unwrap_or_else(|e| panic!("{e}"));
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
        if any_failed {
            RunState::Failed
        } else {
            RunState::Success
        },
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
        let name = if name.ends_with("check") {
            name
        } else {
            format!("{name} check")
        };
        match (&t.check, t.state.as_str()) {
            (Some((true, _)), _) => passed += 1,
            (Some((false, severity)), state) => {
                let verdict = if state == "failed" {
                    "failed"
                } else {
                    "warning"
                };
                assert!(
                    summary
                        .to_lowercase()
                        .contains(&format!("{name}: {verdict}")),
                    "{dag}: {summary}"
                );
                if severity == "warn" {
                    assert!(
                        has_problem("check_warning", &t.task_id),
                        "{dag}: {problems:?}"
                    );
                }
            }
            (None, "success") if t.task_id.starts_with("export") => {
                let n = thousands(t.metrics.rows_out.unwrap_or(0));
                assert!(
                    ["lead", "leads", "activity", "activities"]
                        .iter()
                        .any(|w| summary
                            .to_lowercase()
                            .contains(&format!("{n} {w} read from marketo"))),
                    "{dag}: {summary}"
                );
            }
            (None, "failed") => {
                assert!(
                    summary
                        .to_lowercase()
                        .contains(&format!("task {} failed", t.task_id)),
                    "{dag}: {summary}"
                )
            }
            _ => {}
        }
        if t.metrics.rows_rejected.unwrap_or(0) > 0 && t.state.as_str() == "success" {
            assert!(
                has_problem("rejected_rows", &t.task_id),
                "{dag}: {problems:?}"
            );
        }
    }
    match passed {
        0 => assert!(!summary.contains("passed"), "{dag}: {summary}"),
        1 => assert!(summary.contains("1 check passed"), "{dag}: {summary}"),
        n => assert!(
            summary.contains(&format!("{n} checks passed")),
            "{dag}: {summary}"
        ),
    }
}

/// The example DAG `id` as shipped.
fn shipped(id: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("dags")
        .join(format!("{id}.yaml"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn iso(t: chrono::DateTime<chrono::Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// A lead placed in the sandbox holding exactly `fields`; its id.
async fn place_lead(base: &str, fields: serde_json::Value) -> i64 {
    let resp = reqwest::Client::new()
        .post(format!("{base}/_sandbox/leads"))
        .json(&fields)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(resp.status(), 201, "{fields}");
    let v: serde_json::Value = resp.json().await.unwrap_or_else(|e| panic!("{e}"));
    v["id"].as_i64().unwrap_or_else(|| panic!("{v}"))
}

async fn place_activity(base: &str, lead: i64, type_id: u32, at: chrono::DateTime<chrono::Utc>) {
    let resp = reqwest::Client::new()
        .post(format!("{base}/_sandbox/activities"))
        .json(&serde_json::json!({"leadId": lead, "activityTypeId": type_id, "activityDate": iso(at)}))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(resp.status(), 201);
}

async fn sandbox_lead(base: &str, id: i64) -> serde_json::Value {
    reqwest::get(format!("{base}/_sandbox/leads/{id}"))
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .json()
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

/// The rows of a task's staged dataset as JSON, by id.
async fn staged_by_id(
    store: &drover_store::Store,
    run: Uuid,
    task: &str,
) -> std::collections::BTreeMap<i64, serde_json::Value> {
    let d = store
        .dataset(run, task, "output")
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|| panic!("no dataset for {task}"));
    let pool = store
        .staging_pool(&d.environment, 1)
        .unwrap_or_else(|e| panic!("{e}"));
    let rows: Vec<serde_json::Value> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "select to_jsonb(t) from {} t",
        d.relation()
    )))
    .fetch_all(&pool)
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    rows.into_iter()
        .map(|r| (r["id"].as_i64().unwrap_or_else(|| panic!("{r}")), r))
        .collect()
}

async fn run_to_success(d: &Drover<'_>, store: &drover_store::Store, args: &[&str]) -> Uuid {
    let out = d.ok(args);
    let run = Uuid::parse_str(out.trim()).unwrap_or_else(|e| panic!("{out}: {e}"));
    let row = support::wait_finished(store, run, Duration::from_secs(90)).await;
    let mut errors = Vec::new();
    for ti in store.task_instances(run).await.unwrap_or_default() {
        if let Some(e) = ti.last_error {
            errors.push(format!("{}: {e}", ti.task_id));
        }
    }
    assert_eq!(row.state, RunState::Success, "{errors:?}");
    run
}

#[test]
fn contact_normalization_keeps_what_it_cannot_read_and_returns_only_changes() {
    let _turn = serial();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let rt = runtime();
    let db = TestDb::new(&server_url());
    let ws = Workspace::new();
    ws.dag("contact_normalization", &shipped("contact_normalization"));
    rt.block_on(async {
        let map = start_sandbox(2_000, 42, "examples", "examples-secret", Default::default()).await;
        let base = map.base_url();
        ws.map_environment(&base, "examples", "examples-secret", None);
        // Three hours ago: inside a complete hourly interval, which the run names by it.
        let at = chrono::Utc::now() - chrono::Duration::hours(3);
        let narnia = place_lead(&base, serde_json::json!({"email": " Narnia.Fan@Example.com ", "country": "Narnia",
            "phone": "723.874.5907 x12", "firstName": "Lucy", "lastName": "Pevensie", "updatedAt": iso(at)})).await;
        let unknown = place_lead(&base, serde_json::json!({"email": "na@example.com", "country": "N/A",
            "phone": "(555) 010-4477", "firstName": " Ed ", "lastName": "Smith", "updatedAt": iso(at)})).await;
        let clean = place_lead(&base, serde_json::json!({"email": "clean@example.com", "country": "DE",
            "phone": "+4930123456", "firstName": "Clara", "lastName": "Klein", "updatedAt": iso(at)})).await;
        let d = Drover { db: &db, ws: &ws };
        d.ok(&["db", "migrate"]);
        let _s = d.scheduler("scheduler");
        let _w = d.worker("worker", 2, 10.0);
        let store = db.store().await;
        synced(&store, "contact_normalization").await;
        let run = run_to_success(&d, &store, &["runs", "trigger", "contact_normalization", "--env", "dev", "--logical-date", &iso(at)]).await;

        // What normalisation could read is fixed; what it could not stays as the contact typed it.
        let lead = sandbox_lead(&base, narnia).await;
        assert_eq!(lead["email"], "narnia.fan@example.com", "{lead}");
        assert_eq!(lead["country"], "Narnia", "{lead}");
        assert_eq!(lead["phone"], "723.874.5907 x12", "{lead}");
        assert_eq!((&lead["firstName"], &lead["lastName"]), (&"Lucy".into(), &"Pevensie".into()));
        let lead = sandbox_lead(&base, unknown).await;
        assert_eq!(lead["phone"], "+15550104477", "{lead}");
        assert_eq!(lead["country"], "N/A", "{lead}");
        assert_eq!(lead["firstName"], "Ed", "{lead}");
        // A contact with nothing to fix is not written at all.
        let lead = sandbox_lead(&base, clean).await;
        assert_eq!(lead["_writeCount"], 0, "{lead}");

        // Over every contact of the interval: a returned row changes something and never
        // turns a value into null.
        let before = staged_by_id(&store, run, "export_changed").await;
        let returned = staged_by_id(&store, run, "normalize").await;
        assert!(before.len() > returned.len() && returned.contains_key(&narnia) && !returned.contains_key(&clean), "{} {}", before.len(), returned.len());
        for (id, row) in &returned {
            let was = &before[id];
            let fields = ["email", "phone", "country", "firstName", "lastName"];
            assert!(fields.iter().any(|f| row[f] != was[f]), "lead {id} returned unchanged: {row}");
            for f in fields {
                assert!(!row[f].is_null() || was[f].is_null(), "lead {id}: {f} {} → null", was[f]);
            }
        }
        map.shutdown().await;
    });
}

#[test]
fn lead_scoring_twice_for_the_same_interval_leaves_every_score_as_after_the_first() {
    let _turn = serial();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let rt = runtime();
    let db = TestDb::new(&server_url());
    let ws = Workspace::new();
    ws.dag("lead_scoring", &shipped("lead_scoring"));
    rt.block_on(async {
        let map = start_sandbox(2_000, 42, "examples", "examples-secret", Default::default()).await;
        let base = map.base_url();
        ws.map_environment(&base, "examples", "examples-secret", None);
        let now = chrono::Utc::now();
        let day = chrono::Duration::days(1);
        // Updated now, so in the interval the runs cover (the one `now` falls in), as the
        // scores the first run writes are.
        let no_activity =
            place_lead(&base, serde_json::json!({"email": "quiet@example.com"})).await;
        let two_visits = place_lead(
            &base,
            serde_json::json!({"email": "two@example.com", "leadScore": 35}),
        )
        .await;
        let many_fills = place_lead(&base, serde_json::json!({"email": "many@example.com"})).await;
        let long_ago = place_lead(
            &base,
            serde_json::json!({"email": "old@example.com", "leadScore": 50}),
        )
        .await;
        place_activity(&base, two_visits, 1, now - day * 2).await;
        place_activity(&base, two_visits, 1, now - day * 3).await;
        for k in 0..12 {
            place_activity(&base, many_fills, 2, now - day * (k + 1)).await;
        }
        place_activity(&base, long_ago, 1, now - day * 40).await;
        let d = Drover { db: &db, ws: &ws };
        d.ok(&["db", "migrate"]);
        let _s = d.scheduler("scheduler");
        let _w = d.worker("worker", 2, 10.0);
        let store = db.store().await;
        synced(&store, "lead_scoring").await;
        let trigger = [
            "runs",
            "trigger",
            "lead_scoring",
            "--env",
            "dev",
            "--logical-date",
            &iso(now),
        ];
        let first = run_to_success(&d, &store, &trigger).await;
        let leads: Vec<i64> = staged_by_id(&store, first, "export_leads")
            .await
            .into_keys()
            .collect();
        for id in [no_activity, two_visits, many_fills, long_ago] {
            assert!(leads.contains(&id), "lead {id} not exported");
        }
        let mut after_first = std::collections::BTreeMap::new();
        for id in &leads {
            after_first.insert(*id, sandbox_lead(&base, *id).await["leadScore"].clone());
        }
        // Points per activity in the 30 days up to the interval's end, capped; no activity in
        // the window: the score stays as it was (null stays null, not 0).
        assert_eq!(after_first[&no_activity], serde_json::Value::Null);
        assert_eq!(after_first[&two_visits], 20);
        assert_eq!(after_first[&many_fills], 100);
        assert_eq!(after_first[&long_ago], 50);
        // Only changed scores were sent.
        let sent = staged_by_id(&store, first, "score").await;
        assert!(
            !sent.is_empty() && !sent.contains_key(&no_activity) && !sent.contains_key(&long_ago)
        );

        let second = run_to_success(&d, &store, &trigger).await;
        let again = staged_by_id(&store, second, "export_leads").await;
        assert!(
            again.contains_key(&two_visits),
            "the first run's writes are in the interval too"
        );
        assert!(
            staged_by_id(&store, second, "score").await.is_empty(),
            "nothing changed, nothing is sent"
        );
        for id in &leads {
            let score = sandbox_lead(&base, *id).await;
            assert_eq!(score["leadScore"], after_first[id], "lead {id}: {score}");
        }
        assert_eq!(sandbox_lead(&base, two_visits).await["_writeCount"], 1);
        map.shutdown().await;
    });
}

#[test]
fn the_missing_crm_lead_check_takes_its_bound_from_the_param() {
    let _turn = serial();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let rt = runtime();
    let db = TestDb::new(&server_url());
    let ws = Workspace::new();
    ws.dag(
        "contacts_missing_crm_lead",
        &shipped("contacts_missing_crm_lead"),
    );
    rt.block_on(async {
        let map = start_sandbox(2_000, 42, "examples", "examples-secret", Default::default()).await;
        let base = map.base_url();
        ws.map_environment(&base, "examples", "examples-secret", None);
        let at = chrono::Utc::now() - chrono::Duration::days(3);
        for k in 0..3 {
            place_lead(&base, serde_json::json!({"email": format!("nocrm{k}@example.com"), "createdAt": iso(at)})).await;
        }
        place_lead(&base, serde_json::json!({"email": "crm@example.com", "sfdcLeadId": "00Q000000000001AAA", "createdAt": iso(at)})).await;
        let d = Drover { db: &db, ws: &ws };
        d.ok(&["db", "migrate"]);
        let _s = d.scheduler("scheduler");
        let _w = d.worker("worker", 2, 10.0);
        let store = db.store().await;
        synced(&store, "contacts_missing_crm_lead").await;
        let base_args = ["runs", "trigger", "contacts_missing_crm_lead", "--env", "dev", "--logical-date", &iso(at)];
        let mut lenient = base_args.to_vec();
        lenient.extend(["--param", "max_missing_ratio=1"]);
        let lenient_run = run_to_success(&d, &store, &lenient).await;
        let strict_run = run_to_success(&d, &store, &base_args).await;
        let history = store
            .check_history("contacts_missing_crm_lead", "dev", "missing_ratio", 10)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let of = |run: Uuid| history.iter().find(|h| h.run_id == run).cloned().unwrap_or_else(|| panic!("{history:?}"));
        let (lenient, strict) = (of(lenient_run), of(strict_run));
        // The same contacts, held to the bound each run was given.
        assert_eq!(lenient.value, strict.value);
        let value = strict.value.unwrap_or_default();
        assert!(value > 0.02 && value < 1.0, "3 of the 4 placed contacts lack a CRM lead: {value}");
        assert_eq!((lenient.max_value, lenient.passed), (Some(1.0), true));
        let max = strict.max_value.unwrap_or_default();
        assert!((max - 0.02).abs() < 1e-9 && !strict.passed, "{strict:?}");
        // Shown as a percentage, as the bound is written.
        let shown: serde_json::Value = serde_json::from_str(&d.ok(&["runs", "show", &strict_run.to_string(), "--format", "json"]))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(shown["run"]["outcome"], "warning", "{shown}");
        assert!(shown["run"]["problems"].to_string().contains("2 %"), "{shown}");
        map.shutdown().await;
    });
}

/// The bearer token of `contact_sales`'s hook in the test's DEV.
const HOOK_TOKEN: &str = "contact-sales-hook-5d1e77a0";

/// NEEDS the receiving endpoint (`POST /hooks/{env}/{dag}/{name}` and `{{ events }}`), built
/// on its own branch: until it is merged the hook answers 404 and this test fails.
///
/// Two Contact Sales fills reach `contact_sales` as Marketo sends them: one filled in the
/// sandbox, whose webhook (the "Call Webhook" step) posts it with the bearer token, and one
/// posted to the hook directly with the same token. Each lead then holds the owner and
/// nurture track the DAG's tables give its region and segment; a request without the token
/// starts nothing and writes nothing.
#[test]
fn contact_sales_routes_each_fill_posted_to_its_hook() {
    let _turn = serial();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let rt = runtime();
    let db = TestDb::new(&server_url());
    let ws = Workspace::new();
    ws.dag("contact_sales", &shipped("contact_sales"));
    rt.block_on(async {
        let map = start_sandbox(2_000, 42, "examples", "examples-secret", Default::default()).await;
        let base = map.base_url();
        ws.map_environment(&base, "examples", "examples-secret", None);
        // DEV's file names where the hook's token is, as environments/dev.yaml does.
        let token_file = ws.path().join("contact_sales_hook");
        std::fs::write(&token_file, HOOK_TOKEN).unwrap_or_else(|e| panic!("{e}"));
        let dev = ws.environments().join("dev.yaml");
        let mut text = std::fs::read_to_string(&dev).unwrap_or_else(|e| panic!("{e}"));
        text.push_str(&format!(
            "secrets:\n  contact_sales_hook: {{ file: {} }}\n",
            token_file.display()
        ));
        std::fs::write(&dev, text).unwrap_or_else(|e| panic!("{e}"));
        let d = Drover { db: &db, ws: &ws };
        d.ok(&["db", "migrate"]);
        let _s = d.scheduler("scheduler");
        let _w = d.worker("worker", 2, 10.0);
        let (_web, web) = support::web::start_web(&d, &[]).await;
        let store = db.store().await;
        synced(&store, "contact_sales").await;
        let hook = format!("{web}/hooks/dev/contact_sales/form");
        let http = support::web::client();

        // Without the token: refused, no run.
        let refused = http
            .post(&hook)
            .json(&serde_json::json!({"email": "nobody@example.com", "fillId": "f-0"}))
            .send()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(refused.status(), 401);

        // A fill in the sandbox, sent on by its webhook.
        map.set_webhook(Some(
            drover_mapsim::WebhookTarget::new(&hook)
                .and_then(|t| t.with_bearer(HOOK_TOKEN))
                .unwrap_or_else(|e| panic!("{e}")),
        ));
        let filled = map
            .fill_form(drover_mapsim::FormFill {
                email: Some("ann.exec@acme.com".to_owned()),
                country: Some("USA".to_owned()),
                title: Some("VP Marketing".to_owned()),
                ..drover_mapsim::FormFill::default()
            })
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let delivered = filled.webhook.clone().unwrap_or_else(|| panic!("{filled:?}"));
        assert!(
            delivered.status.is_some_and(|s| (200..300).contains(&s)),
            "{delivered:?}"
        );
        let ann = i64::from(filled.lead_id);
        // One posted straight to the hook, for a lead already in Marketo (in EMEA, a manager).
        let now = chrono::Utc::now();
        let bob = place_lead(&base, serde_json::json!({"email": "bob.mgr@globex.de", "country": "Deutschland",
            "title": "Marketing Manager", "updatedAt": iso(now)})).await;
        let posted = http
            .post(&hook)
            .bearer_auth(HOOK_TOKEN)
            .json(&serde_json::json!({"leadId": bob, "email": "Bob.Mgr@globex.de", "country": "Deutschland",
                "title": "Marketing Manager", "segment": "Manager", "formName": "Contact Sales",
                "fillId": uuid::Uuid::new_v4().to_string(), "filledAt": iso(now)}))
            .send()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(posted.status().is_success(), "{:?}", posted.text().await);

        // Both leads routed by the tables in the DAG.
        let routed = |id: i64| {
            let base = base.clone();
            async move {
                let lead = sandbox_lead(&base, id).await;
                (!lead["salesOwner"].is_null()).then_some(lead)
            }
        };
        let lead = eventually("Ann to be routed", Duration::from_secs(120), || routed(ann)).await;
        assert_eq!(lead["salesOwner"], "Avery Chen", "{lead}");
        assert_eq!(lead["nurtureTrack"], "Executive briefing", "{lead}");
        let lead = eventually("Bob to be routed", Duration::from_secs(120), || routed(bob)).await;
        assert_eq!(lead["salesOwner"], "Eli Moreau", "{lead}");
        assert_eq!(lead["nurtureTrack"], "Team evaluation", "{lead}");

        // Every run the hook started succeeded, and the refused request started none.
        let runs = store
            .list_runs(&drover_store::RunFilter {
                dag_id: Some("contact_sales".to_owned()),
                environment: Some("dev".to_owned()),
                state: None,
                limit: 50,
            })
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(!runs.is_empty() && runs.len() <= 2, "{runs:?}");
        for run in &runs {
            let row = support::wait_finished(&store, run.id, Duration::from_secs(60)).await;
            assert_eq!(row.state, RunState::Success, "{row:?}");
        }
        map.shutdown().await;
    });
}

//! Plan before apply, end to end: real `drover` scheduler, worker and web processes, a real
//! Postgres and the MAP sandbox over HTTP. A return records its plan before it writes — per
//! record the key, what happens to it and each field's old → new value, and the totals —
//! and what it then writes is what the plan said; a preview run records the plan and writes
//! nothing; a try run again records its plan anew without adding to the first; the plan is
//! on the run page, in the API and in `drover runs plan`; PROD's records are for operators.

mod support;

use std::collections::HashMap;
use std::time::Duration;

use drover_mapsim::FaultProfile;
use drover_store::{RunState, Store};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sqlx::Row;
use support::web::{add_user, api, login, start_web, token};
use support::{Drover, TestDb, Workspace, runtime, serial, server_url, start_sandbox, synced};
use uuid::Uuid;

const CLIENT_ID: &str = "drover-test";
const SECRET: &str = "plans-secret-81fa";
const LEADS: usize = 20;

fn init_tls() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Three existing leads written over, two new ones and a row without an email:
/// ann: a new first name, no country (she has one: withheld), the score she has;
/// bob: every value he has (unchanged); cy: a new score; new1, new2: created; a row without
/// an email: not sent.
const SELECT: &str = "select * from (values \
    ('ann@plan.example', null::text, 'Ann2', 50), \
    ('bob@plan.example', 'Oz', 'Bob', 7), \
    ('cy@plan.example', 'Oz', 'Cy', 11), \
    ('new1@plan.example', 'Elbonia', 'New', 1), \
    ('new2@plan.example', null::text, 'New2', 2), \
    (null::text, 'Oz', 'Nobody', 3)) v(email, country, \"firstName\", \"leadScore\")";

const WORDS: &str = "would create 2 leads, update 2 (firstName on 1, leadScore on 1), leave 1 unchanged, not send 1 without an email, withhold 1 empty value";

fn return_dag(id: &str) -> String {
    return_dag_with(id, "")
}

/// The return with more `options` (", snapshot: false").
fn return_dag_with(id: &str, options: &str) -> String {
    format!(
        "id: {id}\ndefaults: {{ retries: 0 }}\ntasks:\n  - id: rows\n    sql: |\n      create table {{{{ output }}}} as {SELECT}\n  - id: push\n    depends_on: [rows]\n    return: {{ object: leads, fields: [country, firstName, leadScore], mode: sync{options} }}\n"
    )
}

async fn admin(base: &str, path: &str) -> Value {
    reqwest::get(format!("{base}{path}"))
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .json()
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

async fn reset_calls(base: &str) {
    let r = reqwest::Client::new()
        .post(format!("{base}/_sandbox/reset"))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(r.status().is_success());
}

async fn calls(base: &str) -> Vec<String> {
    admin(base, "/_sandbox/calls").await["calls"]
        .as_array()
        .unwrap_or_else(|| panic!("no call log"))
        .iter()
        .filter_map(|c| c.as_str().map(str::to_owned))
        .collect()
}

/// Another writer sets lead `id`'s fields through the Marketo API.
async fn set_lead(base: &str, id: i64, fields: Value) {
    let http = reqwest::Client::new();
    let token: Value = http
        .get(format!(
            "{base}/identity/oauth/token?grant_type=client_credentials&client_id={CLIENT_ID}&client_secret={SECRET}"
        ))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .json()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mut record = fields.as_object().cloned().unwrap_or_default();
    record.insert("id".to_owned(), json!(id));
    let answer: Value = http
        .post(format!("{base}/rest/v1/leads.json"))
        .bearer_auth(token["access_token"].as_str().unwrap_or_default())
        .json(&json!({ "action": "updateOnly", "lookupField": "id", "input": [record] }))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .json()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(answer["result"][0]["status"], "updated", "{answer}");
}

/// Leads 1–3 as the dataset expects them.
async fn seed_leads(base: &str) {
    set_lead(
        base,
        1,
        json!({"email": "ann@plan.example", "country": "Narnia", "firstName": "Ann", "leadScore": 50}),
    )
    .await;
    set_lead(
        base,
        2,
        json!({"email": "bob@plan.example", "country": "Oz", "firstName": "Bob", "leadScore": 7}),
    )
    .await;
    set_lead(
        base,
        3,
        json!({"email": "cy@plan.example", "country": "Oz", "firstName": "Cy", "leadScore": 10}),
    )
    .await;
}

/// A value as text, the same way for the plan's JSON and the sandbox's: null and "" alike.
fn text(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn trigger_as(d: &Drover<'_>, dag: &str, env: &str, extra: &[&str]) -> Uuid {
    let mut args = vec!["runs", "trigger", dag, "--env", env];
    args.extend_from_slice(extra);
    let out = d.ok(&args);
    Uuid::parse_str(out.trim()).unwrap_or_else(|e| panic!("run id `{out}`: {e}"))
}

/// The receipt of `push` in `run`: key → (status, map_id, created).
async fn receipt(store: &Store, run: Uuid) -> HashMap<String, (String, Option<i64>, bool)> {
    let d = store
        .dataset(run, "push", "receipt")
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|| panic!("no receipt"));
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "select coalesce(key, '') as k, status, map_id, created from {}",
        d.relation()
    )))
    .fetch_all(store.pool())
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    rows.iter()
        .map(|r| {
            (
                r.try_get("k").unwrap_or_else(|e| panic!("{e}")),
                (
                    r.try_get("status").unwrap_or_else(|e| panic!("{e}")),
                    r.try_get("map_id").unwrap_or_else(|e| panic!("{e}")),
                    r.try_get("created").unwrap_or_else(|e| panic!("{e}")),
                ),
            )
        })
        .collect()
}

fn totals(v: &Value) -> Value {
    v["totals"].clone()
}

const EXPECTED_TOTALS: fn() -> Value = || json!({"rows": 6, "creates": 2, "updates": 2, "sends": 4, "unchanged": 1, "not_sent": 1, "nulls_withheld": 1});

#[test]
fn plan_totals_equal_what_the_return_then_writes() {
    init_tls();
    let _turn = serial();
    let rt = runtime();
    let db = TestDb::new(&server_url());
    let ws = Workspace::new();
    rt.block_on(async {
        let map = start_sandbox(LEADS, 11, CLIENT_ID, SECRET, FaultProfile::default()).await;
        let base = map.base_url();
        seed_leads(&base).await;
        ws.map_environment(&base, CLIENT_ID, SECRET, Some(10_000));
        ws.dag("plans", &return_dag("plans"));
        let d = Drover { db: &db, ws: &ws };
        d.ok(&["db", "migrate"]);
        let _s = d.scheduler("scheduler");
        let w = d.worker("worker", 2, 10.0);
        let store = db.store().await;
        synced(&store, "plans").await;
        let mut before = HashMap::new();
        for id in 1..=3 {
            before.insert(id, admin(&base, &format!("/_sandbox/leads/{id}")).await);
        }
        let run = trigger_as(&d, "plans", "dev", &[]);
        let row = support::wait_finished(&store, run, Duration::from_secs(60)).await;
        assert_eq!(row.state, RunState::Success, "{}", w.log());

        // The CLI's JSON: the totals and every record.
        let out = d.ok(&["runs", "plan", &run.to_string(), "push", "--json"]);
        let plan: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
        assert_eq!(totals(&plan), EXPECTED_TOTALS(), "{plan}");
        assert_eq!(plan["field_changes"], json!({"firstName": 1, "leadScore": 1}));
        assert_eq!(plan["summary"], WORDS);
        assert_eq!(plan["preview"], false);
        assert_eq!(plan["try_number"], 1);
        let records = plan["records"].as_array().cloned().unwrap_or_default();
        assert_eq!(records.len(), 6, "{plan}");
        let by_key: HashMap<String, &Value> = records
            .iter()
            .map(|r| (text(&r["key"]), r))
            .collect();
        let status = |k: &str| by_key[k]["status"].as_str().unwrap_or_default().to_owned();
        assert_eq!(status("ann@plan.example"), "update");
        assert_eq!(status("bob@plan.example"), "unchanged");
        assert_eq!(status("cy@plan.example"), "update");
        assert_eq!(status("new1@plan.example"), "create");
        assert_eq!(status("new2@plan.example"), "create");
        assert_eq!(status(""), "not_sent");
        assert_eq!(by_key["ann@plan.example"]["withheld"], json!(["country"]));
        assert_eq!(by_key["ann@plan.example"]["map_id"], 1);

        // What the return wrote is what the plan said: the receipt and the sandbox.
        let rec = receipt(&store, run).await;
        let created = rec.values().filter(|r| r.2).count();
        let accepted = rec.values().filter(|r| r.0 == "accepted").count();
        let unchanged = rec.values().filter(|r| r.0 == "unchanged").count();
        let rejected = rec.values().filter(|r| r.0 == "rejected").count();
        assert_eq!(created, 2, "{rec:?}");
        assert_eq!(accepted - created, 2, "updates: {rec:?}");
        assert_eq!(unchanged, 1, "{rec:?}");
        assert_eq!(rejected, 1, "{rec:?}");
        let stats = admin(&base, "/_sandbox/stats").await;
        assert_eq!(stats["leads"], LEADS + 2, "{stats}");
        let metrics = store.run_metrics(run).await.unwrap_or_else(|e| panic!("{e}"));
        let push = metrics.iter().find(|(t, _)| t == "push").map(|(_, m)| *m).unwrap_or_default();
        assert_eq!(push.rows_created, Some(2));
        assert_eq!(push.rows_unchanged, Some(1));
        // Per field: old is the lead's value before, new its value after.
        let mut checked = 0;
        for r in &records {
            let key = text(&r["key"]);
            let Some(changes) = r["changes"].as_array() else { continue };
            let id = match r["status"].as_str() {
                Some("update") => r["map_id"].as_i64().unwrap_or_default(),
                Some("create") => rec[&key].1.unwrap_or_else(|| panic!("{key}: no id")),
                _ => continue,
            };
            let after = admin(&base, &format!("/_sandbox/leads/{id}")).await;
            for c in changes {
                let field = c["field"].as_str().unwrap_or_default();
                assert_eq!(text(&c["new"]), text(&after[field]), "{key}.{field}: {after}");
                assert_eq!(c["old_known"], true);
                let old = before.get(&id).map_or(Value::Null, |b| b[field].clone());
                assert_eq!(text(&c["old"]), text(&old), "{key}.{field} before");
                checked += 1;
            }
        }
        // ann: firstName; cy: leadScore; new1: 3 fields; new2: 2.
        assert_eq!(checked, 7, "{records:?}");
        let ann = &by_key["ann@plan.example"]["changes"];
        assert_eq!(
            ann,
            &json!([{"field": "firstName", "old": "Ann", "old_known": true, "new": "Ann2"}])
        );

        // The CLI's words.
        let out = d.ok(&["runs", "plan", &run.to_string(), "push", "--limit", "3"]);
        assert!(out.contains(WORDS), "{out}");
        assert!(out.contains("3 of 6 records (--limit N shows more)"), "{out}");
        let out = d.ok(&["runs", "plan", &run.to_string(), "push"]);
        assert!(out.contains("firstName: Ann → Ann2"), "{out}");
        assert!(out.contains("withheld (empty): country"), "{out}");
        let refused = d.run(&["runs", "plan", &run.to_string(), "rows"]);
        assert!(!refused.status.success());
        assert!(
            String::from_utf8_lossy(&refused.stderr).contains("recorded no plan"),
            "{refused:?}"
        );

        // The API, a page at a time, and the run page.
        add_user(&d, "admin", "admin");
        let admin_pw = add_user(&d, "ada", "admin");
        let (_web, web) = start_web(&d, &[]).await;
        let t = token(&d, "ada");
        let path = format!("/api/runs/{run}/tasks/push/plan");
        let a = api(&web, Method::GET, &format!("{path}?limit=4"), Some(&t), None).await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.body);
        let first: Value = serde_json::from_str(&a.body).unwrap_or_default();
        assert_eq!(totals(&first), EXPECTED_TOTALS(), "{first}");
        assert_eq!(first["records"].as_array().map(Vec::len), Some(4), "{first}");
        let next = first["next_after"].as_i64().unwrap_or_else(|| panic!("{first}"));
        let a = api(&web, Method::GET, &format!("{path}?after={next}"), Some(&t), None).await;
        let second: Value = serde_json::from_str(&a.body).unwrap_or_default();
        assert_eq!(second["records"].as_array().map(Vec::len), Some(2), "{second}");
        assert_eq!(second["next_after"], Value::Null);
        let a = api(&web, Method::GET, &format!("/api/runs/{run}/tasks/rows/plan"), Some(&t), None).await;
        assert_eq!(a.status, StatusCode::NOT_FOUND, "{}", a.body);
        let doc = api(&web, Method::GET, "/api/openapi.json", Some(&t), None).await;
        let doc: Value = serde_json::from_str(&doc.body).unwrap_or_default();
        assert!(
            doc["paths"]["/api/runs/{run}/tasks/{task}/plan"]["get"].is_object(),
            "documented"
        );
        let ada = login(&web, "ada", &admin_pw).await;
        let page = ada.get(&format!("/runs/{run}")).await;
        assert_eq!(page.status, StatusCode::OK);
        assert!(page.body.contains("Would create 2 leads, update 2 (firstName on 1, leadScore on 1), leave 1 unchanged, not send 1 without an email, withhold 1 empty value."), "{}", page.body);
        assert!(page.body.contains("ann@plan.example"), "{}", page.body);
        assert!(page.body.contains(&format!("/runs/{run}/tasks/push/plan")));
        let page = ada.get(&format!("/runs/{run}/tasks/push/plan")).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        assert!(page.body.contains("<span class=\"old\">Ann</span> → <span class=\"new\">Ann2</span>"), "{}", page.body);

        // The task run again: its plan is recorded anew, not added to the first. The values
        // before are the first try's, so the plan is the same.
        d.ok(&["tasks", "clear", &run.to_string(), "push", "--as", "ada"]);
        let again = support::eventually("the second try's plan", Duration::from_secs(60), || async {
            let p = store.latest_return_plan(run, "push").await.ok().flatten()?;
            let r = store.get_run(run).await.ok()?;
            (p.try_number == 2 && r.state.is_finished()).then_some(p)
        })
        .await;
        assert_eq!(store.get_run(run).await.map(|r| r.state).ok(), Some(RunState::Success), "{}", w.log());
        assert_eq!(again.rows, 6);
        assert_eq!((again.creates, again.updates, again.unchanged), (Some(2), Some(2), 1));
        assert_eq!(again.digest, plan["digest"].as_str().unwrap_or_default(), "the same plan");
        let held: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!("select count(*) from {}", again.relation())))
            .fetch_one(store.pool())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(held, 6, "records not doubled");
        let tries: i64 = sqlx::query_scalar("select count(*) from return_plan where run_id = $1 and task_id = 'push'")
            .bind(run)
            .fetch_one(store.pool())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(tries, 2, "one plan per try");

        // A new run of the same data: every lead holds its values now; another plan, another
        // digest.
        let next = trigger_as(&d, "plans", "dev", &["--as", "ada"]);
        let row = support::wait_finished(&store, next, Duration::from_secs(60)).await;
        assert_eq!(row.state, RunState::Success, "{}", w.log());
        let now = store
            .latest_return_plan(next, "push")
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .unwrap_or_else(|| panic!("no plan"));
        assert_eq!(
            now.in_words(),
            "would send nothing, leave 5 unchanged, not send 1 without an email, withhold 1 empty value"
        );
        assert_ne!(now.digest, again.digest);
        map.shutdown().await;
    });
}

#[test]
fn a_preview_run_records_its_plan_and_writes_nothing() {
    use drover_engine::ops::{Actor, Operations, TriggerRequest, parse_role};
    init_tls();
    let _turn = serial();
    let rt = runtime();
    let db = TestDb::new(&server_url());
    let ws = Workspace::new();
    rt.block_on(async {
        let map = start_sandbox(LEADS, 12, CLIENT_ID, SECRET, FaultProfile::default()).await;
        let base = map.base_url();
        seed_leads(&base).await;
        ws.map_environment(&base, CLIENT_ID, SECRET, Some(10_000));
        ws.dag("plans", &return_dag("plans"));
        ws.dag("blind", &return_dag_with("blind", ", snapshot: false"));
        let d = Drover { db: &db, ws: &ws };
        d.ok(&["db", "migrate"]);
        let _s = d.scheduler("scheduler");
        let w = d.worker("worker", 2, 10.0);
        let store = db.store().await;
        synced(&store, "plans").await;
        synced(&store, "blind").await;
        reset_calls(&base).await;
        let ops = Operations::new(store.clone());
        let admin_actor = Actor::with_role("ana", parse_role("admin").unwrap_or_else(|| panic!()));
        let preview = |dag: &'static str| {
            let (ops, admin_actor) = (&ops, &admin_actor);
            async move {
                ops.trigger(
                    admin_actor,
                    &TriggerRequest {
                        dag_id: dag.to_owned(),
                        environment: "dev".to_owned(),
                        params: Vec::new(),
                        logical_date: None,
                        preview: true,
                    },
                )
                .await
                .unwrap_or_else(|e| panic!("{e}"))
            }
        };
        let run = preview("plans").await;
        let row = support::wait_finished(&store, run, Duration::from_secs(60)).await;
        assert_eq!(row.state, RunState::Success, "{}", w.log());

        // No write reached the MAP; the values before were read to plan.
        let stats = admin(&base, "/_sandbox/stats").await;
        assert_eq!(stats["leads"], LEADS, "{stats}");
        let log = calls(&base).await;
        assert!(
            !log.iter().any(|c| c == "POST /rest/v1/leads.json"),
            "no write: {log:?}"
        );
        assert!(
            !log.iter().any(|c| c.contains("bulk")),
            "no import: {log:?}"
        );
        assert!(
            log.iter().any(|c| c.contains("leads.json")),
            "read: {log:?}"
        );
        assert!(
            store
                .dataset(run, "push", "receipt")
                .await
                .ok()
                .flatten()
                .is_none()
        );

        // What `dags test` prints: the totals and the first records.
        let view = store
            .latest_return_plan_with_records(run, "push", 4)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .unwrap_or_else(|| panic!("no plan"));
        assert!(view.plan.preview);
        assert_eq!(view.plan.in_words(), WORDS);
        assert_eq!(
            (
                view.plan.rows,
                view.plan.creates,
                view.plan.updates,
                view.plan.unchanged,
                view.plan.not_sent,
                view.plan.nulls_withheld
            ),
            (6, Some(2), Some(2), 1, 1, 1)
        );
        assert_eq!(view.records.len(), 4);
        assert!(view.more);
        let out = d.ok(&["runs", "plan", &run.to_string(), "push"]);
        assert!(out.contains("a preview: nothing was sent"), "{out}");
        assert!(out.contains(WORDS), "{out}");
        // The lead is as it was.
        assert_eq!(admin(&base, "/_sandbox/leads/1").await["firstName"], "Ann");

        // Without a snapshot: nothing read, old values unknown, creates and updates not told
        // apart.
        reset_calls(&base).await;
        let run = preview("blind").await;
        let row = support::wait_finished(&store, run, Duration::from_secs(60)).await;
        assert_eq!(row.state, RunState::Success, "{}", w.log());
        let log = calls(&base).await;
        assert!(!log.iter().any(|c| c.contains("/leads.json")), "no lead call: {log:?}");
        let view = store
            .latest_return_plan_with_records(run, "push", 10)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .unwrap_or_else(|| panic!("no plan"));
        assert!(!view.plan.snapshot);
        assert_eq!((view.plan.creates, view.plan.updates, view.plan.sends), (None, None, 5));
        assert_eq!(
            view.plan.in_words(),
            "would send 5 leads (new or existing: not known without a snapshot; firstName on 5, leadScore on 5, country on 3), not send 1 without an email"
        );
        let ann = view
            .records
            .iter()
            .find(|r| r.key.as_deref() == Some("ann@plan.example"))
            .unwrap_or_else(|| panic!("{:?}", view.records));
        assert_eq!(ann.status, "send");
        assert!(ann.changes.iter().all(|c| !c.old_known && c.old.is_null()), "{ann:?}");
        let out = d.ok(&["runs", "plan", &run.to_string(), "push"]);
        assert!(out.contains("firstName: ? → Ann2"), "{out}");
        assert!(out.contains("no snapshot: the values before are unknown"), "{out}");

        // Retention drops the records with the environment's other data; the totals stay.
        sqlx::query("update dataset set expires_at = now() - interval '1 day' where run_id = $1 and kind = 'plan'")
            .bind(run)
            .execute(store.pool())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let plane = drover_engine::data::DataPlane::connect(&store, 1)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let dropped = drover_engine::data::drop_expired_datasets(&plane, 10)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(dropped, 1);
        let table: Option<String> = sqlx::query_scalar(
            "select relname::text from pg_class where relname = $1",
        )
        .bind(&view.plan.table_name)
        .fetch_optional(store.pool())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(table, None, "the records table is dropped");
        let out = d.ok(&["runs", "plan", &run.to_string(), "push"]);
        assert!(out.contains("would send 5 leads"), "{out}");
        assert!(out.contains("the records were dropped on"), "{out}");
        map.shutdown().await;
    });
}

#[test]
fn prod_plan_records_show_only_to_operators() {
    init_tls();
    let _turn = serial();
    let rt = runtime();
    let db = TestDb::new(&server_url());
    let ws = Workspace::new();
    rt.block_on(async {
        let map = start_sandbox(LEADS, 13, CLIENT_ID, SECRET, FaultProfile::default()).await;
        let base = map.base_url();
        seed_leads(&base).await;
        ws.map_environment(&base, CLIENT_ID, SECRET, Some(10_000));
        let dev = std::fs::read_to_string(ws.environments().join("dev.yaml"))
            .unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(
            ws.environments().join("prod.yaml"),
            format!(
                "{}rows_visible_to: operator\n",
                dev.replace(
                    "name: dev\norder: 1\nbranch: main\n",
                    "name: prod\norder: 2\n"
                )
            ),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        ws.dag("plans", &return_dag("plans"));
        let d = Drover { db: &db, ws: &ws };
        d.ok(&["db", "migrate"]);
        add_user(&d, "admin", "admin");
        let vera_pw = add_user(&d, "vera", "viewer");
        let otto_pw = add_user(&d, "otto", "operator");
        let _s = d.scheduler("scheduler");
        let w = d.worker("worker", 2, 10.0);
        let store = db.store().await;
        support::tasks::synced_in(&store, "plans", "prod").await;
        let run = trigger_as(&d, "plans", "prod", &["--as", "admin"]);
        let row = support::wait_finished(&store, run, Duration::from_secs(60)).await;
        assert_eq!(row.state, RunState::Success, "{}", w.log());
        let (_web, web) = start_web(&d, &[]).await;
        let hidden = "Rows of PROD datasets are visible to operators and admins";
        let path = format!("/api/runs/{run}/tasks/push/plan");

        // A viewer: the totals, no record.
        let a = api(&web, Method::GET, &path, Some(&token(&d, "vera")), None).await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.body);
        assert!(!a.body.contains("plan.example"), "{}", a.body);
        let v: Value = serde_json::from_str(&a.body).unwrap_or_default();
        assert_eq!(v["records"], Value::Null, "{v}");
        assert!(
            v["records_hidden"]
                .as_str()
                .is_some_and(|s| s.contains(hidden)),
            "{v}"
        );
        assert_eq!(totals(&v), EXPECTED_TOTALS(), "{v}");
        let vera = login(&web, "vera", &vera_pw).await;
        for page in [
            format!("/runs/{run}"),
            format!("/runs/{run}/tasks/push/plan"),
        ] {
            let p = vera.get(&page).await;
            assert_eq!(p.status, StatusCode::OK, "{page}: {}", p.body);
            assert!(!p.body.contains("plan.example"), "{page}: {}", p.body);
            assert!(p.body.contains(hidden), "{page}: {}", p.body);
            assert!(
                p.body.contains("Would create 2 leads"),
                "{page}: {}",
                p.body
            );
        }
        // The records table itself: the environment's role may read it, as a receipt.
        let plan = store
            .latest_return_plan(run, "push")
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .unwrap_or_else(|| panic!("no plan"));
        let granted: bool = sqlx::query_scalar(
            "select has_table_privilege($1, format('%I.%I', $2::text, $3::text), 'select')",
        )
        .bind(drover_spec::dataset::sql_role("prod"))
        .bind(drover_spec::dataset::receipts_schema("prod"))
        .bind(&plan.table_name)
        .fetch_one(store.pool())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
        assert!(granted);

        // An operator: the records.
        let a = api(&web, Method::GET, &path, Some(&token(&d, "otto")), None).await;
        let v: Value = serde_json::from_str(&a.body).unwrap_or_default();
        assert_eq!(v["records"].as_array().map(Vec::len), Some(6), "{v}");
        assert_eq!(v["records_hidden"], Value::Null);
        let otto = login(&web, "otto", &otto_pw).await;
        let p = otto.get(&format!("/runs/{run}/tasks/push/plan")).await;
        assert!(p.body.contains("ann@plan.example"), "{}", p.body);
        map.shutdown().await;
    });
}

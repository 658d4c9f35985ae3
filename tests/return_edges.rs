//! Returns at Marketo's edges, end to end: real `drover` scheduler and worker processes, a
//! real Postgres, and the MAP sandbox over HTTP. A repeated lookup key is refused or sent
//! once (even when close upserts of a new key would each create a lead), the values before
//! are read whole before the first write, a null never goes over a value by default, and a
//! record that already holds every value is not sent.

mod support;

use std::time::Duration;

use drover_mapsim::FaultProfile;
use drover_store::{RunState, Store};
use serde_json::{Value, json};
use sqlx::Row;
use support::tasks::{task_log, trigger};
use support::{Drover, TestDb, Workspace, runtime, serial, server_url, start_sandbox, synced};
use uuid::Uuid;

const CLIENT_ID: &str = "drover-test";
const SECRET: &str = "edges-secret-5c2d";
/// Seeded leads: few, so every test is quick.
const LEADS: usize = 20;

fn init_tls() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// A DAG whose `rows` task stages `select` and whose `push` task returns it with `options`.
fn return_dag(id: &str, select: &str, options: &str) -> String {
    format!(
        "id: {id}\ndefaults: {{ retries: 0 }}\ntasks:\n  - id: rows\n    sql: |\n      create table {{{{ output }}}} as {select}\n  - id: push\n    depends_on: [rows]\n    return: {{ object: leads, {options} }}\n"
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

/// Clear the sandbox's call statistics and ordered call log.
async fn reset_calls(base: &str) {
    let r = reqwest::Client::new()
        .post(format!("{base}/_sandbox/reset"))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(r.status().is_success());
}

/// The REST endpoints called since the last reset, in order.
async fn calls(base: &str) -> Vec<String> {
    admin(base, "/_sandbox/calls").await["calls"]
        .as_array()
        .unwrap_or_else(|| panic!("no call log"))
        .iter()
        .filter_map(|c| c.as_str().map(str::to_owned))
        .collect()
}

const SYNC: &str = "POST /rest/v1/leads.json";

fn is_read(call: &str) -> bool {
    call == "GET /rest/v1/leads.json" || call == "POST /rest/v1/leads.json?_method=GET"
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

/// A receipt row as the tests read it: (key, status, map_id, sent, withheld).
type ReceiptRow = (String, String, Option<i64>, Value, Option<Vec<String>>);

/// The receipt of `push` in `run`, in key order (a row without a key last, as "").
async fn receipt(store: &Store, run: Uuid) -> Vec<ReceiptRow> {
    let d = store
        .dataset(run, "push", "receipt")
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|| panic!("no receipt"));
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "select coalesce(key, '') as k, status, map_id, sent::text as sent, withheld from {} order by key nulls last",
        d.relation()
    )))
    .fetch_all(store.pool())
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    rows.iter()
        .map(|r| {
            let sent: String = r.try_get("sent").unwrap_or_else(|e| panic!("{e}"));
            (
                r.try_get("k").unwrap_or_else(|e| panic!("{e}")),
                r.try_get("status").unwrap_or_else(|e| panic!("{e}")),
                r.try_get("map_id").unwrap_or_else(|e| panic!("{e}")),
                serde_json::from_str(&sent).unwrap_or_else(|e| panic!("{e}")),
                r.try_get("withheld").unwrap_or_else(|e| panic!("{e}")),
            )
        })
        .collect()
}

/// Wait until `push`'s log in `run` has a line containing `needle` (log lines are written in
/// batches, shortly after).
async fn logged(store: &Store, run: Uuid, needle: &str) {
    support::eventually(
        &format!("push's log to say {needle:?}"),
        Duration::from_secs(10),
        || async {
            task_log(store, run, "push")
                .await
                .0
                .iter()
                .any(|l| l.contains(needle))
                .then_some(())
        },
    )
    .await;
}

async fn run_to_end(d: &Drover<'_>, store: &Store, dag: &str) -> (Uuid, RunState) {
    synced(store, dag).await;
    let run = trigger(d, dag, "dev", &[]);
    let row = support::wait_finished(store, run, Duration::from_secs(60)).await;
    (run, row.state)
}

/// 168 rows over 49 new emails (as in the issue): row `g` has `email` new{g % 49} and
/// `firstName` "row g".
const REPEATS: &str = "select 'new' || (g % 49) || '@race.example' as email, 'row ' || g as \"firstName\" from generate_series(1, 168) g";

#[test]
fn repeated_new_keys_are_refused_by_default_and_sent_once_each_with_on_duplicate_key_last() {
    init_tls();
    let _turn = serial();
    let rt = runtime();
    let db = TestDb::new(&server_url());
    let ws = Workspace::new();
    rt.block_on(async {
        let faults: FaultProfile = "upsert-race".parse().unwrap_or_else(|e| panic!("{e}"));
        let map = start_sandbox(LEADS, 5, CLIENT_ID, SECRET, faults).await;
        let base = map.base_url();
        ws.map_environment(&base, CLIENT_ID, SECRET, Some(10_000));
        let fields = "fields: [firstName], mode: sync, batch_size: 10";
        ws.dag("strict", &return_dag("strict", REPEATS, fields));
        ws.dag(
            "last",
            &return_dag(
                "last",
                REPEATS,
                &format!("{fields}, on_duplicate_key: last"),
            ),
        );
        let d = Drover { db: &db, ws: &ws };
        d.ok(&["db", "migrate"]);
        let _s = d.scheduler("scheduler");
        let w = d.worker("worker", 2, 10.0);
        let store = db.store().await;

        // By default the task fails, naming the keys, and nothing reaches the MAP.
        reset_calls(&base).await;
        let (run, state) = run_to_end(&d, &store, "strict").await;
        assert_eq!(state, RunState::Failed, "{}", w.log());
        let (_, tries) = task_log(&store, run, "push").await;
        assert_eq!(tries.len(), 1, "not retried: {tries:?}");
        let error = tries[0].2.clone().unwrap_or_default();
        assert!(
            error.contains("repeats 49 lookup keys (email) over 168 rows")
                && error.contains("new10@race.example ×4, new11@race.example ×4")
                && error.contains("on_duplicate_key: first"),
            "{error}"
        );
        let stats = admin(&base, "/_sandbox/stats").await;
        assert_eq!(stats["writes"], 0, "{stats}");
        assert_eq!(stats["leads"], LEADS, "{stats}");
        assert!(
            calls(&base)
                .await
                .iter()
                .all(|c| !c.contains("/leads.json")),
            "no lead call at all"
        );

        // `last`: one lead per key despite the race, each receipt row pointing at its own.
        reset_calls(&base).await;
        let (run, state) = run_to_end(&d, &store, "last").await;
        assert_eq!(state, RunState::Success, "{}", w.log());
        let stats = admin(&base, "/_sandbox/stats").await;
        assert_eq!(stats["leads"], LEADS + 49, "{stats}");
        let rows = receipt(&store, run).await;
        assert_eq!(rows.len(), 49);
        let mut ids = Vec::new();
        for (key, status, map_id, sent, _) in &rows {
            assert_eq!(status, "accepted", "{key}");
            let id = map_id.unwrap_or_else(|| panic!("{key} has no map_id"));
            let k: i64 = key
                .trim_start_matches("new")
                .trim_end_matches("@race.example")
                .parse()
                .unwrap_or_else(|e| panic!("{key}: {e}"));
            let last = (1..=168).filter(|g| g % 49 == k).max().unwrap_or(0);
            let lead = admin(&base, &format!("/_sandbox/leads/{id}")).await;
            assert_eq!(lead["email"], key.as_str(), "{lead}");
            assert_eq!(lead["firstName"], format!("row {last}"), "{lead}");
            assert_eq!(sent["firstName"], format!("row {last}"));
            ids.push(id);
        }
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), 49, "one lead per key");
        // Every read of the values before came before the first write.
        let log = calls(&base).await;
        let first_sync = log.iter().position(|c| c == SYNC);
        let last_read = log.iter().rposition(|c| is_read(c));
        assert!(
            first_sync.zip(last_read).is_some_and(|(s, r)| r < s),
            "{log:?}"
        );
        assert_eq!(log.iter().filter(|c| *c == SYNC).count(), 5, "{log:?}");
        logged(
            &store,
            run,
            "49 lookup keys repeat: kept the last row of each, 119 rows not sent",
        )
        .await;
        map.shutdown().await;
    });
}

#[test]
fn a_revert_restores_the_values_before_the_return_and_leaves_what_it_created() {
    init_tls();
    let _turn = serial();
    let rt = runtime();
    let db = TestDb::new(&server_url());
    let ws = Workspace::new();
    rt.block_on(async {
        let faults: FaultProfile = "upsert-race".parse().unwrap_or_else(|e| panic!("{e}"));
        let map = start_sandbox(LEADS, 6, CLIENT_ID, SECRET, faults).await;
        let base = map.base_url();
        for i in 1..=2 {
            set_lead(
                &base,
                i,
                json!({"email": format!("kept{i}@edge.example"), "firstName": format!("Before{i}")}),
            )
            .await;
        }
        ws.map_environment(&base, CLIENT_ID, SECRET, Some(10_000));
        // Two existing leads written several times over, and a new one twice, two per call.
        let select = "select * from (values ('kept1@edge.example', 'W1a'), ('fresh@edge.example', 'F1'), \
                      ('KEPT1@edge.example ', 'W1b'), ('kept2@edge.example', 'W2a'), ('fresh@edge.example', 'F2'), \
                      ('kept1@edge.example', 'W1c'), ('kept2@edge.example', 'W2b')) v(email, \"firstName\")";
        ws.dag(
            "again",
            &return_dag(
                "again",
                select,
                "fields: [firstName], mode: sync, batch_size: 2, on_duplicate_key: last",
            ),
        );
        let d = Drover { db: &db, ws: &ws };
        d.ok(&["db", "migrate"]);
        let _s = d.scheduler("scheduler");
        let w = d.worker("worker", 2, 10.0);
        let store = db.store().await;
        let (run, state) = run_to_end(&d, &store, "again").await;
        assert_eq!(state, RunState::Success, "{}", w.log());
        assert_eq!(admin(&base, "/_sandbox/leads/1").await["firstName"], "W1c");
        assert_eq!(admin(&base, "/_sandbox/leads/2").await["firstName"], "W2b");
        let stats = admin(&base, "/_sandbox/stats").await;
        assert_eq!(stats["leads"], LEADS + 1, "one new lead: {stats}");
        let rows = receipt(&store, run).await;
        let keys: Vec<&str> = rows.iter().map(|r| r.0.as_str()).collect();
        assert_eq!(
            keys,
            vec![
                "fresh@edge.example",
                "kept1@edge.example",
                "kept2@edge.example"
            ]
        );
        assert_eq!(rows[1].2, Some(1));
        assert_eq!(rows[2].2, Some(2));

        let out = d.ok(&["tasks", "revert", &run.to_string(), "push", "--wait"]);
        assert!(
            out.contains("restored 2 record(s); 0 skipped (changed since); 0 refused; 1 created by the return left in place"),
            "{out}"
        );
        assert_eq!(
            admin(&base, "/_sandbox/leads/1").await["firstName"],
            "Before1"
        );
        assert_eq!(
            admin(&base, "/_sandbox/leads/2").await["firstName"],
            "Before2"
        );
        map.shutdown().await;
    });
}

#[test]
fn a_null_never_overwrites_a_value_by_default_and_unchanged_records_are_not_sent() {
    init_tls();
    let _turn = serial();
    let rt = runtime();
    let db = TestDb::new(&server_url());
    let ws = Workspace::new();
    rt.block_on(async {
        let map = start_sandbox(LEADS, 8, CLIENT_ID, SECRET, FaultProfile::default()).await;
        let base = map.base_url();
        set_lead(
            &base,
            1,
            json!({"email": "narnia@edge.example", "country": "Narnia", "firstName": "Ann", "leadScore": 50}),
        )
        .await;
        set_lead(
            &base,
            2,
            json!({"email": "oz@edge.example", "country": "Oz", "firstName": "Bob", "leadScore": 7}),
        )
        .await;
        ws.map_environment(&base, CLIENT_ID, SECRET, Some(10_000));
        // Lead 1: no country (null), a new first name. Lead 2: the values it has, written
        // differently (the email's case, the score as text).
        let select = "select * from (values ('narnia@edge.example', null::text, 'Ann2', 50::bigint::text), \
                      (' OZ@edge.example', 'Oz', 'Bob', '7')) v(email, country, \"firstName\", \"leadScore\")";
        let fields = "fields: [country, firstName, leadScore], mode: sync";
        ws.dag("keep", &return_dag("keep", select, fields));
        ws.dag(
            "clear",
            &return_dag("clear", select, &format!("{fields}, write_nulls: true")),
        );
        let d = Drover { db: &db, ws: &ws };
        d.ok(&["db", "migrate"]);
        let _s = d.scheduler("scheduler");
        let w = d.worker("worker", 2, 10.0);
        let store = db.store().await;

        let (run, state) = run_to_end(&d, &store, "keep").await;
        assert_eq!(state, RunState::Success, "{}", w.log());
        let lead = admin(&base, "/_sandbox/leads/1").await;
        assert_eq!(lead["country"], "Narnia", "{lead}");
        assert_eq!(lead["firstName"], "Ann2", "{lead}");
        let rows = receipt(&store, run).await;
        assert_eq!(rows[0].0, "narnia@edge.example");
        assert_eq!(rows[0].1, "accepted");
        assert_eq!(rows[0].4, Some(vec!["country".to_owned()]), "withheld");
        assert_eq!(
            rows[0].3,
            json!({"email": "narnia@edge.example", "firstName": "Ann2"}),
            "only what changes is sent"
        );
        assert_eq!(rows[1].0, "oz@edge.example");
        assert_eq!(rows[1].1, "unchanged");
        assert_eq!(rows[1].2, Some(2), "the map_id of an unchanged record");
        logged(
            &store,
            run,
            "sending 1 of 2 rows: 1 unchanged, 1 nulls withheld",
        )
        .await;
        let shown = d.ok(&["runs", "show", &run.to_string()]);
        assert!(
            shown.contains("1 lead updated in Marketo · 1 lead unchanged, not sent"),
            "{shown}"
        );
        assert!(!shown.contains("warning:"), "unchanged is no warning: {shown}");

        // The same dataset again: every record holds its values, nothing is sent.
        reset_calls(&base).await;
        let (run, state) = run_to_end(&d, &store, "keep").await;
        assert_eq!(state, RunState::Success, "{}", w.log());
        let log = calls(&base).await;
        assert!(log.iter().any(|c| is_read(c)), "{log:?}");
        assert!(!log.iter().any(|c| c == SYNC), "no sync call: {log:?}");
        let rows = receipt(&store, run).await;
        assert!(rows.iter().all(|r| r.1 == "unchanged"), "{rows:?}");
        let shown = d.ok(&["runs", "show", &run.to_string()]);
        assert!(
            shown.contains("summary:   2 leads unchanged, not sent") && !shown.contains("updated"),
            "{shown}"
        );
        // A revert of it has nothing to restore.
        let out = d.ok(&["tasks", "revert", &run.to_string(), "push", "--wait"]);
        assert!(out.contains("restored 0 record(s)") && out.contains("2 never written"), "{out}");

        // With write_nulls the null clears the value.
        let (_, state) = run_to_end(&d, &store, "clear").await;
        assert_eq!(state, RunState::Success, "{}", w.log());
        let lead = admin(&base, "/_sandbox/leads/1").await;
        assert_eq!(lead["country"], Value::Null, "{lead}");
        map.shutdown().await;
    });
}

#[test]
fn a_bulk_import_sends_only_the_fields_it_writes_and_records_map_ids_from_the_snapshot() {
    init_tls();
    let _turn = serial();
    let rt = runtime();
    let db = TestDb::new(&server_url());
    let ws = Workspace::new();
    rt.block_on(async {
        let map = start_sandbox(LEADS, 9, CLIENT_ID, SECRET, FaultProfile::default()).await;
        let base = map.base_url();
        set_lead(
            &base,
            3,
            json!({"email": "narnia@import.example", "country": "Narnia", "firstName": "Ann"}),
        )
        .await;
        ws.map_environment(&base, CLIENT_ID, SECRET, Some(10_000));
        // An existing lead without a country in the dataset, a new one, and a row without a key.
        let select = "select * from (values ('narnia@import.example', null::text, 'Ann2'), \
                      ('new@import.example', null::text, 'Neo'), (null::text, 'Oz', 'Nobody')) \
                      v(email, country, \"firstName\")";
        ws.dag(
            "bulk",
            &return_dag("bulk", select, "fields: [country, firstName], mode: import"),
        );
        let d = Drover { db: &db, ws: &ws };
        d.ok(&["db", "migrate"]);
        let _s = d.scheduler("scheduler");
        let w = d.worker("worker", 2, 10.0);
        let store = db.store().await;
        let (run, state) = run_to_end(&d, &store, "bulk").await;
        assert_eq!(state, RunState::Success, "{}", w.log());
        let lead = admin(&base, "/_sandbox/leads/3").await;
        assert_eq!(lead["country"], "Narnia", "{lead}");
        assert_eq!(lead["firstName"], "Ann2", "{lead}");
        let stats = admin(&base, "/_sandbox/stats").await;
        assert_eq!(stats["leads"], LEADS + 1, "{stats}");
        assert_eq!(stats["writesByVia"]["import"], 2, "{stats}");
        let rows = receipt(&store, run).await;
        // Keys sort nulls last: narnia, new, then the row without a key.
        assert_eq!(rows.len(), 3, "{rows:?}");
        assert_eq!(
            (rows[0].0.as_str(), rows[0].1.as_str(), rows[0].2),
            ("narnia@import.example", "accepted", Some(3))
        );
        assert_eq!(rows[0].4, Some(vec!["country".to_owned()]));
        assert_eq!(
            (rows[1].0.as_str(), rows[1].1.as_str(), rows[1].2),
            ("new@import.example", "accepted", None),
            "a lead the import created has no id to record"
        );
        assert_eq!(rows[2].1, "rejected");
        logged(
            &store,
            run,
            "sending 2 of 3 rows: 0 unchanged, 1 nulls withheld, 1 without a `email` (rejected)",
        )
        .await;
        let shown = d.ok(&["runs", "show", &run.to_string()]);
        assert!(
            shown.contains("1 lead updated in Marketo · 1 lead created in Marketo · 1 rejected"),
            "{shown}"
        );
        map.shutdown().await;
    });
}

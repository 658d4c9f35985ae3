//! Webhooks against real processes: `drover web`, a scheduler and a worker on a real
//! Postgres, events posted over HTTP to `/hooks/{env}/{dag}/{name}`. An accepted event
//! answers 202 with its ids and runs with its payload in `{{ event }}` and its rows in
//! `{{ events }}`; bearer and signed posts are accepted, a wrong secret (PROD's in DEV too),
//! an unknown hook, a body that is no JSON or too big are refused and record nothing; a
//! repeated idempotency key (header or pointer) answers the same ids; batches gather N
//! events into one run and a short `max_wait` starts its run on time; a pause or maintenance
//! answers 503 with `Retry-After` and keep the event (its run starts after), a full queue
//! refuses with 429 and `Retry-After`; 1,000 events fill at most three runs with every
//! event a row, and a command task gets `{{ event }}` in its environment (as data, never
//! shell text); and a `kill -9` of web and scheduler during a flood loses no event
//! answered 202 and runs none twice.

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use drover_store::{RunState, Store};
use reqwest::StatusCode;
use serde_json::{Value, json};
use support::web::{client, free_port, wait_until_ok};
use support::{
    Drover, Proc, TestDb, Workspace, eventually, runtime, serial, server_url, wait_finished,
};
use uuid::Uuid;

const LONG: Duration = Duration::from_secs(60);
const DEV_SECRET: &str = "dev-hook-secret-7f3a";
const PROD_SECRET: &str = "prod-hook-secret-91c2";

const CONTACT: &str = r#"id: contact
triggers:
  - webhook: { name: form, secret: form_hook, idempotency_key: /fillId }
  - webhook: { name: leads, secret: form_hook, rows: /leads, batch: { max_events: 3, max_wait: 1h } }
  - webhook: { name: soon, secret: form_hook, batch: { max_events: 1000, max_wait: 1s } }
tasks:
  - id: stage
    retries: 0
    sql: |
      create table {{ output }} as
      select e.event_id, e.received_at, e.payload, {{ event.email }}::text as first_email
      from {{ events }} e
"#;

/// dev and prod, each with its own `form_hook` secret in a file (`max_waiting` in dev when
/// given); DAG `contact`.
fn workspace(max_waiting: Option<u32>) -> Workspace {
    let ws = Workspace::new();
    for (env, order, secret) in [("dev", 1, DEV_SECRET), ("prod", 2, PROD_SECRET)] {
        let file = ws.path().join(format!("{env}-hook"));
        std::fs::write(&file, format!("{secret}\n")).unwrap_or_else(|e| panic!("{e}"));
        let branch = if env == "dev" { "branch: main\n" } else { "" };
        let events = match max_waiting {
            Some(n) if env == "dev" => format!("events: {{ max_waiting: {n} }}\n"),
            _ => String::new(),
        };
        std::fs::write(
            ws.environments().join(format!("{env}.yaml")),
            format!(
                "name: {env}\norder: {order}\n{branch}map:\n  kind: marketo\n  base_url: http://127.0.0.1:9\n  client_id: {{ env: X_ID }}\n  client_secret: {{ env: X_SECRET }}\nsecrets:\n  form_hook: {{ file: {} }}\n{events}",
                file.display()
            ),
        )
        .unwrap_or_else(|e| panic!("{e}"));
    }
    ws.dag("contact", CONTACT);
    ws
}

async fn web(d: &Drover<'_>) -> (Proc, String) {
    let listen = format!("127.0.0.1:{}", free_port());
    let proc = d.spawn("web", &["web", "--listen", &listen]);
    let base = format!("http://{listen}");
    wait_until_ok(&format!("{base}/healthz"), LONG).await;
    (proc, base)
}

async fn ready(store: &Store) {
    for env in ["dev", "prod"] {
        eventually(&format!("contact in {env}"), LONG, || async {
            store.dag_env("contact", env).await.ok()
        })
        .await;
    }
}

fn signature(secret: &str, body: &[u8]) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes());
    let tag = ring::hmac::sign(&key, body);
    let hex: String = tag.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256={hex}")
}

struct Reply {
    status: StatusCode,
    retry_after: Option<String>,
    body: Value,
}

impl Reply {
    fn id(&self, field: &str) -> Uuid {
        self.body[field]
            .as_str()
            .and_then(|s| Uuid::parse_str(s).ok())
            .unwrap_or_else(|| panic!("no {field} in {}", self.body))
    }
}

/// POST `body` to `path` with `headers`.
async fn post(base: &str, path: &str, headers: &[(&str, &str)], body: Vec<u8>) -> Reply {
    let mut req = client().post(format!("{base}{path}")).body(body);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let res = req.send().await.unwrap_or_else(|e| panic!("{path}: {e}"));
    let status = res.status();
    let retry_after = res
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let text = res.text().await.unwrap_or_default();
    Reply {
        status,
        retry_after,
        body: serde_json::from_str(&text).unwrap_or(Value::String(text)),
    }
}

/// POST JSON with the bearer `secret` (and an `Idempotency-Key` when given).
async fn send(base: &str, path: &str, secret: &str, key: Option<&str>, body: &Value) -> Reply {
    let bearer = format!("Bearer {secret}");
    let mut h = vec![
        ("content-type", "application/json"),
        ("authorization", bearer.as_str()),
    ];
    if let Some(k) = key {
        h.push(("idempotency-key", k));
    }
    post(base, path, &h, body.to_string().into_bytes()).await
}

async fn events(store: &Store) -> i64 {
    sqlx::query_scalar("select count(*) from event")
        .fetch_one(store.pool())
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

async fn runs(store: &Store) -> i64 {
    sqlx::query_scalar("select count(*) from dag_run")
        .fetch_one(store.pool())
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

/// The rows `stage` staged in `run`: (event id, payload, first email), in order.
async fn staged(store: &Store, run: Uuid) -> Vec<(Uuid, Value, String)> {
    let d = store
        .dataset(run, "stage", "output")
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|| panic!("run {run} staged nothing"));
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "select event_id, payload, first_email from {} order by received_at, event_id, payload::text",
        d.relation()
    )))
    .fetch_all(store.pool())
    .await
    .unwrap_or_else(|e| panic!("{e}"))
}

async fn succeeded(store: &Store, run: Uuid) {
    let r = wait_finished(store, run, LONG).await;
    assert_eq!(r.state, RunState::Success, "run {run}: {r:?}");
}

#[test]
fn a_posted_event_runs_with_its_payload_and_refusals_record_nothing() {
    let _turn = serial();
    let db = TestDb::new(&server_url());
    let ws = workspace(None);
    let d = Drover { db: &db, ws: &ws };
    d.ok(&["db", "migrate"]);
    let _s = d.scheduler("scheduler");
    let _w = d.worker("worker", 4, 5.0);
    runtime().block_on(async {
        let store = db.store().await;
        ready(&store).await;
        let (_web, base) = web(&d).await;
        let base = base.as_str();
        let form = "/hooks/dev/contact/form";

        // Bearer: 202 once committed, and the run sees the payload.
        let fill = json!({ "fillId": "f-1", "email": "ada@example.com", "company": "Acme" });
        let r = send(base, form, DEV_SECRET, None, &fill).await;
        assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
        assert_eq!(r.body["duplicate"], json!(false));
        let (event, run) = (r.id("event_id"), r.id("run_id"));
        let recorded = store.event(event).await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(recorded.run_id, Some(run));
        assert_eq!(recorded.payload, fill);
        succeeded(&store, run).await;
        let rows = staged(&store, run).await;
        assert_eq!(
            rows,
            vec![(event, fill.clone(), "ada@example.com".to_owned())]
        );

        // The events table is readable by dev's SQL role, not by prod's.
        let relation = drover_engine::data::events_dataset::events_relation("dev", run);
        let may = |role: &'static str| {
            let (store, relation) = (store.clone(), relation.clone());
            async move {
                sqlx::query_scalar::<_, bool>("select has_table_privilege($1, $2, 'select')")
                    .bind(role)
                    .bind(relation)
                    .fetch_one(store.pool())
                    .await
                    .unwrap_or_else(|e| panic!("{e}"))
            }
        };
        assert!(may("drover_sql_dev").await);
        assert!(!may("drover_sql_prod").await);

        // Signed with HMAC-SHA256 of the raw body: accepted too.
        let body = json!({ "fillId": "f-2", "email": "bob@example.com" }).to_string();
        let sig = signature(DEV_SECRET, body.as_bytes());
        let r = post(
            base,
            form,
            &[
                ("content-type", "application/json"),
                ("x-drover-signature", &sig),
            ],
            body.clone().into_bytes(),
        )
        .await;
        assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
        succeeded(&store, r.id("run_id")).await;

        // Refusals record nothing.
        let (events_before, runs_before) = (events(&store).await, runs(&store).await);
        let other = json!({ "email": "eve@example.com" });
        let wrong = send(base, form, "not-the-secret", None, &other).await;
        assert_eq!(wrong.status, StatusCode::UNAUTHORIZED, "{}", wrong.body);
        let none = post(
            base,
            form,
            &[("content-type", "application/json")],
            other.to_string().into_bytes(),
        )
        .await;
        assert_eq!(none.status, StatusCode::UNAUTHORIZED);
        let forged = signature("not-the-secret", body.as_bytes());
        let r = post(
            base,
            form,
            &[
                ("content-type", "application/json"),
                ("x-drover-signature", &forged),
            ],
            body.clone().into_bytes(),
        )
        .await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
        // The environment boundary: PROD's secret does not open DEV's hook, nor DEV's PROD's.
        let cross = send(base, form, PROD_SECRET, None, &other).await;
        assert_eq!(cross.status, StatusCode::UNAUTHORIZED, "{}", cross.body);
        let cross = send(base, "/hooks/prod/contact/form", DEV_SECRET, None, &other).await;
        assert_eq!(cross.status, StatusCode::UNAUTHORIZED, "{}", cross.body);
        assert_eq!(
            send(base, "/hooks/dev/nope/form", DEV_SECRET, None, &other)
                .await
                .status,
            StatusCode::NOT_FOUND
        );
        let unknown = send(base, "/hooks/dev/contact/nope", DEV_SECRET, None, &other).await;
        assert_eq!(unknown.status, StatusCode::NOT_FOUND);
        assert!(
            unknown.body["error"]["message"]
                .as_str()
                .unwrap_or_default()
                .contains("no webhook `nope`"),
            "{}",
            unknown.body
        );
        let bearer = format!("Bearer {DEV_SECRET}");
        let text = post(
            base,
            form,
            &[("content-type", "text/plain"), ("authorization", &bearer)],
            b"hello".to_vec(),
        )
        .await;
        assert_eq!(
            text.status,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "{}",
            text.body
        );
        let broken = post(
            base,
            form,
            &[
                ("content-type", "application/json"),
                ("authorization", &bearer),
            ],
            b"{\"email\":".to_vec(),
        )
        .await;
        assert_eq!(broken.status, StatusCode::BAD_REQUEST, "{}", broken.body);
        assert!(
            broken.body["error"]["message"]
                .as_str()
                .unwrap_or_default()
                .starts_with("the body must be JSON")
        );
        let big = json!({ "blob": "x".repeat(1024 * 1024 + 1) })
            .to_string()
            .into_bytes();
        let big = post(
            base,
            form,
            &[
                ("content-type", "application/json"),
                ("authorization", &bearer),
            ],
            big,
        )
        .await;
        assert_eq!(big.status, StatusCode::PAYLOAD_TOO_LARGE, "{}", big.body);
        assert_eq!(
            events(&store).await,
            events_before,
            "a refused post recorded an event"
        );
        assert_eq!(runs(&store).await, runs_before, "a refused post made a run");

        // PROD's hook with PROD's secret.
        let r = send(base, "/hooks/prod/contact/form", PROD_SECRET, None, &other).await;
        assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
        succeeded(&store, r.id("run_id")).await;

        // A repeated key — the header, or the trigger's pointer — answers the same ids.
        let before = events(&store).await;
        let once = send(
            base,
            form,
            DEV_SECRET,
            Some("k-77"),
            &json!({ "email": "a@x.io" }),
        )
        .await;
        let again = send(
            base,
            form,
            DEV_SECRET,
            Some("k-77"),
            &json!({ "email": "different" }),
        )
        .await;
        assert_eq!(
            (once.status, again.status),
            (StatusCode::ACCEPTED, StatusCode::OK)
        );
        assert_eq!(
            (again.id("event_id"), again.id("run_id")),
            (once.id("event_id"), once.id("run_id"))
        );
        assert_eq!(again.body["duplicate"], json!(true));
        let fill = json!({ "fillId": "f-9", "email": "c@x.io" });
        let once = send(base, form, DEV_SECRET, None, &fill).await;
        let again = send(base, form, DEV_SECRET, None, &fill).await;
        assert_eq!(
            (once.status, again.status),
            (StatusCode::ACCEPTED, StatusCode::OK)
        );
        assert_eq!(
            (again.id("event_id"), again.id("run_id")),
            (once.id("event_id"), once.id("run_id"))
        );
        assert_eq!(events(&store).await, before + 2, "one event per key");
        assert_eq!(
            store
                .event(once.id("event_id"))
                .await
                .map(|e| e.idempotency_key)
                .ok()
                .flatten()
                .as_deref(),
            Some("f-9")
        );
    });
}

#[test]
fn batches_gather_events_into_one_run_and_a_short_wait_starts_on_time() {
    let _turn = serial();
    let db = TestDb::new(&server_url());
    let ws = workspace(None);
    let d = Drover { db: &db, ws: &ws };
    d.ok(&["db", "migrate"]);
    // A long tick: only the wake at `batch_until` can start the short batch on time.
    let _s = d.spawn(
        "scheduler",
        &["scheduler", "--tick-ms", "10000", "--sync-secs", "1"],
    );
    let _w = d.worker("worker", 4, 5.0);
    runtime().block_on(async {
        let store = db.store().await;
        ready(&store).await;
        let (_web, base) = web(&d).await;
        let base = base.as_str();

        // Three events of two leads each: one run (max_events 3), six rows in `events`.
        let mut answers = Vec::new();
        for n in 0..3 {
            let body = json!({ "n": n, "email": format!("first{n}@x.io"), "leads": [{ "n": n, "i": 0 }, { "n": n, "i": 1 }] });
            let r = send(base, "/hooks/dev/contact/leads", DEV_SECRET, None, &body).await;
            assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
            answers.push(r);
        }
        let run = answers[0].id("run_id");
        assert!(answers.iter().all(|a| a.id("run_id") == run), "one run for the batch");
        succeeded(&store, run).await;
        let rows = staged(&store, run).await;
        assert_eq!(rows.len(), 6, "{rows:?}");
        for (i, (event, payload, first)) in rows.iter().enumerate() {
            assert_eq!(*event, answers[i / 2].id("event_id"));
            assert_eq!(*payload, json!({ "n": i / 2, "i": i % 2 }));
            assert_eq!(first, "first0@x.io", "{{ event }} is the batch's first event");
        }

        // `max_wait: 1s`: its run starts about a second after its first event.
        let r = send(base, "/hooks/dev/contact/soon", DEV_SECRET, None, &json!({ "email": "s@x.io" })).await;
        assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
        let run = r.id("run_id");
        succeeded(&store, run).await;
        let late_ms: f64 = sqlx::query_scalar(
            "select extract(epoch from (started_at - batch_until))::float8 * 1000 from dag_run where id = $1",
        )
        .bind(run)
        .fetch_one(store.pool())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
        assert!((0.0..=150.0).contains(&late_ms), "started {late_ms:.0} ms after batch_until");
    });
}

#[test]
fn a_pause_or_maintenance_keeps_the_event_with_503_and_a_full_queue_refuses_with_429() {
    let _turn = serial();
    let db = TestDb::new(&server_url());
    let ws = workspace(Some(2));
    let d = Drover { db: &db, ws: &ws };
    d.ok(&["db", "migrate"]);
    let _s = d.scheduler("scheduler");
    let _w = d.worker("worker", 4, 5.0);
    runtime().block_on(async {
        let store = db.store().await;
        ready(&store).await;
        let (_web, base) = web(&d).await;
        let base = base.as_str();
        let leads = "/hooks/dev/contact/leads";

        // Two events wait in a gathering batch: the third is refused, a repeat still answered.
        let first = send(base, leads, DEV_SECRET, Some("a"), &json!({ "n": 1 })).await;
        assert_eq!(first.status, StatusCode::ACCEPTED, "{}", first.body);
        assert_eq!(
            send(base, leads, DEV_SECRET, Some("b"), &json!({ "n": 2 }))
                .await
                .status,
            StatusCode::ACCEPTED
        );
        let (events_before, runs_before) = (events(&store).await, runs(&store).await);
        let full = send(base, leads, DEV_SECRET, Some("c"), &json!({ "n": 3 })).await;
        assert_eq!(full.status, StatusCode::TOO_MANY_REQUESTS, "{}", full.body);
        assert!(full.retry_after.is_some(), "429 without Retry-After");
        assert!(
            full.body["error"]["message"]
                .as_str()
                .unwrap_or_default()
                .contains("max_waiting"),
            "{}",
            full.body
        );
        let repeat = send(base, leads, DEV_SECRET, Some("a"), &json!({ "n": 1 })).await;
        assert_eq!(repeat.status, StatusCode::OK, "{}", repeat.body);
        assert_eq!(repeat.id("event_id"), first.id("event_id"));
        // The limit is per environment: prod takes them.
        assert_eq!(
            send(
                base,
                "/hooks/prod/contact/leads",
                PROD_SECRET,
                None,
                &json!({ "n": 3 })
            )
            .await
            .status,
            StatusCode::ACCEPTED
        );
        let (events_before, runs_before) = (events_before + 1, runs_before + 1);
        assert_eq!(
            (events(&store).await, runs(&store).await),
            (events_before, runs_before)
        );

        // Paused in prod: 503 with Retry-After, and the event is kept: its run waits for the
        // unpause (a form's "Call Webhook" does not retry; a lost fill is a lost lead).
        assert!(
            store
                .set_paused("contact", "prod", true, "test")
                .await
                .unwrap_or_else(|e| panic!("{e}"))
        );
        let paused = send(
            base,
            "/hooks/prod/contact/form",
            PROD_SECRET,
            None,
            &json!({ "n": 4, "email": "held@example.com" }),
        )
        .await;
        assert_eq!(
            paused.status,
            StatusCode::SERVICE_UNAVAILABLE,
            "{}",
            paused.body
        );
        assert!(paused.retry_after.is_some());
        assert!(
            paused.body["held"]
                .as_str()
                .unwrap_or_default()
                .contains("paused"),
            "{}",
            paused.body
        );
        let paused_run = paused.id("run_id");
        assert_eq!(
            (events(&store).await, runs(&store).await),
            (events_before + 1, runs_before + 1),
            "the event held by the pause was not kept"
        );
        assert_eq!(
            store
                .get_run(paused_run)
                .await
                .unwrap_or_else(|e| panic!("{e}"))
                .state,
            RunState::Queued
        );
        assert!(
            store
                .set_paused("contact", "prod", false, "test")
                .await
                .unwrap_or_else(|e| panic!("{e}"))
        );
        succeeded(&store, paused_run).await;

        // Maintenance: 503 with Retry-After until its end, the event kept; its run starts when
        // maintenance ends.
        let until = chrono::Utc::now() + chrono::Duration::minutes(10);
        store
            .start_maintenance("upgrading", Some(until), "test")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let m = send(
            base,
            "/hooks/prod/contact/form",
            PROD_SECRET,
            Some("m-1"),
            &json!({ "n": 5, "email": "kept@example.com" }),
        )
        .await;
        assert_eq!(m.status, StatusCode::SERVICE_UNAVAILABLE, "{}", m.body);
        let secs: i64 = m
            .retry_after
            .as_deref()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        assert!(secs >= 500, "Retry-After {secs}");
        assert!(
            m.body["held"]
                .as_str()
                .unwrap_or_default()
                .contains("maintenance"),
            "{}",
            m.body
        );
        // A sender that retries with the same key gets the same event, still held.
        let again = send(
            base,
            "/hooks/prod/contact/form",
            PROD_SECRET,
            Some("m-1"),
            &json!({ "n": 5, "email": "kept@example.com" }),
        )
        .await;
        assert_eq!(
            again.status,
            StatusCode::SERVICE_UNAVAILABLE,
            "{}",
            again.body
        );
        assert_eq!(again.id("event_id"), m.id("event_id"));
        assert_eq!(again.body["duplicate"], json!(true));
        assert_eq!(
            (events(&store).await, runs(&store).await),
            (events_before + 2, runs_before + 2),
            "the event held by maintenance was not kept, or kept twice"
        );
        let held_run = m.id("run_id");
        assert_eq!(
            store
                .get_run(held_run)
                .await
                .unwrap_or_else(|e| panic!("{e}"))
                .state,
            RunState::Queued
        );
        store
            .end_maintenance("test")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        succeeded(&store, held_run).await;
    });
}

#[test]
fn a_thousand_events_fill_at_most_three_runs_and_a_command_task_reads_its_event() {
    let _turn = serial();
    let db = TestDb::new(&server_url());
    let ws = workspace(None);
    let told = ws.path().join("told");
    ws.dag(
        "bulk",
        &format!(
            r#"id: bulk
max_active_runs: 4
triggers:
  - webhook: {{ name: form, secret: form_hook, batch: {{ max_events: 500, max_wait: 1m }} }}
tasks:
  - id: stage
    retries: 0
    sql: |
      create table {{{{ output }}}} as
      select e.event_id, e.received_at, e.payload, {{{{ event.email }}}}::text as first_email
      from {{{{ events }}}} e
  - id: tell
    retries: 0
    command: {{ shell: 'printf "%s\n" "$EMAIL" >> "$OUT"', env: {{ EMAIL: "{{{{ event.email }}}}", OUT: "{}" }} }}
"#,
            told.display()
        ),
    );
    let d = Drover { db: &db, ws: &ws };
    d.ok(&["db", "migrate"]);
    let _s = d.scheduler("scheduler");
    let _w = d.worker("worker", 4, 5.0);
    runtime().block_on(async {
        let store = db.store().await;
        eventually("bulk in dev", LONG, || async {
            store.dag_env("bulk", "dev").await.ok()
        })
        .await;
        let (_web, base) = web(&d).await;
        // 1,000 events from 8 concurrent senders; a hostile-looking email stays data.
        let mut senders = tokio::task::JoinSet::new();
        for s in 0..8 {
            let base = base.clone();
            senders.spawn(async move {
                let mut got = Vec::new();
                for n in 0..125 {
                    let email = format!("{s}-{n}'; drop table event; --@x.io");
                    let r = send(
                        &base,
                        "/hooks/dev/bulk/form",
                        DEV_SECRET,
                        None,
                        &json!({ "email": email, "n": n }),
                    )
                    .await;
                    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
                    got.push((r.id("event_id"), r.id("run_id")));
                }
                got
            });
        }
        let mut answers = Vec::new();
        while let Some(got) = senders.join_next().await {
            answers.extend(got.unwrap_or_else(|e| panic!("{e}")));
        }
        assert_eq!(answers.len(), 1000);
        let mut runs: Vec<Uuid> = answers.iter().map(|(_, r)| *r).collect();
        runs.sort();
        runs.dedup();
        assert!(runs.len() <= 3, "1,000 events made {} runs", runs.len());
        let mut rows = 0;
        let mut firsts = Vec::new();
        for run in &runs {
            succeeded(&store, *run).await;
            let staged = staged(&store, *run).await;
            rows += staged.len();
            firsts.push(staged[0].2.clone());
        }
        assert_eq!(rows, 1000, "every event is a row of its run's `events`");
        // The command task got its run's first event's email in its environment, as data.
        let text = std::fs::read_to_string(&told).unwrap_or_else(|e| panic!("{e}"));
        let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
        lines.sort();
        firsts.sort();
        assert_eq!(lines, firsts);
        assert!(
            lines
                .iter()
                .all(|l| l.contains("'; drop table event; --@x.io")),
            "{lines:?}"
        );
        assert_eq!(events(&store).await, 1000);
    });
}

#[test]
fn killing_web_and_scheduler_during_a_flood_loses_no_accepted_event() {
    let _turn = serial();
    let db = TestDb::new(&server_url());
    let ws = workspace(None);
    ws.dag(
        "flood",
        "id: flood\nmax_active_runs: 16\ntriggers:\n  - webhook: { name: form, secret: form_hook }\ntasks:\n  - id: a\n    retries: 0\n    noop: {}\n",
    );
    let d = Drover { db: &db, ws: &ws };
    d.ok(&["db", "migrate"]);
    let mut scheduler = d.scheduler("scheduler");
    let _w = d.worker("worker", 8, 5.0);
    runtime().block_on(async {
        let store = db.store().await;
        eventually("flood in dev", LONG, || async { store.dag_env("flood", "dev").await.ok() }).await;
        let (mut web, base) = web(&d).await;
        let accepted: Arc<Mutex<Vec<(Uuid, Uuid)>>> = Arc::default();
        let mut senders = tokio::task::JoinSet::new();
        for s in 0..16 {
            let (base, accepted) = (base.clone(), accepted.clone());
            senders.spawn(async move {
                let c = client();
                for n in 0..10_000 {
                    let res = c
                        .post(format!("{base}/hooks/dev/flood/form"))
                        .bearer_auth(DEV_SECRET)
                        .header("idempotency-key", format!("{s}-{n}"))
                        .json(&json!({ "s": s, "n": n }))
                        .send()
                        .await;
                    let Ok(res) = res else { return };
                    if res.status() != StatusCode::ACCEPTED {
                        return;
                    }
                    let Ok(v) = res.json::<Value>().await else { return };
                    let id = |f: &str| v[f].as_str().and_then(|t| Uuid::parse_str(t).ok());
                    if let (Some(e), Some(r)) = (id("event_id"), id("run_id")) {
                        accepted.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push((e, r));
                    }
                }
            });
        }
        eventually("200 events accepted", LONG, || async {
            (accepted.lock().unwrap_or_else(std::sync::PoisonError::into_inner).len() >= 200).then_some(())
        })
        .await;
        // Web and scheduler die together, between accepting events and starting their runs.
        web.kill9();
        scheduler.kill9();
        while senders.join_next().await.is_some() {}
        let _after = d.scheduler("scheduler-after");
        let accepted = accepted.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
        assert!(accepted.len() >= 200);
        // Every event answered 202 is recorded with the run it was told, and runs once.
        for (event, run) in &accepted {
            let e = store.event(*event).await.unwrap_or_else(|e| panic!("event {event} answered 202 is lost: {e}"));
            assert_eq!(e.run_id, Some(*run));
        }
        let total: i64 = sqlx::query_scalar("select count(*) from event where dag_id = 'flood'")
            .fetch_one(store.pool())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        eventually("every flood run to finish", Duration::from_secs(120), || async {
            let open: i64 = sqlx::query_scalar(
                "select count(*) from dag_run where dag_id = 'flood' and state in ('queued', 'running')",
            )
            .fetch_one(store.pool())
            .await
            .ok()?;
            (open == 0).then_some(())
        })
        .await;
        // One run per event, each succeeded with exactly one try of its task.
        let (runs, ok, tries, singles): (i64, i64, i64, i64) = sqlx::query_as(
            "select count(distinct r.id), count(distinct r.id) filter (where r.state = 'success'), \
                    count(tt.*), count(distinct r.id) filter (where r.event_count = 1) \
             from event e join dag_run r on r.id = e.run_id \
             join task_instance ti on ti.run_id = r.id \
             left join task_try tt on tt.task_instance_id = ti.id where e.dag_id = 'flood'",
        )
        .fetch_one(store.pool())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
        assert!(i64::try_from(accepted.len()).unwrap_or(0) <= total);
        assert_eq!((runs, ok, tries, singles), (total, total, total, total), "events {total}");
    });
}

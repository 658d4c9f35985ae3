//! Events as data, against real processes: a scheduler, a worker and `drover web` on a real
//! Postgres. Events are accepted in-process with `Store::accept_event` (the call the webhook
//! endpoint makes). They are listed in the API, the CLI and the DAG page with their runs and
//! outcomes; a replay of one event makes one new run of type replay that succeeds with the
//! same payload; a range replay keeps the batches; viewers may not replay; every replay is in
//! the audit trail; a replay is replayed too; too-wide and empty ranges are refused with
//! their messages; PROD payloads follow `rows_visible_to`; replays wait while the DAG is
//! paused and are refused in maintenance and for a DAG gone from the environment.

mod support;

use std::time::Duration;

use chrono::{DateTime, Utc};
use drover_store::{BatchRule, RunState, Store};
use reqwest::Method;
use serde_json::{Value, json};
use support::events::{accept, workspace};
use support::web::{add_user, api, login, start_web, token};
use support::{Drover, Proc, TestDb, eventually, runtime, serial, server_url, wait_finished};
use uuid::Uuid;

const LONG: Duration = Duration::from_secs(60);

fn processes(d: &Drover<'_>) -> (Proc, Proc) {
    (d.scheduler("scheduler"), d.worker("worker", 4, 5.0))
}

async fn succeeded(store: &Store, run: Uuid) {
    let r = wait_finished(store, run, LONG).await;
    assert_eq!(r.state, RunState::Success, "run {run}: {r:?}");
}

fn json_of(a: &support::web::Answer) -> Value {
    serde_json::from_str(&a.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", a.body))
}

fn uuid(v: &Value) -> Uuid {
    v.as_str()
        .and_then(|s| Uuid::parse_str(s).ok())
        .unwrap_or_else(|| panic!("not an id: {v}"))
}

/// `drover …` as `who`: (exit success, stdout, stderr).
fn cli(d: &Drover<'_>, who: &str, args: &[&str]) -> (bool, String, String) {
    let mut all = args.to_vec();
    all.extend_from_slice(&["--as", who]);
    let out = d.run(&all);
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

async fn replay_audits(store: &Store) -> Vec<(String, Value)> {
    sqlx::query_as(
        "select actor, details from audit_event where action = 'event.replay' order by id",
    )
    .fetch_all(store.pool())
    .await
    .unwrap_or_else(|e| panic!("{e}"))
}

async fn event_count(store: &Store) -> i64 {
    sqlx::query_scalar("select count(*) from event")
        .fetch_one(store.pool())
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

#[test]
fn events_are_listed_and_replayed_one_by_one_or_by_range_through_api_cli_and_pages() {
    let _turn = serial();
    let db = TestDb::new(&server_url());
    let ws = workspace();
    let d = Drover { db: &db, ws: &ws };
    d.ok(&["db", "migrate"]);
    let passwords = [
        ("admin", add_user(&d, "admin", "admin")),
        ("ada", add_user(&d, "ada", "admin")),
        ("otto", add_user(&d, "otto", "operator")),
        ("vera", add_user(&d, "vera", "viewer")),
    ];
    let password = |who: &str| {
        passwords
            .iter()
            .find(|(n, _)| *n == who)
            .map(|(_, p)| p.clone())
            .unwrap_or_default()
    };
    let (vera_t, otto_t) = (token(&d, "vera"), token(&d, "otto"));
    let _p = processes(&d);
    runtime().block_on(async {
        let store = db.store().await;
        let (_web, base) = start_web(&d, &[]).await;
        let base = base.as_str();
        for env in ["dev", "prod"] {
            eventually(&format!("contact in {env}"), LONG, || async {
                store.dag_env("contact", env).await.ok()
            })
            .await;
        }

        // Two form fills with runs of their own, a batch of three, all run.
        let rule = BatchRule {
            max_events: 3,
            max_wait: Duration::from_secs(3600),
        };
        let mut forms = Vec::new();
        for n in 1..=2 {
            let fill = json!({ "fillId": format!("fill-{n}"), "n": n, "email": format!("lead{n}@example.com") });
            forms.push(accept(&store, "dev", "contact", "form", fill, Some(&format!("fill-{n}")), None).await);
        }
        let mut flood = Vec::new();
        for n in 3..=5 {
            flood.push(accept(&store, "dev", "contact", "flood", json!({ "n": n }), None, Some(rule)).await);
        }
        assert!(flood.iter().all(|a| a.run_id == flood[0].run_id), "one batch run");
        for run in [forms[0].run_id, forms[1].run_id, flood[0].run_id] {
            succeeded(&store, run).await;
        }

        // Listed in the API, with their runs and outcomes, newest first.
        let listed = api(base, Method::GET, "/api/dags/contact/events?env=dev", Some(&vera_t), None).await;
        assert_eq!(listed.status.as_u16(), 200, "{}", listed.body);
        let listed = json_of(&listed);
        let events = listed["events"].as_array().cloned().unwrap_or_default();
        assert_eq!(events.len(), 5, "{listed}");
        assert_eq!(uuid(&events[4]["id"]), forms[0].event_id, "oldest last");
        assert_eq!(events[4]["idempotency_key"], "fill-1");
        assert_eq!(events[4]["trigger"], "form");
        assert_eq!(events[4]["kind"], "webhook");
        assert_eq!(events[4]["source"], "10.0.0.4");
        assert_eq!(uuid(&events[4]["run_id"]), forms[0].run_id);
        assert_eq!((events[4]["run_state"].clone(), events[4]["outcome"].clone()), (json!("success"), json!("succeeded")));
        assert!(events.iter().all(|e| e.get("payload").is_none()), "a list carries no payloads");
        assert_eq!(listed["keys_hidden"], Value::Null);
        let page2 = api(base, Method::GET, &format!("/api/dags/contact/events?env=dev&limit=2&before={}", events[1]["id"].as_str().unwrap_or_default()), Some(&vera_t), None).await;
        let page2 = json_of(&page2);
        assert_eq!(page2["events"][0]["id"], events[2]["id"], "the next page starts after `before`: {page2}");
        assert_eq!(page2["events"].as_array().map(Vec::len), Some(2));
        assert_eq!(page2["next_before"], events[3]["id"]);
        let none = api(base, Method::GET, "/api/dags/nope/events?env=dev", Some(&vera_t), None).await;
        assert_eq!(none.status.as_u16(), 404, "{}", none.body);

        // Listed in the CLI.
        let (ok, out, err) = cli(&d, "vera", &["events", "list", "contact", "--env", "dev"]);
        assert!(ok, "{err}");
        assert!(out.starts_with("5 events of contact in dev, newest first"), "{out}");
        assert!(out.contains("fill-1") && out.contains("flood") && out.contains("succeeded"), "{out}");
        let (ok, out, _) = cli(&d, "vera", &["events", "list", "contact", "--env", "dev", "--since", "1h", "--format", "json"]);
        assert!(ok);
        let as_json: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
        assert_eq!(as_json["events"].as_array().map(Vec::len), Some(5));
        let (ok, out, _) = cli(&d, "vera", &["events", "list", "gone", "--env", "dev"]);
        assert!(ok);
        assert!(out.contains("no events of gone in dev; send one with POST /hooks/dev/gone/form"), "{out}");

        // One event, with its payload.
        let first = forms[0].event_id;
        let shown = json_of(&api(base, Method::GET, &format!("/api/events/{first}"), Some(&vera_t), None).await);
        assert_eq!(shown["payload"]["email"], "lead1@example.com", "{shown}");
        assert_eq!(shown["payload_hidden"], Value::Null);
        let (ok, out, _) = cli(&d, "vera", &["events", "show", &first.to_string()]);
        assert!(ok);
        assert!(out.contains("key       fill-1") && out.contains("lead1@example.com"), "{out}");

        // A viewer may not replay: API, CLI and form.
        let denied = api(base, Method::POST, &format!("/api/events/{first}/replay"), Some(&vera_t), None).await;
        assert_eq!(denied.status.as_u16(), 403, "{}", denied.body);
        let (ok, _, err) = cli(&d, "vera", &["events", "replay", &first.to_string()]);
        assert!(!ok);
        assert!(err.contains("vera is a viewer") && err.contains("may not replay events"), "{err}");
        let vera = login(base, "vera", &password("vera")).await;
        let form = vera.post(&format!("/events/{first}/replay"), &[]).await;
        assert_eq!(form.status.as_u16(), 403, "{}", form.body);
        assert!(replay_audits(&store).await.is_empty(), "nothing was replayed");

        // An operator replays one event: one new run, marked replay, with the same payload.
        let done = api(base, Method::POST, &format!("/api/events/{first}/replay"), Some(&otto_t), None).await;
        assert_eq!(done.status.as_u16(), 201, "{}", done.body);
        let done = json_of(&done);
        let runs = done["run_ids"].as_array().cloned().unwrap_or_default();
        assert_eq!(runs.len(), 1, "{done}");
        let replay_run = uuid(&runs[0]);
        let replay_event = uuid(&done["events"][0]["event_id"]);
        assert_eq!(uuid(&done["events"][0]["original"]), first);
        assert_eq!(done["summary"], "Replayed 1 event of contact in dev, in 1 new run.");
        succeeded(&store, replay_run).await;
        let r = json_of(&api(base, Method::GET, &format!("/api/runs/{replay_run}"), Some(&vera_t), None).await);
        assert_eq!(r["run"]["run_type"], "replay", "{r}");
        assert_eq!(r["run"]["triggered_by"], "otto");
        assert_eq!(r["tasks"][0]["state"], "success");
        let again = json_of(&api(base, Method::GET, &format!("/api/events/{replay_event}"), Some(&vera_t), None).await);
        assert_eq!(again["payload"], shown["payload"], "the same payload");
        assert_eq!((again["kind"].clone(), uuid(&again["replay_of"])), (json!("replay"), first));
        assert_eq!(again["idempotency_key"], Value::Null);
        assert_eq!(again["source"], format!("replay by otto of event {first}"));
        assert_eq!(uuid(&again["run_id"]), replay_run);
        let original = json_of(&api(base, Method::GET, &format!("/api/events/{first}"), Some(&vera_t), None).await);
        assert_eq!(original["replays"], json!([replay_event.to_string()]));
        assert_eq!(uuid(&original["run_id"]), forms[0].run_id, "the original keeps its run");
        // In the audit trail.
        let audit = json_of(&api(base, Method::GET, "/api/audit?action=event.replay", Some(&vera_t), None).await);
        assert_eq!(audit["events"].as_array().map(Vec::len), Some(1), "{audit}");
        assert_eq!(audit["events"][0]["actor"], "otto");
        assert_eq!(uuid(&audit["events"][0]["run_id"]), replay_run);
        assert_eq!(audit["events"][0]["details"]["event"], first.to_string());

        // A replay is replayed too (CLI), pointing at it.
        let (ok, out, err) = cli(&d, "ada", &["events", "replay", &replay_event.to_string()]);
        assert!(ok, "{err}");
        assert!(out.starts_with(&format!("replayed event {replay_event} of contact in dev: new event ")), "{out}");
        let second_run = out
            .split(" in run ")
            .nth(1)
            .and_then(|s| s.split_whitespace().next())
            .and_then(|s| Uuid::parse_str(s).ok())
            .unwrap_or_else(|| panic!("no run in {out}"));
        succeeded(&store, second_run).await;
        let second = store.run_events(second_run).await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(second.len(), 1);
        assert_eq!(second[0].replay_of, Some(replay_event));
        assert_eq!(second[0].payload["email"], "lead1@example.com");

        // A range replay (CLI) keeps the batch: 5 events, 3 runs, the batch's 3 in one.
        let originals = store.dag_events("contact", "dev", None, None, 100).await.unwrap_or_else(|e| panic!("{e}"));
        let webhooks: Vec<_> = originals.iter().filter(|e| e.kind == "webhook").collect();
        let from = webhooks.iter().map(|e| e.received_at).min().unwrap_or_else(Utc::now);
        let to = webhooks.iter().map(|e| e.received_at).max().unwrap_or_else(Utc::now) + chrono::Duration::milliseconds(1);
        let (ok, out, err) = cli(&d, "otto", &["events", "replay", "--dag", "contact", "--env", "dev", "--from", &rfc3339(from), "--to", &rfc3339(to)]);
        assert!(ok, "{err}");
        assert!(out.starts_with("replayed 5 events of contact in dev in 3 new runs"), "{out}");
        let range_runs: Vec<Uuid> = out.lines().skip(1).filter_map(|l| Uuid::parse_str(l.trim()).ok()).collect();
        assert_eq!(range_runs.len(), 3, "{out}");
        let mut sizes = Vec::new();
        for run in &range_runs {
            succeeded(&store, *run).await;
            let evs = store.run_events(*run).await.unwrap_or_else(|e| panic!("{e}"));
            assert!(evs.iter().all(|e| e.kind == "replay"));
            sizes.push((evs.len(), evs[0].trigger.clone()));
        }
        sizes.sort();
        assert_eq!(
            sizes,
            vec![(1, "form".to_owned()), (1, "form".to_owned()), (3, "flood".to_owned())],
            "the batch replays as one run"
        );
        let audits = replay_audits(&store).await;
        assert_eq!(audits.len(), 3);
        assert_eq!((audits[2].0.as_str(), audits[2].1["events"].clone(), audits[2].1["runs"].clone()), ("otto", json!(5), json!(3)));
        assert_eq!(audits[2].1["from"], json!(from));

        // Empty and too-wide ranges: refused with their messages, nothing made.
        let before = event_count(&store).await;
        let long_ago = Utc::now() - chrono::Duration::days(60);
        let empty = api(base, Method::POST, "/api/dags/contact/events/replay", Some(&otto_t), Some(json!({
            "env": "dev", "from": rfc3339(long_ago), "to": rfc3339(long_ago + chrono::Duration::hours(1)),
        }))).await;
        assert_eq!(empty.status.as_u16(), 422, "{}", empty.body);
        assert!(json_of(&empty)["error"]["message"].as_str().is_some_and(|m| m.starts_with("no events between ")), "{}", empty.body);
        let (ok, _, err) = cli(&d, "otto", &["events", "replay", "--dag", "contact", "--env", "dev", "--from", "2h", "--to", "90m"]);
        assert!(!ok);
        assert!(err.contains("no events between"), "{err}");
        let (ok, _, err) = cli(&d, "otto", &["events", "replay", "--dag", "contact", "--env", "dev", "--from", "yesterday", "--to", "1h"]);
        assert!(!ok);
        assert!(err.contains("--from: `yesterday` is not a time"), "{err}");
        let wide_from = Utc::now() - chrono::Duration::days(30);
        sqlx::query(
            "insert into event (id, environment, dag_id, trigger, kind, source, payload, received_at) \
             select gen_random_uuid(), 'dev', 'contact', 'form', 'webhook', '10.0.0.9', jsonb_build_object('n', i), \
                    $1 + i * interval '1 second' from generate_series(1, 10001) i",
        )
        .bind(wide_from)
        .execute(store.pool())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
        let wide = api(base, Method::POST, "/api/dags/contact/events/replay", Some(&otto_t), Some(json!({
            "env": "dev", "from": rfc3339(wide_from), "to": rfc3339(wide_from + chrono::Duration::days(1)),
        }))).await;
        assert_eq!(wide.status.as_u16(), 422, "{}", wide.body);
        let m = json_of(&wide)["error"]["message"].as_str().unwrap_or_default().to_owned();
        assert!(m.starts_with("10,001 events arrived between ") && m.ends_with("more than the 10,000 one replay may take: narrow the range"), "{m}");
        assert_eq!(event_count(&store).await, before + 10_001, "only the inserted ones");
        assert_eq!(replay_audits(&store).await.len(), 3);

        // Pages: the DAG page's Events section, with replay buttons for operators only.
        let page = vera.get("/dags/contact?env=dev").await;
        assert_eq!(page.status.as_u16(), 200);
        assert!(page.body.contains("id=\"events\"") && page.body.contains("fill-2"), "{}", page.body);
        assert!(page.body.contains("/hooks/dev/contact/form"), "the hook's path");
        assert!(page.body.contains("replay by otto"), "run lists say who replayed");
        assert!(!page.body.contains("replay-event") && !page.body.contains("replay-range-form"), "no replay for viewers");
        let otto = login(base, "otto", &password("otto")).await;
        let page = otto.get("/dags/contact?env=dev").await;
        assert!(page.body.contains("class=\"small replay-event\"") && page.body.contains("id=\"replay-range-form\""), "{}", page.body);
        assert!(page.body.contains("id=\"all-events\""), "more than 20 events: a link to all");
        let all = otto.get("/dags/contact/events?env=dev").await;
        assert_eq!(all.status.as_u16(), 200);
        assert!(all.body.contains("id=\"older\""), "a page of 50 has an older page");
        // Empty state, with the curl line and a placeholder for the secret.
        let page = otto.get("/dags/gone?env=dev").await;
        assert!(page.body.contains("id=\"events-empty\""), "{}", page.body);
        assert!(page.body.contains("/hooks/dev/gone/form") && page.body.contains("Bearer &#60;the form_hook secret of dev&#62;"), "{}", page.body);

        // The run pages say what started them.
        let run_page = vera.get(&format!("/runs/{}", forms[0].run_id)).await;
        assert!(run_page.body.contains("Started by a form event from 10.0.0.4 at "), "{}", run_page.body);
        assert!(run_page.body.contains(&format!("href=\"/events/{first}\"")));
        let run_page = vera.get(&format!("/runs/{}", flood[0].run_id)).await;
        assert!(run_page.body.contains("Batch of 3 flood events (first "), "{}", run_page.body);
        assert!(run_page.body.contains("id=\"run-events\""));
        let run_page = vera.get(&format!("/runs/{replay_run}")).await;
        let short = {
            let s = first.simple().to_string();
            s[s.len() - 8..].to_owned()
        };
        assert!(run_page.body.contains(&format!("Replay of event …{short} by otto")), "{}", run_page.body);
        assert!(run_page.body.contains(&format!("href=\"/events/{first}\" id=\"replayed-event\"")));
        // The event's page, and its replay form.
        let event_page = otto.get(&format!("/events/{first}")).await;
        assert!(event_page.body.contains("lead1@example.com") && event_page.body.contains("id=\"replay-event\""), "{}", event_page.body);
        assert!(event_page.body.contains(&format!("href=\"/events/{replay_event}\"")), "its replays are listed");
        let form = otto.post(&format!("/events/{first}/replay"), &[]).await;
        assert_eq!(form.status.as_u16(), 303, "{}", form.body);
        let to_run = form.location.clone().unwrap_or_default();
        assert!(to_run.starts_with("/runs/") && to_run.ends_with("?done=replayed"), "{to_run}");
        let form_run = Uuid::parse_str(&to_run["/runs/".len()..to_run.len() - "?done=replayed".len()]).unwrap_or_else(|e| panic!("{e}"));
        succeeded(&store, form_run).await;
        assert!(otto.get(&to_run).await.body.contains("Replayed: the event runs again"));
        // The range form: refused with the reason next to it; done with a notice.
        let refused = otto.post("/dags/contact/events/replay", &[("env", "dev"), ("from", "2026-01-01T00:00"), ("to", "2026-01-01T01:00")]).await;
        assert_eq!(refused.status.as_u16(), 422, "{}", refused.body);
        assert!(refused.body.contains("id=\"replay-error\"") && refused.body.contains("no events between 2026-01-01 05:00:00 UTC"), "New York times: {}", refused.body);
        let f = (Utc::now() - chrono::Duration::seconds(5)).with_timezone(&chrono_tz::America::New_York).format("%Y-%m-%dT%H:%M:%S").to_string();
        let nothing_yet = otto.post("/dags/contact/events/replay", &[("env", "dev"), ("from", &f), ("to", "2026-01-01")]).await;
        assert_eq!(nothing_yet.status.as_u16(), 422, "{}", nothing_yet.body);
        assert!(nothing_yet.body.contains("before it starts"), "{}", nothing_yet.body);
        let from_ny = from.with_timezone(&chrono_tz::America::New_York).format("%Y-%m-%dT%H:%M:%S").to_string();
        let to_ny = (to + chrono::Duration::seconds(1)).with_timezone(&chrono_tz::America::New_York).format("%Y-%m-%dT%H:%M:%S").to_string();
        let ranged = otto.post("/dags/contact/events/replay", &[("env", "dev"), ("from", &from_ny), ("to", &to_ny)]).await;
        assert_eq!(ranged.status.as_u16(), 303, "{}", ranged.body);
        assert_eq!(ranged.location.as_deref(), Some("/dags/contact?env=dev&done=replayed_range"));
        let audits = replay_audits(&store).await;
        assert_eq!((audits.len(), audits[4].1["events"].clone()), (5, json!(5)), "{audits:?}");

        // PROD: payloads and keys only for operators and admins.
        let prod = accept(&store, "prod", "contact", "form", json!({ "fillId": "p-1", "email": "ceo@example.com" }), Some("p-1"), None).await;
        succeeded(&store, prod.run_id).await;
        let hidden = json_of(&api(base, Method::GET, &format!("/api/events/{}", prod.event_id), Some(&vera_t), None).await);
        assert_eq!(hidden["payload"], Value::Null, "{hidden}");
        assert_eq!(hidden["idempotency_key"], Value::Null);
        assert!(hidden["payload_hidden"].as_str().is_some_and(|m| m.contains("visible to operators and admins")), "{hidden}");
        let listed = json_of(&api(base, Method::GET, "/api/dags/contact/events?env=prod", Some(&vera_t), None).await);
        assert_eq!(listed["events"][0]["idempotency_key"], Value::Null);
        assert!(listed["keys_hidden"].is_string());
        let seen = json_of(&api(base, Method::GET, &format!("/api/events/{}", prod.event_id), Some(&otto_t), None).await);
        assert_eq!(seen["payload"]["email"], "ceo@example.com");
        let (ok, out, _) = cli(&d, "vera", &["events", "show", &prod.event_id.to_string()]);
        assert!(ok);
        assert!(out.contains("payload   hidden: Payloads and keys of PROD events") && !out.contains("ceo@example.com"), "{out}");
        let (_, out, _) = cli(&d, "otto", &["events", "show", &prod.event_id.to_string()]);
        assert!(out.contains("ceo@example.com"), "{out}");
        let event_page = vera.get(&format!("/events/{}", prod.event_id)).await;
        assert!(event_page.body.contains("id=\"payload-hidden\"") && !event_page.body.contains("ceo@example.com"), "{}", event_page.body);
        let run_page = vera.get(&format!("/runs/{}", prod.run_id)).await;
        assert!(!run_page.body.contains("ceo@example.com"), "{}", run_page.body);

        // Paused: a replay waits queued while a manual run of the same DAG starts and ends.
        d.ok(&["dags", "pause", "contact", "--env", "dev", "--as", "otto"]);
        let waiting = json_of(&api(base, Method::POST, &format!("/api/events/{}/replay", forms[1].event_id), Some(&otto_t), None).await);
        let waiting_run = uuid(&waiting["run_ids"][0]);
        let manual = d.ok(&["runs", "trigger", "contact", "--env", "dev", "--as", "otto"]);
        let manual = Uuid::parse_str(&manual).unwrap_or_else(|e| panic!("{e}"));
        succeeded(&store, manual).await;
        let held = store.get_run(waiting_run).await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(held.state, RunState::Queued, "the replay waits while its DAG is paused");
        assert!(held.created_at < store.get_run(manual).await.unwrap_or_else(|e| panic!("{e}")).created_at);
        let page = vera.get(&format!("/runs/{waiting_run}")).await;
        assert!(page.body.contains("contact is paused in dev: runs started by events and replays wait until it is unpaused"), "{}", page.body);
        d.ok(&["dags", "unpause", "contact", "--env", "dev", "--as", "otto"]);
        succeeded(&store, waiting_run).await;

        // A DAG gone from the environment keeps its events; they cannot be replayed there.
        let lost = accept(&store, "dev", "gone", "form", json!({ "n": 1 }), None, None).await;
        succeeded(&store, lost.run_id).await;
        std::fs::remove_file(ws.dags().join("gone.yaml")).unwrap_or_else(|e| panic!("{e}"));
        eventually("gone to leave dev", LONG, || async {
            store.dag_env("gone", "dev").await.is_err().then_some(())
        })
        .await;
        let refused = api(base, Method::POST, &format!("/api/events/{}/replay", lost.event_id), Some(&otto_t), None).await;
        assert_eq!(refused.status.as_u16(), 409, "{}", refused.body);
        assert!(refused.body.contains("`gone` is no longer in `dev`"), "{}", refused.body);
        let kept = api(base, Method::GET, "/api/dags/gone/events?env=dev", Some(&vera_t), None).await;
        assert_eq!(json_of(&kept)["events"].as_array().map(Vec::len), Some(1), "{}", kept.body);

        // Maintenance: 503 with Retry-After, nothing made.
        d.ok(&["maintenance", "on", "--message", "Database upgrade", "--until", "1h", "--as", "admin"]);
        let count = event_count(&store).await;
        let answer = eventually("replays refused in maintenance", LONG, || async {
            let a = api(base, Method::POST, &format!("/api/events/{first}/replay"), Some(&otto_t), None).await;
            (a.status.as_u16() == 503).then_some(a)
        })
        .await;
        assert!(answer.body.contains("maintenance"), "{}", answer.body);
        let (ok, _, err) = cli(&d, "otto", &["events", "replay", &first.to_string()]);
        assert!(!ok && err.contains("in maintenance: Database upgrade"), "{err}");
        assert_eq!(event_count(&store).await, count);
        d.ok(&["maintenance", "off", "--as", "admin"]);
    });
}

//! Half-open intervals end to end: a run covers `[since, until)`, the sandbox's bulk filters
//! take `{startAt, endAt}` inclusively at both ends (as Marketo may), and records placed exactly
//! on the boundaries land in exactly one run's staged dataset — also across the ≤ 31-day jobs a
//! long window is split into. Real `drover` processes, real Postgres, the sandbox over HTTP.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use drover_store::{RunState, Store};
use serde_json::{Value, json};
use support::tasks::{task_log, trigger};
use support::{
    Drover, TestDb, Workspace, runtime, serial, server_url, start_sandbox, synced, wait_finished,
};
use uuid::Uuid;

const DAG: &str = r#"id: edges
description: Leads and web visits of an explicit window
params:
  since: { type: string, default: "2026-01-01T00:00:00Z" }
  until: { type: string, default: "2026-01-01T01:00:00Z" }
tasks:
  - id: updated
    export:
      object: leads
      fields: [id, email]
      filter: { updated_at: { since: "{{ params.since }}", until: "{{ params.until }}" } }
  - id: created
    export:
      object: leads
      fields: [email, createdAt]
      filter: { created_at: { since: "{{ params.since }}", until: "{{ params.until }}" } }
  - id: visits
    export: { object: activities, types: [visit_web_page], since: "{{ params.since }}", until: "{{ params.until }}" }
"#;

fn iso(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

async fn place_lead(base: &str, email: &str, at: DateTime<Utc>) -> i64 {
    let resp = reqwest::Client::new()
        .post(format!("{base}/_sandbox/leads"))
        .json(&json!({"email": email, "createdAt": iso(at), "updatedAt": iso(at)}))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(resp.status(), 201);
    let v: Value = resp.json().await.unwrap_or_else(|e| panic!("{e}"));
    v["id"].as_i64().unwrap_or_else(|| panic!("{v}"))
}

async fn place_visit(base: &str, lead: i64, at: DateTime<Utc>) -> String {
    let resp = reqwest::Client::new()
        .post(format!("{base}/_sandbox/activities"))
        .json(&json!({"leadId": lead, "activityTypeId": 1, "activityDate": iso(at)}))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(resp.status(), 201);
    let v: Value = resp.json().await.unwrap_or_else(|e| panic!("{e}"));
    v["marketoGUID"]
        .as_str()
        .unwrap_or_else(|| panic!("{v}"))
        .to_owned()
}

/// The rows of a task's staged dataset, each as JSON.
async fn staged(store: &Store, run: Uuid, task: &str) -> Vec<Value> {
    let d = store
        .dataset(run, task, "output")
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|| panic!("no dataset for {task}"));
    let pool = store
        .staging_pool(&d.environment, 1)
        .unwrap_or_else(|e| panic!("{e}"));
    sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "select to_jsonb(t) from {} t",
        d.relation()
    )))
    .fetch_all(&pool)
    .await
    .unwrap_or_else(|e| panic!("{e}"))
}

/// How often each of `wanted` occurs in `column` of the rows.
fn occurrences(rows: &[Value], column: &str, wanted: &[String]) -> BTreeMap<String, usize> {
    let mut out: BTreeMap<String, usize> = wanted.iter().map(|w| (w.clone(), 0)).collect();
    for r in rows {
        let v = match &r[column] {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        if let Some(n) = out.get_mut(&v) {
            *n += 1;
        }
    }
    out
}

fn counts(pairs: &[(&String, usize)]) -> BTreeMap<String, usize> {
    pairs.iter().map(|(k, n)| ((*k).clone(), *n)).collect()
}

#[test]
fn boundary_records_land_in_exactly_one_run_and_once_across_split_jobs() {
    let _turn = serial();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let rt = runtime();
    let db = TestDb::new(&server_url());
    let ws = Workspace::new();
    ws.dag("edges", DAG);
    rt.block_on(async {
        let map = start_sandbox(300, 11, "edges", "edges-secret", Default::default()).await;
        let base = map.base_url();
        ws.map_environment(&base, "edges", "edges-secret", None);
        let second = TimeDelta::seconds(1);
        let t0 = Utc::now()
            .duration_trunc(TimeDelta::hours(1))
            .unwrap_or_else(|e| panic!("{e}"))
            - TimeDelta::hours(72);
        let t1 = t0 + TimeDelta::hours(1);
        let t2 = t1 + TimeDelta::hours(1);
        // Leads at both ends of [t0, t1) and [t1, t2), and just inside them.
        let placed = [
            ("at-t0", t0),
            ("after-t0", t0 + second),
            ("before-t1", t1 - second),
            ("at-t1", t1),
            ("before-t2", t2 - second),
            ("at-t2", t2),
        ];
        let mut ids = Vec::new();
        let mut emails = Vec::new();
        for (name, at) in placed {
            let email = format!("{name}@edges.example");
            ids.push(place_lead(&base, &email, at).await.to_string());
            emails.push(email);
        }
        let visitor = ids[0].parse::<i64>().unwrap_or_else(|e| panic!("{e}"));
        let mut visits = Vec::new();
        for at in [t0, t1 - second, t1, t2] {
            visits.push(place_visit(&base, visitor, at).await);
        }
        // A 40-day window is two jobs meeting at s0 + 31 days: a lead and a visit exactly there.
        let s0 = t0 - TimeDelta::days(60);
        let split = s0 + TimeDelta::days(31);
        let split_email = "at-split@edges.example".to_owned();
        let split_id = place_lead(&base, &split_email, split).await.to_string();
        let split_visit = place_visit(&base, visitor, split).await;

        let d = Drover { db: &db, ws: &ws };
        d.ok(&["db", "migrate"]);
        let _s = d.scheduler("scheduler");
        let w = d.worker("worker", 3, 10.0);
        let store = db.store().await;
        synced(&store, "edges").await;
        let window = |a: DateTime<Utc>, b: DateTime<Utc>| {
            [format!("since={}", iso(a)), format!("until={}", iso(b))]
        };
        let [a0, a1] = window(t0, t1);
        let first = trigger(&d, "edges", "dev", &[&a0, &a1]);
        let [b0, b1] = window(t1, t2);
        let next = trigger(&d, "edges", "dev", &[&b0, &b1]);
        // The split run's `until` carries an offset: the same instant as s0 + 40 days in UTC.
        let long_until = (s0 + TimeDelta::days(40)).with_timezone(
            &chrono::FixedOffset::east_opt(3600).unwrap_or_else(|| panic!("offset")),
        );
        let long = trigger(
            &d,
            "edges",
            "dev",
            &[
                &format!("since={}", iso(s0)),
                &format!("until={}", long_until.to_rfc3339()),
            ],
        );
        for run in [first, next, long] {
            let row = wait_finished(&store, run, Duration::from_secs(90)).await;
            assert_eq!(row.state, RunState::Success, "{row:?}\n{}", w.log());
        }

        // Leads by `updatedAt`: each boundary lead in the one run whose [start, end) holds it.
        let (u1, u2) = (
            staged(&store, first, "updated").await,
            staged(&store, next, "updated").await,
        );
        let is = |pairs: &[(usize, usize)]| {
            counts(
                &pairs
                    .iter()
                    .map(|(i, n)| (&ids[*i], *n))
                    .collect::<Vec<_>>(),
            )
        };
        assert_eq!(
            occurrences(&u1, "id", &ids),
            is(&[(0, 1), (1, 1), (2, 1), (3, 0), (4, 0), (5, 0)]),
            "[t0, t1)"
        );
        assert_eq!(
            occurrences(&u2, "id", &ids),
            is(&[(0, 0), (1, 0), (2, 0), (3, 1), (4, 1), (5, 0)]),
            "[t1, t2)"
        );
        // `updatedAt` was exported only to filter on: the dataset has the columns the DAG asked for.
        let columns: BTreeSet<&str> = u1[0]
            .as_object()
            .map(|o| o.keys().map(String::as_str).collect())
            .unwrap_or_default();
        assert_eq!(columns, BTreeSet::from(["id", "email"]));
        // Leads by `createdAt` (no `id` among the fields, so nothing but the bounds can keep a
        // boundary lead single).
        let (c1, c2) = (
            staged(&store, first, "created").await,
            staged(&store, next, "created").await,
        );
        let by_email = |pairs: &[(usize, usize)]| {
            counts(
                &pairs
                    .iter()
                    .map(|(i, n)| (&emails[*i], *n))
                    .collect::<Vec<_>>(),
            )
        };
        assert_eq!(
            occurrences(&c1, "email", &emails),
            by_email(&[(0, 1), (1, 1), (2, 1), (3, 0), (4, 0), (5, 0)])
        );
        assert_eq!(
            occurrences(&c2, "email", &emails),
            by_email(&[(0, 0), (1, 0), (2, 0), (3, 1), (4, 1), (5, 0)])
        );
        // Web visits by `activityDate`.
        let (v1, v2) = (
            staged(&store, first, "visits").await,
            staged(&store, next, "visits").await,
        );
        let guids = |pairs: &[(usize, usize)]| {
            counts(
                &pairs
                    .iter()
                    .map(|(i, n)| (&visits[*i], *n))
                    .collect::<Vec<_>>(),
            )
        };
        assert_eq!(
            occurrences(&v1, "marketoGUID", &visits),
            guids(&[(0, 1), (1, 1), (2, 0), (3, 0)])
        );
        assert_eq!(
            occurrences(&v2, "marketoGUID", &visits),
            guids(&[(0, 0), (1, 0), (2, 1), (3, 0)])
        );
        // No seeded lead either is in both runs.
        let id_set = |rows: &[Value]| {
            rows.iter()
                .map(|r| r["id"].to_string())
                .collect::<BTreeSet<_>>()
        };
        assert!(id_set(&u1).is_disjoint(&id_set(&u2)));

        // The task log says how many rows the bounds dropped: the first run's export got the
        // lead at t1 (endAt is inclusive at the sandbox) and let it go.
        let (lines, _) = task_log(&store, first, "updated").await;
        let said = lines
            .iter()
            .find(|l| l.contains("on the boundaries dropped"))
            .unwrap_or_else(|| panic!("{lines:?}"));
        assert!(
            said.contains("updatedAt") && !said.contains(": 0 row(s)"),
            "{said}"
        );
        let (lines, _) = task_log(&store, next, "created").await;
        assert!(
            lines
                .iter()
                .any(|l| l.contains("createdAt") && l.contains("on the boundaries dropped")),
            "{lines:?}"
        );

        // Across the two jobs of the 40-day window, the records on the split instant land once.
        let (lines, _) = task_log(&store, long, "created").await;
        assert!(
            lines.iter().any(|l| l.contains("2 export job(s)")),
            "{lines:?}"
        );
        let long_created = staged(&store, long, "created").await;
        assert_eq!(
            occurrences(&long_created, "email", std::slice::from_ref(&split_email))[&split_email],
            1
        );
        let long_updated = staged(&store, long, "updated").await;
        assert_eq!(
            occurrences(&long_updated, "id", std::slice::from_ref(&split_id))[&split_id],
            1
        );
        let long_visits = staged(&store, long, "visits").await;
        assert_eq!(
            occurrences(
                &long_visits,
                "marketoGUID",
                std::slice::from_ref(&split_visit)
            )[&split_visit],
            1
        );
        // And the window's own ends hold: nothing outside [s0, s0 + 40 days).
        for r in &long_visits {
            let at = r["activityDate"]
                .as_str()
                .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
                .unwrap_or_else(|| panic!("{r}"));
            assert!(at >= s0 && at < s0 + TimeDelta::days(40), "{r}");
        }
        map.shutdown().await;
    });
}

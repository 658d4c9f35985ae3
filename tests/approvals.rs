//! Approval of PROD writes, against real processes: a scheduler and a worker reading DAGs from
//! a real git repository, a real Postgres, the MAP sandbox over HTTP and a real webhook
//! receiver. A return in an environment with `returns: { require_approval: true }` plans,
//! records a request and waits — holding no worker slot — until an operator other than the
//! DAG's last committer, or an admin, approves; only then does the sandbox receive a write. A
//! rejection fails the task with nothing written, a timeout fails it, a plan that changed
//! asks again, and every step is in the audit trail.

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use drover_mapsim::FaultProfile;
use drover_store::{RunState, Store, TaskState};
use support::approvals::{CLIENT_ID, SECRET, Setup, awaiting, processes, sandbox_writes, trigger};
use support::web::{add_user, api, start_web, token};
use support::{
    Drover, TestDb, eventually, runtime, serial, server_url, start_sandbox, wait_finished,
};
use uuid::Uuid;

const LONG: Duration = Duration::from_secs(90);

async fn audit(store: &Store, run: Uuid) -> Vec<(String, String, serde_json::Value)> {
    sqlx::query_as("select actor, action, details from audit_event where run_id = $1 order by id")
        .bind(run)
        .fetch_all(store.pool())
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

async fn log_text(store: &Store, ti: i64) -> String {
    store
        .read_logs(ti, None, 0)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .into_iter()
        .map(|l| l.line)
        .collect::<Vec<_>>()
        .join("\n")
}

/// What the webhook receiver got.
type Received = Arc<Mutex<Vec<serde_json::Value>>>;

async fn receiver() -> (String, Received, tokio::task::JoinHandle<()>) {
    let got: Received = Arc::new(Mutex::new(Vec::new()));
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post({
            let got = got.clone();
            move |axum::Json(body): axum::Json<serde_json::Value>| {
                let got = got.clone();
                async move {
                    got.lock().unwrap_or_else(|e| e.into_inner()).push(body);
                    axum::http::StatusCode::OK
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (format!("http://{addr}/hook"), got, server)
}

#[test]
fn prod_writes_wait_for_a_second_persons_approval_and_a_rejection_or_timeout_fails_them() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let _turn = serial();
    let db = TestDb::new(&server_url());
    runtime().block_on(async {
        let map = start_sandbox(300, 7, CLIENT_ID, SECRET, FaultProfile::default()).await;
        let base = map.base_url();
        let setup = Setup::new(&base);
        let repo = setup.repo();
        let d = Drover { db: &db, ws: &setup.ws };
        d.ok(&["db", "migrate"]);
        add_user(&d, "admin", "admin");
        add_user(&d, "ada", "admin");
        add_user(&d, "olga", "operator");
        add_user(&d, "otto", "operator");
        add_user(&d, "vic", "viewer");
        let (hook, got, hook_server) = receiver().await;
        let (_s, w) = processes(&d, &repo, &hook);
        let store = db.store().await;
        for dag in ["scoring", "ping"] {
            eventually(&format!("{dag} in prod"), LONG, || async {
                store.dag_env(dag, "prod").await.ok()
            })
            .await;
        }
        let cli = |args: &[&str]| {
            let mut v = vec!["--repo", repo.as_str()];
            v.extend_from_slice(args);
            d.run(&v)
        };

        // 1. Request → approve → write.
        let run = trigger(&d, "scoring");
        let ti = awaiting(&store, run, "push_scores").await;
        assert_eq!(ti.worker_id, None, "no worker holds it: {ti:?}");
        assert_eq!(ti.try_number, 1);
        assert_eq!(ti.max_tries, 2, "the waiting try uses no retry: {ti:?}");
        assert_eq!(sandbox_writes(&base).await, 0, "nothing is sent before the approval");
        let asked = store
            .latest_approval(ti.id)
            .await
            .expect("approval")
            .expect("a request");
        assert_eq!(asked.state, "pending");
        let n = store
            .dataset(run, "score", "output")
            .await
            .expect("registry")
            .expect("score")
            .row_count;
        assert!(n > 100, "{n} leads scored");
        assert_eq!(asked.to_send, n, "every lead's score changes: {asked:?}");
        assert_eq!((asked.creates, asked.updates), (Some(0), Some(n)), "{asked:?}");
        assert_eq!((asked.unchanged, asked.withheld, asked.rejected), (0, 0, 0), "{asked:?}");
        assert_eq!(asked.digest.len(), 32, "{asked:?}");
        assert_eq!(
            (asked.expires_at - asked.requested_at).num_seconds(),
            24 * 3600,
            "the default timeout"
        );
        // The one worker slot is free: another DAG runs meanwhile.
        let ping = trigger(&d, "ping");
        assert_eq!(wait_finished(&store, ping, LONG).await.state, RunState::Success);
        assert_eq!(store.get_run(run).await.expect("run").state, RunState::Running);

        // The approval_needed notification reaches the webhook.
        let told = eventually("the approval_needed notification", LONG, || async {
            got.lock()
                .unwrap_or_else(|e| e.into_inner())
                .iter()
                .find(|b| b["drover"]["event"] == "approval_needed")
                .cloned()
        })
        .await;
        assert_eq!(told["drover"]["task_id"], "push_scores", "{told}");
        assert_eq!(told["drover"]["run_id"], run.to_string(), "{told}");
        assert!(
            told["text"]
                .as_str()
                .is_some_and(|t| t.contains("scoring.push_scores waits for approval to write to prod")),
            "{told}"
        );

        // A viewer never; the DAG's last committer not either, with a clear message.
        let out = cli(&["runs", "approve", &run.to_string(), "push_scores", "--as", "vic"]);
        let said = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{said}");
        assert!(said.contains("vic is a viewer in `prod` and may not approve or reject returns"), "{said}");
        let out = cli(&["runs", "approve", &run.to_string(), "push_scores", "--as", "olga"]);
        let said = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{said}");
        assert!(
            said.contains("olga made the last change to `scoring` (as Olga <olga@example.com>), so someone else must approve what it writes to prod"),
            "{said}"
        );
        // Without the repository, who committed cannot be told: an operator is refused.
        let out = d.run(&["runs", "approve", &run.to_string(), "push_scores", "--as", "otto"]);
        let said = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{said}");
        assert!(said.contains("cannot tell who last changed `scoring`"), "{said}");
        assert_eq!(sandbox_writes(&base).await, 0, "refusals send nothing");
        let ti_now = awaiting(&store, run, "push_scores").await;
        assert_eq!(ti_now.try_number, 1);

        // Another operator approves: the next try writes.
        let out = cli(&["runs", "approve", &run.to_string(), "push_scores", "--as", "otto"]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let said = String::from_utf8_lossy(&out.stdout);
        assert!(
            said.contains(&format!("approved the plan of push_scores in prod: {n} to send (0 new, {n} updated)")),
            "{said}"
        );
        let done = wait_finished(&store, run, LONG).await;
        assert_eq!(done.state, RunState::Success, "{done:?}\n{}", w.log());
        assert_eq!(sandbox_writes(&base).await, u64::try_from(n).unwrap_or(0), "written after the approval");
        let lead = store
            .dataset(run, "push_scores", "receipt")
            .await
            .expect("registry")
            .expect("receipt");
        assert_eq!(lead.row_count, n);
        let ti = store
            .task_instances(run)
            .await
            .expect("tasks")
            .into_iter()
            .find(|t| t.task_id == "push_scores")
            .expect("task");
        assert_eq!((ti.try_number, ti.max_tries), (2, 2), "{ti:?}");
        let log = log_text(&store, ti.id).await;
        assert!(log.contains(&format!("waiting for approval before writing to prod: {n} to send")), "{log}");
        assert!(log.contains("plan approved by otto"), "{log}");
        let decided = store.latest_approval(ti.id).await.expect("a").expect("row");
        assert_eq!((decided.state.as_str(), decided.decided_by.as_deref()), ("approved", Some("otto")));
        let trail = audit(&store, run).await;
        let actions: Vec<(&str, &str)> = trail.iter().map(|(a, b, _)| (a.as_str(), b.as_str())).collect();
        assert!(actions.contains(&("drover", "return.approval_requested")), "{actions:?}");
        assert!(actions.contains(&("otto", "return.approved")), "{actions:?}");
        let approved = trail.iter().find(|(_, a, _)| a == "return.approved").map(|t| &t.2);
        assert_eq!(approved.map(|d| d["plan"]["to_send"].clone()), Some(serde_json::json!(n)));

        // 2. Reject (through the API) → failed, nothing written.
        let (_web, web) = start_web(&d, &["--repo", &repo]).await;
        let otto = token(&d, "otto");
        let vic = token(&d, "vic");
        let run = trigger(&d, "scoring");
        let ti = awaiting(&store, run, "push_scores").await;
        let before = sandbox_writes(&base).await;
        let waiting = api(&web, reqwest::Method::GET, "/api/approvals?env=prod", Some(&vic), None).await;
        assert_eq!(waiting.status, 200, "{}", waiting.body);
        let listed: serde_json::Value = serde_json::from_str(&waiting.body).unwrap_or_default();
        assert_eq!(listed["approvals"].as_array().map(Vec::len), Some(1), "{listed}");
        assert_eq!(listed["approvals"][0]["run_id"], run.to_string(), "{listed}");
        let path = format!("/api/runs/{run}/tasks/push_scores/reject");
        let refused = api(&web, reqwest::Method::POST, &path, Some(&vic), Some(serde_json::json!({ "reason": "no" }))).await;
        assert_eq!(refused.status, 403, "{}", refused.body);
        let empty = api(&web, reqwest::Method::POST, &path, Some(&otto), Some(serde_json::json!({ "reason": " " }))).await;
        assert_eq!(empty.status, 422, "{}", empty.body);
        let rejected = api(&web, reqwest::Method::POST, &path, Some(&otto), Some(serde_json::json!({ "reason": "the scores double count webinar leads" }))).await;
        assert_eq!(rejected.status, 200, "{}", rejected.body);
        let done = wait_finished(&store, run, LONG).await;
        assert_eq!(done.state, RunState::Failed, "{done:?}");
        let ti = store
            .task_instances(run)
            .await
            .expect("tasks")
            .into_iter()
            .find(|t| t.id == ti.id)
            .expect("task");
        assert_eq!(ti.state.0, TaskState::Failed);
        assert_eq!(
            ti.last_error.as_deref(),
            Some("otto rejected the plan: the scores double count webinar leads")
        );
        assert!(log_text(&store, ti.id).await.contains("otto rejected the plan: the scores double count webinar leads; nothing was sent"));
        assert_eq!(sandbox_writes(&base).await, before, "nothing written");
        assert!(store.dataset(run, "push_scores", "receipt").await.expect("registry").is_none());
        let again = api(&web, reqwest::Method::POST, &format!("/api/runs/{run}/tasks/push_scores/approve"), Some(&otto), None).await;
        assert_eq!(again.status, 409, "a decided request is not decided again: {}", again.body);
        let trail = audit(&store, run).await;
        assert!(
            trail.iter().any(|(a, b, d)| a == "otto" && b == "return.rejected" && d["reason"] == "the scores double count webinar leads"),
            "{trail:?}"
        );

        // 3. The plan changes after the approval → it asks again; an admin approves twice.
        let run = trigger(&d, "scoring");
        let ti = awaiting(&store, run, "push_scores").await;
        let first = store.latest_approval(ti.id).await.expect("a").expect("row");
        let staged = store.dataset(run, "score", "output").await.expect("registry").expect("score");
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "update {} set \"leadScore\" = \"leadScore\" + 100 where id in (select id from {} order by id limit 5)",
            staged.relation(),
            staged.relation()
        )))
        .execute(store.pool())
        .await
        .expect("change the staged rows");
        let before = sandbox_writes(&base).await;
        let out = cli(&["runs", "approve", &run.to_string(), "push_scores", "--as", "ada"]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let second = eventually("a second request", LONG, || async {
            store
                .latest_approval(ti.id)
                .await
                .ok()
                .flatten()
                .filter(|a| a.id != first.id && a.state == "pending")
        })
        .await;
        assert_ne!(second.digest, first.digest, "the plan changed");
        assert_eq!(second.to_send, first.to_send, "the same records, other values");
        let ti = awaiting(&store, run, "push_scores").await;
        assert_eq!((ti.try_number, ti.max_tries), (2, 3), "{ti:?}");
        assert_eq!(sandbox_writes(&base).await, before, "nothing sent on a changed plan");
        assert!(log_text(&store, ti.id).await.contains("the plan changed since ada approved it"));
        // This time through the API.
        let ada = token(&d, "ada");
        let approved = api(
            &web,
            reqwest::Method::POST,
            &format!("/api/runs/{run}/tasks/push_scores/approve"),
            Some(&ada),
            None,
        )
        .await;
        assert_eq!(approved.status, 200, "{}", approved.body);
        let approved: serde_json::Value = serde_json::from_str(&approved.body).unwrap_or_default();
        assert_eq!(approved["state"], "approved", "{approved}");
        assert_eq!(approved["decided_by"], "ada", "{approved}");
        assert_eq!(approved["digest"], second.digest.as_str(), "{approved}");
        let done = wait_finished(&store, run, LONG).await;
        assert_eq!(done.state, RunState::Success, "{done:?}\n{}", w.log());
        assert_eq!(sandbox_writes(&base).await, before + u64::try_from(second.to_send).unwrap_or(0));

        // 4. Nobody decides in time → failed.
        let run = trigger(&d, "scoring");
        let ti = awaiting(&store, run, "push_scores").await;
        let before = sandbox_writes(&base).await;
        // A day passes (the request's times moved back, so the scheduler's sweep finds it due).
        sqlx::query(
            "update return_approval set requested_at = requested_at - interval '24 hours 1 second', \
                    expires_at = expires_at - interval '24 hours 1 second' where task_instance_id = $1",
        )
        .bind(ti.id)
        .execute(store.pool())
        .await
        .expect("a day passes");
        let done = wait_finished(&store, run, LONG).await;
        assert_eq!(done.state, RunState::Failed, "{done:?}");
        let ti = store
            .task_instances(run)
            .await
            .expect("tasks")
            .into_iter()
            .find(|t| t.id == ti.id)
            .expect("task");
        assert_eq!(
            ti.last_error.as_deref(),
            Some("not approved within 24 h: nobody approved or rejected the plan in time")
        );
        assert_eq!(store.latest_approval(ti.id).await.expect("a").expect("row").state, "expired");
        assert_eq!(sandbox_writes(&base).await, before);
        let trail = audit(&store, run).await;
        assert!(trail.iter().any(|(a, b, _)| a == "drover" && b == "return.approval_expired"), "{trail:?}");
        hook_server.abort();
    });
}

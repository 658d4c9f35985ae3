//! Freshness against real processes (two schedulers, a worker, the web server, `drover dags
//! test`) and a real webhook receiver: a DAG that never ran goes stale once it has been in
//! the environment longer than its `max_age`; one that succeeded is fresh; a failed run and
//! a preview refresh nothing (a task's own successful try refreshes the task); each episode
//! of stale data is told exactly once (not at all when the data is fresh again before its
//! notification could be delivered) and the run that refreshes the data ends it; the home
//! page, the DAG's page and API, and `/metrics` show it. The test moves the clock by
//! backdating timestamps in its database, never by waiting.

mod support;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use support::web::{JsonAnswer, add_user, client, login, start_web, token};
use support::{Drover, TestDb, Workspace, eventually, serial, server_url};
use uuid::Uuid;

const LONG: Duration = Duration::from_secs(60);

type Received = Arc<Mutex<Vec<serde_json::Value>>>;

/// A webhook receiver keeping the bodies it takes: every POST but a `stale` one about the
/// DAG `flapping`, which it answers 500.
async fn receiver() -> (String, Received, tokio::task::JoinHandle<()>) {
    let got: Received = Arc::new(Mutex::new(Vec::new()));
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post({
            let got = got.clone();
            move |axum::Json(body): axum::Json<serde_json::Value>| {
                let got = got.clone();
                async move {
                    if body["drover"]["event"] == "stale" && body["drover"]["dag_id"] == "flapping"
                    {
                        return axum::http::StatusCode::INTERNAL_SERVER_ERROR;
                    }
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

/// The `event` notifications received so far.
fn received(got: &Received, event: &str) -> Vec<serde_json::Value> {
    got.lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .filter(|b| b["drover"]["event"] == event)
        .cloned()
        .collect()
}

/// The stale notifications received of `dag` (and `task`, "" for the DAG's own data).
fn stale_of(got: &Received, dag: &str, task: &str) -> Vec<serde_json::Value> {
    received(got, "stale")
        .into_iter()
        .filter(|b| {
            b["drover"]["dag_id"] == dag && b["drover"]["task_id"].as_str().unwrap_or("") == task
        })
        .collect()
}

async fn sql(store: &drover_store::Store, statement: &str, dag: &str) {
    sqlx::query(sqlx::AssertSqlSafe(statement.to_owned()))
        .bind(dag)
        .execute(store.pool())
        .await
        .unwrap_or_else(|e| panic!("{statement}: {e}"));
}

/// The DAG API's `freshness` in dev.
async fn freshness(base: &str, token: &str, dag: &str) -> serde_json::Value {
    let answer = client()
        .get(format!("{base}/api/dags/{dag}?env=dev"))
        .bearer_auth(token)
        .json_answer()
        .await;
    answer["freshness"]["dev"].clone()
}

async fn metrics(base: &str) -> String {
    client()
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .text()
        .await
        .unwrap_or_default()
}

fn run_id(out: &str) -> Uuid {
    Uuid::parse_str(out.trim()).unwrap_or_else(|e| panic!("{out}: {e}"))
}

#[test]
fn stale_data_is_shown_measured_and_told_once_per_episode() {
    let _turn = serial();
    let db = TestDb::new(&server_url());
    let ws = Workspace::new();
    let dev = ws.environments().join("dev.yaml");
    let mut env = std::fs::read_to_string(&dev).unwrap_or_else(|e| panic!("{e}"));
    env.push_str(
        "notifications:\n  - name: data-team\n    webhook: { env: TEST_FRESH_HOOK }\n    on: [stale, recovery]\n    dedup: 0s\n",
    );
    std::fs::write(&dev, env).unwrap_or_else(|e| panic!("{e}"));
    ws.dag(
        "never_ran",
        "id: never_ran\nfreshness: { max_age: 1h }\ntasks:\n  - id: step\n    noop: {}\n",
    );
    // The DAG's data must be under 1 h old, `load`'s under 2 h, `score`'s under 1 h.
    ws.dag(
        "scoring",
        "id: scoring\nfreshness: { max_age: 1h }\nparams:\n  ok: { type: string, default: \"yes\" }\ntasks:\n\
         \x20 - id: load\n    freshness: { max_age: 2h }\n    noop: {}\n\
         \x20 - id: score\n    depends_on: [load]\n    freshness: { max_age: 1h }\n    command: { shell: \"test {{ params.ok }} = yes\" }\n",
    );
    ws.dag(
        "flapping",
        "id: flapping\nfreshness: { max_age: 1h }\ntasks:\n  - id: step\n    noop: {}\n",
    );
    ws.dag("plain", "id: plain\ntasks:\n  - id: step\n    noop: {}\n");
    let d = Drover { db: &db, ws: &ws };
    d.ok(&["db", "migrate"]);
    add_user(&d, "admin", "admin");
    let viewer_password = add_user(&d, "vera", "viewer");
    let admin_token = token(&d, "admin");
    let rt = support::runtime();
    rt.block_on(async {
        let (hook, got, server) = receiver().await;
        let hooks = [("TEST_FRESH_HOOK", hook.as_str())];
        let scheduler_args = [
            "scheduler",
            "--tick-ms",
            "200",
            "--sync-secs",
            "1",
            "--public-url",
            "http://drover.example",
        ];
        // Two schedulers: each episode is still opened, and told, once.
        let _s1 = d.spawn_with("scheduler-1", &scheduler_args, &hooks);
        let _s2 = d.spawn_with("scheduler-2", &scheduler_args, &hooks);
        let _worker = d.worker("worker", 2, 5.0);
        let store = db.store().await;
        for dag in ["never_ran", "scoring", "flapping", "plain"] {
            support::synced(&store, dag).await;
        }
        let (_web, base) = start_web(&d, &[]).await;

        // A run that succeeded: fresh, the DAG's data and its tasks'.
        let first = run_id(&d.ok(&["runs", "trigger", "scoring", "--env", "dev", "--as", "admin"]));
        let r = support::wait_finished(&store, first, LONG).await;
        assert_eq!(r.state.as_str(), "success");
        let f = freshness(&base, &admin_token, "scoring").await;
        assert_eq!(f["stale"], false, "{f}");
        assert_eq!(f["max_age_secs"], 3_600, "{f}");
        assert!(f["age_secs"].as_i64().is_some_and(|a| a < 60), "{f}");
        assert_eq!(f["last_refreshed_by"], first.to_string(), "{f}");
        for task in ["load", "score"] {
            assert_eq!(f["tasks"][task]["stale"], false, "{f}");
            assert_eq!(f["tasks"][task]["last_refreshed_by"], first.to_string(), "{f}");
        }
        assert_eq!(f["tasks"]["load"]["max_age_secs"], 7_200, "{f}");

        // A DAG that never ran: stale once it has been in dev longer than its max_age — here
        // it came 10 h ago. It is paused, which does not keep its data fresh.
        d.ok(&["dags", "pause", "never_ran", "--env", "dev", "--as", "admin"]);
        sql(
            &store,
            "update dag_env set added_at = now() - interval '10 hours' where dag_id = $1",
            "never_ran",
        )
        .await;
        let told = eventually("never_ran's stale notification", LONG, || async {
            stale_of(&got, "never_ran", "").into_iter().next()
        })
        .await;
        let text = told["text"].as_str().unwrap_or_default();
        assert!(
            text.contains(
                "never_ran's data in dev is stale: never refreshed since it came to dev 10 h ago (it must be under 1 h)"
            ) && text.contains("<http://drover.example/dags/never_ran?env=dev|"),
            "{text}"
        );
        assert_eq!(told["drover"]["run_id"], serde_json::Value::Null, "{told}");
        assert_eq!(told["drover"]["freshness"]["max_age_secs"], 3_600, "{told}");

        // Refreshed before it could be told (the webhook refused it, and its retry comes
        // 5 s later): the retry is held back, the data being fresh again.
        sql(
            &store,
            "update dag_env set added_at = now() - interval '10 hours' where dag_id = $1",
            "flapping",
        )
        .await;
        eventually("the refused stale notification of flapping", LONG, || async {
            let refused: Option<(String, Option<String>)> = sqlx::query_as(
                "select state, reason from notification where event = 'stale' and dag_id = 'flapping'",
            )
            .fetch_optional(store.pool())
            .await
            .ok()
            .flatten();
            refused.filter(|(state, reason)| {
                state == "pending" && reason.as_deref().is_some_and(|r| r.contains("answered 500"))
            })
        })
        .await;
        let refresh = run_id(&d.ok(&["runs", "trigger", "flapping", "--env", "dev", "--as", "admin"]));
        assert_eq!(support::wait_finished(&store, refresh, LONG).await.state.as_str(), "success");
        let held = eventually("the retry to be held back", LONG, || async {
            let row: Option<(String, Option<String>)> = sqlx::query_as(
                "select state, reason from notification where event = 'stale' and dag_id = 'flapping'",
            )
            .fetch_optional(store.pool())
            .await
            .ok()
            .flatten();
            row.filter(|(state, _)| state != "pending")
        })
        .await;
        assert_eq!(held.0, "suppressed", "{held:?}");
        assert!(held.1.as_deref().is_some_and(|r| r.starts_with("fresh again before it was sent")), "{held:?}");
        assert!(stale_of(&got, "flapping", "").is_empty());

        // Refreshed 10 h ago: the DAG's data and each task's are stale, each told once.
        sql(
            &store,
            "update data_refresh set refreshed_at = refreshed_at - interval '10 hours' where dag_id = $1",
            "scoring",
        )
        .await;
        let (dag_told, score_told) = eventually("scoring's stale notifications", LONG, || async {
            let dag = stale_of(&got, "scoring", "").into_iter().next()?;
            let score = stale_of(&got, "scoring", "score").into_iter().next()?;
            stale_of(&got, "scoring", "load").into_iter().next()?;
            Some((dag, score))
        })
        .await;
        let text = dag_told["text"].as_str().unwrap_or_default();
        assert!(
            text.contains("scoring's data in dev is stale: last refreshed 10 h ago (it must be under 1 h)"),
            "{text}"
        );
        let text = score_told["text"].as_str().unwrap_or_default();
        assert!(
            text.contains("scoring.score's data in dev is stale: last refreshed 10 h ago (it must be under 1 h)"),
            "{text}"
        );
        let f = freshness(&base, &admin_token, "scoring").await;
        for (what, stale) in [(&f, &f["stale"]), (&f, &f["tasks"]["score"]["stale"]), (&f, &f["tasks"]["load"]["stale"])] {
            assert_eq!(stale, true, "{what}");
        }

        // A failed run refreshes nothing of the DAG's, nor of the task that failed; the task
        // that succeeded in it (`load`) is refreshed, which ends its episode.
        let failed = run_id(&d.ok(&[
            "runs", "trigger", "scoring", "--env", "dev", "--param", "ok=no", "--as", "admin",
        ]));
        let r = support::wait_finished(&store, failed, LONG).await;
        assert_eq!(r.state.as_str(), "failed");
        let f = freshness(&base, &admin_token, "scoring").await;
        assert_eq!(f["stale"], true, "{f}");
        assert_eq!(f["last_refreshed_by"], first.to_string(), "{f}");
        assert_eq!(f["tasks"]["score"]["last_refreshed_by"], first.to_string(), "{f}");
        assert_eq!(f["tasks"]["load"]["last_refreshed_by"], failed.to_string(), "{f}");
        assert_eq!(f["tasks"]["load"]["stale"], false, "{f}");
        let ended = store.ended_by_run(failed).await.unwrap_or_default();
        assert_eq!(
            ended.iter().map(|e| e.task_id.as_str()).collect::<Vec<_>>(),
            vec!["load"],
            "{ended:?}"
        );

        // A preview run (`drover dags test`, no --write) that succeeds refreshes nothing.
        let out = d.run(&["dags", "test", "scoring", "--env", "dev", "--sandbox-leads", "10", "--as", "admin"]);
        assert!(
            out.status.success(),
            "{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let previews: i64 = sqlx::query_scalar(
            "select count(*) from dag_run where dag_id = 'scoring' and preview and state = 'success'",
        )
        .fetch_one(store.pool())
        .await
        .unwrap_or_default();
        assert_eq!(previews, 1);
        let f = freshness(&base, &admin_token, "scoring").await;
        assert_eq!(f["stale"], true, "{f}");
        assert_eq!(f["last_refreshed_by"], first.to_string(), "{f}");
        assert_eq!(f["tasks"]["load"]["last_refreshed_by"], failed.to_string(), "{f}");

        // Shown: the home page's stale data (a viewer reads it), the DAG's page, /metrics.
        let viewer = login(&base, "vera", &viewer_password).await;
        let home = viewer.get("/").await;
        let stale_section = home
            .body
            .split("id=\"stale-dev\"")
            .nth(1)
            .and_then(|rest| rest.split("</section>").next())
            .unwrap_or_else(|| panic!("no stale data section: {}", home.body));
        for (dag, task) in [("never_ran", ""), ("scoring", ""), ("scoring", "score")] {
            assert!(
                stale_section.contains(&format!("data-dag=\"{dag}\" data-task=\"{task}\"")),
                "{dag}.{task} not listed: {stale_section}"
            );
        }
        assert!(
            !stale_section.contains("data-task=\"load\"")
                && !stale_section.contains("plain")
                && !stale_section.contains("flapping"),
            "{stale_section}"
        );
        assert!(stale_section.contains("3 DAGs or tasks have data older than it should be in DEV"), "{stale_section}");
        assert!(
            stale_section.contains("Data 10 h old, must be under 1 h")
                && stale_section.contains("Never refreshed since it came to dev 10 h ago, must be under 1 h"),
            "{stale_section}"
        );
        let never = stale_section
            .split("data-dag=\"never_ran\"")
            .nth(1)
            .and_then(|rest| rest.split("</li>").next())
            .unwrap_or_default();
        assert!(never.contains(">paused</span>"), "a paused DAG goes stale, and says so: {never}");
        let page = viewer.get("/dags/scoring?env=dev").await;
        assert!(
            page.body.contains("id=\"dag-freshness\" data-freshness=\"stale\""),
            "{}",
            page.body
        );
        assert!(page.body.contains("data-task=\"load\" data-freshness=\"fresh\""), "{}", page.body);
        assert!(page.body.contains("Stale: data 10 h old, must be under 1 h"), "{}", page.body);
        assert!(page.body.contains("old, must be under 2 h"), "{}", page.body);
        let m = metrics(&base).await;
        for line in [
            "drover_data_stale{environment=\"dev\",dag=\"never_ran\",task=\"\"} 1",
            "drover_data_stale{environment=\"dev\",dag=\"scoring\",task=\"\"} 1",
            "drover_data_stale{environment=\"dev\",dag=\"scoring\",task=\"score\"} 1",
            "drover_data_stale{environment=\"dev\",dag=\"scoring\",task=\"load\"} 0",
            "# TYPE drover_data_age_seconds gauge",
        ] {
            assert!(m.contains(line), "{line} not in\n{m}");
        }
        assert!(!m.contains("dag=\"plain\",task="), "plain declares no freshness:\n{m}");
        let age = m
            .lines()
            .find_map(|l| l.strip_prefix("drover_data_age_seconds{environment=\"dev\",dag=\"never_ran\",task=\"\"} "))
            .and_then(|v| v.parse::<i64>().ok())
            .unwrap_or_else(|| panic!("no age of never_ran:\n{m}"));
        assert!((36_000..36_600).contains(&age), "{age}");

        // The run that refreshes the data ends the DAG's and `score`'s episodes; it recovers
        // from the failed run, and its recovery says the data is fresh again.
        let refresh = run_id(&d.ok(&["runs", "trigger", "scoring", "--env", "dev", "--as", "admin"]));
        let r = support::wait_finished(&store, refresh, LONG).await;
        assert_eq!(r.state.as_str(), "success");
        let ended = store.ended_by_run(refresh).await.unwrap_or_default();
        let ended_tasks: Vec<&str> = ended.iter().map(|e| e.task_id.as_str()).collect();
        assert_eq!(ended_tasks, vec!["", "score"], "{ended:?}");
        let f = freshness(&base, &admin_token, "scoring").await;
        assert_eq!((f["stale"].as_bool(), f["tasks"]["score"]["stale"].as_bool()), (Some(false), Some(false)), "{f}");
        let recovery = eventually("the recovery", LONG, || async {
            received(&got, "recovery")
                .into_iter()
                .find(|b| b["drover"]["run_id"] == refresh.to_string())
        })
        .await;
        let text = recovery["text"].as_str().unwrap_or_default();
        assert!(
            text.contains("scoring's data in dev is fresh again (it was stale for")
                && text.contains("scoring.score's data in dev is fresh again"),
            "{text}"
        );

        // Stale again: a new episode, told again; every episode is told exactly once, however
        // many scheduler passes (of two schedulers) saw it open.
        sql(
            &store,
            "update data_refresh set refreshed_at = refreshed_at - interval '10 hours' where dag_id = $1 and task_id = ''",
            "scoring",
        )
        .await;
        eventually("scoring's second stale notification", LONG, || async {
            (stale_of(&got, "scoring", "").len() == 2).then_some(())
        })
        .await;
        let mut per_episode: HashMap<i64, usize> = HashMap::new();
        for b in received(&got, "stale") {
            let episode = b["drover"]["stale_episode"]
                .as_i64()
                .unwrap_or_else(|| panic!("no episode: {b}"));
            *per_episode.entry(episode).or_default() += 1;
        }
        assert_eq!(
            per_episode.len(),
            5,
            "never_ran, scoring twice, scoring.score, scoring.load: {per_episode:?}"
        );
        assert!(per_episode.values().all(|n| *n == 1), "{per_episode:?}");
        // (id, DAG, task, told, open)
        let episodes: Vec<(i64, String, String, bool, bool)> = sqlx::query_as(
            "select id, dag_id, task_id, notified_at is not null, cleared_at is null from stale_episode order by id",
        )
        .fetch_all(store.pool())
        .await
        .unwrap_or_default();
        assert_eq!(episodes.len(), 6, "{episodes:?}");
        assert!(
            episodes.iter().all(|e| e.3 == (e.1 != "flapping")),
            "each told but flapping's: {episodes:?}"
        );
        let open: Vec<(&str, &str)> = episodes
            .iter()
            .filter(|e| e.4)
            .map(|e| (e.1.as_str(), e.2.as_str()))
            .collect();
        assert_eq!(open, vec![("never_ran", ""), ("scoring", "")], "{episodes:?}");
        let rows: i64 = sqlx::query_scalar(
            "select count(*) from notification where event = 'stale'",
        )
        .fetch_one(store.pool())
        .await
        .unwrap_or_default();
        assert_eq!(rows, 6);

        // The DAG's page keeps the history; the notifications page names the stale data.
        let page = viewer.get("/dags/scoring?env=dev").await;
        assert!(page.body.contains("refreshed by a run"), "{}", page.body);
        assert!(page.body.contains("still stale"), "{}", page.body);
        let list = viewer.get("/notifications").await;
        assert!(list.body.contains("stale data</a>"), "{}", list.body);
        server.abort();
    });
}

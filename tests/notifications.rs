//! Notifications against real processes and a real webhook receiver: a DAG that keeps
//! failing tells each channel once (the repeats recorded as suppressed duplicates, or held
//! back by the channel's hourly limit), a webhook error is retried, and the recovery is told.

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use support::web::JsonAnswer;
use support::web::{add_user, client, login, start_web, token};
use support::{Drover, TestDb, Workspace, eventually, serial, server_url};

/// What the receiver got: (path, body); it answers the first POST to /ops with 500.
type Received = Arc<Mutex<Vec<(String, serde_json::Value)>>>;

async fn receiver() -> (String, Received, tokio::task::JoinHandle<()>) {
    let got: Received = Arc::new(Mutex::new(Vec::new()));
    let failed_once = Arc::new(Mutex::new(false));
    let app = axum::Router::new().route(
        "/{channel}",
        axum::routing::post({
            let got = got.clone();
            move |axum::extract::Path(channel): axum::extract::Path<String>,
                  axum::Json(body): axum::Json<serde_json::Value>| {
                let (got, failed_once) = (got.clone(), failed_once.clone());
                async move {
                    if channel == "ops" {
                        let mut f = failed_once.lock().unwrap_or_else(|e| e.into_inner());
                        if !*f {
                            *f = true;
                            return axum::http::StatusCode::INTERNAL_SERVER_ERROR;
                        }
                    }
                    got.lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push((channel, body));
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
    (format!("http://{addr}"), got, server)
}

fn received(got: &Received, channel: &str) -> Vec<serde_json::Value> {
    got.lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .filter(|(c, _)| c == channel)
        .map(|(_, b)| b.clone())
        .collect()
}

#[test]
fn a_failing_dag_tells_each_channel_once_and_its_recovery_too() {
    let _turn = serial();
    let db = TestDb::new(&server_url());
    let ws = Workspace::new();
    let dev = ws.environments().join("dev.yaml");
    let mut text = std::fs::read_to_string(&dev).unwrap_or_else(|e| panic!("{e}"));
    text.push_str(
        "notifications:\n  - name: ops\n    webhook: { env: TEST_OPS_HOOK }\n\
         \x20 - name: pager\n    webhook: { env: TEST_PAGER_HOOK }\n    on: [failure]\n    dedup: 0s\n    max_per_hour: 1\n",
    );
    std::fs::write(&dev, text).unwrap_or_else(|e| panic!("{e}"));
    ws.dag(
        "flaky",
        "id: flaky\nparams:\n  ok: { type: string, default: \"no\" }\ntasks:\n  - id: step\n    command: { shell: \"test {{ params.ok }} = yes\" }\n",
    );
    let d = Drover { db: &db, ws: &ws };
    d.ok(&["db", "migrate"]);
    let password = add_user(&d, "admin", "admin");
    let admin_token = token(&d, "admin");
    let rt = support::runtime();
    rt.block_on(async {
        let (hooks, got, server) = receiver().await;
        let ops = format!("{hooks}/ops");
        let pager = format!("{hooks}/pager");
        let _scheduler = d.spawn_with(
            "scheduler",
            &[
                "scheduler",
                "--tick-ms",
                "200",
                "--sync-secs",
                "1",
                "--public-url",
                "http://drover.example",
            ],
            &[("TEST_OPS_HOOK", &ops), ("TEST_PAGER_HOOK", &pager)],
        );
        let _worker = d.worker("worker", 2, 5.0);
        let store = db.store().await;
        support::synced(&store, "flaky").await;
        for _ in 0..3 {
            let run = d.ok(&["runs", "trigger", "flaky", "--env", "dev", "--as", "admin"]);
            let run = uuid::Uuid::parse_str(&run).unwrap_or_else(|e| panic!("{e}"));
            let r = support::wait_finished(&store, run, Duration::from_secs(30)).await;
            assert_eq!(r.state.as_str(), "failed");
        }
        // ops: one failure (after the webhook's 500, retried) and one last-try message; the
        // repeats are duplicates. pager: one failure, then its hourly limit.
        let all = eventually(
            "every notification to be settled",
            Duration::from_secs(60),
            || async {
                let list = store.notifications(100).await.ok()?;
                (list.len() == 9 && list.iter().all(|n| n.state != "pending")).then_some(list)
            },
        )
        .await;
        let of = |channel: &str, event: &str, state: &str| {
            all.iter()
                .filter(|n| n.channel == channel && n.event == event && n.state == state)
                .count()
        };
        assert_eq!(of("ops", "failure", "sent"), 1, "{all:#?}");
        assert_eq!(of("ops", "failure", "suppressed"), 2, "{all:#?}");
        assert_eq!(of("ops", "retry_exhausted", "sent"), 1, "{all:#?}");
        assert_eq!(of("ops", "retry_exhausted", "suppressed"), 2, "{all:#?}");
        assert_eq!(of("pager", "failure", "sent"), 1, "{all:#?}");
        assert_eq!(of("pager", "failure", "suppressed"), 2, "{all:#?}");
        assert!(
            all.iter().any(|n| n.attempts == 2 && n.state == "sent"),
            "the 500 was not retried: {all:#?}"
        );
        assert!(
            all.iter()
                .filter(|n| n.channel == "ops" && n.state == "suppressed")
                .all(|n| n
                    .reason
                    .as_deref()
                    .is_some_and(|r| r.starts_with("duplicate")))
        );
        assert!(
            all.iter()
                .filter(|n| n.channel == "pager" && n.state == "suppressed")
                .all(|n| n
                    .reason
                    .as_deref()
                    .is_some_and(|r| r.starts_with("rate limit")))
        );
        let to_ops = received(&got, "ops");
        assert_eq!(to_ops.len(), 2, "{to_ops:?}");
        let failure = to_ops
            .iter()
            .find(|b| b["drover"]["event"] == "failure")
            .unwrap_or_else(|| panic!("{to_ops:?}"));
        let text = failure["text"].as_str().unwrap_or_default();
        assert!(
            text.contains("flaky failed in dev") && text.contains("http://drover.example/runs/"),
            "{text}"
        );
        assert_eq!(received(&got, "pager").len(), 1);

        // It recovers: told once, to the channel that wants recoveries.
        let run = d.ok(&[
            "runs", "trigger", "flaky", "--env", "dev", "--param", "ok=yes", "--as", "admin",
        ]);
        let run = uuid::Uuid::parse_str(&run).unwrap_or_else(|e| panic!("{e}"));
        let r = support::wait_finished(&store, run, Duration::from_secs(30)).await;
        assert_eq!(r.state.as_str(), "success");
        eventually(
            "the recovery to be told",
            Duration::from_secs(30),
            || async {
                received(&got, "ops")
                    .iter()
                    .any(|b| {
                        b["drover"]["event"] == "recovery"
                            && b["drover"]["run_id"] == run.to_string()
                    })
                    .then_some(())
            },
        )
        .await;
        assert_eq!(
            received(&got, "pager").len(),
            1,
            "pager wants failures only"
        );

        // Recorded and visible: the API and the page.
        let (_web, base) = start_web(&d, &[]).await;
        let api: serde_json::Value = client()
            .get(format!("{base}/api/notifications"))
            .bearer_auth(&admin_token)
            .json_answer()
            .await;
        assert_eq!(
            api["notifications"].as_array().map(Vec::len),
            Some(10),
            "{api}"
        );
        let session = login(&base, "admin", &password).await;
        let page = session.get("/notifications").await;
        assert!(
            page.body.contains("rate limit") && page.body.contains("duplicate"),
            "{}",
            page.body
        );
        // The webhook URL is a secret: not on the page, not in the API.
        assert!(!page.body.contains(&hooks) && !api.to_string().contains(&hooks));
        server.abort();
    });
}

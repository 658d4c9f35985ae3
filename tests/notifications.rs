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

/// Add `channels` (YAML list items) as the dev environment's `notifications:`.
fn add_channels(ws: &Workspace, channels: &str) {
    let dev = ws.environments().join("dev.yaml");
    let mut text = std::fs::read_to_string(&dev).unwrap_or_else(|e| panic!("{e}"));
    text.push_str("notifications:\n");
    text.push_str(channels);
    std::fs::write(&dev, text).unwrap_or_else(|e| panic!("{e}"));
}

/// A scheduler that tells `http://drover.example` as its web address, with the webhook and
/// SMTP URLs in `hooks` (variable, value).
fn scheduler(d: &Drover<'_>, hooks: &[(&str, &str)]) -> support::Proc {
    d.spawn_with(
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
        hooks,
    )
}

/// `/metrics` of the web server at `base`.
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

#[test]
fn a_failing_dag_tells_each_channel_once_and_its_recovery_too() {
    let _turn = serial();
    let db = TestDb::new(&server_url());
    let ws = Workspace::new();
    add_channels(
        &ws,
        "  - name: ops\n    webhook: { env: TEST_OPS_HOOK }\n\
         \x20 - name: pager\n    webhook: { env: TEST_PAGER_HOOK }\n    on: [failure]\n    dedup: 0s\n    max_per_hour: 1\n",
    );
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
        let _scheduler = scheduler(&d, &[("TEST_OPS_HOOK", &ops), ("TEST_PAGER_HOOK", &pager)]);
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

#[test]
fn missed_deadlines_and_breached_checks_are_marked_and_told_to_the_channels_that_want_them() {
    let _turn = serial();
    let db = TestDb::new(&server_url());
    let ws = Workspace::new();
    // `late` hears only about the `slow` DAG's deadlines; `data` only about checks.
    add_channels(
        &ws,
        "  - name: late\n    webhook: { env: TEST_LATE_HOOK }\n    on: [deadline_missed]\n    dags: [slow]\n    dedup: 0s\n\
         \x20 - name: data\n    webhook: { env: TEST_DATA_HOOK }\n    on: [check_breach]\n",
    );
    ws.dag(
        "slow",
        "id: slow\ndeadline: { within: 3s }\ntasks:\n  - id: wait\n    deadline: { within: 2s }\n    noop: { sleep: 5s }\n\
         \x20 - id: after\n    depends_on: [wait]\n    deadline: { within: 1h }\n    noop: {}\n",
    );
    ws.dag(
        "also_slow",
        "id: also_slow\ndeadline: { within: 1s }\ntasks:\n  - id: wait\n    noop: { sleep: 3s }\n",
    );
    ws.dag(
        "prompt",
        "id: prompt\ndeadline: { by: \"23:59\" }\ntasks:\n  - id: quick\n    noop: {}\n",
    );
    ws.dag(
        "volume",
        "id: volume\ntasks:\n  - id: enough_rows\n    check: { sql: \"select 0\", min: 1, severity: warn }\n",
    );
    let d = Drover { db: &db, ws: &ws };
    d.ok(&["db", "migrate"]);
    let password = add_user(&d, "admin", "admin");
    let admin_token = token(&d, "admin");
    let rt = support::runtime();
    rt.block_on(async {
        let (hooks, got, server) = receiver().await;
        let (late, data) = (format!("{hooks}/late"), format!("{hooks}/data"));
        let _scheduler = scheduler(&d, &[("TEST_LATE_HOOK", &late), ("TEST_DATA_HOOK", &data)]);
        let _worker = d.worker("worker", 4, 5.0);
        let store = db.store().await;
        let mut runs = std::collections::HashMap::new();
        for dag in ["slow", "also_slow", "prompt", "volume"] {
            support::synced(&store, dag).await;
            let run = d.ok(&["runs", "trigger", dag, "--env", "dev", "--as", "admin"]);
            let run = uuid::Uuid::parse_str(&run).unwrap_or_else(|e| panic!("{e}"));
            runs.insert(dag, run);
        }
        for run in runs.values() {
            support::wait_finished(&store, *run, Duration::from_secs(60)).await;
        }
        // Every deadline settles: the slow ones missed (run and task), the rest met.
        let settled = eventually(
            "the deadlines to settle",
            Duration::from_secs(20),
            || async {
                let slow = store.get_run(runs["slow"]).await.ok()?;
                let prompt = store.get_run(runs["prompt"]).await.ok()?;
                let tasks = store.task_instances(runs["slow"]).await.ok()?;
                (slow.deadline_state.as_deref() == Some("missed")
                    && prompt.deadline_state.as_deref() == Some("met")
                    && tasks
                        .iter()
                        .all(|t| t.deadline_state.as_deref() != Some("pending")))
                .then_some((slow, prompt))
            },
        )
        .await;
        let (slow, prompt) = settled;
        let due = slow.deadline_at.unwrap_or_else(|| panic!("no deadline"));
        assert_eq!(
            (due - slow.logical_date).num_milliseconds(),
            3_000,
            "{slow:?}"
        );
        assert!(prompt.deadline_at.is_some_and(|d| d > prompt.created_at));
        let tasks = store.task_instances(runs["slow"]).await.unwrap_or_default();
        let deadline_of = |id: &str| {
            tasks
                .iter()
                .find(|t| t.task_id == id)
                .and_then(|t| t.deadline_state.clone())
        };
        assert_eq!(deadline_of("wait").as_deref(), Some("missed"));
        assert_eq!(deadline_of("after").as_deref(), Some("met"));

        // Told: `late` gets the slow run's and its task's misses, not also_slow's; `data` gets
        // the breached check.
        let told = eventually("the misses to be told", Duration::from_secs(30), || async {
            let late = received(&got, "late");
            let data = received(&got, "data");
            (late.len() >= 2 && !data.is_empty()).then_some((late, data))
        })
        .await;
        tokio::time::sleep(Duration::from_secs(3)).await;
        let (late, data) = (received(&got, "late"), received(&got, "data"));
        assert_eq!(late.len(), 2, "{late:?} (first seen {:?})", told.0);
        assert!(
            late.iter()
                .all(|b| b["drover"]["event"] == "deadline_missed"
                    && b["drover"]["dag_id"] == "slow")
        );
        assert!(
            late.iter().any(|b| b["text"]
                .as_str()
                .unwrap_or_default()
                .contains("slow.wait missed its deadline")),
            "{late:?}"
        );
        assert_eq!(data.len(), 1, "{data:?}");
        assert_eq!(data[0]["drover"]["event"], "check_breach");
        assert_eq!(data[0]["drover"]["task_id"], "enough_rows");
        let also_slow = store
            .get_run(runs["also_slow"])
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(also_slow.deadline_state.as_deref(), Some("missed"));

        // Marked in the UI and the API, counted in /metrics.
        let (_web, base) = start_web(&d, &[]).await;
        let session = login(&base, "admin", &password).await;
        let page = session.get(&format!("/runs/{}", runs["slow"])).await;
        assert!(
            page.body
                .contains("id=\"run-deadline\" data-deadline=\"missed\""),
            "{}",
            page.body
        );
        assert!(page.body.contains("missed deadline"), "{}", page.body);
        let page = session.get(&format!("/runs/{}", runs["prompt"])).await;
        assert!(
            page.body.contains("data-deadline=\"met\"") && page.body.contains("by 23:59"),
            "{}",
            page.body
        );
        let history = session.get("/dags/slow?env=dev").await;
        assert!(history.body.contains("deadline-missed"), "{}", history.body);
        let history = session.get("/dags/prompt?env=dev").await;
        assert!(
            !history.body.contains("deadline-missed"),
            "{}",
            history.body
        );
        let detail: serde_json::Value = client()
            .get(format!("{base}/api/runs/{}", runs["slow"]))
            .bearer_auth(&admin_token)
            .json_answer()
            .await;
        assert_eq!(detail["run"]["deadline_state"], "missed", "{detail}");
        let wait = detail["tasks"]
            .as_array()
            .and_then(|t| t.iter().find(|t| t["task_id"] == "wait"))
            .cloned()
            .unwrap_or_default();
        assert_eq!(wait["deadline_state"], "missed", "{detail}");
        let metrics = metrics(&base).await;
        assert!(
            metrics.contains("drover_deadlines_missed{environment=\"dev\"} 3"),
            "{metrics}"
        );
        server.abort();
    });
}

#[test]
fn data_slos_keep_an_error_budget_and_a_fast_burn_is_told() {
    let _turn = serial();
    let db = TestDb::new(&server_url());
    let ws = Workspace::new();
    add_channels(
        &ws,
        "  - name: slo\n    webhook: { env: TEST_SLO_HOOK }\n    on: [slo_burn]\n",
    );
    // "form submissions in the last hour ≥ 1", held to 99 %; a share held to 50 %.
    ws.dag(
        "forms",
        "id: forms\nparams:\n  fills: { type: integer, default: 5 }\ntasks:\n  - id: enough_fills\n    check:\n      sql: \"select {{ params.fills }}\"\n      min: 1\n      severity: warn\n      slo: { objective: 99%, period: 28d }\n",
    );
    ws.dag(
        "crm",
        "id: crm\nparams:\n  missing: { type: number, default: 0.01 }\ntasks:\n  - id: missing_ratio\n    check:\n      sql: \"select {{ params.missing }}\"\n      max: 0.02\n      severity: warn\n      slo: { objective: 0.5, period: 7d }\n",
    );
    let d = Drover { db: &db, ws: &ws };
    d.ok(&["db", "migrate"]);
    let password = add_user(&d, "admin", "admin");
    let admin_token = token(&d, "admin");
    let rt = support::runtime();
    rt.block_on(async {
        let (hooks, got, server) = receiver().await;
        let hook = format!("{hooks}/slo");
        let _scheduler = scheduler(&d, &[("TEST_SLO_HOOK", &hook)]);
        let _worker = d.worker("worker", 2, 5.0);
        let store = db.store().await;
        support::synced(&store, "forms").await;
        support::synced(&store, "crm").await;
        // Each: three good checks, then one bad.
        for (dag, param) in [("forms", ["fills=5", "fills=0"]), ("crm", ["missing=0.01", "missing=0.3"])] {
            for p in [param[0], param[0], param[0], param[1]] {
                let run = d.ok(&["runs", "trigger", dag, "--env", "dev", "--param", p, "--as", "admin"]);
                let run = uuid::Uuid::parse_str(&run).unwrap_or_else(|e| panic!("{e}"));
                let r = support::wait_finished(&store, run, Duration::from_secs(30)).await;
                assert_eq!(r.state.as_str(), "success", "a warn check does not fail its run");
            }
        }
        // 99 %: one failure in four overspends the budget and burns it 25× as fast as allowed
        // — told once. 50 %: half of its budget is left, no burn alert.
        let told = eventually("the fast burn to be told", Duration::from_secs(30), || async {
            let got = received(&got, "slo");
            (!got.is_empty()).then_some(got)
        })
        .await;
        tokio::time::sleep(Duration::from_secs(3)).await;
        let all = received(&got, "slo");
        assert_eq!(all.len(), 1, "{all:?} (first {told:?})");
        assert_eq!(all[0]["drover"]["event"], "slo_burn");
        assert_eq!(all[0]["drover"]["dag_id"], "forms");
        assert!(
            all[0]["text"].as_str().unwrap_or_default().contains("forms.enough_fills is burning its error budget fast"),
            "{all:?}"
        );

        let (_web, base) = start_web(&d, &[]).await;
        let api: serde_json::Value = client()
            .get(format!("{base}/api/slos?env=dev"))
            .bearer_auth(&admin_token)
            .json_answer()
            .await;
        let slo = |dag: &str| {
            api["slos"]
                .as_array()
                .and_then(|a| a.iter().find(|s| s["dag_id"] == dag))
                .cloned()
                .unwrap_or_else(|| panic!("no SLO of {dag}: {api}"))
        };
        let forms = slo("forms");
        assert_eq!((forms["good"].as_i64(), forms["total"].as_i64()), (Some(3), Some(4)), "{api}");
        assert_eq!(forms["verdict"], "exhausted");
        let left = forms["status"]["budget_remaining"].as_f64().unwrap_or(1.0);
        assert!((left + 24.0).abs() < 1e-6, "{forms}");
        let crm = slo("crm");
        assert_eq!(crm["verdict"], "ok");
        assert!((crm["status"]["budget_remaining"].as_f64().unwrap_or(0.0) - 0.5).abs() < 1e-9, "{crm}");
        assert!((crm["status"]["sli"].as_f64().unwrap_or(0.0) - 0.75).abs() < 1e-9, "{crm}");

        let session = login(&base, "admin", &password).await;
        let page = session.get("/checks?env=dev").await;
        for (slo, verdict) in [("forms.enough_fills", "exhausted"), ("crm.missing_ratio", "ok")] {
            assert!(
                page.body.contains(&format!("data-slo=\"{slo}\" data-verdict=\"{verdict}\"")),
                "{slo}: {}",
                page.body
            );
        }
        assert!(page.body.contains("3 of 4 passed") && page.body.contains("99% over 28d") && page.body.contains("50% over 7d"), "{}", page.body);
        let metrics = metrics(&base).await;
        for line in [
            "drover_slo_error_budget_remaining{environment=\"dev\",dag=\"crm\",check=\"missing_ratio\"} 0.5",
            "drover_slo_sli{environment=\"dev\",dag=\"forms\",check=\"enough_fills\"} 0.75",
            "drover_slo_burn_rate{environment=\"dev\",dag=\"forms\",check=\"enough_fills\",window=\"1h\"} 25",
        ] {
            assert!(metrics.contains(line), "{line} not in\n{metrics}");
        }
        server.abort();
    });
}

/// A minimal SMTP server (RFC 5321's happy path, no TLS): each accepted message as
/// (recipients, data).
type Mails = Arc<Mutex<Vec<(Vec<String>, String)>>>;

async fn smtp_server() -> (u16, Mails, tokio::task::JoinHandle<()>) {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let mails: Mails = Arc::new(Mutex::new(Vec::new()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let port = listener.local_addr().map(|a| a.port()).unwrap_or(0);
    let store = mails.clone();
    let server = tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            let store = store.clone();
            tokio::spawn(async move {
                let (read, mut write) = socket.into_split();
                let mut lines = BufReader::new(read).lines();
                let _ = write.write_all(b"220 test-smtp ready\r\n").await;
                let (mut rcpt, mut data, mut in_data) = (Vec::new(), String::new(), false);
                while let Ok(Some(line)) = lines.next_line().await {
                    if in_data {
                        if line == "." {
                            in_data = false;
                            store
                                .lock()
                                .unwrap_or_else(|e| e.into_inner())
                                .push((std::mem::take(&mut rcpt), std::mem::take(&mut data)));
                            let _ = write.write_all(b"250 queued\r\n").await;
                        } else {
                            data.push_str(&line);
                            data.push('\n');
                        }
                        continue;
                    }
                    let verb = line.get(..4).unwrap_or_default().to_ascii_uppercase();
                    let answer: &[u8] = match verb.as_str() {
                        "EHLO" | "HELO" => b"250 test-smtp\r\n",
                        "RCPT" => {
                            rcpt.push(line.clone());
                            b"250 ok\r\n"
                        }
                        "DATA" => {
                            in_data = true;
                            b"354 go on\r\n"
                        }
                        "QUIT" => {
                            let _ = write.write_all(b"221 bye\r\n").await;
                            break;
                        }
                        _ => b"250 ok\r\n",
                    };
                    let _ = write.write_all(answer).await;
                }
            });
        }
    });
    (port, mails, server)
}

#[test]
fn a_channel_can_be_email_over_smtp() {
    let _turn = serial();
    let db = TestDb::new(&server_url());
    let ws = Workspace::new();
    add_channels(
        &ws,
        "  - name: mail\n    email:\n      smtp: { env: TEST_SMTP_URL }\n      from: drover@example.com\n      to: [ops@example.com, data@example.com]\n    on: [failure]\n",
    );
    ws.dag(
        "boom",
        "id: boom\ntasks:\n  - id: fail\n    noop: { fail: true }\n",
    );
    let d = Drover { db: &db, ws: &ws };
    d.ok(&["db", "migrate"]);
    add_user(&d, "admin", "admin");
    let rt = support::runtime();
    rt.block_on(async {
        let (port, mails, server) = smtp_server().await;
        let url = format!("smtp://127.0.0.1:{port}");
        let _scheduler = scheduler(&d, &[("TEST_SMTP_URL", &url)]);
        let _worker = d.worker("worker", 2, 5.0);
        let store = db.store().await;
        support::synced(&store, "boom").await;
        let run = d.ok(&["runs", "trigger", "boom", "--env", "dev", "--as", "admin"]);
        let run = uuid::Uuid::parse_str(&run).unwrap_or_else(|e| panic!("{e}"));
        support::wait_finished(&store, run, Duration::from_secs(30)).await;
        let (rcpt, data) = eventually("the email", Duration::from_secs(30), || async {
            mails
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .first()
                .cloned()
        })
        .await;
        assert_eq!(rcpt.len(), 2, "{rcpt:?}");
        assert!(
            rcpt.iter().any(|r| r.contains("<ops@example.com>"))
                && rcpt.iter().any(|r| r.contains("<data@example.com>")),
            "{rcpt:?}"
        );
        assert!(
            data.contains("Subject: [Drover] boom failed in dev"),
            "{data}"
        );
        assert!(
            data.contains(&format!("http://drover.example/runs/{run}")),
            "{data}"
        );
        assert!(data.contains("From: drover@example.com"), "{data}");
        // The notification is recorded as sent once the SMTP session has ended, a moment after
        // the server has the message.
        let sent = eventually(
            "the mail to be recorded as sent",
            Duration::from_secs(10),
            || async {
                let all = store.notifications(10).await.unwrap_or_default();
                all.iter().any(|n| n.state != "pending").then_some(all)
            },
        )
        .await;
        assert_eq!(sent.len(), 1);
        assert_eq!(
            (sent[0].channel.as_str(), sent[0].state.as_str()),
            ("mail", "sent")
        );
        server.abort();
    });
}

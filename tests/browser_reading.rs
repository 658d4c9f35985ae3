//! Pages a business user reads, in a real headless Chromium against real `drover` processes:
//! a return's receipt (old → new per record, Marketo's answer, the rejected-only filter and
//! the CSV download), with the environment's row access rules in force; a broken DAG file's
//! error on the DAG's page; terms explained on hover and in the glossary; the audit log in
//! words.

mod support;

use std::time::Duration;

use drover_store::RunState;
use support::browser::Browser;
use support::gitrepo::{commit, git};
use support::web::{add_user, start_web};
use support::{
    Drover, TestDb, Workspace, runtime, serial, server_url, start_sandbox, synced, wait_finished,
    window_days,
};
use uuid::Uuid;

const LONG: Duration = Duration::from_secs(60);
const CLIENT_ID: &str = "drover-reading";
const SECRET: &str = "reading-secret-71d2";

async fn log_in(b: &Browser, base: &str, name: &str, password: &str) {
    b.goto(&format!("{base}/login")).await;
    b.find("#name").await.type_text(name).await;
    b.find("#password").await.type_text(password).await;
    b.find("#login").await.click().await;
    b.wait_for_url("/dags", LONG).await;
}

async fn log_out(b: &Browser) {
    b.find("#logout").await.click().await;
    b.wait_for_url("/login", LONG).await;
}

/// Leads of the last 60 days scored +3 and returned by import, which the sandbox's
/// `partial-import` fault answers with about 1 % of rows rejected.
fn dag() -> String {
    let (since, until) = window_days(60);
    format!(
        r#"id: bump
tasks:
  - id: export_leads
    export:
      object: leads
      fields: [id, email, leadScore, updatedAt]
      filter: {{ updated_at: {{ since: "{since}", until: "{until}" }} }}
  - id: bump
    depends_on: [export_leads]
    transform:
      - derive: {{ leadScore: "coalesce(\"leadScore\", 0) + 3" }}
  - id: push
    depends_on: [bump]
    return: {{ object: leads, lookup: id, fields: [email, leadScore], mode: import }}
"#
    )
}

#[test]
fn a_receipt_reads_as_old_to_new_with_rejections_and_downloads_as_csv() {
    let _turn = serial();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let db = TestDb::new(&server_url());
    let ws = Workspace::new();
    runtime().block_on(async {
        let map = start_sandbox(
            1_000,
            5,
            CLIENT_ID,
            SECRET,
            "partial-import".parse().unwrap_or_else(|e| panic!("{e}")),
        )
        .await;
        ws.map_environment(&map.base_url(), CLIENT_ID, SECRET, None);
        // Rows of dev are for operators and above: a viewer sees counts only.
        let env = ws.environments().join("dev.yaml");
        let yaml = std::fs::read_to_string(&env).unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(&env, format!("{yaml}rows_visible_to: operator\n"))
            .unwrap_or_else(|e| panic!("{e}"));
        ws.dag("bump", &dag());
        let d = Drover { db: &db, ws: &ws };
        d.ok(&["db", "migrate"]);
        let _admin = add_user(&d, "admin", "admin");
        let otto = add_user(&d, "otto", "operator");
        let vera = add_user(&d, "vera", "viewer");
        let _s = d.scheduler("scheduler");
        let _w = d.worker("worker", 2, 10.0);
        let store = db.store().await;
        synced(&store, "bump").await;
        let run =
            Uuid::parse_str(&d.ok(&["runs", "trigger", "bump", "--env", "dev", "--as", "admin"]))
                .unwrap_or_else(|e| panic!("{e}"));
        let row = wait_finished(&store, run, Duration::from_secs(180)).await;
        assert_eq!(row.state, RunState::Success, "{row:?}");
        let (_web, base) = start_web(&d, &[]).await;
        let b = Browser::start().await;

        // The operator follows the run page's link to the receipt.
        log_in(&b, &base, "otto", &otto).await;
        b.goto(&format!("{base}/runs/{run}")).await;
        b.find("tr[data-task=push] a.receipt-link")
            .await
            .click()
            .await;
        b.wait_for_url(&format!("/runs/{run}/tasks/push/receipt"), LONG)
            .await;
        let counts = b.find("#receipt-counts").await.text().await;
        assert!(counts.contains("sent to Marketo"), "{counts}");
        assert!(counts.contains("rejected"), "{counts}");
        assert!(
            b.find("#receipt-range")
                .await
                .text()
                .await
                .starts_with("Records 1–100 of "),
            "100 records a page"
        );
        // An updated record: its email, and the score it had → the score sent.
        let accepted = b.find("tr.record.accepted").await;
        let text = accepted.text().await;
        assert!(text.contains('@'), "no email: {text}");
        assert!(
            text.contains("leadScore:") && text.contains(" → "),
            "{text}"
        );
        let key = accepted.attr("data-key").await.unwrap_or_default();
        let lead: serde_json::Value =
            reqwest::get(format!("{}/_sandbox/leads/{key}", map.base_url()))
                .await
                .unwrap_or_else(|e| panic!("{e}"))
                .json()
                .await
                .unwrap_or_else(|e| panic!("{e}"));
        let now = lead["leadScore"].as_i64().unwrap_or(-1);
        assert!(
            text.contains(&format!("→ {now}")),
            "the page says {text}, the sandbox holds {now}"
        );
        // The next page goes on after the last key.
        b.find("#next-page").await.click().await;
        b.wait_for_url("after=", LONG).await;
        assert!(
            b.find("#receipt-range")
                .await
                .text()
                .await
                .starts_with("Records 101–200 of "),
        );

        // Rejected only: every record listed is rejected, with Marketo's reason.
        b.find("#show-rejected").await.click().await;
        b.wait_for_url("show=rejected", LONG).await;
        let rows = b.find_all("tr.record").await;
        assert!(!rows.is_empty(), "no rejected records listed");
        let mut rejected_key = String::new();
        for r in &rows {
            assert_eq!(r.attr("data-status").await.as_deref(), Some("rejected"));
            let text = r.text().await;
            assert!(text.contains("rejected"), "{text}");
            rejected_key = r.attr("data-key").await.unwrap_or_default();
        }
        b.find("tr.record .reason").await;

        // The CSV, fetched with the browser's session.
        let cookie = b
            .cookies()
            .await
            .into_iter()
            .find(|c| c["name"] == "drover_session")
            .and_then(|c| c["value"].as_str().map(str::to_owned))
            .unwrap_or_else(|| panic!("no session cookie"));
        let csv = reqwest::Client::new()
            .get(format!("{base}/runs/{run}/tasks/push/receipt.csv"))
            .header("cookie", format!("drover_session={cookie}"))
            .send()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(csv.status(), 200);
        assert_eq!(
            csv.headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok()),
            Some("text/csv; charset=utf-8")
        );
        let body = csv.text().await.unwrap_or_else(|e| panic!("{e}"));
        let mut lines = body.lines();
        assert_eq!(
            lines.next(),
            Some("key,email,status,reason,changes,new_record")
        );
        let sent: i64 = store
            .dataset(run, "push", "receipt")
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .map_or(0, |d| d.row_count);
        assert_eq!(
            i64::try_from(body.lines().count() - 1).unwrap_or_default(),
            sent,
            "one line per record"
        );
        let line = body
            .lines()
            .find(|l| l.starts_with(&format!("{rejected_key},")))
            .unwrap_or_else(|| panic!("{rejected_key} not in the CSV"));
        assert!(line.contains(",rejected,"), "{line}");
        log_out(&b).await;

        // A viewer sees the counts and why rows are hidden, and gets no CSV.
        log_in(&b, &base, "vera", &vera).await;
        b.goto(&format!("{base}/runs/{run}/tasks/push/receipt"))
            .await;
        let note = b.find("#receipt-note").await.text().await;
        assert!(note.contains("visible to operators and admins"), "{note}");
        assert!(!b.exists("tr.record").await);
        assert!(
            b.find("#receipt-counts")
                .await
                .text()
                .await
                .contains("rejected")
        );
        let viewer = support::web::login(&base, "vera", &vera).await;
        let denied = viewer
            .get(&format!("/runs/{run}/tasks/push/receipt.csv"))
            .await;
        assert_eq!(denied.status, 403, "{}", denied.body);
    });
}

#[test]
fn a_broken_dag_file_shows_its_error_on_the_dag_page() {
    let _g = serial();
    let db = TestDb::new(&server_url());
    let ws = Workspace::new();
    let repo = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let r = repo.path();
    git(r, &["init", "-q", "-b", "main"]);
    commit(
        r,
        &[(
            "dags/hello.yaml",
            Some("id: hello\ntasks:\n  - id: a\n    noop: {}\n"),
        )],
        "first",
    );
    let d = Drover { db: &db, ws: &ws };
    let repo_path = r.display().to_string();
    d.ok(&["db", "migrate"]);
    d.ok(&["--repo", &repo_path, "repo", "sync"]);
    let broken = commit(
        r,
        &[(
            "dags/hello.yaml",
            Some("id: hello\ntasks:\n  - id: a\n    noop: {}\n    retrys: 2\n"),
        )],
        "hello broken",
    );
    d.ok(&["--repo", &repo_path, "repo", "sync"]);
    let _admin = add_user(&d, "admin", "admin");
    let vera = add_user(&d, "vera", "viewer");
    runtime().block_on(async {
        let (_web, base) =
            start_web(&d, &["--repo", &repo_path, "--repo-cache", "web-repos"]).await;
        let b = Browser::start().await;
        log_in(&b, &base, "vera", &vera).await;
        b.goto(&format!("{base}/dags/hello?env=dev")).await;
        let banner = b.find("#import-error").await.text().await;
        assert_eq!(
            b.find("#import-error-file").await.text().await,
            "dags/hello.yaml"
        );
        assert_eq!(
            b.find("#import-error-place").await.text().await,
            "line 5, column 5"
        );
        assert!(
            b.find("#import-error-message")
                .await
                .text()
                .await
                .contains("unknown key `retrys`, did you mean `retries`?"),
            "{banner}"
        );
        assert!(banner.contains(&broken[..10]), "{banner}");
        assert!(
            banner.contains("keeps running the last version"),
            "{banner}"
        );

        // Terms explain themselves on hover, and all together in the glossary.
        let content = b.find("#versions abbr.term").await;
        assert!(
            content
                .attr("title")
                .await
                .is_some_and(|t| t.contains("fingerprint")),
            "no explanation of the content hash"
        );
        b.find("nav a[href='/help/glossary']").await.click().await;
        b.wait_for_url("/help/glossary", LONG).await;
        let burn = b.find("#term-burn_rate + dd").await.text().await;
        assert!(burn.contains("error budget"), "{burn}");

        // The audit log: the action in words and a one-line summary, the JSON on demand.
        b.goto(&format!("{base}/audit")).await;
        let row = b
            .find("#audit tr[data-action='user.add']")
            .await
            .text()
            .await;
        assert!(row.contains("added a user"), "{row}");
        assert!(row.contains("role: viewer · user: vera"), "{row}");
        assert!(!row.contains('{'), "the JSON shows unasked: {row}");
        assert!(
            b.exists("#audit tr[data-action='user.add'] details pre")
                .await
        );
    });
}

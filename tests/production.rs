//! The production shape: one Postgres, and Drover as separate processes — a scheduler, two
//! workers and the web server — configured by one settings file (as they would be on several
//! machines), DAGs from a git repository, JSON logs. A run triggered over the API goes through
//! all of them against the MAP sandbox, and each process stops cleanly on SIGTERM.

mod support;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use drover_mapsim::FaultProfile;
use support::gitrepo::{commit, git};
use support::web::JsonAnswer;
use support::web::{client, free_port};
use support::{Proc, TestDb, Workspace, eventually, serial, server_url, start_sandbox};

const CLIENT_ID: &str = "prod-shape";
const SECRET: &str = "prod-shape-secret";

/// `drover ARGS` configured by the settings file only: no DATABASE_URL or DROVER_* variable
/// from the test's own environment.
fn drover(config: &Path, args: &[&str]) -> Command {
    let mut cmd = support::bare_drover();
    cmd.args(args)
        .env("DROVER_CONFIG", config)
        .current_dir(config.parent().unwrap_or(Path::new(".")));
    cmd
}

fn ok(config: &Path, args: &[&str]) -> String {
    let out = drover(config, args)
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        out.status.success(),
        "drover {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn spawn(config: &Path, name: &str, args: &[&str]) -> Proc {
    let log = config.with_file_name(format!("{name}.log"));
    let file = std::fs::File::create(&log).unwrap_or_else(|e| panic!("{e}"));
    let child = drover(config, args)
        .stdout(Stdio::null())
        .stderr(file)
        .spawn()
        .unwrap_or_else(|e| panic!("{e}"));
    Proc::new(child, name, log)
}

fn dag(since: &str, until: &str) -> String {
    format!(
        "id: scores\nschedule: \"0 3 * * *\"\ntasks:\n\
         \x20 - id: export_leads\n    export: {{ object: leads, fields: [id, email, leadScore], filter: {{ updated_at: {{ since: \"{since}\", until: \"{until}\" }} }} }}\n\
         \x20 - id: score\n    depends_on: [export_leads]\n    transform:\n      - dedupe: {{ key: email, keep: first }}\n      - derive: {{ leadScore: \"coalesce(\\\"leadScore\\\", 0) + 5\" }}\n\
         \x20 - id: push\n    depends_on: [score]\n    return: {{ object: leads, lookup: id, fields: [leadScore] }}\n\
         \x20 - id: side_a\n    depends_on: [export_leads]\n    noop: {{ sleep: 1s }}\n\
         \x20 - id: side_b\n    depends_on: [export_leads]\n    noop: {{ sleep: 1s }}\n\
         \x20 - id: side_c\n    depends_on: [export_leads]\n    noop: {{ sleep: 1s }}\n\
         \x20 - id: side_d\n    depends_on: [export_leads]\n    noop: {{ sleep: 1s }}\n"
    )
}

#[test]
fn separate_scheduler_workers_and_web_run_a_dag_from_git() {
    let _turn = serial();
    let db = TestDb::new(&server_url());
    let ws = Workspace::new();
    let rt = support::runtime();
    let map = rt.block_on(start_sandbox(
        2_000,
        11,
        CLIENT_ID,
        SECRET,
        FaultProfile::default(),
    ));
    ws.map_environment(&map.base_url(), CLIENT_ID, SECRET, None);
    let (since, until) = support::window_days(60);
    // The DAG repository: its own git repository, DEV following `main`.
    let repo = ws.path().join("repo");
    std::fs::create_dir_all(&repo).unwrap_or_else(|e| panic!("{e}"));
    git(&repo, &["init", "-q", "-b", "main"]);
    let head = commit(
        &repo,
        &[("dags/scores.yaml", Some(dag(&since, &until).as_str()))],
        "scores",
    );
    let port = free_port();
    let config = ws.path().join("drover.yaml");
    std::fs::write(
        &config,
        format!(
            "# One file for every process.\n\
             database_url: {}\nrepo: {}\nrepo_cache: {}\nenvironments_dir: {}\n\
             log_format: json\nsync_secs: 1\ntick_ms: 200\nconcurrency: 2\npoll_ms: 200\n\
             grace_secs: 10\nweb_listen: 127.0.0.1:{port}\n",
            db.url,
            repo.display(),
            ws.path().join("cache").display(),
            ws.environments().display()
        ),
    )
    .unwrap_or_else(|e| panic!("{e}"));

    ok(&config, &["db", "migrate"]);
    let password = ok(&config, &["users", "add", "ops", "--role", "admin"]);
    assert!(password.contains("password: "), "{password}");
    let token = ok(&config, &["users", "token", "ops", "--as", "ops"]);
    let token = token
        .lines()
        .find_map(|l| l.split_whitespace().find(|w| w.starts_with("drv_")))
        .unwrap_or_else(|| panic!("no token in {token}"))
        .to_owned();

    let mut scheduler = spawn(&config, "scheduler", &["scheduler"]);
    let mut worker_1 = spawn(&config, "worker-1", &["worker", "--id", "w1"]);
    let mut worker_2 = spawn(&config, "worker-2", &["worker", "--id", "w2"]);
    let mut web = spawn(&config, "web", &["web"]);
    let base = format!("http://127.0.0.1:{port}");
    let c = client();
    rt.block_on(async {
        support::web::wait_until_ok(&format!("{base}/readyz"), Duration::from_secs(30)).await;
        let api = |path: &str| c.get(format!("{base}{path}")).bearer_auth(&token);
        // The scheduler synced DEV to the repository's head.
        eventually("DEV to run the repository's head", Duration::from_secs(30), || async {
            let body: serde_json::Value = api("/api/environments").send().await.ok()?.json().await.ok()?;
            let dev = body["environments"]
                .as_array()?
                .iter()
                .find(|e| e["name"] == "dev")?
                .clone();
            (dev["current"]["commit_sha"] == head.as_str()).then_some(())
        })
        .await;
        let created: serde_json::Value = c
            .post(format!("{base}/api/dags/scores/runs"))
            .bearer_auth(&token)
            .json(&serde_json::json!({ "environment": "dev" }))
            .json_answer()
            .await;
        let run = created["run_id"]
            .as_str()
            .unwrap_or_else(|| panic!("no run id in {created}"))
            .to_owned();
        let done = eventually("the run to finish", Duration::from_secs(120), || async {
            let body: serde_json::Value = api(&format!("/api/runs/{run}")).send().await.ok()?.json().await.ok()?;
            matches!(body["run"]["state"].as_str(), Some("success" | "failed")).then_some(body)
        })
        .await;
        assert_eq!(done["run"]["state"], "success", "{done}");
        assert_eq!(done["run"]["commit_sha"], head.as_str(), "{done}");
        let pushed = done["tasks"]
            .as_array()
            .and_then(|t| t.iter().find(|t| t["task_id"] == "push"))
            .and_then(|t| t["rows_out"].as_i64())
            .unwrap_or(0);
        assert!(pushed > 0, "{done}");
        let stats: serde_json::Value = c
            .get(format!("{}/_sandbox/stats", map.base_url()))
            .json_answer()
            .await;
        assert!(stats["leadsWritten"].as_i64().unwrap_or(0) >= pushed, "{stats}");
        // Both workers took part (four one-second tasks, two slots each).
        let store = db.store().await;
        let workers: Vec<String> = sqlx::query_scalar(
            "select distinct t.worker_id from task_try t join task_instance i on i.id = t.task_instance_id \
             where i.run_id = $1 order by 1",
        )
        .bind(uuid::Uuid::parse_str(&run).unwrap_or_else(|e| panic!("{e}")))
        .fetch_all(store.pool())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(workers, ["w1", "w2"]);
    });

    // JSON logs, one object a line, from every service.
    for p in [&scheduler, &worker_1, &web] {
        let log = p.log();
        let lines: Vec<&str> = log.lines().filter(|l| !l.trim().is_empty()).collect();
        assert!(!lines.is_empty(), "{} logged nothing", p.name);
        for line in lines {
            let v: serde_json::Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("{}: not JSON ({e}): {line}", p.name));
            assert!(
                v["level"].is_string() && v["timestamp"].is_string(),
                "{line}"
            );
        }
    }
    // SIGTERM: each stops on its own, successfully.
    for p in [&mut web, &mut scheduler, &mut worker_1, &mut worker_2] {
        let status = p.terminate(Duration::from_secs(20));
        assert!(
            status.is_some_and(|s| s.success()),
            "{} did not stop cleanly: {status:?}\n{}",
            p.name,
            p.log()
        );
    }
    drop(map);
}

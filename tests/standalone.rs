//! `drover standalone` brings up its own Postgres, runs DAGs, and stops cleanly on Ctrl-C,
//! leaving no process behind; a second start reuses the cluster.

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::{Workspace, serial};

struct Started {
    child: std::process::Child,
    database_url: String,
    web: String,
    login: (String, String),
    took: Duration,
}

fn start(ws: &Workspace, home: &std::path::Path) -> Started {
    let began = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_drover"))
        .args(["standalone", "--listen", "127.0.0.1:0", "--home"])
        .arg(home)
        .env_remove("DATABASE_URL")
        .env("DROVER_DAGS_DIR", ws.dags())
        .env("DROVER_ENVIRONMENTS_DIR", ws.environments())
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("{e}"));
    let stdout = child.stdout.take().unwrap_or_else(|| panic!("no stdout"));
    let (mut url, mut web, mut login) = (String::new(), String::new(), String::new());
    for line in BufReader::new(stdout).lines().map_while(Result::ok) {
        if let Some(u) = line.strip_prefix("Web UI:") {
            web = u.trim().to_owned();
        }
        if let Some(l) = line.strip_prefix("Log in as:") {
            login = l.trim().to_owned();
        }
        if let Some(u) = line.split("export DATABASE_URL=").nth(1) {
            url = u.trim().to_owned();
            break;
        }
        assert!(
            began.elapsed() < Duration::from_secs(60),
            "standalone did not come up"
        );
    }
    assert!(!url.is_empty(), "standalone printed no database URL");
    let took = began.elapsed();
    let (user, password) = login
        .split_once(" / ")
        .map(|(u, p)| (u.to_owned(), p.to_owned()))
        .unwrap_or_else(|| panic!("standalone printed no login: {login:?}"));
    Started {
        child,
        database_url: url,
        web,
        login: (user, password),
        took,
    }
}

/// Stops a standalone left running by a failed assertion (Ctrl-C first, so it stops its
/// Postgres; SIGKILL if that does not work).
struct Running(std::process::Child);

impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = Command::new("kill")
                .arg("-INT")
                .arg(self.0.id().to_string())
                .status();
            for _ in 0..200 {
                if let Ok(Some(_)) = self.0.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// Trigger `dag` in dev through the CLI and wait for its run to succeed; its id.
fn run_to_success(url: &str, dag: &str, timeout_secs: u32) -> String {
    let drover = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_drover"))
            .args(args)
            .env("DATABASE_URL", url)
            .output()
            .unwrap_or_else(|e| panic!("{e}"))
    };
    let run = String::from_utf8_lossy(
        &drover(&["runs", "trigger", dag, "--env", "dev", "--as", "admin"]).stdout,
    )
    .trim()
    .to_owned();
    let waited = drover(&["runs", "wait", &run, "--timeout", &timeout_secs.to_string()]);
    assert_eq!(
        String::from_utf8_lossy(&waited.stdout).trim(),
        "success",
        "{dag}: {}",
        String::from_utf8_lossy(&waited.stderr)
    );
    run
}

fn interrupt(child: &mut std::process::Child) -> std::process::ExitStatus {
    let _ = Command::new("kill")
        .arg("-INT")
        .arg(child.id().to_string())
        .status();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "standalone did not stop on Ctrl-C"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn standalone_runs_dags_on_its_own_postgres_and_stops_cleanly() {
    let _turn = serial();
    let ws = Workspace::new();
    ws.dag(
        "hello",
        "id: hello\ntasks:\n  - id: say\n    command: { argv: [echo, hi] }\n",
    );
    // DEV's MAP is a local address: standalone starts a sandbox there and hands its made-up
    // credentials to the worker itself.
    let map_port = drover_store::embedded::free_port().unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(
        ws.environments().join("dev.yaml"),
        format!(
            "name: dev\norder: 1\nbranch: main\nmap:\n  kind: marketo\n  base_url: http://127.0.0.1:{map_port}\n  client_id: {{ env: DEV_MAP_ID }}\n  client_secret: {{ env: DEV_MAP_SECRET }}\n"
        ),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let (since, until) = support::window_days(30);
    ws.dag(
        "bump",
        &format!(
            "id: bump\ntasks:\n  - id: export_leads\n    export: {{ object: leads, fields: [id, leadScore], filter: {{ updated_at: {{ since: \"{since}\", until: \"{until}\" }} }} }}\n\
             \x20 - id: bump\n    depends_on: [export_leads]\n    transform:\n      - derive: {{ leadScore: \"coalesce(\\\"leadScore\\\", 0) + 1\" }}\n\
             \x20 - id: push\n    depends_on: [bump]\n    return: {{ object: leads, lookup: id, fields: [leadScore] }}\n"
        ),
    );
    let home = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let first = start(&ws, home.path());
    let url = first.database_url.clone();
    let mut child = Running(first.child);
    // The web UI answers, and the printed admin login works.
    let (web, (user, password)) = (first.web.clone(), first.login.clone());
    support::runtime().block_on(async {
        let session = support::web::login(&web, &user, &password).await;
        let page = session.get("/dags").await;
        assert_eq!(page.status.as_u16(), 200);
        assert!(page.body.contains("hello"), "{}", page.body);
    });
    let run = run_to_success(&url, "hello", 30);
    // A MAP DAG runs against the sandbox, which then holds the scores.
    run_to_success(&url, "bump", 90);
    let _ = rustls::crypto::ring::default_provider().install_default();
    let stats: serde_json::Value = support::runtime().block_on(async {
        reqwest::get(format!("http://127.0.0.1:{map_port}/_sandbox/stats"))
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .json()
            .await
            .unwrap_or_else(|e| panic!("stats: {e}"))
    });
    assert!(stats["leadsWritten"].as_u64().unwrap_or(0) > 0, "{stats}");
    assert!(interrupt(&mut child.0).success());
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", map_port)).is_err(),
        "the sandbox was left running"
    );
    let pid_file = home.path().join("postgres/pgdata/postmaster.pid");
    assert!(!pid_file.exists(), "Postgres was left running");

    // Warm start: the cluster is reused, the run is still there.
    let again = start(&ws, home.path());
    let mut child = Running(again.child);
    assert_eq!(url, again.database_url, "the embedded cluster moved");
    assert_eq!(again.login, (user, password), "the admin login changed");
    eprintln!("warm start to ready: {:?}", again.took);
    assert!(again.took < Duration::from_secs(30));
    let listed = Command::new(env!("CARGO_BIN_EXE_drover"))
        .args(["runs", "list"])
        .env("DATABASE_URL", &url)
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(String::from_utf8_lossy(&listed.stdout).contains(&run));
    assert!(interrupt(&mut child.0).success());
    assert!(!pid_file.exists(), "Postgres was left running");
}

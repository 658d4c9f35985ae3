//! Helpers for end-to-end tests: a database of their own, DAG folders, and `drover`
//! processes that are killed when the test ends.
#![allow(dead_code, unreachable_pub)]

pub mod approvals;
pub mod browser;
pub mod events;
pub mod gitrepo;
pub mod pg;
pub mod tasks;
pub mod web;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use drover_store::Store;

/// Base URL of the Postgres server tests use (each test creates its own database there).
pub fn server_url() -> String {
    std::env::var("DROVER_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// Tests that start several processes take turns, so two cores are not oversubscribed.
pub fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("runtime: {e}"))
}

/// A database for one test, dropped at the end.
pub struct TestDb {
    pub url: String,
    name: String,
    server: String,
}

impl TestDb {
    pub fn new(server: &str) -> Self {
        let name = format!("drover_test_{}", uuid::Uuid::new_v4().simple());
        let base = server.rsplit_once('/').map_or(server, |(b, _)| b);
        Self {
            url: format!("{base}/{name}"),
            name,
            server: server.to_owned(),
        }
    }

    pub async fn store(&self) -> Store {
        let store = Store::connect(&self.url, 4)
            .await
            .unwrap_or_else(|e| panic!("connect {}: {e}", self.url));
        store
            .migrate()
            .await
            .unwrap_or_else(|e| panic!("migrate: {e}"));
        store
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let server = self.server.clone();
        let name = self.name.clone();
        // Drop runs outside any runtime: use a thread with its own.
        let _ = std::thread::spawn(move || {
            let rt = runtime();
            rt.block_on(async {
                if let Ok(store) = Store::connect(&server, 1).await {
                    let sql = format!("drop database if exists \"{name}\" with (force)");
                    let _ = sqlx::query(sqlx::AssertSqlSafe(sql))
                        .execute(store.pool())
                        .await;
                }
            });
        })
        .join();
    }
}

/// A folder with `dags/` and `environments/` (a dev environment pointing nowhere real).
pub struct Workspace {
    pub dir: tempfile::TempDir,
}

impl Workspace {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        std::fs::create_dir_all(dir.path().join("dags")).unwrap_or_else(|e| panic!("{e}"));
        std::fs::create_dir_all(dir.path().join("environments")).unwrap_or_else(|e| panic!("{e}"));
        let ws = Self { dir };
        ws.environment("dev", 1, true);
        ws
    }

    pub fn environment(&self, name: &str, order: u32, branch: bool) {
        let branch = if branch { "branch: main\n" } else { "" };
        let text = format!(
            "name: {name}\norder: {order}\n{branch}map:\n  kind: marketo\n  base_url: http://127.0.0.1:9\n  client_id: {{ env: X_ID }}\n  client_secret: {{ env: X_SECRET }}\nvariables: {{ greeting: hello }}\n"
        );
        std::fs::write(
            self.dir.path().join(format!("environments/{name}.yaml")),
            text,
        )
        .unwrap_or_else(|e| panic!("{e}"));
    }

    /// Environment `dev` with its MAP at `base_url`, the credentials in files of the workspace
    /// (`budget`: the daily MAP API budget, if any). Bulk status is polled every 250 ms doubling
    /// to 2 s: the sandbox's jobs take about a second and its status is current.
    pub fn map_environment(
        &self,
        base_url: &str,
        client_id: &str,
        secret: &str,
        budget: Option<u64>,
    ) {
        let dir = self.path();
        std::fs::write(dir.join("client_id"), client_id).unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(dir.join("client_secret"), secret).unwrap_or_else(|e| panic!("{e}"));
        let budget = budget
            .map(|b| format!("map_daily_api_budget: {b}\n"))
            .unwrap_or_default();
        std::fs::write(
            self.environments().join("dev.yaml"),
            format!(
                "name: dev\norder: 1\nbranch: main\nmap:\n  kind: marketo\n  base_url: {base_url}\n  status_poll: {{ first: 250ms, max: 2s }}\n  client_id: {{ file: {} }}\n  client_secret: {{ file: {} }}\n{budget}",
                dir.join("client_id").display(),
                dir.join("client_secret").display()
            ),
        )
        .unwrap_or_else(|e| panic!("{e}"));
    }

    pub fn dag(&self, id: &str, yaml: &str) {
        std::fs::write(self.dags().join(format!("{id}.yaml")), yaml)
            .unwrap_or_else(|e| panic!("{e}"));
    }

    pub fn dags(&self) -> PathBuf {
        self.dir.path().join("dags")
    }

    pub fn environments(&self) -> PathBuf {
        self.dir.path().join("environments")
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

/// A `drover` child process, SIGKILLed (with its children) when dropped.
pub struct Proc {
    pub child: Child,
    pub name: String,
    log: PathBuf,
}

impl Proc {
    /// A process started elsewhere, its stderr in `log`.
    pub fn new(child: Child, name: &str, log: PathBuf) -> Self {
        Self {
            child,
            name: name.to_owned(),
            log,
        }
    }

    pub fn pid(&self) -> i32 {
        i32::try_from(self.child.id()).unwrap_or(0)
    }

    /// SIGKILL: the process gets no chance to clean up.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM and wait for the exit status.
    pub fn terminate(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Ok(Some(s)) = self.child.try_wait() {
                return Some(s);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("---- {} log ----\n{}", self.name, self.log());
        }
    }
}

/// A `drover` command that inherits none of this process's DATABASE_URL and DROVER_*
/// variables: its settings are only what the test gives it.
pub fn bare_drover() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_drover"));
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy();
        if name == "DATABASE_URL" || name.starts_with("DROVER_") {
            cmd.env_remove(&*name);
        }
    }
    cmd.env("RUST_LOG", "info,sqlx=warn");
    cmd
}

/// Runs `drover` against a test database and workspace.
pub struct Drover<'a> {
    pub db: &'a TestDb,
    pub ws: &'a Workspace,
}

impl Drover<'_> {
    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_drover"));
        cmd.args(args)
            .env("DATABASE_URL", &self.db.url)
            .env("DROVER_DAGS_DIR", self.ws.dags())
            .env("DROVER_ENVIRONMENTS_DIR", self.ws.environments())
            .env("RUST_LOG", "info,sqlx=warn")
            .current_dir(self.ws.path());
        cmd
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.command(args)
            .output()
            .unwrap_or_else(|e| panic!("drover {args:?}: {e}"))
    }

    /// Run and return stdout, panicking on a non-zero exit.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "drover {args:?} failed: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    pub fn spawn(&self, name: &str, args: &[&str]) -> Proc {
        self.spawn_with(name, args, &[])
    }

    /// Spawn with extra environment variables.
    pub fn spawn_with(&self, name: &str, args: &[&str], envs: &[(&str, &str)]) -> Proc {
        let log = self
            .ws
            .path()
            .join(format!("{name}-{}.log", uuid::Uuid::new_v4().simple()));
        let file = std::fs::File::create(&log).unwrap_or_else(|e| panic!("{e}"));
        let child = self
            .command(args)
            .envs(envs.iter().copied())
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn drover {args:?}: {e}"));
        Proc {
            child,
            name: name.to_owned(),
            log,
        }
    }

    pub fn scheduler(&self, name: &str) -> Proc {
        self.spawn(
            name,
            &[
                "scheduler",
                "--tick-ms",
                "200",
                "--sync-secs",
                "1",
                "--timeout-grace-secs",
                "2",
            ],
        )
    }

    pub fn worker(&self, name: &str, concurrency: usize, lease_secs: f64) -> Proc {
        let c = concurrency.to_string();
        let l = lease_secs.to_string();
        self.spawn(
            name,
            &[
                "worker",
                "--concurrency",
                &c,
                "--lease-secs",
                &l,
                "--poll-ms",
                "200",
                "--grace-secs",
                "5",
            ],
        )
    }
}

/// A MAP sandbox on a free local port accepting `client_id` / `secret`, with `leads` seeded
/// leads and `faults`.
pub async fn start_sandbox(
    leads: usize,
    seed: u64,
    client_id: &str,
    secret: &str,
    faults: drover_mapsim::FaultProfile,
) -> drover_mapsim::RunningSandbox {
    drover_mapsim::start(
        drover_mapsim::SandboxConfig {
            leads,
            seed,
            client_id: client_id.to_owned(),
            client_secret: secret.to_owned(),
            faults,
            ..drover_mapsim::SandboxConfig::default()
        },
        std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
    )
    .await
    .unwrap_or_else(|e| panic!("sandbox: {e}"))
}

/// Time stamps for windows: `days` ago at midnight, and tomorrow at midnight (UTC, RFC 3339).
pub fn window_days(days: i64) -> (String, String) {
    let day = |t: chrono::DateTime<chrono::Utc>| t.format("%Y-%m-%dT00:00:00Z").to_string();
    let now = chrono::Utc::now();
    (
        day(now - chrono::Duration::days(days)),
        day(now + chrono::Duration::days(1)),
    )
}

/// Wait until the scheduler has read `dag` into environment dev.
pub async fn synced(store: &Store, dag: &str) {
    eventually(
        &format!("DAG {dag} to be synced"),
        Duration::from_secs(20),
        || async { store.dag_env(dag, "dev").await.ok() },
    )
    .await;
}

/// Wait for run `id` to finish (success or failure), or panic after `timeout`.
pub async fn wait_finished(
    store: &Store,
    id: uuid::Uuid,
    timeout: Duration,
) -> drover_store::RunRow {
    eventually(&format!("run {id} to finish"), timeout, || async {
        store
            .get_run(id)
            .await
            .ok()
            .filter(|r| r.state.is_finished())
    })
    .await
}

/// Poll `check` until it returns Some, or panic after `timeout`.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

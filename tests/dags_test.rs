//! `drover dags test`: the real binary runs one DAG from the working tree, in its own process,
//! against a MAP sandbox, on a test database (and once on a throwaway cluster of its own).

mod support;

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use support::gitrepo::{commit, git};
use support::web::JsonAnswer;
use support::{TestDb, serial, server_url};

/// A copy of this repository's `dags/` and `environments/`, each environment's MAP moved to
/// a free port of its own (`dev_port`), in a git checkout with everything committed.
struct Tree {
    dir: tempfile::TempDir,
    dev_port: u16,
}

impl Tree {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let here = Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut ports = std::collections::BTreeMap::new();
        let mut files: Vec<(String, String)> = Vec::new();
        for folder in ["dags", "environments"] {
            for entry in std::fs::read_dir(here.join(folder)).unwrap_or_else(|e| panic!("{e}")) {
                let path = entry.unwrap_or_else(|e| panic!("{e}")).path();
                let mut text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{e}"));
                for fixed in 9911..=9914u16 {
                    let from = format!("127.0.0.1:{fixed}");
                    if text.contains(&from) {
                        let port = *ports.entry(fixed).or_insert_with(support::web::free_port);
                        text = text.replace(&from, &format!("127.0.0.1:{port}"));
                    }
                }
                let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
                files.push((format!("{folder}/{}", name.unwrap_or_default()), text));
            }
        }
        git(dir.path(), &["init", "-q", "-b", "main"]);
        let refs: Vec<(&str, Option<&str>)> = files
            .iter()
            .map(|(p, t)| (p.as_str(), Some(t.as_str())))
            .collect();
        commit(dir.path(), &refs, "the example DAGs");
        let dev_port = ports[&9911];
        Self { dir, dev_port }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn write(&self, file: &str, text: &str) {
        let path = self.path().join(file);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).unwrap_or_else(|e| panic!("{e}"));
        }
        std::fs::write(path, text).unwrap_or_else(|e| panic!("{e}"));
    }

    /// DEV's MAP at `base_url`, with the credentials in the variables DT_MAP_ID / DT_MAP_SECRET.
    fn dev_map(&self, base_url: &str) {
        self.write(
            "environments/dev.yaml",
            &format!(
                "name: dev\norder: 1\nbranch: main\nmap:\n  kind: marketo\n  base_url: {base_url}\n  status_poll: {{ first: 250ms, max: 1s }}\n  client_id: {{ env: DT_MAP_ID }}\n  client_secret: {{ env: DT_MAP_SECRET }}\nconcurrency: 4\n"
            ),
        );
    }

    /// `drover ARGS` in the tree, with only the settings given here.
    fn drover(&self, args: &[&str], database_url: Option<&str>) -> Command {
        let mut cmd = support::bare_drover();
        cmd.args(args)
            .current_dir(self.path())
            .env("RUST_LOG", "warn");
        if let Some(url) = database_url {
            cmd.env("DATABASE_URL", url);
        }
        cmd
    }

    fn run(&self, args: &[&str], database_url: Option<&str>) -> Output {
        self.drover(args, database_url)
            .output()
            .unwrap_or_else(|e| panic!("drover {args:?}: {e}"))
    }
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn port_is_free(port: u16) -> bool {
    std::net::TcpStream::connect(("127.0.0.1", port)).is_err()
}

/// The line of task `id` in a `dags test` report that says how it ended.
fn ended<'a>(stdout: &'a str, id: &str) -> Option<&'a str> {
    stdout.lines().find(|l| {
        let mut words = l.split_once("] ").map(|(_, rest)| rest.split_whitespace());
        let mut next = || words.as_mut().and_then(Iterator::next);
        next() == Some(id) && next().is_some_and(|s| s != "running")
    })
}

#[test]
fn each_example_dag_runs_from_the_working_tree_against_a_sandbox_it_starts() {
    let _turn = serial();
    let tree = Tree::new();
    let db = TestDb::new(&server_url());
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("dags");
    let mut ids: Vec<String> = std::fs::read_dir(&shipped)
        .unwrap_or_else(|e| panic!("{e}"))
        .filter_map(|e| {
            let path = e.ok()?.path();
            (path.extension()? == "yaml").then(|| path.file_stem()?.to_str().map(str::to_owned))?
        })
        .collect();
    ids.sort();
    assert!(ids.len() >= 5, "{ids:?}");
    // `dags test` gives a run no events, so a DAG reading `{{ events }}` (contact_sales, which
    // a webhook starts) is run by posting to its hook instead: tests/example_dags.rs.
    let by_hook = |id: &str| {
        std::fs::read_to_string(shipped.join(format!("{id}.yaml")))
            .is_ok_and(|t| t.contains("\n  - webhook:"))
    };
    assert_eq!(
        ids.iter().filter(|id| by_hook(id)).collect::<Vec<_>>(),
        ["contact_sales"]
    );
    for id in ids.iter().filter(|id| !by_hook(id)) {
        let out = tree.run(
            &["dags", "test", id, "--sandbox-leads", "2000"],
            Some(&db.url),
        );
        let (stdout, stderr) = text(&out);
        assert_eq!(out.status.code(), Some(0), "{id}:\n{stdout}\n{stderr}");
        assert!(
            stdout.starts_with(&format!("Testing {id} from dags/{id}.yaml")),
            "{stdout}"
        );
        assert!(stdout.contains("\nRun succeeded"), "{id}:\n{stdout}");
        // Every task is reported, as it ended.
        let dag = std::fs::read_to_string(shipped.join(format!("{id}.yaml")))
            .unwrap_or_else(|e| panic!("{e}"));
        for task in dag.lines().filter_map(|l| l.trim().strip_prefix("- id: ")) {
            let line =
                ended(&stdout, task).unwrap_or_else(|| panic!("no end of {task}:\n{stdout}"));
            assert!(line.contains(" success in "), "{line}");
        }
        // The sandbox it started at DEV's address is gone with it.
        assert!(
            stderr.contains(&format!(
                "starting a MAP sandbox at http://127.0.0.1:{}",
                tree.dev_port
            )),
            "{stderr}"
        );
        assert!(port_is_free(tree.dev_port), "{id} left the sandbox running");
    }
}

#[test]
fn an_uncommitted_edit_is_what_runs() {
    let _turn = serial();
    let tree = Tree::new();
    let db = TestDb::new(&server_url());
    let file = tree.path().join("dags/lead_scoring.yaml");
    let committed = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{e}"));
    assert!(committed.contains("points_per_activity: { type: integer, default: 10"));
    // A new default and a new task, not committed.
    let edited = committed.replace(
        "points_per_activity: { type: integer, default: 10",
        "points_per_activity: { type: integer, default: 7",
    ) + "  - id: say_done\n    depends_on: [push_scores]\n    command: { argv: [echo, scored] }\n";
    std::fs::write(&file, &edited).unwrap_or_else(|e| panic!("{e}"));
    let status = git(tree.path(), &["status", "--porcelain", "dags"]);
    assert!(status.contains("dags/lead_scoring.yaml"), "{status}");
    let out = tree.run(
        &["dags", "test", "lead_scoring", "--sandbox-leads", "2000"],
        Some(&db.url),
    );
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("params: points_per_activity=7, max_score=100"),
        "{stdout}"
    );
    let line = ended(&stdout, "say_done").unwrap_or_else(|| panic!("{stdout}"));
    assert!(line.contains(" success in "), "{line}");
    // The version that ran is the file on disk, byte for byte; what DEV runs is untouched.
    support::runtime().block_on(async {
        let store = db.store().await;
        let source: String = sqlx::query_scalar(
            "select v.source from dag_run r join dag_version v on v.id = r.version_id \
             where r.dag_id = 'lead_scoring'",
        )
        .fetch_one(store.pool())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(source, edited);
        assert!(store.dag_env("lead_scoring", "dev").await.is_err());
    });
    // A parameter given beats the default; the date names the schedule's interval.
    let out = tree.run(
        &[
            "dags",
            "test",
            "dags/lead_scoring.yaml",
            "--param",
            "points_per_activity=3",
            "--date",
            "2026-11-20",
            "--sandbox-leads",
            "2000",
        ],
        Some(&db.url),
    );
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("params: points_per_activity=3, max_score=100"),
        "{stdout}"
    );
    assert!(
        stdout.contains("interval 2026-11-20 02:00 → 2026-11-21 02:00 America/New_York"),
        "{stdout}"
    );
}

/// On a database other runs share, its worker runs its own run's tasks and nobody else's.
#[test]
fn on_a_shared_database_it_takes_only_its_own_tasks() {
    let _turn = serial();
    let tree = Tree::new();
    let db = TestDb::new(&server_url());
    // A scheduler's pass: every example DAG's latest interval, in every environment, started,
    // its first tasks queued for whatever worker comes.
    let out = tree.run(&["scheduler", "--once"], Some(&db.url));
    assert!(out.status.success(), "{:?}", text(&out));
    let rt = support::runtime();
    let queued = || {
        rt.block_on(async {
            let store = db.store().await;
            let rows: Vec<(i64, String, i32)> =
                sqlx::query_as("select id, state, try_number from task_instance order by id")
                    .fetch_all(store.pool())
                    .await
                    .unwrap_or_else(|e| panic!("{e}"));
            rows
        })
    };
    let before = queued();
    assert!(
        before
            .iter()
            .filter(|(_, state, _)| state == "queued")
            .count()
            >= 4,
        "{before:?}"
    );
    tree.write(
        "dags/hello.yaml",
        "id: hello\ntasks:\n  - id: say\n    command: { argv: [echo, hi] }\n",
    );
    let out = tree.run(&["dags", "test", "hello"], Some(&db.url));
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(
        ended(&stdout, "say").is_some_and(|l| l.contains(" success in ")),
        "{stdout}"
    );
    // The run stays there, for the rest of the CLI.
    let run = stdout
        .lines()
        .find_map(|l| l.split("drover runs show ").nth(1))
        .unwrap_or_else(|| panic!("{stdout}"));
    let shown = tree.run(&["runs", "show", run.trim()], Some(&db.url));
    assert!(shown.status.success(), "{:?}", text(&shown));
    assert!(text(&shown).0.contains("success"), "{:?}", text(&shown));
    // Every task that was there is as it was: none claimed, none tried.
    let after: Vec<(i64, String, i32)> = queued()
        .into_iter()
        .filter(|(id, _, _)| before.iter().any(|(b, _, _)| b == id))
        .collect();
    assert_eq!(after, before);
}

#[test]
fn a_broken_file_exits_1_with_the_errors_validate_gives() {
    let tree = Tree::new();
    let broken = "id: broken\ntasks:\n  - id: a\n    command: { argv: [echo, hi] }\n  - id: b\n    depends_on: [nope]\n    command: { argv: [echo, hi] }\n";
    tree.write("dags/broken.yaml", broken);
    let validated = tree.run(&["dags", "validate", "dags/broken.yaml"], None);
    assert_eq!(validated.status.code(), Some(1));
    let (expected, _) = text(&validated);
    assert!(expected.contains("dags/broken.yaml:6:"), "{expected}");
    // By path and by id; no database is needed to say so.
    for arg in ["dags/broken.yaml", "broken"] {
        let out = tree.run(
            &["dags", "test", arg],
            Some("postgres://nobody@127.0.0.1:1/none"),
        );
        let (stdout, stderr) = text(&out);
        assert_eq!(out.status.code(), Some(1), "{arg}: {stdout}\n{stderr}");
        assert_eq!(stdout, expected, "{arg}");
    }
}

#[test]
fn usage_errors_exit_2_before_anything_starts() {
    let tree = Tree::new();
    // A database that does not answer: none of these may get as far as needing one.
    let nowhere = Some("postgres://nobody@127.0.0.1:1/none");
    let cases: &[(&[&str], &str)] = &[
        (&["lead_scoring", "--env", "prdo"], "no environment `prdo`"),
        (&["lead_scoring", "--env", "prdo"], "did you mean `prod`?"),
        (
            &["lead_scoring", "--param", "points=5"],
            "has no parameter `points`",
        ),
        (
            &["lead_scoring", "--param", "points_per_activity=lots"],
            "parameter points_per_activity",
        ),
        (
            &["lead_scoring", "--param", "points_per_activity"],
            "expected NAME=VALUE",
        ),
        (&["lead_scoring", "--date", "yesterday"], "`yesterday`"),
        (&["dags/missing.yaml"], "no file `dags/missing.yaml`"),
        (&["lead_scorign"], "did you mean `lead_scoring`?"),
        (&["dags"], "is a folder"),
    ];
    for (args, said) in cases {
        let mut all = vec!["dags", "test"];
        all.extend_from_slice(args);
        let began = Instant::now();
        let out = tree.run(&all, nowhere);
        let (stdout, stderr) = text(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stdout}\n{stderr}");
        assert!(stderr.contains(said), "{args:?}: {stderr}");
        assert!(stdout.is_empty(), "{args:?} started: {stdout}");
        assert!(began.elapsed() < Duration::from_secs(10), "{args:?}");
    }
    // clap's own usage errors are 2 as well.
    let out = tree.run(&["dags", "test"], nowhere);
    assert_eq!(out.status.code(), Some(2));
    // Writing in PROD, whose returns wait for an operator's approval, on a throwaway
    // database nobody else can reach: refused before anything starts; the preview is not.
    let out = tree.run(
        &["dags", "test", "lead_scoring", "--env", "prod", "--write"],
        None,
    );
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stdout}\n{stderr}");
    assert!(stderr.contains("nobody to approve them"), "{stderr}");
    assert!(stdout.is_empty(), "started: {stdout}");
}

/// DEV's address held by something whose credentials it does not have (standalone's own
/// sandbox, say): a sandbox of its own on a free port instead, as standalone does.
#[test]
fn a_taken_map_address_gets_a_sandbox_of_its_own_elsewhere() {
    let _turn = serial();
    let tree = Tree::new();
    let db = TestDb::new(&server_url());
    let taken =
        std::net::TcpListener::bind(("127.0.0.1", tree.dev_port)).unwrap_or_else(|e| panic!("{e}"));
    let out = tree.run(
        &[
            "dags",
            "test",
            "form_submission_volume",
            "--sandbox-leads",
            "500",
        ],
        Some(&db.url),
    );
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(
        stderr.contains(&format!("port {} is taken", tree.dev_port)),
        "{stderr}"
    );
    assert!(stdout.contains("\nRun succeeded"), "{stdout}");
    drop(taken);
}

/// Leads the sandbox says were written, by any means.
async fn sandbox_writes(base: &str) -> Vec<serde_json::Value> {
    support::web::client()
        .get(format!("{base}/_sandbox/writes"))
        .json_answer()
        .await["writes"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// The number in "… would send N of M rows …" / "… sent N …".
fn number_after(stdout: &str, marker: &str) -> i64 {
    let at = stdout
        .find(marker)
        .unwrap_or_else(|| panic!("no `{marker}` in:\n{stdout}"));
    stdout[at + marker.len()..]
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == ',')
        .filter(char::is_ascii_digit)
        .collect::<String>()
        .parse()
        .unwrap_or_else(|e| panic!("`{marker}`: {e}\n{stdout}"))
}

#[test]
fn returns_are_previewed_by_default_and_written_with_write() {
    let _turn = serial();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let rt = support::runtime();
    let tree = Tree::new();
    let db = TestDb::new(&server_url());
    // A sandbox of the test's own at DEV's address: `dags test` finds it answering and uses
    // it, with the environment's credentials, so the test can read it afterwards.
    let map = rt.block_on(support::start_sandbox(
        2_000,
        42,
        "dt-id",
        "dt-secret",
        Default::default(),
    ));
    let base = map.base_url();
    tree.dev_map(&base);
    let test = |extra: &[&str]| {
        let mut args = vec!["dags", "test", "lead_scoring"];
        args.extend_from_slice(extra);
        let out = tree
            .drover(&args, Some(&db.url))
            .env("DT_MAP_ID", "dt-id")
            .env("DT_MAP_SECRET", "dt-secret")
            .output()
            .unwrap_or_else(|e| panic!("{e}"));
        let (stdout, stderr) = text(&out);
        assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
        assert!(
            stderr.contains(&format!("a MAP already answers at {base}")),
            "{stderr}"
        );
        stdout
    };

    let preview = test(&[]);
    assert!(
        preview.contains("returns: previewed, nothing is written to the MAP"),
        "{preview}"
    );
    let would = number_after(&preview, "push_scores: would send ");
    assert!(would > 0, "nothing to send: {preview}");
    // The recorded plan follows: its totals in words and the first records, old → new.
    assert!(
        preview.contains("nothing was sent (preview: `--write` sends them)"),
        "{preview}"
    );
    assert!(preview.contains("  would "), "{preview}");
    assert!(preview.contains("leadScore"), "{preview}");
    // The first 10 records are listed; where there are more, the command that lists them all.
    assert_eq!(
        preview.contains("drover runs plan "),
        would > 10,
        "{would} records: {preview}"
    );
    assert!(
        preview.contains("planned for Marketo, nothing sent (preview)"),
        "{preview}"
    );
    let calls: serde_json::Value = rt.block_on(
        support::web::client()
            .get(format!("{base}/_sandbox/calls"))
            .json_answer(),
    );
    let calls: Vec<&str> = calls["calls"]
        .as_array()
        .map(|c| c.iter().filter_map(|c| c.as_str()).collect())
        .unwrap_or_default();
    assert!(
        !calls.is_empty(),
        "the preview read nothing from the sandbox"
    );
    assert!(
        rt.block_on(sandbox_writes(&base)).is_empty(),
        "the preview wrote to the MAP"
    );

    let written = test(&["--write"]);
    assert!(
        written.contains("returns: WRITE to the MAP (--write)"),
        "{written}"
    );
    let sent = number_after(&written, "push_scores: sent ");
    assert_eq!(sent, would, "{written}");
    let writes = rt.block_on(sandbox_writes(&base));
    let leads: std::collections::HashSet<i64> =
        writes.iter().filter_map(|w| w["leadId"].as_i64()).collect();
    assert_eq!(leads.len() as i64, sent, "{writes:?}");
    // The scores written are the ones the run computed.
    rt.block_on(async {
        let store = db.store().await;
        let (table,): (String,) = sqlx::query_as(
            "select d.table_name from dataset d join dag_run r on r.id = d.run_id \
             where not r.preview and d.task_id = 'score' and d.kind = 'output'",
        )
        .fetch_one(store.pool())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
        let scores: Vec<(i64, i64)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "select id::bigint, \"leadScore\"::bigint from staging_dev.\"{table}\" order by id limit 5"
        )))
        .fetch_all(store.pool())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
        assert!(!scores.is_empty());
        for (id, score) in scores {
            let lead: serde_json::Value = support::web::client()
                .get(format!("{base}/_sandbox/leads/{id}"))
                .json_answer()
                .await;
            assert_eq!(lead["leadScore"].as_i64(), Some(score), "{lead}");
        }
    });
    rt.block_on(map.shutdown());
}

/// Whether any process is in process group `pgid`.
fn group_alive(pgid: i32) -> bool {
    nix::sys::signal::killpg(nix::unistd::Pid::from_raw(pgid), None).is_ok()
}

fn pid_alive(pid: i32) -> bool {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok()
}

/// Waits for the child to exit; its status.
fn wait_exit(child: &mut std::process::Child, within: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + within;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("drover dags test did not stop within {within:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn ctrl_c_stops_the_worker_its_task_and_the_sandbox() {
    let _turn = serial();
    let tree = Tree::new();
    let db = TestDb::new(&server_url());
    let pid_file = tree.path().join("task.pid");
    tree.write(
        "dags/sleepy.yaml",
        &format!(
            "id: sleepy\ntasks:\n  - id: nap\n    command: {{ shell: \"echo $$ > {} && exec sleep 120\" }}\n",
            pid_file.display()
        ),
    );
    let mut child = tree
        .drover(&["dags", "test", "sleepy"], Some(&db.url))
        .process_group(0)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{e}"));
    let pgid = i32::try_from(child.id()).unwrap_or(0);
    let stdout = child.stdout.take().unwrap_or_else(|| panic!("no stdout"));
    let mut lines = BufReader::new(stdout).lines();
    let mut seen = String::new();
    for line in lines.by_ref().map_while(Result::ok) {
        seen.push_str(&line);
        seen.push('\n');
        if line.contains(" nap ") && line.ends_with("running") {
            break;
        }
    }
    assert!(seen.contains("running"), "the task never started: {seen}");
    // The task is running: its shell wrote its pid (the sleep it became).
    let task_pid = support::runtime().block_on(support::eventually(
        "the task to write its pid",
        Duration::from_secs(20),
        || async {
            std::fs::read_to_string(&pid_file)
                .ok()
                .and_then(|p| p.trim().parse::<i32>().ok())
        },
    ));
    assert!(pid_alive(task_pid));
    assert!(!port_is_free(tree.dev_port), "no sandbox was started");
    let _ = Command::new("kill")
        .arg("-INT")
        .arg(child.id().to_string())
        .status();
    let status = wait_exit(&mut child, Duration::from_secs(60));
    let mut stderr = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = std::io::Read::read_to_string(&mut e, &mut stderr);
    }
    assert_eq!(status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("stopping (Ctrl-C)"), "{stderr}");
    // Nothing it started is left: its process group, the task, the sandbox.
    assert!(!group_alive(pgid), "processes left in its group");
    support::runtime().block_on(support::eventually(
        "the task's process to be gone",
        Duration::from_secs(10),
        || async { (!pid_alive(task_pid)).then_some(()) },
    ));
    assert!(port_is_free(tree.dev_port), "the sandbox was left running");
    // The run it stopped is failed (and says who stopped it), not left running for a worker.
    support::runtime().block_on(async {
        let store = db.store().await;
        let (state,): (String,) =
            sqlx::query_as("select state from dag_run where dag_id = 'sleepy'")
                .fetch_one(store.pool())
                .await
                .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(state, "failed");
        let (n,): (i64,) = sqlx::query_as(
            "select count(*) from audit_event where action = 'run.mark' and dag_id = 'sleepy'",
        )
        .fetch_one(store.pool())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(n, 1);
    });
}

/// Without DATABASE_URL: a Postgres cluster of its own, made in a temporary folder and gone
/// (stopped and removed) when it ends.
#[test]
fn without_database_url_it_runs_on_a_throwaway_postgres() {
    if drover_store::embedded::find_binaries().is_err() {
        eprintln!("no Postgres server binaries on this machine: nothing to test");
        return;
    }
    let _turn = serial();
    let tree = Tree::new();
    // A standalone's settings for the CLI in this checkout name its database: a test run
    // goes to a throwaway one all the same.
    tree.write(
        ".drover/cli.yaml",
        "database_url: \"postgres://nobody@127.0.0.1:1/standalone\"\nuser: \"admin\"\n",
    );
    let out = tree.run(
        &["dags", "test", "lead_scoring", "--sandbox-leads", "2000"],
        None,
    );
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(stdout.contains("\nRun succeeded"), "{stdout}");
    let (dir, port) = throwaway_cluster(&stderr);
    assert!(!dir.exists(), "{} was left behind", dir.display());
    assert!(port_is_free(port), "Postgres was left running on {port}");
    assert!(port_is_free(tree.dev_port), "the sandbox was left running");

    // Ctrl-C while a task runs stops that cluster too.
    tree.write(
        "dags/sleepy.yaml",
        "id: sleepy\ntasks:\n  - id: nap\n    command: { argv: [sleep, \"120\"] }\n",
    );
    let mut child = tree
        .drover(&["dags", "test", "sleepy"], None)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{e}"));
    let stdout = child.stdout.take().unwrap_or_else(|| panic!("no stdout"));
    let started = BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .any(|l| l.contains(" nap ") && l.ends_with("running"));
    assert!(started, "the task never started");
    let _ = Command::new("kill")
        .arg("-INT")
        .arg(child.id().to_string())
        .status();
    let status = wait_exit(&mut child, Duration::from_secs(60));
    let mut stderr = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = std::io::Read::read_to_string(&mut e, &mut stderr);
    }
    assert_eq!(status.code(), Some(130), "{stderr}");
    let (dir, port) = throwaway_cluster(&stderr);
    assert!(!dir.exists(), "{} was left behind", dir.display());
    assert!(port_is_free(port), "Postgres was left running on {port}");
}

/// The folder and port of the throwaway cluster `dags test` says it started.
fn throwaway_cluster(stderr: &str) -> (PathBuf, u16) {
    let line = stderr
        .lines()
        .find_map(|l| l.split("starting a throwaway Postgres in ").nth(1))
        .unwrap_or_else(|| panic!("{stderr}"));
    let (dir, port) = line
        .split_once(" (port ")
        .unwrap_or_else(|| panic!("{line}"));
    let port: u16 = port
        .split(')')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("{line}"));
    (PathBuf::from(dir), port)
}

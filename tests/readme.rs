//! README's shell commands, run as written: every line of every `sh` block is either run here
//! (placeholders such as `<RUN_ID>`, `$TOKEN`, `/path/to/dag-repo` filled in, the database
//! and ports made the test's own) or named below with the test that covers it instead.
//! A command README shows that stops working, or a new one nobody runs, fails this test.

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use drover_mapsim::FaultProfile;
use support::gitrepo::{commit, git};
use support::{Proc, TestDb, serial, server_url};

/// Lines not run here, and why.
const COVERED_ELSEWHERE: &[(&str, &str)] = &[
    (
        "cargo run --release -- standalone",
        "tests/standalone.rs boots the same binary's `standalone` on a checkout of the example DAGs",
    ),
    (
        "curl -X POST http://127.0.0.1:9911/_sandbox/forms/fill -H 'Content-Type: application/json' -d '{\"email\": \"ann@example.com\", \"country\": \"US\", \"title\": \"VP Marketing\"}'",
        "standalone's DEV sandbox: tests/standalone.rs fills the form there and watches the run",
    ),
    (
        "./scripts/test",
        "the test command itself: .ci/run runs it, and it runs this test",
    ),
    (
        "drover env promote prod --as alice",
        "PROD takes what STAGE runs, which needs STAGE's runs first: tests/git_promotion.rs and tests/browser.rs",
    ),
    (
        "drover env approve prod --as bob",
        "follows the PROD promotion: tests/git_promotion.rs and tests/browser.rs",
    ),
    (
        "drover env rollback qa",
        "needs a second QA deployment to go back from: tests/git_promotion.rs",
    ),
];

/// README's `sh` blocks: lines joined where they end in `\`, comments cut.
fn blocks() -> Vec<Vec<String>> {
    let readme = include_str!("../README.md");
    let mut out = Vec::new();
    let mut current: Option<Vec<String>> = None;
    let mut pending = String::new();
    for line in readme.lines() {
        match (&mut current, line) {
            (None, "```sh") => current = Some(Vec::new()),
            (Some(block), "```") => {
                out.push(std::mem::take(block));
                current = None;
            }
            (Some(block), text) => {
                if let Some(head) = text.strip_suffix('\\') {
                    pending.push_str(head);
                    continue;
                }
                pending.push_str(text);
                let code = match pending.find(" #") {
                    Some(at) => &pending[..at],
                    None => &pending,
                };
                let code = code.split_whitespace().collect::<Vec<_>>().join(" ");
                if !code.is_empty() {
                    block.push(code);
                }
                pending.clear();
            }
            (None, _) => {}
        }
    }
    out
}

/// Shell words: whitespace-separated, with '…' and "…" quoting.
fn words(line: &str) -> Vec<String> {
    let (mut out, mut word, mut quote, mut any) = (Vec::new(), String::new(), None, false);
    for c in line.chars() {
        match (quote, c) {
            (None, '\'' | '"') => {
                quote = Some(c);
                any = true;
            }
            (Some(q), c) if c == q => quote = None,
            (None, c) if c.is_whitespace() => {
                if any {
                    out.push(std::mem::take(&mut word));
                    any = false;
                }
            }
            (_, c) => {
                word.push(c);
                any = true;
            }
        }
    }
    if any {
        out.push(word);
    }
    out
}

/// Where README's commands run: a checkout of the example DAGs and environments, a database
/// and MAP sandboxes of the test's own.
struct Shell {
    dir: PathBuf,
    env: BTreeMap<String, String>,
    /// (text in README, what it stands for here)
    fill: Vec<(String, String)>,
    background: Vec<Proc>,
    last_stdout: String,
    ran: Vec<String>,
}

impl Shell {
    fn filled(&self, line: &str) -> String {
        self.fill
            .iter()
            .fold(line.to_owned(), |l, (from, to)| l.replace(from, to))
    }

    fn command(&self, words: &[String]) -> Command {
        let mut cmd = support::bare_drover();
        cmd.args(&words[1..]).envs(&self.env).current_dir(&self.dir);
        cmd
    }

    /// Run one README line; `retry_for` re-runs a refused command while what it waits on
    /// (runs below a promotion) is still going, as a person would.
    fn run(&mut self, line: &str, retry_for: Duration) {
        let filled = self.filled(line);
        let mut w = words(&filled);
        match w.first().map(String::as_str) {
            Some("export") => {
                for assignment in &w[1..] {
                    let (name, value) = assignment
                        .split_once('=')
                        .unwrap_or_else(|| panic!("export without a value: {line}"));
                    self.env.insert(name.to_owned(), value.to_owned());
                }
            }
            Some("drover") => {
                let service = matches!(
                    w.get(1).map(String::as_str),
                    Some("scheduler" | "worker" | "web")
                );
                if w.last().is_some_and(|l| l == "&") || service {
                    if w.last().is_some_and(|l| l == "&") {
                        w.pop();
                    }
                    let name = format!("{}-{}", w[1], self.background.len());
                    let log = self.dir.join(format!("{name}.log"));
                    let file = std::fs::File::create(&log).unwrap_or_else(|e| panic!("{e}"));
                    let child = self
                        .command(&w)
                        .stdout(Stdio::null())
                        .stderr(file)
                        .spawn()
                        .unwrap_or_else(|e| panic!("{line}: {e}"));
                    self.background.push(Proc::new(child, &name, log));
                } else {
                    let began = Instant::now();
                    loop {
                        let out = self
                            .command(&w)
                            .output()
                            .unwrap_or_else(|e| panic!("{line}: {e}"));
                        if out.status.success() {
                            self.last_stdout = String::from_utf8_lossy(&out.stdout).into_owned();
                            break;
                        }
                        assert!(
                            began.elapsed() < retry_for,
                            "README's `{line}` failed ({}): {}{}",
                            out.status,
                            String::from_utf8_lossy(&out.stdout),
                            String::from_utf8_lossy(&out.stderr)
                        );
                        std::thread::sleep(Duration::from_secs(1));
                    }
                    if w.get(1..3) == Some(&["runs".to_owned(), "trigger".to_owned()]) {
                        let run = self.last_stdout.trim().to_owned();
                        self.fill.retain(|(from, _)| from != "<RUN_ID>");
                        self.fill.push(("<RUN_ID>".to_owned(), run));
                    }
                }
            }
            Some("curl") => self.curl(line, &w[1..]),
            _ => panic!("README shows `{line}`, which this test does not know how to run"),
        }
        self.ran.push(line.to_owned());
    }

    /// The curl lines README shows: headers, a JSON body, one URL.
    fn curl(&mut self, line: &str, args: &[String]) {
        let client = support::web::client();
        let (mut headers, mut body, mut url) = (Vec::new(), None, None);
        let mut it = args.iter();
        while let Some(a) = it.next() {
            match a.as_str() {
                "-H" => headers.push(it.next().cloned().unwrap_or_default()),
                "-d" => body = it.next().cloned(),
                other => url = Some(other.to_owned()),
            }
        }
        let url = url.unwrap_or_else(|| panic!("no URL in {line}"));
        let mut request = match &body {
            Some(b) => client.post(&url).body(b.clone()),
            None => client.get(&url),
        };
        for h in headers {
            let (name, value) = h.split_once(':').unwrap_or_else(|| panic!("{h}"));
            request = request.header(name.trim(), value.trim());
        }
        let (status, text) = support::runtime().block_on(async {
            let r = request
                .send()
                .await
                .unwrap_or_else(|e| panic!("{line}: {e}"));
            (r.status(), r.text().await.unwrap_or_default())
        });
        assert!(status.is_success(), "README's `{line}`: {status} {text}");
        self.last_stdout = text;
    }
}

/// A checkout of this repository's example DAGs and environments, each environment's MAP
/// moved to a sandbox of the test's own (credentials in the variables the files name).
fn checkout(
    rt: &tokio::runtime::Runtime,
) -> (
    tempfile::TempDir,
    BTreeMap<String, String>,
    Vec<drover_mapsim::RunningSandbox>,
) {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut env = BTreeMap::new();
    let mut sandboxes = Vec::new();
    let mut files = Vec::new();
    for folder in ["dags", "environments"] {
        for entry in std::fs::read_dir(here.join(folder)).unwrap_or_else(|e| panic!("{e}")) {
            let path = entry.unwrap_or_else(|e| panic!("{e}")).path();
            let mut text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{e}"));
            // A DAG only a webhook starts runs in DEV once an event arrives, and promotion
            // waits for that run: the walkthrough here has no form fill, so it leaves
            // contact_sales out (tests/example_dags.rs and tests/standalone.rs post its fills).
            if folder == "dags" && text.contains("\n  - webhook:") {
                continue;
            }
            let name = path
                .file_stem()
                .map(|n| n.to_string_lossy().to_uppercase())
                .unwrap_or_default();
            if folder == "environments" {
                let (id, secret) = (format!("{name}-id"), format!("{name}-secret"));
                let map = rt.block_on(support::start_sandbox(
                    2_000,
                    3,
                    &id,
                    &secret,
                    FaultProfile::default(),
                ));
                for fixed in 9911..=9914u16 {
                    text = text.replace(&format!("http://127.0.0.1:{fixed}"), &map.base_url());
                }
                env.insert(format!("DROVER_{name}_MAP_CLIENT_ID"), id);
                env.insert(format!("DROVER_{name}_MAP_CLIENT_SECRET"), secret);
                sandboxes.push(map);
            }
            let file = path.file_name().map(|n| n.to_string_lossy().into_owned());
            files.push((format!("{folder}/{}", file.unwrap_or_default()), text));
        }
    }
    git(dir.path(), &["init", "-q", "-b", "main"]);
    let refs: Vec<(&str, Option<&str>)> = files
        .iter()
        .map(|(p, t)| (p.as_str(), Some(t.as_str())))
        .collect();
    commit(dir.path(), &refs, "the example DAGs");
    (dir, env, sandboxes)
}

fn shell(dir: &Path, env: BTreeMap<String, String>, db: &TestDb) -> Shell {
    Shell {
        dir: dir.to_path_buf(),
        env,
        fill: vec![
            (
                "postgres://postgres@127.0.0.1:5432/drover".to_owned(),
                db.url.clone(),
            ),
            ("/path/to/dag-repo".to_owned(), dir.display().to_string()),
        ],
        background: Vec::new(),
        last_stdout: String::new(),
        ran: Vec::new(),
    }
}

fn block_starting(blocks: &[Vec<String>], first: &str) -> Vec<String> {
    blocks
        .iter()
        .find(|b| b.first().is_some_and(|l| l.starts_with(first)))
        .cloned()
        .unwrap_or_else(|| panic!("README has no block starting with `{first}`"))
}

#[test]
fn every_shell_command_in_readme_runs() {
    let _turn = serial();
    let blocks = blocks();
    let rt = support::runtime();
    let mut ran: Vec<String> = Vec::new();

    // The two commands: the test command is what CI runs.
    let ci = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(".ci/run"))
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(ci.lines().any(|l| l.trim() == "./scripts/test"), "{ci}");

    // Running DAGs: migrate, a scheduler and a worker, a triggered run to success, its logs.
    {
        let (dir, env, _maps) = checkout(&rt);
        let db = TestDb::new(&server_url());
        let mut sh = shell(dir.path(), env, &db);
        for line in block_starting(&blocks, "export DATABASE_URL=") {
            sh.run(&line, Duration::from_secs(120));
        }
        assert!(!sh.last_stdout.trim().is_empty(), "the export wrote no log");
        let show = sh
            .command(&words(&sh.filled("drover runs show <RUN_ID>")))
            .output();
        let show =
            String::from_utf8_lossy(&show.unwrap_or_else(|e| panic!("{e}")).stdout).into_owned();
        assert!(show.contains("success"), "{show}");

        // The API, with a token and the web server README describes.
        let base = format!("http://127.0.0.1:{}", support::web::free_port());
        sh.run(
            &format!("drover web --listen {}", &base["http://".len()..]),
            Duration::ZERO,
        );
        rt.block_on(support::web::wait_until_ok(
            &format!("{base}/healthz"),
            Duration::from_secs(30),
        ));
        sh.run("drover users add admin --role admin", Duration::ZERO);
        sh.run("drover users token admin --as admin", Duration::ZERO);
        let token = sh.last_stdout.trim().to_owned();
        sh.fill.push(("$TOKEN".to_owned(), token));
        sh.fill.push(("http://127.0.0.1:8080".to_owned(), base));
        for line in block_starting(&blocks, "curl -H \"Authorization") {
            sh.run(&line, Duration::ZERO);
        }
        assert!(sh.last_stdout.contains("run_id"), "{}", sh.last_stdout);
        ran.extend(sh.ran.drain(..).filter(|l| !l.starts_with("drover users")));
    }

    // DAGs from git: DEV follows the branch, QA gets DEV's commit once its runs passed.
    {
        let (dir, env, _maps) = checkout(&rt);
        let db = TestDb::new(&server_url());
        let mut sh = shell(dir.path(), env, &db);
        sh.env.insert("DATABASE_URL".to_owned(), db.url.clone());
        // Trying a DAG before committing it: on this database, against DEV's sandbox.
        for line in block_starting(&blocks, "drover dags test ") {
            sh.run(&line, Duration::ZERO);
        }
        let head = git(dir.path(), &["rev-parse", "HEAD"]);
        for line in block_starting(&blocks, "export DROVER_REPO=") {
            if COVERED_ELSEWHERE.iter().any(|(l, _)| *l == line) {
                continue;
            }
            sh.run(&line, Duration::from_secs(120));
            if line.starts_with("drover env status") {
                assert!(sh.last_stdout.contains(&head[..7]), "{}", sh.last_stdout);
            }
        }
        ran.append(&mut sh.ran);
    }

    // Production: one settings file, the services, the first user.
    {
        let (dir, env, _maps) = checkout(&rt);
        let db = TestDb::new(&server_url());
        let port = support::web::free_port();
        let config = dir.path().join("drover.yaml");
        std::fs::write(
            &config,
            format!("database_url: {}\nweb_listen: 127.0.0.1:{port}\n", db.url),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let mut sh = shell(dir.path(), env, &db);
        sh.fill.push((
            "/etc/drover/drover.yaml".to_owned(),
            config.display().to_string(),
        ));
        for line in block_starting(&blocks, "export DROVER_CONFIG=") {
            sh.run(&line, Duration::from_secs(30));
        }
        rt.block_on(support::web::wait_until_ok(
            &format!("http://127.0.0.1:{port}/readyz"),
            Duration::from_secs(30),
        ));
        for p in &mut sh.background {
            let status = p.terminate(Duration::from_secs(20));
            assert!(
                status.is_some_and(|s| s.success()),
                "{}: {status:?}\n{}",
                p.name,
                p.log()
            );
        }
        ran.append(&mut sh.ran);
    }

    // Every line was run here or is covered elsewhere, and nothing is excused needlessly.
    for block in &blocks {
        for line in block {
            let covered = COVERED_ELSEWHERE.iter().any(|(l, _)| l == line);
            assert!(
                ran.contains(line) || covered,
                "README's `{line}` is not run by any test"
            );
            assert!(
                !(ran.contains(line) && covered),
                "`{line}` runs here after all"
            );
        }
    }
    for (line, why) in COVERED_ELSEWHERE {
        assert!(
            blocks.iter().flatten().any(|l| l == line),
            "README no longer shows `{line}` ({why})"
        );
    }
}

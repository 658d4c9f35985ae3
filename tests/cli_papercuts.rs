//! The CLI's edges, through the built binary: without a database URL it refuses what needs
//! one (saying where to find it) and still does what does not; a reader that goes away ends
//! its output quietly; logs are coloured only on a terminal, and never with NO_COLOR.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use support::{Drover, TestDb, Workspace, serial, server_url};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `drover ARGS` in an empty folder, with the example DAGs and environments and nothing
/// else: no DATABASE_URL, no DROVER_* variable, no standalone's `.drover/` around.
fn bare(dir: &Path, args: &[&str]) -> Output {
    support::bare_drover()
        .args(args)
        .current_dir(dir)
        .env("DROVER_DAGS_DIR", repo().join("dags"))
        .env("DROVER_ENVIRONMENTS_DIR", repo().join("environments"))
        .output()
        .unwrap_or_else(|e| panic!("{e}"))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn without_a_database_url_commands_that_need_one_refuse_and_say_where_to_find_it() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    // A Postgres answers at the old default address on this machine: refusing is a choice,
    // not a failed connection.
    for args in [
        &["runs", "list"][..],
        &["env", "status"],
        &["dags", "errors"],
        &["audit"],
        &["runs", "trigger", "lead_scoring", "--env", "dev"],
        &["users", "list"],
    ] {
        let out = bare(dir.path(), args);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(
            err.contains("no database given: set DATABASE_URL")
                && err.contains("`drover standalone` prints the one it uses")
                && err.contains(".drover/cli.yaml"),
            "{args:?}: {err}"
        );
        assert!(out.stdout.is_empty(), "{args:?}: {}", text(&out.stdout));
    }
    // What reads only files works without one.
    for args in [
        &["dags", "validate"][..],
        &["dags", "list"],
        &["dags", "show", "lead_scoring"],
        &["dags", "next", "lead_scoring", "-n", "2"],
        &["env", "validate"],
    ] {
        let out = bare(dir.path(), args);
        assert!(
            out.status.success(),
            "{args:?}: {}{}",
            text(&out.stdout),
            text(&out.stderr)
        );
        assert!(!out.stdout.is_empty(), "{args:?} printed nothing");
    }
}

/// A `.drover/cli.yaml` that cannot be used is said and set aside: the commands that read
/// only files still work, and the others refuse as without one.
#[test]
fn a_broken_standalone_file_is_set_aside_with_a_warning() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    std::fs::create_dir_all(dir.path().join(".drover")).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(dir.path().join(".drover/cli.yaml"), "databse_url: x\n")
        .unwrap_or_else(|e| panic!("{e}"));
    let out = bare(dir.path(), &["dags", "list"]);
    let err = text(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("warning: not using ") && err.contains("did you mean `database_url`?"),
        "{err}"
    );
    let out = bare(dir.path(), &["runs", "list"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("no database given"),
        "{}",
        text(&out.stderr)
    );
}

/// A pipe whose reader is already gone: every write to it fails.
fn closed_pipe() -> std::io::PipeWriter {
    let (reader, writer) = std::io::pipe().unwrap_or_else(|e| panic!("{e}"));
    drop(reader);
    writer
}

/// Ended by SIGPIPE, or done: anything but a complaint.
fn quiet(args: &[&str], out: &Output) {
    use std::os::unix::process::ExitStatusExt;
    let err = text(&out.stderr);
    assert!(
        out.status.success() || out.status.signal() == Some(libc_sigpipe()),
        "{args:?}: {:?} {err}",
        out.status
    );
    assert!(
        !err.contains("Broken pipe") && !err.contains("panicked") && !err.contains("error"),
        "{args:?}: {err}"
    );
}

fn libc_sigpipe() -> i32 {
    13
}

#[test]
fn a_reader_that_goes_away_ends_the_output_quietly() {
    let _turn = serial();
    let db = TestDb::new(&server_url());
    let ws = Workspace::new();
    ws.dag("hello", "id: hello\ntasks:\n  - id: a\n    noop: {}\n");
    let d = Drover { db: &db, ws: &ws };
    d.ok(&["db", "migrate"]);
    d.ok(&["scheduler", "--once"]);
    let run = d.ok(&["runs", "trigger", "hello", "--env", "dev"]);
    for args in [
        &["runs", "show", run.as_str()][..],
        &["runs", "show", run.as_str(), "--format", "json"],
        &["runs", "list"],
        &["audit"],
        &["env", "status"],
        &["dags", "list"],
        &["dags", "show", "hello"],
        &["dags", "validate"],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_drover"))
            .args(args)
            .env("DATABASE_URL", &db.url)
            .env("DROVER_DAGS_DIR", ws.dags())
            .env("DROVER_ENVIRONMENTS_DIR", ws.environments())
            .current_dir(ws.path())
            .stdout(closed_pipe())
            .stderr(Stdio::piped())
            .output()
            .unwrap_or_else(|e| panic!("{e}"));
        quiet(args, &out);
    }
    // As in a shell: `drover runs show … | head -1`.
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "\"$DROVER\" runs show {run} | head -1; \"$DROVER\" runs list --limit 500 | head -c 1"
        ))
        .env("DROVER", env!("CARGO_BIN_EXE_drover"))
        .env("DATABASE_URL", &db.url)
        .current_dir(ws.path())
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(out.stderr.is_empty(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).starts_with("run "),
        "{}",
        text(&out.stdout)
    );
}

fn has_escape(bytes: &[u8]) -> bool {
    bytes.contains(&0x1b)
}

#[test]
fn logs_are_coloured_only_on_a_terminal_and_never_with_no_color() {
    let _turn = serial();
    let db = TestDb::new(&server_url());
    let ws = Workspace::new();
    ws.dag("hello", "id: hello\ntasks:\n  - id: a\n    noop: {}\n");
    let d = Drover { db: &db, ws: &ws };
    d.ok(&["db", "migrate"]);
    let once = |tty: bool, no_color: bool| -> Vec<u8> {
        let bin = env!("CARGO_BIN_EXE_drover");
        let mut cmd = if tty {
            // `script` gives the command a terminal; what it printed comes back on stdout.
            let mut c = Command::new("script");
            c.args(["-q", "-e", "-c"])
                .arg(format!("'{bin}' scheduler --once"))
                .arg("/dev/null");
            c
        } else {
            let mut c = Command::new(bin);
            c.args(["scheduler", "--once"]);
            c
        };
        cmd.env("DATABASE_URL", &db.url)
            .env("DROVER_DAGS_DIR", ws.dags())
            .env("DROVER_ENVIRONMENTS_DIR", ws.environments())
            .env("RUST_LOG", "info")
            .env_remove("NO_COLOR")
            .current_dir(ws.path())
            .stdin(Stdio::null());
        if no_color {
            cmd.env("NO_COLOR", "1");
        }
        let out = cmd.output().unwrap_or_else(|e| panic!("{e}"));
        assert!(out.status.success(), "{}", text(&out.stderr));
        let mut all = out.stdout;
        all.extend(out.stderr);
        assert!(text(&all).contains("INFO"), "no log line: {}", text(&all));
        all
    };
    let piped = once(false, false);
    assert!(!has_escape(&piped), "colour into a pipe: {}", text(&piped));
    if Command::new("script").arg("--version").output().is_err() {
        eprintln!("no `script` here to give drover a terminal: the terminal half is skipped");
        return;
    }
    let tty = once(true, false);
    assert!(has_escape(&tty), "no colour on a terminal: {}", text(&tty));
    let tty_no_color = once(true, true);
    assert!(
        !has_escape(&tty_no_color),
        "colour despite NO_COLOR: {}",
        text(&tty_no_color)
    );
}

//! End-to-end tests of `drover dags …` and `drover env validate`: the real binary on real files.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn drover(args: &[&str], dags_dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_drover"))
        .args(args)
        .env("DROVER_DAGS_DIR", dags_dir)
        .env("DROVER_ENVIRONMENTS_DIR", repo().join("environments"))
        .current_dir(repo())
        .output()
        .unwrap_or_else(|e| panic!("cannot run drover: {e}"))
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn example_dags_and_environments_validate() {
    let out = drover(&["dags", "validate", "dags"], &repo().join("dags"));
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    assert!(
        stdout(&out).ends_with("checked: all valid\n"),
        "{}",
        stdout(&out)
    );
    let out = drover(&["env", "validate"], &repo().join("dags"));
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    assert!(
        stdout(&out).contains("dev → qa → stage → prod"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn broken_fixtures_fail_with_every_expected_location() {
    let dir = repo().join("tests/fixtures/invalid");
    let out = drover(&["dags", "validate", "tests/fixtures/invalid"], &dir);
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    let mut expected = 0;
    for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
        let source = std::fs::read_to_string(entry.path()).unwrap_or_default();
        let name = format!(
            "tests/fixtures/invalid/{}",
            entry.file_name().to_string_lossy()
        );
        for e in source.lines().filter_map(|l| l.strip_prefix("# expect: ")) {
            expected += 1;
            let want = format!("{name}:{e}");
            assert!(
                text.lines().any(|l| l.starts_with(&want)),
                "missing `{want}` in:\n{text}"
            );
        }
    }
    assert!(expected >= 15);
    assert!(
        text.contains(&format!("with errors ({expected} errors)")),
        "{text}"
    );
}

#[test]
fn json_output_is_machine_readable() {
    let out = drover(
        &[
            "dags",
            "validate",
            "--format",
            "json",
            "tests/fixtures/invalid/bad_cron.yaml",
            "dags",
        ],
        &repo().join("dags"),
    );
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    // The bad fixture and the five example DAGs.
    assert_eq!(v["files"], 6);
    assert_eq!(v["valid"], 5);
    assert_eq!(
        v["errors"][0]["file"],
        "tests/fixtures/invalid/bad_cron.yaml"
    );
    assert_eq!(v["errors"][0]["line"], 3);
    assert_eq!(v["errors"][0]["column"], 14);
}

#[test]
fn duplicate_ids_across_files_are_reported() {
    let out = drover(
        &["dags", "validate", "tests/fixtures/duplicate_ids"],
        &repo().join("dags"),
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out).starts_with(
            "tests/fixtures/duplicate_ids/sales/weekly_digest.yaml:1:1: DAG id `weekly_digest` is also defined in tests/fixtures/duplicate_ids/marketing/weekly_digest.yaml"
        ),
        "{}",
        stdout(&out)
    );
}

#[test]
fn a_broken_file_never_hides_the_others() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    std::fs::copy(
        repo().join("dags/lead_scoring.yaml"),
        dir.path().join("lead_scoring.yaml"),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(dir.path().join("broken.yaml"), "id: broken\ntasks: [\n")
        .unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(dir.path().join("not_utf8.yaml"), [0xff, 0xfe, 0x00])
        .unwrap_or_else(|e| panic!("{e}"));
    let out = drover(&["dags", "list"], dir.path());
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).contains("lead_scoring"), "{}", stdout(&out));
    assert!(
        stderr(&out).contains("2 file(s) with errors are not listed"),
        "{}",
        stderr(&out)
    );
    let out = drover(
        &["dags", "validate", &dir.path().display().to_string()],
        dir.path(),
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out).contains("not_utf8.yaml:1:1: file is not UTF-8 text"),
        "{}",
        stdout(&out)
    );
    assert!(
        stdout(&out).contains("3 files checked: 1 valid, 2 with errors"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn next_prints_utc_instants_across_a_dst_change() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let file = dir.path().join("nightly.yaml");
    std::fs::write(
        &file,
        "id: nightly\nschedule: \"30 2 * * *\"\ntimezone: America/New_York\ntasks:\n  - id: a\n    noop: {}\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let path = file.display().to_string();
    // 02:30 does not exist on 2026-03-08 in New York: the run fires when the gap ends, at 03:00 EDT.
    let out = drover(
        &[
            "dags",
            "next",
            &path,
            "--count",
            "3",
            "--after",
            "2026-03-07T00:00:00Z",
        ],
        dir.path(),
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        "2026-03-07T07:30:00Z\n2026-03-08T07:00:00Z\n2026-03-09T06:30:00Z\n"
    );
    // By id, from the DAGs folder.
    let out = drover(
        &[
            "dags",
            "next",
            "nightly",
            "-n",
            "1",
            "--after",
            "2026-11-01T05:00:00Z",
        ],
        dir.path(),
    );
    assert_eq!(stdout(&out), "2026-11-01T07:30:00Z\n");
}

#[test]
fn show_lists_tasks_in_topological_order_with_next_runs() {
    let out = drover(&["dags", "show", "lead_scoring"], &repo().join("dags"));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    let pos = |needle: &str| {
        text.find(needle)
            .unwrap_or_else(|| panic!("`{needle}` missing in:\n{text}"))
    };
    assert!(pos("1. export_leads") < pos("3. score"));
    assert!(pos("3. score") < pos("4. push_scores"));
    assert!(text.contains("every day at 02:00"), "{text}");
    assert_eq!(
        text.lines()
            .skip_while(|l| *l != "next runs:")
            .skip(1)
            .filter(|l| l.contains("Z)"))
            .count(),
        5
    );
    let out = drover(&["dags", "show", "lead_scorng"], &repo().join("dags"));
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("did you mean `lead_scoring`?"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn env_validate_takes_a_base_url_with_rest_and_refuses_other_paths_located() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let write = |url: &str| {
        std::fs::write(
            dir.path().join("dev.yaml"),
            format!(
                "name: dev\norder: 1\nbranch: main\nmap:\n  kind: marketo\n  base_url: {url}\n  client_id: {{ env: DEV_ID }}\n  client_secret: {{ env: DEV_SECRET }}\n"
            ),
        )
        .unwrap_or_else(|e| panic!("{e}"));
    };
    let path = dir.path().display().to_string();
    write("https://284-RPR-133.mktorest.com/rest");
    let out = drover(&["env", "validate", &path], &repo().join("dags"));
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));

    write("https://284-RPR-133.mktorest.com/identity");
    let out = drover(&["env", "validate", &path], &repo().join("dags"));
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let text = stdout(&out);
    let file = dir.path().join("dev.yaml").display().to_string();
    let located = text
        .lines()
        .find(|l| l.starts_with(&format!("{file}:6:13")))
        .unwrap_or_else(|| panic!("no error at {file}:6:13 in:\n{text}"));
    assert!(
        located.contains("use https://284-RPR-133.mktorest.com — without /identity"),
        "{located}"
    );
}

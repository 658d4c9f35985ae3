//! `drover dags errors` names the commit it checked in each environment, and says when the
//! branch's head is a newer commit not read yet.

mod support;

use support::gitrepo::{commit, git};
use support::{Drover, TestDb, Workspace, serial, server_url};

#[test]
fn dags_errors_names_the_commit_checked_and_one_still_being_read() {
    let _g = serial();
    let db = TestDb::new(&server_url());
    let ws = Workspace::new();
    let repo = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let r = repo.path();
    git(r, &["init", "-q", "-b", "main"]);
    let good = commit(
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
    let errors = |with_repo: bool| {
        let mut args = Vec::new();
        if with_repo {
            args.extend(["--repo", repo_path.as_str()]);
        }
        args.extend(["dags", "errors", "--env", "dev"]);
        d.ok(&args)
    };
    let said = errors(true);
    assert!(
        said.starts_with(&format!(
            "No import errors in dev at commit {} (loaded ",
            &good[..10]
        )),
        "{said}"
    );
    assert!(!said.contains("still being read"), "{said}");

    // A broken commit the syncer has not read yet: the answer says so.
    let broken = commit(
        r,
        &[(
            "dags/hello.yaml",
            Some("id: hello\ntasks:\n  - id: a\n    noop: {}\n    retrys: 2\n"),
        )],
        "hello broken",
    );
    let said = errors(true);
    assert!(
        said.contains(&format!("at commit {}", &good[..10])),
        "{said}"
    );
    assert!(
        said.contains(&format!(
            "Commit {} (the head of main) is still being read into dev",
            &broken[..10]
        )),
        "{said}"
    );
    // Without the repository at hand it cannot know of newer commits, and does not claim to.
    assert!(!errors(false).contains("still being read"));

    // Once read, the error is listed at that commit.
    d.ok(&["--repo", &repo_path, "repo", "sync"]);
    let said = errors(true);
    assert!(
        said.starts_with(&format!("dev at commit {} (loaded ", &broken[..10])),
        "{said}"
    );
    assert!(said.contains("1 file(s) failed to import"), "{said}");
    assert!(said.contains("dags/hello.yaml"), "{said}");
    assert!(said.contains("unknown key `retrys`"), "{said}");
    assert!(!said.contains("still being read"), "{said}");
}

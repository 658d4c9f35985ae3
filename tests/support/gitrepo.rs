//! Real git repositories for tests: commands with a fixed author, commits of whole files.
#![allow(dead_code, unreachable_pub)]

use std::path::Path;
use std::process::Command;

pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_AUTHOR_NAME", "Test")
        .env("GIT_AUTHOR_EMAIL", "test@example.com")
        .env("GIT_COMMITTER_NAME", "Test")
        .env("GIT_COMMITTER_EMAIL", "test@example.com")
        .output()
        .unwrap_or_else(|e| panic!("git {args:?}: {e}"));
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

pub fn commit(repo: &Path, files: &[(&str, Option<&str>)], message: &str) -> String {
    for (path, text) in files {
        let p = repo.join(path);
        match text {
            Some(t) => {
                std::fs::create_dir_all(p.parent().unwrap_or(repo))
                    .unwrap_or_else(|e| panic!("{e}"));
                std::fs::write(&p, t).unwrap_or_else(|e| panic!("{e}"));
            }
            None => {
                std::fs::remove_file(&p).unwrap_or_else(|e| panic!("{e}"));
            }
        }
    }
    git(repo, &["add", "-A"]);
    git(repo, &["commit", "-q", "-m", message]);
    git(repo, &["rev-parse", "HEAD"])
}

//! A DAG repository and environments for approval tests: `scoring` last changed by Olga,
//! PROD's returns waiting for approval, and helpers to follow its runs.
#![allow(dead_code, unreachable_pub)]

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use drover_store::{Store, TaskState};
use uuid::Uuid;

use super::gitrepo::git;
use super::{Drover, Proc, Workspace, eventually, window_days};

pub const CLIENT_ID: &str = "drover-approvals";
pub const SECRET: &str = "approvals-secret-77c1";
const LONG: Duration = Duration::from_secs(90);

pub fn scoring_dag() -> String {
    let (since, until) = window_days(200);
    format!(
        r#"id: scoring
tasks:
  - id: export_leads
    export:
      object: leads
      fields: [id, email, leadScore, updatedAt]
      filter: {{ updated_at: {{ since: "{since}", until: "{until}" }} }}
  - id: score
    depends_on: [export_leads]
    transform:
      - from: export_leads
      - sql: select id, coalesce("leadScore", 0) + 1 as "leadScore" from {{{{ previous }}}}
  - id: push_scores
    depends_on: [score]
    retries: 0
    return: {{ object: leads, lookup: id, fields: [leadScore], mode: sync }}
"#
    )
}

pub const PING: &str = "id: ping\ntasks:\n  - id: a\n    noop: {}\n";

/// A commit of `files` by `author` ("Name <email>").
pub fn commit_as(repo: &Path, files: &[(&str, &str)], author: &str, message: &str) -> String {
    for (path, text) in files {
        let p = repo.join(path);
        std::fs::create_dir_all(p.parent().unwrap_or(repo)).unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(&p, text).unwrap_or_else(|e| panic!("{e}"));
    }
    git(repo, &["add", "-A"]);
    let out = Command::new("git")
        .args(["commit", "-q", "-m", message, "--author", author])
        .current_dir(repo)
        .env("GIT_COMMITTER_NAME", "CI")
        .env("GIT_COMMITTER_EMAIL", "ci@example.com")
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    git(repo, &["rev-parse", "HEAD"])
}

/// A DAG repository whose `scoring` was last changed by Olga (someone else committed `ping`
/// after), DEV tracking its branch and PROD pinned to its head, PROD's returns waiting for
/// approval, its `approval_needed` notifications going to `TEST_APPROVAL_HOOK`.
pub struct Setup {
    pub repo: tempfile::TempDir,
    pub ws: Workspace,
}

impl Setup {
    pub fn new(map_base: &str) -> Self {
        let repo = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let r = repo.path();
        git(r, &["init", "-q", "-b", "main"]);
        commit_as(
            r,
            &[("dags/scoring.yaml", &scoring_dag())],
            "Olga <olga@example.com>",
            "scoring: push scores",
        );
        let head = commit_as(
            r,
            &[("dags/ping.yaml", PING)],
            "Paul <paul@example.com>",
            "ping",
        );
        let ws = Workspace::new();
        let dir = ws.path();
        std::fs::write(dir.join("client_id"), CLIENT_ID).unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(dir.join("client_secret"), SECRET).unwrap_or_else(|e| panic!("{e}"));
        let map = format!(
            "map:\n  kind: marketo\n  base_url: {map_base}\n  status_poll: {{ first: 250ms, max: 2s }}\n  client_id: {{ file: {} }}\n  client_secret: {{ file: {} }}\n",
            dir.join("client_id").display(),
            dir.join("client_secret").display()
        );
        std::fs::write(
            ws.environments().join("dev.yaml"),
            format!("name: dev\norder: 1\nbranch: main\n{map}"),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(
            ws.environments().join("prod.yaml"),
            format!(
                "name: prod\norder: 2\ncommit: {head}\n{map}returns: {{ require_approval: true }}\nnotifications:\n  - name: approvers\n    webhook: {{ env: TEST_APPROVAL_HOOK }}\n    on: [approval_needed]\n    dedup: 0s\n"
            ),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        Self { repo, ws }
    }

    pub fn repo(&self) -> String {
        self.repo.path().display().to_string()
    }
}

/// The scheduler (with the repository and the webhook) and a worker of one slot.
pub fn processes(d: &Drover<'_>, repo: &str, hook: &str) -> (Proc, Proc) {
    let s = d.spawn_with(
        "scheduler",
        &[
            "--repo",
            repo,
            "scheduler",
            "--tick-ms",
            "200",
            "--sync-secs",
            "1",
            "--public-url",
            "http://drover.example",
        ],
        &[("TEST_APPROVAL_HOOK", hook)],
    );
    (s, d.worker("worker", 1, 10.0))
}

/// Wait until `task` of `run` waits for approval.
pub async fn awaiting(store: &Store, run: Uuid, task: &str) -> drover_store::TaskInstanceRow {
    eventually(&format!("{task} to wait for approval"), LONG, || async {
        store
            .task_instances(run)
            .await
            .ok()?
            .into_iter()
            .find(|t| t.task_id == task && t.state.0 == TaskState::AwaitingApproval)
    })
    .await
}

pub async fn sandbox_writes(base: &str) -> u64 {
    let stats: serde_json::Value = reqwest::get(format!("{base}/_sandbox/stats"))
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .json()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    stats["writes"]
        .as_u64()
        .unwrap_or_else(|| panic!("{stats}"))
}

pub fn trigger(d: &Drover<'_>, dag: &str) -> Uuid {
    let id = d.ok(&["runs", "trigger", dag, "--env", "prod", "--as", "ada"]);
    Uuid::parse_str(&id).unwrap_or_else(|e| panic!("{e}: {id}"))
}

//! DAGs from a real git repository: DEV follows its branch, broken files become import errors
//! without moving their DAG off its last good version, and commits move up DEV → QA → PROD
//! through their gates, with approval, rollback and an audit trail.

mod support;

use std::time::Duration;

use drover_store::{RunState, Store};
use support::gitrepo::{commit, git};
use support::{Drover, TestDb, Workspace, eventually, runtime, serial, server_url};
use uuid::Uuid;

fn dag(id: &str, tasks: &str) -> String {
    format!("id: {id}\ntasks:\n{tasks}")
}

const ONE: &str = "  - id: a\n    noop: {}\n";
const TWO: &str = "  - id: a\n    noop: {}\n  - id: b\n    depends_on: [a]\n    noop: {}\n";
const SLOW: &str = "  - id: a\n    noop: { sleep: 2s }\n";

fn environment(ws: &Workspace, name: &str, order: u32, extra: &str) {
    let text = format!(
        "name: {name}\norder: {order}\n{extra}map:\n  kind: marketo\n  base_url: http://127.0.0.1:9\n  client_id: {{ env: X_ID }}\n  client_secret: {{ env: X_SECRET }}\n"
    );
    std::fs::write(ws.environments().join(format!("{name}.yaml")), text)
        .unwrap_or_else(|e| panic!("{e}"));
}

async fn deployed(store: &Store, env: &str) -> Option<String> {
    store
        .current_deployment(env)
        .await
        .ok()
        .flatten()
        .map(|d| d.commit_sha)
}

async fn run_ok(d: &Drover<'_>, store: &Store, dag: &str, env: &str) -> Uuid {
    let id = d.ok(&["runs", "trigger", dag, "--env", env]);
    let id = Uuid::parse_str(&id).unwrap_or_else(|e| panic!("{e}"));
    let run = eventually("the run to finish", Duration::from_secs(30), || async {
        store
            .get_run(id)
            .await
            .ok()
            .filter(|r| r.state.is_finished())
    })
    .await;
    assert_eq!(run.state, RunState::Success);
    id
}

#[test]
fn dags_move_from_git_through_dev_qa_stage_and_prod() {
    let _turn = serial();
    let rt = runtime();
    let db = TestDb::new(&server_url());
    let ws = Workspace::new();
    std::fs::remove_file(ws.environments().join("dev.yaml")).ok();
    environment(&ws, "dev", 1, "branch: main\n");
    environment(&ws, "qa", 2, "promotion: { require_success_below: true }\n");
    environment(&ws, "stage", 3, "");
    environment(
        &ws,
        "prod",
        4,
        "new_dags_paused: true\npromotion: { allowed_roles: [admin], require_success_below: true, require_approval: true }\n",
    );
    let repo = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let r = repo.path();
    git(r, &["init", "-q", "-b", "main"]);
    let c1 = commit(
        r,
        &[
            ("dags/alpha.yaml", Some(&dag("alpha", ONE))),
            ("dags/beta.yaml", Some(&dag("beta", ONE))),
            ("README", Some("x")),
        ],
        "first",
    );

    let d = Drover { db: &db, ws: &ws };
    let repo_env = r.display().to_string();
    let with_repo = |args: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = vec!["--repo".to_owned(), repo_env.clone()];
        v.extend(args.iter().map(|s| (*s).to_owned()));
        v
    };
    let ok = |args: &[&str]| {
        let v = with_repo(args);
        d.ok(&v.iter().map(String::as_str).collect::<Vec<_>>())
    };
    let refused = |args: &[&str]| {
        let v = with_repo(args);
        let out = d.run(&v.iter().map(String::as_str).collect::<Vec<_>>());
        assert_eq!(
            out.status.code(),
            Some(1),
            "expected a refusal: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    d.ok(&["db", "migrate"]);
    let _s = d.spawn(
        "scheduler",
        &[
            "--repo",
            &repo_env,
            "scheduler",
            "--tick-ms",
            "200",
            "--sync-secs",
            "1",
        ],
    );
    let _w = d.worker("worker", 4, 10.0);
    rt.block_on(async {
        let store = db.store().await;
        eventually(
            "dev to run the first commit",
            Duration::from_secs(20),
            || async {
                (deployed(&store, "dev").await.as_deref() == Some(c1.as_str())).then_some(())
            },
        )
        .await;
        let alpha_v1 = store
            .dag_env("alpha", "dev")
            .await
            .map(|d| d.version_id)
            .unwrap_or_default();

        // A new commit runs in DEV within a sync interval; a broken file is an import error.
        let c2 = commit(
            r,
            &[
                ("dags/alpha.yaml", Some(&dag("alpha", TWO))),
                ("dags/gamma.yaml", Some("id: gamma\ntasks: [\n")),
            ],
            "alpha grows; gamma broken",
        );
        eventually(
            "dev to run the second commit",
            Duration::from_secs(10),
            || async {
                (deployed(&store, "dev").await.as_deref() == Some(c2.as_str())).then_some(())
            },
        )
        .await;
        let alpha_v2 = store
            .dag_env("alpha", "dev")
            .await
            .map(|d| d.version_id)
            .unwrap_or_default();
        assert_ne!(alpha_v1, alpha_v2);
        let errors = d.ok(&["dags", "errors", "--env", "dev"]);
        assert!(
            errors.contains("dags/gamma.yaml") && errors.contains("invalid YAML"),
            "{errors}"
        );

        // Breaking a running DAG keeps it on its last good version; the others move on.
        let beta_v1 = store
            .dag_env("beta", "dev")
            .await
            .map(|d| d.version_id)
            .unwrap_or_default();
        let c3 = commit(
            r,
            &[
                (
                    "dags/beta.yaml",
                    Some("id: beta\ntasks:\n  - id: a\n    noop: {}\n    retrys: 2\n"),
                ),
                ("dags/alpha.yaml", Some(&dag("alpha", ONE))),
            ],
            "beta broken",
        );
        eventually(
            "dev to run the third commit",
            Duration::from_secs(10),
            || async {
                (deployed(&store, "dev").await.as_deref() == Some(c3.as_str())).then_some(())
            },
        )
        .await;
        let beta = store
            .dag_env("beta", "dev")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(beta.active);
        assert_eq!(
            beta.version_id, beta_v1,
            "a broken file moved its DAG off the last good version"
        );
        assert_ne!(
            store
                .dag_env("alpha", "dev")
                .await
                .map(|d| d.version_id)
                .unwrap_or_default(),
            alpha_v2
        );
        let errors = d.ok(&["dags", "errors", "--env", "dev"]);
        assert!(
            errors.contains("unknown key `retrys`, did you mean `retries`?"),
            "{errors}"
        );
        run_ok(&d, &store, "beta", "dev").await;

        // Gate 1: every DAG at the commit validates.
        let why = refused(&["env", "promote", "qa"]);
        assert!(
            why.contains("do not validate")
                && why.contains("dags/beta.yaml")
                && why.contains("dags/gamma.yaml"),
            "{why}"
        );

        let c4 = commit(
            r,
            &[
                ("dags/beta.yaml", Some(&dag("beta", TWO))),
                ("dags/gamma.yaml", None),
            ],
            "fix beta, drop gamma",
        );
        eventually(
            "dev to run the fixed commit",
            Duration::from_secs(10),
            || async {
                (deployed(&store, "dev").await.as_deref() == Some(c4.as_str())).then_some(())
            },
        )
        .await;
        let said = d.ok(&["dags", "errors", "--env", "dev"]);
        assert!(
            said.starts_with(&format!("No import errors in dev at commit {} ", &c4[..10])),
            "{said}"
        );

        // Gate 2: each changed DAG ran successfully below at that commit.
        let why = refused(&["env", "promote", "qa"]);
        assert!(why.contains("not yet: alpha, beta"), "{why}");
        run_ok(&d, &store, "alpha", "dev").await;
        let why = refused(&["env", "promote", "qa"]);
        assert!(why.contains("not yet: beta"), "{why}");
        run_ok(&d, &store, "beta", "dev").await;
        let out = ok(&[
            "env",
            "promote",
            "qa",
            "--note",
            "first release",
            "--as",
            "alice",
        ]);
        assert!(
            out.starts_with(&format!("qa now runs {}", &c4[..10])),
            "{out}"
        );
        assert_eq!(deployed(&store, "qa").await.as_deref(), Some(c4.as_str()));

        // A run in flight during a promotion finishes on its own version.
        commit(
            r,
            &[("dags/alpha.yaml", Some(&dag("alpha", SLOW)))],
            "alpha slower",
        );
        let c5 = eventually(
            "dev to run the fifth commit",
            Duration::from_secs(10),
            || async {
                let head = git(r, &["rev-parse", "HEAD"]);
                (deployed(&store, "dev").await.as_deref() == Some(head.as_str())).then_some(head)
            },
        )
        .await;
        let in_flight = Uuid::parse_str(&d.ok(&["runs", "trigger", "alpha", "--env", "qa"]))
            .unwrap_or_else(|e| panic!("{e}"));
        let old_version = store
            .get_run(in_flight)
            .await
            .map(|r| r.version_id)
            .unwrap_or_default();
        run_ok(&d, &store, "alpha", "dev").await;
        ok(&["env", "promote", "qa", "--as", "alice"]);
        let finished = eventually(
            "the in-flight run to finish",
            Duration::from_secs(30),
            || async {
                store
                    .get_run(in_flight)
                    .await
                    .ok()
                    .filter(|r| r.state.is_finished())
            },
        )
        .await;
        assert_eq!(
            (
                finished.state,
                finished.version_id,
                finished.commit_sha.as_deref()
            ),
            (RunState::Success, old_version, Some(c4.as_str()))
        );
        assert_ne!(
            store
                .dag_env("alpha", "qa")
                .await
                .map(|d| d.version_id)
                .unwrap_or_default(),
            old_version
        );

        // STAGE has no gates: it takes QA's commit as it is.
        let out = ok(&["env", "promote", "stage", "--as", "alice"]);
        assert!(
            out.starts_with(&format!("stage now runs {}", &c5[..10])),
            "{out}"
        );

        // PROD: every DAG is new there, so each must have run in STAGE at that commit; then a
        // second person approves.
        let why = refused(&["env", "promote", "prod", "--as", "alice"]);
        assert!(
            why.contains("in `stage`") && why.contains("not yet: alpha, beta"),
            "{why}"
        );
        run_ok(&d, &store, "alpha", "stage").await;
        run_ok(&d, &store, "beta", "stage").await;
        let out = ok(&[
            "env",
            "promote",
            "prod",
            "--as",
            "alice",
            "--note",
            "weekly release",
        ]);
        assert!(out.contains("waiting for approval"), "{out}");
        assert_eq!(deployed(&store, "prod").await, None);
        let why = refused(&["env", "approve", "prod", "--as", "alice"]);
        assert!(
            why.contains("needs the approval of a different person"),
            "{why}"
        );
        let out = ok(&["env", "approve", "prod", "--as", "bob"]);
        assert!(
            out.starts_with(&format!("prod now runs {}", &c5[..10])),
            "{out}"
        );
        // New DAGs start paused in prod.
        assert!(
            store
                .dag_env("alpha", "prod")
                .await
                .map(|d| d.paused)
                .unwrap_or(false)
        );

        // Rollback restores the previous commit.
        let out = ok(&["env", "rollback", "qa", "--as", "carol"]);
        assert!(
            out.starts_with(&format!("qa now runs {}", &c4[..10])),
            "{out}"
        );
        assert_eq!(deployed(&store, "qa").await.as_deref(), Some(c4.as_str()));

        let status = ok(&["env", "status"]);
        assert!(
            status.contains(&c5[..10])
                && status.contains("alice + bob")
                && status.contains("rollback"),
            "{status}"
        );
        let diff = ok(&["env", "diff", "qa", "prod"]);
        assert!(
            diff.contains("changed  dags/alpha.yaml") && diff.contains("+    noop: { sleep: 2s }"),
            "{diff}"
        );

        let audit = store.audit_events(50).await.unwrap_or_default();
        let trail: Vec<(String, String)> = audit
            .iter()
            .rev()
            .filter(|e| e.action.starts_with("environment."))
            .map(|e| (e.action.clone(), e.actor.clone()))
            .collect();
        let want: Vec<(String, String)> = [
            ("environment.promote", "alice"),
            ("environment.promote", "alice"),
            ("environment.promote", "alice"),
            ("environment.promotion_requested", "alice"),
            ("environment.promotion_approved", "bob"),
            ("environment.promote", "alice"),
            ("environment.rollback", "carol"),
        ]
        .iter()
        .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
        .collect();
        assert_eq!(trail, want);
        let prod_promotion = audit.iter().find(|e| {
            e.action == "environment.promote" && e.environment.as_deref() == Some("prod")
        });
        assert_eq!(
            prod_promotion.map(|e| e.details["approved_by"].clone()),
            Some(serde_json::json!("bob"))
        );
    });
}

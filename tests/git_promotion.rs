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
                && why.contains("dags/gamma.yaml")
                && why.contains("`drover dags validate`"),
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

        // Gate 2: each changed DAG ran successfully below with that content.
        let why = refused(&["env", "promote", "qa"]);
        assert!(
            why.contains(&format!("not yet at {}: alpha, beta", &c4[..10])),
            "{why}"
        );
        run_ok(&d, &store, "alpha", "dev").await;
        let why = refused(&["env", "promote", "qa"]);
        assert!(
            why.contains(&format!("not yet at {}: beta\n", &c4[..10]))
                && why.contains("`drover runs trigger beta --env dev`"),
            "{why}"
        );
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
            why.contains("in `stage`")
                && why.contains(&format!("not yet at {}: alpha, beta", &c5[..10])),
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
            why.contains("needs the approval of a different person")
                && why.contains("runs `drover env approve prod`"),
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
        // In the direction of promotion: what promoting QA into PROD would do to PROD.
        let diff = ok(&["env", "diff", "qa", "prod"]);
        assert!(
            diff.contains("would change in prod:  alpha  dags/alpha.yaml")
                && diff.contains("-    noop: { sleep: 2s }")
                && !diff.contains("would add")
                && !diff.contains("would remove"),
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

/// The commands a refusal names between backticks that start with `start`.
fn named_commands(why: &str, start: &str) -> Vec<Vec<String>> {
    why.split('`')
        .skip(1)
        .step_by(2)
        .filter(|c| c.starts_with(start))
        .map(|c| c.split_whitespace().skip(1).map(str::to_owned).collect())
        .collect()
}

/// The gate `require_success_below` asks for content, not a commit: a DAG whose file ran
/// clean in DEV passes at a later commit that touched only other files; a refusal names the
/// command that satisfies it, and running exactly that command does; `env diff` says what
/// promoting would do to the target, and "no differences" once it is done.
#[test]
fn the_gate_checks_content_and_refusals_name_the_command_that_satisfies_them() {
    let _turn = serial();
    let rt = runtime();
    let db = TestDb::new(&server_url());
    let ws = Workspace::new();
    std::fs::remove_file(ws.environments().join("dev.yaml")).ok();
    environment(&ws, "dev", 1, "branch: main\n");
    environment(
        &ws,
        "qa",
        2,
        "new_dags_paused: true\npromotion: { require_success_below: true }\n",
    );
    let repo = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let r = repo.path();
    git(r, &["init", "-q", "-b", "main"]);
    let c1 = commit(
        r,
        &[
            ("dags/alpha.yaml", Some(&dag("alpha", ONE))),
            ("dags/beta.yaml", Some(&dag("beta", ONE))),
            ("README", Some("one")),
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
        let dev_at = |c: String| {
            let store = store.clone();
            async move {
                eventually("dev to run the commit", Duration::from_secs(20), || async {
                    (deployed(&store, "dev").await.as_deref() == Some(c.as_str())).then_some(())
                })
                .await;
            }
        };
        dev_at(c1.clone()).await;
        run_ok(&d, &store, "alpha", "dev").await;
        run_ok(&d, &store, "beta", "dev").await;
        ok(&["env", "promote", "qa"]);
        assert_eq!(deployed(&store, "qa").await.as_deref(), Some(c1.as_str()));
        let same = ok(&["env", "diff", "dev", "qa"]);
        assert!(same.ends_with("no differences: qa already runs every DAG as dev has it"), "{same}");

        // alpha changes and runs clean in DEV; the next commit touches only the README.
        let c2 = commit(r, &[("dags/alpha.yaml", Some(&dag("alpha", TWO)))], "alpha grows");
        dev_at(c2.clone()).await;
        run_ok(&d, &store, "alpha", "dev").await;
        let c3 = commit(r, &[("README", Some("two"))], "only the README");
        dev_at(c3.clone()).await;
        let diff = ok(&["env", "diff", "dev", "qa"]);
        assert!(
            diff.starts_with(&format!(
                "promoting dev into qa: dev runs {}, qa runs {}",
                &c3[..10],
                &c1[..10]
            )) && diff.contains("would change in qa:  alpha  dags/alpha.yaml")
                && diff.contains("+  - id: b"),
            "{diff}"
        );
        // No alpha run at c3, but its content ran clean at c2: it passes.
        let out = ok(&["env", "promote", "qa"]);
        assert!(
            out.starts_with(&format!("qa now runs {} (changed: alpha)", &c3[..10])),
            "{out}"
        );

        // beta changes and gamma is new: neither ran in DEV at this content. The refusal
        // says what to run, and where.
        let c4 = commit(
            r,
            &[
                ("dags/beta.yaml", Some(&dag("beta", TWO))),
                ("dags/gamma.yaml", Some(&dag("gamma", ONE))),
            ],
            "beta grows, gamma arrives",
        );
        dev_at(c4.clone()).await;
        let diff = ok(&["env", "diff", "dev", "qa"]);
        assert!(
            diff.contains("would change in qa:  beta  dags/beta.yaml")
                && diff.contains(
                    "would add in qa:     gamma  dags/gamma.yaml (starts paused there: `drover dags unpause gamma --env qa`)"
                )
                && !diff.contains("alpha"),
            "{diff}"
        );
        let why = refused(&["env", "promote", "qa"]);
        assert!(
            why.contains(&format!("not yet at {}: beta, gamma", &c4[..10]))
                && why.contains(
                    "beta has not run clean in dev at this content; run it there: `drover runs trigger beta --env dev` and wait for it to succeed"
                )
                && why.ends_with("then promote again.\n"),
            "{why}"
        );
        let commands = named_commands(&why, "drover runs trigger");
        assert_eq!(commands.len(), 2, "{why}");
        for command in &commands {
            let args: Vec<&str> = command.iter().map(String::as_str).collect();
            let id = Uuid::parse_str(&d.ok(&args)).unwrap_or_else(|e| panic!("{e}"));
            let run = eventually("the named run to finish", Duration::from_secs(30), || async {
                store.get_run(id).await.ok().filter(|r| r.state.is_finished())
            })
            .await;
            assert_eq!(run.state, RunState::Success);
        }
        let out = ok(&["env", "promote", "qa"]);
        assert!(out.starts_with(&format!("qa now runs {}", &c4[..10])), "{out}");
        let same = ok(&["env", "diff", "dev", "qa"]);
        assert!(same.contains("no differences"), "{same}");
        // gamma is new to QA, which starts new DAGs paused; the command diff named unpauses it.
        assert!(store.dag_env("gamma", "qa").await.map(|d| d.paused).unwrap_or(false));
        d.ok(&["dags", "unpause", "gamma", "--env", "qa"]);
        assert!(!store.dag_env("gamma", "qa").await.map(|d| d.paused).unwrap_or(true));

        // A run that failed at that content does not count.
        let c5 = commit(
            r,
            &[(
                "dags/delta.yaml",
                Some("id: delta\ntasks:\n  - id: a\n    retries: 0\n    command: { argv: [\"false\"] }\n"),
            )],
            "delta, which fails",
        );
        dev_at(c5.clone()).await;
        let id = Uuid::parse_str(&d.ok(&["runs", "trigger", "delta", "--env", "dev"]))
            .unwrap_or_else(|e| panic!("{e}"));
        let run = eventually("delta's run to finish", Duration::from_secs(30), || async {
            store.get_run(id).await.ok().filter(|r| r.state.is_finished())
        })
        .await;
        assert_eq!(run.state, RunState::Failed);
        let why = refused(&["env", "promote", "qa"]);
        assert!(
            why.contains(&format!("not yet at {}: delta\n", &c5[..10]))
                && why.contains("`drover runs trigger delta --env dev`"),
            "{why}"
        );
        assert_eq!(deployed(&store, "qa").await.as_deref(), Some(c4.as_str()));

        // A commit whose beta DEV no longer runs: running beta in DEV would not help, and
        // the refusal says to bring that version there first.
        let three = "  - id: a\n    noop: {}\n  - id: c\n    noop: {}\n";
        let c6 = commit(r, &[("dags/beta.yaml", Some(&dag("beta", three)))], "beta three");
        let c7 = commit(r, &[("dags/beta.yaml", Some(&dag("beta", TWO)))], "beta back");
        dev_at(c7).await;
        let why = refused(&["env", "promote", "qa", "--commit", &c6]);
        assert!(
            why.contains(&format!("not yet at {}: beta, delta", &c6[..10]))
                && why.contains(
                    "beta has not run clean in dev at this content, and dev runs another version of it: bring this version into dev first (commit it to `main`, which dev follows)"
                ),
            "{why}"
        );
    });
}

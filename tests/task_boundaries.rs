//! A task sees only what it is given: real `drover scheduler` and `drover worker` processes
//! on a real Postgres. A DEV command task cannot read the worker's database URL, any MAP
//! credential or PROD's secret; it gets its own named secret (shown as `***` in its log); a
//! secret its environment lacks fails the try with a reason; a parameter cannot inject shell
//! code; a worker bound to PROD never runs DEV's tasks; a worker waiting for its turn to claim
//! stops at once on SIGTERM. With `--task-user` a task runs as that OS user in a fresh
//! directory of its own and cannot read its worker's environment; a worker is not dumpable,
//! so not even a task of its own user can; a user the worker cannot become fails the try.

mod support;

use std::time::{Duration, Instant};

use drover_store::RunState;
use sqlx::Connection;
use support::tasks::{synced_in, task_record, trigger};
use support::{Drover, TestDb, Workspace, eventually, runtime, serial, server_url, wait_finished};

const DEV_TOKEN: &str = "dev-crm-token-5f1c0a77";
const PROD_TOKEN: &str = "prod-crm-token-9b2e41d3";
const DEV_MAP_ID: &str = "dev-map-client-id-0a1b";
const DEV_MAP_SECRET: &str = "dev-map-client-secret-77aa";
const PROD_MAP_ID: &str = "prod-map-client-id-3c4d";
const PROD_MAP_SECRET: &str = "prod-map-client-secret-88bb";
const SMTP_URL: &str = "smtp://ops:smtp-pass-w0rd@mail.example.com:587";

/// DEV and PROD, each with its MAP credentials and a `crm_token` secret from variables of its
/// own.
fn workspace() -> Workspace {
    let ws = Workspace::new();
    for (name, order, branch, upper) in
        [("dev", 1, "branch: main\n", "DEV"), ("prod", 2, "", "PROD")]
    {
        let text = format!(
            "name: {name}\norder: {order}\n{branch}map:\n  kind: marketo\n  base_url: http://127.0.0.1:9\n  client_id: {{ env: DROVER_{upper}_MAP_CLIENT_ID }}\n  client_secret: {{ env: DROVER_{upper}_MAP_CLIENT_SECRET }}\nsecrets:\n  crm_token: {{ env: DROVER_{upper}_CRM_TOKEN }}\n"
        );
        std::fs::write(ws.environments().join(format!("{name}.yaml")), text)
            .unwrap_or_else(|e| panic!("{e}"));
    }
    ws
}

/// Every secret the worker process holds, as variables.
fn worker_secrets(db: &TestDb) -> Vec<(&'static str, String)> {
    vec![
        ("DROVER_DEV_CRM_TOKEN", DEV_TOKEN.to_owned()),
        ("DROVER_PROD_CRM_TOKEN", PROD_TOKEN.to_owned()),
        ("DROVER_DEV_MAP_CLIENT_ID", DEV_MAP_ID.to_owned()),
        ("DROVER_DEV_MAP_CLIENT_SECRET", DEV_MAP_SECRET.to_owned()),
        ("DROVER_PROD_MAP_CLIENT_ID", PROD_MAP_ID.to_owned()),
        ("DROVER_PROD_MAP_CLIENT_SECRET", PROD_MAP_SECRET.to_owned()),
        ("DROVER_TEST_SMTP_URL", SMTP_URL.to_owned()),
        ("DATABASE_URL", db.url.clone()),
    ]
}

fn worker(d: &Drover<'_>, name: &str, extra: &[&str], envs: &[(&str, String)]) -> support::Proc {
    let mut args = vec![
        "worker",
        "--id",
        name,
        "--concurrency",
        "4",
        "--poll-ms",
        "200",
        "--grace-secs",
        "2",
    ];
    args.extend_from_slice(extra);
    let envs: Vec<(&str, &str)> = envs.iter().map(|(k, v)| (*k, v.as_str())).collect();
    d.spawn_with(name, &args, &envs)
}

/// Base64 of `s`, the way `base64(1)` prints it.
fn base64(s: &str) -> String {
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("printf '%s' '{s}' | base64"))
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[test]
fn a_dev_command_task_sees_only_what_it_is_given() {
    let _turn = serial();
    let rt = runtime();
    let db = TestDb::new(&server_url());
    let ws = workspace();
    ws.dag(
        "peek",
        r#"id: peek
params:
  p: { type: string, default: plain }
  q: { type: string, default: plain }
tasks:
  - id: look
    command:
      shell: |
        env
        printf 'b64:%s\n' "$(printf '%s' "$CRM_TOKEN" | base64)"
      env: { GREETING: hello }
      secrets: [crm_token]
  - id: typo
    retries: 2
    command:
      argv: [env]
      secrets: [crm_tokn]
  - id: inject
    command:
      shell: "printf 'p=%s|q=%s\n' {{ params.p }} {{ params.q }}"
"#,
    );
    let d = Drover { db: &db, ws: &ws };
    d.ok(&["db", "migrate"]);
    let _s = d.scheduler("scheduler");
    let w = worker(&d, "worker-all", &[], &worker_secrets(&db));
    rt.block_on(async {
        let store = db.store().await;
        synced_in(&store, "peek", "dev").await;
        // The worker itself holds every secret of every environment, and Drover's login.
        let environ = std::fs::read(format!("/proc/{}/environ", w.pid())).unwrap_or_default();
        let environ = String::from_utf8_lossy(&environ);
        for (var, value) in worker_secrets(&db) {
            assert!(
                environ.contains(&format!("{var}={value}")),
                "the worker should have {var}"
            );
        }
        let injected_p = "x'; id; echo '";
        let injected_q = "$(id)`id`";
        let run = trigger(
            &d,
            "peek",
            "dev",
            &[&format!("p={injected_p}"), &format!("q={injected_q}")],
        );
        assert_eq!(
            wait_finished(&store, run, Duration::from_secs(60)).await.state,
            RunState::Failed,
            "`typo` fails the run"
        );

        // What the task saw: its own facts, its `env:`, its own secret (redacted in the log),
        // the allowed variables, and nothing else.
        let (lines, tries) = task_record(&store, run, "look").await;
        let log = lines.join("\n");
        assert_eq!(tries.len(), 1, "{tries:?}");
        assert_eq!(tries[0].1, "success", "{tries:?}\n{log}");
        for seen in ["DROVER_ENV=dev", "DROVER_TASK_ID=look", "GREETING=hello", "CRM_TOKEN=***", "b64:***"] {
            assert!(lines.iter().any(|l| l == seen), "`{seen}` not in the log:\n{log}");
        }
        assert!(lines.iter().any(|l| l.starts_with("PATH=")), "{log}");
        let mut forbidden: Vec<String> = worker_secrets(&db).into_iter().map(|(_, v)| v).collect();
        forbidden.push(base64(DEV_TOKEN));
        forbidden.push("smtp-pass-w0rd".to_owned());
        for value in &forbidden {
            assert!(!log.contains(value.as_str()), "the log shows `{value}`:\n{log}");
        }
        for var in ["DATABASE_URL", "DROVER_DEV_MAP", "DROVER_PROD", "DROVER_TEST_SMTP_URL", "DROVER_DEV_CRM_TOKEN", "RUST_LOG", "DROVER_DAGS_DIR"] {
            assert!(
                !lines.iter().any(|l| l.starts_with(var)),
                "the task sees {var}:\n{log}"
            );
        }

        // A secret the environment does not define: the try fails with the reason, once.
        let (_, tries) = task_record(&store, run, "typo").await;
        assert_eq!(tries.len(), 1, "not retried: {tries:?}");
        assert_eq!(
            tries[0].2.as_deref(),
            Some("task `typo` names secret `crm_tokn`, which environment `dev` does not define; did you mean `crm_token`?")
        );

        // Parameters reach the shell as literal words.
        let (lines, tries) = task_record(&store, run, "inject").await;
        assert_eq!(tries[0].1, "success", "{tries:?}");
        let expected = format!("p={injected_p}|q={injected_q}");
        assert!(
            lines.contains(&expected),
            "expected `{expected}` in:\n{}",
            lines.join("\n")
        );
        assert!(!lines.iter().any(|l| l.contains("uid=")), "`id` ran: {lines:?}");
    });
}

#[test]
fn a_worker_bound_to_prod_never_claims_a_dev_task() {
    let _turn = serial();
    let rt = runtime();
    let db = TestDb::new(&server_url());
    let ws = workspace();
    let tasks: String = (0..6)
        .map(|i| format!("  - id: t{i}\n    command: {{ argv: [sh, -c, 'echo \"$CRM_TOKEN\"'], secrets: [crm_token] }}\n"))
        .collect();
    ws.dag("fan", &format!("id: fan\ntasks:\n{tasks}"));
    let d = Drover { db: &db, ws: &ws };
    d.ok(&["db", "migrate"]);
    let _s = d.scheduler("scheduler");
    // Each worker has only its own environment's variables.
    let prod_vars = vec![("DROVER_PROD_CRM_TOKEN", PROD_TOKEN.to_owned())];
    let dev_vars = vec![("DROVER_DEV_CRM_TOKEN", DEV_TOKEN.to_owned())];
    let _prod = worker(&d, "prod-w", &["--env", "prod"], &prod_vars);
    let _dev = {
        let envs: Vec<(&str, String)> = dev_vars
            .into_iter()
            .chain([("DROVER_WORKER_ENVS", "dev".to_owned())])
            .collect();
        worker(&d, "dev-w", &[], &envs)
    };
    rt.block_on(async {
        let store = db.store().await;
        synced_in(&store, "fan", "dev").await;
        synced_in(&store, "fan", "prod").await;
        let dev_runs = [
            trigger(&d, "fan", "dev", &[]),
            trigger(&d, "fan", "dev", &[]),
        ];
        let prod_runs = [
            trigger(&d, "fan", "prod", &[]),
            trigger(&d, "fan", "prod", &[]),
        ];
        for (runs, env, owner) in [(dev_runs, "dev", "dev-w"), (prod_runs, "prod", "prod-w")] {
            for run in runs {
                assert_eq!(
                    wait_finished(&store, run, Duration::from_secs(60))
                        .await
                        .state,
                    RunState::Success,
                    "{env} run {run}"
                );
                for i in 0..6 {
                    let (lines, tries) = task_record(&store, run, &format!("t{i}")).await;
                    assert_eq!(tries.len(), 1, "{tries:?}");
                    assert_eq!(tries[0].0.as_deref(), Some(owner), "{env} t{i}: {tries:?}");
                    assert!(lines.iter().any(|l| l == "***"), "{lines:?}");
                }
            }
        }
    });
}

#[test]
fn a_worker_waiting_for_its_turn_to_claim_stops_at_once_on_sigterm() {
    let _turn = serial();
    let rt = runtime();
    let db = TestDb::new(&server_url());
    let ws = workspace();
    let d = Drover { db: &db, ws: &ws };
    d.ok(&["db", "migrate"]);
    rt.block_on(async {
        // Hold the claim turn, as a claim that never ends would.
        let mut holder = sqlx::PgConnection::connect(&db.url)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let mut tx = holder.begin().await.unwrap_or_else(|e| panic!("{e}"));
        sqlx::query("select id from claim_turn for update")
            .execute(&mut *tx)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let store = db.store().await;
        let mut w = worker(&d, "blocked", &[], &[]);
        eventually(
            "the worker to wait for its turn",
            Duration::from_secs(20),
            || async {
                let waiting: Option<i64> = sqlx::query_scalar(
                    "select count(*) from pg_stat_activity where datname = current_database() \
                 and wait_event_type = 'Lock' and query like '%lock table claim_turn%'",
                )
                .fetch_one(store.pool())
                .await
                .ok();
                waiting.filter(|n| *n > 0)
            },
        )
        .await;
        let asked = Instant::now();
        let status = w.terminate(Duration::from_secs(10));
        let took = asked.elapsed();
        assert!(
            status.is_some_and(|s| s.success()),
            "the worker did not stop cleanly: {status:?}\n{}",
            w.log()
        );
        assert!(
            took < Duration::from_secs(3),
            "the worker took {took:?} to stop while waiting to claim"
        );
        tx.rollback().await.unwrap_or_else(|e| panic!("{e}"));
    });
}

#[test]
fn a_task_run_as_the_task_user_cannot_read_its_worker() {
    let _turn = serial();
    let rt = runtime();
    let db = TestDb::new(&server_url());
    let ws = workspace();
    let nobody = nix::unistd::User::from_name("nobody")
        .ok()
        .flatten()
        .unwrap_or_else(|| panic!("this machine has no user `nobody`"));
    ws.dag(
        "reach",
        r#"id: reach
params:
  worker_pid: { type: string, default: "1" }
tasks:
  - id: look
    command:
      shell: |
        echo "uid=$(id -u) gid=$(id -g) groups=$(id -G)"
        echo "home=$HOME"
        echo "cwd=$(pwd) owner=$(stat -c %u .)"
        if cat /proc/{{ params.worker_pid }}/environ > environ.copy 2> environ.err; then
          echo "read the worker's environment:"
          tr '\0' '\n' < environ.copy
        else
          echo "environ: $(cat environ.err)"
        fi
        echo written > here.txt && echo "wrote here.txt: $(cat here.txt)"
"#,
    );
    let d = Drover { db: &db, ws: &ws };
    d.ok(&["db", "migrate"]);
    let _s = d.scheduler("scheduler");
    let w = worker(
        &d,
        "worker-nobody",
        &["--task-user", "nobody"],
        &worker_secrets(&db),
    );
    rt.block_on(async {
        let store = db.store().await;
        synced_in(&store, "reach", "dev").await;
        let run = trigger(&d, "reach", "dev", &[&format!("worker_pid={}", w.pid())]);
        assert_eq!(
            wait_finished(&store, run, Duration::from_secs(60))
                .await
                .state,
            RunState::Success,
            "{}",
            w.log()
        );
        let (lines, tries) = task_record(&store, run, "look").await;
        let log = lines.join("\n");
        assert_eq!(tries.len(), 1, "{tries:?}");
        assert_eq!(tries[0].1, "success", "{tries:?}\n{log}");

        // The task ran as nobody, with nobody's group alone and nobody's home.
        let (uid, gid) = (nobody.uid.as_raw(), nobody.gid.as_raw());
        let ids = format!("uid={uid} gid={gid} groups={gid}");
        assert!(lines.contains(&ids), "`{ids}` not in:\n{log}");
        let home = format!("home={}", nobody.dir.display());
        assert!(lines.contains(&home), "`{home}` not in:\n{log}");
        assert!(
            lines.iter().any(
                |l| l.starts_with("started `") && l.contains(&format!("as nobody (uid {uid})"))
            ),
            "{log}"
        );

        // The worker's environment is out of reach.
        let refused = lines
            .iter()
            .find(|l| l.starts_with("environ: "))
            .unwrap_or_else(|| panic!("the task read the worker's environment:\n{log}"));
        assert!(refused.contains("Permission denied"), "{refused}");
        for (var, value) in worker_secrets(&db) {
            assert!(!log.contains(&value), "the log shows {var}:\n{log}");
        }

        // It worked in a fresh directory of its own, owned by nobody, removed after the try.
        let cwd = lines
            .iter()
            .find_map(|l| l.strip_prefix("cwd="))
            .unwrap_or_else(|| panic!("no cwd in:\n{log}"));
        let (dir, owner) = cwd.split_once(" owner=").unwrap_or_else(|| panic!("{cwd}"));
        assert_eq!(owner, uid.to_string(), "{cwd}");
        let dir = std::path::Path::new(dir);
        assert!(
            dir.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("drover-task-")),
            "{cwd}"
        );
        assert_ne!(dir, ws.path(), "the task ran in the worker's directory");
        assert!(
            lines.iter().any(|l| l == "wrote here.txt: written"),
            "{log}"
        );
        assert!(!dir.exists(), "{} was not removed", dir.display());
        assert!(!ws.path().join("here.txt").exists());
    });
}

#[test]
fn a_worker_with_an_unknown_task_user_refuses_to_start() {
    let db = TestDb::new(&server_url());
    let ws = workspace();
    let d = Drover { db: &db, ws: &ws };
    let out = d.run(&["worker", "--task-user", "no-such-user-q8"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains(
            "`--task-user no-such-user-q8`: task user `no-such-user-q8` does not exist on this machine"
        ),
        "{stderr}"
    );
}

#[test]
fn a_task_of_the_workers_own_user_cannot_read_the_worker() {
    use std::os::unix::fs::MetadataExt;
    let _turn = serial();
    let rt = runtime();
    let db = TestDb::new(&server_url());
    let ws = workspace();
    let nobody = nix::unistd::User::from_name("nobody")
        .ok()
        .flatten()
        .unwrap_or_else(|| panic!("this machine has no user `nobody`"));
    ws.dag(
        "reach",
        r#"id: reach
params:
  worker_pid: { type: string, default: "1" }
tasks:
  - id: look
    command:
      shell: |
        echo "uid=$(id -u)"
        if cat /proc/{{ params.worker_pid }}/environ > environ.copy 2> environ.err; then
          echo "read the worker's environment:"
          tr '\0' '\n' < environ.copy
        else
          echo "environ: $(cat environ.err)"
        fi
"#,
    );
    // The worker itself runs as nobody (without --task-user): its tasks are nobody too.
    let d = Drover { db: &db, ws: &ws };
    d.ok(&["db", "migrate"]);
    let _s = d.scheduler("scheduler");
    let uid = nobody.uid.as_raw();
    let w = worker_as(&db, &ws, &nobody, "worker-as-nobody", &[]);
    rt.block_on(async {
        let store = db.store().await;
        synced_in(&store, "reach", "dev").await;
        let run = trigger(&d, "reach", "dev", &[&format!("worker_pid={}", w.pid())]);
        assert_eq!(
            wait_finished(&store, run, Duration::from_secs(60))
                .await
                .state,
            RunState::Success,
            "{}",
            w.log()
        );
        // The worker runs as nobody, yet its /proc files are root's: it is not dumpable.
        let status = std::fs::read_to_string(format!("/proc/{}/status", w.pid()))
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(
            status
                .lines()
                .any(|l| l.starts_with("Uid:")
                    && l.split_whitespace().nth(1) == Some(&uid.to_string())),
            "{status}"
        );
        let environ = std::fs::metadata(format!("/proc/{}/environ", w.pid()))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(environ.uid(), 0, "the worker is dumpable");

        let (lines, tries) = task_record(&store, run, "look").await;
        let log = lines.join("\n");
        assert_eq!(tries[0].1, "success", "{tries:?}\n{log}");
        assert!(lines.contains(&format!("uid={uid}")), "{log}");
        let refused = lines
            .iter()
            .find(|l| l.starts_with("environ: "))
            .unwrap_or_else(|| panic!("the task read the worker's environment:\n{log}"));
        assert!(refused.contains("Permission denied"), "{refused}");
        for (var, value) in worker_secrets(&db) {
            assert!(!log.contains(&value), "the log shows {var}:\n{log}");
        }
    });
}

/// A worker started as `user` (the workspace opened to it), holding every secret.
fn worker_as(
    db: &TestDb,
    ws: &Workspace,
    user: &nix::unistd::User,
    name: &str,
    extra: &[&str],
) -> support::Proc {
    use std::os::unix::fs::PermissionsExt;
    for dir in [ws.path().to_path_buf(), ws.environments()] {
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755))
            .unwrap_or_else(|e| panic!("{e}"));
    }
    let log = ws.path().join(format!("{name}.log"));
    let file = std::fs::File::create(&log).unwrap_or_else(|e| panic!("{e}"));
    let (uid, gid) = (user.uid.to_string(), user.gid.to_string());
    let child = std::process::Command::new("setpriv")
        .args(["--reuid", &uid, "--regid", &gid, "--clear-groups", "--"])
        .arg(env!("CARGO_BIN_EXE_drover"))
        .args(["worker", "--id", name, "--poll-ms", "200"])
        .args(extra)
        .envs(worker_secrets(db))
        .env("DROVER_DAGS_DIR", ws.dags())
        .env("DROVER_ENVIRONMENTS_DIR", ws.environments())
        .env("RUST_LOG", "info,sqlx=warn")
        .current_dir(ws.path())
        .stdout(std::process::Stdio::null())
        .stderr(file)
        .spawn()
        .unwrap_or_else(|e| panic!("setpriv: {e}"));
    support::Proc::new(child, name, log)
}

#[test]
fn a_task_user_the_worker_cannot_become_fails_the_try_with_the_reason() {
    let _turn = serial();
    let rt = runtime();
    let db = TestDb::new(&server_url());
    let ws = workspace();
    let nobody = nix::unistd::User::from_name("nobody")
        .ok()
        .flatten()
        .unwrap_or_else(|| panic!("this machine has no user `nobody`"));
    ws.dag(
        "climb",
        "id: climb\ntasks:\n  - id: in_tmp\n    retries: 2\n    command: { argv: [id, -u], workdir: /tmp }\n  - id: own_dir\n    retries: 2\n    command: { argv: [id, -u] }\n",
    );
    let d = Drover { db: &db, ws: &ws };
    d.ok(&["db", "migrate"]);
    let _s = d.scheduler("scheduler");
    // nobody cannot become root.
    let w = worker_as(
        &db,
        &ws,
        &nobody,
        "worker-climbing",
        &["--task-user", "root"],
    );
    rt.block_on(async {
        let store = db.store().await;
        synced_in(&store, "climb", "dev").await;
        let run = trigger(&d, "climb", "dev", &[]);
        assert_eq!(
            wait_finished(&store, run, Duration::from_secs(60)).await.state,
            RunState::Failed,
            "{}",
            w.log()
        );
        for (task, reason) in [
            (
                "in_tmp",
                "cannot run as task user root (uid 0): setgroups: Operation not permitted (os error 1)",
            ),
            (
                "own_dir",
                "cannot give the task's working directory",
            ),
        ] {
            let (lines, tries) = task_record(&store, run, task).await;
            assert_eq!(tries.len(), 1, "not retried: {tries:?}");
            let error = tries[0].2.clone().unwrap_or_default();
            assert!(error.starts_with(reason), "{task}: {error}");
            assert!(
                lines.contains(&format!("failed: {error}")),
                "{task}: {lines:?}"
            );
            assert!(!lines.iter().any(|l| l == "0"), "{task} ran as root: {lines:?}");
        }
    });
}

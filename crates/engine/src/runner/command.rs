//! `command`: a process with arguments, environment and working directory. Its output goes to
//! the task log line by line; on timeout or cancellation its whole process group is stopped
//! (SIGTERM, then SIGKILL after a grace period).
//!
//! A task sees only what it is given: the process starts from an empty environment plus
//! [`INHERITED_VARIABLES`] of the worker's, the `DROVER_*` facts of the try, the task's `env:`
//! and the secrets it names (from its own environment's file only). Nothing else of the
//! worker's environment (the database URL, other environments' MAP credentials, SMTP and
//! webhook URLs) reaches it. Its output and its error go through a redactor of the secrets it
//! was given, so a task that prints its own secret leaves `***` in the log.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::os::unix::fs::DirBuilderExt;
use std::path::PathBuf;
use std::time::Duration;

use std::sync::Arc;

use drover_map::Redactor;
use drover_spec::dag::{CommandProgram, INHERITED_VARIABLES, TaskKind};
use drover_spec::template::render;
use drover_spec::template_shell::render_shell;
use drover_store::{LogStream, Outcome};
use nix::sys::signal::{Signal, killpg};
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};

use super::spawn::{self, Child, Launch, Program};
use super::task_user::TaskUser;
use super::warden::{self, WatchedGroup};
use super::{Job, LogSink, RunFuture, Runner, cancelled};
use crate::secrets::SecretSource;

/// How long a stopped process group gets between SIGTERM and SIGKILL.
const KILL_GRACE: Duration = Duration::from_secs(5);

#[derive(Debug, Default)]
pub(crate) struct CommandRunner {
    secrets: SecretSource,
    /// The OS user tasks run as (`None`: the worker's own).
    user: Option<TaskUser>,
}

impl CommandRunner {
    /// Tasks' secrets read from `secrets`.
    pub(crate) fn new(secrets: SecretSource) -> Self {
        Self {
            secrets,
            user: None,
        }
    }

    /// Tasks run as `user` (`None`: as the worker's own user).
    pub(crate) fn run_as(&mut self, user: Option<TaskUser>) {
        self.user = user;
    }
}

/// A try's own working directory, for a task without `workdir`: created empty (mode 0700,
/// owned by the task's user) before the try and removed after it.
#[derive(Debug)]
struct TryDir {
    path: PathBuf,
}

impl TryDir {
    fn create(user: Option<&TaskUser>) -> Result<Self, Outcome> {
        let path =
            std::env::temp_dir().join(format!("drover-task-{}", uuid::Uuid::new_v4().simple()));
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&path)
            .map_err(|e| {
                failed(
                    format!(
                        "cannot create the task's working directory {}: {e}",
                        path.display()
                    ),
                    true,
                )
            })?;
        let dir = Self { path };
        if let Some(user) = user {
            std::os::unix::fs::chown(&dir.path, Some(user.uid.as_raw()), Some(user.gid.as_raw()))
                .map_err(|e| {
                failed(
                    format!(
                        "cannot give the task's working directory {} to task user {}: {e}",
                        dir.path.display(),
                        user.describe()
                    ),
                    false,
                )
            })?;
        }
        Ok(dir)
    }
}

impl Drop for TryDir {
    fn drop(&mut self) {
        // Most tries leave it empty: one rmdir, else the walk of what they left.
        if std::fs::remove_dir(&self.path).is_ok() {
            return;
        }
        if let Err(e) = std::fs::remove_dir_all(&self.path) {
            tracing::warn!(dir = %self.path.display(), error = %e, "cannot remove a task's working directory");
        }
    }
}

fn failed(error: impl Into<String>, retryable: bool) -> Outcome {
    Outcome::Failed {
        error: error.into(),
        exit_code: None,
        retryable,
    }
}

impl Runner for CommandRunner {
    fn run<'a>(&'a self, job: Job<'a>) -> RunFuture<'a> {
        Box::pin(run_command(job, &self.secrets, self.user.as_ref()))
    }
}

async fn run_command(mut job: Job<'_>, secrets: &SecretSource, user: Option<&TaskUser>) -> Outcome {
    let TaskKind::Command(spec) = &job.task.kind else {
        return failed("not a command task", false);
    };
    let ctx = &job.context;
    let rendered = (|| -> Result<_, drover_spec::template::RenderError> {
        let argv: Vec<String> = match &spec.program {
            CommandProgram::Argv(argv) => argv
                .iter()
                .enumerate()
                .map(|(i, a)| render(a, &format!("command.argv[{i}]"), ctx))
                .collect::<Result<_, _>>()?,
            CommandProgram::Shell(line) => {
                vec![
                    "sh".to_owned(),
                    "-c".to_owned(),
                    render_shell(line, "command.shell", ctx)?,
                ]
            }
        };
        let env: Vec<(String, String)> = spec
            .env
            .iter()
            .map(|(k, v)| Ok((k.clone(), render(v, &format!("command.env.{k}"), ctx)?)))
            .collect::<Result<_, _>>()?;
        let workdir = spec
            .workdir
            .as_ref()
            .map(|w| render(w, "command.workdir", ctx))
            .transpose()?;
        Ok((argv, env, workdir))
    })();
    let (argv, env, workdir) = match rendered {
        Ok(r) => r,
        Err(e) => return failed(e.to_string(), false),
    };
    let Some((program, args)) = argv.split_first() else {
        return failed("empty command", false);
    };
    let given = if spec.secrets.is_empty() {
        Vec::new()
    } else {
        let Some(environment) = job.environment.as_deref() else {
            return failed(
                format!(
                    "task `{}` names secrets, but this worker cannot read environment `{}`'s file",
                    ctx.task_id, ctx.env.name
                ),
                true,
            );
        };
        match secrets.for_task(&ctx.task_id, &spec.secrets, environment) {
            Ok(given) => given,
            Err(why) => {
                job.log.system(format!("failed: {why}"));
                return failed(why, false);
            }
        }
    };
    let redactor = Arc::new(Redactor::new(given.iter().map(|(_, s)| s.expose())));
    // Exactly this environment: later entries replace earlier ones of the same name.
    let mut vars: BTreeMap<OsString, OsString> = BTreeMap::new();
    for var in INHERITED_VARIABLES {
        if let Some(value) = std::env::var_os(var) {
            vars.insert(var.into(), value);
        }
    }
    if let Some(user) = user {
        vars.insert("HOME".into(), user.home.clone().into_os_string());
    }
    vars.extend(env.into_iter().map(|(k, v)| (k.into(), v.into())));
    for (var, value) in [
        ("DROVER_DAG_ID", ctx.dag_id.clone()),
        ("DROVER_TASK_ID", ctx.task_id.clone()),
        ("DROVER_RUN_ID", ctx.run_id.clone()),
        ("DROVER_TRY_NUMBER", ctx.try_number.to_string()),
        ("DROVER_LOGICAL_DATE", ctx.logical_date.clone()),
        ("DROVER_ENV", ctx.env.name.clone()),
    ] {
        vars.insert(var.into(), value.into());
    }
    vars.extend(
        given
            .iter()
            .map(|(var, value)| (var.into(), value.expose().into())),
    );
    // Dropped (removed) when the try is over, whatever its end.
    let (cwd, _try_dir) = match workdir {
        Some(dir) => (PathBuf::from(dir), None),
        None => match TryDir::create(user) {
            Ok(dir) => (dir.path.clone(), Some(dir)),
            Err(outcome) => {
                if let Outcome::Failed { error, .. } = &outcome {
                    job.log.system(format!("failed: {error}"));
                }
                return outcome;
            }
        },
    };
    let to_start = match Program::new(program, args, &vars, &cwd) {
        Ok(p) => p,
        Err(e) => return failed(format!("cannot start `{program}`: {e}"), false),
    };
    let warden = match warden::socket() {
        Ok(w) => w,
        Err(e) => return failed(format!("cannot start the task warden: {e}"), true),
    };
    let started = spawn::spawn(&Launch {
        program: &to_start,
        user,
        // While a warden watches the group, the program may stop on its own first.
        death_signal: if warden.is_some() {
            nix::libc::SIGTERM
        } else {
            nix::libc::SIGKILL
        },
        warden: warden.as_ref(),
    });
    let mut child = match started {
        Ok(c) => c,
        Err(e) => {
            if let Some(user) = user.filter(|_| e.step.user_switch().is_some()) {
                let why = format!("cannot run as task user {}: {e}", user.describe());
                job.log.system(format!("failed: {why}"));
                return failed(why, false);
            }
            return failed(format!("cannot start `{program}`: {e}"), true);
        }
    };
    let pid = child.id();
    let mut group = WatchedGroup::new(Some(pid));
    job.log.system(format!(
        "started `{}` (pid {}){}",
        argv.join(" "),
        pid.as_raw(),
        user.map(|u| format!(" as {}", u.describe()))
            .unwrap_or_default()
    ));
    let out = child.stdout.take().map(|s| {
        tokio::spawn(pump(
            s,
            job.log.clone(),
            LogStream::Stdout,
            redactor.clone(),
        ))
    });
    let err = child.stderr.take().map(|s| {
        tokio::spawn(pump(
            s,
            job.log.clone(),
            LogStream::Stderr,
            redactor.clone(),
        ))
    });

    let timeout = job.timeout;
    let status = tokio::select! {
        s = child.wait() => Ok(s),
        () = tokio::time::sleep(timeout) => Err(format!("timed out after {}s", timeout.as_secs())),
        () = cancelled(&mut job.cancel) => Err("cancelled".to_owned()),
    };
    let outcome = match status {
        Ok(Ok(s)) if s.success() => Outcome::Success,
        Ok(Ok(s)) => match s.code() {
            Some(code) => Outcome::Failed {
                error: format!("exited with code {code}"),
                exit_code: Some(code),
                retryable: true,
            },
            None => failed(format!("killed by a signal ({s})"), true),
        },
        Ok(Err(e)) => failed(format!("lost the process: {e}"), true),
        Err(why) => {
            job.log.system(format!("{why}: stopping the process group"));
            stop_group(&mut child).await;
            failed(why, true)
        }
    };
    if group.has_members() {
        job.log
            .system("the program exited, leaving processes in its group behind: stopping them");
        stop_leftovers(&group).await;
    }
    group.ended();
    for pump in [out, err].into_iter().flatten() {
        let _ = pump.await;
    }
    if let Outcome::Failed { error, .. } = &outcome {
        job.log.system(format!("failed: {error}"));
    } else {
        job.log.system("succeeded");
    }
    outcome
}

async fn pump(
    stream: impl AsyncRead + Unpin,
    log: LogSink,
    kind: LogStream,
    redactor: Arc<Redactor>,
) {
    let mut lines = BufReader::new(stream).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        if redactor.is_empty() {
            log.line(kind, line);
        } else {
            log.line(kind, redactor.redact(&line));
        }
    }
}

/// SIGTERM what is left of an exited program's group, then SIGKILL it after the grace
/// period: nothing of a try outlives it.
async fn stop_leftovers(group: &WatchedGroup) {
    let Some(pid) = group.id() else { return };
    let _ = killpg(pid, Signal::SIGTERM);
    let deadline = tokio::time::Instant::now() + KILL_GRACE;
    while group.has_members() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = killpg(pid, Signal::SIGKILL);
}

/// SIGTERM the group, then SIGKILL it if the child has not exited within the grace period.
async fn stop_group(child: &mut Child) {
    let pid = child.id();
    let _ = killpg(pid, Signal::SIGTERM);
    if tokio::time::timeout(KILL_GRACE, child.wait())
        .await
        .is_err()
    {
        let _ = killpg(pid, Signal::SIGKILL);
        child.kill();
        let _ = child.wait().await;
    }
    // Children that ignored SIGTERM while their leader exited.
    let _ = killpg(pid, Signal::SIGKILL);
}

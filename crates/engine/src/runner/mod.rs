//! Task runners, one per task kind. The worker picks the runner by the task's kind; the MAP
//! kinds plug in here.

mod command;
mod spawn;
pub mod task_user;
pub mod warden;

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use drover_spec::dag::{Task, TaskKind};
use drover_spec::template::RenderContext;
use drover_store::{Completion, LogLine, LogStream, Outcome};
use tokio::sync::{mpsc, watch};

/// What goes to the worker's log writer, in order: a try's lines, then its completion. The
/// writer passes a completion on only once every line sent before it is written, so a
/// finished task's log is whole when its state says finished.
#[derive(Debug)]
pub enum LogMsg {
    Line(LogLine),
    Then(Completion),
    /// Write the lines held now (and say so on the sender, if any): a try is about to record
    /// a state of its own, or ended without a completion to carry its lines.
    Flush(Option<tokio::sync::oneshot::Sender<()>>),
}

/// Where a running task's log lines go.
#[derive(Debug, Clone)]
pub struct LogSink {
    pub(crate) ti_id: i64,
    pub(crate) try_number: i32,
    pub(crate) tx: mpsc::UnboundedSender<LogMsg>,
}

impl LogSink {
    pub fn new(ti_id: i64, try_number: i32, tx: mpsc::UnboundedSender<LogMsg>) -> Self {
        Self {
            ti_id,
            try_number,
            tx,
        }
    }

    pub fn line(&self, stream: LogStream, line: impl Into<String>) {
        // If the writer is gone the worker is stopping; the line has nowhere to go.
        let _ = self.tx.send(LogMsg::Line(LogLine {
            ti_id: self.ti_id,
            try_number: self.try_number,
            stream,
            line: line.into(),
        }));
    }

    /// Once every line sent before is written: a try that records a state of its own (a
    /// return that waits for approval) first makes its log whole.
    pub async fn flush(&self) {
        let (done, written) = tokio::sync::oneshot::channel();
        if self.tx.send(LogMsg::Flush(Some(done))).is_ok() {
            let _ = written.await;
        }
    }

    pub fn system(&self, line: impl Into<String>) {
        self.line(LogStream::System, line);
    }
}

/// One try to run.
#[derive(Debug)]
pub struct Job<'a> {
    pub task: &'a Task,
    /// The DAG the task belongs to (the version the run uses).
    pub dag: &'a drover_spec::dag::Dag,
    pub context: RenderContext,
    pub timeout: Duration,
    pub log: LogSink,
    /// Becomes `true` when the try must stop now (lease lost, worker stopping).
    pub cancel: watch::Receiver<bool>,
    /// The environment the run belongs to, as its file says (`None` if this worker cannot
    /// read it).
    pub environment: Option<std::sync::Arc<drover_spec::environment::Environment>>,
    /// The DAG's backstops (`limits:`).
    pub limits: drover_spec::dag::DagLimits,
}

pub type RunFuture<'a> = Pin<Box<dyn Future<Output = Outcome> + Send + 'a>>;

/// Runs the tasks of one kind.
pub trait Runner: Send + Sync + std::fmt::Debug {
    fn run<'a>(&'a self, job: Job<'a>) -> RunFuture<'a>;
}

/// The runner for each task kind.
#[derive(Debug)]
pub struct Runners {
    command: command::CommandRunner,
    noop: NoopRunner,
    data: Option<crate::data::DataRunner>,
}

impl Default for Runners {
    fn default() -> Self {
        Self {
            command: command::CommandRunner::default(),
            noop: NoopRunner,
            data: None,
        }
    }
}

impl Runners {
    /// Runners for every kind, the data kinds on `plane`.
    /// Command tasks' secrets come from where the plane's MAP credentials do.
    pub fn with_data(plane: crate::data::DataPlane) -> Self {
        let secrets = crate::secrets::SecretSource::with_provided(plane.maps().provided().clone());
        Self {
            command: command::CommandRunner::new(secrets),
            noop: NoopRunner,
            data: Some(crate::data::DataRunner::new(plane)),
        }
    }

    /// Command tasks run as `user` (`None`: as the worker's own user).
    pub fn with_task_user(mut self, user: Option<task_user::TaskUser>) -> Self {
        self.command.run_as(user);
        self
    }

    pub fn for_kind(&self, kind: &TaskKind) -> Option<&dyn Runner> {
        match kind {
            TaskKind::Command(_) => Some(&self.command),
            TaskKind::Noop(_) => Some(&self.noop),
            TaskKind::Export(_)
            | TaskKind::Transform(_)
            | TaskKind::Return(_)
            | TaskKind::Sql { .. }
            | TaskKind::Check(_) => self.data.as_ref().map(|d| d as &dyn Runner),
        }
    }
}

/// Waits until `cancel` turns true (or its sender is gone).
pub(crate) async fn cancelled(cancel: &mut watch::Receiver<bool>) {
    while !*cancel.borrow() {
        if cancel.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// `noop`: succeeds (or fails, if asked) after an optional sleep.
#[derive(Debug)]
pub struct NoopRunner;

impl Runner for NoopRunner {
    fn run<'a>(&'a self, mut job: Job<'a>) -> RunFuture<'a> {
        Box::pin(async move {
            let TaskKind::Noop(spec) = &job.task.kind else {
                return Outcome::Failed {
                    error: "not a noop task".to_owned(),
                    exit_code: None,
                    retryable: false,
                };
            };
            if let Some(sleep) = spec.sleep {
                let work = tokio::time::sleep(sleep.to_std());
                tokio::select! {
                    () = work => {}
                    () = tokio::time::sleep(job.timeout) => {
                        return Outcome::Failed { error: format!("timed out after {}s", job.timeout.as_secs()), exit_code: None, retryable: true };
                    }
                    () = cancelled(&mut job.cancel) => {
                        return Outcome::Failed { error: "cancelled".to_owned(), exit_code: None, retryable: true };
                    }
                }
            }
            if spec.fail {
                job.log.system("noop task set to fail");
                Outcome::Failed {
                    error: "noop task set to fail".to_owned(),
                    exit_code: None,
                    retryable: true,
                }
            } else {
                Outcome::Success
            }
        })
    }
}

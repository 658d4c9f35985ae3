//! Drover's engine: the scheduler that creates and advances runs, the workers that run task
//! instances, and the runners for each task kind. Postgres (through `drover-store`) is the only
//! shared state; any number of schedulers and workers may run at once.

mod catalog;
mod context;
pub mod data;
mod dataset_trigger;
mod error;
mod folder_source;
pub mod freshness;
mod git_source;
mod notify;
pub mod ops;
mod plan;
pub mod promotion;
pub mod runner;
mod scheduler;
pub mod secrets;
pub mod story;
mod task_specs;
mod worker;

pub use catalog::DagCache;
pub use error::EngineError;
pub use folder_source::{FolderSource, SyncReport, git_blob_id, record_environment};
pub use git_source::{DagSource, Deploy, GitSource, Plan};
pub use notify::Notifier;
pub use plan::{PlannedRun, plan_runs};
pub use runner::task_user::{TaskUser, TaskUserError};
pub use runner::warden::{TASK_WARDEN_ARG, task_warden_main, use_task_warden};
pub use scheduler::{Scheduler, SchedulerConfig};
pub use task_specs::task_instance_specs;
pub use worker::{Worker, WorkerConfig};

//! Command-line arguments.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Drover: scheduled marketing ETL, with DAGs in git.
#[derive(Debug, Parser)]
#[command(name = "drover", version, about, long_about = None)]
pub(crate) struct Cli {
    #[command(flatten)]
    pub(crate) folders: Folders,
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Args)]
pub(crate) struct Folders {
    /// Folder of DAG files.
    #[arg(long, global = true, env = "DROVER_DAGS_DIR", default_value = "dags")]
    pub(crate) dags_dir: PathBuf,
    /// Folder of environment files.
    #[arg(
        long,
        global = true,
        env = "DROVER_ENVIRONMENTS_DIR",
        default_value = "environments"
    )]
    pub(crate) environments_dir: PathBuf,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Validate, list and inspect DAGs.
    #[command(subcommand)]
    Dags(DagsCommand),
    /// Environments: validate them.
    #[command(subcommand)]
    Env(EnvCommand),
}

#[derive(Debug, Clone, Copy, Default, ValueEnum)]
pub(crate) enum Format {
    #[default]
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub(crate) enum DagsCommand {
    /// Check DAG files and report every problem as file:line:col (exit 1 if any).
    Validate {
        /// Files or folders (default: the DAGs folder).
        paths: Vec<PathBuf>,
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// List the DAGs with their schedules and next run.
    List {
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Show one DAG: tasks in order, schedule in words, next runs.
    Show {
        /// DAG id.
        id: String,
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Print the next fire times of a DAG's schedule, one RFC 3339 UTC instant per line.
    Next {
        /// A DAG file, or the id of a DAG in the DAGs folder.
        dag: String,
        /// How many.
        #[arg(long, short = 'n', default_value_t = 5)]
        count: usize,
        /// Start after this instant (RFC 3339); default now.
        #[arg(long)]
        after: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum EnvCommand {
    /// Check environment files (exit 1 on any problem).
    Validate {
        /// Files or folders (default: the environments folder).
        paths: Vec<PathBuf>,
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
}

//! One module per command group.

mod dags;
mod env;

use std::process::ExitCode;

use anyhow::Result;

use crate::cli::{Cli, Command};

pub(crate) fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Dags(cmd) => dags::run(&cli.folders, cmd),
        Command::Env(cmd) => env::run(&cli.folders, cmd),
    }
}

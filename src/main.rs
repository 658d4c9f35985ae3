//! The `drover` command.

mod cli;
mod commands;
mod config_file;
mod sources;
mod telemetry;

use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    // A worker's task warden (see `drover_engine::task_warden_main`): nothing else of
    // Drover runs.
    if std::env::args_os().nth(1).as_deref() == Some(drover_engine::TASK_WARDEN_ARG.as_ref()) {
        let code = drover_engine::task_warden_main();
        return ExitCode::from(u8::try_from(code).unwrap_or(1));
    }
    // The tasks that workers start are watched by this same binary as their warden.
    if let Ok(me) = std::env::current_exe() {
        drover_engine::use_task_warden(me);
    }
    // TLS for MAP connections: ring, the one provider built in.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cli = match parse() {
        Ok(cli) => cli,
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::from(2);
        }
    };
    match commands::run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// The command line, with a settings file's values (`--config` or `DROVER_CONFIG`) as the
/// defaults flags and environment variables override.
fn parse() -> anyhow::Result<cli::Cli> {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let mut command = cli::Cli::command();
    // In a checkout where standalone runs, its database and admin (never for standalone
    // itself, which starts that database). A settings file, variables and flags win.
    let standalone = cli::Cli::command()
        .ignore_errors(true)
        .try_get_matches_from(&args)
        .ok()
        .is_some_and(|m| m.subcommand_name() == Some("standalone"));
    if !standalone && let Some(file) = config_file::standalone_file() {
        // Found, not asked for: a file that cannot be used is said and set aside, so the
        // commands that need no database still work.
        match config_file::read(&file, &command) {
            Ok(values) => {
                command = config_file::apply(command, &values);
                config_file::used_standalone_file(file);
            }
            Err(e) => eprintln!("warning: not using {}: {e:#}", file.display()),
        }
    }
    if let Some(file) = config_file::named_in(&args) {
        let values = config_file::read(&file, &command)?;
        command = config_file::apply(command, &values);
    }
    let matches = command.get_matches_from(args);
    cli::Cli::from_arg_matches(&matches).map_err(|e| e.exit())
}

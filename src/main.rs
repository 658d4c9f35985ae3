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
    if let Some(file) = config_file::named_in(&args) {
        let values = config_file::read(&file, &command)?;
        command = config_file::apply(command, &values);
    }
    let matches = command.get_matches_from(args);
    cli::Cli::from_arg_matches(&matches).map_err(|e| e.exit())
}

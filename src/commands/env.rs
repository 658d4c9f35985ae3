//! `drover env …`.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use drover_spec::diagnostic::sort_diagnostics;
use drover_spec::environment::{check_chain, load_environment};
use serde_json::json;

use super::dags::plural;
use crate::cli::{Folders, Format};
use crate::sources::{read_all, yaml_files};

pub(crate) fn validate_command(
    folders: &Folders,
    paths: Vec<PathBuf>,
    format: Format,
) -> Result<ExitCode> {
    let paths: Vec<PathBuf> = if paths.is_empty() {
        vec![folders.environments_dir.clone()]
    } else {
        paths
    };
    validate(&paths, format)
}

fn validate(paths: &[PathBuf], format: Format) -> Result<ExitCode> {
    let files = yaml_files(paths)?;
    let mut problems = Vec::new();
    let mut envs = Vec::new();
    for (name, text) in read_all(&files, None) {
        match text
            .map_err(|d| vec![d])
            .and_then(|t| load_environment(&name, &t))
        {
            Ok(env) => envs.push((name, env)),
            Err(diags) => problems.extend(diags),
        }
    }
    if problems.is_empty() {
        problems.extend(check_chain(&envs));
    }
    sort_diagnostics(&mut problems);
    match format {
        Format::Json => {
            let names: Vec<&str> = envs.iter().map(|(_, e)| e.name.as_str()).collect();
            println!(
                "{}",
                serde_json::to_string_pretty(
                    &json!({ "files": files.len(), "environments": names, "errors": problems })
                )?
            );
        }
        Format::Text => {
            let mut out = std::io::stdout().lock();
            for p in &problems {
                writeln!(out, "{p}\n")?;
            }
            if problems.is_empty() {
                envs.sort_by_key(|(_, e)| e.order);
                let chain: Vec<&str> = envs.iter().map(|(_, e)| e.name.as_str()).collect();
                writeln!(
                    out,
                    "{} valid: {}",
                    plural(files.len(), "environment file"),
                    chain.join(" → ")
                )?;
            } else {
                writeln!(
                    out,
                    "{} checked: {}",
                    plural(files.len(), "environment file"),
                    plural(problems.len(), "error")
                )?;
            }
        }
    }
    Ok(if problems.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

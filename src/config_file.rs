//! Settings from a file (`--config FILE` or `DROVER_CONFIG`): a flat YAML map whose keys are
//! the settings' environment variables without the `DROVER_` prefix, in lower case
//! (`database_url`, `web_listen`, `concurrency`, …). A flag beats the environment variable,
//! which beats the file, which beats the built-in default.
//!
//! The file's values become the arguments' defaults, so the set of settings is exactly the
//! set of arguments that have an environment variable: the file cannot drift from the flags.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::Command;

/// The variable that names the settings file when `--config` is not given.
pub(crate) const CONFIG_VAR: &str = "DROVER_CONFIG";

/// Where `drover standalone` keeps its state by default, and the settings file it writes
/// there for the CLI: the database it runs and its admin, so that `drover runs list` in that
/// checkout needs neither DATABASE_URL nor `--as`.
pub(crate) const STANDALONE_HOME: &str = ".drover";
pub(crate) const STANDALONE_FILE: &str = "cli.yaml";

static STANDALONE_USED: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();

/// The file standalone wrote for the CLI, if there is one here: `$DROVER_HOME/cli.yaml`
/// when DROVER_HOME is set, else `.drover/cli.yaml` in this folder or the nearest one above
/// it, up to the root of the git checkout it is in.
pub(crate) fn standalone_file() -> Option<PathBuf> {
    if let Some(home) = std::env::var_os("DROVER_HOME") {
        let file = PathBuf::from(home).join(STANDALONE_FILE);
        return file.is_file().then_some(file);
    }
    let here = std::env::current_dir().ok()?;
    for dir in here.ancestors() {
        let file = dir.join(STANDALONE_HOME).join(STANDALONE_FILE);
        if file.is_file() {
            return Some(file);
        }
        if dir.join(".git").exists() {
            break;
        }
    }
    None
}

/// Remember that the settings of `file` (standalone's) are in use, for error messages.
pub(crate) fn used_standalone_file(file: PathBuf) {
    let _ = STANDALONE_USED.set(file);
}

/// The standalone file whose settings are in use, if one is.
pub(crate) fn standalone_file_used() -> Option<&'static Path> {
    STANDALONE_USED.get().map(PathBuf::as_path)
}

/// Write `home/cli.yaml`, readable by its owner only: the database URL and the user the CLI
/// acts as there.
pub(crate) fn write_standalone(home: &Path, database_url: &str, user: &str) -> Result<PathBuf> {
    use std::io::Write;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    std::fs::create_dir_all(home).with_context(|| format!("cannot create {}", home.display()))?;
    let file = home.join(STANDALONE_FILE);
    let quote = |v: &str| serde_json::to_string(v).unwrap_or_default();
    let text = format!(
        "# Written by `drover standalone` each time it starts: drover commands run in this\n\
         # checkout use this database and act as this user. DATABASE_URL, --database-url,\n\
         # DROVER_USER and --as win over it; delete the file to stop it.\n\
         database_url: {}\nuser: {}\n",
        quote(database_url),
        quote(user)
    );
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&file)
        .with_context(|| format!("cannot write {}", file.display()))?;
    // A file that existed keeps its mode on open: make it the owner's alone first.
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600))
        .with_context(|| format!("cannot restrict {}", file.display()))?;
    f.write_all(text.as_bytes())
        .with_context(|| format!("cannot write {}", file.display()))?;
    Ok(file)
}

/// The settings file's key for an argument's environment variable.
pub(crate) fn key_of(var: &str) -> String {
    var.strip_prefix("DROVER_")
        .unwrap_or(var)
        .to_ascii_lowercase()
}

/// The settings file named by `--config FILE`, `--config=FILE` or `DROVER_CONFIG`.
pub(crate) fn named_in(args: &[OsString]) -> Option<PathBuf> {
    let mut it = args.iter().skip(1);
    while let Some(a) = it.next() {
        let a = a.to_string_lossy();
        if a == "--" {
            break;
        }
        if a == "--config" {
            return it.next().map(PathBuf::from);
        }
        if let Some(path) = a.strip_prefix("--config=") {
            return Some(PathBuf::from(path));
        }
    }
    std::env::var_os(CONFIG_VAR).map(PathBuf::from)
}

/// Every (environment variable, argument id, command path) of `cmd` and its subcommands.
pub(crate) fn settings(cmd: &Command) -> BTreeMap<String, Vec<String>> {
    fn walk(cmd: &Command, path: &str, out: &mut BTreeMap<String, Vec<String>>) {
        for arg in cmd.get_arguments() {
            if let Some(var) = arg.get_env() {
                let var = var.to_string_lossy().into_owned();
                if var == CONFIG_VAR {
                    continue;
                }
                let at = out.entry(var).or_default();
                if !at.contains(&path.to_owned()) {
                    at.push(path.to_owned());
                }
            }
        }
        for sub in cmd.get_subcommands() {
            let path = if path.is_empty() {
                sub.get_name().to_owned()
            } else {
                format!("{path} {}", sub.get_name())
            };
            walk(sub, &path, out);
        }
    }
    let mut out = BTreeMap::new();
    walk(cmd, "", &mut out);
    out
}

/// Read `file` into (environment variable, value) pairs, refusing unknown keys.
pub(crate) fn read(file: &Path, cmd: &Command) -> Result<BTreeMap<String, String>> {
    let text = std::fs::read_to_string(file)
        .with_context(|| format!("cannot read the settings file {}", file.display()))?;
    parse(&file.display().to_string(), &text, cmd)
}

fn parse(name: &str, text: &str, cmd: &Command) -> Result<BTreeMap<String, String>> {
    let known: BTreeMap<String, String> = settings(cmd)
        .into_keys()
        .map(|var| (key_of(&var), var))
        .collect();
    let map: BTreeMap<String, yaml_serde::Value> = if text.trim().is_empty() {
        BTreeMap::new()
    } else {
        yaml_serde::from_str(text).with_context(|| {
            format!("{name}: a settings file is a map of `setting: value` lines")
        })?
    };
    let mut out = BTreeMap::new();
    for (key, value) in map {
        let Some(var) = known.get(&key) else {
            let close = known
                .keys()
                .filter(|k| strsim::levenshtein(k, &key) <= 3)
                .map(|k| format!("`{k}`"))
                .collect::<Vec<_>>();
            let hint = if close.is_empty() {
                format!(
                    "settings are: {}",
                    known.keys().cloned().collect::<Vec<_>>().join(", ")
                )
            } else {
                format!("did you mean {}?", close.join(" or "))
            };
            bail!("{name}: unknown setting `{key}`; {hint}");
        };
        let value = match value {
            yaml_serde::Value::String(s) => s,
            yaml_serde::Value::Number(n) => n.to_string(),
            yaml_serde::Value::Bool(b) => b.to_string(),
            _ => bail!("{name}: `{key}` must be a single value (text, number or true/false)"),
        };
        out.insert(var.clone(), value);
    }
    Ok(out)
}

/// `cmd` with the file's values as defaults of the arguments they set.
pub(crate) fn apply(cmd: Command, values: &BTreeMap<String, String>) -> Command {
    let ids: Vec<(String, String)> = cmd
        .get_arguments()
        .filter_map(|a| {
            let var = a.get_env()?.to_string_lossy().into_owned();
            let value = values.get(&var)?;
            Some((a.get_id().to_string(), value.clone()))
        })
        .collect();
    let mut cmd = ids.into_iter().fold(cmd, |cmd, (id, value)| {
        cmd.mut_arg(id, |a| a.default_value(value))
    });
    let subs: Vec<String> = cmd
        .get_subcommands()
        .map(|s| s.get_name().to_owned())
        .collect();
    for name in subs {
        cmd = cmd.mut_subcommand(name, |sub| apply(sub, values));
    }
    cmd
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn cli() -> Command {
        crate::cli::Cli::command()
    }

    #[test]
    fn keys_are_the_variables_without_prefix() {
        assert_eq!(key_of("DROVER_WEB_LISTEN"), "web_listen");
        assert_eq!(key_of("DATABASE_URL"), "database_url");
    }

    #[test]
    fn file_values_become_defaults_below_flags() {
        let values = parse(
            "drover.yaml",
            "sync_secs: 3\nconcurrency: 16\nweb_listen: 0.0.0.0:9000\nsecure_cookies: true\n",
            &cli(),
        )
        .unwrap_or_else(|e| panic!("{e:#}"));
        let matches = apply(cli(), &values)
            .try_get_matches_from(["drover", "worker", "--poll-ms", "5"])
            .unwrap_or_else(|e| panic!("{e}"));
        let (_, worker) = matches.subcommand().unwrap_or_else(|| panic!("no command"));
        assert_eq!(worker.get_one::<usize>("concurrency"), Some(&16));
        assert_eq!(worker.get_one::<u64>("poll_ms"), Some(&5));
        let matches = apply(cli(), &values)
            .try_get_matches_from(["drover", "web", "--listen", "127.0.0.1:1"])
            .unwrap_or_else(|e| panic!("{e}"));
        let (_, web) = matches.subcommand().unwrap_or_else(|| panic!("no command"));
        assert_eq!(
            web.get_one::<String>("listen").map(String::as_str),
            Some("127.0.0.1:1")
        );
        assert_eq!(web.get_one::<bool>("secure_cookies"), Some(&true));
    }

    #[test]
    fn a_worker_is_bound_to_the_environments_of_a_comma_separated_list() {
        let values = parse("drover.yaml", "worker_envs: prod,stage\n", &cli())
            .unwrap_or_else(|e| panic!("{e:#}"));
        let envs = |args: &[&str]| -> Vec<String> {
            let matches = apply(cli(), &values)
                .try_get_matches_from(args)
                .unwrap_or_else(|e| panic!("{e}"));
            let (_, worker) = matches.subcommand().unwrap_or_else(|| panic!("no command"));
            worker
                .get_many::<String>("envs")
                .map(|v| v.cloned().collect())
                .unwrap_or_default()
        };
        assert_eq!(envs(&["drover", "worker"]), ["prod", "stage"]);
        assert_eq!(
            envs(&["drover", "worker", "--env", "dev", "--env", "qa"]),
            ["dev", "qa"]
        );
    }

    #[test]
    fn the_task_user_comes_from_the_file_the_variable_or_the_flag() {
        let values =
            parse("drover.yaml", "task_user: nobody\n", &cli()).unwrap_or_else(|e| panic!("{e:#}"));
        assert_eq!(
            values.get("DROVER_TASK_USER").map(String::as_str),
            Some("nobody")
        );
        let user = |values: &BTreeMap<String, String>, args: &[&str]| -> Option<String> {
            let matches = apply(cli(), values)
                .try_get_matches_from(args)
                .unwrap_or_else(|e| panic!("{e}"));
            let (_, worker) = matches.subcommand().unwrap_or_else(|| panic!("no command"));
            worker.get_one::<String>("task_user").cloned()
        };
        assert_eq!(
            user(&values, &["drover", "worker"]).as_deref(),
            Some("nobody")
        );
        assert_eq!(
            user(&values, &["drover", "worker", "--task-user", "drover-task"]).as_deref(),
            Some("drover-task")
        );
        assert_eq!(user(&BTreeMap::new(), &["drover", "worker"]), None);
    }

    #[test]
    fn unknown_and_nested_settings_are_refused_by_name() {
        let e = parse("d.yaml", "sync_sec: 3\n", &cli())
            .err()
            .map(|e| format!("{e:#}"))
            .unwrap_or_default();
        assert!(e.contains("unknown setting `sync_sec`"), "{e}");
        assert!(e.contains("`sync_secs`"), "{e}");
        let e = parse("d.yaml", "web_listen: [a, b]\n", &cli())
            .err()
            .map(|e| format!("{e:#}"))
            .unwrap_or_default();
        assert!(e.contains("must be a single value"), "{e}");
        let e = parse("d.yaml", "- a\n", &cli())
            .err()
            .map(|e| format!("{e:#}"))
            .unwrap_or_default();
        assert!(e.contains("a map of `setting: value`"), "{e}");
    }

    #[test]
    fn readme_settings_table_lists_every_setting_and_nothing_else() {
        let readme = include_str!("../README.md");
        let table = readme
            .split("### Settings")
            .nth(1)
            .and_then(|t| t.split("\n\n").nth(1))
            .unwrap_or_else(|| panic!("README has no settings table"));
        let mut documented = std::collections::BTreeSet::new();
        for row in table.lines().skip(2) {
            let cells: Vec<&str> = row
                .split(" | ")
                .map(|c| c.trim_matches(['|', ' ', '`']))
                .collect();
            let (key, var) = (cells[0], cells[2]);
            if key != "—" {
                assert_eq!(key, key_of(var), "{row}");
            }
            documented.insert(var.to_owned());
        }
        let mut known: std::collections::BTreeSet<String> = settings(&cli()).into_keys().collect();
        known.insert(CONFIG_VAR.to_owned());
        assert_eq!(
            documented, known,
            "README's settings table and the flags differ"
        );
    }

    #[test]
    fn every_service_setting_has_a_variable() {
        let vars = settings(&cli());
        for var in [
            "DATABASE_URL",
            "DROVER_LOG_FORMAT",
            "DROVER_SYNC_SECS",
            "DROVER_TICK_MS",
            "DROVER_CONCURRENCY",
            "DROVER_LEASE_SECS",
            "DROVER_GRACE_SECS",
            "DROVER_WEB_LISTEN",
            "DROVER_HOME",
        ] {
            assert!(vars.contains_key(var), "{var} missing from {vars:?}");
        }
    }
}

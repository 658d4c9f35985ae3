//! A private Postgres cluster run from the machine's Postgres binaries: for `drover
//! standalone` and for tests that must restart their database.
//!
//! Postgres refuses to run as root; when Drover runs as root the cluster runs as the
//! `postgres` system user (created by Debian's `postgresql` package) instead.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use thiserror::Error;

#[derive(Debug, Error)]
pub enum EmbeddedError {
    #[error(
        "no Postgres server binaries found (looked for initdb and pg_ctl in /usr/lib/postgresql/*/bin and on PATH). \
         Install them with `apt-get install postgresql` (Debian/Ubuntu), or set DATABASE_URL to use an existing server"
    )]
    NoBinaries,
    #[error(
        "Postgres cannot run as root and there is no `postgres` user to run it as: install Debian's `postgresql` package or create that user"
    )]
    NoUnprivilegedUser,
    #[error(
        "the `{user}` user runs Postgres (it cannot run as root) but cannot enter {blocked}, so cannot reach {data_dir}: \
         choose a Drover home under a folder other users may enter (--home), or allow it with `chmod o+x {blocked}`"
    )]
    Unreachable {
        user: String,
        data_dir: String,
        blocked: String,
    },
    #[error("{what} failed: {detail}")]
    Command { what: String, detail: String },
    #[error("cannot prepare {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// A cluster in `data_dir`, listening on 127.0.0.1:`port` (and a socket in the data folder).
#[derive(Debug, Clone)]
pub struct EmbeddedPostgres {
    bin: PathBuf,
    data_dir: PathBuf,
    port: u16,
    run_as: Option<String>,
    /// A cluster thrown away after one use: nothing is synced to disk, and it stops at once.
    throwaway: bool,
}

fn is_root() -> bool {
    nix_uid() == 0
}

fn nix_uid() -> u32 {
    // `id -u` avoids unsafe libc calls; it is only asked once per cluster operation.
    Command::new("id")
        .arg("-u")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(u32::MAX)
}

/// The newest Postgres `bin` folder on this machine.
pub fn find_binaries() -> Result<PathBuf, EmbeddedError> {
    find_binaries_in(
        Path::new("/usr/lib/postgresql"),
        std::env::var_os("PATH").as_deref(),
    )
}

/// The newest `<versions>/<N>/bin` holding initdb and pg_ctl, else the first folder of `path`
/// (a PATH-style list) holding them.
fn find_binaries_in(
    versions: &Path,
    path: Option<&std::ffi::OsStr>,
) -> Result<PathBuf, EmbeddedError> {
    let mut candidates: Vec<(u32, PathBuf)> = std::fs::read_dir(versions)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_string_lossy().parse::<u32>().ok()?;
            Some((version, e.path().join("bin")))
        })
        .filter(|(_, bin)| bin.join("initdb").is_file() && bin.join("pg_ctl").is_file())
        .collect();
    candidates.sort();
    if let Some((_, bin)) = candidates.pop() {
        return Ok(bin);
    }
    path.into_iter()
        .flat_map(|p| std::env::split_paths(p).collect::<Vec<_>>())
        .find(|dir| dir.join("initdb").is_file() && dir.join("pg_ctl").is_file())
        .ok_or(EmbeddedError::NoBinaries)
}

impl EmbeddedPostgres {
    /// Prepare a cluster in `data_dir` (initialised if empty) to listen on `port`.
    pub fn new(data_dir: &Path, port: u16) -> Result<Self, EmbeddedError> {
        Self::prepare(data_dir, port, false)
    }

    /// A cluster for one use, removed afterwards (`drover dags test`): initialised and run
    /// without syncing to disk (a crash loses it, which is no loss), stopped without a
    /// checkpoint.
    pub fn throwaway(data_dir: &Path, port: u16) -> Result<Self, EmbeddedError> {
        Self::prepare(data_dir, port, true)
    }

    fn prepare(data_dir: &Path, port: u16, throwaway: bool) -> Result<Self, EmbeddedError> {
        let bin = find_binaries()?;
        let run_as = if is_root() {
            let exists = Command::new("id")
                .arg("postgres")
                .output()
                .is_ok_and(|o| o.status.success());
            if !exists {
                return Err(EmbeddedError::NoUnprivilegedUser);
            }
            Some("postgres".to_owned())
        } else {
            None
        };
        let pg = Self {
            bin,
            data_dir: data_dir.to_path_buf(),
            port,
            run_as,
            throwaway,
        };
        pg.init()?;
        Ok(pg)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// A URL for `database` on this cluster.
    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    fn cluster_dir(&self) -> PathBuf {
        self.data_dir.join("pgdata")
    }

    fn run(&self, what: &str, program: &str, args: &[&str]) -> Result<(), EmbeddedError> {
        let path = self.bin.join(program);
        let mut cmd = match &self.run_as {
            Some(user) => {
                let mut c = Command::new("runuser");
                c.arg("-u").arg(user).arg("--").arg(&path);
                c
            }
            None => Command::new(&path),
        };
        let out = cmd
            .args(args)
            .output()
            .map_err(|e| EmbeddedError::Command {
                what: what.to_owned(),
                detail: e.to_string(),
            })?;
        if out.status.success() {
            Ok(())
        } else {
            Err(EmbeddedError::Command {
                what: what.to_owned(),
                detail: format!(
                    "{}{}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                )
                .trim()
                .to_owned(),
            })
        }
    }

    fn init(&self) -> Result<(), EmbeddedError> {
        let io = |source| EmbeddedError::Io {
            path: self.data_dir.display().to_string(),
            source,
        };
        std::fs::create_dir_all(&self.data_dir).map_err(io)?;
        if let Some(user) = &self.run_as {
            let status = Command::new("chown")
                .arg("-R")
                .arg(format!("{user}:{user}"))
                .arg(&self.data_dir)
                .status()
                .map_err(io)?;
            if !status.success() {
                return Err(EmbeddedError::Command {
                    what: "chown".to_owned(),
                    detail: status.to_string(),
                });
            }
        }
        if let Some(user) = &self.run_as {
            self.check_reachable(user)?;
        }
        if self.cluster_dir().join("PG_VERSION").is_file() {
            return Ok(());
        }
        let dir = self.cluster_dir().display().to_string();
        let mut args = vec![
            "-D",
            &dir,
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
            "--no-locale",
            "--no-instructions",
        ];
        if self.throwaway {
            args.push("--no-sync");
        }
        self.run("initdb", "initdb", &args)
    }

    /// The unprivileged user can reach the data folder: every folder above it lets it in.
    fn check_reachable(&self, user: &str) -> Result<(), EmbeddedError> {
        let reachable = Command::new("runuser")
            .args(["-u", user, "--", "test", "-x"])
            .arg(&self.data_dir)
            .status()
            .is_ok_and(|s| s.success());
        if reachable {
            return Ok(());
        }
        use std::os::unix::fs::PermissionsExt;
        let absolute =
            std::path::absolute(&self.data_dir).unwrap_or_else(|_| self.data_dir.clone());
        let blocked = absolute
            .ancestors()
            .skip(1)
            .filter(|a| std::fs::metadata(a).is_ok_and(|m| m.permissions().mode() & 0o001 == 0))
            .last()
            .unwrap_or(&absolute);
        Err(EmbeddedError::Unreachable {
            user: user.to_owned(),
            data_dir: absolute.display().to_string(),
            blocked: blocked.display().to_string(),
        })
    }

    fn options(&self) -> String {
        let durability = if self.throwaway {
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        } else {
            "-c fsync=on"
        };
        format!(
            "-c listen_addresses=127.0.0.1 -p {} -k {} {durability} -c max_connections=200",
            self.port,
            self.data_dir.display()
        )
    }

    pub fn start(&self) -> Result<(), EmbeddedError> {
        let dir = self.cluster_dir().display().to_string();
        let log = self.data_dir.join("postgres.log").display().to_string();
        self.run(
            "pg_ctl start",
            "pg_ctl",
            &[
                "-D",
                &dir,
                "-l",
                &log,
                "-w",
                "-t",
                "60",
                "-o",
                &self.options(),
                "start",
            ],
        )
    }

    pub fn stop(&self) -> Result<(), EmbeddedError> {
        let dir = self.cluster_dir().display().to_string();
        self.run(
            "pg_ctl stop",
            "pg_ctl",
            &[
                "-D",
                &dir,
                "-m",
                if self.throwaway { "immediate" } else { "fast" },
                "-w",
                "-t",
                "60",
                "stop",
            ],
        )
    }

    /// Stop and start again (clients lose their connections).
    pub fn restart(&self) -> Result<(), EmbeddedError> {
        self.stop()?;
        std::thread::sleep(Duration::from_millis(200));
        self.start()
    }

    pub fn is_running(&self) -> bool {
        self.cluster_dir().join("postmaster.pid").is_file()
    }
}

/// A free TCP port on 127.0.0.1 (free now; bind it soon).
pub fn free_port() -> Result<u16, EmbeddedError> {
    let listener =
        std::net::TcpListener::bind("127.0.0.1:0").map_err(|source| EmbeddedError::Io {
            path: "127.0.0.1:0".to_owned(),
            source,
        })?;
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(|source| EmbeddedError::Io {
            path: "127.0.0.1:0".to_owned(),
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_binaries_the_error_names_the_package_to_install() {
        let empty = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let found = find_binaries_in(empty.path(), Some(empty.path().as_os_str()));
        let message = found.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(message.contains("apt-get install postgresql"), "{message}");
    }

    #[test]
    fn the_newest_version_with_both_programs_wins() {
        let root = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        for (version, programs) in [
            ("13", &["initdb", "pg_ctl"][..]),
            ("17", &["initdb", "pg_ctl"]),
            ("18", &["initdb"]),
        ] {
            let bin = root.path().join(version).join("bin");
            std::fs::create_dir_all(&bin).unwrap_or_else(|e| panic!("{e}"));
            for p in programs {
                std::fs::write(bin.join(p), "").unwrap_or_else(|e| panic!("{e}"));
            }
        }
        let found = find_binaries_in(root.path(), None).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(found, root.path().join("17").join("bin"));
    }
}

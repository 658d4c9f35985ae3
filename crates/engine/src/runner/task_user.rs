//! The OS user command tasks run as (`drover worker --task-user NAME`), so that a task
//! cannot read its worker's memory or `/proc/<pid>/environ`, its settings file, or anything
//! else only the worker's user may read.
//!
//! The worker looks the user up once, at start. Each task's process switches to it between
//! clone and exec (see `spawn`): supplementary groups to the user's
//! primary group alone, then the group, then the user, in that order.

use std::path::PathBuf;

use nix::unistd::{Gid, Uid, User};

/// Why a task user cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TaskUserError {
    #[error("task user `{0}` does not exist on this machine (see /etc/passwd)")]
    Unknown(String),
    #[error("cannot look up task user `{name}`: {source}")]
    Lookup {
        name: String,
        source: nix::errno::Errno,
    },
}

/// An OS user, as looked up when the worker started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskUser {
    pub name: String,
    pub uid: Uid,
    /// The user's primary group: the task's group and its only supplementary group.
    pub gid: Gid,
    /// The user's home directory: the task's `HOME`.
    pub home: PathBuf,
}

impl TaskUser {
    /// The user called `name` (its primary group and home from the password database).
    pub fn lookup(name: &str) -> Result<Self, TaskUserError> {
        let name = name.trim();
        let user = User::from_name(name)
            .map_err(|source| TaskUserError::Lookup {
                name: name.to_owned(),
                source,
            })?
            .ok_or_else(|| TaskUserError::Unknown(name.to_owned()))?;
        Ok(Self {
            name: user.name,
            uid: user.uid,
            gid: user.gid,
            home: user.dir,
        })
    }

    /// How the user is named in messages: `nobody (uid 65534)`.
    pub fn describe(&self) -> String {
        format!("{} (uid {})", self.name, self.uid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_known_user_comes_with_its_group_and_home() {
        let root = TaskUser::lookup("root").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(root.uid, Uid::from_raw(0));
        assert_eq!(root.gid, Gid::from_raw(0));
        assert!(root.home.is_absolute(), "{root:?}");
    }

    #[test]
    fn an_unknown_user_is_refused_by_name() {
        let e = TaskUser::lookup("no-such-user-d7")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert_eq!(
            e,
            "task user `no-such-user-d7` does not exist on this machine (see /etc/passwd)"
        );
    }
}

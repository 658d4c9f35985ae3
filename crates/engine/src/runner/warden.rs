//! Child processes that die with their worker.
//!
//! A worker killed with SIGKILL cannot stop its children, and a child that outlived it would
//! keep running while the system retries its task elsewhere: the same task twice at once.
//! Linux's parent-death signal closes that gap for the direct child only: what *it* started
//! (a shell's pipeline, `flock … sh -c …`) would be orphaned and keep running.
//!
//! So each worker process has one **warden**: a small process (`drover __task-warden`, see
//! [`use_task_warden`]) started with the first command, holding one end of a socket whose
//! other end only the worker holds. Every task's process leads a process group of its own and,
//! between clone and exec, before the task's program runs, tells the warden its group. When
//! the worker is gone, however it died, its end of the socket closes; the warden then stops
//! every group it still knows (SIGTERM, SIGKILL after a grace) and exits. A task that ended is
//! struck off by the worker once nothing of its group is left.
//!
//! The worker starts each task's program directly (see `spawn`: one clone that shares the
//! worker's memory, and one exec), where a guard per task cost a second exec of the whole
//! `drover` binary (5 ms of CPU each).
#![allow(unsafe_code)]

use std::collections::HashSet;
use std::io::Read;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::signal::{SigHandler, Signal, killpg, signal};
use nix::sys::socket::{AddressFamily, MsgFlags, SockFlag, SockType, send, socketpair};
use nix::unistd::Pid;

/// The argument that runs the program as a worker's warden.
pub const TASK_WARDEN_ARG: &str = "__task-warden";

/// How long the task groups get between SIGTERM and SIGKILL once their worker is gone.
const WARDEN_GRACE: Duration = Duration::from_secs(2);

/// One message: `+` (a group to watch) or `-` (a group that ended), then the group's id.
const MESSAGE_LEN: usize = 5;

static PROGRAM: OnceLock<PathBuf> = OnceLock::new();
static WARDEN: Mutex<Option<Warden>> = Mutex::new(None);

/// Watch command tasks with `program TASK_WARDEN_ARG` (the running `drover` binary, whose
/// `main` hands that argument to [`task_warden_main`]). Without it (a library user, the
/// in-process benchmarks) a task's direct child is still killed with its worker, but not
/// what that child started.
pub fn use_task_warden(program: PathBuf) {
    let _ = PROGRAM.set(program);
}

/// The warden of this process and the groups it was told of that are still running.
#[derive(Debug)]
struct Warden {
    process: std::process::Child,
    /// The worker's end of the socket (close-on-exec: no task inherits it).
    socket: Arc<OwnedFd>,
    groups: HashSet<i32>,
}

impl Warden {
    fn start(program: &PathBuf, groups: HashSet<i32>) -> std::io::Result<Self> {
        let (ours, theirs) = socketpair(
            AddressFamily::Unix,
            SockType::SeqPacket,
            None,
            SockFlag::SOCK_CLOEXEC,
        )?;
        let mut cmd = std::process::Command::new(program);
        cmd.arg(TASK_WARDEN_ARG)
            .env_clear()
            .stdin(std::process::Stdio::from(theirs))
            .stdout(std::process::Stdio::null())
            // Its few words (what it stopped) go where the worker's own errors go.
            .stderr(std::process::Stdio::inherit());
        // Its own group: a signal to the worker's group (Ctrl-C) does not reach it, and it
        // outlives the worker to clean up after it.
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let process = cmd.spawn()?;
        let warden = Self {
            process,
            socket: Arc::new(ours),
            groups,
        };
        // A warden started again learns the groups its predecessor knew.
        for group in &warden.groups {
            tell(&warden.socket, b'+', *group)?;
        }
        Ok(warden)
    }

    fn is_alive(&mut self) -> bool {
        matches!(self.process.try_wait(), Ok(None))
    }
}

/// Send one message without blocking and without SIGPIPE.
fn tell(socket: &OwnedFd, what: u8, group: i32) -> std::io::Result<()> {
    let message = encode(what, group);
    send(
        socket.as_raw_fd(),
        &message,
        MsgFlags::MSG_NOSIGNAL | MsgFlags::MSG_DONTWAIT,
    )?;
    Ok(())
}

fn encode(what: u8, group: i32) -> [u8; MESSAGE_LEN] {
    let id = group.to_le_bytes();
    [what, id[0], id[1], id[2], id[3]]
}

/// The socket a task's process registers its group on (see `spawn`), the warden started (again) first
/// when needed; `None` without a warden program.
pub(crate) fn socket() -> std::io::Result<Option<Arc<OwnedFd>>> {
    let Some(program) = PROGRAM.get() else {
        return Ok(None);
    };
    let mut warden = WARDEN
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let groups = match warden.as_mut() {
        Some(w) => {
            if w.is_alive() {
                return Ok(Some(w.socket.clone()));
            }
            tracing::warn!("the task warden ended: starting another");
            std::mem::take(&mut w.groups)
        }
        None => HashSet::new(),
    };
    let started = Warden::start(program, groups)?;
    let socket = started.socket.clone();
    *warden = Some(started);
    Ok(Some(socket))
}

fn with_warden(f: impl FnOnce(&mut Warden)) {
    let mut warden = WARDEN
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(w) = warden.as_mut() {
        f(w);
    }
}

/// A spawned task's group, struck off the warden's list when its task is over. Dropped
/// before [`WatchedGroup::ended`] (the try abandoned), it kills what is left of the group
/// first: nothing of a try outlives it.
#[derive(Debug)]
pub(crate) struct WatchedGroup {
    group: Option<Pid>,
    ended: bool,
}

impl WatchedGroup {
    /// The group the task's child `pid` leads (the child registered it with the warden
    /// itself, before its program ran).
    pub(crate) fn new(pid: Option<Pid>) -> Self {
        if let Some(pid) = pid {
            with_warden(|w| {
                w.groups.insert(pid.as_raw());
            });
        }
        Self {
            group: pid,
            ended: false,
        }
    }

    /// The group's leader was waited for and nothing of the group is left.
    pub(crate) fn ended(&mut self) {
        self.ended = true;
    }

    /// The group's id (its leader's pid).
    pub(crate) fn id(&self) -> Option<Pid> {
        self.group
    }

    /// Whether anything of the group is left running (after its leader ended).
    pub(crate) fn has_members(&self) -> bool {
        self.group.is_some_and(group_alive)
    }
}

impl Drop for WatchedGroup {
    fn drop(&mut self) {
        let Some(group) = self.group else { return };
        if !self.ended {
            let _ = killpg(group, Signal::SIGKILL);
        }
        with_warden(|w| {
            w.groups.remove(&group.as_raw());
            // Not told (its socket full or the warden gone): it would at worst signal a group
            // that no longer exists when this worker dies.
            let _ = tell(&w.socket, b'-', group.as_raw());
        });
    }
}

/// Whether a process of `group` is still running. A member that ended but was not yet reaped
/// (its parent gone, left to an init that reaps slowly) counts as gone.
pub(crate) fn group_alive(group: Pid) -> bool {
    if killpg(group, None::<Signal>) == Err(Errno::ESRCH) {
        return false;
    }
    // Members, zombies included: look for one that still runs.
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return true;
    };
    entries.flatten().any(|entry| {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .filter(|n| n.bytes().all(|b| b.is_ascii_digit()))
        else {
            return false;
        };
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|stat| running_in(&stat))
            .is_some_and(|pgrp| pgrp == group.as_raw())
    })
}

/// The process group of a `/proc/PID/stat` line's process, unless it is a zombie or dead.
fn running_in(stat: &str) -> Option<i32> {
    // `pid (comm) state ppid pgrp …`; the command name may hold spaces and parentheses.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_ascii_whitespace();
    let state = fields.next()?;
    let _ppid = fields.next()?;
    let pgrp = fields.next()?.parse().ok()?;
    (!matches!(state, "Z" | "X" | "x")).then_some(pgrp)
}

/// The warden's `main`: reads groups from its standard input (the worker's socket) until the
/// worker is gone, then stops every group still running and returns the exit code. It ignores
/// SIGINT, SIGTERM and SIGHUP: it ends with its worker, not before, so that a signal meant for
/// the service (a stop, a terminal's Ctrl-C) leaves the worker to stop its own tasks within
/// its grace, and the warden only what is left when the worker is gone.
pub fn task_warden_main() -> i32 {
    for s in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
        // SAFETY: ignoring a signal installs no handler.
        let _ = unsafe { signal(s, SigHandler::SigIgn) };
    }
    let input = std::io::stdin().lock();
    let groups = watch(input);
    stop_groups(&groups, WARDEN_GRACE)
}

/// Follow the messages of `input` until it ends: the groups still running.
fn watch(mut input: impl Read) -> HashSet<i32> {
    let mut groups = HashSet::new();
    let mut message = [0u8; MESSAGE_LEN];
    loop {
        // Each read takes one whole message (a sequenced-packet socket keeps them apart).
        match input.read(&mut message) {
            Ok(MESSAGE_LEN) => {
                let group = i32::from_le_bytes([message[1], message[2], message[3], message[4]]);
                // Only a group id: never 0, 1 or a negative number, which killpg would read
                // as "this group" or "every process".
                if group <= 1 {
                    continue;
                }
                match message[0] {
                    b'+' => {
                        groups.insert(group);
                    }
                    b'-' => {
                        groups.remove(&group);
                    }
                    _ => {}
                }
            }
            Ok(0) => return groups,
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return groups,
        }
    }
}

/// SIGTERM to every group, then SIGKILL to those with members left after `grace`.
fn stop_groups(groups: &HashSet<i32>, grace: Duration) -> i32 {
    let mut left: Vec<Pid> = groups
        .iter()
        .map(|g| Pid::from_raw(*g))
        .filter(|g| killpg(*g, Signal::SIGTERM).is_ok())
        .collect();
    if left.is_empty() {
        return 0;
    }
    eprintln!(
        "drover {TASK_WARDEN_ARG}: the worker is gone: stopping {} task process group{}",
        left.len(),
        if left.len() == 1 { "" } else { "s" }
    );
    let deadline = Instant::now() + grace;
    while !left.is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
        left.retain(|g| group_alive(*g));
    }
    for group in &left {
        let _ = killpg(*group, Signal::SIGKILL);
    }
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn messages(list: &[(u8, i32)]) -> Vec<u8> {
        list.iter().flat_map(|(w, g)| encode(*w, *g)).collect()
    }

    #[test]
    fn the_groups_left_are_those_started_and_not_ended() {
        // A stream stands in for the socket: each read of five bytes is one message.
        let input = messages(&[(b'+', 100), (b'+', 200), (b'-', 100), (b'+', 300)]);
        let groups = watch(std::io::Cursor::new(input));
        assert_eq!(groups, HashSet::from([200, 300]));
    }

    #[test]
    fn a_stat_line_gives_the_group_of_a_running_process_only() {
        let running = "4242 (sh -c (x) y) S 4000 4100 4100 0 -1 4194560 120 0 0 0";
        assert_eq!(running_in(running), Some(4100));
        let zombie = "4243 (sleep) Z 1 4100 4100 0 -1 4227148 80 0 0 0";
        assert_eq!(running_in(zombie), None);
        assert_eq!(running_in("garbage"), None);
    }

    #[test]
    fn a_group_of_a_process_that_runs_is_alive_and_once_it_ended_it_is_not() {
        let mut child = std::process::Command::new("sleep");
        child.arg("30");
        std::os::unix::process::CommandExt::process_group(&mut child, 0);
        let Ok(mut child) = child.spawn() else {
            panic!("cannot start sleep");
        };
        let group = Pid::from_raw(i32::try_from(child.id()).unwrap_or(0));
        assert!(group_alive(group));
        let _ = killpg(group, Signal::SIGKILL);
        // Dead but not reaped: a zombie does not count.
        let deadline = Instant::now() + Duration::from_secs(10);
        while group_alive(group) && Instant::now() < deadline {
            std::thread::yield_now();
        }
        assert!(!group_alive(group));
        let _ = child.wait();
        assert!(!group_alive(group));
    }

    #[test]
    fn a_group_id_that_would_signal_more_than_a_group_is_ignored() {
        let input = messages(&[(b'+', 0), (b'+', 1), (b'+', -1), (b'+', 42)]);
        let groups = watch(std::io::Cursor::new(input));
        assert_eq!(groups, HashSet::from([42]));
    }
}

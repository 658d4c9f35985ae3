//! Child processes that die with their worker.
//!
//! A worker killed with SIGKILL cannot stop its children, and a child that outlived it would
//! keep running while the system retries its task elsewhere: the same task twice at once.
//! Linux's parent-death signal closes that gap for the direct child only: what *it* started
//! (a shell's pipeline, `flock … sh -c …`) would be orphaned and keep running. So, when the
//! program allows ([`use_task_guard`]), the direct child is a small guard (`drover
//! __task-guard PROGRAM ARGS…`): it leads the task's process group, gets SIGTERM when the
//! worker dies, and then stops the whole group (SIGTERM, SIGKILL after a grace). It passes
//! the task's exit status (or the signal that killed it) on as its own.
#![allow(unsafe_code)]

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use nix::sys::signal::{SigSet, SigmaskHow, Signal, killpg, raise, sigprocmask};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;
use tokio::process::Command;

/// The argument that runs a program as the guard of a task.
pub const TASK_GUARD_ARG: &str = "__task-guard";

/// How long the task's group gets between SIGTERM and SIGKILL once its worker is gone.
const GUARD_GRACE: Duration = Duration::from_secs(2);

static GUARD: OnceLock<PathBuf> = OnceLock::new();

/// Start commands under `program TASK_GUARD_ARG …` (the running `drover` binary, whose
/// `main` hands that argument to [`task_guard_main`]).
pub fn use_task_guard(program: PathBuf) {
    let _ = GUARD.set(program);
}

/// A command for `program args`, under the guard when there is one.
pub(crate) fn command(program: &str, args: &[String]) -> Command {
    match GUARD.get() {
        Some(guard) => {
            let mut cmd = Command::new(guard);
            cmd.arg(TASK_GUARD_ARG).arg(program).args(args);
            cmd
        }
        None => {
            let mut cmd = Command::new(program);
            cmd.args(args);
            cmd
        }
    }
}

/// Put the spawned child in a process group of its own and have it signalled when the
/// spawning thread's process dies: SIGTERM for the guard (which stops the group), SIGKILL
/// for a program started directly.
pub(crate) fn die_with_worker(cmd: &mut Command) {
    cmd.process_group(0);
    #[cfg(target_os = "linux")]
    {
        let signal = if GUARD.get().is_some() {
            Signal::SIGTERM
        } else {
            Signal::SIGKILL
        };
        let parent = std::process::id();
        // SAFETY: the closure runs between fork and exec in the child; it only calls
        // prctl(2), getppid(2) and _exit(2), which are async-signal-safe, and allocates nothing.
        unsafe {
            cmd.pre_exec(move || {
                nix::sys::prctl::set_pdeathsig(signal).map_err(std::io::Error::from)?;
                // The worker died before the line above: nobody would tell us.
                if u32::try_from(nix::unistd::getppid().as_raw()).ok() != Some(parent) {
                    nix::libc::_exit(1);
                }
                Ok(())
            });
        }
    }
}

/// The guard's `main`: runs `argv` in this process group and waits for it; on SIGTERM or
/// SIGINT (its worker died, or a timeout stops the group) it stops the whole group. Returns
/// the exit code to exit with (a task killed by a signal kills the guard by the same signal).
pub fn task_guard_main(argv: &[String]) -> i32 {
    let Some((program, args)) = argv.split_first() else {
        eprintln!("drover {TASK_GUARD_ARG}: no program to run");
        return 2;
    };
    let mut stop = SigSet::empty();
    stop.add(Signal::SIGTERM);
    stop.add(Signal::SIGINT);
    stop.add(Signal::SIGCHLD);
    // Blocked before the child exists, so a worker death at any moment is seen.
    if let Err(e) = sigprocmask(SigmaskHow::SIG_BLOCK, Some(&stop), None) {
        eprintln!("drover {TASK_GUARD_ARG}: cannot block signals: {e}");
        return 2;
    }
    let mut cmd = std::process::Command::new(program);
    cmd.args(args);
    // SAFETY: between fork and exec; sigprocmask(2) is async-signal-safe and allocates
    // nothing (the set is built before the fork).
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut cmd, move || {
            sigprocmask(SigmaskHow::SIG_UNBLOCK, Some(&stop), None).map_err(std::io::Error::from)
        });
    }
    let child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("drover {TASK_GUARD_ARG}: cannot start `{program}`: {e}");
            return 127;
        }
    };
    let pid = Pid::from_raw(i32::try_from(child.id()).unwrap_or(0));
    loop {
        if let Some(code) = finished(pid) {
            return code;
        }
        if let Ok(Signal::SIGTERM | Signal::SIGINT) = stop.wait() {
            return stop_group(pid);
        }
    }
}

/// The child's exit as the guard's: `Some(code)` once it ended.
fn finished(pid: Pid) -> Option<i32> {
    match waitpid(pid, Some(WaitPidFlag::WNOHANG)) {
        Ok(WaitStatus::Exited(_, code)) => Some(code),
        Ok(WaitStatus::Signaled(_, signal, _)) => Some(die_by(signal)),
        Ok(_) => None,
        Err(_) => Some(1),
    }
}

/// SIGTERM to the whole group, then SIGKILL to what is left after the grace period.
fn stop_group(pid: Pid) -> i32 {
    let group = nix::unistd::getpgrp();
    let _ = killpg(group, Signal::SIGTERM);
    let deadline = Instant::now() + GUARD_GRACE;
    while Instant::now() < deadline {
        if let Some(code) = finished(pid) {
            // The task is gone; its children may not be.
            let _ = killpg(group, Signal::SIGKILL);
            return code;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    // This takes the guard with it.
    let _ = killpg(group, Signal::SIGKILL);
    128 + Signal::SIGKILL as i32
}

/// End the guard by `signal` as the task was, so the worker sees the same.
fn die_by(signal: Signal) -> i32 {
    let mut only = SigSet::empty();
    only.add(signal);
    let _ = sigprocmask(SigmaskHow::SIG_UNBLOCK, Some(&only), None);
    let _ = raise(signal);
    128 + signal as i32
}

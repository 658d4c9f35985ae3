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

use super::task_user::TaskUser;

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

/// Which step of the switch to the task user failed in a child, as its byte on the report
/// pipe says.
const SWITCH_STEPS: [&str; 3] = ["setgroups", "setgid", "setuid"];

/// What a child started by [`die_with_worker`] tells about its switch to the task user.
#[derive(Debug, Default)]
pub(crate) struct SwitchReport {
    read: Option<std::io::PipeReader>,
}

impl SwitchReport {
    /// After a spawn that failed: the step of the switch that failed (`setuid`, …), if the
    /// switch is what failed.
    pub(crate) fn failed_step(self) -> Option<&'static str> {
        use std::io::Read;
        let mut read = self.read?;
        let mut byte = [0u8; 1];
        // Written before the failed spawn returned, or never: do not wait for more.
        match read.read(&mut byte) {
            Ok(1) => SWITCH_STEPS.get(usize::from(byte[0])).copied(),
            _ => None,
        }
    }
}

/// Put the spawned child in a process group of its own and have it signalled when the
/// spawning thread's process dies: SIGTERM for the guard (which stops the group), SIGKILL
/// for a program started directly. With a `user`, the child first becomes that user and its
/// primary group (supplementary groups, group, user, in that order), before it execs.
pub(crate) fn die_with_worker(
    cmd: &mut Command,
    user: Option<&TaskUser>,
) -> std::io::Result<SwitchReport> {
    cmd.process_group(0);
    let mut report = SwitchReport::default();
    if let Some(user) = user {
        let (read, write) = std::io::pipe()?;
        set_nonblocking(&read)?;
        report.read = Some(read);
        let (uid, gid) = (user.uid.as_raw(), user.gid.as_raw());
        // SAFETY: the closure runs between fork and exec in the child; it only calls
        // get*id(2), setgroups(2), setgid(2), setuid(2) and write(2), which are
        // async-signal-safe, and allocates nothing (`last_os_error` is a plain errno).
        // Registered before the parent-death signal below, which a change of credentials
        // clears.
        unsafe {
            cmd.pre_exec(move || {
                use nix::libc;
                use std::os::fd::AsRawFd;
                let already = libc::getuid() == uid
                    && libc::geteuid() == uid
                    && libc::getgid() == gid
                    && libc::getegid() == gid;
                if already {
                    return Ok(());
                }
                let groups = [gid];
                let step: u8 = if libc::setgroups(1, groups.as_ptr()) != 0 {
                    0
                } else if libc::setgid(gid) != 0 {
                    1
                } else if libc::setuid(uid) != 0 {
                    2
                } else {
                    return Ok(());
                };
                let error = std::io::Error::last_os_error();
                let _ = libc::write(write.as_raw_fd(), (&raw const step).cast(), 1);
                Err(error)
            });
        }
    }
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
    Ok(report)
}

/// Reads from `pipe` return at once, with or without data.
fn set_nonblocking(pipe: &std::io::PipeReader) -> std::io::Result<()> {
    use nix::libc;
    use std::os::fd::AsRawFd;
    let fd = pipe.as_raw_fd();
    // SAFETY: fcntl(2) on a descriptor this function borrows, valid for the call.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    // SAFETY: as above.
    if flags < 0 || unsafe { libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
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

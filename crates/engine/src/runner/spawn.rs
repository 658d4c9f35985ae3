//! Starting a task's program without copying the worker.
//!
//! `fork(2)` copies the worker's page tables (a few milliseconds for a worker of tens of
//! megabytes, and every page the worker then writes is copied once more), only for the copy
//! to be thrown away by `exec`. Like `posix_spawn(3)`, this starts the child with
//! `clone(CLONE_VM | CLONE_VFORK)`: the child borrows the worker's memory, and the calling
//! thread waits until the child has exec'd its program (or failed to). The child does the
//! steps `posix_spawn` cannot — its own process group, the switch to the task user, the
//! parent-death signal, telling the warden its group — with plain system calls that allocate
//! nothing and touch no lock, since the worker's other threads keep running beside it.
//!
//! The child's exit is waited for on a pidfd (Linux 5.3 or later), so it needs no SIGCHLD
//! handler and is reaped by the task that started it.
#![allow(unsafe_code)]

use std::collections::BTreeMap;
use std::ffi::{CString, OsStr, OsString, c_char, c_int, c_void};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::ExitStatus;
use std::sync::Arc;

use nix::libc;
use nix::unistd::Pid;
use tokio::io::unix::AsyncFd;
use tokio::net::unix::pipe;

use super::task_user::TaskUser;

/// The child's stack while it prepares its exec (it calls a handful of system calls).
const STACK_SIZE: usize = 64 * 1024;

/// What to start: the program, its arguments, its whole environment and its directory.
#[derive(Debug)]
pub(crate) struct Program {
    /// The paths to try exec'ing, in order: the program itself when it names a path, else
    /// the program in each directory of the environment's `PATH` (as `execvp(3)` searches).
    candidates: Vec<CString>,
    argv: Vec<CString>,
    env: Vec<CString>,
    cwd: CString,
}

impl Program {
    /// `program` with `args`, in `cwd`, with exactly `env` as its environment.
    pub(crate) fn new(
        program: &str,
        args: &[String],
        env: &BTreeMap<OsString, OsString>,
        cwd: &Path,
    ) -> std::io::Result<Self> {
        let c = |bytes: &[u8]| {
            CString::new(bytes).map_err(|_| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    "a NUL byte in the program, an argument, the environment or the directory",
                )
            })
        };
        let candidates = if program.contains('/') {
            vec![c(program.as_bytes())?]
        } else {
            let path = env
                .get(OsStr::new("PATH"))
                .map_or(&b"/bin:/usr/bin"[..], |p| p.as_bytes());
            path.split(|b| *b == b':')
                .map(|dir| {
                    let dir = if dir.is_empty() { &b"."[..] } else { dir };
                    c(&[dir, b"/", program.as_bytes()].concat())
                })
                .collect::<Result<_, _>>()?
        };
        let argv = std::iter::once(program)
            .chain(args.iter().map(String::as_str))
            .map(|a| c(a.as_bytes()))
            .collect::<Result<_, _>>()?;
        let env = env
            .iter()
            .map(|(k, v)| c(&[k.as_bytes(), b"=", v.as_bytes()].concat()))
            .collect::<Result<_, _>>()?;
        Ok(Self {
            candidates,
            argv,
            env,
            cwd: c(cwd.as_os_str().as_bytes())?,
        })
    }
}

/// The step of a start that failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    /// In the worker, before the child existed (pipes, the clone itself).
    Prepare,
    ProcessGroup,
    Setgroups,
    Setgid,
    Setuid,
    DeathSignal,
    /// Telling the warden the child's group.
    Register,
    Chdir,
    Exec,
}

impl Step {
    const ALL: [Self; 9] = [
        Self::Prepare,
        Self::ProcessGroup,
        Self::Setgroups,
        Self::Setgid,
        Self::Setuid,
        Self::DeathSignal,
        Self::Register,
        Self::Chdir,
        Self::Exec,
    ];

    /// The switch to the task user: `setgroups`, `setgid` or `setuid`.
    pub(crate) fn user_switch(self) -> Option<&'static str> {
        match self {
            Self::Setgroups => Some("setgroups"),
            Self::Setgid => Some("setgid"),
            Self::Setuid => Some("setuid"),
            _ => None,
        }
    }

    fn code(self) -> u8 {
        // 0 means "no step failed".
        Self::ALL
            .iter()
            .position(|s| *s == self)
            .map_or(0, |i| u8::try_from(i + 1).unwrap_or(u8::MAX))
    }

    fn from_code(code: u8) -> Option<Self> {
        Self::ALL.get(usize::from(code.checked_sub(1)?)).copied()
    }
}

/// Why a program could not be started.
#[derive(Debug, thiserror::Error)]
#[error("{}", describe(*.step, .source))]
pub(crate) struct SpawnError {
    pub(crate) step: Step,
    #[source]
    pub(crate) source: std::io::Error,
}

fn describe(step: Step, source: &std::io::Error) -> String {
    match step {
        Step::Prepare | Step::Exec => source.to_string(),
        Step::ProcessGroup => format!("cannot give it a process group of its own: {source}"),
        Step::Setgroups | Step::Setgid | Step::Setuid => {
            format!("{}: {source}", step.user_switch().unwrap_or("switch"))
        }
        Step::DeathSignal => format!("cannot set its parent-death signal: {source}"),
        Step::Register => {
            format!("the task warden is gone: the task's process could not register ({source})")
        }
        Step::Chdir => format!("cannot enter its working directory: {source}"),
    }
}

fn prepare(source: std::io::Error) -> SpawnError {
    SpawnError {
        step: Step::Prepare,
        source,
    }
}

/// How the child is to be started.
pub(crate) struct Launch<'a> {
    pub(crate) program: &'a Program,
    /// Switch to this user (its primary group as the only group) before the exec.
    pub(crate) user: Option<&'a TaskUser>,
    /// The signal the child gets when the worker's thread that started it ends.
    pub(crate) death_signal: c_int,
    /// Tell the group to the warden on this socket before the exec.
    pub(crate) warden: Option<&'a Arc<OwnedFd>>,
}

/// What the child reads, and where it writes what failed. It lives on the starting thread's
/// stack, which the child shares until it execs.
#[repr(C)]
struct Plan {
    candidates: *const *const c_char,
    candidate_count: usize,
    argv: *const *const c_char,
    envp: *const *const c_char,
    cwd: *const c_char,
    stdin: c_int,
    stdout: c_int,
    stderr: c_int,
    switch_user: bool,
    uid: libc::uid_t,
    gid: libc::gid_t,
    death_signal: c_int,
    parent: libc::pid_t,
    warden: c_int,
    mask: *const libc::sigset_t,
    failed_step: u8,
    errno: c_int,
}

/// A started program: its pid, its output pipes, and its exit to wait for. Dropped before
/// it was waited for, it is killed (SIGKILL) and reaped.
#[derive(Debug)]
pub(crate) struct Child {
    pid: Pid,
    exited: AsyncFd<OwnedFd>,
    status: Option<ExitStatus>,
    pub(crate) stdout: Option<pipe::Receiver>,
    pub(crate) stderr: Option<pipe::Receiver>,
}

/// Start `launch.program` with standard input from `/dev/null` and its output and error on
/// pipes, in a process group of its own (its pid is the group's id).
pub(crate) fn spawn(launch: &Launch<'_>) -> Result<Child, SpawnError> {
    let program = launch.program;
    let devnull = std::fs::File::open("/dev/null").map_err(prepare)?;
    let (out_read, out_write) = std::io::pipe().map_err(prepare)?;
    let (err_read, err_write) = std::io::pipe().map_err(prepare)?;
    let pointers = |list: &[CString]| -> Vec<*const c_char> {
        list.iter()
            .map(|c| c.as_ptr())
            .chain(std::iter::once(std::ptr::null()))
            .collect()
    };
    let candidates = pointers(&program.candidates);
    let argv = pointers(&program.argv);
    let envp = pointers(&program.env);
    let switch = launch.user.filter(|user| {
        // SAFETY: get*id(2) cannot fail.
        let (uid, euid, gid, egid) = unsafe {
            (
                libc::getuid(),
                libc::geteuid(),
                libc::getgid(),
                libc::getegid(),
            )
        };
        let (u, g) = (user.uid.as_raw(), user.gid.as_raw());
        !(uid == u && euid == u && gid == g && egid == g)
    });
    let stack = STACK.with(|stack| match stack.get() {
        Some(top) => Ok(top),
        None => {
            // Kept for the thread's life: each thread has at most one child borrowing it,
            // since the clone suspends the thread until the child execs or exits.
            let top = Stack::new()?.leak();
            stack.set(Some(top));
            Ok(top)
        }
    });
    let stack_top = stack.map_err(prepare)?;
    // SAFETY: a zeroed sigset_t is a valid (empty) set for sigfillset to fill.
    let mut all: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    let mut mask: libc::sigset_t = unsafe { std::mem::zeroed() };
    let mut plan = Plan {
        candidates: candidates.as_ptr(),
        candidate_count: program.candidates.len(),
        argv: argv.as_ptr(),
        envp: envp.as_ptr(),
        cwd: program.cwd.as_ptr(),
        stdin: devnull.as_raw_fd(),
        stdout: out_write.as_raw_fd(),
        stderr: err_write.as_raw_fd(),
        switch_user: switch.is_some(),
        uid: switch.map_or(0, |u| u.uid.as_raw()),
        gid: switch.map_or(0, |u| u.gid.as_raw()),
        death_signal: launch.death_signal,
        parent: std::process::id().cast_signed(),
        warden: launch.warden.map_or(-1, |w| w.as_raw_fd()),
        mask: &raw const mask,
        failed_step: 0,
        errno: 0,
    };
    // SAFETY: every pointer in `plan` points into values that outlive the clone (the
    // CStrings of `program`, the arrays above, the descriptors, `mask`), and with
    // CLONE_VFORK this thread is suspended until the child execs or exits, so nothing here
    // moves or is freed while the child reads it. Signals are blocked around the clone so
    // that none runs one of the worker's handlers on the child's borrowed memory; the child
    // resets its handlers before it unblocks them.
    let pid = unsafe {
        libc::sigfillset(&raw mut all);
        libc::pthread_sigmask(libc::SIG_SETMASK, &raw const all, &raw mut mask);
        let pid = libc::clone(
            child_main,
            stack_top.0,
            libc::CLONE_VM | libc::CLONE_VFORK | libc::SIGCHLD,
            (&raw mut plan).cast::<c_void>(),
        );
        let clone_error = std::io::Error::last_os_error();
        libc::pthread_sigmask(libc::SIG_SETMASK, &raw const mask, std::ptr::null_mut());
        if pid < 0 {
            return Err(prepare(clone_error));
        }
        pid
    };
    drop((devnull, out_write, err_write));
    let pid = Pid::from_raw(pid);
    // SAFETY: the child wrote these before it exec'd or exited, and the clone returned after.
    let (failed, errno) = unsafe {
        (
            std::ptr::read_volatile(&raw const plan.failed_step),
            std::ptr::read_volatile(&raw const plan.errno),
        )
    };
    if let Some(step) = Step::from_code(failed) {
        reap_blocking(pid);
        return Err(SpawnError {
            step,
            source: std::io::Error::from_raw_os_error(errno),
        });
    }
    let exited = pidfd(pid).and_then(|fd| {
        // SAFETY: an OwnedFd's descriptor stays open and the same until the AsyncFd drops it.
        unsafe { AsyncFd::register_with_interest(fd, tokio::io::Interest::READABLE) }
            .map_err(std::io::Error::from)
    });
    let pipes = pipe::Receiver::from_owned_fd(OwnedFd::from(out_read))
        .and_then(|out| Ok((out, pipe::Receiver::from_owned_fd(OwnedFd::from(err_read))?)));
    match (exited, pipes) {
        (Ok(exited), Ok((stdout, stderr))) => Ok(Child {
            pid,
            exited,
            status: None,
            stdout: Some(stdout),
            stderr: Some(stderr),
        }),
        (Err(e), _) | (_, Err(e)) => {
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
            reap_blocking(pid);
            Err(prepare(e))
        }
    }
}

/// A descriptor that becomes readable when `pid` exits.
fn pidfd(pid: Pid) -> std::io::Result<OwnedFd> {
    // SAFETY: pidfd_open(2) takes a pid and flags and returns a new descriptor (close-on-exec)
    // or -1; the pid is this process's unreaped child, so it cannot name another process.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid.as_raw(), 0) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    let fd = c_int::try_from(fd).map_err(std::io::Error::other)?;
    // SAFETY: `fd` was just returned by the kernel and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `pid`'s status if it has exited (reaping it and keeping the status in `status`), else
/// `None`.
fn try_wait(pid: Pid, status: &mut Option<ExitStatus>) -> std::io::Result<Option<ExitStatus>> {
    if let Some(status) = *status {
        return Ok(Some(status));
    }
    let mut raw: c_int = 0;
    loop {
        // SAFETY: waitpid(2) on this process's own child, writing into a local int.
        let r = unsafe { libc::waitpid(pid.as_raw(), &raw mut raw, libc::WNOHANG) };
        if r == 0 {
            return Ok(None);
        }
        if r < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        let reaped = ExitStatus::from_raw(raw);
        *status = Some(reaped);
        return Ok(Some(reaped));
    }
}

/// Wait for `pid` (which exited or was killed) and drop its status.
fn reap_blocking(pid: Pid) {
    loop {
        match nix::sys::wait::waitpid(pid, None) {
            Err(nix::errno::Errno::EINTR) => {}
            _ => return,
        }
    }
}

impl Child {
    /// The child's pid, which is also its process group's id.
    pub(crate) fn id(&self) -> Pid {
        self.pid
    }

    /// Wait for the child to exit (again: its status, once it was reaped).
    pub(crate) async fn wait(&mut self) -> std::io::Result<ExitStatus> {
        loop {
            if let Some(status) = try_wait(self.pid, &mut self.status)? {
                return Ok(status);
            }
            let mut ready = self.exited.readable().await?;
            if let Some(status) = try_wait(self.pid, &mut self.status)? {
                return Ok(status);
            }
            ready.clear_ready();
        }
    }

    fn try_wait(&mut self) -> std::io::Result<Option<ExitStatus>> {
        try_wait(self.pid, &mut self.status)
    }

    /// SIGKILL the child (not its group), unless it was reaped already.
    pub(crate) fn kill(&mut self) {
        if self.status.is_none() {
            let _ = nix::sys::signal::kill(self.pid, nix::sys::signal::Signal::SIGKILL);
        }
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        if matches!(self.try_wait(), Ok(Some(_))) {
            return;
        }
        self.kill();
        if matches!(self.try_wait(), Ok(Some(_))) {
            return;
        }
        // Dying, not yet dead: reaped aside, so that no task waits for it.
        let pid = self.pid;
        let _ = std::thread::Builder::new()
            .name("reap".to_owned())
            .spawn(move || reap_blocking(pid));
    }
}

thread_local! {
    /// The top of this thread's stack for the children it starts (see [`Stack`]).
    static STACK: std::cell::Cell<Option<StackTop>> = const { std::cell::Cell::new(None) };
}

/// The top of a [`Stack`] that is never unmapped.
#[derive(Debug, Clone, Copy)]
struct StackTop(*mut c_void);

/// The stack children borrow between clone and exec: anonymous memory with a guard page
/// below it, one per thread that starts children, kept for the thread's life (unmapping it
/// after each start would cost a TLB flush on every CPU the worker runs on).
struct Stack {
    base: *mut c_void,
    len: usize,
}

impl Stack {
    fn new() -> std::io::Result<Self> {
        let guard = 4096;
        let len = STACK_SIZE + guard;
        // SAFETY: a private anonymous mapping, owned by the returned value.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_STACK,
                -1,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error());
        }
        let stack = Self { base, len };
        // SAFETY: the lowest page of the mapping made above.
        if unsafe { libc::mprotect(base, guard, libc::PROT_NONE) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(stack)
    }

    /// Keep the mapping for good; its top (it grows down), page-aligned.
    fn leak(self) -> StackTop {
        let stack = std::mem::ManuallyDrop::new(self);
        // SAFETY: one past the end of the mapping, which is page-aligned.
        StackTop(unsafe { stack.base.cast::<u8>().add(stack.len).cast() })
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `new`, never lent to a child (a lent one is leaked).
        unsafe {
            libc::munmap(self.base, self.len);
        }
    }
}

/// Record the failed step and its errno for the parent, and exit.
///
/// # Safety
/// Only in the child, with `plan` the parent's plan.
unsafe fn fail(plan: *mut Plan, step: Step, errno: c_int) -> ! {
    // SAFETY: `plan` is the parent's, valid until this child exits.
    unsafe {
        std::ptr::write_volatile(&raw mut (*plan).errno, errno);
        std::ptr::write_volatile(&raw mut (*plan).failed_step, step.code());
        libc::_exit(127)
    }
}

fn errno() -> c_int {
    std::io::Error::last_os_error()
        .raw_os_error()
        .unwrap_or(libc::EINVAL)
}

/// The child, between clone and exec, on its own stack and the worker's memory: system calls
/// only (no allocation, no lock, no unwinding).
extern "C" fn child_main(arg: *mut c_void) -> c_int {
    let plan = arg.cast::<Plan>();
    // SAFETY: `arg` is the parent's `Plan`, valid and unchanged until this child execs or
    // exits (the parent is suspended meanwhile); every call below is a system call wrapper.
    unsafe {
        let p = &*plan;
        // The worker's handlers would run on borrowed memory: back to the defaults (the
        // handler table is this process's own copy). SIGPIPE, which the worker ignores,
        // too, as a program started by a shell would have it.
        let mut current: libc::sigaction = std::mem::zeroed();
        let mut default: libc::sigaction = std::mem::zeroed();
        default.sa_sigaction = libc::SIG_DFL;
        for sig in 1..libc::SIGRTMAX() + 1 {
            if libc::sigaction(sig, std::ptr::null(), &raw mut current) == 0
                && (current.sa_sigaction != libc::SIG_DFL
                    && (current.sa_sigaction != libc::SIG_IGN || sig == libc::SIGPIPE))
            {
                libc::sigaction(sig, &raw const default, std::ptr::null_mut());
            }
        }
        if libc::setpgid(0, 0) != 0 {
            fail(plan, Step::ProcessGroup, errno());
        }
        if p.switch_user {
            // Raw system calls: the C library's wrappers would ask every thread of the
            // worker to switch too.
            let groups = [p.gid];
            if libc::syscall(libc::SYS_setgroups, 1, groups.as_ptr()) != 0 {
                fail(plan, Step::Setgroups, errno());
            }
            if libc::syscall(libc::SYS_setresgid, p.gid, p.gid, p.gid) != 0 {
                fail(plan, Step::Setgid, errno());
            }
            if libc::syscall(libc::SYS_setresuid, p.uid, p.uid, p.uid) != 0 {
                fail(plan, Step::Setuid, errno());
            }
        }
        // After the switch, which clears it.
        if libc::prctl(
            libc::PR_SET_PDEATHSIG,
            libc::c_ulong::try_from(p.death_signal).unwrap_or(9),
            0,
            0,
            0,
        ) != 0
        {
            fail(plan, Step::DeathSignal, errno());
        }
        // The worker died before the line above: nobody would tell us.
        if libc::getppid() != p.parent {
            libc::_exit(1);
        }
        if p.warden >= 0 {
            let id = libc::getpid().to_le_bytes();
            let message = [b'+', id[0], id[1], id[2], id[3]];
            // Blocking: the warden reads as fast as groups start.
            let sent = libc::send(
                p.warden,
                message.as_ptr().cast(),
                message.len(),
                libc::MSG_NOSIGNAL,
            );
            if usize::try_from(sent).ok() != Some(message.len()) {
                fail(
                    plan,
                    Step::Register,
                    if sent < 0 { errno() } else { libc::EPIPE },
                );
            }
        }
        if libc::chdir(p.cwd) != 0 {
            fail(plan, Step::Chdir, errno());
        }
        for (from, to) in [(p.stdin, 0), (p.stdout, 1), (p.stderr, 2)] {
            if libc::dup2(from, to) < 0 {
                fail(plan, Step::Prepare, errno());
            }
        }
        libc::pthread_sigmask(libc::SIG_SETMASK, p.mask, std::ptr::null_mut());
        // As execvp(3) searches: a missing or inaccessible candidate tries the next one.
        let mut error = libc::ENOENT;
        let mut denied = false;
        for i in 0..p.candidate_count {
            libc::execve(*p.candidates.add(i), p.argv, p.envp);
            match errno() {
                libc::EACCES => denied = true,
                libc::ENOENT | libc::ENOTDIR | libc::ESTALE | libc::ENODEV | libc::ETIMEDOUT => {}
                other => {
                    error = other;
                    break;
                }
            }
        }
        if denied && error == libc::ENOENT {
            error = libc::EACCES;
        }
        fail(plan, Step::Exec, error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    fn program(argv: &[&str], env: &[(&str, &str)], cwd: &Path) -> Program {
        let env = env
            .iter()
            .map(|(k, v)| (OsString::from(k), OsString::from(v)))
            .collect();
        let args: Vec<String> = argv[1..].iter().map(|a| (*a).to_owned()).collect();
        match Program::new(argv[0], &args, &env, cwd) {
            Ok(p) => p,
            Err(e) => panic!("program: {e}"),
        }
    }

    fn start(p: &Program) -> Result<Child, SpawnError> {
        spawn(&Launch {
            program: p,
            user: None,
            death_signal: libc::SIGKILL,
            warden: None,
        })
    }

    fn started(p: &Program) -> Child {
        match start(p) {
            Ok(c) => c,
            Err(e) => panic!("start: {e}"),
        }
    }

    fn refused(p: &Program) -> SpawnError {
        match start(p) {
            Err(e) => e,
            Ok(c) => panic!("started {:?} (pid {})", p.argv, c.id()),
        }
    }

    async fn output(child: &mut Child) -> (String, String) {
        let mut out = String::new();
        let mut err = String::new();
        if let Some(s) = child.stdout.as_mut() {
            let _ = s.read_to_string(&mut out).await;
        }
        if let Some(s) = child.stderr.as_mut() {
            let _ = s.read_to_string(&mut err).await;
        }
        (out, err)
    }

    #[tokio::test]
    async fn a_program_gets_its_arguments_environment_and_directory_and_its_exit_code_comes_back() {
        let dir = std::env::temp_dir();
        let p = program(
            &[
                "sh",
                "-c",
                "echo \"$GREETING $1\"; pwd; env | sort; echo oops >&2; exit 3",
                "sh",
                "world",
            ],
            &[("PATH", "/usr/bin:/bin"), ("GREETING", "hello")],
            &dir,
        );
        let mut child = started(&p);
        let (out, err) = output(&mut child).await;
        let status = match child.wait().await {
            Ok(s) => s,
            Err(e) => panic!("wait: {e}"),
        };
        assert_eq!(status.code(), Some(3));
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[0], "hello world");
        let real = std::fs::canonicalize(&dir).unwrap_or(dir.clone());
        assert_eq!(Path::new(lines[1]), real.as_path());
        // Exactly the environment given (the shell adds PWD, SHLVL and `_` of its own).
        let vars: Vec<&str> = lines[2..]
            .iter()
            .map(|l| l.split('=').next().unwrap_or(""))
            .filter(|v| !matches!(*v, "PWD" | "SHLVL" | "_" | "OLDPWD"))
            .collect();
        assert_eq!(vars, ["GREETING", "PATH"]);
        assert_eq!(err, "oops\n");
        // Waiting again gives the same status.
        assert_eq!(child.wait().await.ok().and_then(|s| s.code()), Some(3));
    }

    #[tokio::test]
    async fn the_child_leads_its_own_group_with_default_signals() {
        let p = program(
            &[
                "sh",
                "-c",
                "cut -d' ' -f5 /proc/self/stat; grep -E '^Sig(Ign|Blk)' /proc/self/status",
            ],
            &[("PATH", "/usr/bin:/bin")],
            Path::new("/"),
        );
        let mut child = started(&p);
        let (out, _) = output(&mut child).await;
        assert!(child.wait().await.is_ok_and(|s| s.success()));
        let mut lines = out.lines();
        // `cut` runs in the shell's group, which is the child's own: its pid.
        assert_eq!(lines.next(), Some(child.id().as_raw().to_string().as_str()));
        // Nothing blocked, and SIGPIPE (13: bit 12) not ignored, though the worker ignores it.
        for line in lines {
            let mask = line.split_whitespace().nth(1).unwrap_or("");
            let bits = u64::from_str_radix(mask, 16).unwrap_or(u64::MAX);
            if line.starts_with("SigBlk") {
                assert_eq!(bits, 0, "{line}");
            } else {
                assert_eq!(bits & (1 << 12), 0, "{line}");
            }
        }
    }

    #[tokio::test]
    async fn a_missing_program_or_directory_names_the_step_that_failed() {
        let p = program(
            &["no-such-program-here"],
            &[("PATH", "/usr/bin:/bin")],
            Path::new("/"),
        );
        let e = refused(&p);
        assert_eq!(e.step, Step::Exec);
        assert_eq!(e.source.kind(), std::io::ErrorKind::NotFound, "{e}");
        let p = program(
            &["true"],
            &[("PATH", "/usr/bin:/bin")],
            Path::new("/no/such/dir"),
        );
        let e = refused(&p);
        assert_eq!(e.step, Step::Chdir);
        assert!(
            e.to_string()
                .starts_with("cannot enter its working directory"),
            "{e}"
        );
        assert!(
            Program::new(
                "true",
                &["a\0b".to_owned()],
                &BTreeMap::new(),
                Path::new("/")
            )
            .is_err()
        );
    }

    #[tokio::test]
    async fn a_signal_comes_back_as_the_status_and_a_dropped_child_is_killed() {
        let p = program(
            &["sh", "-c", "kill -9 $$"],
            &[("PATH", "/usr/bin:/bin")],
            Path::new("/"),
        );
        let mut child = started(&p);
        assert_eq!(child.wait().await.ok().and_then(|s| s.signal()), Some(9));

        let p = program(
            &["sleep", "300"],
            &[("PATH", "/usr/bin:/bin")],
            Path::new("/"),
        );
        let child = started(&p);
        let pid = child.id();
        drop(child);
        // Killed and reaped: the pid is gone.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while nix::sys::signal::kill(pid, None).is_ok() && std::time::Instant::now() < deadline {
            tokio::task::yield_now().await;
        }
        assert_eq!(
            nix::sys::signal::kill(pid, None),
            Err(nix::errno::Errno::ESRCH)
        );
    }
}

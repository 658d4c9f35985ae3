//! Child processes that die with their worker.
//!
//! A worker killed with SIGKILL cannot stop its children, and a child that outlived it would
//! keep running while the system retries its task elsewhere: the same task twice at once.
//! Linux's parent-death signal closes that gap for the direct child; the child also gets its
//! own process group so a timeout can stop everything it started.
#![allow(unsafe_code)]

use tokio::process::Command;

/// Make the spawned child get SIGKILL when the spawning thread's process dies, and put it in
/// a process group of its own.
pub(crate) fn die_with_worker(cmd: &mut Command) {
    cmd.process_group(0);
    #[cfg(target_os = "linux")]
    {
        // SAFETY: the closure runs between fork and exec in the child; it only calls prctl(2),
        // which is async-signal-safe, and allocates nothing.
        unsafe {
            cmd.pre_exec(|| {
                nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL)
                    .map_err(std::io::Error::from)
            });
        }
    }
}

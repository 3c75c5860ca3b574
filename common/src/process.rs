//! The process-level calls that need `libc`: the effective uid, signals to
//! child processes, and a parent-death signal for children we spawn.
//!
//! This is the only module allowed `unsafe`; each call is a plain syscall with
//! no memory handed to the kernel.
#![allow(unsafe_code)]

use std::process::Command;

/// True when this process runs as root (Postgres refuses to run as root).
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Send `signal` (e.g. `libc::SIGTERM`) to process `pid`. Returns false when
/// the process no longer exists or may not be signalled.
pub fn signal(pid: u32, signal: i32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    // SAFETY: kill has no memory arguments; a stale pid yields ESRCH.
    unsafe { libc::kill(pid, signal) == 0 }
}

/// Ask the kernel to send `signal` to the child when the spawning thread
/// exits, so a coordinator killed with SIGKILL does not leave its throwaway
/// Postgres or local agents running. Spawn from a long-lived thread (a tokio
/// worker or the main thread), not from a blocking-pool thread that may retire.
pub fn die_with_parent(cmd: &mut Command, signal: i32) {
    use std::os::unix::process::CommandExt;
    // SAFETY: the closure runs in the forked child before exec and only makes
    // the async-signal-safe prctl syscall.
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, signal as libc::c_ulong, 0, 0, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

pub use libc::{SIGINT, SIGKILL, SIGQUIT, SIGTERM};

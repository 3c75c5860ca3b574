//! The process-level calls that need `libc`: the effective uid, signals to
//! child processes, a parent-death signal for children we spawn, and the
//! open-files limit.
//!
//! This is the only module allowed `unsafe`; each call is a plain syscall
//! that at most reads or writes a struct this module owns.
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

/// Resident set size of this process in bytes (from /proc/self/statm), or 0
/// where it cannot be read.
pub fn rss_bytes() -> u64 {
    let Ok(statm) = std::fs::read_to_string("/proc/self/statm") else { return 0 };
    let pages: u64 = statm.split_whitespace().nth(1).and_then(|p| p.parse().ok()).unwrap_or(0);
    // SAFETY: sysconf has no memory arguments.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    pages * u64::try_from(page).unwrap_or(4096)
}

/// Raise this process's soft limit on open files to its hard limit and
/// return the limit now in force. A coordinator holds a connection per agent
/// (a thousand agents need a thousand descriptors, and many systems start
/// processes with a soft limit of 1024); synthetic agents hold a listener
/// and a connection each. Raising the soft limit up to the hard one needs no
/// privilege.
pub fn raise_open_files_limit() -> u64 {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes only into the struct we own; setrlimit reads it.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return 0;
        }
        if lim.rlim_cur < lim.rlim_max {
            let raised = libc::rlimit { rlim_cur: lim.rlim_max, rlim_max: lim.rlim_max };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                lim = raised;
            }
        }
    }
    lim.rlim_cur
}

/// CPU time (user + system) this process has used so far, from
/// /proc/self/stat (zero where it cannot be read).
pub fn cpu_time() -> std::time::Duration {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else { return std::time::Duration::ZERO };
    // The fields after the command name, which is in parentheses and may hold spaces.
    let Some(rest) = stat.rfind(')').and_then(|i| stat.get(i + 2..)) else { return std::time::Duration::ZERO };
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    // SAFETY: sysconf has no memory arguments.
    let per_sec = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    let per_sec = u64::try_from(per_sec).ok().filter(|t| *t > 0).unwrap_or(100);
    std::time::Duration::from_secs_f64((ticks(11) + ticks(12)) as f64 / per_sec as f64)
}

/// CPU time the calling thread has used (nanosecond resolution; zero when
/// the clock cannot be read).
pub fn thread_cpu_time() -> std::time::Duration {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid timespec the call writes into.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return std::time::Duration::ZERO;
    }
    std::time::Duration::new(u64::try_from(ts.tv_sec).unwrap_or(0), u32::try_from(ts.tv_nsec).unwrap_or(0))
}

/// This machine's host name.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname").map(|h| h.trim().to_string()).unwrap_or_default()
}

/// Pool size duroxide-pg gives this process's providers: `DUROXIDE_PG_POOL_MAX`
/// (read at each provider construction) or its default of 10.
pub fn pool_max_from_env() -> u32 {
    std::env::var("DUROXIDE_PG_POOL_MAX").ok().and_then(|v| v.parse().ok()).unwrap_or(10)
}

/// Set an environment variable for this process.
///
/// Call it only from `main` before any other thread exists (before the async
/// runtime is built): the environment is not synchronised across threads.
/// duroxide-pg reads `DUROXIDE_PG_POOL_MAX` from the environment at every
/// provider construction, so this is how an agent fixes its pool size.
pub fn set_env_before_threads(key: &str, value: &str) {
    // SAFETY: called single-threaded from main before the runtime starts (see above).
    unsafe { std::env::set_var(key, value) }
}

pub use libc::{SIGCONT, SIGINT, SIGKILL, SIGQUIT, SIGSTOP, SIGTERM};

/// Process ids whose parent is `parent` (e.g. a postmaster's backends).
pub fn children(parent: u32) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else { return Vec::new() };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()))
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat")).ok().is_some_and(|stat| {
                // Fields after the command name: state, ppid, ...
                stat.rfind(')')
                    .and_then(|i| stat.get(i + 2..))
                    .and_then(|rest| rest.split_whitespace().nth(1))
                    .and_then(|p| p.parse::<u32>().ok())
                    == Some(parent)
            })
        })
        .collect()
}

/// SIGCONT for each stopped process, in order, when dropped: whoever stops
/// a process holds one, so an interrupted run never leaves it stopped.
pub struct Resume(Vec<u32>);

impl Resume {
    pub fn new(pids: Vec<u32>) -> Self {
        Resume(pids)
    }

    /// How many processes it resumes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl Drop for Resume {
    fn drop(&mut self) {
        for pid in &self.0 {
            signal(*pid, SIGCONT);
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn rss_is_read() {
        let rss = super::rss_bytes();
        assert!(rss > 1 << 20 && rss < 1 << 40, "{rss}");
    }
}

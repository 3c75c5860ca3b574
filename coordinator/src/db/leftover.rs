//! Throwaway servers a killed coordinator left on this machine: the
//! directories of `--ha` clusters (`loadgen-ha-*`) and of throwaway
//! Postgres servers (`loadgen-pg-*`) in the temp directory, with whatever
//! still runs from them. Each directory names its coordinator (an `owner`
//! file: pid and start time); while that coordinator lives, the server is
//! in use and never touched. `coordinator cleanup --servers` lists them and,
//! with `--yes`, stops what runs from a left one and removes its directory.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use loadgen_common::process;
use serde::{Deserialize, Serialize};

/// The directory prefixes of the throwaway servers, and what each is.
const KINDS: [(&str, &str); 2] = [("loadgen-ha-", "HA cluster"), ("loadgen-pg-", "Postgres")];
/// The file naming a server's coordinator.
const OWNER: &str = "owner";
/// How long the processes of a left server may take to stop before SIGKILL.
const STOP_BOUND: Duration = Duration::from_secs(10);

/// One throwaway server found on this machine.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LeftServer {
    pub dir: String,
    /// "HA cluster" or "Postgres".
    pub kind: String,
    /// The coordinator that started it (unknown for directories of older versions).
    pub owner_pid: Option<u32>,
    /// Its coordinator still runs (or, with no owner file, a process still
    /// runs from it): never removed.
    pub in_use: bool,
    /// Processes still running from it.
    pub processes: usize,
    pub bytes: u64,
    /// Stopped and removed by this invocation.
    pub removed: bool,
}

/// Name this process as the owner of the server directory `dir`.
pub fn mark_owner(dir: &Path) -> std::io::Result<()> {
    let me = std::process::id();
    let started = start_time(me).unwrap_or_default();
    std::fs::write(dir.join(OWNER), format!("{me} {started}\n"))
}

/// A process's start time (clock ticks after boot), which tells a live
/// owner from a later process given the same pid.
fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces: the fields after it start at ") ".
    let rest = stat.rsplit_once(") ")?.1;
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// The owner a directory names, and whether it still runs.
fn owner(dir: &Path) -> Option<(u32, bool)> {
    let text = std::fs::read_to_string(dir.join(OWNER)).ok()?;
    let mut parts = text.split_whitespace();
    let pid: u32 = parts.next()?.parse().ok()?;
    let started: u64 = parts.next()?.parse().ok()?;
    Some((pid, start_time(pid) == Some(started)))
}

/// Every process (other than this one) whose command line names `dir`.
pub fn processes_naming(dir: &str) -> Vec<u32> {
    let me = std::process::id();
    let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| pid != me)
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|c| String::from_utf8_lossy(&c).contains(dir))
                .unwrap_or(false)
        })
        .collect()
}

fn size_of(p: &Path) -> u64 {
    let Ok(meta) = std::fs::symlink_metadata(p) else { return 0 };
    if !meta.is_dir() {
        return meta.len();
    }
    std::fs::read_dir(p).map(|d| d.flatten().map(|e| size_of(&e.path())).sum()).unwrap_or(0)
}

/// The throwaway servers in `tmp`.
pub fn find(tmp: &Path) -> Vec<(PathBuf, LeftServer)> {
    let Ok(entries) = std::fs::read_dir(tmp) else { return Vec::new() };
    let mut found: Vec<(PathBuf, LeftServer)> = entries
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let (_, kind) = KINDS.iter().find(|(prefix, _)| name.starts_with(prefix))?;
            let path = e.path();
            let running = processes_naming(&path.display().to_string()).len();
            let owner = owner(&path);
            let in_use = owner.map_or(running > 0, |(_, alive)| alive);
            let server = LeftServer {
                dir: path.display().to_string(),
                kind: (*kind).to_string(),
                owner_pid: owner.map(|(pid, _)| pid),
                in_use,
                processes: running,
                bytes: size_of(&path),
                removed: false,
            };
            Some((path, server))
        })
        .collect();
    found.sort_by(|a, b| a.1.dir.cmp(&b.1.dir));
    found
}

/// Stop what runs from `dir` (postmasters SIGQUIT, the rest SIGTERM, SIGKILL
/// after a bound) and remove it.
fn remove(dir: &Path) -> Result<(), String> {
    let name = dir.display().to_string();
    for pid in processes_naming(&name) {
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let postmaster = String::from_utf8_lossy(&cmdline).split('\0').next().is_some_and(|p| p.ends_with("postgres"));
        process::signal(pid, if postmaster { process::SIGQUIT } else { process::SIGTERM });
    }
    let deadline = Instant::now() + STOP_BOUND;
    while !processes_naming(&name).is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    for pid in processes_naming(&name) {
        process::signal(pid, process::SIGKILL);
    }
    std::thread::sleep(Duration::from_millis(200));
    std::fs::remove_dir_all(dir).map_err(|e| format!("removing {name}: {e}"))
}

/// List the throwaway servers in `tmp`; with `apply`, stop and remove every
/// one not in use. Returns them and the problems met.
pub fn sweep(tmp: &Path, apply: bool) -> (Vec<LeftServer>, Vec<String>) {
    let mut problems = Vec::new();
    let servers = find(tmp)
        .into_iter()
        .map(|(path, mut s)| {
            if apply && !s.in_use {
                match remove(&path) {
                    Ok(()) => s.removed = true,
                    Err(e) => problems.push(e),
                }
            }
            s
        })
        .collect();
    (servers, problems)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_directory_whose_owner_is_gone_is_removed_and_a_live_ones_is_kept() {
        let tmp = tempfile::tempdir().expect("tmp");
        let mine = tmp.path().join("loadgen-ha-mine");
        let left = tmp.path().join("loadgen-pg-left");
        let other = tmp.path().join("something-else");
        for d in [&mine, &left, &other] {
            std::fs::create_dir(d).expect("dir");
        }
        mark_owner(&mine).expect("owner");
        // A pid that cannot run (above the kernel's pid limit).
        std::fs::write(left.join(OWNER), "4194399 12345\n").expect("owner");
        std::fs::write(left.join("data"), vec![0u8; 1000]).expect("data");
        let (listed, problems) = sweep(tmp.path(), false);
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(listed.len(), 2, "{listed:?}");
        assert_eq!((listed[0].kind.as_str(), listed[0].in_use), ("HA cluster", true));
        assert_eq!(
            (listed[1].kind.as_str(), listed[1].in_use, listed[1].owner_pid),
            ("Postgres", false, Some(4194399))
        );
        assert!(listed[1].bytes >= 1000 && !listed[1].removed);
        let (swept, problems) = sweep(tmp.path(), true);
        assert!(problems.is_empty(), "{problems:?}");
        assert!(!swept[0].removed && swept[1].removed);
        assert!(mine.exists() && !left.exists() && other.exists());
    }
}

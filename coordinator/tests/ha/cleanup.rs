//! A coordinator killed with SIGKILL in the middle of an `--ha` run: what
//! it left is found by `coordinator cleanup --servers`, kept without
//! `--yes`, and with it stopped and removed: no process, no directory, no
//! port held.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::support::{self, coordinator};

/// The cluster's directory in `tmp`, and its write endpoint's port (from its HAProxy configuration).
fn the_cluster(tmp: &Path) -> (PathBuf, u16) {
    let dir = std::fs::read_dir(tmp)
        .expect("tmp")
        .flatten()
        .map(|e| e.path())
        .find(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("loadgen-ha-")))
        .expect("the cluster's directory in TMPDIR");
    let cfg = std::fs::read_to_string(dir.join("haproxy.cfg")).expect("haproxy.cfg");
    let port = cfg
        .lines()
        .filter_map(|l| l.trim().strip_prefix("bind 127.0.0.1:"))
        .filter_map(|p| p.trim().parse::<u16>().ok())
        .next_back()
        .expect("the write endpoint's port");
    (dir, port)
}

fn cleanup(tmp: &Path, yes: bool) -> (Option<i32>, String) {
    let mut cmd = coordinator(tmp);
    cmd.args(["cleanup", "--servers"]);
    if yes {
        cmd.arg("--yes");
    }
    let out = cmd.output().expect("cleanup");
    (out.status.code(), support::show(&out))
}

#[test]
fn an_ha_cluster_left_by_a_killed_coordinator_is_found_and_removed() {
    let tmp = tempfile::tempdir().expect("tmp");
    let mut child = coordinator(tmp.path())
        .args(["--local", "1", "--ha", "--profile", "light", "--duration", "120s", "--live", "line"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("coordinator");
    // Until the load has begun (bounded: the cluster takes 4-10 s, the
    // schema and the agent a few more).
    let rx = super::support::stderr_lines(&mut child);
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut seen = Vec::new();
    while !seen.iter().any(|l: &String| l.contains("orch/s")) {
        assert!(Instant::now() < deadline, "the run never started: {seen:?}");
        assert!(child.try_wait().expect("wait").is_none(), "the coordinator ended: {seen:?}");
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) {
            seen.push(line);
        }
    }
    assert!(seen.iter().any(|l| l.contains("--ha: started an HA cluster on 127.0.0.1:")), "{seen:?}");
    let (dir, port) = the_cluster(tmp.path());
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_ok(), "the write endpoint answers");
    child.kill().expect("SIGKILL");
    child.wait().expect("reaped");
    // Its local agent stops on its own (SIGTERM at its parent's death, then
    // its shutdown, which may wait on the cluster): within 30 s.
    let agent_bin = support::agent_bin().display().to_string();
    let agents = || -> Vec<String> {
        support::processes_mentioning(&tmp.path().display().to_string())
            .into_iter()
            .filter(|p| p.starts_with(&agent_bin))
            .collect()
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while !agents().is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(agents().is_empty(), "the killed coordinator's agent still runs: {:?}", agents());

    let (code, text) = cleanup(tmp.path(), false);
    assert_eq!(code, Some(0), "{text}");
    let name = dir.display().to_string();
    assert!(text.contains(&format!("{name} (HA cluster, coordinator {}", child.id())), "{text}");
    assert!(text.contains("would be removed (add --yes)"), "{text}");
    assert!(dir.exists(), "listing removed it");

    let (code, text) = cleanup(tmp.path(), true);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("stopped and removed") && text.contains("Removed 1 of 1"), "{text}");
    support::assert_nothing_left(tmp.path(), &[]);
    assert!(support::processes_mentioning(&name).is_empty(), "processes of {name} left");
    assert!(std::net::TcpListener::bind(("127.0.0.1", port)).is_ok(), "port {port} still held");
    let (code, text) = cleanup(tmp.path(), false);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("Nothing left behind."), "{text}");
}

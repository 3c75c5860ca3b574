//! Helpers shared by the end-to-end test files: run the real `coordinator`
//! binary in a private TMPDIR, read its JSON, and check nothing is left behind.
#![allow(dead_code)]

use std::path::Path;
use std::process::{Command, Output};

use loadgen_coordinator::model::{RunReport, SuiteReport};

/// The `agent` binary this build made (beside the coordinator's).
pub fn agent_bin() -> std::path::PathBuf {
    Path::new(env!("CARGO_BIN_EXE_coordinator")).with_file_name("agent")
}

/// The token the tests' standalone agents and coordinators share.
pub const TEST_TOKEN: &str = "test-token-0123456789abcdef";

pub fn coordinator(tmp: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_coordinator"));
    // Our own TMPDIR: whatever the run creates there must be gone afterwards.
    cmd.env("TMPDIR", tmp)
        .env_remove("DATABASE_URL")
        .env_remove("LOADGEN_AGENTS")
        .env_remove("LOADGEN_PROFILE")
        .env_remove("LOADGEN_PROFILE_FILE")
        .env_remove("LOADGEN_RESULTS_DIR")
        .env_remove("DUROXIDE_PG_POOL_MAX")
        .env_remove("LOADGEN_TLS_CA")
        .env("LOADGEN_TOKEN", TEST_TOKEN);
    cmd
}

pub fn read_report(path: &Path) -> RunReport {
    let text = std::fs::read_to_string(path).expect("json written");
    let value: serde_json::Value = serde_json::from_str(&text).expect("json");
    assert_documented(&value);
    serde_json::from_value(value).expect("json parses into the result model")
}

/// Objects whose keys are data (scenario names, settings, error classes, a
/// scenario's own counters), not fields.
const DATA_MAPS: &[&str] = &[
    "by_scenario",
    "provider_retries",
    "provider_errors",
    "postgres_settings",
    "options",
    "connections",
    "mix",
    "given",
    "facts",
    "failed_by_error",
];

/// Every field of a result the tests read is named in docs/results.md (as
/// `"field"`): the JSON model and its documentation cannot drift apart.
pub fn assert_documented(value: &serde_json::Value) {
    let doc = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/results.md"))
        .expect("docs/results.md");
    let mut missing = std::collections::BTreeSet::new();
    let mut stack = vec![(String::new(), value)];
    while let Some((path, v)) = stack.pop() {
        match v {
            serde_json::Value::Object(map) => {
                for (k, x) in map {
                    if !doc.contains(&format!("\"{k}\"")) {
                        missing.insert(format!("{path}.{k}"));
                    }
                    if !DATA_MAPS.contains(&k.as_str()) {
                        stack.push((format!("{path}.{k}"), x));
                    }
                }
            }
            serde_json::Value::Array(items) => stack.extend(items.iter().map(|x| (format!("{path}[]"), x))),
            _ => {}
        }
    }
    assert!(missing.is_empty(), "fields of the JSON result not in docs/results.md: {missing:?}");
}

pub fn show(out: &Output) -> String {
    format!("stdout:\n{}\nstderr:\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

/// Processes whose command line or environment mentions `needle` (children
/// of a coordinator inherit its TMPDIR, so this finds its agents and Postgres).
pub fn processes_mentioning(needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let read =
            |f: &str| std::fs::read(entry.path().join(f)).map(|b| String::from_utf8_lossy(&b).replace('\0', " "));
        let (Ok(cmdline), environ) = (read("cmdline"), read("environ").unwrap_or_default()) else { continue };
        if cmdline.contains(needle) || environ.contains(needle) {
            found.push(cmdline);
        }
    }
    found
}

/// The runs of a suite JSON result.
pub fn read_suite(path: &Path) -> SuiteReport {
    let text = std::fs::read_to_string(path).expect("json written");
    serde_json::from_str(&text).expect("json parses as a suite")
}

/// Run the coordinator with `args` in `tmp`, writing JSON to `tmp/<name>.json`;
/// assert the exit code and return the output.
pub fn run_ok(tmp: &Path, args: &[&str]) -> Output {
    let out = coordinator(tmp).args(args).output().expect("run coordinator");
    assert!(out.status.success(), "{args:?}: {}", show(&out));
    out
}

/// Nothing left in `tmp` but the listed files, and no process mentioning it.
pub fn assert_nothing_left(tmp: &Path, keep: &[&str]) {
    let left: Vec<_> = std::fs::read_dir(tmp)
        .expect("tmp")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !keep.contains(&n.as_str()))
        .collect();
    assert!(left.is_empty(), "left behind in TMPDIR: {left:?}");
    let needle = tmp.display().to_string();
    assert!(processes_mentioning(&needle).is_empty(), "processes left: {:?}", processes_mentioning(&needle));
}

pub fn assert_consistent(r: &RunReport, agents: usize) {
    let m = &r.merged.counts;
    // A fanout run: its options as the run resolved them.
    assert_eq!(r.workload.scenario, "fanout");
    let tasks: u64 = r.workload.options["tasks"].parse().expect("tasks");
    let delay = loadgen_common::units::parse_duration(&r.workload.options["activity_delay"]).expect("delay");
    assert_eq!(r.agents.len(), agents);
    assert!(m.launched > 0, "nothing launched");
    assert_eq!(m.completed, m.launched, "every launched instance completed");
    assert_eq!((m.failed(), m.start_errors, m.unfinished), (0, 0, 0));
    // Merged histogram count = completed = sum of the agents' counts.
    assert_eq!(r.merged.e2e_latency.count, m.completed);
    assert_eq!(r.agents.iter().map(|a| a.section.counts.completed).sum::<u64>(), m.completed);
    assert_eq!(r.agents.iter().map(|a| a.section.e2e_latency.count).sum::<u64>(), m.completed);
    assert_eq!(r.agents.iter().map(|a| a.concurrency).sum::<u64>(), r.profile.in_flight());
    // Activities counted where they ran add up to at least tasks x completed.
    assert!(m.activities >= m.completed * tasks, "{m:?}");
    // Percentiles are ordered and the end-to-end latency is at least the
    // activity delay (every task sleeps that long).
    let l = &r.merged.e2e_latency;
    assert!(l.p50_us <= l.p90_us && l.p90_us <= l.p99_us && l.p99_us <= l.p999_us && l.p999_us <= l.max_us, "{l:?}");
    assert!(l.min_us as u128 >= delay.as_micros(), "{l:?}");
    assert!(r.merged.observed_latency.p50_us >= l.p50_us);
    assert!(r.merged.orch_per_sec > 0.0 && r.merged.activities_per_sec > 0.0);
    // The correctness audit: every launched instance completed exactly once,
    // with the scenario's output, nothing queued, every activity in the history.
    let a = &r.audit;
    assert!(a.passed(), "{:?}", a.problems);
    assert_eq!((a.instances, a.terminal_once, a.completed), (m.launched, m.launched, m.launched));
    assert_eq!((a.not_terminal, a.anomalies, a.wrong_output, a.queued), (0, 0, 0, 0));
    assert_eq!(a.as_expected, m.launched, "every instance as its scenario expects");
    assert_eq!(a.activity_completions, m.completed * tasks);
    assert_eq!(a.expected_activity_completions, a.activity_completions);
    assert_eq!(a.redeliveries, m.activities - a.activity_completions);
    assert!(r.db_load.commits > 0 && r.db_load.completion_queries > 0);
    assert!(r.passed, "{:?}", r.gates);
}

/// A standalone agent process on a free loopback port (killed on drop).
pub struct AgentProcess {
    pub child: std::process::Child,
    pub address: String,
}

impl Drop for AgentProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Start `agent --listen 127.0.0.1:0` against `database_url` with `extra` flags
/// and wait (bounded) for its address.
pub fn spawn_agent(database_url: &str, extra: &[&str]) -> AgentProcess {
    spawn_agent_logging(database_url, extra, None)
}

/// Like [`spawn_agent`], with the agent's log written to `log`.
pub fn spawn_agent_logging(database_url: &str, extra: &[&str], log: Option<&Path>) -> AgentProcess {
    spawn_agent_at("127.0.0.1:0", database_url, extra, log)
}

/// A free loopback port (free when this returns; the caller binds it soon).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

/// Start an agent listening on `listen`.
pub fn spawn_agent_at(listen: &str, database_url: &str, extra: &[&str], log: Option<&Path>) -> AgentProcess {
    spawn_agent_with(listen, database_url, extra, log, &[])
}

/// Start an agent listening on `listen` with `env` added to its environment.
pub fn spawn_agent_with(
    listen: &str,
    database_url: &str,
    extra: &[&str],
    log: Option<&Path>,
    env: &[(&str, &str)],
) -> AgentProcess {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;
    let bin = agent_bin();
    let mut child = Command::new(&bin)
        .args(["--listen", listen, "--log", "info"])
        .args(extra)
        .envs(env.iter().copied())
        .env("DATABASE_URL", database_url)
        .env("LOADGEN_TOKEN", TEST_TOKEN)
        .env_remove("DUROXIDE_PG_POOL_MAX")
        .stdout(Stdio::piped())
        .stderr(match log {
            Some(path) => Stdio::from(std::fs::File::create(path).expect("agent log file")),
            None => Stdio::null(),
        })
        .spawn()
        .unwrap_or_else(|e| panic!("start {}: {e} (build the workspace first)", bin.display()));
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut lines = BufReader::new(stdout).lines();
        if let Some(Ok(line)) = lines.next() {
            let _ = tx.send(line);
        }
        for _ in lines {}
    });
    let line = rx.recv_timeout(std::time::Duration::from_secs(30)).expect("agent prints its address");
    let address = line.strip_prefix("listening on ").expect("listen line").to_string();
    AgentProcess { child, address }
}

/// The opt-out for tests that need root (network namespaces, chroot): set
/// to 1 on a machine where they cannot run. CI never sets it.
pub const SKIP_ROOT_TESTS: &str = "LOADGEN_SKIP_ROOT_TESTS";

/// True when this test may go on: running as root. Without root the test
/// fails saying why, unless the documented opt-out is set, in which case it
/// says it was skipped (and returns false) — never a silent pass.
pub fn needs_root(test: &str, why: &str) -> bool {
    let root = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("Uid:")).map(|l| l.split_whitespace().nth(1) == Some("0")))
        .unwrap_or(false);
    if root {
        return true;
    }
    if std::env::var(SKIP_ROOT_TESTS).is_ok_and(|v| v == "1") {
        eprintln!("SKIPPED {test}: needs root to {why}; {SKIP_ROOT_TESTS}=1 is set");
        return false;
    }
    panic!(
        "{test} needs root to {why}: run the suite as root (as .ci/run does), or set {SKIP_ROOT_TESTS}=1 to skip it knowingly"
    );
}

/// duroxide 0.1.32's in-memory SQLite store now and then consumes a start
/// without ever creating its instance (nothing queued, no instance row; seen
/// in about 1 of 10-20 short runs at 2:2 and 4:4, and under duroxide's own
/// stress module too: see docs/providers.md). True when that, and nothing
/// else, failed `r`, and the tool failed the run for it: then a test of
/// something else may run once more, saying so.
pub fn sqlite_lost_a_start(r: &RunReport) -> bool {
    let a = &r.audit;
    let c = &r.merged.counts;
    r.provider.in_agent()
        && !r.passed
        && a.queued == 0
        && a.orphaned == 0
        && a.problems.len() == 1
        && a.problems[0] == format!("{} launched instance(s) missing from the schema", c.unfinished)
        && c.unfinished > 0
        && c.failed() == 0
        && c.start_errors == 0
        && c.completed + c.unfinished == c.launched
}

/// duroxide 0.1.32's runtime retries a failed ack five times within about
/// 0.3 s, then fails the orchestration; two runtimes on one SQLite file meet
/// "database is locked" at once now and then, so an instance fails with an
/// infrastructure error (seen in CI beside other tests: 1 of 40, see
/// docs/providers.md). True when that, and nothing else, failed `r`, each
/// such instance named by the audit with the store's error: then a test of
/// something else may run once more, saying so.
pub fn sqlite_file_gave_up_an_ack(r: &RunReport) -> bool {
    let c = &r.merged.counts;
    r.provider == loadgen_coordinator::plan::ProviderKind::SqliteFile
        && !r.passed
        && c.failed_infrastructure > 0
        && c.failed() == c.failed_infrastructure
        && c.start_errors == 0
        && c.unfinished == 0
        && r.audit.unexpected_failures == c.failed_infrastructure
        && !r.audit.mismatches.is_empty()
        && r.audit.mismatches.iter().all(|m| {
            m.problems
                .first()
                .is_some_and(|p| p.starts_with("status Failed with \"infrastructure:") && p.contains("Database locked"))
        })
}

/// A bench's problems (its JSON `problems`) that are only that store
/// defect: a run of this tool (or a ceiling step) whose audit found launched
/// instances missing, or the stress module's instances that never finished.
pub fn bench_lost_a_start(problems: &[String]) -> bool {
    !problems.is_empty()
        && problems.iter().all(|p| {
            p.contains(" launched instance(s) missing from the schema")
                || p.ends_with(" orchestrations failed or did not finish")
        })
}

/// Every file under `dir` (recursively), as (path, lossy text).
pub fn all_text_under(dir: &Path) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("dir").flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push((
                    p.display().to_string(),
                    String::from_utf8_lossy(&std::fs::read(&p).unwrap_or_default()).into_owned(),
                ));
            }
        }
    }
    out
}

/// The lines `child` writes to its piped stderr, as they come (read on a
/// thread of their own, so the child never blocks on a full pipe).
pub fn stderr_lines(child: &mut std::process::Child) -> std::sync::mpsc::Receiver<String> {
    use std::io::{BufRead, BufReader};
    let stderr = child.stderr.take().expect("stderr piped");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    rx
}

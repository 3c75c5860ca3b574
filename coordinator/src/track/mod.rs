//! Results over time: `--track` appends each run to a per-database-host
//! markdown file and to a machine-readable history; before appending, the run
//! is compared with the previous comparable one (same profile and suite
//! combination, database host and cloud; other configuration changes are
//! listed beside the comparison), or with `--baseline FILE`. A throughput
//! drop over 20% or a p99 rise over 50% is a regression: a warning, or a
//! failed gate with `--fail-on-regression` (which also covers memory growth).

use std::fs::OpenOptions;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use crate::error::CoordinatorError;
use crate::model::{Comparison, Gate, RunReport, SuiteReport};
use crate::plan::Tracking;
use crate::report;

/// Throughput drop (percent) beyond which a run regressed.
pub const MAX_THROUGHPUT_DROP_PCT: f64 = 20.0;
/// p99 rise (percent) beyond which a run regressed.
pub const MAX_P99_RISE_PCT: f64 = 50.0;
/// Name of the history file under the results directory.
pub const HISTORY_FILE: &str = "history.jsonl";

fn out_err(path: &Path, e: impl std::fmt::Display) -> CoordinatorError {
    CoordinatorError::Output { path: path.display().to_string(), detail: e.to_string() }
}

/// Commit and branch of the working directory, when it is a git checkout.
pub fn git_info() -> (Option<String>, Option<String>) {
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .args(args)
            .stderr(std::process::Stdio::null())
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .filter(|s| !s.is_empty())
    };
    (git(&["rev-parse", "--short=12", "HEAD"]), git(&["rev-parse", "--abbrev-ref", "HEAD"]))
}

/// Compare `current` with `baseline`.
pub fn compare(current: &RunReport, baseline: &RunReport, against: String) -> Comparison {
    let change = |now: f64, before: f64| if before > 0.0 { (now - before) * 100.0 / before } else { 0.0 };
    let throughput_change_pct = change(current.merged.orch_per_sec, baseline.merged.orch_per_sec);
    let p99_change_pct =
        change(current.merged.headline_latency().p99_us as f64, baseline.merged.headline_latency().p99_us as f64);
    Comparison {
        against,
        baseline_orch_per_sec: baseline.merged.orch_per_sec,
        baseline_p99_us: baseline.merged.headline_latency().p99_us,
        throughput_change_pct,
        p99_change_pct,
        regressed: throughput_change_pct < -MAX_THROUGHPUT_DROP_PCT || p99_change_pct > MAX_P99_RISE_PCT,
        config_differences: current.config_differences(baseline),
    }
}

/// Every run in the history file (missing file: none). Lines that do not
/// parse (an older format, a torn write) are skipped with a warning.
pub fn read_history(dir: &Path) -> Result<Vec<RunReport>, CoordinatorError> {
    let path = dir.join(HISTORY_FILE);
    let file = match std::fs::File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(out_err(&path, e)),
    };
    let mut runs = Vec::new();
    for (n, line) in BufReader::new(file).lines().enumerate() {
        let line = line.map_err(|e| out_err(&path, e))?;
        match serde_json::from_str::<RunReport>(&line) {
            Ok(r) => runs.push(r),
            Err(e) => {
                tracing::warn!(file = %path.display(), line = n + 1, error = %e, "skipping unreadable history line")
            }
        }
    }
    Ok(runs)
}

/// The runs of a `--json` result file (a single run or a suite).
pub fn read_result_file(path: &Path) -> Result<Vec<RunReport>, CoordinatorError> {
    let text = std::fs::read_to_string(path).map_err(|e| CoordinatorError::Baseline {
        path: path.display().to_string(),
        detail: format!("cannot read baseline {}: {e}", path.display()),
    })?;
    if let Ok(r) = serde_json::from_str::<RunReport>(&text) {
        return Ok(vec![r]);
    }
    serde_json::from_str::<SuiteReport>(&text).map(|s| s.runs).map_err(|e| CoordinatorError::Baseline {
        path: path.display().to_string(),
        detail: format!("baseline {} is not a result file: {e}", path.display()),
    })
}

/// Markdown results file of a database host.
pub fn markdown_path(dir: &Path, report: &RunReport) -> PathBuf {
    let suffix = if report.environment.cloud { "-cloud" } else { "" };
    dir.join(format!("{}{suffix}.md", report.environment.db_host))
}

fn append(dir: &Path, report: &RunReport) -> Result<(), CoordinatorError> {
    std::fs::create_dir_all(dir).map_err(|e| out_err(dir, e))?;
    let history = dir.join(HISTORY_FILE);
    // The history keeps summaries: the per-second series and database samples
    // (the bulk of a long run's JSON) stay in --json and --report.
    let mut summary = report.clone();
    summary.timeline = Default::default();
    summary.db_timeline.clear();
    summary.spectrum.clear();
    for a in &mut summary.agents {
        a.memory.samples.clear();
    }
    let line = serde_json::to_string(&summary).map_err(|e| out_err(&history, e))?;
    let mut f = OpenOptions::new().create(true).append(true).open(&history).map_err(|e| out_err(&history, e))?;
    writeln!(f, "{line}").map_err(|e| out_err(&history, e))?;
    let md = markdown_path(dir, report);
    let new = !md.exists();
    let mut f = OpenOptions::new().create(true).append(true).open(&md).map_err(|e| out_err(&md, e))?;
    if new {
        writeln!(f, "# Load generator results: {}\n", report.environment.db_host).map_err(|e| out_err(&md, e))?;
    }
    report::markdown::run(report, &mut f).map_err(|e| out_err(&md, e))
}

/// Compare, turn should-gates into warnings or failures, and append tracked
/// runs. Called once after all runs of an invocation.
pub fn finish(t: &Tracking, runs: &mut [RunReport]) -> Result<(), CoordinatorError> {
    let (commit, branch) = git_info();
    let tracking = t.track;
    let baseline = match &t.baseline {
        Some(path) => Some((read_result_file(path)?, path.display().to_string())),
        None => None,
    };
    let history = if tracking && baseline.is_none() { read_history(&t.results_dir)? } else { Vec::new() };
    for report in runs.iter_mut() {
        report.environment.commit = commit.clone();
        report.environment.branch = branch.clone();
        let key = report.comparable_key();
        let previous = match &baseline {
            Some((runs, file)) => runs
                .iter()
                .find(|r| r.comparable_key() == key)
                .or_else(|| {
                    runs.iter().find(|r| r.profile.dispatchers.to_string() == report.profile.dispatchers.to_string())
                })
                .or(runs.first())
                .map(|r| (r, format!("baseline {file} (run {})", r.run_id))),
            None => history.iter().rev().find(|r| r.comparable_key() == key).map(|r| {
                let at = r.environment.commit.as_deref().unwrap_or("no commit");
                (r, format!("tracked run {} of {} ({at})", r.run_id, r.started_at))
            }),
        };
        if let Some((base, against)) = previous {
            let c = compare(report, base, against);
            if c.regressed {
                let differs = if c.config_differences.is_empty() {
                    String::new()
                } else {
                    format!("; configuration differs: {}", c.config_differences.join(", "))
                };
                report.warnings.push(format!(
                    "regression against {}: throughput {:+.1}% (limit -{MAX_THROUGHPUT_DROP_PCT}%), p99 {:+.1}% (limit +{MAX_P99_RISE_PCT}%){differs}",
                    c.against, c.throughput_change_pct, c.p99_change_pct
                ));
            }
            report.comparison = Some(c);
        }
        if t.fail_on_regression && !report.warnings.is_empty() {
            report.gates.push(Gate {
                name: "should-gates (--fail-on-regression)".into(),
                limit: "no regression, no excessive memory growth".into(),
                value: report.warnings.join("; "),
                passed: false,
            });
            report.passed = false;
        }
        if tracking {
            append(&t.results_dir, report)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Audit, DbLoad, Environment, LatencySummary, Section};
    use crate::plan::profile::find_profile;

    fn report(orch_per_sec: f64, p99_us: u64) -> RunReport {
        RunReport {
            tool_version: "0".into(),
            run_id: "r".into(),
            schema: "s".into(),
            started_at: "t".into(),
            database: "d".into(),
            duroxide_version: "x".into(),
            duroxide_pg_version: "y".into(),
            profile: crate::plan::ProfilePlan::resolve(find_profile("standard").expect("standard")).expect("resolves"),
            agents: Vec::new(),
            merged: Section {
                orch_per_sec,
                e2e_latency: LatencySummary { p99_us, ..Default::default() },
                ..Default::default()
            },
            audit: Audit::default(),
            db_load: DbLoad::default(),
            gates: Vec::new(),
            passed: true,
            warnings: Vec::new(),
            comparison: None,
            environment: Environment { db_host: "h".into(), ..Default::default() },
            lost_agents: Vec::new(),
            provider_errors: Default::default(),
            ..Default::default()
        }
    }

    #[test]
    fn regressions_are_throughput_drops_over_20_or_p99_rises_over_50_percent() {
        let base = report(100.0, 200_000);
        let c = |orch, p99| compare(&report(orch, p99), &base, "b".into());
        assert!(!c(85.0, 280_000).regressed);
        assert!(c(79.0, 200_000).regressed);
        assert!(c(100.0, 310_000).regressed);
        let x = c(90.0, 250_000);
        assert!((x.throughput_change_pct + 10.0).abs() < 1e-9 && (x.p99_change_pct - 25.0).abs() < 1e-9);
        assert!(x.config_differences.is_empty());
        // A slower configuration of the same profile is compared, and says how it differs.
        let mut slower = report(50.0, 200_000);
        slower.profile.dispatchers = crate::plan::resolved::Dispatchers { orch: 1, worker: 1 };
        assert_eq!(slower.comparable_key(), base.comparable_key());
        let c = compare(&slower, &base, "b".into());
        assert!(c.regressed);
        assert_eq!(c.config_differences, ["dispatchers 2:2 -> 1:1"]);
    }

    #[test]
    fn history_round_trips_and_skips_bad_lines() {
        let dir = tempfile::tempdir().expect("tmp");
        append(dir.path(), &report(50.0, 1000)).expect("append");
        std::fs::OpenOptions::new()
            .append(true)
            .open(dir.path().join(HISTORY_FILE))
            .and_then(|mut f| writeln!(f, "not json"))
            .expect("garbage");
        append(dir.path(), &report(60.0, 1000)).expect("append");
        let runs = read_history(dir.path()).expect("read");
        assert_eq!(runs.iter().map(|r| r.merged.orch_per_sec).collect::<Vec<_>>(), [50.0, 60.0]);
        let md = std::fs::read_to_string(dir.path().join("h.md")).expect("markdown");
        assert_eq!(md.matches("# Load generator results: h").count(), 1);
        assert_eq!(md.matches("\n## ").count(), 2, "{md}");
        assert!(read_history(&dir.path().join("none")).expect("missing is empty").is_empty());
    }
}

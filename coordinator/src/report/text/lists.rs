//! Text listings: the profiles, the scenarios, a suite's comparison table
//! and an audit on its own.

use std::io::{self, Write};

use loadgen_common::units::format_duration;
use loadgen_scenarios::REGISTRY;

use crate::model::{Audit, RunReport};
use crate::plan::ProfilePlan;
use crate::report::view::fmt_ms;

/// The workload of a profile in a few words.
fn workload(p: &ProfilePlan) -> String {
    if let Some(weights) = p.options.get("weights").filter(|_| p.scenario == "mixed") {
        return format!("mix of {} scenarios", weights.split(',').count());
    }
    let mut text = p.scenario.clone();
    for (k, v) in &p.options {
        text.push_str(&format!(" {k}={v}"));
    }
    if text.chars().count() > 34 {
        text = text.chars().take(31).collect::<String>() + "...";
    }
    text
}

/// The profiles and their gates, as `coordinator profiles` lists them.
pub fn profiles(profiles: &[ProfilePlan], w: &mut dyn Write) -> io::Result<()> {
    writeln!(
        w,
        "{:<17} {:>7} {:>8} {:<34} {:<14} {:>3} {:>4} {:>6}  {:<48} description",
        "profile", "in-flt", "duration", "workload", "dispatchers", "rt", "pool", "db-lat", "gates"
    )?;
    for p in profiles {
        let dispatchers = if p.suite.is_empty() { p.dispatchers.to_string() } else { p.suite.join(",") };
        let g = &p.gates;
        let mut gates = vec![format!(">={} orch/s", g.min_orch_per_sec)];
        if let Some(v) = g.p99_ms {
            gates.push(format!("p99<={v}ms"));
        }
        gates.push(match g.max_failed {
            Some(n) if n > 0 => format!("failed<={n}"),
            _ => "100% success".into(),
        });
        if p.open_loop() {
            gates.push("no dropped starts".into());
        }
        if p.faults > 0 {
            gates.push("every fault applied".into());
        }
        if let Some(v) = g.rss_growth_mb_per_min {
            gates.push(format!("warn RSS>{v}MB/min"));
        }
        let load = match p.load.arrival() {
            Some(_) if p.load.staged => "open".to_string(),
            Some(_) => loadgen_common::units::format_rate(p.load.peak()),
            None => p.in_flight().to_string(),
        };
        writeln!(
            w,
            "{:<17} {:>7} {:>8} {:<34} {:<14} {:>3} {:>4} {:>6}  {:<48} {}",
            p.name,
            load,
            format_duration(p.duration),
            workload(p),
            dispatchers,
            p.runtimes_per_agent,
            p.pool_max.map_or("-".into(), |n| n.to_string()),
            if p.db_latency.is_zero() { "-".into() } else { format_duration(p.db_latency) },
            gates.join(", "),
            p.description
        )?;
    }
    writeln!(
        w,
        "\nAll profiles also gate on 0 infrastructure, configuration and poison failures, 0 start errors and the per-instance audit."
    )?;
    writeln!(w, "Run one with `coordinator --local 2 --profile NAME`; see the workloads with `coordinator scenarios`.")
}

/// Every scenario: what it stresses, its options and their defaults.
pub fn scenarios(w: &mut dyn Write) -> io::Result<()> {
    for e in REGISTRY {
        let i = &e.info;
        writeln!(w, "{}", i.name)?;
        writeln!(w, "  stresses: {}", i.stresses)?;
        let width = i.options.iter().map(|o| o.key.len() + o.default.len() + 1).max().unwrap_or(0);
        for o in i.options {
            writeln!(w, "  --set {:<width$}  {}", format!("{}={}", o.key, o.default), o.help)?;
        }
        if !i.history_metrics.is_empty() {
            let names: Vec<&str> = i.history_metrics.iter().map(|m| m.name).collect();
            writeln!(w, "  reports: {}", names.join(", "))?;
        }
        writeln!(w)?;
    }
    writeln!(
        w,
        "Run one with `coordinator --local 2 --scenario NAME [--set key=value ...]`; every instance is audited against what its scenario expects."
    )
}

/// The comparison table of a suite: one row per run, then the overall verdict.
pub fn suite(profile: &str, runs: &[RunReport], w: &mut dyn Write) -> io::Result<()> {
    writeln!(w)?;
    writeln!(w, "Suite {profile}: one run per dispatcher combination, each on a fresh schema")?;
    writeln!(
        w,
        "{:<12} {:<8} {:>9} {:>6} {:>5} {:>6} {:>5} {:>9} {:>9} {:>12} {:>9} {:>9}",
        "Provider",
        "Config",
        "Completed",
        "Failed",
        "Infra",
        "Config",
        "App",
        "Success %",
        "Orch/sec",
        "Activity/sec",
        "p50",
        "p99"
    )?;
    for r in runs {
        let c = &r.merged.counts;
        let l = r.merged.headline_latency();
        writeln!(
            w,
            "{:<12} {:<8} {:>9} {:>6} {:>5} {:>6} {:>5} {:>9.2} {:>9.2} {:>12.2} {:>9} {:>9}",
            "duroxide-pg",
            r.profile.dispatchers.to_string(),
            c.completed,
            c.failed(),
            c.failed_infrastructure,
            c.failed_configuration,
            c.failed_application,
            c.success_pct(),
            r.merged.orch_per_sec,
            r.merged.activities_per_sec,
            fmt_ms(l.p50_us),
            fmt_ms(l.p99_us)
        )?;
    }
    if let Some(r) = runs.first() {
        writeln!(w, "(latencies {})", r.merged.headline_definition())?;
    }
    let failed: Vec<String> = runs.iter().filter(|r| !r.passed).map(|r| r.profile.dispatchers.to_string()).collect();
    if failed.is_empty() {
        writeln!(w, "Suite gates: PASSED (every run passed its gates)")
    } else {
        writeln!(w, "Suite gates: FAILED in {}", failed.join(", "))
    }
}

/// A correctness audit on its own (`coordinator audit`).
pub fn audit(schema: &str, a: &Audit, w: &mut dyn Write) -> io::Result<()> {
    writeln!(w, "Audit of schema {schema}: {}", if a.passed() { "PASSED" } else { "FAILED" })?;
    writeln!(
        w,
        "  instances {} (launched {}), terminal {}, completed {}, failed {}, not terminal {}, as expected {}, differing {}, failed unexpectedly {}",
        a.instances,
        if a.launched > 0 { a.launched.to_string() } else { "unknown".into() },
        a.terminal_once,
        a.completed,
        a.failed,
        a.not_terminal,
        a.as_expected,
        a.anomalies,
        a.unexpected_failures
    )?;
    writeln!(
        w,
        "  unexpected outputs {}, queued messages {}, activity completions {} (expected {}), executed {}, redeliveries {}",
        a.wrong_output,
        a.queued,
        a.activity_completions,
        a.expected_activity_completions,
        a.activities_executed,
        a.redeliveries
    )?;
    for (name, s) in &a.by_scenario {
        writeln!(w, "  {name}: {} instance(s), {} as expected, {} differ", s.instances, s.as_expected, s.mismatched)?;
    }
    for m in &a.mismatches {
        writeln!(w, "  [differs] {} ({}): {}", m.instance, m.scenario, m.problems.join("; "))?;
    }
    for d in &a.duplicates {
        writeln!(w, "  [twice] {}", d.line())?;
    }
    for p in &a.problems {
        writeln!(w, "  [FAIL] {p}")?;
    }
    for n in &a.notes {
        writeln!(w, "  [note] {n}")?;
    }
    Ok(())
}

/// What `coordinator cleanup` found, and dropped.
pub fn cleanup(c: &crate::db::cleanup::CleanupReport, w: &mut dyn Write) -> io::Result<()> {
    if c.database.is_empty() {
        return servers(c, w);
    }
    writeln!(w, "loadgen schemas in {}: {}", c.database, c.schemas.len())?;
    if !c.schemas.is_empty() {
        writeln!(
            w,
            "{:<28} {:<10} {:<12} {:<18} {:>10} {:>9} {:>10}  state",
            "schema", "run", "profile", "scenario", "age", "instances", "size"
        )?;
    }
    for s in &c.schemas {
        let age = s.age_s.map_or("?".to_string(), |a| {
            loadgen_common::units::format_duration(std::time::Duration::from_secs(a as u64))
        });
        let state = match (s.dropped, s.selected, s.active) {
            (true, _, _) => "dropped",
            (false, true, true) if c.applied => "chosen, in use: kept",
            (false, true, true) => "chosen, in use: kept (add --force --yes to drop it)",
            (false, true, false) if c.applied => "chosen, not dropped",
            (false, true, false) => "would be dropped (add --yes)",
            (false, false, true) => "in use",
            _ => "",
        };
        writeln!(
            w,
            "{:<28} {:<10} {:<12} {:<18} {:>10} {:>9} {:>10}  {state}",
            s.schema,
            s.run_id.as_deref().unwrap_or("-"),
            s.profile.as_deref().unwrap_or("-"),
            s.scenario.as_deref().unwrap_or("-"),
            age,
            s.instances,
            loadgen_common::units::format_bytes(s.bytes)
        )?;
    }
    for p in &c.problems {
        writeln!(w, "  [FAIL] {p}")?;
    }
    let chosen = c.schemas.iter().filter(|s| s.selected).count();
    let dropped = c.schemas.iter().filter(|s| s.dropped).count();
    if c.applied {
        writeln!(w, "Dropped {dropped} of {chosen} chosen schema(s).")
    } else if chosen > 0 {
        writeln!(w, "{chosen} schema(s) chosen; nothing dropped without --yes.")
    } else {
        writeln!(w, "Choose schemas to drop with --older-than D, --run ID or --all, then add --yes.")
    }
}

/// What `coordinator cleanup --servers` found, and removed.
fn servers(c: &crate::db::cleanup::CleanupReport, w: &mut dyn Write) -> io::Result<()> {
    writeln!(w, "throwaway servers on this machine: {}", c.servers.len())?;
    for s in &c.servers {
        let owner = s.owner_pid.map_or("coordinator unknown".to_string(), |p| format!("coordinator {p}"));
        let state = match (s.removed, s.in_use) {
            (true, _) => "stopped and removed",
            (false, true) => "in use (its coordinator runs): kept",
            (false, false) if c.applied => "left, not removed",
            (false, false) => "left by a coordinator that is gone: would be removed (add --yes)",
        };
        writeln!(
            w,
            "  {} ({}, {owner}, {} process(es), {}): {state}",
            s.dir,
            s.kind,
            s.processes,
            loadgen_common::units::format_bytes(s.bytes)
        )?;
    }
    for p in &c.problems {
        writeln!(w, "  [FAIL] {p}")?;
    }
    let left = c.servers.iter().filter(|s| !s.in_use).count();
    let removed = c.servers.iter().filter(|s| s.removed).count();
    if c.applied {
        writeln!(w, "Removed {removed} of {left} left server(s).")
    } else if left > 0 {
        writeln!(w, "{left} left server(s); nothing removed without --yes.")
    } else {
        writeln!(w, "Nothing left behind.")
    }
}

/// Every fault kind: what it does, whether it lasts, its fields.
pub fn faults(w: &mut dyn Write) -> io::Result<()> {
    use crate::faults::{KINDS, Lasting};
    for k in KINDS {
        writeln!(w, "{}", k.name)?;
        writeln!(w, "  {}", k.about)?;
        let lasts = match k.lasting {
            Lasting::Instant => "instantaneous (no duration)",
            Lasting::Required => "lasts `duration` (required, at most 60s)",
            Lasting::Optional => "may last `duration` (optional, at most 60s)",
        };
        writeln!(w, "  {lasts}")?;
        let width = k.fields.iter().map(|(f, _)| f.len()).max().unwrap_or(0);
        for (field, meaning) in k.fields {
            writeln!(w, "  {field:<width$}  {meaning}")?;
        }
        writeln!(w)?;
    }
    writeln!(
        w,
        "Schedule them in a TOML file of [[fault]] tables (kind, at, duration and the fields above) and run with `coordinator --local 2 --faults FILE`; see docs/faults.md."
    )
}

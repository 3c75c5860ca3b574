//! The console renderer: what happens during a command, on stderr, as it
//! happens (the run's notices). Progress is a table redrawn in place on a
//! terminal, one line a second otherwise.

use std::io::Write;
use std::sync::Mutex;

use crate::model::live::{Frame, FrameRow};
use crate::model::{DbSample, TimePoint};
use crate::notice::{Notice, Observer};

use super::view::fmt_ms;

/// Prints notices to stderr.
#[derive(Debug)]
pub struct Console {
    table: bool,
    /// Lines of the table drawn last (0: draw below whatever came before).
    drawn: Mutex<usize>,
}

impl Console {
    /// `table`: redraw a table in place (a terminal) rather than a line a second.
    pub fn new(table: bool) -> Self {
        Console { table, drawn: Mutex::new(0) }
    }

    fn print(&self, text: &str) {
        // Something else is printed: the next table goes below it.
        *self.drawn.lock().unwrap_or_else(|p| p.into_inner()) = 0;
        // A closed stderr (a pager quit early) must not end the run.
        let _ = writeln!(std::io::stderr().lock(), "{text}");
    }

    fn draw(&self, f: &Frame<'_>) {
        if !self.table {
            let _ = writeln!(std::io::stderr().lock(), "{}", line(f));
            return;
        }
        let text = table(f);
        let mut drawn = self.drawn.lock().unwrap_or_else(|p| p.into_inner());
        // Back to the table's first line, clear to the end, redraw.
        let up = if *drawn > 0 { format!("\x1b[{}F\x1b[J", *drawn) } else { String::new() };
        let mut err = std::io::stderr().lock();
        let _ = writeln!(err, "{up}{text}");
        *drawn = text.lines().count();
    }
}

impl Observer for Console {
    fn notice(&self, n: &Notice<'_>) {
        match n {
            Notice::DatabaseStarted { description } => {
                // "--ha: started an HA cluster on ...", or the embedded default's line.
                let text = match description.strip_prefix("HA ") {
                    Some(rest) => format!("--ha: started an HA {rest} (removed at exit)"),
                    None => format!("no --database-url given: started a {description} (removed at exit)"),
                };
                self.print(&text)
            }
            Notice::WaitingForAgents { elapsed_s, timeout, status } => {
                self.print(&format!("waiting for agents ({elapsed_s:.0}s of {timeout}): {status}"))
            }
            Notice::AgentsReady { elapsed_s, addresses } => self.print(&format!(
                "{} agent(s) answered after {elapsed_s:.1}s: {}",
                addresses.len(),
                addresses.join(", ")
            )),
            Notice::RunStarting { run_id, schema, agents, load, n, of, label, .. } => {
                if *of > 1 {
                    self.print(&format!("\n=== {label} ({n} of {of}) ==="));
                } else if *of == 0 && !label.is_empty() {
                    // Open-ended (a hunt): the label says which.
                    self.print(&format!("\n=== {label} ==="));
                }
                self.print(&format!("run {run_id} on {schema}: {agents} agent(s), {load}"));
            }
            Notice::Live(f) => self.draw(f),
            Notice::AgentLost { index, address, at_s, reason, stopping_others } => {
                self.print(&format!("agent {index} ({address}) lost after {at_s:.1}s: {reason}"));
                if *stopping_others {
                    self.print("--on-agent-loss abort: stopping the other agents (they drain and report)");
                }
            }
            Notice::WaitingForOrphans { open } => self.print(&format!(
                "waiting for {open} orchestration(s) of lost agents to be finished by the other runtimes..."
            )),
            Notice::Wrote { what, path } => self.print(&format!("{what}: {path}")),
            Notice::Warning(text) => self.print(&format!("warning: {text}")),
            Notice::Note(text) => self.print(text),
            Notice::FaultBegan { kind, target, at_s } => {
                self.print(&format!("fault: {kind} on {target} at {at_s:.1}s"))
            }
            Notice::FaultEnded { .. } | Notice::RunEnded(_) => {}
        }
    }
}

/// The one-line status: elapsed, completed, orch/s, p99 so far, in flight,
/// agents alive, and the database's commits.
pub fn line(f: &Frame<'_>) -> String {
    let rate = if f.elapsed_s > 0.0 { f.total.completed as f64 / f.elapsed_s } else { 0.0 };
    let mut line = format!(
        "[{:>5.1}s] completed {:>6}  failed {:>3}  {:>7.1} orch/s  p99 {:>8}  in flight {:>4}  agents {}/{}",
        f.elapsed_s,
        f.total.completed,
        f.total.failed() + f.total.start_errors,
        rate,
        fmt_ms(f.p99_us),
        f.in_flight,
        f.rows.iter().filter(|r| r.alive).count(),
        f.rows.len()
    );
    line.push_str(&offered(f));
    if let Some(d) = f.db {
        line.push_str(&format!(
            "  db {:.0} commits/s{}",
            d.commits_per_sec,
            if d.deadlocks > 0 { format!(" {} deadlock(s)", d.deadlocks) } else { String::new() }
        ));
    }
    line
}

fn row(name: &str, completed: u64, failed: u64, last: Option<&TimePoint>, in_flight: u64, late: u64) -> String {
    let ms = |v: f64| if v > 0.0 { fmt_ms((v * 1000.0) as u64) } else { "-".into() };
    let (rate, p50, p99, max) = last.map_or((0.0, 0.0, 0.0, 0.0), |p| (p.orch_per_sec, p.p50_ms, p.p99_ms, p.max_ms));
    format!(
        "         {:<10} {:>9} {:>6} {:>8.1} {:>9} {:>9} {:>9} {:>6} {:>7}\n",
        name,
        completed,
        failed,
        rate,
        ms(p50),
        ms(p99),
        ms(max),
        in_flight,
        late
    )
}

/// Rows of agents shown in the live table; more are summed into one row.
const LIVE_ROWS: usize = 12;

/// The agents the live table names: all of them when they fit, else the lost
/// ones and then the slowest (highest p99 in their last second), in index
/// order, so a table of a thousand agents still fits a screen and shows the
/// ones worth looking at.
fn shown_rows(rows: &[FrameRow]) -> impl Iterator<Item = &FrameRow> {
    let mut picked: Vec<&FrameRow> = rows.iter().collect();
    if rows.len() > LIVE_ROWS {
        let p99 = |r: &FrameRow| r.last.as_ref().map_or(0.0, |p| p.p99_ms);
        picked.sort_by(|a, b| a.alive.cmp(&b.alive).then(p99(b).total_cmp(&p99(a))));
        picked.truncate(LIVE_ROWS);
        picked.sort_by_key(|r| r.index);
    }
    picked.into_iter()
}

/// The compact live table: one row per agent (the last second's throughput
/// and latency, totals so far) and the merged row, then the database.
pub fn table(f: &Frame<'_>) -> String {
    let mut out = format!(
        "[{:>5.1}s] {:<10} {:>9} {:>6} {:>8} {:>9} {:>9} {:>9} {:>6} {:>7}\n",
        f.elapsed_s, "agent", "completed", "failed", "orch/s", "p50", "p99", "max", "flight", "late+dr"
    );
    let agent_row = |r: &FrameRow| {
        let name = if r.alive { format!("{}", r.index) } else { format!("{} LOST", r.index) };
        let c = &r.counts;
        row(&name, c.completed, c.failed() + c.start_errors, r.last.as_ref(), r.in_flight, c.late + c.dropped)
    };
    let shown: Vec<&FrameRow> = shown_rows(&f.rows).collect();
    for r in &shown {
        out.push_str(&agent_row(r));
    }
    if f.rows.len() > LIVE_ROWS {
        let named: std::collections::HashSet<usize> = shown.iter().map(|r| r.index).collect();
        let rest: Vec<&FrameRow> = f.rows.iter().filter(|r| !named.contains(&r.index)).collect();
        let mut c = loadgen_common::tally::Counts::default();
        for r in &rest {
            c.add(&r.counts);
        }
        let in_flight = rest.iter().map(|r| r.in_flight).sum();
        let name = format!("{} others", rest.len());
        out.push_str(&row(&name, c.completed, c.failed() + c.start_errors, None, in_flight, c.late + c.dropped));
    }
    let t = &f.total;
    out.push_str(&row(
        "merged",
        t.completed,
        t.failed() + t.start_errors,
        f.merged_last.as_ref(),
        f.in_flight,
        t.late + t.dropped,
    ));
    out.push_str(&db_line(f.db));
    out.push_str(&offered(f));
    out
}

/// What the stages offer now, when the load is staged.
fn offered(f: &Frame<'_>) -> String {
    match f.offered {
        Some((v, true)) => format!("  offered {v:.1}/s"),
        Some((v, false)) => format!("  target {v:.0} in flight"),
        None => String::new(),
    }
}

fn db_line(db: Option<&DbSample>) -> String {
    match db {
        Some(d) => format!(
            "         db: {:.0} commits/s, {:.1} rollbacks/s, {} deadlock(s), {} lock wait(s) ({} advisory), {} connection(s), queues {}/{}/{}",
            d.commits_per_sec,
            d.rollbacks_per_sec,
            d.deadlocks,
            d.lock_waits,
            d.advisory_lock_waits,
            d.connections.values().sum::<u64>(),
            d.orchestrator_queue,
            d.worker_queue,
            d.timer_queue
        ),
        None => "         db: no sample yet".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Counts;
    use loadgen_common::histogram::LatencyHistogram;

    #[test]
    fn the_live_view_renders_a_line_and_a_table() {
        let point = TimePoint { orch_per_sec: 2.0, p50_ms: 250.0, p99_ms: 250.0, max_ms: 250.0, ..Default::default() };
        let counts = Counts { completed: 1, ..Default::default() };
        let rows = vec![
            FrameRow { index: 0, alive: true, counts: counts.clone(), last: Some(point.clone()), in_flight: 2 },
            FrameRow { index: 1, alive: false, counts: counts.clone(), last: None, in_flight: 2 },
        ];
        let db = DbSample { commits_per_sec: 512.0, deadlocks: 2, lock_waits: 3, ..Default::default() };
        let empty = LatencyHistogram::new();
        let f = Frame {
            elapsed_s: 1.0,
            rows,
            total: Counts { completed: 2, ..Default::default() },
            in_flight: 4,
            p99_us: 250_000,
            headline: &empty,
            observation: &empty,
            scenarios: Default::default(),
            provider_errors: Default::default(),
            merged_last: Some(point),
            db: Some(&db),
            offered: Some((60.0, true)),
            offered_now: Some((60.0, true)),
        };
        let l = line(&f);
        assert!(l.contains("completed      2") && l.contains("in flight    4") && l.contains("agents 1/2"), "{l}");
        assert!(l.contains("p99  250.0ms") && l.ends_with("db 512 commits/s 2 deadlock(s)"), "{l}");
        assert!(l.contains("agents 1/2  offered 60.0/s  db"), "{l}");
        let t = table(&f);
        let rows: Vec<&str> = t.lines().collect();
        assert_eq!(rows.len(), 5, "{t}");
        assert!(rows[1].trim_start().starts_with('0') && rows[2].contains("1 LOST"), "{t}");
        assert!(rows[3].trim_start().starts_with("merged") && rows[3].contains("250.0ms"), "{t}");
        assert!(rows[4].contains("512 commits/s") && rows[4].contains("3 lock wait(s)"), "{t}");
    }

    #[test]
    fn a_thousand_agents_fit_a_screen_with_the_slowest_named() {
        let rows: Vec<FrameRow> = (0..1000)
            .map(|i| FrameRow {
                index: i,
                alive: i != 500,
                counts: Counts { completed: 10, ..Default::default() },
                last: Some(TimePoint { p99_ms: i as f64, ..Default::default() }),
                in_flight: 1,
            })
            .collect();
        let empty = LatencyHistogram::new();
        let f = Frame {
            elapsed_s: 1.0,
            rows,
            total: Counts { completed: 10_000, ..Default::default() },
            in_flight: 1000,
            p99_us: 1,
            headline: &empty,
            observation: &empty,
            scenarios: Default::default(),
            provider_errors: Default::default(),
            merged_last: None,
            db: None,
            offered: None,
            offered_now: None,
        };
        let t = table(&f);
        let lines: Vec<&str> = t.lines().collect();
        // Header, 12 named agents, the others summed, merged, database.
        assert_eq!(lines.len(), 1 + LIVE_ROWS + 3, "{t}");
        assert!(lines[1].contains("500 LOST"), "the lost agent comes first: {t}");
        assert!(lines[2].trim_start().starts_with("989") && lines[12].trim_start().starts_with("999"), "{t}");
        assert!(lines[13].contains("988 others") && lines[13].contains("9880"), "{t}");
    }
}

//! Where the provider spent the database's time during a run: its stored
//! procedures (`pg_stat_user_functions`), its statements
//! (`pg_stat_statements`), and how often its fetches came back empty, also
//! while the queue held ready work (the provider's fairness question).

use serde::{Deserialize, Serialize};

/// The run's database time by procedure and statement.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ProcedureReport {
    /// `pg_stat_user_functions` was counting (`track_functions` = pl or all).
    pub functions_tracked: bool,
    /// `pg_stat_statements` was loaded and readable.
    pub statements_tracked: bool,
    /// What to enable on the server for what is missing (one line each).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub advice: Vec<String>,
    /// The server's statistics went backwards during the run (a crash
    /// restart resets them): the figures cover the time after it only.
    #[serde(default)]
    pub reset: bool,
    /// The schema's functions with calls in the run, by total time.
    #[serde(default)]
    pub functions: Vec<FunctionRow>,
    /// The run's statements (those naming its schema), by total time.
    #[serde(default)]
    pub statements: Vec<StatementRow>,
    /// The provider's two dequeues.
    #[serde(default)]
    pub fetches: Vec<FetchRow>,
}

/// One stored procedure.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct FunctionRow {
    pub name: String,
    pub calls: u64,
    /// Time in the function including what it called.
    pub total_ms: f64,
    /// Time in the function itself.
    pub self_ms: f64,
    pub mean_ms: f64,
    /// Share of every listed function's self time.
    pub share_pct: f64,
}

/// One statement as `pg_stat_statements` normalised it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct StatementRow {
    /// The procedure it calls (`fetch_work_item`) or the statement's text
    /// with the schema written `<schema>`, cut to 160 characters.
    pub statement: String,
    /// The generator's own (completion tracking, sampling, audit), not the provider's.
    pub generator: bool,
    pub calls: u64,
    pub total_ms: f64,
    pub mean_ms: f64,
    pub rows: u64,
    /// Share of every listed statement's total time.
    pub share_pct: f64,
}

/// A dequeue and how often it found nothing.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct FetchRow {
    /// `fetch_orchestration_item` or `fetch_work_item`.
    pub procedure: String,
    pub calls: u64,
    /// Calls that returned no row.
    pub empty: u64,
    pub empty_pct: f64,
    /// Calls in the seconds whose queue (orchestrator or worker) held ready
    /// work (visible and unlocked messages) at both of their samples.
    pub calls_while_ready: u64,
    /// Of those, the empty ones: work was there, the fetch took none.
    pub empty_while_ready: u64,
    pub empty_while_ready_pct: f64,
    /// Seconds that held ready work at both samples.
    pub seconds_with_ready_work: u64,
}

impl FetchRow {
    /// Seconds with ready work at both samples below which the empty share
    /// "while ready" is not a measurement: the queue is sampled once a
    /// second, and ready work that comes and goes between samples is not seen.
    pub const MIN_READY_SECONDS: u64 = 3;

    /// True when the share of empty fetches while work was ready rests on
    /// enough seconds to mean something.
    pub fn ready_measured(&self) -> bool {
        self.seconds_with_ready_work >= Self::MIN_READY_SECONDS
    }

    /// "12.5% of 40 in the 6 s its queue held ready work", or why not measured.
    pub fn ready_phrase(&self) -> String {
        if self.ready_measured() {
            format!(
                "{:.1}% of {} in the {} s its queue held ready work",
                self.empty_while_ready_pct, self.calls_while_ready, self.seconds_with_ready_work
            )
        } else {
            format!(
                "while work was ready: not measured, its queue held ready work at two consecutive once-a-second samples in {} s (under {})",
                self.seconds_with_ready_work,
                Self::MIN_READY_SECONDS
            )
        }
    }
}

impl ProcedureReport {
    /// The function (or, without function statistics, the provider's
    /// statement) that took the most database time, with its share.
    pub fn dominant(&self) -> Option<(&str, f64)> {
        match self.functions.first() {
            Some(f) => Some((f.name.as_str(), f.share_pct)),
            None => self.statements.iter().find(|s| !s.generator).map(|s| (s.statement.as_str(), s.share_pct)),
        }
    }

    /// The fetch row of `procedure`.
    pub fn fetch(&self, procedure: &str) -> Option<&FetchRow> {
        self.fetches.iter().find(|f| f.procedure == procedure)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_share_while_ready_is_given_only_when_measured() {
        let row = |seconds| FetchRow {
            procedure: "fetch_orchestration_item".into(),
            calls: 787,
            empty: 285,
            empty_pct: 36.2,
            calls_while_ready: 40 * seconds,
            empty_while_ready: 5 * seconds,
            empty_while_ready_pct: 12.5,
            seconds_with_ready_work: seconds,
        };
        assert!(row(0).ready_phrase().starts_with("while work was ready: not measured"), "{}", row(0).ready_phrase());
        assert!(row(2).ready_phrase().contains("not measured"));
        assert_eq!(row(3).ready_phrase(), "12.5% of 120 in the 3 s its queue held ready work");
    }
}

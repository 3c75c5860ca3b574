//! What an instance must end as, for the per-instance audit: its terminal
//! outcome and output, how many executions it has, how many history events
//! of each type, and what its children must end as. Also the latencies a
//! scenario wants read back from the history ([`HistoryMetric`]).
//!
//! The audit reads every instance of a run from the database in a few
//! set-based queries and holds each against its [`Expect`]; [`Observed`] is
//! what it read, [`Expect::check`] says what differs.

use std::collections::BTreeMap;

/// What the history holds of one event type, over all executions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Count {
    Exactly(u64),
    AtLeast(u64),
    Between(u64, u64),
}

impl Count {
    pub fn holds(&self, n: u64) -> bool {
        match *self {
            Count::Exactly(x) => n == x,
            Count::AtLeast(x) => n >= x,
            Count::Between(a, b) => (a..=b).contains(&n),
        }
    }
}

impl std::fmt::Display for Count {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Count::Exactly(x) => write!(f, "{x}"),
            Count::AtLeast(x) => write!(f, "at least {x}"),
            Count::Between(a, b) => write!(f, "{a} to {b}"),
        }
    }
}

/// What a terminal instance's stored output must be.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output {
    Exact(String),
    Prefix(String),
    Any,
}

impl Output {
    /// True when the text in full meets this expectation.
    pub fn holds_text(&self, text: &str) -> bool {
        match self {
            Output::Any => true,
            Output::Exact(want) => text == want,
            Output::Prefix(p) => text.starts_with(p.as_str()),
        }
    }

    fn holds(&self, o: &Observed) -> bool {
        match self {
            Output::Any => true,
            Output::Exact(want) => match &o.output {
                Some(text) => text == want,
                // Long outputs are compared by length and digest.
                None => o.output_len == want.len() as u64 && o.output_md5 == md5_hex(want),
            },
            Output::Prefix(p) => o.output.as_deref().is_some_and(|t| t.starts_with(p.as_str())),
        }
    }

    fn describe(&self) -> String {
        let short = |s: &str| if s.len() > 60 { format!("{} bytes", s.len()) } else { format!("{s:?}") };
        match self {
            Output::Exact(s) => short(s),
            Output::Prefix(p) => format!("starting {p:?}"),
            Output::Any => "anything".into(),
        }
    }
}

/// How an instance must end.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Completed(Output),
    /// Failed with this error category ("application", ...) and stored message.
    Failed {
        category: &'static str,
        message: Output,
    },
    /// A cancellation raced with the work: cancelled (failed with
    /// "canceled: ...") or completed with the output, both right.
    CompletedOrCancelled(Output),
}

impl Outcome {
    /// True when a failure is what the scenario designed.
    pub fn expects_failure(&self) -> bool {
        matches!(self, Outcome::Failed { .. } | Outcome::CompletedOrCancelled(_))
    }
}

/// What one instance (and its children) must end as.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Expect {
    /// The scenario the instance belongs to (a mix names the chosen one).
    pub scenario: &'static str,
    pub outcome: Outcome,
    /// Executions of the instance (continue-as-new adds one per generation).
    pub executions: Count,
    /// History events by type ("ActivityCompleted", ...), over all executions;
    /// types not listed are not held to a count.
    pub events: Vec<(&'static str, Count)>,
    /// Direct children (sub-orchestrations): how many, and what each must end as.
    pub children: Option<(u64, Box<Expect>)>,
}

impl Expect {
    /// An instance that completes with `output` in one execution.
    pub fn completed(scenario: &'static str, output: impl Into<String>) -> Self {
        Expect {
            scenario,
            outcome: Outcome::Completed(Output::Exact(output.into())),
            executions: Count::Exactly(1),
            events: Vec::new(),
            children: None,
        }
    }

    /// The same, holding the history to `events`.
    pub fn with_events(mut self, events: &[(&'static str, u64)]) -> Self {
        self.events = events.iter().map(|(t, n)| (*t, Count::Exactly(*n))).collect();
        self
    }

    /// Every descendant expected below this instance.
    pub fn descendants(&self) -> u64 {
        self.children.as_ref().map_or(0, |(n, child)| n * (1 + child.descendants()))
    }

    /// What differs between this expectation and what the database shows of
    /// the instance itself (children are checked by the caller), one phrase
    /// each; empty when it holds.
    pub fn check(&self, o: &Observed) -> Vec<String> {
        let mut out = Vec::new();
        let status_ok = match (&self.outcome, o.status.as_str()) {
            (Outcome::Completed(want), "Completed") => {
                if !want.holds(o) {
                    out.push(format!("output {} where {} was expected", o.describe_output(), want.describe()));
                }
                true
            }
            (Outcome::Failed { category, message }, "Failed") => {
                if o.failure_category() != *category || !message.holds(o) {
                    out.push(format!(
                        "failed with {} where {category} error {} was expected",
                        o.describe_output(),
                        message.describe()
                    ));
                }
                true
            }
            (Outcome::CompletedOrCancelled(want), "Completed") => {
                if !want.holds(o) {
                    out.push(format!("output {} where {} was expected", o.describe_output(), want.describe()));
                }
                true
            }
            (Outcome::CompletedOrCancelled(_), "Failed") => {
                if !o.output.as_deref().is_some_and(|t| t.starts_with("canceled:")) {
                    out.push(format!("failed with {} where a cancellation was expected", o.describe_output()));
                }
                true
            }
            _ => false,
        };
        if !status_ok {
            let want = match &self.outcome {
                Outcome::Completed(_) => "Completed",
                Outcome::Failed { .. } => "Failed",
                Outcome::CompletedOrCancelled(_) => "Completed or cancelled",
            };
            // A failure says why (the runtime's stored message), so an
            // infrastructure error is named where the instance is.
            // A failure's message is its cause: keep it whole (the stored
            // output is at most SHORT_OUTPUT bytes).
            let why = if o.status == "Failed" { format!(" with {}", o.describe_failure()) } else { String::new() };
            out.push(format!(
                "status {}{why} where {want} was expected",
                if o.status.is_empty() { "none" } else { &o.status }
            ));
        }
        if !self.executions.holds(o.executions) {
            out.push(format!("{} execution(s) where {} were expected", o.executions, self.executions));
        }
        for (kind, count) in &self.events {
            let n = o.events.get(*kind).copied().unwrap_or(0);
            if !count.holds(n) {
                out.push(format!("{n} {kind} where {count} were expected"));
            }
        }
        out
    }
}

/// What the audit read of one instance.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Observed {
    /// Status of the current execution ("Completed", "Failed", "Running",
    /// "" when the instance has no execution).
    pub status: String,
    /// The output when it is short (at most [`SHORT_OUTPUT`] bytes).
    pub output: Option<String>,
    pub output_len: u64,
    /// md5 of the output, hex.
    pub output_md5: String,
    pub executions: u64,
    /// History events by type, over all executions.
    pub events: BTreeMap<String, u64>,
}

/// Outputs up to this long are read whole; longer ones by length and md5.
pub const SHORT_OUTPUT: usize = 256;

impl Observed {
    fn describe_output(&self) -> String {
        match &self.output {
            Some(t) if t.len() <= 60 => format!("{t:?}"),
            Some(t) => format!("{:?}...", &t[..t.char_indices().nth(57).map_or(t.len(), |(i, _)| i)]),
            None => format!("{} bytes", self.output_len),
        }
    }

    /// A failed instance's stored message, whole when it was read whole
    /// (the cause, a SQLSTATE's text, comes at its end).
    fn describe_failure(&self) -> String {
        match &self.output {
            Some(t) => format!("{t:?}"),
            None => format!("{} bytes", self.output_len),
        }
    }

    /// The error category of a failed instance, from its stored message (the
    /// runtime stores `ErrorDetails::display_message`).
    pub fn failure_category(&self) -> &'static str {
        category_of(self.output.as_deref().unwrap_or(""))
    }
}

/// Failure category from a stored display message (duroxide's
/// `ErrorDetails::display_message` prefixes).
pub fn category_of(message: &str) -> &'static str {
    if message.starts_with("infrastructure:") {
        "infrastructure"
    } else if message.starts_with("poison:") {
        "poison"
    } else if message.starts_with("nondeterministic") {
        "configuration"
    } else {
        "application"
    }
}

/// md5 of `text`, lowercase hex (what Postgres's `md5()` returns).
pub fn md5_hex(text: &str) -> String {
    use md5::{Digest, Md5};
    Md5::digest(text.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// A latency a scenario wants read from the history after the run: from a
/// start point to the history event's own timestamp (the turn that took it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HistoryMetric {
    /// Name in reports ("timer lateness").
    pub name: &'static str,
    /// The history event type ("TimerFired", "ExternalEventPersistent").
    pub event: &'static str,
    pub from: MetricStart,
}

/// Where a [`HistoryMetric`] starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetricStart {
    /// The event's `fire_at_ms` (a timer's due time): the metric is lateness.
    FireAt,
    /// The raise time the driver put at the front of the event's data
    /// ("<unix ms>|..."): the metric is raise-to-consumed latency.
    RaisedAt,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn observed(status: &str, output: &str) -> Observed {
        Observed {
            status: status.into(),
            output: Some(output.into()),
            output_len: output.len() as u64,
            output_md5: md5_hex(output),
            executions: 1,
            events: BTreeMap::from([("ActivityCompleted".to_string(), 3)]),
        }
    }

    #[test]
    fn an_instance_that_ended_as_expected_passes() {
        let e = Expect::completed("fanout", "fanout:3").with_events(&[("ActivityCompleted", 3)]);
        assert!(e.check(&observed("Completed", "fanout:3")).is_empty());
        // A long output is compared by length and digest.
        let long = "x".repeat(1000);
        let mut o = observed("Completed", &long);
        o.output = None;
        assert!(Expect::completed("p", long.clone()).with_events(&[("ActivityCompleted", 3)]).check(&o).is_empty());
    }

    #[test]
    fn every_difference_is_named() {
        let e = Expect::completed("fanout", "fanout:3").with_events(&[("ActivityCompleted", 3)]);
        let mut o = observed("Completed", "fanout:2");
        o.executions = 2;
        o.events.insert("ActivityCompleted".into(), 4);
        let problems = e.check(&o);
        assert_eq!(
            problems,
            [
                "output \"fanout:2\" where \"fanout:3\" was expected",
                "2 execution(s) where 1 were expected",
                "4 ActivityCompleted where 3 were expected"
            ]
        );
        assert_eq!(e.check(&observed("Running", "")), ["status Running where Completed was expected"]);
        assert_eq!(
            e.check(&observed("Failed", "infrastructure:ack: database is locked")),
            ["status Failed with \"infrastructure:ack: database is locked\" where Completed was expected"]
        );
        // A long failure message keeps its cause (at its end).
        let long = "infrastructure:ack_orchestration_item: Database error: error returned from database: canceling statement due to user request";
        assert!(e.check(&observed("Failed", long))[0].contains("canceling statement due to user request\" where"));
        let f = Expect {
            outcome: Outcome::Failed { category: "application", message: Output::Prefix("expected".into()) },
            ..e.clone()
        };
        assert!(f.check(&observed("Failed", "expected failure 3")).is_empty());
        assert_eq!(
            f.check(&observed("Failed", "infrastructure:ack: boom")),
            ["failed with \"infrastructure:ack: boom\" where application error starting \"expected\" was expected"]
        );
        let c = Expect { outcome: Outcome::CompletedOrCancelled(Output::Exact("ok".into())), ..e };
        assert!(c.check(&observed("Failed", "canceled: by the driver")).is_empty());
        assert!(c.check(&observed("Completed", "ok")).is_empty());
    }

    #[test]
    fn md5_matches_postgres() {
        // SELECT md5('abc') = 900150983cd24fb0d6963f7d28e17f72
        assert_eq!(md5_hex("abc"), "900150983cd24fb0d6963f7d28e17f72");
    }
}

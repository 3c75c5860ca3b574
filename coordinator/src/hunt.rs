//! `coordinator hunt`: a race shows in some runs and not in others, so the
//! same run is repeated (each on a fresh schema, each with its own seed
//! unless `--seed` fixes one) until its audit breaks an invariant or the
//! time budget ends. The result is the run that broke (or the last one),
//! the command that replays its workload, and the detection rate over the
//! tries.

use std::time::{Duration, Instant};

use loadgen_common::schema::new_run_id;
use loadgen_common::units::format_duration;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::error::CoordinatorError;
use crate::model::{IntervalLogs, RunReport};
use crate::notice::{Notice, Observer};
use crate::plan::RunPlan;
use crate::run::executor;
use crate::run::session::Session;

/// A hunt: the run to repeat, and when to stop.
#[derive(Debug)]
pub struct HuntPlan {
    pub run: RunPlan,
    /// Start no try that would likely end after this.
    pub budget: Duration,
    /// Most tries (none: as many as the budget holds).
    pub tries: Option<u32>,
    /// Keep trying after a break, for the detection rate over the budget.
    pub whole_budget: bool,
    /// The command line that replays a try, less its seed.
    pub replay: String,
}

/// One try.
#[derive(Clone, Debug, PartialEq)]
pub struct Try {
    pub run_id: String,
    pub seed: u64,
    pub seconds: f64,
    /// What its audit found broken (empty: nothing).
    pub broken: Vec<String>,
    /// It lost an agent.
    pub degraded: bool,
}

/// What a hunt found.
#[derive(Debug)]
pub struct HuntOutcome {
    pub tries: Vec<Try>,
    /// The first try that broke an invariant, else the last one.
    pub shown: RunReport,
    pub logs: Vec<IntervalLogs>,
    /// Why it stopped.
    pub stopped: String,
}

impl HuntOutcome {
    /// The tries that broke an invariant.
    pub fn found(&self) -> usize {
        self.tries.iter().filter(|t| !t.broken.is_empty()).count()
    }

    /// The hunt's conclusion for people, ending with the replay command.
    pub fn conclusion(&self, replay: &str) -> Vec<String> {
        let n = self.tries.len();
        let mut lines = vec![format!("Hunt: {} ({n} tr{} in all).", self.stopped, if n == 1 { "y" } else { "ies" })];
        for (i, t) in self.tries.iter().enumerate() {
            // The problem without its examples (the run shown names them).
            let verdict = match t.broken.first() {
                None => "audit passed".to_string(),
                Some(p) => format!("BROKE: {}", p.split(", e.g. ").next().unwrap_or(p)),
            };
            lines.push(format!("  try {} (run {}, seed {}, {:.0} s): {verdict}", i + 1, t.run_id, t.seed, t.seconds));
        }
        match self.tries.iter().position(|t| !t.broken.is_empty()) {
            Some(i) => {
                let t = &self.tries[i];
                lines.push(format!(
                    "Found in {} of {n} run(s); first in try {}. Replay its workload (the race itself depends on timing):",
                    self.found(),
                    i + 1
                ));
                lines.push(format!("  {replay} --seed {}", t.seed));
            }
            None => lines.push(format!("Not found in {n} run(s): every audit passed.")),
        }
        lines
    }
}

/// Repeat `plan.run` until an invariant breaks (or, with `whole_budget`,
/// until the budget ends); every session is closed on every path.
pub async fn hunt(
    plan: &HuntPlan,
    obs: &dyn Observer,
    shutdown: CancellationToken,
) -> Result<HuntOutcome, CoordinatorError> {
    let one = [Session::default()];
    executor::with_sessions(one, obs, shutdown, async |[s]: &mut [Session; 1]| tries(plan, s, obs).await).await
}

async fn tries(plan: &HuntPlan, session: &mut Session, obs: &dyn Observer) -> Result<HuntOutcome, CoordinatorError> {
    session.open(&plan.run, &plan.run.profile, obs).await?;
    let began = Instant::now();
    let most = plan.tries.map_or(usize::MAX, |n| n as usize);
    let mut tries: Vec<Try> = Vec::new();
    let mut shown: Option<(RunReport, Option<IntervalLogs>)> = None;
    let stopped = loop {
        let i = tries.len();
        if i >= most {
            break format!("{most} tries done");
        }
        // A try takes about as long as the longest so far.
        let longest = tries.iter().map(|t| t.seconds).fold(0.0, f64::max);
        if i > 0 && began.elapsed().as_secs_f64() + longest > plan.budget.as_secs_f64() {
            break format!("the budget of {} is spent", format_duration(plan.budget));
        }
        let run_id = new_run_id();
        let label = format!("hunt, try {}", i + 1);
        // Open-ended without --tries (the console then shows the label alone).
        let of = plan.tries.map_or(0, |n| n as usize);
        let started = Instant::now();
        let span = tracing::info_span!("run", run = %run_id);
        let (report, log) =
            crate::run::run_once(session, &plan.run, &plan.run.profile, &run_id, (i + 1, of, &label), obs)
                .instrument(span)
                .await?;
        session.end_run(obs).await;
        // The exactly-once break first: it names the race.
        let mut broken = report.audit.problems.clone();
        broken.sort_by_key(|p| !p.starts_with("exactly once"));
        let t = Try {
            run_id: run_id.clone(),
            seed: report.workload.seed,
            seconds: started.elapsed().as_secs_f64(),
            broken,
            degraded: report.degraded(),
        };
        obs.notice(&Notice::Note(match t.broken.first() {
            None => format!("hunt try {}: audit passed ({} instances)", i + 1, report.audit.instances),
            Some(p) => format!("hunt try {}: BROKE: {p}", i + 1),
        }));
        let broke = !t.broken.is_empty();
        tries.push(t);
        let keep = shown.as_ref().is_some_and(|(r, _)| !r.audit.passed());
        if !keep {
            shown = Some((report, log));
        }
        if broke && !plan.whole_budget {
            break "an invariant broke".to_string();
        }
    };
    let Some((shown, log)) = shown else {
        return Err(CoordinatorError::Local("the hunt's budget held no try".into()));
    };
    Ok(HuntOutcome { tries, shown, logs: log.into_iter().collect(), stopped })
}

/// Flags whose values are secrets: the replay names the variable instead.
const SECRET_FLAGS: [(&str, &str); 2] = [("--database-url", "\"$DATABASE_URL\""), ("--token", "\"$LOADGEN_TOKEN\"")];

/// The command line that replays a try: this one without `hunt`, its own
/// flags and any `--seed` (the try's seed is appended); a database URL or
/// token given on it is replaced by its variable, never printed.
pub fn replay_command(args: &[String]) -> String {
    const HUNT_FLAGS: [&str; 3] = ["--budget", "--tries", "--seed"];
    let mut out = vec!["coordinator".to_string()];
    let mut skip = false;
    let mut secret: Option<&str> = None;
    let mut dropped_subcommand = false;
    for a in args.iter().skip(1) {
        if let Some(var) = secret.take() {
            out.push(var.to_string());
            continue;
        }
        if skip {
            skip = false;
            continue;
        }
        if let Some((flag, var)) = SECRET_FLAGS.iter().find(|(f, _)| a == f || a.starts_with(&format!("{f}="))) {
            if a == flag {
                out.push(flag.to_string());
                secret = Some(var);
            } else {
                out.push(format!("{flag}={var}"));
            }
            continue;
        }
        if !dropped_subcommand && a == "hunt" {
            dropped_subcommand = true;
            continue;
        }
        if a == "--whole-budget" {
            continue;
        }
        if HUNT_FLAGS.contains(&a.as_str()) {
            skip = true;
            continue;
        }
        if HUNT_FLAGS.iter().any(|f| a.starts_with(&format!("{f}="))) {
            continue;
        }
        out.push(shell_word(a));
    }
    out.join(" ")
}

/// `word` as a shell reads it back.
fn shell_word(word: &str) -> String {
    let plain = !word.is_empty() && word.chars().all(|c| c.is_ascii_alphanumeric() || "-_./:=,@%+".contains(c));
    if plain { word.to_string() } else { format!("'{}'", word.replace('\'', "'\\''")) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(text: &str) -> Vec<String> {
        text.split(' ').map(str::to_string).collect()
    }

    #[test]
    fn the_replay_drops_the_hunt_and_its_seed() {
        let a = args(
            "/x/coordinator hunt --budget 10m --local 2 --build 0.1.37 --faults skew.toml --seed 7 --whole-budget",
        );
        assert_eq!(replay_command(&a), "coordinator --local 2 --build 0.1.37 --faults skew.toml");
        let a = args("coordinator hunt --tries=3 --set weights=events:1 --profile mixed");
        assert_eq!(replay_command(&a), "coordinator --set weights=events:1 --profile mixed");
        let a = args("c hunt --database-url postgres://u:secret@h/db --token=abcdefabcdefabcdef --local 1");
        let r = replay_command(&a);
        assert_eq!(r, "coordinator --database-url \"$DATABASE_URL\" --token=\"$LOADGEN_TOKEN\" --local 1");
        assert!(!r.contains("secret") && !r.contains("abcdef"), "{r}");
        assert_eq!(shell_word("a b"), "'a b'");
        assert_eq!(shell_word("it's"), "'it'\\''s'");
    }

    #[test]
    fn the_conclusion_gives_the_rate_and_the_first_break() {
        let t = |seed: u64, broken: &[&str]| Try {
            run_id: format!("r{seed}"),
            seed,
            seconds: 40.0,
            broken: broken.iter().map(|s| s.to_string()).collect(),
            degraded: false,
        };
        let o = HuntOutcome {
            tries: vec![t(1, &[]), t(2, &["exactly once: 3 message(s) processed again"]), t(3, &["x"])],
            shown: RunReport::default(),
            logs: Vec::new(),
            stopped: "the budget of 2m is spent".into(),
        };
        let text = o.conclusion("coordinator --local 2").join("\n");
        assert!(
            text.contains("try 2 (run r2, seed 2, 40 s): BROKE: exactly once: 3 message(s) processed again"),
            "{text}"
        );
        assert!(text.contains("Found in 2 of 3 run(s); first in try 2."), "{text}");
        assert!(text.ends_with("  coordinator --local 2 --seed 2"), "{text}");
        let none = HuntOutcome { tries: vec![t(1, &[])], ..o };
        assert!(none.conclusion("c").join("\n").contains("Not found in 1 run(s)"));
    }
}

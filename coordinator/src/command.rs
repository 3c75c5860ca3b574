//! Each command from parsed flags to exit code: resolve the plan (bad input
//! is one line and exit 2, before anything starts), set up logging, the
//! async runtime and the shutdown signal, carry the command out, write its
//! outputs through the one pipeline, and map the outcome to an exit code.
//! Every multi-run command's code covers every run it made.

use std::future::Future;

use loadgen_common::startup;
use tokio_util::sync::CancellationToken;

use crate::cli::{Cli, Command, resolve};
use crate::error::{EXIT_DEGRADED, EXIT_GATES_FAILED, EXIT_OK, EXIT_RUN_FAILED, EXIT_USAGE};
use crate::exporter::Watch;
use crate::model::RunReport;
use crate::notice::Observer;
use crate::plan::Outputs;
use crate::report::console::Console;
use crate::report::{self, Document};
use crate::{CoordinatorError, track};

/// Carry out `cli`; the process exit code.
pub fn execute(cli: Cli) -> u8 {
    match cli.command {
        Some(Command::Profiles { profile_file }) => profiles(profile_file.as_deref()),
        Some(Command::Scenarios) => write_listing(&Document::Scenarios),
        Some(Command::Faults) => write_listing(&Document::Faults),
        Some(Command::Audit(a)) => audit(&a),
        Some(Command::Cleanup(c)) => cleanup(&c),
        Some(Command::Bench(b)) => bench(&b),
        Some(Command::StressModule { job }) => stress_module(&job),
        Some(Command::Sweep { sweep, run }) => sweep_command(&sweep, &run),
        Some(Command::Ab { ab, run }) => ab_command(&ab, &run),
        Some(Command::Compare { compare, run }) => compare_command(&compare, &run),
        Some(Command::Hunt { hunt, run }) => hunt_command(&hunt, &run),
        Some(Command::Matrix { matrix, run }) => matrix_command(&matrix, &run),
        None => run_command(&cli.run),
    }
}

/// An error line: masked again for whatever this process was given (the
/// messages mask what they hold; this is the last line of defence).
fn error_line(e: impl std::fmt::Display) {
    eprintln!("coordinator: {}", loadgen_common::secret::Secrets::of_process().scrub(&e.to_string()));
}

fn usage(e: impl std::fmt::Display) -> u8 {
    error_line(e);
    EXIT_USAGE
}

fn failed(e: &CoordinatorError) -> u8 {
    error_line(e);
    e.exit_code()
}

/// Set up logging, build the async runtime, turn Ctrl-C/SIGTERM into a
/// cancellation, and run `work` to completion; an exit code when the setup fails.
fn on_runtime<T, F>(log: &str, work: impl FnOnce(CancellationToken) -> F) -> Result<T, u8>
where
    F: Future<Output = T>,
{
    if let Err(e) = startup::init_tracing(log) {
        return Err(usage(e));
    }
    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("coordinator: cannot start the async runtime: {e}");
            return Err(EXIT_RUN_FAILED);
        }
    };
    Ok(rt.block_on(async move {
        let shutdown = CancellationToken::new();
        let signal = shutdown.clone();
        tokio::spawn(async move {
            startup::shutdown_signal().await;
            eprintln!("interrupted; releasing agents and cleaning up");
            signal.cancel();
        });
        work(shutdown).await
    }))
}

fn write_listing(doc: &Document<'_>) -> u8 {
    use crate::report::Renderer;
    match report::text::Text.render(doc, &mut std::io::stdout().lock()) {
        Ok(()) => EXIT_OK,
        Err(e) => failed(&CoordinatorError::Output { path: "stdout".into(), detail: e.to_string() }),
    }
}

fn profiles(file: Option<&std::path::Path>) -> u8 {
    let text = match file.map(|p| std::fs::read_to_string(p).map(|t| (t, p.display().to_string()))).transpose() {
        Ok(t) => t,
        Err(e) => return usage(format!("cannot read profile file: {e}")),
    };
    let all = crate::plan::profile::all_profiles(text.as_ref().map(|(t, n)| (t.as_str(), n.as_str())));
    match all.and_then(crate::plan::resolved::resolve_all) {
        Ok(all) => write_listing(&Document::Profiles(&all)),
        Err(e) => usage(e),
    }
}

/// The exit code of finished runs: degraded beats failed beats passed.
fn runs_code(runs: &[RunReport]) -> u8 {
    if runs.iter().any(RunReport::degraded) {
        EXIT_DEGRADED
    } else if runs.iter().all(|r| r.passed) {
        EXIT_OK
    } else {
        EXIT_GATES_FAILED
    }
}

/// Write `doc` through the pipeline; an exit code when that fails.
fn write(
    doc: &Document<'_>,
    outputs: &Outputs,
    logs: &[crate::model::IntervalLogs],
    obs: &dyn Observer,
) -> Result<(), u8> {
    report::write_all(doc, outputs, logs, obs).map_err(|e| failed(&e))
}

fn run_command(args: &crate::Args) -> u8 {
    let mut plan = match resolve::run_plan(args) {
        Ok(p) => p,
        Err(e) => return usage(e),
    };
    let empty = RunReport::default();
    let doc_kind = if plan.runs.len() > 1 { Document::Suite { profile: "", runs: &[] } } else { Document::Run(&empty) };
    if let Err(e) = report::check_targets(&plan.outputs, &doc_kind) {
        return usage(e);
    }
    if let Err(code) = built_agent(args, &mut plan) {
        return code;
    }
    let screen = Console::new(plan.outputs.live.table());
    let Ok(console) = Watch::open(&screen, &plan.outputs).map_err(usage) else { return EXIT_USAGE };
    let outcome = match on_runtime(&plan.log, |shutdown| crate::run::run(&plan, &console, shutdown)) {
        Ok(o) => o,
        Err(code) => return code,
    };
    let mut outcome = match outcome {
        Ok(o) => o,
        Err(e) => return failed(&e),
    };
    if let Err(e) = track::finish(&plan.tracking, &mut outcome.runs) {
        return failed(&e);
    }
    let doc = if outcome.is_suite() {
        Document::Suite { profile: &outcome.profile.name, runs: &outcome.runs }
    } else {
        match outcome.runs.first() {
            Some(r) => Document::Run(r),
            None => return failed(&CoordinatorError::Local("no run was carried out".into())),
        }
    };
    if let Err(code) = write(&doc, &plan.outputs, &outcome.logs, &console) {
        return code;
    }
    console.close(plan.outputs.linger);
    runs_code(&outcome.runs)
}

fn hunt_command(h: &crate::cli::HuntArgs, args: &crate::Args) -> u8 {
    let argv: Vec<String> = std::env::args().collect();
    let mut plan = match crate::cli::comparisons::hunt_plan(h, args, &argv) {
        Ok(p) => p,
        Err(e) => return usage(e),
    };
    let empty = RunReport::default();
    if let Err(e) = report::check_targets(&plan.run.outputs, &Document::Run(&empty)) {
        return usage(e);
    }
    if let Err(code) = built_agent(args, &mut plan.run) {
        return code;
    }
    let screen = Console::new(plan.run.outputs.live.table());
    let Ok(console) = Watch::open(&screen, &plan.run.outputs).map_err(usage) else { return EXIT_USAGE };
    let outcome = match on_runtime(&plan.run.log, |shutdown| crate::hunt::hunt(&plan, &console, shutdown)) {
        Ok(o) => o,
        Err(code) => return code,
    };
    let outcome = match outcome {
        Ok(o) => o,
        Err(e) => return failed(&e),
    };
    // The run that broke (or the last), as any run is shown and written.
    if let Err(code) = write(&Document::Run(&outcome.shown), &plan.run.outputs, &outcome.logs, &console) {
        return code;
    }
    console.close(plan.run.outputs.linger);
    for line in outcome.conclusion(&plan.replay) {
        println!("{line}");
    }
    // Every try counts: a degraded one (a lost agent) is said even when a
    // later try is the one shown.
    if outcome.found() > 0 {
        EXIT_GATES_FAILED
    } else if outcome.tries.iter().any(|t| t.degraded) {
        EXIT_DEGRADED
    } else {
        EXIT_OK
    }
}

fn matrix_command(m: &crate::cli::MatrixArgs, args: &crate::Args) -> u8 {
    let mut plan = match crate::cli::matrix::matrix_plan(m, args) {
        Ok(p) => p,
        Err(e) => return usage(e),
    };
    let empty = crate::model::matrix::MatrixReport::default();
    if let Err(e) = report::check_targets(&plan.run.outputs, &Document::Matrix { matrix: &empty, runs: &[] }) {
        return usage(e);
    }
    for b in plan.builds.iter_mut().filter(|_| !m.builds.is_empty()) {
        match build(&b.label) {
            Ok(path) => b.bin = Some(path),
            Err(code) => return code,
        }
    }
    let screen = Console::new(plan.run.outputs.live.table());
    let Ok(console) = Watch::open(&screen, &plan.run.outputs).map_err(usage) else { return EXIT_USAGE };
    let outcome = match on_runtime(&plan.run.log, |shutdown| crate::matrix::matrix(&plan, &console, shutdown)) {
        Ok(Ok(o)) => o,
        Ok(Err(e)) => return failed(&e),
        Err(code) => return code,
    };
    let doc = Document::Matrix { matrix: &outcome.matrix, runs: &outcome.runs };
    if let Err(code) = write(&doc, &plan.run.outputs, &outcome.logs, &console) {
        return code;
    }
    console.close(plan.run.outputs.linger);
    // Every cell counts: a lost agent anywhere, then any unexpected verdict.
    if outcome.runs.iter().any(RunReport::degraded) {
        EXIT_DEGRADED
    } else if outcome.matrix.passed {
        EXIT_OK
    } else {
        EXIT_GATES_FAILED
    }
}

fn sweep_command(s: &crate::cli::SweepArgs, args: &crate::Args) -> u8 {
    let mut plan = match resolve::sweep_plan(s, args) {
        Ok(p) => p,
        Err(e) => return usage(e),
    };
    let empty = crate::model::SweepReport::default();
    if let Err(e) = report::check_targets(&plan.run.outputs, &Document::Sweep { sweep: &empty, runs: &[] }) {
        return usage(e);
    }
    if let Err(code) = built_agent(args, &mut plan.run) {
        return code;
    }
    let screen = Console::new(plan.run.outputs.live.table());
    let Ok(console) = Watch::open(&screen, &plan.run.outputs).map_err(usage) else { return EXIT_USAGE };
    let outcome = match on_runtime(&plan.run.log, |shutdown| crate::sweep::sweep(&plan, &console, shutdown)) {
        Ok(o) => o,
        Err(code) => return code,
    };
    let outcome = match outcome {
        Ok(o) => o,
        Err(e) => return failed(&e),
    };
    let doc = Document::Sweep { sweep: &outcome.sweep, runs: &outcome.runs };
    if let Err(code) = write(&doc, &plan.run.outputs, &outcome.logs, &console) {
        return code;
    }
    console.close(plan.run.outputs.linger);
    if outcome.runs.iter().any(RunReport::degraded) {
        EXIT_DEGRADED
    } else if outcome.sweep.passed {
        EXIT_OK
    } else {
        EXIT_GATES_FAILED
    }
}

fn ab_command(a: &crate::cli::AbArgs, args: &crate::Args) -> u8 {
    use crate::ab::stats::Verdict;
    let a = &match built_agents(a) {
        Ok(a) => a,
        Err(code) => return code,
    };
    let plan = match crate::cli::comparisons::ab_plan(a, args) {
        Ok(p) => p,
        Err(e) => return usage(e),
    };
    let empty = crate::model::ab::AbReport {
        profile: String::new(),
        repeat: 0,
        min_effect_pct: 0.0,
        baseline: Default::default(),
        candidate: Default::default(),
        metrics: Vec::new(),
        procedures: Vec::new(),
        runs: Vec::new(),
        passed: true,
        problems: Vec::new(),
        notes: Vec::new(),
    };
    if let Err(e) = report::check_targets(&plan.run.outputs, &Document::Ab { ab: &empty, runs: &[] }) {
        return usage(e);
    }
    let screen = Console::new(plan.run.outputs.live.table());
    let Ok(console) = Watch::open(&screen, &plan.run.outputs).map_err(usage) else { return EXIT_USAGE };
    let outcome = match on_runtime(&plan.run.log, |shutdown| crate::ab::ab(&plan, &console, shutdown)) {
        Ok(o) => o,
        Err(code) => return code,
    };
    let outcome = match outcome {
        Ok(o) => o,
        Err(e) => return failed(&e),
    };
    let doc = Document::Ab { ab: &outcome.ab, runs: &outcome.runs };
    if let Err(code) = write(&doc, &plan.run.outputs, &outcome.logs, &console) {
        return code;
    }
    console.close(plan.run.outputs.linger);
    let slower =
        ["orch/s", "p99 ms"].iter().any(|m| outcome.ab.metric(m).is_some_and(|m| m.verdict == Verdict::Slower));
    if outcome.runs.iter().any(RunReport::degraded) {
        EXIT_DEGRADED
    } else if !outcome.ab.passed || (a.fail_on_slower && slower) {
        EXIT_GATES_FAILED
    } else {
        EXIT_OK
    }
}

/// `ab --baseline-build/--candidate-build VERSION|DIR`: the agents of those builds, built
/// (or found in the cache) before anything else starts; bad input is exit 2,
/// a build that fails exit 3.
fn built_agents(a: &crate::cli::AbArgs) -> Result<crate::cli::AbArgs, u8> {
    let mut a = a.clone();
    for (what, bin) in
        [(a.baseline_build.clone(), &mut a.baseline_agent), (a.candidate_build.clone(), &mut a.candidate_agent)]
    {
        if let Some(what) = what {
            *bin = Some(build(&what)?);
        }
    }
    Ok(a)
}

/// `--build VERSION|DIR` with `--local`: the local agents run that build's
/// agent; and the builds the faults need (an upgrade): each built, or found
/// in the cache, once the rest of the plan checked.
fn built_agent(args: &crate::Args, plan: &mut crate::plan::RunPlan) -> Result<(), u8> {
    if let (Some(what), crate::plan::AgentSource::Local { bin, .. }) = (&args.build, &mut plan.agents) {
        *bin = build(what)?;
    }
    for what in plan.faults.agent_builds() {
        let path = build(&what)?;
        plan.agent_builds.insert(what, path);
    }
    Ok(())
}

/// The agent binary of `what`: bad input is exit 2, a failed build exit 3.
fn build(what: &str) -> Result<std::path::PathBuf, u8> {
    use crate::builds::{BuildError, agent_for};
    let progress = |line: &str| eprintln!("{line}");
    match agent_for(what, &progress) {
        Ok(path) => Ok(path),
        Err(e @ BuildError::Refused(_)) => Err(usage(e)),
        Err(e) => {
            error_line(e);
            Err(crate::error::EXIT_RUN_FAILED)
        }
    }
}

fn compare_command(c: &crate::cli::CompareArgs, args: &crate::Args) -> u8 {
    let plan = match crate::cli::comparisons::compare_plan(c, args) {
        Ok(p) => p,
        Err(e) => return usage(e),
    };
    let Some(first) = plan.plans.first() else { return usage("no provider to compare") };
    let (outputs, log) = (first.outputs.clone(), first.log.clone());
    let empty = crate::model::compare::CompareReport::default();
    if let Err(e) = report::check_targets(&outputs, &Document::Compare { compare: &empty, runs: &[] }) {
        return usage(e);
    }
    let screen = Console::new(outputs.live.table());
    let Ok(console) = Watch::open(&screen, &outputs).map_err(usage) else { return EXIT_USAGE };
    let outcome = match on_runtime(&log, |shutdown| crate::compare::compare(&plan, &console, shutdown)) {
        Ok(o) => o,
        Err(code) => return code,
    };
    let outcome = match outcome {
        Ok(o) => o,
        Err(e) => return failed(&e),
    };
    let doc = Document::Compare { compare: &outcome.compare, runs: &outcome.runs };
    if let Err(code) = write(&doc, &outputs, &outcome.logs, &console) {
        return code;
    }
    console.close(outputs.linger);
    runs_code(&outcome.runs)
}

fn bench(b: &crate::cli::BenchArgs) -> u8 {
    let plan = match crate::cli::comparisons::bench_plan(b) {
        Ok(p) => p,
        Err(e) => return usage(e),
    };
    let console = Console::new(false);
    let result = match on_runtime("warn,sqlx=error", |shutdown| crate::bench::bench(&plan, &console, shutdown)) {
        Ok(r) => r,
        Err(code) => return code,
    };
    let report = match result {
        Ok(r) => r,
        Err(e) => return failed(&e),
    };
    let outputs = Outputs::json(b.json.as_ref());
    if let Err(code) = write(&Document::Bench(&report), &outputs, &[], &console) {
        return code;
    }
    if report.passed { EXIT_OK } else { EXIT_GATES_FAILED }
}

/// `bench`'s child: the stress module once; its outcome as one JSON line.
fn stress_module(job: &str) -> u8 {
    use crate::bench::stress_child::{StressJob, run_job};
    let job: StressJob = match serde_json::from_str(job) {
        Ok(j) => j,
        Err(e) => return usage(format!("--job is not a stress job: {e}")),
    };
    let url = std::env::var("DATABASE_URL").ok();
    let outcome = match on_runtime("warn,sqlx=error", |_| run_job(&job, url.as_deref())) {
        Err(code) => return code,
        Ok(Err(e)) => return failed(&e),
        Ok(Ok(o)) => o,
    };
    match serde_json::to_string(&outcome) {
        Ok(line) => {
            println!("{line}");
            EXIT_OK
        }
        Err(e) => failed(&CoordinatorError::Local(format!("stress outcome: {e}"))),
    }
}

fn audit(a: &crate::cli::AuditArgs) -> u8 {
    let outputs = Outputs::json(a.json.as_ref());
    if let Err(e) = outputs.check() {
        return usage(e);
    }
    let outcome = match on_runtime("warn", |_| crate::db::audit::audit_schema(&a.database_url, &a.schema)) {
        Err(code) => return code,
        Ok(Ok(o)) => o,
        Ok(Err(e)) => return failed(&e),
    };
    let doc = Document::Audit { schema: &a.schema, audit: &outcome.audit };
    if let Err(code) = write(&doc, &outputs, &[], &Console::new(false)) {
        return code;
    }
    if outcome.audit.passed() { EXIT_OK } else { EXIT_GATES_FAILED }
}

fn cleanup(c: &crate::cli::CleanupArgs) -> u8 {
    use crate::db::cleanup::{self, Selection};
    let selection = Selection::chosen(c.all, c.older_than, &c.run);
    let outputs = Outputs::json(c.json.as_ref());
    if let Err(e) = outputs.check() {
        return usage(e);
    }
    let url = match (&c.database_url, c.servers) {
        (_, true) => None,
        (Some(url), false) => Some(url),
        (None, false) => return usage("cleanup needs --database-url (or --servers)"),
    };
    if c.yes && selection == Selection::None && url.is_some() {
        return usage("--yes drops the chosen schemas: choose them with --older-than, --run or --all");
    }
    let report = match url {
        None => cleanup::servers(c.yes),
        Some(url) => match on_runtime("warn", |_| cleanup::cleanup(url, &selection, c.yes, c.force)) {
            Err(code) => return code,
            Ok(Ok(r)) => r,
            Ok(Err(e)) => return failed(&e),
        },
    };
    if let Err(code) = write(&Document::Cleanup(&report), &outputs, &[], &Console::new(false)) {
        return code;
    }
    if report.problems.is_empty() { EXIT_OK } else { EXIT_GATES_FAILED }
}

//! `coordinator`: parse, set up logging and signals, run, render, exit.

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;
use clap::error::ErrorKind;
use loadgen_common::startup;
use loadgen_coordinator::error::{EXIT_DEGRADED, EXIT_GATES_FAILED, EXIT_OK, EXIT_RUN_FAILED, EXIT_USAGE};
use loadgen_coordinator::run::Outcome;
use loadgen_coordinator::{Args, Cli, Command, CoordinatorError, report, run, track};
use tokio_util::sync::CancellationToken;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) => {
            let _ = e.print();
            return ExitCode::from(EXIT_OK);
        }
        Err(e) => {
            eprintln!("coordinator: {}", loadgen_coordinator::cli::parse_error_line(&e));
            return ExitCode::from(EXIT_USAGE);
        }
    };
    match &cli.command {
        Some(Command::Profiles { profile_file }) => return ExitCode::from(list_profiles(profile_file.as_deref())),
        Some(Command::Audit { schema, database_url, json }) => {
            return ExitCode::from(audit_command(schema, database_url, json.as_deref()));
        }
        Some(Command::Bench {
            combos,
            repeat,
            duration,
            max_concurrent,
            tasks,
            activity_delay,
            database_url,
            json,
            completion_poll,
            agent_bin,
        }) => {
            if let Some(bin) = agent_bin {
                // The bench spawns agents through the normal run path, which reads this.
                loadgen_common::process::set_env_before_threads("LOADGEN_AGENT_BIN", &bin.display().to_string());
            }
            let plan = loadgen_coordinator::bench::BenchPlan {
                combos: combos.clone(),
                repeat: *repeat,
                duration: *duration,
                max_concurrent: *max_concurrent,
                tasks: *tasks,
                activity_delay: *activity_delay,
                database_url: database_url.clone(),
                completion_poll: *completion_poll,
            };
            return ExitCode::from(bench_command(&plan, json.as_deref()));
        }
        Some(Command::Sweep { sweep, run }) => return ExitCode::from(sweep_command(run, sweep)),
        None => {}
    }
    let args = cli.run;
    let log = args.log.clone();
    ExitCode::from(on_runtime(&log, true, |shutdown| async_main(args, shutdown)).unwrap_or_else(|code| code))
}

/// Set up logging, build the async runtime, turn Ctrl-C/SIGTERM into a
/// cancellation, and run `work` to completion; an exit code when the setup fails.
fn on_runtime<T, F>(log: &str, announce: bool, work: impl FnOnce(CancellationToken) -> F) -> Result<T, u8>
where
    F: std::future::Future<Output = T>,
{
    if let Err(e) = startup::init_tracing(log) {
        eprintln!("coordinator: {e}");
        return Err(EXIT_USAGE);
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
            if announce {
                eprintln!("interrupted; releasing agents and cleaning up");
            }
            signal.cancel();
        });
        work(shutdown).await
    }))
}

fn list_profiles(file: Option<&std::path::Path>) -> u8 {
    let text = match file.map(std::fs::read_to_string).transpose() {
        Ok(t) => t,
        Err(e) => {
            eprintln!("coordinator: cannot read profile file: {e}");
            return EXIT_USAGE;
        }
    };
    match loadgen_common::config::all_profiles(text.as_deref()) {
        Ok(all) => {
            let _ = report::render_profiles(&all, &mut std::io::stdout().lock());
            EXIT_OK
        }
        Err(e) => {
            eprintln!("coordinator: {e}");
            EXIT_USAGE
        }
    }
}

fn bench_command(plan: &loadgen_coordinator::bench::BenchPlan, json: Option<&std::path::Path>) -> u8 {
    let report =
        match on_runtime("warn,sqlx=error", false, |shutdown| loadgen_coordinator::bench::bench(plan, shutdown)) {
            Ok(r) => r,
            Err(code) => return code,
        };
    let report = match report {
        Ok(r) => r,
        Err(e) => {
            eprintln!("coordinator: {e}");
            return e.exit_code();
        }
    };
    let _ = loadgen_coordinator::bench::render(&report, &mut std::io::stdout().lock());
    if let Some(path) = json {
        let written = std::fs::File::create(path)
            .and_then(|f| serde_json::to_writer_pretty(f, &report).map_err(std::io::Error::other));
        if let Err(e) = written {
            eprintln!("coordinator: cannot write {}: {e}", path.display());
            return EXIT_RUN_FAILED;
        }
    }
    EXIT_OK
}

fn audit_command(schema: &str, url: &str, json: Option<&std::path::Path>) -> u8 {
    let audit = match on_runtime("warn", false, |_| loadgen_coordinator::audit::audit_schema(url, schema)) {
        Err(code) => return code,
        Ok(Ok(a)) => a,
        Ok(Err(e)) => {
            eprintln!("coordinator: {e}");
            return e.exit_code();
        }
    };
    let _ = report::render_audit(schema, &audit, &mut std::io::stdout().lock());
    if let Some(path) = json {
        let written = std::fs::File::create(path)
            .and_then(|f| serde_json::to_writer_pretty(f, &audit).map_err(std::io::Error::other));
        if let Err(e) = written {
            eprintln!("coordinator: cannot write {}: {e}", path.display());
            return EXIT_RUN_FAILED;
        }
    }
    if audit.passed() { EXIT_OK } else { EXIT_GATES_FAILED }
}

async fn async_main(args: Args, shutdown: CancellationToken) -> u8 {
    let mut outcome = match run(&args, shutdown).await {
        Ok(o) => o,
        Err(e) => {
            eprintln!("coordinator: {e}");
            return e.exit_code();
        }
    };
    if let Err(e) = track::finish(&args, &mut outcome) {
        eprintln!("coordinator: {e}");
        return e.exit_code();
    }
    // With --json - stdout carries the JSON alone and the summary goes to stderr.
    let json_to_stdout = args.json.iter().any(|p| p.as_os_str() == "-");
    let summary = if json_to_stdout {
        render(&outcome, &mut std::io::stderr().lock())
    } else {
        render(&outcome, &mut std::io::stdout().lock())
    };
    if let Err(e) = summary {
        eprintln!("coordinator: cannot write the summary: {e}");
    }
    let write_json = |f: &mut dyn Write| {
        if outcome.is_suite() {
            report::render_suite_json(&outcome.profile.name, &outcome.runs, f)
        } else {
            outcome.runs.iter().try_for_each(|r| report::render_json(r, f))
        }
    };
    if let Some(path) = &args.report {
        let many = outcome.runs.len() > 1;
        for (i, r) in outcome.runs.iter().enumerate() {
            // A suite writes one page per run: report-1.html, report-2.html, ...
            let target = if many { numbered(path, i + 1) } else { path.clone() };
            let written = std::fs::File::create(&target).and_then(|f| {
                let mut w = std::io::BufWriter::new(f);
                loadgen_coordinator::html::render_run(r, &mut w)?;
                w.flush()
            });
            if let Err(e) = written {
                let e = CoordinatorError::Output { path: target.display().to_string(), detail: e.to_string() };
                eprintln!("coordinator: {e}");
                return e.exit_code();
            }
            eprintln!("HTML report: {}", target.display());
        }
    }
    for path in &args.json {
        let written = if path.as_os_str() == "-" {
            let mut out = std::io::stdout().lock();
            write_json(&mut out).and_then(|()| out.flush())
        } else {
            std::fs::File::create(path).and_then(|mut f| write_json(&mut f))
        };
        if let Err(e) = written {
            let e = CoordinatorError::Output { path: path.display().to_string(), detail: e.to_string() };
            eprintln!("coordinator: {e}");
            return e.exit_code();
        }
    }
    if outcome.runs.iter().any(|r| r.degraded()) {
        EXIT_DEGRADED
    } else if outcome.passed() {
        EXIT_OK
    } else {
        EXIT_GATES_FAILED
    }
}

/// `dir/name.html` -> `dir/name-<n>.html`.
fn numbered(path: &std::path::Path, n: usize) -> std::path::PathBuf {
    let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "report".into());
    let ext = path.extension().map(|e| format!(".{}", e.to_string_lossy())).unwrap_or_default();
    path.with_file_name(format!("{stem}-{n}{ext}"))
}

/// `coordinator sweep`: steps, then the text summary, JSON and HTML.
fn sweep_command(args: &Args, plan: &loadgen_coordinator::cli::SweepArgs) -> u8 {
    let result = match on_runtime(&args.log, true, |shutdown| loadgen_coordinator::sweep::sweep(args, plan, shutdown)) {
        Ok(r) => r,
        Err(code) => return code,
    };
    let (sweep, runs) = match result {
        Ok(r) => r,
        Err(e) => {
            eprintln!("coordinator: {e}");
            return e.exit_code();
        }
    };
    let json_to_stdout = args.json.iter().any(|p| p.as_os_str() == "-");
    let summary = if json_to_stdout {
        loadgen_coordinator::sweep::render(&sweep, &mut std::io::stderr().lock())
    } else {
        loadgen_coordinator::sweep::render(&sweep, &mut std::io::stdout().lock())
    };
    if let Err(e) = summary {
        eprintln!("coordinator: cannot write the summary: {e}");
    }
    let write_json = |w: &mut dyn Write| -> std::io::Result<()> {
        /// The sweep's JSON document (fields in this order).
        #[derive(serde::Serialize)]
        struct Doc<'a> {
            sweep: &'a loadgen_common::result::SweepReport,
            runs: &'a [loadgen_common::result::RunReport],
        }
        serde_json::to_writer_pretty(&mut *w, &Doc { sweep: &sweep, runs: &runs }).map_err(std::io::Error::other)?;
        writeln!(w)
    };
    let mut outputs: Vec<(std::path::PathBuf, bool)> = args.json.iter().map(|p| (p.clone(), false)).collect();
    outputs.extend(args.report.iter().map(|p| (p.clone(), true)));
    for (path, html) in outputs {
        let written = if path.as_os_str() == "-" {
            let mut out = std::io::stdout().lock();
            write_json(&mut out).and_then(|()| out.flush())
        } else {
            std::fs::File::create(&path).and_then(|f| {
                let mut w = std::io::BufWriter::new(f);
                if html {
                    loadgen_coordinator::html::render_sweep(&sweep, &runs, &mut w)?;
                } else {
                    write_json(&mut w)?;
                }
                w.flush()
            })
        };
        if let Err(e) = written {
            let e = CoordinatorError::Output { path: path.display().to_string(), detail: e.to_string() };
            eprintln!("coordinator: {e}");
            return e.exit_code();
        }
        if html {
            eprintln!("HTML report: {}", path.display());
        }
    }
    // 0 when some step met the SLO (knee found or not), 1 when none did.
    if sweep.max_sustainable_orch_per_sec.is_some() { EXIT_OK } else { EXIT_GATES_FAILED }
}

fn render(outcome: &Outcome, out: &mut dyn Write) -> std::io::Result<()> {
    for r in &outcome.runs {
        report::render_text(r, out)?;
    }
    if outcome.is_suite() {
        report::render_suite(&outcome.profile.name, &outcome.runs, out)?;
    }
    out.flush()
}

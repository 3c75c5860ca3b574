//! `coordinator`: parse, set up logging and signals, run, render, exit.

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;
use loadgen_coordinator::error::{EXIT_GATES_FAILED, EXIT_OK, EXIT_RUN_FAILED};
use loadgen_coordinator::{Args, CoordinatorError, report, run};
use tokio_util::sync::CancellationToken;

fn main() -> ExitCode {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_new(&args.log).unwrap_or_else(|_| "warn".into()))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("coordinator: cannot start the async runtime: {e}");
            return ExitCode::from(EXIT_RUN_FAILED);
        }
    };
    ExitCode::from(rt.block_on(async_main(args)))
}

async fn async_main(args: Args) -> u8 {
    let shutdown = CancellationToken::new();
    let signal = shutdown.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        eprintln!("interrupted; releasing agents and cleaning up (Ctrl-C again does not speed this up)");
        signal.cancel();
    });
    let report = match run(&args, shutdown).await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("coordinator: {e}");
            return e.exit_code();
        }
    };
    let mut stdout = std::io::stdout().lock();
    if let Err(e) = report::render_text(&report, &mut stdout).and_then(|()| stdout.flush()) {
        eprintln!("coordinator: cannot write the summary: {e}");
    }
    if let Some(path) = &args.json {
        let written = std::fs::File::create(path).and_then(|mut f| report::render_json(&report, &mut f));
        if let Err(e) = written {
            let e = CoordinatorError::Output { path: path.display().to_string(), detail: e.to_string() };
            eprintln!("coordinator: {e}");
            return e.exit_code();
        }
    }
    if report.passed { EXIT_OK } else { EXIT_GATES_FAILED }
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

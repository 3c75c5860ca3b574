//! `coordinator`: parse, set up logging and signals, run, render, exit.

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;
use loadgen_common::startup;
use loadgen_coordinator::error::{EXIT_GATES_FAILED, EXIT_OK, EXIT_RUN_FAILED};
use loadgen_coordinator::{Args, CoordinatorError, report, run};
use tokio_util::sync::CancellationToken;

fn main() -> ExitCode {
    let args = Args::parse();
    if let Err(e) = startup::init_tracing(&args.log) {
        eprintln!("coordinator: {e}");
        return ExitCode::from(loadgen_coordinator::error::EXIT_USAGE);
    }
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
        startup::shutdown_signal().await;
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

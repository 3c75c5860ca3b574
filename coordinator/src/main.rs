//! `coordinator`: parse the command line, carry out the command, exit with its code.

use std::process::ExitCode;

use clap::Parser;
use clap::error::ErrorKind;
use loadgen_coordinator::error::{EXIT_OK, EXIT_USAGE};
use loadgen_coordinator::{Cli, cli, command};

fn main() -> ExitCode {
    // DATABASE_URL and LOADGEN_TOKEN may come from ./.env (never printed).
    loadgen_common::startup::load_dotenv();
    // Renamed settings: the old variable still works for one release.
    for (old, new) in [("LOADGEN_COMPLETION_TRACKING", "LOADGEN_COMPLETION_SOURCE")] {
        if let Some(v) = std::env::var_os(old).filter(|_| std::env::var_os(new).is_none())
            && let Some(v) = v.to_str()
        {
            loadgen_common::process::set_env_before_threads(new, v);
        }
    }
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) => {
            let _ = e.print();
            return ExitCode::from(EXIT_OK);
        }
        Err(e) => {
            eprintln!("coordinator: {}", cli::parse_error_line(&e));
            return ExitCode::from(EXIT_USAGE);
        }
    };
    // One connection per agent: make room for a thousand of them.
    loadgen_common::process::raise_open_files_limit();
    ExitCode::from(command::execute(cli))
}

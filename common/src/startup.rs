//! Start-up helpers both binaries share: logging to stderr and the shutdown
//! signal (Ctrl-C or SIGTERM) that `main` ties to its cancellation token.

/// Install the tracing subscriber: `filter` in EnvFilter syntax, output to
/// stderr, colours only on a terminal. Install it before any duroxide runtime
/// starts (the runtime installs its own otherwise).
pub fn init_tracing(filter: &str) -> Result<(), String> {
    let filter =
        tracing_subscriber::EnvFilter::try_new(filter).map_err(|e| format!("invalid log filter {filter:?}: {e}"))?;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init()
        .map_err(|e| format!("cannot install the log subscriber: {e}"))
}

/// Resolve on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
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

//! Start-up helpers both binaries share: logging to stderr and the shutdown
//! signal (Ctrl-C or SIGTERM) that `main` ties to its cancellation token.

use tracing::field::{Field, Visit};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// Install the tracing subscriber: `filter` in EnvFilter syntax, output to
/// stderr, colours only on a terminal. Install it before any duroxide runtime
/// starts (the runtime installs its own otherwise).
pub fn init_tracing(filter: &str) -> Result<(), String> {
    init(filter, None)
}

/// Like [`init_tracing`], and call `on_retry(operation, error)` for every
/// retry duroxide-pg announces ("Retryable error, will retry" at WARN),
/// whatever the log filter lets through: deadlocks it retries inside
/// `fetch_orchestration_item` reach no metric, so this is how they are counted.
pub fn init_tracing_counting_retries(filter: &str, on_retry: fn(&str, &str)) -> Result<(), String> {
    init(filter, Some(on_retry))
}

fn init(filter: &str, on_retry: Option<fn(&str, &str)>) -> Result<(), String> {
    let filter =
        tracing_subscriber::EnvFilter::try_new(filter).map_err(|e| format!("invalid log filter {filter:?}: {e}"))?;
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_filter(filter);
    let tap = on_retry.map(|f| RetryTap(f).with_filter(tracing_subscriber::filter::filter_fn(from_duroxide_pg)));
    tracing_subscriber::registry()
        .with(fmt)
        .with(tap)
        .try_init()
        .map_err(|e| format!("cannot install the log subscriber: {e}"))
}

/// Warnings (and worse) from duroxide-pg: what the retry tap listens to,
/// whatever the log filter shows.
fn from_duroxide_pg(m: &tracing::Metadata<'_>) -> bool {
    (m.target().starts_with("duroxide_pg") || m.target().starts_with("duroxide::providers::postgres"))
        && *m.level() <= tracing::Level::WARN
}

/// Hands duroxide-pg's retry announcements to a counter.
struct RetryTap(fn(&str, &str));

/// The fields of a retry announcement.
#[derive(Default)]
struct RetryFields {
    message: String,
    operation: String,
    error: String,
}

impl Visit for RetryFields {
    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "message" => self.message = value.to_string(),
            "operation" => self.operation = value.to_string(),
            "error" => self.error = value.to_string(),
            _ => {}
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.record_str(field, &format!("{value:?}"));
    }
}

impl<S: tracing::Subscriber> Layer<S> for RetryTap {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        let mut f = RetryFields::default();
        event.record(&mut f);
        if f.message.starts_with("Retryable error") {
            (self.0)(&f.operation, &f.error);
        }
    }
}

/// The variables a `.env` file may set: secrets kept out of shell history.
pub const DOTENV_KEYS: &[&str] = &["DATABASE_URL", "LOADGEN_TOKEN"];

/// `KEY=VALUE` lines of a `.env` file (comments, blank lines, `export `
/// prefixes and surrounding quotes allowed), for `keys` only.
pub fn parse_dotenv(text: &str, keys: &[&str]) -> Vec<(String, String)> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.strip_prefix("export ").unwrap_or(l).split_once('='))
        .map(|(k, v)| {
            let v = v.trim();
            let unquoted = v
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .or_else(|| v.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
                .unwrap_or(v);
            (k.trim().to_string(), unquoted.to_string())
        })
        .filter(|(k, _)| keys.contains(&k.as_str()))
        .collect()
}

/// Set `DATABASE_URL` and `LOADGEN_TOKEN` from `./.env` when the
/// environment does not already have them (the environment wins). Call it
/// from `main` before any thread starts. Returns the names it set (never
/// the values: they are secrets).
pub fn load_dotenv() -> Vec<&'static str> {
    let Ok(text) = std::fs::read_to_string(".env") else { return Vec::new() };
    let mut set = Vec::new();
    for (k, v) in parse_dotenv(&text, DOTENV_KEYS) {
        if let Some(key) = DOTENV_KEYS.iter().find(|d| **d == k)
            && std::env::var_os(key).is_none()
        {
            crate::process::set_env_before_threads(key, &v);
            set.push(*key);
        }
    }
    set
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

/// A command-line parser's error (several lines: the error, a tip, the
/// usage) as one line ending in "(see --help)", with every connection
/// string, password and token this process was given masked: a URL passed
/// where a subcommand or flag was expected is echoed by the parser.
pub fn usage_line(rendered: &str) -> String {
    usage_line_with(rendered, &crate::secret::Secrets::of_process())
}

/// [`usage_line`] with the secrets given.
pub fn usage_line_with(rendered: &str, secrets: &crate::secret::Secrets) -> String {
    let parts: Vec<&str> = rendered
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("Usage:") && !l.starts_with("For more information"))
        .collect();
    let line = format!("{} (see --help)", parts.join(" ").trim_start_matches("error: "));
    secrets.scrub(&line)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    static SEEN: Mutex<Vec<(String, String)>> = Mutex::new(Vec::new());

    fn on_retry(operation: &str, error: &str) {
        SEEN.lock().unwrap_or_else(|p| p.into_inner()).push((operation.into(), error.into()));
    }

    #[test]
    fn dotenv_files_give_only_the_secrets_they_may() {
        let text = "# local settings\nexport DATABASE_URL=\"postgres://u:p@db/x\"\nLOADGEN_TOKEN='abc'\nPATH=/evil\n\nnot a line\n";
        assert_eq!(
            parse_dotenv(text, DOTENV_KEYS),
            [("DATABASE_URL".to_string(), "postgres://u:p@db/x".to_string()), ("LOADGEN_TOKEN".into(), "abc".into())]
        );
    }

    #[test]
    fn retries_duroxide_pg_announces_are_counted_and_nothing_else() {
        let tap = RetryTap(on_retry).with_filter(tracing_subscriber::filter::filter_fn(from_duroxide_pg));
        let subscriber = tracing_subscriber::registry().with(tap);
        tracing::subscriber::with_default(subscriber, || {
            // As duroxide-pg 0.1.38 writes it (its `target = ...` is a field).
            tracing::warn!(target: "duroxide_pg::provider", target = "duroxide::providers::postgres",
                operation = "fetch_orchestration_item", attempt = 1, error = %"deadlock detected",
                "Retryable error, will retry");
            tracing::warn!(target: "duroxide_pg::provider", operation = "x", "something else");
            tracing::warn!(target: "elsewhere", operation = "y", error = "z", "Retryable error, will retry");
        });
        let seen = SEEN.lock().unwrap_or_else(|p| p.into_inner()).clone();
        assert_eq!(seen, [("fetch_orchestration_item".to_string(), "deadlock detected".to_string())]);
    }
}

//! `agent`: serve the load generator's agent protocol.

use std::net::SocketAddr;

use clap::Parser;
use clap::error::ErrorKind;
use loadgen_agent::{AgentConfig, serve};
use loadgen_common::process::hostname;
use loadgen_common::process::pool_max_from_env;
use loadgen_common::startup;
use tokio_util::sync::CancellationToken;

/// Agent of the duroxide-pg load generator.
///
/// Runs duroxide runtimes against the shared schema the coordinator prepared
/// and drives its slice of the load. It reads its own DATABASE_URL: database
/// credentials never travel between coordinator and agent.
#[derive(Debug, Parser)]
#[command(
    name = "agent",
    version = concat!(env!("CARGO_PKG_VERSION"), " (duroxide-pg ", env!("LOADGEN_DUROXIDE_PG_BUILD"), ")")
)]
struct Args {
    /// Address to listen on. Use 0.0.0.0:7000 to accept remote coordinators;
    /// port 0 picks a free port (printed on stdout as "listening on ADDR").
    #[arg(long, env = "AGENT_LISTEN", default_value = "127.0.0.1:7000")]
    listen: SocketAddr,

    /// PostgreSQL URL of the database under test (postgres://user:pass@host:port/db,
    /// or libpq's key=value form: "host=db user=app password=... dbname=app").
    #[arg(
        long,
        env = "DATABASE_URL",
        hide_env_values = true,
        required_unless_present = "synthetic",
        value_parser = database_url
    )]
    database_url: Option<String>,

    /// Connection-pool size of each duroxide-pg provider in this process
    /// (duroxide-pg reads DUROXIDE_PG_POOL_MAX once per provider; default 10).
    #[arg(long, env = "DUROXIDE_PG_POOL_MAX")]
    pool_max: Option<u32>,

    /// Shared token every coordinator request must carry (required).
    #[arg(long, env = "LOADGEN_TOKEN", hide_env_values = true)]
    token: Option<String>,

    /// PEM certificate to serve over TLS (with --tls-key).
    #[arg(long, env = "AGENT_TLS_CERT", requires = "tls_key")]
    tls_cert: Option<std::path::PathBuf>,

    /// PEM private key of --tls-cert.
    #[arg(long, env = "AGENT_TLS_KEY", requires = "tls_cert")]
    tls_key: Option<std::path::PathBuf>,

    /// Serve N synthetic agents instead: the protocol without a database, for
    /// measuring the coordinator (prints one "listening on ADDR" line each;
    /// see docs/scale.md).
    #[arg(long, value_name = "N")]
    synthetic: Option<u32>,

    /// Exit after one run (released by the coordinator, or after losing it),
    /// so a Kubernetes Job completes.
    #[arg(long, env = "AGENT_RUN_ONCE")]
    run_once: bool,

    /// Let the coordinator's clock-skew fault shift this agent's wall clock
    /// (the agent runs itself under libfaketime, Debian package libfaketime;
    /// monotonic time stays true). Off, a clock-skew fault on this agent is
    /// refused.
    #[arg(long, env = "AGENT_CLOCK_CONTROL")]
    clock_control: bool,

    /// Run only duroxide runtimes on the schema named in LOADGEN_RUNTIMES_SPEC
    /// (after applying this build's migrations), until SIGTERM: how an agent
    /// hands its runtimes to this build in a rolling upgrade (the
    /// coordinator's upgrade-agent fault). Not for direct use.
    #[arg(long)]
    runtimes_only: bool,

    /// Serve this agent's Prometheus metrics at http://ADDR/metrics: duroxide's
    /// own runtime and provider metrics, each runtime's counters, and the
    /// agent's slice (run, phase, share, activities). ADDR is host:port or
    /// :port (every interface); the coordinator's --metrics-listen has the
    /// cluster-wide figures.
    #[arg(long, env = "AGENT_METRICS_LISTEN", value_name = "ADDR", value_parser = loadgen_common::http::parse_address)]
    metrics_listen: Option<SocketAddr>,

    /// Log filter (tracing EnvFilter syntax), e.g. "info" or "loadgen_agent=debug,warn".
    #[arg(long, env = "AGENT_LOG", default_value = "info")]
    log: String,
}

/// A Postgres URL or key=value string, checked and as one URL; `sqlite:`
/// (the coordinator's SQLite providers) as given.
fn database_url(text: &str) -> Result<String, String> {
    if text.starts_with("sqlite:") { Ok(text.to_string()) } else { loadgen_common::dburl::normalize(text) }
}

fn main() -> std::process::ExitCode {
    // DATABASE_URL and LOADGEN_TOKEN may come from ./.env (never printed).
    startup::load_dotenv();
    let args = match Args::try_parse() {
        Ok(args) => args,
        Err(e) if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) => {
            let _ = e.print();
            return std::process::ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("agent: {}", startup::usage_line(&e.to_string()));
            return std::process::ExitCode::from(2);
        }
    };
    // Before any thread: with --clock-control this runs the agent again
    // under libfaketime (and returns only in that second run).
    let clock = match loadgen_agent::clock::take_control(args.clock_control) {
        Ok(c) => c.map(std::sync::Arc::new),
        Err(e) => {
            eprintln!("agent: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    // Synthetic agents hold a listener and a connection each.
    loadgen_common::process::raise_open_files_limit();
    // Logs go to stderr; stdout carries the listen line.
    if let Err(e) = startup::init_tracing_counting_retries(&args.log, loadgen_agent::metrics::count_retry) {
        eprintln!("agent: {e}");
        return std::process::ExitCode::from(2);
    }
    loadgen_agent::metrics::install();
    if let Some(n) = args.pool_max {
        if n == 0 {
            eprintln!("agent: --pool-max must be at least 1");
            return std::process::ExitCode::from(2);
        }
        // Before the async runtime exists: no other thread can read the environment yet.
        loadgen_common::process::set_env_before_threads("DUROXIDE_PG_POOL_MAX", &n.to_string());
    }
    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("agent: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let clock_dir = clock.is_some().then(|| loadgen_common::clock::control_dir(std::process::id()));
    let result = rt.block_on(run(args, clock));
    if let Some(dir) = clock_dir {
        let _ = std::fs::remove_dir_all(dir);
    }
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("agent: {}", loadgen_common::secret::Secrets::of_process().scrub(&format!("{e:#}")));
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(args: Args, clock: Option<std::sync::Arc<loadgen_agent::clock::ClockControl>>) -> anyhow::Result<()> {
    if let Some(n) = args.synthetic {
        let token = args.token.clone().unwrap_or_default();
        let shutdown = CancellationToken::new();
        let signal = shutdown.clone();
        tokio::spawn(async move {
            startup::shutdown_signal().await;
            signal.cancel();
        });
        return loadgen_agent::synthetic::serve(n, &token, shutdown).await;
    }
    let Some(database_url) = args.database_url.clone() else {
        anyhow::bail!("--database-url (or DATABASE_URL) is required");
    };
    if args.runtimes_only {
        return loadgen_agent::upgrade::serve_runtimes_only(database_url).await;
    }
    let Some(token) = args.token.clone() else {
        anyhow::bail!(
            "the agent API requires a shared token: set LOADGEN_TOKEN (or pass --token) here and on the coordinator"
        );
    };
    loadgen_common::auth::validate_agent_token(&token).map_err(anyhow::Error::msg)?;
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(c), Some(k)) => {
            let read =
                |p: &std::path::Path| std::fs::read(p).map_err(|e| anyhow::anyhow!("cannot read {}: {e}", p.display()));
            Some((read(c)?, read(k)?))
        }
        _ => None,
    };
    let _metrics = match args.metrics_listen {
        Some(address) => {
            let server = loadgen_agent::exposition::listen(address).map_err(anyhow::Error::msg)?;
            tracing::info!(address = %server.address(), "serving metrics at /metrics");
            Some(server)
        }
        None => None,
    };
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", args.listen))?;
    let local = listener.local_addr()?;
    if !local.ip().is_loopback() && tls.is_none() {
        tracing::warn!(%local, "listening on a non-loopback address without TLS: the token and all traffic travel in clear");
    }
    // The coordinator's --local mode reads this line to learn the port.
    println!("listening on {local}");
    let shutdown = CancellationToken::new();
    let signal = shutdown.clone();
    tokio::spawn(async move {
        startup::shutdown_signal().await;
        tracing::info!("signal received; shutting down");
        signal.cancel();
    });
    // Say at once when the database is out of reach; keep serving, since it
    // may come up before a coordinator does.
    let url = database_url.clone();
    // "sqlite:" (the coordinator's SQLite runs) names no server to reach.
    let probe = !url.starts_with("sqlite:");
    tokio::spawn(async move {
        if !probe {
            return;
        }
        use sqlx::Connection;
        let attempt = tokio::time::timeout(std::time::Duration::from_secs(10), sqlx::PgConnection::connect(&url)).await;
        let problem = match attempt {
            Ok(Ok(conn)) => {
                let _ = conn.close().await;
                None
            }
            Ok(Err(e)) => Some(e.to_string()),
            Err(_) => Some("no answer within 10s".to_string()),
        };
        if let Some(p) = problem {
            let masked = loadgen_common::secret::mask_url(&url);
            tracing::warn!(database = %masked, error = %loadgen_common::secret::scrub(&p, &url), "cannot reach the database yet");
        }
    });
    let config = AgentConfig {
        database_url,
        pool_max: pool_max_from_env(),
        hostname: hostname(),
        run_once: args.run_once,
        token,
        tls,
        clock,
    };
    serve(listener, config, shutdown).await
}

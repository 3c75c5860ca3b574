//! The agent of the duroxide-pg load generator.
//!
//! An agent serves the coordinator's gRPC protocol. For each run it connects
//! to the shared schema with its own `DATABASE_URL`, starts duroxide runtimes
//! with the run's scenario registered, keeps its slice of orchestrations in
//! flight, and streams progress and its latency histograms back.
//!
//! - [`service`]: the gRPC handlers (thin: convert, call [`session`], map errors);
//! - [`wire`]: a `PrepareRequest` into the domain [`plan::RunSpec`];
//! - [`session`]: the agent's one run at a time (prepare, run, release);
//! - [`plan`]: what a run asks of this agent (workload, runtimes, load model);
//! - [`driver`]: the load driver (closed and open loop, hooks, completions);
//! - [`tracker`]: the batched completion query;
//! - [`lease`]: the coordinator's heartbeat lease on a running agent;
//! - [`metrics`]: provider errors counted from duroxide's metrics;
//! - [`runtimes`]: starting and stopping the duroxide runtimes;
//! - [`relay`]: the TCP relay that adds an artificial database latency;
//! - [`clock`]: `--clock-control`, the wall clock a clock-skew fault shifts;
//! - [`upgrade`]: a rolling upgrade, the runtimes handed to a successor of another build;
//! - [`scenario`]: the scenario library (one file each, one registry line);
//! - [`synthetic`]: database-free agents for measuring the coordinator's fan-in;
//! - [`error`]: the agent's errors and their gRPC mapping.

use std::net::SocketAddr;

use loadgen_common::auth::RequireToken;
use loadgen_common::proto::agent_server::AgentServer;
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tokio_util::sync::CancellationToken;

pub mod clock;
pub mod driver;
pub mod error;
pub mod exposition;
pub mod inspect;
pub mod lease;
pub mod metrics;
pub mod plan;
pub mod relay;
pub mod runtimes;
/// The scenario library, a crate of its own (the coordinator reads it too).
pub use loadgen_scenarios as scenario;
pub mod service;
pub mod session;
pub mod synthetic;
pub mod tracker;
pub mod upgrade;
pub mod wire;

pub use session::Agent;

/// Settings of one agent process.
#[derive(Clone)]
pub struct AgentConfig {
    /// The agent's own database URL; it never crosses the wire.
    pub database_url: String,
    /// `DUROXIDE_PG_POOL_MAX` as the providers in this process will read it.
    pub pool_max: u32,
    pub hostname: String,
    /// Exit after the first run is released.
    pub run_once: bool,
    /// The shared token every request must carry.
    pub token: String,
    /// PEM certificate and key, to serve over TLS.
    pub tls: Option<(Vec<u8>, Vec<u8>)>,
    /// The wall clock's control (`--clock-control`).
    pub clock: Option<std::sync::Arc<clock::ClockControl>>,
}

impl std::fmt::Debug for AgentConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentConfig")
            .field("database_url", &loadgen_common::secret::mask_url(&self.database_url))
            .field("pool_max", &self.pool_max)
            .field("hostname", &self.hostname)
            .field("tls", &self.tls.is_some())
            .finish_non_exhaustive()
    }
}

/// Serve the agent protocol on `listener` until `shutdown` is cancelled, then
/// release any active run (its runtimes are shut down) and return.
pub async fn serve(listener: TcpListener, config: AgentConfig, shutdown: CancellationToken) -> anyhow::Result<()> {
    let run_once = config.run_once;
    let require = RequireToken::new(&config.token).map_err(anyhow::Error::msg)?;
    let tls = config.tls.clone();
    let mut agent = Agent::new(config);
    if run_once {
        agent = agent.exit_after_run(shutdown.clone());
    }
    let viewed = agent.clone();
    exposition::attach(move || viewed.view());
    let local: SocketAddr = listener.local_addr()?;
    let mut builder = tonic::transport::Server::builder()
        .http2_keepalive_interval(Some(std::time::Duration::from_secs(2)))
        .http2_keepalive_timeout(Some(std::time::Duration::from_secs(5)));
    if let Some((cert, key)) = tls {
        let identity = tonic::transport::Identity::from_pem(cert, key);
        builder = builder
            .tls_config(tonic::transport::ServerTlsConfig::new().identity(identity))
            .map_err(|e| anyhow::anyhow!("TLS configuration: {e}"))?;
    }
    tracing::info!(%local, "agent serving");
    let result = builder
        .add_service(AgentServer::with_interceptor(agent.clone(), require))
        .serve_with_incoming_shutdown(TcpListenerStream::new(listener), shutdown.cancelled())
        .await;
    agent.release_any().await;
    result.map_err(Into::into)
}

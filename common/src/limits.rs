//! The bounds a plan must keep, checked by the coordinator at plan time and
//! by the agent on Prepare with the same constants, so a plan the
//! coordinator accepts is never refused by an agent afterwards.

use std::time::Duration;

/// duroxide runtimes one agent process runs against the shared schema.
pub const MAX_RUNTIMES_PER_AGENT: u32 = 64;

/// Orchestrations one agent keeps in flight (its budget, or its open-loop
/// cap): the wire carries it as a 32-bit count.
pub const MAX_IN_FLIGHT_PER_AGENT: u64 = u32::MAX as u64;

/// Open-loop starts per second, cluster-wide.
pub const MAX_RATE: f64 = 1_000_000.0;

/// duroxide's orchestrator lock timeout: at least a second, at most ten minutes.
pub const ORCHESTRATOR_LOCK: (Duration, Duration) = (Duration::from_secs(1), Duration::from_secs(600));

/// duroxide's worker lock timeout: duroxide refuses one longer than its
/// session idle timeout (5 minutes).
pub const WORKER_LOCK: (Duration, Duration) = (Duration::from_secs(1), Duration::from_secs(300));

/// The artificial one-way delay between an agent's runtimes and Postgres.
pub const MAX_DB_LATENCY: Duration = Duration::from_secs(10);

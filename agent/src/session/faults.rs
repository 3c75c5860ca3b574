//! The faults an agent applies to its own run when the coordinator asks:
//! its relay (latency, a partition), its wall clock, a runtime restarted,
//! and its runtimes handed to a successor of another build.

use std::sync::Arc;
use std::time::Duration;

use super::{Agent, RelayFault};
use crate::relay::Relay;
use crate::runtimes::Runtimes;

impl Agent {
    /// A relay fault from the coordinator: change this run's relay for
    /// `duration`, then undo it. Without a relay (the run did not ask for
    /// one) the fault is logged and ignored.
    pub fn relay_fault(&self, fault: RelayFault, duration: Duration) {
        let knobs = self.lock().as_ref().and_then(|s| s.relay.as_ref().map(Relay::knobs));
        let Some(knobs) = knobs else {
            tracing::warn!(?fault, "relay fault without a relay; ignored");
            return;
        };
        tracing::info!(?fault, duration_ms = duration.as_millis() as u64, "relay fault");
        match fault {
            RelayFault::Latency(d) => knobs.set_extra_delay(d),
            RelayFault::Partition => knobs.set_blocked(true),
        }
        tokio::spawn(async move {
            tokio::time::sleep(duration).await;
            knobs.set_extra_delay(Duration::ZERO);
            knobs.set_blocked(false);
            tracing::info!("relay fault undone");
        });
    }

    /// Refuse new database connections through this run's relay as
    /// `refusal` says, for `duration`: how many were refused.
    pub async fn refuse_connect(&self, refusal: crate::relay::Refusal, duration: Duration) -> Result<String, String> {
        let knobs = self.lock().as_ref().and_then(|s| s.relay.as_ref().map(Relay::knobs));
        let Some(knobs) = knobs else {
            return Err("this agent's run has no relay to refuse connections at".into());
        };
        let code = refusal.code.clone();
        let (attempts0, refused0) = knobs.connections();
        tracing::info!(%code, duration_ms = duration.as_millis() as u64, "refusing new database connections");
        knobs.set_refusal(Some(refusal));
        tokio::time::sleep(duration).await;
        knobs.set_refusal(None);
        let (attempts, refused) = knobs.connections();
        Ok(format!("{} of {} connection(s) refused with {code}", refused - refused0, attempts - attempts0))
    }

    /// A runtime restart from the coordinator's schedule: shut runtime
    /// `index` of this run down, leave it down for `downtime`, start a fresh
    /// one. Returns what happened, or why it could not.
    /// Shift this agent's wall clock by `offset_us` for `duration` (until
    /// the run's release when zero): what was set, or why not.
    pub fn clock_skew(&self, offset_us: i64, duration: Duration) -> Result<String, String> {
        let Some(clock) = self.config.clock.clone() else {
            return Err("this agent cannot shift its clock: start it with --clock-control".into());
        };
        clock.set(offset_us)?;
        let text = loadgen_common::clock::offset_text(offset_us);
        tracing::info!(offset = %text, duration_ms = duration.as_millis() as u64, "clock skewed");
        if !duration.is_zero() {
            tokio::spawn(async move {
                tokio::time::sleep(duration).await;
                if let Err(e) = clock.set(0) {
                    tracing::warn!(error = %e, "clock not set back");
                }
            });
        }
        Ok(format!("wall clock {text} s"))
    }

    /// Hand this agent's runtimes to `binary` (another build) started with
    /// `--runtimes-only`, then stop its own; the driver and client go on.
    pub async fn upgrade_runtimes(&self, binary: &std::path::Path) -> Result<String, String> {
        let found = self.lock().as_ref().and_then(|s| {
            let fleet = s.runtimes.as_ref().map(Runtimes::fleet)?;
            let node = format!("{}-a{}-up", s.run_id, s.plan.as_ref().map_or(0, |p| p.agent_index));
            Some((fleet, node, Arc::clone(&s.counters), s.successor.is_some()))
        });
        let Some((fleet, node, counters, already)) = found else {
            return Err("no run with runtimes on this agent".into());
        };
        if already {
            return Err("this agent's runtimes were already handed over".into());
        }
        let Some((url, schema)) = fleet.postgres().map(|(u, s)| (u.to_string(), s.to_string())) else {
            return Err("a rolling upgrade needs Postgres (the store must outlive the process)".into());
        };
        let handover = crate::upgrade::Handover { schema, node_prefix: node, settings: fleet.settings().clone() };
        let (successor, build) = crate::upgrade::Successor::start(binary, &url, &handover, counters).await?;
        let stopped = fleet.stop_all().await;
        // Kept by the run, or handed back when the run was released meanwhile.
        let refused = match self.lock().as_mut() {
            Some(s) => {
                s.successor = Some(successor);
                None
            }
            None => Some(successor),
        };
        if let Some(successor) = refused {
            successor.stop().await;
            return Err("the run was released during the upgrade".into());
        }
        tracing::info!(%build, stopped, "runtimes handed over");
        Ok(format!("{stopped} runtime(s) handed over to {} ({build})", binary.display()))
    }

    pub async fn restart_runtime(&self, index: u32, downtime: Duration) -> Result<String, String> {
        let fleet = self.lock().as_ref().and_then(|s| s.runtimes.as_ref().map(Runtimes::fleet));
        match fleet {
            Some(fleet) => fleet.restart(index, downtime).await,
            None => Err("no run with runtimes on this agent".into()),
        }
    }
}

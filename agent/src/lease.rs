//! The coordinator's lease on a running agent.
//!
//! While a run streams, the coordinator sends a heartbeat every second on the
//! Run call's control stream. Each heartbeat renews the lease; when none has
//! arrived for [`LEASE`], or the control stream ends before the run does, the
//! coordinator is taken as lost and the agent stops starting orchestrations
//! and shuts its runtimes down: a load generator must never keep loading a
//! database on its own. A `stop` message ends the load early but normally.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

/// How long the agent keeps running without hearing from its coordinator.
pub const LEASE: Duration = Duration::from_secs(3);
/// How often the lease is checked.
const CHECK_EVERY: Duration = Duration::from_millis(250);

/// Shared between the control-stream reader, the watch task and the driver.
#[derive(Debug, Clone)]
pub struct Lease {
    last: Arc<Mutex<Instant>>,
    /// Cancelled when the coordinator is lost.
    pub lost: CancellationToken,
    /// Cancelled when the coordinator asks the load to stop early.
    pub stop: CancellationToken,
    reason: Arc<Mutex<Option<String>>>,
}

impl Lease {
    /// A fresh lease, renewed now, watched until `until` is cancelled.
    pub fn start(lease: Duration, until: CancellationToken) -> Lease {
        let l = Lease {
            last: Arc::new(Mutex::new(Instant::now())),
            lost: CancellationToken::new(),
            stop: CancellationToken::new(),
            reason: Arc::new(Mutex::new(None)),
        };
        let watch = l.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(CHECK_EVERY) => {}
                    _ = until.cancelled() => return,
                    _ = watch.lost.cancelled() => return,
                }
                let silent = watch.last.lock().map(|t| t.elapsed()).unwrap_or_default();
                if silent > lease {
                    watch.lose(format!("no heartbeat from the coordinator for {:.1}s", silent.as_secs_f64()));
                    return;
                }
            }
        });
        l
    }

    /// A heartbeat arrived.
    pub fn renew(&self) {
        if let Ok(mut t) = self.last.lock() {
            *t = Instant::now();
        }
    }

    /// The coordinator is gone (first reason wins).
    pub fn lose(&self, reason: String) {
        if let Ok(mut r) = self.reason.lock()
            && r.is_none()
        {
            *r = Some(reason);
        }
        self.lost.cancel();
    }

    /// Why the lease was lost, if it was.
    pub fn reason(&self) -> Option<String> {
        self.reason.lock().ok().and_then(|r| r.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn heartbeats_keep_it_and_silence_loses_it() {
        let until = CancellationToken::new();
        let lease = Lease::start(Duration::from_millis(300), until.clone());
        for _ in 0..6 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            lease.renew();
        }
        assert!(!lease.lost.is_cancelled(), "renewed lease was lost");
        let silent_from = Instant::now();
        tokio::time::timeout(Duration::from_secs(2), lease.lost.cancelled()).await.expect("lost after silence");
        let took = silent_from.elapsed();
        assert!(took >= Duration::from_millis(300) && took < Duration::from_millis(900), "{took:?}");
        assert!(lease.reason().is_some_and(|r| r.contains("no heartbeat")));
        until.cancel();
    }
}

//! Where an activity writes its line of the ledger
//! ([`loadgen_common::ledger`]): a buffer the agent's next interval report
//! takes, bounded so runtimes nobody reports for cannot grow it without end.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use loadgen_common::ledger::ActivityRun;

/// Most executions held between two reports (a report takes them every
/// second; this is minutes of the fastest runs this tool makes).
pub const HELD: usize = 1_000_000;

/// Executions not yet reported.
#[derive(Debug, Default)]
pub struct Buffer {
    runs: Mutex<Vec<ActivityRun>>,
    dropped: AtomicU64,
}

impl Buffer {
    /// An activity ran.
    pub fn record(&self, run: ActivityRun) {
        match self.runs.lock() {
            Ok(mut v) if v.len() < HELD => v.push(run),
            _ => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// `n` executions that ran elsewhere could not be kept.
    pub fn dropped(&self, n: u64) {
        self.dropped.fetch_add(n, Ordering::Relaxed);
    }

    /// Every execution since the last take, and how many were dropped
    /// since then (the buffer was full).
    pub fn take(&self) -> (Vec<ActivityRun>, u64) {
        let runs = self.runs.lock().map(|mut v| std::mem::take(&mut *v)).unwrap_or_default();
        (runs, self.dropped.swap(0, Ordering::Relaxed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_take_empties_the_buffer_and_says_what_was_dropped() {
        let b = Buffer::default();
        b.record(ActivityRun { instance: "r-0-1".into(), ok: true, ..ActivityRun::default() });
        let (runs, dropped) = b.take();
        assert_eq!((runs.len(), dropped), (1, 0));
        assert_eq!(b.take().0.len(), 0);
        {
            let mut v = b.runs.lock().expect("lock");
            v.resize(HELD, ActivityRun::default());
        }
        b.record(ActivityRun::default());
        let (runs, dropped) = b.take();
        assert_eq!((runs.len(), dropped), (HELD, 1));
    }
}

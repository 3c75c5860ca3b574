//! What writes through a cluster's write endpoint saw while a fault
//! changed its leader (the switchover and failover kinds measure it).

use serde::{Deserialize, Serialize};

/// Writes through a cluster's write endpoint while its leader changed: a
/// small write (a transaction id taken) every `probe_ms`, on one
/// connection opened again after each failure. Times are seconds after
/// the fault began: a failed write by when it was sent, a successful one by
/// when it was done, so `unavailable_s` is the whole gap a client saw (to
/// within one probe).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct WriteOutage {
    pub probe_ms: u64,
    /// The first write that failed (`None`: none failed).
    pub first_failed_s: Option<f64>,
    /// The first write that succeeded after it (`None`: none within the probe's bound).
    pub first_ok_s: Option<f64>,
    /// From the first failed write to the first successful one.
    pub unavailable_s: Option<f64>,
    /// Writes that failed in between.
    pub failed_writes: u64,
    /// The first failure, as the client read it (with its SQLSTATE when the server sent one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_error: Option<String>,
}

impl WriteOutage {
    /// "writes unavailable 1.62 s (first failed 0.31 s in: 57P01 terminating connection ...; 14 failed writes)".
    pub fn line(&self) -> String {
        match (self.first_failed_s, self.first_ok_s, self.unavailable_s) {
            (None, _, _) => format!("no write failed (probed every {} ms)", self.probe_ms),
            (Some(f), Some(_), Some(u)) => format!(
                "writes unavailable {u:.2} s (first failed {f:.2} s in: {}; {} failed write(s))",
                self.first_error.as_deref().unwrap_or("?"),
                self.failed_writes
            ),
            (Some(f), _, _) => format!(
                "writes unavailable from {f:.2} s in, and not back while probed ({}; {} failed write(s))",
                self.first_error.as_deref().unwrap_or("?"),
                self.failed_writes
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_outage_is_said_in_one_line() {
        let none = WriteOutage { probe_ms: 50, ..Default::default() };
        assert_eq!(none.line(), "no write failed (probed every 50 ms)");
        let back = WriteOutage {
            probe_ms: 50,
            first_failed_s: Some(0.31),
            first_ok_s: Some(1.93),
            unavailable_s: Some(1.62),
            failed_writes: 14,
            first_error: Some("57P01 terminating connection due to administrator command".into()),
        };
        assert_eq!(
            back.line(),
            "writes unavailable 1.62 s (first failed 0.31 s in: 57P01 terminating connection due to administrator command; 14 failed write(s))"
        );
        let still = WriteOutage { first_ok_s: None, unavailable_s: None, ..back };
        assert!(
            still.line().starts_with("writes unavailable from 0.31 s in, and not back while probed"),
            "{}",
            still.line()
        );
    }
}

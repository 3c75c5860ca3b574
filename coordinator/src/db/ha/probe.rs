//! How long writes through the cluster's one write endpoint were
//! unavailable while its leader changed: a small write (`txid_current()`,
//! which a standby refuses) every [`EVERY`] on one connection, opened again
//! after each failure, from just before the change until the first write
//! that succeeds after one that failed.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use sqlx::Connection;

use crate::faults::WriteOutage;

/// How often a write is tried.
const EVERY: Duration = Duration::from_millis(50);
/// One write (with its connection) may take this long before it counts as failed.
const TRY_BOUND: Duration = Duration::from_secs(1);
/// The probe gives up this long after it began.
const BOUND: Duration = Duration::from_secs(120);

/// A probe under way.
pub struct WriteProbe {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<WriteOutage>,
}

impl WriteProbe {
    /// Start probing `url` (times are counted from now).
    pub fn start(url: &str) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let task = tokio::spawn(probe(url.to_string(), Arc::clone(&stop), Instant::now()));
        WriteProbe { stop, task }
    }

    /// What it saw: at once when no write has failed, else once a write
    /// succeeded again (within the probe's bound).
    pub async fn finish(mut self) -> WriteOutage {
        self.stop.store(true, Ordering::Relaxed);
        (&mut self.task).await.unwrap_or_default()
    }
}

impl Drop for WriteProbe {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn probe(url: String, stop: Arc<AtomicBool>, started: Instant) -> WriteOutage {
    let mut o = WriteOutage { probe_ms: EVERY.as_millis() as u64, ..Default::default() };
    let mut conn: Option<sqlx::PgConnection> = None;
    loop {
        let sent = started.elapsed().as_secs_f64();
        match tokio::time::timeout(TRY_BOUND, write(&url, &mut conn)).await {
            Ok(Ok(())) => {
                if let Some(failed) = o.first_failed_s {
                    let done = started.elapsed().as_secs_f64();
                    o.first_ok_s = Some(done);
                    o.unavailable_s = Some(done - failed);
                    break;
                }
            }
            result => {
                conn = None;
                o.failed_writes += 1;
                if o.first_failed_s.is_none() {
                    let error = match result {
                        Ok(Err(e)) => e,
                        _ => format!("no answer within {TRY_BOUND:?}"),
                    };
                    o.first_failed_s = Some(sent);
                    o.first_error = Some(loadgen_common::secret::scrub(&crate::error::one_line(&error), &url));
                }
            }
        }
        if (stop.load(Ordering::Relaxed) && o.first_failed_s.is_none()) || started.elapsed() >= BOUND {
            break;
        }
        tokio::time::sleep(EVERY).await;
    }
    if let Some(c) = conn {
        let _ = c.close().await;
    }
    o
}

/// One write on `conn` (connecting first when there is none).
async fn write(url: &str, conn: &mut Option<sqlx::PgConnection>) -> Result<(), String> {
    let c = match conn {
        Some(c) => c,
        None => conn.insert(sqlx::PgConnection::connect(url).await.map_err(|e| said(&e))?),
    };
    sqlx::query_scalar::<_, i64>("SELECT txid_current()").fetch_one(c).await.map(drop).map_err(|e| said(&e))
}

/// "57P01 terminating connection due to administrator command", or the client's own error.
fn said(e: &sqlx::Error) -> String {
    match e.as_database_error() {
        Some(d) => format!("{} {}", d.code().unwrap_or_default(), d.message()),
        None => e.to_string(),
    }
}

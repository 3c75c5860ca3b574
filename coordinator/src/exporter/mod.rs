//! Live figures for Prometheus (`--metrics-listen ADDR`): the run's
//! cluster-wide counters, rates, merged latency histograms with their exact
//! quantiles, the database's figures, agents and faults, at
//! `http://ADDR/metrics` while the run goes. The exporter listens to the
//! run's notices (it is an [`Observer`]) and keeps serving until the result
//! is written, plus `--linger`, so a last scrape sees the totals.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use prometheus_client::registry::Registry;

use crate::notice::{Notice, Observer};

pub mod figures;

use figures::Shared;

/// A listening exporter.
#[derive(Debug)]
pub struct Exporter {
    figures: Arc<Shared>,
    server: loadgen_common::http::Server,
    /// CPU time spent keeping the figures up to date (ns).
    cost: Arc<AtomicU64>,
}

/// Run `f`, adding the CPU time this thread spent in it to `cost`.
fn costed<T>(cost: &AtomicU64, f: impl FnOnce() -> T) -> T {
    let t0 = loadgen_common::process::thread_cpu_time();
    let out = f();
    let spent = loadgen_common::process::thread_cpu_time().saturating_sub(t0);
    cost.fetch_add(u64::try_from(spent.as_nanos()).unwrap_or(u64::MAX), Ordering::Relaxed);
    out
}

pub use loadgen_common::http::parse_address;

impl Exporter {
    /// Listen on `address` (port 0: any free one).
    pub fn listen(address: SocketAddr) -> Result<Exporter, String> {
        let figures = Arc::new(Shared::default());
        let mut registry = Registry::default();
        registry.register_collector(Box::new(Arc::clone(&figures)));
        let cost = Arc::new(AtomicU64::new(0));
        let server = loadgen_common::http::Server::start(address, move || {
            let mut out = String::new();
            if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &registry) {
                tracing::warn!(error = %e, "the metrics could not be encoded");
            }
            out
        })
        .map_err(|e| format!("--metrics-listen {address}: cannot listen: {e}"))?;
        Ok(Exporter { figures, server, cost })
    }

    /// CPU time spent so far keeping the figures and answering scrapes
    /// (the server's thread, and the live view's updates).
    pub fn cpu_time(&self) -> Duration {
        Duration::from_nanos(self.cost.load(Ordering::Relaxed)) + self.server.cpu_time()
    }

    /// Where it listens.
    pub fn address(&self) -> SocketAddr {
        self.server.address()
    }

    /// Keep serving for `linger` (the result is written), then stop.
    pub fn close(self, linger: Duration, obs: &dyn Observer) {
        if !linger.is_zero() {
            obs.notice(&Notice::Note(format!(
                "metrics: serving the final figures at http://{}/metrics for {}",
                self.address(),
                humantime(linger)
            )));
            std::thread::sleep(linger);
        }
    }

    fn with(&self, f: impl FnOnce(&mut figures::Figures)) {
        costed(&self.cost, || {
            let mut figures = self.figures.0.lock().unwrap_or_else(|p| p.into_inner());
            f(&mut figures);
        });
    }
}

fn humantime(d: Duration) -> String {
    format!("{:.0}s", d.as_secs_f64())
}

impl Observer for Exporter {
    fn notice(&self, n: &Notice<'_>) {
        match n {
            Notice::RunStarting { run_id, agents, profile, scenario, builds, .. } => {
                self.with(|f| f.start(run_id, profile, scenario, builds, *agents))
            }
            Notice::Live(frame) => self.with(|f| f.frame(frame)),
            Notice::FaultBegan { kind, .. } => self.with(|f| f.fault(kind, true)),
            Notice::FaultEnded { kind, .. } => self.with(|f| f.fault(kind, false)),
            Notice::RunEnded(report) => self.with(|f| f.result(report)),
            _ => {}
        }
    }
}

/// The console and, when asked for, the exporter: every notice goes to both.
pub struct Watch<'a> {
    pub console: &'a dyn Observer,
    pub exporter: Option<Exporter>,
}

impl<'a> Watch<'a> {
    /// The console, and the metrics endpoint when `outputs` ask for one (a
    /// port that cannot be had is an error, before anything starts).
    pub fn open(console: &'a dyn Observer, outputs: &crate::plan::Outputs) -> Result<Self, String> {
        let exporter = match outputs.metrics {
            Some(address) => {
                let x = Exporter::listen(address)?;
                console.notice(&Notice::Note(format!("metrics: http://{}/metrics", x.address())));
                Some(x)
            }
            None => None,
        };
        Ok(Watch { console, exporter })
    }

    /// The result is written: linger if asked, then stop serving.
    pub fn close(self, linger: Duration) {
        if let Some(x) = self.exporter {
            x.close(linger, self.console);
        }
    }
}

impl Observer for Watch<'_> {
    fn notice(&self, n: &Notice<'_>) {
        self.console.notice(n);
        if let Some(x) = &self.exporter {
            x.notice(n);
        }
    }
}

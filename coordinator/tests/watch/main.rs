//! Watching a run live: the metrics endpoint checked against a real
//! Prometheus server (Debian's package, started by the test on loopback),
//! and the dashboard's queries run against it.

#[path = "../support/mod.rs"]
mod support;

mod abort;
mod agent;
mod prometheus;
mod scrape;

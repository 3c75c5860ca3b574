//! A rolling upgrade of one agent: its runtimes handed to a successor
//! process of another build while the run goes on.
//!
//! The coordinator's `upgrade-agent` fault names an agent binary (built
//! against another duroxide-pg release). The agent starts it with
//! `--runtimes-only` ([`serve_runtimes_only`]): the successor applies its
//! own build's migrations to the run's schema (under the runtimes of the
//! old build still running, here and on the other agents), starts the same
//! runtimes with every scenario registered, and says so on its stdout. The
//! agent then stops its own runtimes; its driver and client (the old build)
//! go on starting and following orchestrations. The successor reports its
//! activity executions every 100 ms, which the agent counts as its own, and
//! stops at the run's release.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::plan::RuntimeSpec;
use crate::runtimes::{Backend, Runtimes};
use crate::scenario::ActivityCounters;

/// The successor's settings (no secret: its URL comes in `DATABASE_URL`).
pub const SPEC_ENV: &str = "LOADGEN_RUNTIMES_SPEC";
/// How long a successor may take to migrate and start its runtimes.
const START_TIMEOUT: Duration = Duration::from_secs(120);
/// How long a successor may take to stop at the release.
const STOP_TIMEOUT: Duration = Duration::from_secs(20);
/// How often the successor reports its activity executions.
const REPORT_EVERY: Duration = Duration::from_millis(100);

/// What a successor runs: the schema, its workers' name prefix, the settings.
#[derive(Clone, Debug, PartialEq)]
pub struct Handover {
    pub schema: String,
    pub node_prefix: String,
    pub settings: RuntimeSpec,
}

impl Handover {
    /// As the successor reads it from [`SPEC_ENV`].
    pub fn to_text(&self) -> String {
        let s = &self.settings;
        let ms = |d: Option<Duration>| d.map_or(String::new(), |d| d.as_millis().to_string());
        format!(
            "schema={};node={};runtimes={};orch={};worker={};poll_ms={};orch_lock_ms={};worker_lock_ms={}",
            self.schema,
            self.node_prefix,
            s.runtimes,
            s.orchestration_concurrency,
            s.worker_concurrency,
            s.poll_interval.as_millis(),
            ms(s.orchestrator_lock_timeout),
            ms(s.worker_lock_timeout)
        )
    }

    pub fn parse(text: &str) -> Result<Self, String> {
        let fields: BTreeMap<&str, &str> = text.split(';').filter_map(|kv| kv.split_once('=')).collect();
        let get = |k: &str| fields.get(k).copied().ok_or_else(|| format!("{SPEC_ENV} lacks {k}"));
        let num = |k: &str| -> Result<u64, String> {
            get(k)?.parse().map_err(|_| format!("{SPEC_ENV}: {k} is not a number"))
        };
        let opt_ms = |k: &str| -> Result<Option<Duration>, String> {
            match get(k)? {
                "" => Ok(None),
                v => v
                    .parse()
                    .map(|n| Some(Duration::from_millis(n)))
                    .map_err(|_| format!("{SPEC_ENV}: {k} is not a number")),
            }
        };
        let schema = get("schema")?.to_string();
        loadgen_common::schema::validate_schema_name(&schema).map_err(|e| e.to_string())?;
        Ok(Handover {
            schema,
            node_prefix: get("node")?.to_string(),
            settings: RuntimeSpec {
                runtimes: num("runtimes")? as u32,
                orchestration_concurrency: num("orch")? as u32,
                worker_concurrency: num("worker")? as u32,
                poll_interval: Duration::from_millis(num("poll_ms")?),
                orchestrator_lock_timeout: opt_ms("orch_lock_ms")?,
                worker_lock_timeout: opt_ms("worker_lock_ms")?,
            },
        })
    }
}

/// `agent --runtimes-only`: migrate the schema with this build, run the
/// runtimes until SIGTERM, report activity executions on stdout.
pub async fn serve_runtimes_only(url: String) -> anyhow::Result<()> {
    let text = std::env::var(SPEC_ENV).map_err(|_| anyhow::anyhow!("--runtimes-only needs {SPEC_ENV}"))?;
    let h = Handover::parse(&text).map_err(anyhow::Error::msg)?;
    let counters = Arc::new(ActivityCounters::new());
    let backend = Backend::Postgres { url, schema: h.schema.clone(), migrate: true };
    let runtimes = Runtimes::start(backend, &h.node_prefix, &h.settings, Arc::clone(&counters)).await?;
    println!("running duroxide-pg {}", env!("LOADGEN_DUROXIDE_PG_BUILD"));
    let stop = loadgen_common::startup::shutdown_signal();
    tokio::pin!(stop);
    let mut tick = tokio::time::interval(REPORT_EVERY);
    let mut last = BTreeMap::new();
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = &mut stop => break,
        }
        report(&counters, &mut last);
    }
    runtimes.shutdown().await;
    report(&counters, &mut last);
    Ok(())
}

/// The ledger's lines since the last report, then the counts if they moved
/// (the lines first: the agent checks its ledger against the counts).
fn report(counters: &ActivityCounters, last: &mut BTreeMap<&'static str, u64>) {
    let (runs, dropped) = counters.ledger.take();
    for r in &runs {
        println!("{}", loadgen_common::ledger::to_line(r));
    }
    if dropped > 0 {
        println!("{DROPPED}{dropped}");
    }
    let now = counters.snapshot();
    if now != *last {
        println!("{}", activities_line(&now));
        *last = now;
    }
}

/// The successor's line for ledger lines it could not keep.
const DROPPED: &str = "ledger dropped ";

fn activities_line(counts: &BTreeMap<&'static str, u64>) -> String {
    let parts: Vec<String> = counts.iter().map(|(k, v)| format!("{k}={v}")).collect();
    format!("activities {}", parts.join(","))
}

/// A running successor.
#[derive(Debug)]
pub struct Successor {
    child: Child,
    reader: tokio::task::JoinHandle<()>,
}

impl Successor {
    /// Start `binary --runtimes-only` on `url` and wait until its runtimes
    /// run; its activity executions are added to `counters` as they come.
    pub async fn start(
        binary: &Path,
        url: &str,
        handover: &Handover,
        counters: Arc<ActivityCounters>,
    ) -> Result<(Self, String), String> {
        let mut cmd = std::process::Command::new(binary);
        cmd.arg("--runtimes-only")
            .env("DATABASE_URL", url)
            .env(SPEC_ENV, handover.to_text())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        loadgen_common::process::die_with_parent(&mut cmd, loadgen_common::process::SIGTERM);
        let mut cmd = Command::from(cmd);
        cmd.kill_on_drop(true);
        let mut child = cmd.spawn().map_err(|e| format!("cannot start {}: {e}", binary.display()))?;
        let stdout = child.stdout.take().ok_or("the successor has no stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let first = tokio::time::timeout(START_TIMEOUT, lines.next_line()).await;
        let running = match first {
            Ok(Ok(Some(line))) if line.starts_with("running ") => line.trim_start_matches("running ").to_string(),
            Ok(Ok(Some(line))) => return Err(format!("the successor said {line:?} instead of starting")),
            Ok(_) => {
                let status = child.wait().await.map(|s| s.to_string()).unwrap_or_default();
                return Err(format!(
                    "the successor exited before its runtimes ran ({status}; its log is the agent's stderr)"
                ));
            }
            Err(_) => return Err(format!("the successor did not start its runtimes within {START_TIMEOUT:?}")),
        };
        let reader = tokio::spawn(async move {
            let mut seen: BTreeMap<String, u64> = BTreeMap::new();
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(run) = loadgen_common::ledger::from_line(&line) {
                    counters.ledger.record(run);
                    continue;
                }
                if let Some(n) = line.strip_prefix(DROPPED).and_then(|n| n.parse::<u64>().ok()) {
                    counters.ledger.dropped(n);
                    continue;
                }
                let Some(list) = line.strip_prefix("activities ") else { continue };
                for (k, v) in list.split(',').filter_map(|kv| kv.split_once('=')) {
                    let Ok(v) = v.parse::<u64>() else { continue };
                    let before = seen.insert(k.to_string(), v).unwrap_or(0);
                    counters.add(k, v.saturating_sub(before));
                }
            }
        });
        Ok((Successor { child, reader }, running))
    }

    /// SIGTERM it and wait (bounded) for its last report.
    pub async fn stop(mut self) {
        if let Some(pid) = self.child.id() {
            loadgen_common::process::signal(pid, loadgen_common::process::SIGTERM);
        }
        if tokio::time::timeout(STOP_TIMEOUT, self.child.wait()).await.is_err() {
            tracing::warn!("the successor did not stop within {STOP_TIMEOUT:?}; killing it");
            let _ = self.child.kill().await;
        }
        let _ = tokio::time::timeout(Duration::from_secs(2), &mut self.reader).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_handover_reads_back_as_written() {
        let h = Handover {
            schema: "loadgen_ab12cd34".into(),
            node_prefix: "ab12cd34-a1-up".into(),
            settings: RuntimeSpec {
                runtimes: 2,
                orchestration_concurrency: 4,
                worker_concurrency: 8,
                poll_interval: Duration::from_millis(100),
                orchestrator_lock_timeout: Some(Duration::from_secs(5)),
                worker_lock_timeout: None,
            },
        };
        assert_eq!(Handover::parse(&h.to_text()), Ok(h));
        assert!(Handover::parse("schema=x;y").is_err());
        assert!(
            Handover::parse(
                "schema=bad name;node=n;runtimes=1;orch=1;worker=1;poll_ms=1;orch_lock_ms=;worker_lock_ms="
            )
            .is_err()
        );
    }
}

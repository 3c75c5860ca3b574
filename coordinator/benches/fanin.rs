//! The coordinator absorbing many agents' streams (`cargo bench -p
//! loadgen-coordinator --bench fanin`; `cargo build --release` first so the
//! `agent` binary exists). The agents are synthetic (`agent --synthetic N`,
//! no database) and run in their own process: each streams a progress
//! message a second (50 completions with their histograms) and ten start
//! reports a second (cluster tracking). This process does what a run does
//! with their streams (heartbeats, decoding every message, folding every
//! interval histogram into the per-second series, the live frame once a
//! second) and measures its own CPU time, its memory, and the final merge of
//! every agent's histograms. The start reports are decoded but not handed to
//! a completion tracker (that needs a database).
//!
//! `FANIN_AGENTS` (default 1000) and `FANIN_SECONDS` (default 20).
//! Targets at 1,000 agents: under 25% of one core; final merge under 50 ms.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use loadgen_coordinator::agents::connect_all;
use loadgen_coordinator::agents::local::find_agent_binary;
use loadgen_coordinator::notice::Silent;
use loadgen_coordinator::plan::{Access, OnAgentLoss};
use loadgen_coordinator::run::live::Live;
use loadgen_coordinator::run::stream::{Follow, Followed, follow, start_all};

const TOKEN: &str = "fanin-bench-token";

/// CPU seconds (user + system) this process has used.
fn cpu_seconds() -> f64 {
    loadgen_common::process::cpu_time().as_secs_f64()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let env = |k: &str, d: u64| std::env::var(k).ok().and_then(|v| v.parse().ok()).unwrap_or(d);
    let agents = env("FANIN_AGENTS", 1000) as u32;
    let seconds = env("FANIN_SECONDS", 20);
    loadgen_common::process::raise_open_files_limit();
    let bin = find_agent_binary(None).expect("agent binary (cargo build --release first)");
    let mut child = Command::new(&bin)
        .args(["--synthetic", &agents.to_string(), "--token", TOKEN])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start synthetic agents");
    let stdout = child.stdout.take().expect("stdout");
    let addresses: Vec<String> = BufReader::new(stdout)
        .lines()
        .take(agents as usize)
        .map(|l| l.expect("line").trim_start_matches("listening on ").to_string())
        .collect();
    let access = Access { token: TOKEN.into(), tls: None };
    let links = connect_all(&addresses, &access).await.expect("connect to the synthetic agents");
    for l in &links {
        let mut c = l.client.clone();
        c.prepare(loadgen_common::wire::synthetic_prepare_request("fanin", l.index, agents, seconds * 1000))
            .await
            .expect("prepare");
    }
    let cpu0 = cpu_seconds();
    let wall0 = Instant::now();
    let delay = Duration::from_millis(500);
    let (controls, streams) = start_all(&links, "fanin", delay, false).await.expect("start");
    let started = Instant::now() + delay;
    let mut live = Live::new(links.len(), started, false);
    let f = Follow {
        links: &links,
        policy: OnAgentLoss::Continue,
        started,
        bound: Duration::from_secs(seconds + 60),
        db: None,
        tracker: None,
        load: None,
        fault_done: None,
        judge: None,
        obs: &Silent,
    };
    let followed = follow(f, streams, &controls, &mut live).await.expect("follow");
    controls.close();
    let (cpu, wall) = (cpu_seconds() - cpu0, wall0.elapsed().as_secs_f64());
    let finished = followed.iter().filter(|f| matches!(f, Followed::Finished { .. })).count();
    live.finish();
    // The median of three merges of the same streams (the machine is noisy).
    let mut times = Vec::new();
    let mut merged = None;
    for _ in 0..3 {
        let t = Instant::now();
        merged =
            Some(loadgen_coordinator::run::assemble::merge(&links, &[], &live, &followed, &[], &[]).expect("merge"));
        times.push(t.elapsed().as_secs_f64() * 1e3);
    }
    times.sort_by(f64::total_cmp);
    let merge_ms = times[1];
    let merged = merged.expect("merged");
    eprintln!("merge times (ms): {times:?}");
    let rss_mb = loadgen_common::process::rss_bytes() as f64 / (1024.0 * 1024.0);
    let _ = child.kill();
    let _ = child.wait();
    println!(
        "coordinator absorbing {agents} agents' streams for {seconds} s: {:.2} CPU s in {:.1} s wall = {:.2}% of one core (target at 1,000 agents < 25%); {finished}/{agents} agents finished",
        cpu,
        wall,
        cpu * 100.0 / wall
    );
    println!(
        "final merge of {agents} agents' histograms: {merge_ms:.1} ms, median of 3 (target < 50 ms), {} completions merged; coordinator RSS {rss_mb:.1} MB",
        merged.merged.counts.completed
    );
}

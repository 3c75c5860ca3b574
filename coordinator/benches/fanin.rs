//! The coordinator absorbing 100 agents' once-a-second progress streams
//! (`cargo bench -p loadgen-coordinator`; build the workspace first so the
//! `agent` binary exists). The agents are synthetic (`agent --synthetic 100`,
//! no database) and run in their own process; this process does exactly what
//! a run does with their streams (heartbeats, decoding and merging every
//! interval histogram, the live line) and measures its own CPU time.
//! Target: under 5% of one core.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use loadgen_coordinator::agents::connect_all;
use loadgen_coordinator::agents::local::find_agent_binary;
use loadgen_coordinator::notice::Silent;
use loadgen_coordinator::plan::{Access, OnAgentLoss};
use loadgen_coordinator::run::live::Live;
use loadgen_coordinator::run::stream::{Follow, Followed, follow, start_all};

const AGENTS: u32 = 100;
const SECONDS: u64 = 20;
const TOKEN: &str = "fanin-bench-token";

/// CPU seconds (user + system) this process has used.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").expect("/proc/self/stat");
    // Fields after the command name (which is in parentheses).
    let rest = &stat[stat.rfind(')').expect("stat format") + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f[11].parse::<f64>().expect("utime") + f[12].parse::<f64>().expect("stime");
    ticks / 100.0
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let bin = find_agent_binary(None).expect("agent binary (cargo build --release first)");
    let mut child = Command::new(&bin)
        .args(["--synthetic", &AGENTS.to_string(), "--token", TOKEN])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start synthetic agents");
    let stdout = child.stdout.take().expect("stdout");
    let addresses: Vec<String> = BufReader::new(stdout)
        .lines()
        .take(AGENTS as usize)
        .map(|l| l.expect("line").trim_start_matches("listening on ").to_string())
        .collect();
    let access = Access { token: TOKEN.into(), tls: None };
    let links = connect_all(&addresses, &access).await.expect("connect to the synthetic agents");
    for l in &links {
        let mut c = l.client.clone();
        c.prepare(loadgen_agent::synthetic::prepare_request("fanin", l.index, AGENTS, SECONDS * 1000))
            .await
            .expect("prepare");
    }
    let cpu0 = cpu_seconds();
    let wall0 = Instant::now();
    let delay = Duration::from_millis(500);
    let (controls, streams) = start_all(&links, "fanin", delay).await.expect("start");
    let started = Instant::now() + delay;
    let mut live = Live::new(links.len(), started, false);
    let f = Follow {
        links: &links,
        policy: OnAgentLoss::Continue,
        started,
        bound: Duration::from_secs(SECONDS + 30),
        db: None,
        tracker: None,
        obs: &Silent,
    };
    let followed = follow(f, streams, &controls, &mut live).await.expect("follow");
    controls.close();
    let (cpu, wall) = (cpu_seconds() - cpu0, wall0.elapsed().as_secs_f64());
    let finished = followed.iter().filter(|f| matches!(f, Followed::Finished { .. })).count();
    let _ = child.kill();
    let _ = child.wait();
    println!(
        "coordinator absorbing {AGENTS} agents' progress streams for {SECONDS} s: {:.2} CPU s in {:.1} s wall = {:.2}% of one core (target < 5%); {finished}/{AGENTS} agents finished",
        cpu,
        wall,
        cpu * 100.0 / wall
    );
}

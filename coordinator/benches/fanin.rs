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
//! The live figures go to a `--metrics-listen` exporter, which a scraper
//! thread here reads every second (as Prometheus would); the exporter's own
//! CPU time (keeping the figures, answering the scrapes) is reported apart.
//!
//! `FANIN_AGENTS` (default 1000) and `FANIN_SECONDS` (default 20).
//! Targets at 1,000 agents: under 25% of one core with the endpoint scraped;
//! the endpoint under 1% of one core; final merge under 50 ms. A missed
//! target is said (MISSED) and the benchmark exits 1.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use loadgen_coordinator::agents::connect_all;
use loadgen_coordinator::agents::local::find_agent_binary;
use loadgen_coordinator::exporter::Exporter;
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
    let exporter = Exporter::listen("127.0.0.1:0".parse().expect("addr")).expect("metrics endpoint");
    let scraping = scrape_every_second(exporter.address().port());
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
        obs: &exporter,
    };
    let followed = follow(f, streams, &controls, &mut live).await.expect("follow");
    controls.close();
    let (cpu, wall) = (cpu_seconds() - cpu0, wall0.elapsed().as_secs_f64());
    let endpoint_cpu = exporter.cpu_time().as_secs_f64();
    scraping.store(false, std::sync::atomic::Ordering::Relaxed);
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
    // The targets hold at 1,000 agents; fewer must do at least as well.
    let judged = agents <= 1000;
    let mut missed = Vec::new();
    let mut verdict = |ok: bool, what: &str| {
        if !ok && judged {
            missed.push(what.to_string());
        }
        if !judged {
            ""
        } else if ok {
            "met"
        } else {
            "MISSED"
        }
    };
    let share = cpu * 100.0 / wall;
    let v = verdict(share < 25.0, "fan-in CPU");
    println!(
        "coordinator absorbing {agents} agents' streams for {seconds} s, endpoint scraped every second: {cpu:.2} CPU s in {wall:.1} s wall = {share:.2}% of one core (target at 1,000 agents < 25%: {v}); {finished}/{agents} agents finished"
    );
    let endpoint = endpoint_cpu * 100.0 / wall;
    let v = verdict(endpoint < 1.0, "endpoint CPU");
    println!(
        "metrics endpoint (figures kept each second, {} scrapes answered): {endpoint_cpu:.3} CPU s = {endpoint:.3}% of one core (target < 1%: {v})",
        SCRAPES.load(std::sync::atomic::Ordering::Relaxed)
    );
    let v = verdict(merge_ms < 50.0, "final merge");
    println!(
        "final merge of {agents} agents' histograms: {merge_ms:.1} ms, median of 3 (target < 50 ms: {v}), {} completions merged; coordinator RSS {rss_mb:.1} MB",
        merged.merged.counts.completed
    );
    if !missed.is_empty() {
        eprintln!("fanin: MISSED {}", missed.join(", "));
        std::process::exit(1);
    }
}

/// Scrapes answered (each checked to hold the completed counter).
static SCRAPES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// A thread that GETs /metrics once a second until told to stop.
fn scrape_every_second(port: u16) -> std::sync::Arc<std::sync::atomic::AtomicBool> {
    use std::io::{Read, Write};
    let on = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let running = std::sync::Arc::clone(&on);
    std::thread::spawn(move || {
        while running.load(std::sync::atomic::Ordering::Relaxed) {
            if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) {
                let mut body = String::new();
                if write!(s, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").is_ok()
                    && s.read_to_string(&mut body).is_ok()
                    && body.contains("loadgen_orchestrations_completed")
                {
                    SCRAPES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
            }
            std::thread::sleep(Duration::from_secs(1));
        }
    });
    on
}

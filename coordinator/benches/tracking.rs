//! The generator's own database cost as the number of agents grows, same
//! work each time (`cargo bench -p loadgen-coordinator --bench tracking`;
//! `cargo build --release` first). Each cell is one real run of the release
//! `coordinator --local N` on the embedded default (or `DATABASE_URL`), read
//! back from its JSON: completion queries per completed orchestration, the
//! observation delay's p99, the generator's share of commits, commits per
//! orchestration and peak connections; the agents' CPU seconds (summed) and
//! memory, and the coordinator's CPU seconds while following the run.
//!
//! Settings (environment): `TRACKING_AGENTS` (default `1,4,8`),
//! `TRACKING_MODES` (`cluster,agent`), `TRACKING_LOADS` (`rate,closed`: 25/s
//! open loop, or 8 in flight, which needs at most 8 agents),
//! `TRACKING_DURATION` (`10s`), `TRACKING_POLL` (the `--completion-poll`
//! ceiling, default the coordinator's).

use std::process::Command;

use serde_json::Value;

fn env_list(name: &str, default: &str) -> Vec<String> {
    std::env::var(name).unwrap_or_else(|_| default.into()).split(',').map(|s| s.trim().to_string()).collect()
}

fn main() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let bin = root.join("target/release/coordinator");
    assert!(bin.exists(), "{} missing: cargo build --release first", bin.display());
    let duration = std::env::var("TRACKING_DURATION").unwrap_or_else(|_| "10s".into());
    let dir = tempfile::tempdir().expect("temp dir");
    println!(
        "| load | tracking | agents | completed | completion queries | per orchestration | observation p99 | generator share | overhead share | commits/orch | peak connections | agents' CPU s | agent RSS peak | coordinator CPU s |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for load in env_list("TRACKING_LOADS", "rate,closed") {
        for mode in env_list("TRACKING_MODES", "cluster,agent") {
            for agents in env_list("TRACKING_AGENTS", "1,4,8") {
                let json = dir.path().join(format!("{load}-{mode}-{agents}.json"));
                let mut cmd = Command::new(&bin);
                cmd.args(["--local", &agents, "--profile", "light", "--duration", &duration])
                    .args(["--completion-source", &mode, "--live", "line", "--json"])
                    .arg(&json)
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::piped());
                if let Ok(poll) = std::env::var("TRACKING_POLL") {
                    cmd.args(["--completion-poll", &poll]);
                }
                match load.as_str() {
                    "rate" => cmd.args(["--rate", "25/s"]),
                    _ => cmd.args(["--max-concurrent", "8"]),
                };
                let out = cmd.output().expect("run the coordinator");
                let text = std::fs::read_to_string(&json).unwrap_or_default();
                let Ok(r) = serde_json::from_str::<Value>(&text) else {
                    let why = String::from_utf8_lossy(&out.stderr).lines().last().unwrap_or_default().to_string();
                    println!("| {load} | {mode} | {agents} | run failed ({}): {why} |", out.status);
                    continue;
                };
                let agent_list = r["agents"].as_array().cloned().unwrap_or_default();
                let agents_cpu: f64 = agent_list.iter().filter_map(|a| a["cpu_s"].as_f64()).sum();
                let rss_peak = agent_list.iter().filter_map(|a| a["memory"]["peak_mb"].as_f64()).fold(0.0, f64::max);
                let coordinator_cpu = r["coordinator"]["cpu_s"].as_f64().unwrap_or(0.0);
                let d = &r["db_load"];
                let completed = r["merged"]["counts"]["completed"].as_u64().unwrap_or(0);
                let p99 = r["merged"]["observation_delay"]["p99_us"].as_f64().unwrap_or(f64::NAN) / 1000.0;
                let peak = r["db_timeline"]
                    .as_array()
                    .map(|s| {
                        s.iter()
                            .map(|x| {
                                x["connections"].as_object().map_or(0, |m| m.values().filter_map(Value::as_u64).sum())
                            })
                            .max()
                            .unwrap_or(0)
                    })
                    .unwrap_or(0);
                println!(
                    "| {load} | {mode} | {agents} | {completed} | {} | {:.2} | {p99:.1} ms | {:.1}% | {:.1}% | {:.1} | {peak} | {agents_cpu:.1} | {rss_peak:.1} MB | {coordinator_cpu:.2} |",
                    d["completion_queries"],
                    d["completion_queries_per_orchestration"].as_f64().unwrap_or(0.0),
                    d["generator_share_pct"].as_f64().unwrap_or(0.0),
                    d["overhead_share_pct"].as_f64().unwrap_or(0.0),
                    d["commits_per_orchestration"].as_f64().unwrap_or(0.0),
                );
            }
        }
    }
}

//! The measurement tools keep working: `coordinator bench` on a short plan,
//! and the coordinator's fan-in against synthetic agents.

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use loadgen_coordinator::agents::connect_all;
use loadgen_coordinator::notice::Silent;
use loadgen_coordinator::plan::{Access, OnAgentLoss};
use loadgen_coordinator::run::live::Live;
use loadgen_coordinator::run::stream::{Follow, Followed, follow, start_all};

#[test]
fn coordinator_bench_compares_both_tools() {
    let tmp = tempfile::tempdir().expect("tmp");
    let json = tmp.path().join("bench.json");
    let out = support::coordinator(tmp.path())
        .args(["bench", "--combos", "1:1", "--repeat", "1", "--duration", "2s", "--json"])
        .arg(&json)
        .output()
        .expect("run bench");
    assert!(out.status.success(), "{}", support::show(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("duroxide stress module") && stdout.contains("commits ratio"), "{stdout}");
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).expect("json")).expect("parse");
    let c = &report["comparisons"][0];
    for side in ["theirs", "ours"] {
        let s = &c[side][0];
        assert!(s["completed"].as_u64().unwrap_or(0) > 0, "{side}: {s}");
        assert!(s["commits_per_orchestration"].as_f64().unwrap_or(0.0) > 1.0, "{side}: {s}");
    }
    assert!(c["throughput_ratio"].as_f64().unwrap_or(0.0) > 0.0);
    support::assert_nothing_left(tmp.path(), &["bench.json"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_coordinator_follows_synthetic_agents_and_merges_their_figures() {
    let bin = std::path::PathBuf::from(env!("CARGO_BIN_EXE_coordinator")).with_file_name("agent");
    let mut child = Command::new(&bin)
        .args(["--synthetic", "5", "--token", support::TEST_TOKEN])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("synthetic agents");
    let stdout = child.stdout.take().expect("stdout");
    let addresses: Vec<String> = BufReader::new(stdout)
        .lines()
        .take(5)
        .map(|l| l.expect("line").trim_start_matches("listening on ").to_string())
        .collect();
    let links =
        connect_all(&addresses, &Access { token: support::TEST_TOKEN.into(), tls: None }).await.expect("connect");
    for l in &links {
        let mut c = l.client.clone();
        c.prepare(loadgen_agent::synthetic::prepare_request("syn", l.index, links.len() as u32, 3000))
            .await
            .expect("prepare");
    }
    let delay = Duration::from_millis(200);
    let (controls, streams) = start_all(&links, "syn", delay).await.expect("start");
    let started = Instant::now() + delay;
    let mut live = Live::new(links.len(), started, true);
    let f = Follow {
        links: &links,
        policy: OnAgentLoss::Continue,
        started,
        bound: Duration::from_secs(30),
        db: None,
        tracker: None,
        load: None,
        obs: &Silent,
    };
    let followed = follow(f, streams, &controls, &mut live).await.expect("follow");
    live.finish();
    // The per-second series: every agent's intervals, merged exactly by second.
    assert_eq!(live.agents.len(), links.len());
    assert_eq!(live.merged.iter().map(|p| p.completed).sum::<u64>(), 150 * links.len() as u64);
    assert_eq!(live.merged_hlog.iter().map(|(_, h)| h.count()).sum::<u64>(), 150 * links.len() as u64);
    controls.close();
    let _ = child.kill();
    let _ = child.wait();
    // Each synthetic agent reports 50 completions a second for 3 s, in
    // three intervals (the totals are the sum of the intervals).
    for (i, f) in followed.iter().enumerate() {
        let Followed::Finished(finish) = f else { panic!("an agent was lost: {f:?}") };
        assert_eq!(finish.progress_messages, 3);
        let a = &live.agents[i];
        assert_eq!(a.counts().completed, 150);
        assert_eq!(a.scenarios["fanout"].hist.e2e.count(), 150);
    }
}

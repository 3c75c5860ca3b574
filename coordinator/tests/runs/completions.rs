//! Completion tracking follows the work, not the number of agents: with
//! cluster tracking (the default) the agents make no completion query at all
//! and the coordinator's queries do not grow from one agent to four; with
//! agent tracking each agent polls on its own and they do. Counts, not
//! timings: the same offered rate on one throwaway Postgres each time.

use crate::support::{read_report, run_ok};
use loadgen_coordinator::model::RunReport;

fn run(tmp: &std::path::Path, pg: &str, agents: &str, tracking: &str) -> RunReport {
    let json = tmp.join(format!("{agents}-{tracking}.json"));
    run_ok(
        tmp,
        &[
            "--local",
            agents,
            "--profile",
            "light",
            "--rate",
            "30/s",
            "--duration",
            "4s",
            "--completion-source",
            tracking,
            "--database-url",
            pg,
            "--json",
            &json.display().to_string(),
        ],
    );
    read_report(&json)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn completion_queries_follow_the_work_not_the_agents() {
    let pg = loadgen_coordinator::db::embedded::EmbeddedPostgres::start().await.expect("throwaway postgres");
    let tmp = tempfile::tempdir().expect("tmp");
    let one = run(tmp.path(), pg.url(), "1", "cluster");
    let four = run(tmp.path(), pg.url(), "4", "cluster");
    let polling = run(tmp.path(), pg.url(), "4", "agent");
    for r in [&one, &four, &polling] {
        let c = &r.merged.counts;
        assert!(c.launched > 0 && c.completed == c.launched, "{} agents: {c:?}", r.agents.len());
    }
    for r in [&one, &four] {
        assert_eq!(r.db_load.completion_source, "cluster");
        // The agents make no completion query: the coordinator makes them all.
        for a in &r.agents {
            assert_eq!(a.section.counts.status_queries, 0, "agent {} queried on its own", a.index);
        }
        assert!(r.db_load.completion_queries > 0);
        assert!(
            r.db_load.completion_queries_per_orchestration <= 0.5,
            "{} agents: {:.2} queries per orchestration",
            r.agents.len(),
            r.db_load.completion_queries_per_orchestration
        );
        // Latency precision is kept: every completion has its observation delay.
        let delay = r.merged.observation_delay.as_ref().expect("observation delay");
        assert_eq!(delay.count, r.merged.counts.completed);
        assert!(r.db_load.sampling_queries > 0 && r.db_load.overhead_calls >= r.db_load.completion_queries);
    }
    // Four agents, same work: the coordinator's queries do not multiply.
    let (q1, q4) = (one.db_load.completion_queries, four.db_load.completion_queries);
    assert!(q4 * 4 <= q1 * 5 + 12, "1 agent {q1} queries, 4 agents {q4}");
    // Agent tracking: every agent polls on its own, so four agents make more.
    assert_eq!(polling.db_load.completion_source, "agent");
    assert!(polling.agents.iter().all(|a| a.section.counts.status_queries > 0));
    assert!(
        polling.db_load.completion_queries > q4,
        "agent tracking {} vs cluster {q4}",
        polling.db_load.completion_queries
    );
}

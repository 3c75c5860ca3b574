//! Reaching agents: address parsing, discovery (a name may resolve to several
//! agents, e.g. a Kubernetes headless Service), connection, and the Hello
//! check (protocol revision, duroxide-pg version, idle state, no duplicates).
//!
//! - [`local`]: `--local N` agent processes owned by the coordinator.

pub mod calls;
mod checks;
pub mod local;
pub mod run;

use checks::compatible;
pub use checks::{check, check_builds, check_clock_control};

use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use loadgen_common::auth::AddToken;
use loadgen_common::proto::agent_client::AgentClient;
use loadgen_common::proto::{self, HelloReply};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};

use crate::error::CoordinatorError;
use crate::notice::{Notice, Observer};
use crate::plan::{Access, PlanError};

/// Bound on connecting to an agent and on its Hello.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A client that sends the agent token with every call.
pub type Client = AgentClient<InterceptedService<Channel, AddToken>>;

/// A connected, checked agent.
#[derive(Debug, Clone)]
pub struct AgentLink {
    pub index: u32,
    pub address: String,
    pub client: Client,
    pub hello: AgentInfo,
    /// The agent's clock offset from this process's, in milliseconds, and
    /// the half round trip it is good within (`None`: the agent did not send
    /// its time).
    pub clock: Option<(f64, f64)>,
}

/// The protocol revision this coordinator speaks.
pub const PROTOCOL_VERSION: u32 = proto::PROTOCOL_VERSION;

/// What an agent said at its Hello, read off the wire once.
#[derive(Clone, Debug, Default)]
pub struct AgentInfo {
    pub protocol_version: u32,
    pub duroxide_version: String,
    pub duroxide_pg_version: String,
    pub hostname: String,
    pub pid: u32,
    /// `None` when idle, else the state it is in ("running", ...).
    pub busy: Option<&'static str>,
    /// The connection-pool size of each provider in the agent process.
    pub pool_max: u32,
    /// Started with `--clock-control`: a clock-skew fault can shift it.
    pub clock_control: bool,
}

impl From<&HelloReply> for AgentInfo {
    fn from(h: &HelloReply) -> Self {
        AgentInfo {
            protocol_version: h.protocol_version,
            duroxide_version: h.duroxide_version.clone(),
            duroxide_pg_version: h.duroxide_pg_version.clone(),
            hostname: h.hostname.clone(),
            pid: h.pid,
            busy: (h.state != proto::AgentState::Idle as i32).then(|| state_name(h.state)),
            pool_max: h.pool_max,
            clock_control: h.clock_control,
        }
    }
}

/// The agent's clock offset from its Hello time `agent_us`, read between
/// `sent` and `answered` on this process's clock: against the middle of the
/// call, good within half the round trip.
fn clock_offset(agent_us: i64, sent: std::time::SystemTime, answered: std::time::SystemTime) -> Option<(f64, f64)> {
    if agent_us == 0 {
        return None;
    }
    let us = |t: std::time::SystemTime| match t.duration_since(std::time::UNIX_EPOCH) {
        Ok(d) => d.as_secs_f64() * 1e6,
        Err(e) => -e.duration().as_secs_f64() * 1e6,
    };
    let (a, b) = (us(sent), us(answered));
    Some(((agent_us as f64 - (a + b) / 2.0) / 1000.0, ((b - a) / 2.0).max(0.0) / 1000.0))
}

/// Check an `--agents` list: every entry `host:port`, no entry twice.
pub fn parse_agent_list(list: &[String]) -> Result<Vec<String>, PlanError> {
    let mut seen = HashSet::new();
    let mut out = Vec::with_capacity(list.len());
    for raw in list {
        let addr = raw.trim();
        let valid = addr.rsplit_once(':').is_some_and(|(host, port)| {
            !host.is_empty() && !host.contains(['/', ' ', '@']) && port.parse::<u16>().is_ok_and(|p| p > 0)
        });
        if !valid {
            return Err(PlanError::Invalid(format!("malformed agent address {raw:?}: expected host:port")));
        }
        if !seen.insert(addr.to_ascii_lowercase()) {
            return Err(PlanError::Invalid(format!("agent {addr} is listed twice")));
        }
        out.push(addr.to_string());
    }
    if out.is_empty() {
        return Err(PlanError::Invalid(
            "no agents: give --local N (agent processes on this machine) or --agents host:port,...".into(),
        ));
    }
    Ok(out)
}

/// Bound on resolving the names of an `--agents` list once.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(5);
/// Pause between discovery rounds while waiting for `--expect-agents`.
const DISCOVERY_ROUND: Duration = Duration::from_secs(1);
/// Longest silence between two progress lines while waiting for agents.
const DISCOVERY_PROGRESS: Duration = Duration::from_secs(10);

/// One agent address found by resolving an `--agents` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Target {
    /// Identity of the target while discovering (one of its addresses).
    addr: SocketAddr,
    /// What the connection dials: the address, or the entry itself when a
    /// name resolves only to loopback addresses ("localhost" is both
    /// 127.0.0.1 and ::1 but one agent; the connector tries each).
    dial: String,
    /// How reports name it: the entry itself when it resolved to one
    /// address, the socket address when a name stands for several agents.
    label: String,
    /// Host of the entry, the name TLS verifies by default.
    host: String,
}

/// Host part of `host:port` (brackets of an IPv6 literal removed).
fn host_of(entry: &str) -> &str {
    entry.rsplit_once(':').map_or(entry, |(h, _)| h).trim_matches(['[', ']'])
}

/// Resolve every entry; a name may stand for several addresses. Returns the
/// distinct targets in entry order, and for each entry that did not resolve,
/// why.
async fn resolve(entries: &[String]) -> (Vec<Target>, Vec<(String, String)>) {
    let mut targets: Vec<Target> = Vec::new();
    let mut failed = Vec::new();
    for entry in entries {
        let found = tokio::time::timeout(RESOLVE_TIMEOUT, tokio::net::lookup_host(entry.as_str())).await;
        let mut addrs: Vec<SocketAddr> = match found {
            Ok(Ok(it)) => it.collect(),
            Ok(Err(e)) => {
                failed.push((entry.clone(), e.to_string()));
                continue;
            }
            Err(_) => {
                failed.push((entry.clone(), format!("no answer within {RESOLVE_TIMEOUT:?}")));
                continue;
            }
        };
        addrs.sort();
        addrs.dedup();
        if addrs.is_empty() {
            failed.push((entry.clone(), "resolves to no address".into()));
            continue;
        }
        let host = host_of(entry).to_string();
        if addrs.len() > 1 && addrs.iter().all(|a| a.ip().is_loopback()) {
            addrs.sort_by_key(|a| !a.is_ipv4());
            addrs.truncate(1);
            if !targets.iter().any(|t| t.addr == addrs[0]) {
                targets.push(Target { addr: addrs[0], dial: entry.clone(), label: entry.clone(), host });
            }
            continue;
        }
        let several = addrs.len() > 1;
        for addr in addrs {
            if targets.iter().any(|t| t.addr == addr) {
                continue;
            }
            let label = if several { addr.to_string() } else { entry.clone() };
            targets.push(Target { addr, dial: addr.to_string(), label, host: host.clone() });
        }
    }
    (targets, failed)
}

/// Connect to one agent and say hello.
async fn connect(index: u32, target: &Target, access: &Access) -> Result<AgentLink, CoordinatorError> {
    let address = target.label.as_str();
    let scheme = if access.tls.is_some() { "https" } else { "http" };
    let mut endpoint = Endpoint::from_shared(format!("{scheme}://{}", target.dial))
        .map_err(|e| CoordinatorError::Usage(format!("malformed agent address {address:?}: {e}")))?;
    if let Some((ca, domain)) = &access.tls {
        let host = target.host.as_str();
        let tls = ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(ca))
            .domain_name(domain.clone().unwrap_or_else(|| host.to_string()));
        endpoint = endpoint.tls_config(tls).map_err(|e| CoordinatorError::Usage(format!("TLS configuration: {e}")))?;
    }
    let endpoint = endpoint
        .connect_timeout(CONNECT_TIMEOUT)
        // HTTP/2 pings notice a dead agent or a cut link while a run streams.
        .http2_keep_alive_interval(Duration::from_secs(2))
        .keep_alive_timeout(Duration::from_secs(5))
        .keep_alive_while_idle(true);
    let channel = endpoint
        .connect()
        .await
        .map_err(|e| CoordinatorError::agent(address, format!("unreachable ({})", source_chain(&e))))?;
    let token = AddToken::new(&access.token).map_err(CoordinatorError::Usage)?;
    let mut client = AgentClient::with_interceptor(channel, token);
    let mut req = tonic::Request::new(proto::HelloRequest { protocol_version: proto::PROTOCOL_VERSION });
    req.set_timeout(CONNECT_TIMEOUT);
    let sent = std::time::SystemTime::now();
    let hello = match client.hello(req).await {
        Ok(r) => r.into_inner(),
        Err(s) if s.code() == tonic::Code::Unauthenticated => {
            return Err(CoordinatorError::Refused {
                agent: address.to_string(),
                reason: "refused our token: give the agents' token in LOADGEN_TOKEN (or --token)".into(),
            });
        }
        Err(s) => return Err(CoordinatorError::agent(address, format!("hello failed: {}", s.message()))),
    };
    let clock = clock_offset(hello.unix_micros, sent, std::time::SystemTime::now());
    Ok(AgentLink { index, address: address.to_string(), client, hello: AgentInfo::from(&hello), clock })
}

/// Resolve `entries` once, connect to every agent they name concurrently,
/// and check they can run one plan together.
pub async fn connect_all(entries: &[String], access: &Access) -> Result<Vec<AgentLink>, CoordinatorError> {
    let (targets, failed) = resolve(entries).await;
    if let Some((entry, why)) = failed.into_iter().next() {
        return Err(CoordinatorError::agent(&entry, format!("cannot resolve: {why}")));
    }
    let mut set = tokio::task::JoinSet::new();
    for (i, t) in targets.iter().enumerate() {
        let (t, access) = (t.clone(), access.clone());
        set.spawn(async move { connect(i as u32, &t, &access).await });
    }
    let mut links = Vec::with_capacity(targets.len());
    while let Some(joined) = set.join_next().await {
        let link = joined.map_err(|e| CoordinatorError::Local(e.to_string()))??;
        links.push(link);
    }
    links.sort_by_key(|l| l.index);
    check(&links)?;
    Ok(links)
}

/// Wait until `expect` distinct agents answer: re-resolve `entries` and
/// retry the ones that did not answer every second, print progress, and give
/// up after `timeout` naming what is missing. Errors that waiting cannot
/// cure (a refused token, another protocol or duroxide-pg version) end the
/// wait at once. More agents than expected: the first `expect` (in entry and
/// address order) take part and the rest are named in a warning.
pub async fn discover(
    entries: &[String],
    expect: u32,
    timeout: Duration,
    access: &Access,
    obs: &dyn Observer,
) -> Result<Vec<AgentLink>, CoordinatorError> {
    let started = Instant::now();
    let deadline = started + timeout;
    let want = expect as usize;
    let mut answered: BTreeMap<SocketAddr, AgentLink> = BTreeMap::new();
    let mut order: Vec<SocketAddr> = Vec::new();
    let mut last_status = String::new();
    let mut last_print = started;
    loop {
        let (targets, failed) = resolve(entries).await;
        let mut set = tokio::task::JoinSet::new();
        for t in targets.iter().filter(|t| !answered.contains_key(&t.addr)) {
            let (t, access) = (t.clone(), access.clone());
            set.spawn(async move {
                let r = connect(0, &t, &access).await;
                (t, r)
            });
        }
        let mut pending: Vec<String> = failed.iter().map(|(e, why)| format!("{e} not resolvable ({why})")).collect();
        while let Some(joined) = set.join_next().await {
            let (target, result) = joined.map_err(|e| CoordinatorError::Local(e.to_string()))?;
            match result {
                Ok(link) => {
                    compatible(&link, true)?;
                    // A busy agent may be finishing another coordinator's run: wait for it.
                    if let Some(state) = link.hello.busy {
                        pending.push(format!("{} busy ({state})", target.label));
                        continue;
                    }
                    let same = answered
                        .values()
                        .any(|l| l.hello.hostname == link.hello.hostname && l.hello.pid == link.hello.pid);
                    if !same {
                        order.push(target.addr);
                        answered.insert(target.addr, link);
                    }
                }
                Err(CoordinatorError::Agent { address, detail }) => pending.push(format!("{address} {detail}")),
                Err(e) => return Err(e),
            }
        }
        if answered.len() >= want {
            let links = pick(&targets, &mut order, &mut answered, want, obs)?;
            obs.notice(&Notice::AgentsReady {
                elapsed_s: started.elapsed().as_secs_f64(),
                addresses: links.iter().map(|l| l.address.as_str()).collect(),
            });
            return Ok(links);
        }
        pending.sort();
        let status = format!("{} of {want} agent(s) answered", answered.len());
        let detail = if pending.is_empty() { String::new() } else { format!("; waiting on: {}", pending.join(", ")) };
        let now = Instant::now();
        if now >= deadline {
            return Err(CoordinatorError::agent(
                &entries.join(","),
                format!(
                    "only {} of the {want} expected agents answered within {}{detail}",
                    answered.len(),
                    loadgen_common::units::format_duration(timeout)
                ),
            ));
        }
        let line = format!("{status}{detail}");
        if line != last_status || now.duration_since(last_print) >= DISCOVERY_PROGRESS {
            obs.notice(&Notice::WaitingForAgents {
                elapsed_s: started.elapsed().as_secs_f64(),
                timeout: &loadgen_common::units::format_duration(timeout),
                status: &line,
            });
            last_status = line;
            last_print = now;
        }
        tokio::time::sleep(DISCOVERY_ROUND.min(deadline.saturating_duration_since(now))).await;
    }
}

/// The first `want` agents that answered, in entry and address order
/// (whatever order they answered in), indexed and checked together; the
/// others are named and left out.
fn pick(
    targets: &[Target],
    order: &mut [SocketAddr],
    answered: &mut BTreeMap<SocketAddr, AgentLink>,
    want: usize,
    obs: &dyn Observer,
) -> Result<Vec<AgentLink>, CoordinatorError> {
    let rank = |a: &SocketAddr| targets.iter().position(|t| t.addr == *a).unwrap_or(usize::MAX);
    order.sort_by_key(rank);
    let extra: Vec<String> = order[want..].iter().map(|a| answered[a].address.clone()).collect();
    if !extra.is_empty() {
        obs.notice(&Notice::Warning(format!(
            "{} agents answered, --expect-agents is {want}; left out: {}",
            answered.len(),
            extra.join(", ")
        )));
    }
    let mut links: Vec<AgentLink> = order[..want]
        .iter()
        .filter_map(|a| answered.remove(a))
        .enumerate()
        .map(|(i, mut l)| {
            l.index = i as u32;
            l
        })
        .collect();
    links.sort_by_key(|l| l.index);
    check(&links)?;
    Ok(links)
}

/// The name of an agent state from the wire.
fn state_name(state: i32) -> &'static str {
    match proto::AgentState::try_from(state) {
        Ok(proto::AgentState::Idle) => "idle",
        Ok(proto::AgentState::Preparing) => "preparing",
        Ok(proto::AgentState::Prepared) => "prepared",
        Ok(proto::AgentState::Running) => "running",
        Ok(proto::AgentState::Finished) => "finished",
        _ => "in an unknown state",
    }
}

fn source_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = vec![e.to_string()];
    let mut cur = e.source();
    while let Some(s) = cur {
        parts.push(s.to_string());
        cur = s.source();
    }
    parts.dedup();
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_clock_offset_is_read_against_the_middle_of_the_call() {
        let at = |ms: u64| std::time::UNIX_EPOCH + Duration::from_millis(1_700_000_000_000 + ms);
        // Sent at 0, answered at 10 ms; the agent read 15 s past the middle.
        let agent_us = (1_700_000_000_000 + 5 + 15_000) * 1000;
        let (offset, within) = clock_offset(agent_us, at(0), at(10)).expect("read");
        assert!((offset - 15_000.0).abs() < 1e-6 && (within - 5.0).abs() < 1e-6, "{offset} {within}");
        let (behind, _) = clock_offset(agent_us - 30_000_000, at(0), at(10)).expect("read");
        assert!((behind + 15_000.0).abs() < 1e-6, "{behind}");
        assert_eq!(clock_offset(0, at(0), at(10)), None, "an agent that does not send its time");
    }

    #[tokio::test]
    async fn names_resolve_to_their_agents() {
        // Literal addresses: one agent each, the same address twice once.
        let (t, failed) = resolve(&list(&["127.0.0.1:7001", "127.0.0.2:7001", "127.0.0.1:7001"])).await;
        assert!(failed.is_empty());
        let labels: Vec<_> = t.iter().map(|t| t.label.as_str()).collect();
        assert_eq!(labels, ["127.0.0.1:7001", "127.0.0.2:7001"]);
        assert_eq!(t[1].dial, "127.0.0.2:7001");
        // localhost is one agent whatever addresses it has, dialled by name.
        let (t, failed) = resolve(&list(&["localhost:7002"])).await;
        assert!(failed.is_empty(), "{failed:?}");
        assert_eq!(t.len(), 1, "{t:?}");
        // (Dialled by name when it has several loopback addresses, by address when one.)
        assert_eq!((t[0].label.as_str(), t[0].host.as_str()), ("localhost:7002", "localhost"));
        assert!(t[0].addr.ip().is_loopback() && t[0].dial.ends_with(":7002"), "{t:?}");
        // A name that does not resolve is reported with the entry.
        let (t, failed) = resolve(&list(&["no-such-agent.invalid:7000", "[::1]:7003"])).await;
        assert_eq!(failed.len(), 1);
        assert_eq!(failed[0].0, "no-such-agent.invalid:7000");
        assert_eq!((t.len(), t[0].host.as_str()), (1, "::1"));
    }

    #[test]
    fn agent_lists_are_checked() {
        assert_eq!(
            parse_agent_list(&list(&["a:1", " b:7000", "[::1]:7000"])).expect("valid"),
            ["a:1", "b:7000", "[::1]:7000"]
        );
        for bad in [&["a"][..], &["a:"], &[":70"], &["a:0"], &["a:99999"], &["a:1", "A:1"], &[]] {
            assert!(parse_agent_list(&list(bad)).is_err(), "{bad:?}");
        }
    }
}

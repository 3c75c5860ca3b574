//! Reaching agents: address parsing, connection, and the Hello check
//! (protocol revision, duroxide-pg version, idle state, no duplicates).

use std::collections::HashSet;
use std::time::Duration;

use loadgen_common::auth::AddToken;
use loadgen_common::proto::agent_client::AgentClient;
use loadgen_common::proto::{self, HelloReply};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};

use crate::error::CoordinatorError;

/// Bound on connecting to an agent and on its Hello.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A client that sends the agent token with every call.
pub type Client = AgentClient<InterceptedService<Channel, AddToken>>;

/// How to reach agents: the token, and TLS when asked for.
#[derive(Clone, Debug)]
pub struct Access {
    pub token: String,
    /// PEM CA certificate and the name to verify (None: each address's host).
    pub tls: Option<(Vec<u8>, Option<String>)>,
}

/// A connected, checked agent.
#[derive(Debug, Clone)]
pub struct AgentLink {
    pub index: u32,
    pub address: String,
    pub client: Client,
    pub hello: HelloReply,
}

/// Check an `--agents` list: every entry `host:port`, no entry twice.
pub fn parse_agent_list(list: &[String]) -> Result<Vec<String>, CoordinatorError> {
    let mut seen = HashSet::new();
    let mut out = Vec::with_capacity(list.len());
    for raw in list {
        let addr = raw.trim();
        let valid = addr.rsplit_once(':').is_some_and(|(host, port)| {
            !host.is_empty() && !host.contains(['/', ' ', '@']) && port.parse::<u16>().is_ok_and(|p| p > 0)
        });
        if !valid {
            return Err(CoordinatorError::Usage(format!("malformed agent address {raw:?}: expected host:port")));
        }
        if !seen.insert(addr.to_ascii_lowercase()) {
            return Err(CoordinatorError::Usage(format!("agent {addr} is listed twice")));
        }
        out.push(addr.to_string());
    }
    if out.is_empty() {
        return Err(CoordinatorError::Usage(
            "no agents: give --local N (agent processes on this machine) or --agents host:port,...".into(),
        ));
    }
    Ok(out)
}

/// Connect to one agent and say hello.
async fn connect(index: u32, address: &str, access: &Access) -> Result<AgentLink, CoordinatorError> {
    let scheme = if access.tls.is_some() { "https" } else { "http" };
    let mut endpoint = Endpoint::from_shared(format!("{scheme}://{address}"))
        .map_err(|e| CoordinatorError::Usage(format!("malformed agent address {address:?}: {e}")))?;
    if let Some((ca, domain)) = &access.tls {
        let host = address.rsplit_once(':').map_or(address, |(h, _)| h).trim_matches(['[', ']']);
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
    let hello = match client.hello(req).await {
        Ok(r) => r.into_inner(),
        Err(s) if s.code() == tonic::Code::Unauthenticated => {
            return Err(CoordinatorError::Usage(format!(
                "agent {address} refused our token: give the agents' token in LOADGEN_TOKEN (or --token)"
            )));
        }
        Err(s) => return Err(CoordinatorError::agent(address, format!("hello failed: {}", s.message()))),
    };
    Ok(AgentLink { index, address: address.to_string(), client, hello })
}

/// Connect to every agent concurrently and check they can run one plan together.
pub async fn connect_all(addresses: &[String], access: &Access) -> Result<Vec<AgentLink>, CoordinatorError> {
    let mut set = tokio::task::JoinSet::new();
    for (i, a) in addresses.iter().enumerate() {
        let (a, access) = (a.clone(), access.clone());
        set.spawn(async move { connect(i as u32, &a, &access).await });
    }
    let mut links = Vec::with_capacity(addresses.len());
    while let Some(joined) = set.join_next().await {
        let link = joined.map_err(|e| CoordinatorError::Local(e.to_string()))??;
        links.push(link);
    }
    links.sort_by_key(|l| l.index);
    check(&links)?;
    Ok(links)
}

/// Refuse agents that cannot take part in one run.
pub fn check(links: &[AgentLink]) -> Result<(), CoordinatorError> {
    let mut processes = HashSet::new();
    for l in links {
        let h = &l.hello;
        if h.protocol_version != proto::PROTOCOL_VERSION {
            return Err(CoordinatorError::agent(
                &l.address,
                format!(
                    "speaks protocol revision {}, this coordinator speaks {}",
                    h.protocol_version,
                    proto::PROTOCOL_VERSION
                ),
            ));
        }
        if h.duroxide_pg_version != loadgen_common::DUROXIDE_PG_VERSION {
            return Err(CoordinatorError::agent(
                &l.address,
                format!(
                    "runs duroxide-pg {}, this coordinator {}; every runtime on a schema must run the same version",
                    h.duroxide_pg_version,
                    loadgen_common::DUROXIDE_PG_VERSION
                ),
            ));
        }
        if h.state != "idle" {
            return Err(CoordinatorError::agent(
                &l.address,
                format!("is busy ({}); another coordinator is using it", h.state),
            ));
        }
        if !processes.insert((h.hostname.clone(), h.pid)) {
            return Err(CoordinatorError::Usage(format!(
                "agent {} is the same process as another listed agent ({} pid {})",
                l.address, h.hostname, h.pid
            )));
        }
    }
    Ok(())
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

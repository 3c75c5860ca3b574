//! What each process of the HA cluster is started with: etcd's flags,
//! each Patroni node's YAML, HAProxy's configuration. Loopback only, ports
//! chosen free, every path inside the cluster's own directory.

use std::path::{Path, PathBuf};

pub use crate::plan::Replication;

/// One Patroni node's ports: its REST API and its Postgres.
#[derive(Clone, Copy, Debug)]
pub struct NodePorts {
    pub rest: u16,
    pub pg: u16,
}

/// Where everything of one cluster is.
#[derive(Clone, Debug)]
pub struct Layout {
    pub dir: PathBuf,
    /// Patroni's scope: the directory's name, unique, and in every process's
    /// command line (so a sweep can find what is left of this cluster only).
    pub scope: String,
    pub bindir: PathBuf,
    pub etcd_client: u16,
    pub etcd_peer: u16,
    pub proxy: u16,
    pub stats: u16,
    pub nodes: Vec<NodePorts>,
    pub superuser_password: String,
    pub replication_password: String,
    pub replication: Replication,
    /// Patroni's leader key lifetime (bounds how soon a failover starts).
    pub ttl_s: u32,
}

impl Layout {
    pub fn node_name(i: usize) -> String {
        format!("n{}", i + 1)
    }

    pub fn node_dir(&self, i: usize) -> PathBuf {
        self.dir.join(Self::node_name(i))
    }

    pub fn data_dir(&self, i: usize) -> PathBuf {
        self.node_dir(i).join("data")
    }

    pub fn yaml_path(&self, i: usize) -> PathBuf {
        self.dir.join(format!("{}.yaml", Self::node_name(i)))
    }

    /// HAProxy's admin socket (a drained switchover takes the old leader
    /// out of rotation through it).
    pub fn proxy_socket(&self) -> PathBuf {
        self.dir.join("haproxy.sock")
    }
}

/// etcd's command line: one member on loopback, its data in the cluster's directory.
pub fn etcd_args(l: &Layout) -> Vec<String> {
    let client = format!("http://127.0.0.1:{}", l.etcd_client);
    let peer = format!("http://127.0.0.1:{}", l.etcd_peer);
    [
        "--name",
        "etcd0",
        "--data-dir",
        &path(&l.dir.join("etcd")),
        "--listen-client-urls",
        &client,
        "--advertise-client-urls",
        &client,
        "--listen-peer-urls",
        &peer,
        "--initial-advertise-peer-urls",
        &peer,
        "--initial-cluster",
        &format!("etcd0={peer}"),
        "--initial-cluster-state",
        "new",
        "--initial-cluster-token",
        &l.scope,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

fn path(p: &Path) -> String {
    p.display().to_string()
}

/// Node `i`'s Patroni configuration. Patroni's etcd3 client speaks etcd
/// 3.4's JSON gateway, so etcd needs no v2 API. The timings keep
/// `loop_wait + 2 x retry_timeout <= ttl`.
pub fn patroni_yaml(l: &Layout, i: usize) -> String {
    let n = &l.nodes[i];
    let retry = (l.ttl_s.saturating_sub(1) / 2).max(1);
    let sync = l.replication == Replication::Sync;
    let lines: Vec<String> = vec![
        format!("scope: {}", l.scope),
        format!("name: {}", Layout::node_name(i)),
        "restapi:".into(),
        format!("  listen: 127.0.0.1:{}", n.rest),
        format!("  connect_address: 127.0.0.1:{}", n.rest),
        "etcd3:".into(),
        format!("  hosts: 127.0.0.1:{}", l.etcd_client),
        "  protocol: http".into(),
        "watchdog:".into(),
        "  mode: \"off\"".into(),
        "bootstrap:".into(),
        "  dcs:".into(),
        format!("    ttl: {}", l.ttl_s),
        "    loop_wait: 1".into(),
        format!("    retry_timeout: {retry}"),
        "    maximum_lag_on_failover: 1048576".into(),
        format!("    synchronous_mode: {sync}"),
        "    postgresql:".into(),
        "      use_pg_rewind: true".into(),
        "      use_slots: true".into(),
        "      parameters:".into(),
        "        max_connections: 200".into(),
        "        wal_level: replica".into(),
        "        hot_standby: \"on\"".into(),
        "        max_wal_senders: 10".into(),
        "        max_replication_slots: 10".into(),
        "        wal_keep_size: 128MB".into(),
        "        wal_log_hints: \"on\"".into(),
        "        track_functions: all".into(),
        "  initdb:".into(),
        "    - encoding: UTF8".into(),
        "    - data-checksums".into(),
        "postgresql:".into(),
        format!("  listen: 127.0.0.1:{}", n.pg),
        format!("  connect_address: 127.0.0.1:{}", n.pg),
        format!("  data_dir: {}", path(&l.data_dir(i))),
        format!("  bin_dir: {}", path(&l.bindir)),
        format!("  pgpass: {}", path(&l.node_dir(i).join("pgpass"))),
        "  authentication:".into(),
        "    superuser:".into(),
        "      username: postgres".into(),
        format!("      password: \"{}\"", l.superuser_password),
        "    replication:".into(),
        "      username: replicator".into(),
        format!("      password: \"{}\"", l.replication_password),
        "  parameters:".into(),
        format!("    unix_socket_directories: {}", path(&l.node_dir(i))),
        "    shared_buffers: 128MB".into(),
        "  pg_hba:".into(),
        "    - local all all trust".into(),
        "    - host all all 127.0.0.1/32 scram-sha-256".into(),
        "    - host replication replicator 127.0.0.1/32 scram-sha-256".into(),
    ];
    lines.join("\n") + "\n"
}

/// HAProxy in the foreground: the write endpoint routes to the node whose
/// Patroni answers 200 on `/primary`, checked every second (250 ms while a
/// state changes); sessions to a node marked down are cut, a failed connect
/// is retried on another server.
pub fn haproxy_cfg(l: &Layout) -> String {
    let mut lines: Vec<String> = vec![
        "global".into(),
        "    maxconn 2000".into(),
        format!("    stats socket {} mode 600 level admin", path(&l.proxy_socket())),
        "defaults".into(),
        "    mode tcp".into(),
        "    retries 8".into(),
        "    option redispatch 1".into(),
        "    timeout connect 250ms".into(),
        "    timeout client 30m".into(),
        "    timeout server 30m".into(),
        "    timeout check 1s".into(),
        "listen stats".into(),
        "    mode http".into(),
        format!("    bind 127.0.0.1:{}", l.stats),
        "    stats enable".into(),
        "    stats uri /".into(),
        "listen primary".into(),
        format!("    bind 127.0.0.1:{}", l.proxy),
        "    option httpchk OPTIONS /primary".into(),
        "    http-check expect status 200".into(),
        "    default-server inter 1s fastinter 250ms downinter 250ms fall 2 rise 1 on-marked-down shutdown-sessions"
            .into(),
    ];
    for (i, n) in l.nodes.iter().enumerate() {
        lines.push(format!("    server {} 127.0.0.1:{} maxconn 500 check port {}", Layout::node_name(i), n.pg, n.rest));
    }
    lines.join("\n") + "\n"
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout(replication: Replication) -> Layout {
        Layout {
            dir: "/tmp/loadgen-ha-x".into(),
            scope: "loadgen-ha-x".into(),
            bindir: "/usr/lib/postgresql/15/bin".into(),
            etcd_client: 20001,
            etcd_peer: 20002,
            proxy: 20003,
            stats: 20004,
            nodes: vec![NodePorts { rest: 20010, pg: 20011 }, NodePorts { rest: 20020, pg: 20021 }],
            superuser_password: "su".into(),
            replication_password: "rp".into(),
            replication,
            ttl_s: 10,
        }
    }

    #[test]
    fn each_process_is_configured_on_loopback_inside_the_cluster_dir() {
        let l = layout(Replication::Sync);
        let y = patroni_yaml(&l, 1);
        for line in [
            "scope: loadgen-ha-x",
            "name: n2",
            "listen: 127.0.0.1:20020",
            "hosts: 127.0.0.1:20001",
            "synchronous_mode: true",
            "retry_timeout: 4",
            "\n  data_dir: /tmp/loadgen-ha-x/n2/data\n",
            "\n    synchronous_mode: true\n",
            "unix_socket_directories: /tmp/loadgen-ha-x/n2",
        ] {
            assert!(y.contains(line), "{line:?} missing from\n{y}");
        }
        assert!(patroni_yaml(&layout(Replication::Async), 0).contains("synchronous_mode: false"));
        let h = haproxy_cfg(&l);
        assert!(
            h.contains("bind 127.0.0.1:20003") && h.contains("server n2 127.0.0.1:20021 maxconn 500 check port 20020")
        );
        assert!(h.contains("stats socket /tmp/loadgen-ha-x/haproxy.sock mode 600 level admin"), "{h}");
        let e = etcd_args(&l).join(" ");
        assert!(
            e.contains("--listen-client-urls http://127.0.0.1:20001") && e.contains("etcd0=http://127.0.0.1:20002")
        );
    }
}

//! A high-availability Postgres on loopback, as production runs it: one
//! etcd, Postgres nodes under Patroni (leader election, streaming
//! replication, synchronous or not), and HAProxy routing the one write
//! endpoint to whichever node Patroni says is the leader. Throwaway: its
//! directory, ports and processes exist for the session only; every process
//! runs as the `postgres` user (Postgres refuses root), dies with this one,
//! and is swept by the cluster's unique name when it is taken down.
//!
//! Figures of the prototype this follows (2 cores, loaded): writable
//! through HAProxy 4-10 s after the start; a planned switchover leaves
//! writes unavailable 1.4-1.7 s; a failover about the leader key's TTL.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use loadgen_common::process;

pub mod config;
mod control;
pub mod probe;
pub mod rest;

pub use config::Replication;
use config::{Layout, NodePorts};

/// How long the cluster may take to become writable with its standbys streaming.
const READY_BOUND: Duration = Duration::from_secs(120);
/// Patroni's leader key lifetime: a failover begins within about this long.
const TTL_S: u32 = 10;
/// What the cluster needs besides Postgres: (program, Debian package).
const PROGRAMS: [(&str, &str); 3] = [("etcd", "etcd-server"), ("patroni", "patroni"), ("haproxy", "haproxy")];

/// A running cluster; taken down when dropped.
pub struct HaCluster {
    dir: Option<tempfile::TempDir>,
    pub(super) layout: Layout,
    programs: Vec<PathBuf>,
    run_as: Option<(u32, u32)>,
    etcd: Option<Child>,
    proxy: Option<Child>,
    nodes: Vec<Option<Child>>,
    url: String,
}

impl std::fmt::Debug for HaCluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HaCluster").field("scope", &self.layout.scope).field("proxy", &self.layout.proxy).finish()
    }
}

fn find_program(name: &str) -> Option<PathBuf> {
    let dirs = std::env::var_os("PATH").map(|p| std::env::split_paths(&p).collect::<Vec<_>>()).unwrap_or_default();
    dirs.into_iter().chain(["/usr/bin".into(), "/usr/sbin".into()]).map(|d| d.join(name)).find(|p| p.is_file())
}

/// The programs, or one line naming the packages that are missing.
pub fn programs() -> Result<Vec<PathBuf>, String> {
    programs_found(find_program)
}

/// [`programs`], looking each up with `find`.
fn programs_found(find: impl Fn(&str) -> Option<PathBuf>) -> Result<Vec<PathBuf>, String> {
    let found: Vec<(Option<PathBuf>, &str)> = PROGRAMS.iter().map(|(p, pkg)| (find(p), *pkg)).collect();
    let missing: Vec<&str> = found.iter().filter(|(p, _)| p.is_none()).map(|(_, pkg)| *pkg).collect();
    if !missing.is_empty() {
        return Err(format!(
            "--ha needs Debian's {} package(s) (apt-get install {}; scripts/test-deps.sh installs them)",
            missing.join(", "),
            missing.join(" ")
        ));
    }
    Ok(found.into_iter().filter_map(|(p, _)| p).collect())
}

/// `n` distinct free loopback ports (each held until all are found).
fn free_ports(n: usize) -> Result<Vec<u16>, String> {
    let held: Vec<std::net::TcpListener> = (0..n)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0"))
        .collect::<Result<_, _>>()
        .map_err(|e| format!("no free port: {e}"))?;
    held.iter().map(|l| l.local_addr().map(|a| a.port()).map_err(|e| e.to_string())).collect()
}

fn secret() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

impl HaCluster {
    /// Start a cluster of `nodes` Postgres nodes and wait (bounded) until it
    /// is writable through HAProxy with every standby streaming (and, with
    /// synchronous replication, one standby synchronous).
    pub async fn start(replication: Replication, nodes: usize) -> Result<Self, String> {
        let programs = programs()?;
        let bindir = crate::db::embedded::find_bindir()
            .ok_or("--ha needs the PostgreSQL server binaries (apt-get install postgresql)")?;
        // Patroni wants every server tool (pg_controldata, pg_rewind) beside
        // postgres: the real directory, not a PATH entry of symlinks.
        let bindir = std::fs::canonicalize(bindir.join("postgres"))
            .ok()
            .and_then(|p| p.parent().map(Path::to_path_buf))
            .unwrap_or(bindir);
        let run_as = if process::is_root() {
            Some(crate::db::embedded::postgres_user().ok_or("running as root but there is no 'postgres' user")?)
        } else {
            None
        };
        let dir = tempfile::Builder::new().prefix("loadgen-ha-").tempdir().map_err(|e| format!("temp dir: {e}"))?;
        crate::db::leftover::mark_owner(dir.path()).map_err(|e| format!("temp dir: {e}"))?;
        let scope = dir.path().file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let ports = free_ports(4 + 2 * nodes)?;
        let layout = Layout {
            dir: dir.path().to_path_buf(),
            scope,
            bindir,
            etcd_client: ports[0],
            etcd_peer: ports[1],
            proxy: ports[2],
            stats: ports[3],
            nodes: (0..nodes).map(|i| NodePorts { rest: ports[4 + 2 * i], pg: ports[5 + 2 * i] }).collect(),
            superuser_password: secret(),
            replication_password: secret(),
            replication,
            ttl_s: TTL_S,
        };
        // Loopback: no TLS (HAProxy with no leader closes the connection, which
        // an SSLRequest would misread).
        let url = format!(
            "postgres://postgres:{}@127.0.0.1:{}/postgres?sslmode=disable",
            layout.superuser_password, layout.proxy
        );
        let mut c =
            HaCluster { dir: Some(dir), layout, programs, run_as, etcd: None, proxy: None, nodes: Vec::new(), url };
        c.write_files()?;
        let started = async {
            c.launch().await?;
            c.wait_ready().await
        };
        if let Err(e) = started.await {
            return Err(format!("{e}; {}", c.log_tails()));
        }
        Ok(c)
    }

    /// The last lines of each process's log, to say why it did not come up.
    fn log_tails(&self) -> String {
        let l = &self.layout;
        let mut logs: Vec<(String, PathBuf)> =
            (0..l.nodes.len()).map(|i| (Layout::node_name(i), l.node_dir(i).join("patroni.log"))).collect();
        logs.push(("etcd".into(), l.dir.join("etcd.log")));
        logs.push(("haproxy".into(), l.dir.join("haproxy.log")));
        logs.iter()
            .map(|(name, p)| {
                let text = std::fs::read_to_string(p).unwrap_or_default();
                let tail: Vec<&str> = text.lines().filter(|l| !l.starts_with("  ")).rev().take(8).collect();
                let tail: Vec<&str> = tail.into_iter().rev().collect();
                format!("{name}'s log ends: {}", loadgen_common::secret::scrub(&tail.join(" | "), &self.url))
            })
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// The write endpoint (a secret: it holds the password).
    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn proxy_port(&self) -> u16 {
        self.layout.proxy
    }

    pub fn describe(&self) -> String {
        format!(
            "HA cluster on 127.0.0.1:{} (HAProxy to {} Postgres nodes under Patroni, {} replication, etcd)",
            self.layout.proxy,
            self.layout.nodes.len(),
            self.layout.replication.as_str()
        )
    }

    fn own(&self, p: &Path) -> Result<(), String> {
        if let Some((uid, gid)) = self.run_as {
            std::os::unix::fs::chown(p, Some(uid), Some(gid)).map_err(|e| format!("chown {}: {e}", p.display()))?;
        }
        Ok(())
    }

    /// The configuration files and each node's directory (mode 700, the
    /// postgres user's).
    fn write_files(&self) -> Result<(), String> {
        use std::os::unix::fs::PermissionsExt;
        let l = &self.layout;
        self.own(&l.dir)?;
        let write = |p: PathBuf, text: String| -> Result<(), String> {
            std::fs::write(&p, text).map_err(|e| format!("{}: {e}", p.display()))?;
            self.own(&p)
        };
        for i in 0..l.nodes.len() {
            let d = l.node_dir(i);
            std::fs::create_dir(&d).map_err(|e| format!("{}: {e}", d.display()))?;
            std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o700)).map_err(|e| e.to_string())?;
            self.own(&d)?;
            write(l.yaml_path(i), config::patroni_yaml(l, i))?;
        }
        write(l.dir.join("haproxy.cfg"), config::haproxy_cfg(l))
    }

    /// `program args`, as the postgres user, in the cluster's directory,
    /// logging to `log`, dying with this process.
    pub(super) fn spawn(&self, program: usize, args: &[String], log: &Path) -> Result<Child, String> {
        use std::os::unix::process::CommandExt;
        let file = std::fs::File::create(log).map_err(|e| format!("{}: {e}", log.display()))?;
        self.own(log)?;
        let err = file.try_clone().map_err(|e| e.to_string())?;
        let mut cmd = Command::new(&self.programs[program]);
        cmd.args(args).current_dir(&self.layout.dir).stdin(Stdio::null()).stdout(file).stderr(err);
        cmd.env_clear()
            .env("PATH", "/usr/bin:/bin:/usr/sbin:/sbin")
            .env("HOME", &self.layout.dir)
            .env("LANG", "C.UTF-8");
        if let Some((uid, gid)) = self.run_as {
            cmd.uid(uid).gid(gid);
        }
        process::die_with_parent(&mut cmd, process::SIGTERM);
        cmd.spawn().map_err(|e| format!("cannot start {}: {e}", self.programs[program].display()))
    }

    async fn launch(&mut self) -> Result<(), String> {
        let l = self.layout.clone();
        self.etcd = Some(self.spawn(0, &config::etcd_args(&l), &l.dir.join("etcd.log"))?);
        bounded("etcd to answer", Duration::from_secs(20), || async {
            matches!(rest::request(l.etcd_client, "GET", "/health", None).await, Ok((200, _)))
        })
        .await?;
        let cfg = vec!["-db".to_string(), "-f".to_string(), l.dir.join("haproxy.cfg").display().to_string()];
        self.proxy = Some(self.spawn(2, &cfg, &l.dir.join("haproxy.log"))?);
        for i in 0..l.nodes.len() {
            let yaml = vec![l.yaml_path(i).display().to_string()];
            let child = self.spawn(1, &yaml, &l.node_dir(i).join("patroni.log"))?;
            self.nodes.push(Some(child));
        }
        Ok(())
    }

    async fn wait_ready(&self) -> Result<(), String> {
        let deadline = Instant::now() + READY_BOUND;
        let left = || deadline.saturating_duration_since(Instant::now());
        bounded("a leader to be elected", left(), || async {
            // Every Patroni gone (it gives up on a failed bootstrap): say so now.
            self.leader().await.is_some() || self.all_nodes_exited()
        })
        .await?;
        if self.all_nodes_exited() {
            return Err("the HA cluster: every Patroni node exited before a leader was elected".into());
        }
        bounded("the write endpoint to accept writes", left(), || async { self.writable().await }).await?;
        self.wait_healthy(left()).await
    }

    /// Wait (at most `bound`) until every node runs and every standby
    /// streams from the leader (one synchronous, with synchronous
    /// replication): after a switchover the old leader takes seconds to
    /// follow, and until then a synchronous cluster cannot fail over.
    pub async fn wait_healthy(&self, bound: Duration) -> Result<(), String> {
        let standbys = self.layout.nodes.len() as i64 - 1;
        let sync = self.layout.replication == Replication::Sync;
        bounded("every standby to stream", bound, || async {
            let streaming = self.streaming().await;
            let sync_ok = !sync || self.members().await.iter().any(|(_, role, _)| role == "sync_standby");
            streaming >= standbys && sync_ok
        })
        .await
    }

    fn all_nodes_exited(&self) -> bool {
        self.nodes.iter().all(|n| match n {
            None => true,
            Some(c) => {
                // try_wait needs &mut: ask /proc whether the pid still runs.
                !std::path::Path::new(&format!("/proc/{}", c.id())).exists()
                    || std::fs::read_to_string(format!("/proc/{}/stat", c.id()))
                        .map(|s| s.contains(") Z "))
                        .unwrap_or(true)
            }
        })
    }

    /// Every member as Patroni sees it (asked of any node that answers).
    pub async fn members(&self) -> Vec<(String, String, String)> {
        for n in &self.layout.nodes {
            if let Ok(m) = rest::members(n.rest).await {
                return m;
            }
        }
        Vec::new()
    }

    /// The leader's name, when there is one.
    pub async fn leader(&self) -> Option<String> {
        for (i, n) in self.layout.nodes.iter().enumerate() {
            if matches!(rest::request(n.rest, "GET", "/primary", None).await, Ok((200, _))) {
                return Some(Layout::node_name(i));
            }
        }
        None
    }

    async fn writable(&self) -> bool {
        takes_writes(&self.url).await
    }

    /// Standbys streaming from the leader (by their Patroni names: a base
    /// backup under way streams too, as `pg_basebackup`).
    async fn streaming(&self) -> i64 {
        use sqlx::Connection;
        let Ok(mut conn) = sqlx::PgConnection::connect(&self.url).await else { return 0 };
        let names: Vec<String> = (0..self.layout.nodes.len()).map(Layout::node_name).collect();
        let n = sqlx::query_scalar::<_, i64>(
            "select count(*) from pg_stat_replication where state = 'streaming' and application_name = any($1)",
        )
        .bind(&names)
        .fetch_one(&mut conn)
        .await;
        let _ = conn.close().await;
        n.unwrap_or(0)
    }
}

/// Whether the server at `url` answers and is out of recovery.
async fn takes_writes(url: &str) -> bool {
    use sqlx::Connection;
    let Ok(mut conn) = sqlx::PgConnection::connect(url).await else { return false };
    let ok = sqlx::query_scalar::<_, bool>("select not pg_is_in_recovery()").fetch_one(&mut conn).await;
    let _ = conn.close().await;
    ok.unwrap_or(false)
}

/// Poll `ready` every 200 ms until it holds, for at most `bound`.
async fn bounded<F, Fut>(what: &str, bound: Duration, mut ready: F) -> Result<(), String>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + bound;
    loop {
        if ready().await {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(format!("the HA cluster: waited {bound:?} for {what}"));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn missing_packages_are_named_in_one_line() {
        let without_patroni = |p: &str| (p != "patroni" && p != "haproxy").then(|| std::path::PathBuf::from(p));
        assert_eq!(
            super::programs_found(without_patroni).expect_err("missing"),
            "--ha needs Debian's patroni, haproxy package(s) (apt-get install patroni haproxy; scripts/test-deps.sh installs them)"
        );
        let all = super::programs_found(|p| Some(p.into())).expect("found");
        assert_eq!(all, [std::path::PathBuf::from("etcd"), "patroni".into(), "haproxy".into()]);
    }
}

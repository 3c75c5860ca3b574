//! The throwaway Postgres: the embedded default when no database URL is given.
//!
//! `initdb` into a fresh temporary directory, `postgres` on a free loopback
//! port with trust authentication, and everything removed again on
//! [`EmbeddedPostgres::stop`] or drop. When this process runs as root the
//! server runs as the `postgres` user (Postgres refuses root). The server is a
//! direct child in its own process group, so a Ctrl-C at the terminal reaches
//! the coordinator only and shutdown happens in order; a parent-death signal
//! makes it shut down immediately even if the coordinator is killed outright.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sqlx::Connection;
use thiserror::Error;

use loadgen_common::process;

/// Superuser created by `initdb` in the throwaway cluster.
pub const SUPERUSER: &str = "loadgen";
/// How long the server may take to accept connections.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a fast shutdown may take before the server is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(20);
/// Connection slots of the throwaway server: room for many local agents.
const MAX_CONNECTIONS: u32 = 400;

/// How [`EmbeddedPostgres::restart`] stops the server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shutdown {
    /// Postgres' fast shutdown (a planned restart): sessions are ended with
    /// "terminating connection due to administrator command" (SQLSTATE 57P01).
    Fast,
    /// Postgres' immediate shutdown (like a crash): connections are reset.
    Immediate,
}

/// Why the throwaway Postgres could not be started.
#[derive(Debug, Error)]
pub enum EmbeddedPgError {
    #[error(
        "no database URL given and the PostgreSQL server binaries (initdb, postgres) are not in $LOADGEN_PG_BINDIR, on PATH or in /usr/lib/postgresql/*/bin; install them (Debian/Ubuntu: apt-get install postgresql) or pass --database-url"
    )]
    NotInstalled,
    #[error(
        "running as root but there is no 'postgres' user to run the throwaway server as (Postgres refuses root); create one or pass --database-url"
    )]
    NoPostgresUser,
    #[error("throwaway Postgres: {step} failed: {detail}")]
    Step { step: &'static str, detail: String },
}

impl From<EmbeddedPgError> for crate::error::CoordinatorError {
    fn from(e: EmbeddedPgError) -> Self {
        crate::error::CoordinatorError::Embedded(e.to_string())
    }
}

fn step(step: &'static str) -> impl FnOnce(std::io::Error) -> EmbeddedPgError {
    move |e| EmbeddedPgError::Step { step, detail: e.to_string() }
}

/// A running throwaway cluster. Dropping it stops the server and removes its directory.
#[derive(Debug)]
pub struct EmbeddedPostgres {
    dir: Option<tempfile::TempDir>,
    child: Option<Child>,
    bindir: PathBuf,
    run_as: Option<(u32, u32)>,
    port: u16,
    url: String,
    /// Password of the superuser over TCP (None: trust authentication).
    password: Option<String>,
}

impl EmbeddedPostgres {
    /// Create and start a new throwaway cluster, ready to accept connections.
    pub async fn start() -> Result<Self, EmbeddedPgError> {
        Self::start_inner(None).await
    }

    /// Like [`Self::start`], but TCP connections must authenticate with
    /// `password` (SCRAM): for tests of bad passwords and of masking.
    pub async fn start_with_password(password: &str) -> Result<Self, EmbeddedPgError> {
        Self::start_inner(Some(password.to_string())).await
    }

    async fn start_inner(password: Option<String>) -> Result<Self, EmbeddedPgError> {
        let bindir = find_bindir().ok_or(EmbeddedPgError::NotInstalled)?;
        let run_as =
            if process::is_root() { Some(postgres_user().ok_or(EmbeddedPgError::NoPostgresUser)?) } else { None };
        let dir = tempfile::Builder::new().prefix("loadgen-pg-").tempdir().map_err(step("creating the temp dir"))?;
        crate::db::leftover::mark_owner(dir.path()).map_err(step("naming the temp dir's owner"))?;
        if let Some((uid, gid)) = run_as {
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid)).map_err(step("chown of the temp dir"))?;
        }
        let mut pg =
            EmbeddedPostgres { dir: Some(dir), child: None, bindir, run_as, port: 0, url: String::new(), password };
        pg.initdb().await?;
        // A free port can be taken by someone else between our probe and the
        // server's bind; try a few.
        let mut last = None;
        for _ in 0..3 {
            match pg.spawn_server(None).await {
                Ok(()) => return Ok(pg),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or(EmbeddedPgError::Step { step: "starting postgres", detail: "no attempt made".into() }))
    }

    /// Connection URL (trust auth on loopback unless started with a password).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// TCP port the server listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The temporary directory holding the cluster (gone after stop).
    pub fn dir(&self) -> Option<&Path> {
        self.dir.as_ref().map(|d| d.path())
    }

    /// Process id of the postmaster, while running.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The installed server has the pg_stat_statements module (next to the
    /// real binary: `postgres` on PATH may be a symlink into the version's
    /// directory).
    fn has_statements(&self) -> bool {
        let real = std::fs::canonicalize(self.bindir.join("postgres")).unwrap_or_else(|_| self.bindir.join("postgres"));
        real.parent().is_some_and(|bin| bin.join("../lib/pg_stat_statements.so").exists())
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.as_ref().map(|d| d.path().join("data")).unwrap_or_default()
    }

    fn command(&self, program: &str) -> Command {
        use std::os::unix::process::CommandExt;
        let mut cmd = Command::new(self.bindir.join(program));
        if let Some((uid, gid)) = self.run_as {
            cmd.uid(uid).gid(gid);
        }
        if let Some(d) = &self.dir {
            cmd.current_dir(d.path());
        }
        // Our own settings only: a PGDATA or PGPORT from the caller's shell must not leak in.
        for var in ["PGDATA", "PGPORT", "PGHOST", "PGUSER", "PGDATABASE", "PGOPTIONS"] {
            cmd.env_remove(var);
        }
        cmd
    }

    async fn initdb(&self) -> Result<(), EmbeddedPgError> {
        let mut cmd = self.command("initdb");
        cmd.arg("-D").arg(self.data_dir()).args(["-U", SUPERUSER, "--encoding=UTF8", "--no-locale", "--no-sync"]);
        let pwfile = self.dir.as_ref().map(|d| d.path().join("pwfile")).unwrap_or_default();
        match &self.password {
            None => {
                cmd.arg("--auth=trust");
            }
            Some(pw) => {
                std::fs::write(&pwfile, pw).map_err(step("writing the password file"))?;
                if let Some((uid, gid)) = self.run_as {
                    std::os::unix::fs::chown(&pwfile, Some(uid), Some(gid))
                        .map_err(step("chown of the password file"))?;
                }
                cmd.args(["--auth-local=trust", "--auth-host=scram-sha-256"])
                    .arg(format!("--pwfile={}", pwfile.display()));
            }
        }
        let out =
            tokio::process::Command::from(cmd).stdin(Stdio::null()).output().await.map_err(step("running initdb"))?;
        let _ = std::fs::remove_file(&pwfile);
        if !out.status.success() {
            return Err(EmbeddedPgError::Step {
                step: "initdb",
                detail: last_lines(&String::from_utf8_lossy(&out.stderr), 3),
            });
        }
        Ok(())
    }

    /// Stop the server (fast shutdown), stay down for `downtime`, and start it
    /// again on the same port and data: what a database restart looks like to
    /// its clients. For fault tests.
    pub async fn restart(&mut self, downtime: std::time::Duration, how: Shutdown) -> Result<(), EmbeddedPgError> {
        let port = self.port;
        match how {
            Shutdown::Fast => self.stop_server(),
            Shutdown::Immediate => {
                if let Some(mut child) = self.child.take() {
                    // SIGQUIT: every backend dies at once, as in a crash; the
                    // next start runs crash recovery.
                    process::signal(child.id(), process::SIGQUIT);
                    let _ = child.wait();
                }
            }
        }
        tokio::time::sleep(downtime).await;
        self.spawn_server(Some(port)).await
    }

    async fn spawn_server(&mut self, port: Option<u16>) -> Result<(), EmbeddedPgError> {
        use std::os::unix::process::CommandExt;
        let port = match port {
            Some(p) => p,
            None => free_port().map_err(step("finding a free port"))?,
        };
        let dir = self.dir.as_ref().map(|d| d.path().to_path_buf()).unwrap_or_default();
        let log_path = dir.join("postgres.log");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(step("creating the server log"))?;
        let log_err = log.try_clone().map_err(step("creating the server log"))?;
        let mut cmd = self.command("postgres");
        cmd.arg("-D")
            .arg(self.data_dir())
            .arg("-p")
            .arg(port.to_string())
            .arg("-k")
            .arg(&dir)
            .args(["-c", "listen_addresses=127.0.0.1"])
            .args(["-c", &format!("max_connections={MAX_CONNECTIONS}")])
            .args(["-c", "shared_buffers=128MB"])
            // The provider's time per stored procedure (pg_stat_user_functions).
            .args(["-c", "track_functions=pl"]);
        if self.has_statements() {
            // Lets users (and our own measurements) see which statements the
            // provider and the generator run.
            cmd.args(["-c", "shared_preload_libraries=pg_stat_statements"]);
        }
        cmd.stdin(Stdio::null()).stdout(log).stderr(log_err).process_group(0);
        process::die_with_parent(&mut cmd, process::SIGQUIT);
        let child = cmd.spawn().map_err(step("starting postgres"))?;
        self.child = Some(child);
        self.port = port;
        self.url = match &self.password {
            None => format!("postgres://{SUPERUSER}@127.0.0.1:{port}/postgres"),
            Some(pw) => {
                format!("postgres://{SUPERUSER}:{}@127.0.0.1:{port}/postgres", loadgen_common::percent::encode(pw))
            }
        };
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                self.child = None;
                let log = std::fs::read_to_string(&log_path).unwrap_or_default();
                return Err(EmbeddedPgError::Step {
                    step: "starting postgres",
                    detail: format!("{status}: {}", last_lines(&log, 3)),
                });
            }
            if let Ok(mut conn) = sqlx::PgConnection::connect(&self.url).await {
                let ok = sqlx::query("SELECT 1").execute(&mut conn).await.is_ok();
                if ok && self.has_statements() {
                    // The view in the database the runs use (kept across restarts).
                    let created =
                        sqlx::query("CREATE EXTENSION IF NOT EXISTS pg_stat_statements").execute(&mut conn).await;
                    if let Err(e) = created {
                        tracing::warn!(error = %e, "pg_stat_statements not created; statement times will be missing");
                    }
                }
                let _ = conn.close().await;
                if ok {
                    tracing::info!(port, dir = %dir.display(), "throwaway Postgres ready");
                    return Ok(());
                }
            }
            if Instant::now() >= deadline {
                self.stop_server();
                let log = std::fs::read_to_string(&log_path).unwrap_or_default();
                return Err(EmbeddedPgError::Step {
                    step: "waiting for postgres",
                    detail: format!("no connection within {READY_TIMEOUT:?}: {}", last_lines(&log, 3)),
                });
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Stop the server (fast shutdown, then kill after a bound) without
    /// removing the directory.
    fn stop_server(&mut self) {
        let Some(mut child) = self.child.take() else { return };
        if matches!(child.try_wait(), Ok(Some(_))) {
            return;
        }
        // SIGINT is Postgres' "fast" shutdown: roll back sessions, checkpoint, exit.
        process::signal(child.id(), process::SIGINT);
        let deadline = Instant::now() + STOP_TIMEOUT;
        while Instant::now() < deadline {
            if matches!(child.try_wait(), Ok(Some(_)) | Err(_)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        tracing::warn!("throwaway Postgres did not stop within {STOP_TIMEOUT:?}; killing it");
        let _ = child.kill();
        let _ = child.wait();
    }

    /// Stop the server and remove its directory. Idempotent.
    pub fn stop(&mut self) {
        self.stop_server();
        if let Some(dir) = self.dir.take() {
            let path = dir.path().to_path_buf();
            if let Err(e) = dir.close() {
                tracing::warn!(dir = %path.display(), error = %e, "could not remove the throwaway Postgres directory");
            }
        }
    }
}

impl Drop for EmbeddedPostgres {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Environment variable naming the directory of the server binaries to use
/// (for a machine with several PostgreSQL versions installed).
pub const BINDIR_ENV: &str = "LOADGEN_PG_BINDIR";

/// The directory holding `initdb` and `postgres`: `$LOADGEN_PG_BINDIR` when
/// set (and only it), else PATH, then Debian's versioned directories (newest first).
pub fn find_bindir() -> Option<PathBuf> {
    let has_both = |d: &Path| d.join("initdb").is_file() && d.join("postgres").is_file();
    if let Some(dir) = std::env::var_os(BINDIR_ENV) {
        let dir = PathBuf::from(dir);
        return has_both(&dir).then_some(dir);
    }
    if let Some(path) = std::env::var_os("PATH") {
        for d in std::env::split_paths(&path) {
            if has_both(&d) {
                return Some(d);
            }
        }
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(Result::ok)
        .filter_map(|e| {
            let v = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            has_both(&bin).then_some((v, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, d)| d)
}

/// uid and gid of the `postgres` user, from /etc/passwd.
pub(crate) fn postgres_user() -> Option<(u32, u32)> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|line| {
        let mut f = line.split(':');
        if f.next()? != "postgres" {
            return None;
        }
        let _password = f.next()?;
        Some((f.next()?.parse().ok()?, f.next()?.parse().ok()?))
    })
}

fn free_port() -> std::io::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(n)..].join(" | ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_lines_keeps_the_tail() {
        assert_eq!(last_lines("a\n\nb\nc\nd\n", 2), "c | d");
        assert_eq!(last_lines("", 2), "");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn starts_serves_and_leaves_nothing_behind() {
        let mut pg = EmbeddedPostgres::start().await.expect("throwaway postgres starts");
        let dir = pg.dir().expect("dir").to_path_buf();
        let pid = pg.pid().expect("pid");
        let mut conn = sqlx::PgConnection::connect(pg.url()).await.expect("connect");
        let one: i32 = sqlx::query_scalar("SELECT 1").fetch_one(&mut conn).await.expect("query");
        assert_eq!(one, 1);
        conn.close().await.expect("close");
        pg.stop();
        assert!(!dir.exists(), "temp dir removed");
        assert!(!Path::new(&format!("/proc/{pid}")).exists(), "server process gone");
    }
}

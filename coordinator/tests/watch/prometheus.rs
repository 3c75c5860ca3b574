//! A throwaway Prometheus server on loopback, scraping one target every
//! second, and its query API over plain HTTP.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// A running server; killed when dropped.
pub struct Prometheus {
    child: Child,
    pub port: u16,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    /// Start one scraping `target` (host:port) every second.
    pub fn scraping(target: &str) -> Prometheus {
        let bin = which("prometheus").unwrap_or_else(|| {
            panic!("the prometheus server is not installed: run scripts/test-deps.sh (Debian package prometheus)")
        });
        let dir = tempfile::tempdir().expect("tmp");
        let config = dir.path().join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: loadgen\n    static_configs:\n      - targets: [\"{target}\"]\n"
            ),
        )
        .expect("config");
        let port = super::support::free_port();
        let child = Command::new(bin)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.tsdb.path={}", dir.path().join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--log.level=warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start prometheus");
        let p = Prometheus { child, port, _dir: dir };
        let deadline = Instant::now() + Duration::from_secs(30);
        while get(port, "/-/ready").is_none_or(|(code, _)| code != 200) {
            assert!(Instant::now() < deadline, "prometheus did not get ready within 30 s");
            std::thread::sleep(Duration::from_millis(200));
        }
        p
    }

    /// The result vector of an instant query (empty when nothing matches).
    pub fn query(&self, promql: &str) -> Vec<Value> {
        let (code, body) = get(self.port, &format!("/api/v1/query?query={}", encode(promql))).expect("query");
        let v: Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{promql}: {e}: {body}"));
        assert_eq!(code, 200, "{promql}: {body}");
        v["data"]["result"].as_array().cloned().unwrap_or_default()
    }

    /// The single value of an instant query (panics when there is none).
    pub fn value(&self, promql: &str) -> f64 {
        let r = self.query(promql);
        let v = r.first().unwrap_or_else(|| panic!("{promql}: no series"));
        v["value"][1].as_str().and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("{promql}: {v}"))
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn which(name: &str) -> Option<std::path::PathBuf> {
    std::env::var_os("PATH")?.to_str()?.split(':').map(|d| Path::new(d).join(name)).find(|p| p.is_file())
}

/// Percent-encode everything but unreserved characters.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// GET `path` from 127.0.0.1:`port`: (status, body), None when it cannot connect.
pub fn get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    let code = out.split_whitespace().nth(1)?.parse().ok()?;
    let body = out.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    Some((code, body))
}

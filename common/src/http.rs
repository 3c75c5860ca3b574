//! The smallest HTTP/1.1 server a Prometheus scrape needs: one thread of
//! its own (so the endpoint outlives the run's async runtime and stays up
//! until the result is written), `GET /metrics` answered with whatever the
//! render function makes, one request per connection.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

/// The exposition's content type (OpenMetrics text, as the client encodes).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// A request's head must arrive within this, and be at most [`MAX_HEAD`].
const READ_TIMEOUT: Duration = Duration::from_secs(2);
const MAX_HEAD: usize = 8 * 1024;

/// `ADDR` as given: host:port, or :port for every interface.
pub fn parse_address(text: &str) -> Result<SocketAddr, String> {
    let bad = |why: String| format!("--metrics-listen {text:?}: {why}");
    let full = if text.starts_with(':') { format!("0.0.0.0{text}") } else { text.to_string() };
    full.to_socket_addrs()
        .map_err(|e| bad(format!("{e} (give host:port, e.g. 127.0.0.1:9464, or :9464)")))?
        .next()
        .ok_or_else(|| bad("the name resolves to no address".into()))
}

/// A listening server; dropped, it stops.
#[derive(Debug)]
pub struct Server {
    address: SocketAddr,
    stop: Arc<AtomicBool>,
    /// CPU time its thread has used (ns), as of the last request.
    cpu: Arc<AtomicU64>,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    /// Listen on `address` and serve `render()` at /metrics.
    pub fn start(address: SocketAddr, render: impl Fn() -> String + Send + 'static) -> std::io::Result<Server> {
        let listener = TcpListener::bind(address)?;
        let address = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = Arc::clone(&stop);
        let cpu = Arc::new(AtomicU64::new(0));
        let used = Arc::clone(&cpu);
        let thread = std::thread::Builder::new().name("metrics".into()).spawn(move || {
            for conn in listener.incoming() {
                if stopping.load(Ordering::Acquire) {
                    break;
                }
                match conn {
                    Ok(stream) => {
                        if let Err(e) = answer(stream, &render) {
                            tracing::debug!(error = %e, "a metrics request failed");
                        }
                    }
                    Err(e) => tracing::debug!(error = %e, "accepting a metrics connection failed"),
                }
                let spent = crate::process::thread_cpu_time().as_nanos();
                used.store(u64::try_from(spent).unwrap_or(u64::MAX), Ordering::Relaxed);
            }
        })?;
        Ok(Server { address, stop, cpu, thread: Some(thread) })
    }

    /// CPU time its thread has used answering requests so far.
    pub fn cpu_time(&self) -> Duration {
        Duration::from_nanos(self.cpu.load(Ordering::Relaxed))
    }

    /// Where it listens (the port chosen when 0 was asked for).
    pub fn address(&self) -> SocketAddr {
        self.address
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        // Wake the blocked accept with a connection of our own.
        let ip = match self.address.ip() {
            IpAddr::V4(v4) if v4.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(v6) if v6.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
            ip => ip,
        };
        let woke = TcpStream::connect_timeout(&SocketAddr::new(ip, self.address.port()), READ_TIMEOUT).is_ok();
        if let Some(t) = self.thread.take()
            && woke
        {
            let _ = t.join();
        }
    }
}

/// Read one request head and answer it.
fn answer(mut stream: TcpStream, render: &impl Fn() -> String) -> std::io::Result<()> {
    stream.set_read_timeout(Some(READ_TIMEOUT))?;
    stream.set_write_timeout(Some(READ_TIMEOUT))?;
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut buf)?;
        if n == 0 || head.len() + n > MAX_HEAD {
            return Ok(());
        }
        head.extend_from_slice(&buf[..n]);
    }
    let line = String::from_utf8_lossy(head.split(|&b| b == b'\r').next().unwrap_or_default()).into_owned();
    let mut parts = line.split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let path = path.split('?').next().unwrap_or("");
    let (status, content_type, body) = match (method, path) {
        ("GET" | "HEAD", "/metrics") => ("200 OK", CONTENT_TYPE, render()),
        ("GET" | "HEAD", "/") => {
            ("200 OK", "text/plain; charset=utf-8", "duroxide-pg load generator: see /metrics\n".into())
        }
        ("GET" | "HEAD", _) => ("404 Not Found", "text/plain; charset=utf-8", "not found; see /metrics\n".into()),
        _ => ("405 Method Not Allowed", "text/plain; charset=utf-8", "only GET\n".into()),
    };
    let mut response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    if method != "HEAD" {
        response.push_str(&body);
    }
    stream.write_all(response.as_bytes())?;
    stream.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(address: SocketAddr, path: &str) -> String {
        let mut s = TcpStream::connect(address).expect("connect");
        write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").expect("write");
        let mut out = String::new();
        s.read_to_string(&mut out).expect("read");
        out
    }

    #[test]
    fn it_serves_metrics_and_stops_when_dropped() {
        let server =
            Server::start("127.0.0.1:0".parse().expect("addr"), || "x_total 1\n# EOF\n".into()).expect("listen");
        let address = server.address();
        let got = get(address, "/metrics");
        assert!(got.starts_with("HTTP/1.1 200 OK") && got.contains(CONTENT_TYPE), "{got}");
        assert!(got.ends_with("\r\n\r\nx_total 1\n# EOF\n"), "{got}");
        assert!(get(address, "/other").starts_with("HTTP/1.1 404"));
        // The port is taken while it serves.
        assert!(TcpListener::bind(address).is_err());
        drop(server);
        assert!(TcpStream::connect(address).is_err(), "still listening after the drop");
    }
}

//! A TCP relay on the agent's loopback that delays traffic both ways, so a
//! high-latency database can be studied on one machine: the providers connect
//! to the relay, the relay to Postgres, and every chunk of bytes is held for
//! the configured one-way delay before it is passed on (latency, not bandwidth:
//! chunks in flight overlap, as on a real long link).
//!
//! Faults change it while it runs ([`Knobs`]): more delay for a while, a
//! partition (nothing passes either way, connections stay open, as when a
//! link drops packets), or new connections refused with a SQLSTATE (the
//! relay answers the client's startup message with the ErrorResponse a
//! server that cannot take it sends), undone when the fault ends.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// What faults change in a running relay (atomics: read on every chunk).
#[derive(Debug, Default)]
pub struct Knobs {
    /// Delay added to the relay's own, each way, in microseconds.
    extra_us: AtomicU64,
    /// Nothing passes while set.
    blocked: AtomicBool,
    /// New connections are refused with this answer while set.
    refuse: Mutex<Option<Refusal>>,
    /// Connections opened, and refused, since the relay started.
    attempts: AtomicU64,
    refused: AtomicU64,
}

/// How new connections are refused: with which SQLSTATE, and which of them.
#[derive(Clone, Debug, PartialEq)]
pub struct Refusal {
    pub code: String,
    /// Every n-th attempt (1: every one) ...
    pub every: u64,
    /// ... or this share of them, at random.
    pub share: Option<f64>,
}

impl Knobs {
    /// Add `extra` to the one-way delay (zero: none).
    pub fn set_extra_delay(&self, extra: Duration) {
        self.extra_us.store(u64::try_from(extra.as_micros()).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    /// Block (or unblock) all traffic.
    pub fn set_blocked(&self, blocked: bool) {
        self.blocked.store(blocked, Ordering::Relaxed);
    }

    /// Refuse new connections as `refusal` says (`None`: accept them).
    pub fn set_refusal(&self, refusal: Option<Refusal>) {
        if let Ok(mut r) = self.refuse.lock() {
            *r = refusal;
        }
    }

    /// Connections opened and refused since the relay started.
    pub fn connections(&self) -> (u64, u64) {
        (self.attempts.load(Ordering::Relaxed), self.refused.load(Ordering::Relaxed))
    }

    /// Count a new connection; the SQLSTATE to refuse it with, if refused.
    fn admit(&self) -> Option<String> {
        let n = self.attempts.fetch_add(1, Ordering::Relaxed) + 1;
        let refusal = self.refuse.lock().ok()?.clone()?;
        let hit = match refusal.share {
            Some(share) => unit_random(n) < share,
            None => n.is_multiple_of(refusal.every.max(1)),
        };
        if hit {
            self.refused.fetch_add(1, Ordering::Relaxed);
            Some(refusal.code)
        } else {
            None
        }
    }

    fn extra(&self) -> Duration {
        Duration::from_micros(self.extra_us.load(Ordering::Relaxed))
    }

    fn is_blocked(&self) -> bool {
        self.blocked.load(Ordering::Relaxed)
    }
}

/// A running relay; dropping it (or [`Relay::stop`]) closes every connection.
#[derive(Debug)]
pub struct Relay {
    local: SocketAddr,
    cancel: CancellationToken,
    knobs: Arc<Knobs>,
}

impl Relay {
    /// Listen on 127.0.0.1:0 and relay each connection to `target` with `delay` each way.
    pub async fn start(target: String, delay: Duration) -> std::io::Result<Relay> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let local = listener.local_addr()?;
        let cancel = CancellationToken::new();
        let stop = cancel.clone();
        let knobs = Arc::new(Knobs::default());
        let shared = Arc::clone(&knobs);
        tokio::spawn(async move {
            loop {
                let accepted = tokio::select! {
                    a = listener.accept() => a,
                    _ = stop.cancelled() => return,
                };
                let Ok((client, _)) = accepted else { continue };
                let (target, stop, knobs) = (target.clone(), stop.clone(), Arc::clone(&shared));
                tokio::spawn(async move {
                    if let Some(code) = knobs.admit() {
                        let _ = tokio::time::timeout(Duration::from_secs(5), refuse(client, &code)).await;
                        return;
                    }
                    match TcpStream::connect(&target).await {
                        Ok(server) => relay(client, server, delay, knobs, stop).await,
                        Err(e) => tracing::warn!(%target, error = %e, "latency relay cannot reach the database"),
                    }
                });
            }
        });
        tracing::info!(%local, delay_ms = delay.as_millis() as u64, "latency relay started");
        Ok(Relay { local, cancel, knobs })
    }

    /// What faults change while it runs.
    pub fn knobs(&self) -> Arc<Knobs> {
        Arc::clone(&self.knobs)
    }

    /// Address the providers should connect to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Close the listener and every relayed connection.
    pub fn stop(&self) {
        self.cancel.cancel();
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

async fn relay(client: TcpStream, server: TcpStream, delay: Duration, knobs: Arc<Knobs>, stop: CancellationToken) {
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (cr, cw) = client.into_split();
    let (sr, sw) = server.into_split();
    tokio::select! {
        _ = async { tokio::join!(pipe(cr, sw, delay, Arc::clone(&knobs)), pipe(sr, cw, delay, knobs)) } => {}
        _ = stop.cancelled() => {}
    }
}

/// A number in [0, 1) from the attempt's count and the clock (splitmix64):
/// which attempts a share refuses.
fn unit_random(n: u64) -> f64 {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    let mut z = n.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ u64::from(nanos);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 53) as f64
}

/// The protocol codes of the requests a client may send before its startup
/// message: SSL and GSS encryption (each answered "N": not here, go on).
const SSL_REQUEST: u32 = 80_877_103;
const GSSENC_REQUEST: u32 = 80_877_104;

/// Answer a client's startup as a server that cannot take it does: a FATAL
/// ErrorResponse with `code`, then close.
async fn refuse(mut client: TcpStream, code: &str) -> std::io::Result<()> {
    loop {
        let len = client.read_u32().await? as usize;
        if !(8..=10_000).contains(&len) {
            return Ok(());
        }
        let mut body = vec![0u8; len - 4];
        client.read_exact(&mut body).await?;
        let request = u32::from_be_bytes([body[0], body[1], body[2], body[3]]);
        if request == SSL_REQUEST || request == GSSENC_REQUEST {
            client.write_all(b"N").await?;
            continue;
        }
        break;
    }
    client.write_all(&error_response(code)).await?;
    client.shutdown().await
}

/// A FATAL ErrorResponse message with `code`.
fn error_response(code: &str) -> Vec<u8> {
    let message = format!("connection refused by the load generator's sqlstate fault ({code})");
    let mut fields = Vec::new();
    for (tag, value) in [(b'S', "FATAL"), (b'V', "FATAL"), (b'C', code), (b'M', message.as_str())] {
        fields.push(tag);
        fields.extend_from_slice(value.as_bytes());
        fields.push(0);
    }
    fields.push(0);
    let mut msg = vec![b'E'];
    msg.extend_from_slice(&u32::try_from(fields.len() + 4).unwrap_or(u32::MAX).to_be_bytes());
    msg.extend(fields);
    msg
}

/// How often a blocked writer looks whether the partition is over.
const BLOCKED_POLL: Duration = Duration::from_millis(10);

/// Copy `from` to `to`, holding every chunk for `delay` (plus a fault's),
/// and nothing while a partition blocks traffic.
async fn pipe<R, W>(mut from: R, mut to: W, delay: Duration, knobs: Arc<Knobs>)
where
    R: AsyncReadExt + Unpin + Send + 'static,
    W: AsyncWriteExt + Unpin + Send + 'static,
{
    let (tx, mut rx) = mpsc::unbounded_channel::<(Instant, Vec<u8>)>();
    let reader_knobs = Arc::clone(&knobs);
    let reader = async move {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match from.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    let due = Instant::now() + delay + reader_knobs.extra();
                    if tx.send((due, buf[..n].to_vec())).is_err() {
                        break;
                    }
                }
            }
        }
        // Dropping `tx` lets the writer finish what is in flight, then close.
    };
    let writer = async move {
        while let Some((due, chunk)) = rx.recv().await {
            tokio::time::sleep_until(due).await;
            while knobs.is_blocked() {
                tokio::time::sleep(BLOCKED_POLL).await;
            }
            if to.write_all(&chunk).await.is_err() {
                return;
            }
        }
        let _ = to.shutdown().await;
    };
    tokio::join!(reader, writer);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn delays_both_ways_and_keeps_bytes_in_order() {
        // An echo server stands in for Postgres.
        let echo = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let echo_addr = echo.local_addr().expect("addr");
        tokio::spawn(async move {
            while let Ok((mut s, _)) = echo.accept().await {
                tokio::spawn(async move {
                    let (mut r, mut w) = s.split();
                    let _ = tokio::io::copy(&mut r, &mut w).await;
                });
            }
        });
        let delay = Duration::from_millis(40);
        let relay = Relay::start(echo_addr.to_string(), delay).await.expect("relay");
        let mut c = TcpStream::connect(relay.local_addr()).await.expect("connect");
        let msg: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        let started = std::time::Instant::now();
        c.write_all(&msg).await.expect("write");
        let mut back = vec![0u8; msg.len()];
        c.read_exact(&mut back).await.expect("read");
        let rtt = started.elapsed();
        assert_eq!(back, msg);
        assert!(rtt >= 2 * delay, "round trip {rtt:?} shorter than twice the delay");
        assert!(rtt < 2 * delay + Duration::from_secs(2), "round trip {rtt:?}");
        // A partition holds everything until it ends; an added delay adds.
        relay.knobs().set_blocked(true);
        c.write_all(b"ping").await.expect("write");
        let mut four = [0u8; 4];
        let held = tokio::time::timeout(Duration::from_millis(300), c.read_exact(&mut four)).await;
        assert!(held.is_err(), "nothing passes a partition");
        relay.knobs().set_blocked(false);
        c.read_exact(&mut four).await.expect("read after the partition");
        assert_eq!(&four, b"ping");
        relay.knobs().set_extra_delay(Duration::from_millis(100));
        let started = std::time::Instant::now();
        c.write_all(b"pong").await.expect("write");
        c.read_exact(&mut four).await.expect("read");
        assert!(started.elapsed() >= 2 * (delay + Duration::from_millis(100)), "{:?}", started.elapsed());
        relay.stop();
    }

    #[tokio::test]
    async fn a_refusal_answers_the_startup_with_the_sqlstate() {
        let relay = Relay::start("127.0.0.1:9".into(), Duration::ZERO).await.expect("relay");
        relay.knobs().set_refusal(Some(Refusal { code: "53300".into(), every: 1, share: None }));
        let mut c = TcpStream::connect(relay.local_addr()).await.expect("connect");
        // An SSL request first, as libpq and sqlx send with sslmode=prefer.
        c.write_all(&[0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f]).await.expect("ssl request");
        assert_eq!(c.read_u8().await.expect("answer"), b'N');
        let startup = [0u8, 0, 0, 9, 0, 3, 0, 0, 0];
        c.write_all(&startup).await.expect("startup");
        let mut answer = Vec::new();
        c.read_to_end(&mut answer).await.expect("read");
        assert_eq!(answer[0], b'E');
        let text = String::from_utf8_lossy(&answer[5..]);
        assert!(text.contains("SFATAL") && text.contains("C53300\0"), "{text:?}");
        assert_eq!(relay.knobs().connections(), (1, 1));
        // Every second attempt only.
        relay.knobs().set_refusal(Some(Refusal { code: "57P03".into(), every: 2, share: None }));
        assert_eq!(relay.knobs().admit(), Some("57P03".into()));
        assert_eq!(relay.knobs().admit(), None);
        relay.knobs().set_refusal(None);
        assert_eq!(relay.knobs().admit(), None);
        assert_eq!(relay.knobs().connections(), (4, 2));
        relay.stop();
    }
}

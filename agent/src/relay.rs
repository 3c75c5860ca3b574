//! A TCP relay on the agent's loopback that delays traffic both ways, so a
//! high-latency database can be studied on one machine: the providers connect
//! to the relay, the relay to Postgres, and every chunk of bytes is held for
//! the configured one-way delay before it is passed on (latency, not bandwidth:
//! chunks in flight overlap, as on a real long link).
//!
//! Faults change it while it runs ([`Knobs`]): more delay for a while, or a
//! partition (nothing passes either way, connections stay open, as when a
//! link drops packets), undone when the fault ends.

use std::net::SocketAddr;
use std::sync::Arc;
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
}

//! The receive task: reads the media sockets in batches and hands every datagram to
//! the worker that owns its peer, in one batch per worker per read.
//!
//! - STUN carries the server's ufrag, whose first character names the worker
//!   ([`super::core::ufrag_worker`]). The source address of a STUN request is then
//!   remembered for that worker.
//! - DTLS and RTP/RTCP go to the worker their source address was last seen with in
//!   STUN (ICE always checks before anything else flows, and again every few seconds).
//! - Anything else, or from an unknown address, is dropped and counted.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tracing::{debug, warn};

use super::core::ufrag_worker;
use super::demux::{self, Kind};
use super::engine::destination_ip;
use super::udp::UdpIo;
use super::worker::{Batch, WorkerMsg};

/// Addresses not seen in STUN for this long are forgotten (browsers check every few
/// seconds; a peer silent this long has been dropped by its worker already).
const ADDRESS_TTL: Duration = Duration::from_secs(60);

/// What the receive task dropped, for `/metrics` and tests.
#[derive(Debug)]
pub struct Counters {
    unroutable: AtomicU64,
    queue_drops: Vec<AtomicU64>,
}

impl Counters {
    pub fn new(workers: usize) -> Self {
        Counters {
            unroutable: AtomicU64::new(0),
            queue_drops: (0..workers).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    /// Datagrams that belonged to no worker.
    pub fn unroutable(&self) -> u64 {
        self.unroutable.load(Ordering::Relaxed)
    }

    /// Datagrams dropped per worker because its queue was full.
    pub fn queue_drops(&self) -> Vec<u64> {
        self.queue_drops
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .collect()
    }
}

/// Source address → (worker, when last seen in STUN).
struct Routes {
    by_addr: HashMap<SocketAddr, (usize, Instant)>,
    next_prune: Instant,
}

impl Routes {
    fn route(
        &mut self,
        now: Instant,
        src: SocketAddr,
        buf: &[u8],
        workers: usize,
    ) -> Option<usize> {
        match demux::classify(buf) {
            Kind::Stun => {
                let w = demux::stun_local_ufrag(buf)
                    .and_then(ufrag_worker)
                    .filter(|&w| w < workers)?;
                self.by_addr.insert(src, (w, now));
                Some(w)
            }
            Kind::Dtls | Kind::Rtp => self.by_addr.get(&src).map(|(w, _)| *w),
            Kind::Other => None,
        }
    }

    fn prune(&mut self, now: Instant) {
        if now < self.next_prune {
            return;
        }
        self.next_prune = now + ADDRESS_TTL;
        self.by_addr
            .retain(|_, (_, seen)| now.duration_since(*seen) < ADDRESS_TTL);
    }
}

pub async fn run(
    mut sockets: Vec<UdpIo>,
    candidates: Vec<SocketAddr>,
    workers: Vec<mpsc::Sender<WorkerMsg>>,
    counters: std::sync::Arc<Counters>,
) {
    if sockets.is_empty() {
        return;
    }
    let mut routes = Routes {
        by_addr: HashMap::new(),
        next_prune: Instant::now() + ADDRESS_TTL,
    };
    let mut batches: Vec<Batch> = workers.iter().map(|_| Batch::default()).collect();
    let has_second = sockets.len() > 1;
    loop {
        let (index, ready) = tokio::select! {
            r = sockets[0].readable() => (0, r),
            r = async { sockets[1].readable().await }, if has_second => (1, r),
            _ = closed(&workers) => break,
        };
        if let Err(e) = ready {
            warn!("media socket error: {e}");
            continue;
        }
        let sock = &mut sockets[index];
        let port = sock.local_addr().port();
        let fallback = sock.local_addr().ip();
        let now = Instant::now();
        // Read a bounded number of batches before handing them over, so workers start
        // early on a busy socket.
        for _ in 0..4 {
            let res = sock.try_recv(|d| {
                let Some(w) = routes.route(now, d.source, d.contents, workers.len()) else {
                    counters.unroutable.fetch_add(1, Ordering::Relaxed);
                    debug!(src = %d.source, len = d.contents.len(), "dropped unroutable datagram");
                    return;
                };
                let dst = destination_ip(&candidates, d.source, d.destination, fallback);
                batches[w].push(d.source, SocketAddr::new(dst, port), d.contents);
            });
            match res {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) => {
                    // ICMP errors surface here (e.g. a browser that closed its port).
                    debug!("media socket receive error: {e}");
                    break;
                }
            }
        }
        for (w, batch) in batches.iter_mut().enumerate() {
            if batch.is_empty() {
                continue;
            }
            let full = std::mem::take(batch);
            if let Err(e) = workers[w].try_send(WorkerMsg::Datagrams(full)) {
                match e {
                    mpsc::error::TrySendError::Full(_) => {
                        counters.queue_drops[w].fetch_add(1, Ordering::Relaxed);
                    }
                    mpsc::error::TrySendError::Closed(_) => return,
                }
            }
        }
        routes.prune(now);
    }
    debug!("media receive task stopped");
}

/// Resolves when every worker has stopped (the engine is shutting down).
async fn closed(workers: &[mpsc::Sender<WorkerMsg>]) {
    for w in workers {
        w.closed().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stun(ufrag: &str) -> Vec<u8> {
        let user = format!("{ufrag}:remote");
        let mut attr = Vec::new();
        attr.extend_from_slice(&0x0006u16.to_be_bytes());
        attr.extend_from_slice(&(user.len() as u16).to_be_bytes());
        attr.extend_from_slice(user.as_bytes());
        while attr.len() % 4 != 0 {
            attr.push(0);
        }
        let mut m = vec![0x00, 0x01];
        m.extend_from_slice(&(attr.len() as u16).to_be_bytes());
        m.extend_from_slice(&[0x21, 0x12, 0xA4, 0x42]);
        m.extend_from_slice(&[7; 12]);
        m.extend_from_slice(&attr);
        m
    }

    #[test]
    fn stun_routes_by_ufrag_then_media_follows_the_address() {
        let now = Instant::now();
        let mut r = Routes {
            by_addr: HashMap::new(),
            next_prune: now + ADDRESS_TTL,
        };
        let a: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        let b: SocketAddr = "127.0.0.1:5001".parse().unwrap();
        let rtp = [0x80u8, 96, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1];
        assert_eq!(
            r.route(now, a, &rtp, 4),
            None,
            "media before STUN is unroutable"
        );
        assert_eq!(r.route(now, a, &stun("Cxyz"), 4), Some(2));
        assert_eq!(r.route(now, b, &stun("Axyz"), 4), Some(0));
        assert_eq!(r.route(now, a, &rtp, 4), Some(2));
        assert_eq!(r.route(now, b, &rtp, 4), Some(0));
        assert_eq!(r.route(now, a, &stun("Zxyz"), 4), None, "no such worker");
        assert_eq!(r.route(now, a, b"\xffgarbage", 4), None);
        r.prune(now + ADDRESS_TTL + Duration::from_secs(1));
        assert_eq!(r.route(now, a, &rtp, 4), None, "forgotten after its TTL");
    }
}

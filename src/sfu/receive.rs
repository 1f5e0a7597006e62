//! The receive task: reads the media sockets in batches and hands every datagram to
//! the worker that owns its peer, in one batch per worker per read. With a single
//! worker, the worker reads the sockets itself (a [`Reader`] of its own).
//!
//! - STUN carries the server's ufrag, whose first character names the worker
//!   ([`ufrag_worker`]). Nothing is learnt from it here: a STUN request proves nothing
//!   until the worker's peer has checked its MESSAGE-INTEGRITY. But STUN from an
//!   address that another worker's peer holds is refused here: each worker keeps its
//!   own peers from taking each other's addresses, and this keeps a peer on one worker
//!   from taking the address of a peer on another (a forged source address with the
//!   attacker's own valid credentials would otherwise move the victim's media).
//! - DTLS and RTP/RTCP go to the worker that told this task, on the route lane, that a
//!   peer of its proved that source address with an authenticated STUN request.
//! - Anything else, or from an unknown address, is dropped and counted.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};

use rustc_hash::FxHashMap;
use tokio::sync::mpsc;
use tracing::{debug, warn};

use super::demux::{self, Kind};
use super::lanes::{Batch, MediaLane, Route};
use super::shard::ufrag_worker;
use super::udp::{destination_ip, UdpIo};

/// What the receive task dropped, for `/metrics` and tests.
#[derive(Debug)]
pub(crate) struct ReceiveCounters {
    unroutable: AtomicU64,
    /// STUN from an address another worker's peer holds.
    taken: AtomicU64,
    queue_drops: Vec<AtomicU64>,
}

impl ReceiveCounters {
    pub(crate) fn new(workers: usize) -> Self {
        ReceiveCounters {
            unroutable: AtomicU64::new(0),
            taken: AtomicU64::new(0),
            queue_drops: (0..workers).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    /// Datagrams that belonged to no worker.
    pub(crate) fn unroutable(&self) -> u64 {
        self.unroutable.load(Ordering::Relaxed)
    }

    /// STUN requests refused because their source address belongs to a peer of
    /// another worker.
    pub(crate) fn stun_refused(&self) -> u64 {
        self.taken.load(Ordering::Relaxed)
    }

    /// Datagrams dropped per worker because its queue was full.
    pub(crate) fn queue_drops(&self) -> Vec<u64> {
        self.queue_drops
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .collect()
    }
}

/// Source address → worker, as the workers said.
#[derive(Debug, Default)]
struct Routes {
    by_addr: FxHashMap<SocketAddr, usize>,
}

/// Where a datagram goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Routed {
    To(usize),
    /// No worker's: garbage, an unknown ufrag, media from an unknown address.
    Nowhere,
    /// STUN for one worker from an address that a peer of another worker holds.
    Taken,
}

impl Routes {
    fn route(&self, src: SocketAddr, buf: &[u8], workers: usize) -> Routed {
        let to = match demux::classify(buf) {
            Kind::Stun => {
                let w = demux::stun_local_ufrag(buf)
                    .and_then(ufrag_worker)
                    .filter(|&w| w < workers);
                match (w, self.by_addr.get(&src)) {
                    (Some(w), Some(&holder)) if holder != w => return Routed::Taken,
                    (w, _) => w,
                }
            }
            Kind::Dtls | Kind::Rtp => self.by_addr.get(&src).copied(),
            Kind::Other => None,
        };
        to.map_or(Routed::Nowhere, Routed::To)
    }

    fn apply(&mut self, r: Route) {
        if r.learnt {
            // A worker learns an address only from STUN that `route` let through, so
            // not while another worker holds it.
            self.by_addr.insert(r.addr, r.worker);
        } else if self.by_addr.get(&r.addr) == Some(&r.worker) {
            // Only the worker that holds the address gives it up (another may have
            // learnt it since).
            self.by_addr.remove(&r.addr);
        }
    }
}

/// The receive task's lanes: media out to each worker, routes and spent batches back.
pub(crate) struct Lanes {
    pub(crate) media: Vec<MediaLane>,
    pub(crate) routes: mpsc::Receiver<Route>,
    pub(crate) recycle: mpsc::Receiver<Batch>,
}

/// The receive task, before it runs.
pub(crate) struct Task {
    pub(crate) sockets: Vec<UdpIo>,
    pub(crate) candidates: Vec<SocketAddr>,
    pub(crate) lanes: Lanes,
    pub(crate) counters: std::sync::Arc<ReceiveCounters>,
}

impl Task {
    /// Reads the sockets until every worker's lane is closed, on the runtime whose
    /// reactor they are registered with (see [`Task::rehome`]).
    pub(crate) async fn run(self) {
        run(self.sockets, self.candidates, self.lanes, self.counters).await
    }

    /// Registers the sockets with the current runtime's reactor instead, so that their
    /// readiness wakes this runtime's thread (a worker's, when the task runs there).
    pub(crate) fn rehome(self) -> std::io::Result<Task> {
        let sockets = self
            .sockets
            .into_iter()
            .map(UdpIo::rehome)
            .collect::<std::io::Result<_>>()?;
        Ok(Task { sockets, ..self })
    }
}

/// The media sockets and how they are read: by the receive task, which routes each
/// datagram to a worker, or by the only worker itself, which hands each straight to
/// its shard (the shard routes it: STUN by ufrag, the rest by the address its peer
/// proved, and counts what it cannot route). Then there is no routing table in front,
/// no copy into a batch and no hand-off between tasks per read.
pub(crate) struct Reader {
    sockets: Vec<UdpIo>,
    candidates: Vec<SocketAddr>,
}

impl Reader {
    /// Takes over a receive task's sockets, registered with the current runtime's
    /// reactor (the worker's thread).
    pub(crate) fn new(task: Task) -> std::io::Result<Reader> {
        let Task {
            sockets,
            candidates,
            ..
        } = task.rehome()?;
        Ok(Reader {
            sockets,
            candidates,
        })
    }

    /// Resolves with the index of a socket that has datagrams waiting; never, without
    /// sockets.
    pub(crate) async fn readable(&self) -> usize {
        loop {
            let (index, ready) = match self.sockets.as_slice() {
                [] => std::future::pending().await,
                [only] => (0, only.readable().await),
                [first, second, ..] => tokio::select! {
                    r = first.readable() => (0, r),
                    r = second.readable() => (1, r),
                },
            };
            match ready {
                Ok(()) => return index,
                Err(e) => warn!("media socket error: {e}"),
            }
        }
    }

    /// Reads one batch of what socket `index` has waiting, handing each datagram to
    /// `f` with its arrival time, source and destination (the candidate address str0m
    /// must see). Returns how many were read: 0 when the socket is drained.
    pub(crate) fn read(
        &mut self,
        index: usize,
        mut f: impl FnMut(std::time::Instant, SocketAddr, SocketAddr, &[u8]),
    ) -> usize {
        let Some(sock) = self.sockets.get_mut(index) else {
            return 0;
        };
        #[allow(clippy::disallowed_methods)] // the I/O shell: arrival time of what is read
        let read_at = std::time::Instant::now();
        let port = sock.local_addr().port();
        let fallback = sock.local_addr().ip();
        let candidates = &self.candidates;
        let res = sock.try_recv(|d| {
            let dst = destination_ip(candidates, d.source, d.destination, fallback);
            f(read_at, d.source, SocketAddr::new(dst, port), d.contents);
        });
        res.unwrap_or_else(|e| {
            // ICMP errors surface here (e.g. a browser that closed its port).
            debug!("media socket receive error: {e}");
            0
        })
    }
}

async fn run(
    sockets: Vec<UdpIo>,
    candidates: Vec<SocketAddr>,
    mut lanes: Lanes,
    counters: std::sync::Arc<ReceiveCounters>,
) {
    if sockets.is_empty() {
        return;
    }
    let mut reader = Reader {
        sockets,
        candidates,
    };
    let workers = lanes.media.clone();
    let mut routes = Routes::default();
    let mut batches: Vec<Batch> = workers.iter().map(|_| Batch::default()).collect();
    loop {
        let index = tokio::select! {
            index = reader.readable() => index,
            _ = closed(&workers) => break,
        };
        // Routes first: a worker says a route before it answers the STUN request whose
        // DTLS will need it.
        while let Ok(r) = lanes.routes.try_recv() {
            routes.apply(r);
        }
        // Read a bounded number of batches before handing them over, so workers start
        // early on a busy socket.
        for _ in 0..4 {
            let read = reader.read(index, |read_at, src, dst, contents| {
                let mut w = routes.route(src, contents, workers.len());
                if w == Routed::Nowhere {
                    // A route said after this read began (the reply to a STUN request
                    // left, and the DTLS that follows it is here already).
                    while let Ok(r) = lanes.routes.try_recv() {
                        routes.apply(r);
                    }
                    w = routes.route(src, contents, workers.len());
                }
                let w = match w {
                    Routed::To(w) => w,
                    Routed::Nowhere => {
                        counters.unroutable.fetch_add(1, Ordering::Relaxed);
                        debug!(%src, len = contents.len(), "dropped unroutable datagram");
                        return;
                    }
                    Routed::Taken => {
                        counters.taken.fetch_add(1, Ordering::Relaxed);
                        debug!(%src, "refused STUN from an address another worker's peer holds");
                        return;
                    }
                };
                batches[w].read_at.get_or_insert(read_at);
                batches[w].push(src, dst, contents);
            });
            if read == 0 {
                break;
            }
        }
        for (w, batch) in batches.iter_mut().enumerate() {
            if batch.is_empty() {
                continue;
            }
            // A batch the workers handed back, emptied, when there is one.
            let spare = lanes.recycle.try_recv().unwrap_or_default();
            let full = std::mem::replace(batch, spare);
            if let Err(e) = workers[w].try_send(full) {
                match e {
                    mpsc::error::TrySendError::Full(mut b) => {
                        counters.queue_drops[w].fetch_add(1, Ordering::Relaxed);
                        b.clear();
                        *batch = b;
                    }
                    mpsc::error::TrySendError::Closed(_) => return,
                }
            }
        }
    }
    debug!("media receive task stopped");
}

/// Resolves when every worker has stopped (the engine is shutting down).
async fn closed(workers: &[MediaLane]) {
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
    fn stun_routes_by_ufrag_media_only_by_routes_the_workers_gave() {
        let mut r = Routes::default();
        let a: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        let b: SocketAddr = "127.0.0.1:5001".parse().unwrap();
        let rtp = [0x80u8, 96, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1];
        assert_eq!(
            r.route(a, &rtp, 4),
            Routed::Nowhere,
            "media before a route is unroutable"
        );
        assert_eq!(r.route(a, &stun("Cxyz"), 4), Routed::To(2));
        assert_eq!(
            r.route(a, &rtp, 4),
            Routed::Nowhere,
            "STUN alone teaches nothing"
        );
        r.apply(Route {
            addr: a,
            worker: 2,
            learnt: true,
        });
        r.apply(Route {
            addr: b,
            worker: 0,
            learnt: true,
        });
        assert_eq!(r.route(a, &rtp, 4), Routed::To(2));
        assert_eq!(r.route(b, &rtp, 4), Routed::To(0));
        assert_eq!(r.route(a, b"\xffgarbage", 4), Routed::Nowhere);
        // Worker 2's peer holds `a`: STUN from `a` for another worker's peer is
        // refused, whatever its credentials (checked later, by that worker).
        assert_eq!(r.route(a, &stun("Bxyz"), 4), Routed::Taken);
        assert_eq!(
            r.route(a, &stun("Cabc"), 4),
            Routed::To(2),
            "its own worker"
        );
        // Only its holder gives it up; then another worker may learn it.
        r.apply(Route {
            addr: a,
            worker: 1,
            learnt: false,
        });
        assert_eq!(
            r.route(a, &rtp, 4),
            Routed::To(2),
            "not worker 1's to forget"
        );
        r.apply(Route {
            addr: a,
            worker: 2,
            learnt: false,
        });
        assert_eq!(r.route(a, &rtp, 4), Routed::Nowhere, "forgotten");
        r.apply(Route {
            addr: a,
            worker: 1,
            learnt: true,
        });
        assert_eq!(r.route(a, &stun("Bxyz"), 4), Routed::To(1));
    }
}

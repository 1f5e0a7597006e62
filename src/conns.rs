//! TCP connections per client address, on the HTTPS port and the HTTP helper together.
//!
//! One address holding hundreds of idle or half-sent connections would otherwise use up
//! the process's file descriptors and keep everyone else out (header timeouts bound how
//! long each lasts; this bounds how many). An axum-server acceptor counts each accepted
//! connection against its address and closes those over the limit before reading a
//! byte; the count goes down when the connection's stream is dropped, whether it ended
//! as a request, a WebSocket or a timeout.

use std::collections::HashMap;
use std::future::{ready, Ready};
use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use axum_server::accept::Accept;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// Open connections per address, and the limit.
#[derive(Debug)]
pub(crate) struct ConnectionLimit {
    max: usize,
    /// Only addresses with at least one open connection.
    open: Mutex<HashMap<IpAddr, usize>>,
    refused: AtomicU64,
}

/// What `/metrics` shows of the connections.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct ConnectionStats {
    /// Connections open now.
    pub(crate) open: usize,
    /// Connections closed at once because their address had `max` open.
    pub(crate) refused: u64,
}

impl ConnectionLimit {
    /// At most `max` connections open at once from one address.
    pub(crate) fn new(max: usize) -> Arc<Self> {
        Arc::new(ConnectionLimit {
            max,
            open: Mutex::new(HashMap::new()),
            refused: AtomicU64::new(0),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, usize>> {
        // Every update is one step: the map stays consistent after a panic elsewhere.
        self.open.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Counts a new connection from `ip`, or `None` when `ip` has its maximum open.
    pub(crate) fn enter(self: &Arc<Self>, ip: IpAddr) -> Option<Slot> {
        let mut open = self.lock();
        let n = open.entry(ip).or_default();
        if *n >= self.max {
            drop(open);
            self.refused.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        *n += 1;
        Some(Slot {
            limit: Arc::clone(self),
            ip,
        })
    }

    pub(crate) fn stats(&self) -> ConnectionStats {
        ConnectionStats {
            open: self.lock().values().sum(),
            refused: self.refused.load(Ordering::Relaxed),
        }
    }
}

/// One counted connection; dropping it gives the place back.
#[derive(Debug)]
pub(crate) struct Slot {
    limit: Arc<ConnectionLimit>,
    ip: IpAddr,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self.limit.lock();
        if let Some(n) = open.get_mut(&self.ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

/// The acceptor of both listeners (inside TLS on the HTTPS port).
#[derive(Debug, Clone)]
pub(crate) struct LimitAcceptor {
    limit: Arc<ConnectionLimit>,
}

impl LimitAcceptor {
    pub(crate) fn new(limit: Arc<ConnectionLimit>) -> Self {
        LimitAcceptor { limit }
    }
}

impl<S> Accept<TcpStream, S> for LimitAcceptor {
    type Stream = Counted;
    type Service = S;
    type Future = Ready<io::Result<(Counted, S)>>;

    fn accept(&self, stream: TcpStream, service: S) -> Self::Future {
        let accepted = stream.peer_addr().and_then(|peer| {
            match self.limit.enter(peer.ip()) {
                Some(slot) => Ok(Counted {
                    stream,
                    _slot: slot,
                }),
                None => {
                    tracing::debug!(%peer, max = self.limit.max, "connection refused: too many open from this address");
                    // Dropping the stream closes the connection.
                    Err(io::Error::other("too many connections from this address"))
                }
            }
        });
        ready(accepted.map(|s| (s, service)))
    }
}

/// A connection that holds its place in the count while it lives.
#[derive(Debug)]
pub(crate) struct Counted {
    stream: TcpStream,
    _slot: Slot,
}

impl Counted {
    /// Reads the first bytes without taking them.
    pub(crate) async fn peek(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.stream.peek(buf).await
    }

    /// Sends small writes at once (media frames must not wait for Nagle's algorithm).
    pub(crate) fn set_nodelay(&self) -> io::Result<()> {
        self.stream.set_nodelay(true)
    }

    pub(crate) fn peer_addr(&self) -> io::Result<std::net::SocketAddr> {
        self.stream.peer_addr()
    }

    pub(crate) fn local_addr(&self) -> io::Result<std::net::SocketAddr> {
        self.stream.local_addr()
    }
}

impl AsyncRead for Counted {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Counted {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_holds_at_most_its_share_and_gets_it_back() {
        let limit = ConnectionLimit::new(2);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let first = limit.enter(a).expect("first");
        let _second = limit.enter(a).expect("second");
        assert!(limit.enter(a).is_none(), "a third from the same address");
        let _other = limit.enter(b).expect("another address is not affected");
        assert_eq!(
            limit.stats(),
            ConnectionStats {
                open: 3,
                refused: 1
            }
        );
        drop(first);
        assert!(
            limit.enter(a).is_some(),
            "a closed connection frees its place"
        );
        assert_eq!(
            limit.lock().len(),
            2,
            "only addresses with open connections"
        );
    }
}

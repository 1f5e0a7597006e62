//! The UDP sockets of relay links from this node (an edge) to rooms' origins on other
//! nodes: one per link, bound on the node's advertised address, read by a task that
//! puts its datagrams on the worker's own media lane.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use tracing::warn;

use super::{Worker, MAX_MESSAGES_PER_TURN};
use crate::sfu::lanes::{Batch, MediaLane};
use crate::signaling::protocol::PeerId;

/// The UDP socket of one relay link from this node (an edge) to a room's origin.
pub(super) struct LinkSocket {
    pub(super) socket: Arc<tokio::net::UdpSocket>,
    pub(super) reader: tokio::task::JoinHandle<()>,
    pub(super) link: PeerId,
}

impl Worker {
    /// Binds a UDP socket for relay link `link` on this node's advertised address and
    /// starts reading it: its datagrams come in on this worker's own media lane.
    pub(super) fn bind_link(&mut self, link: PeerId) -> Option<SocketAddr> {
        let ip = self.link_ip?;
        let bind = || -> std::io::Result<tokio::net::UdpSocket> {
            let s = std::net::UdpSocket::bind(SocketAddr::new(ip, 0))?;
            s.set_nonblocking(true)?;
            tokio::net::UdpSocket::from_std(s)
        };
        let socket = match bind() {
            Ok(s) => Arc::new(s),
            Err(e) => {
                warn!(%ip, "cannot bind a relay link socket: {e}");
                return None;
            }
        };
        let local = socket.local_addr().ok()?;
        let reader = tokio::spawn(read_link(socket.clone(), local, self.own_lane.clone()));
        self.link_sockets.insert(
            local,
            LinkSocket {
                socket,
                reader,
                link,
            },
        );
        Some(local)
    }
}

/// Reads a relay link's socket into batches on the worker's media lane (a full lane
/// drops the batch, as for the media sockets).
async fn read_link(socket: Arc<tokio::net::UdpSocket>, local: SocketAddr, lane: MediaLane) {
    let mut buf = vec![0u8; 2048];
    loop {
        let Ok((n, src)) = socket.recv_from(&mut buf).await else {
            return;
        };
        let mut batch = Batch {
            read_at: Some(Instant::now()),
            ..Batch::default()
        };
        batch.push(src, local, &buf[..n]);
        // Whatever else is waiting goes in the same batch.
        for _ in 1..MAX_MESSAGES_PER_TURN {
            match socket.try_recv_from(&mut buf) {
                Ok((n, src)) => batch.push(src, local, &buf[..n]),
                Err(_) => break,
            }
        }
        if lane.try_send(batch).is_err() && lane.is_closed() {
            return;
        }
    }
}

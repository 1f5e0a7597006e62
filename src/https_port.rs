//! The HTTPS port carries two protocols: TLS (the pages, the signaling, WHIP/WHEP)
//! and ICE over TCP (media, for networks that pass HTTPS but not UDP), so a firewall
//! needs one TCP and one UDP port open. A connection's first byte tells them apart:
//! a TLS record starts with 0x16 (a handshake), an ICE-TCP frame with the high byte
//! of a STUN message's length, which is far smaller.
//!
//! This acceptor sits under TLS: it counts the connection against its address (see
//! [`crate::conns`]), peeks at the first byte, and hands media connections to
//! [`TcpMedia`]; axum-server sees them as refused and forgets them.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::time::Duration;

use axum_server::accept::Accept;
use tokio::net::TcpStream;

use crate::conns::{Counted, LimitAcceptor};
use crate::sfu::tcp::TcpMedia;

/// The first byte of a TLS handshake record.
const TLS_HANDSHAKE: u8 = 0x16;

#[derive(Clone)]
pub(crate) struct SplitAcceptor {
    inner: LimitAcceptor,
    /// `None` with `--no-tcp-media`: every connection is TLS.
    media: Option<TcpMedia>,
    /// How long a connection may take to send its first byte.
    first_byte: Duration,
}

impl SplitAcceptor {
    pub(crate) fn new(inner: LimitAcceptor, media: Option<TcpMedia>, first_byte: Duration) -> Self {
        SplitAcceptor {
            inner,
            media,
            first_byte,
        }
    }
}

impl<S: Send + 'static> Accept<TcpStream, S> for SplitAcceptor {
    type Stream = Counted;
    type Service = S;
    type Future = Pin<Box<dyn Future<Output = io::Result<(Counted, S)>> + Send>>;

    fn accept(&self, stream: TcpStream, service: S) -> Self::Future {
        let accepted = self.inner.accept(stream, service);
        let media = self.media.clone();
        let first_byte = self.first_byte;
        Box::pin(async move {
            let (conn, service) = accepted.await?;
            let Some(media) = media else {
                return Ok((conn, service));
            };
            let mut first = [0u8; 1];
            match tokio::time::timeout(first_byte, conn.peek(&mut first)).await {
                Ok(Ok(1)) if first[0] == TLS_HANDSHAKE => Ok((conn, service)),
                Ok(Ok(1)) => {
                    let (peer, local) = (conn.peer_addr()?, conn.local_addr()?);
                    // Each frame is a packet of a live call: no Nagle delay.
                    conn.set_nodelay()?;
                    media.spawn(conn, peer, local);
                    Err(io::Error::other("an ICE-TCP media connection"))
                }
                Ok(Ok(_)) => Err(io::Error::other("closed before its first byte")),
                Ok(Err(e)) => Err(e),
                Err(_) => Err(io::Error::other("no first byte in time")),
            }
        })
    }
}

//! ICE over TCP (RFC 6544, passive candidates), for networks that block UDP: one task
//! per connection, between the connection and the media worker of its peer.
//!
//! The connection arrives on the HTTPS port (see `crate::https_port`, which tells it
//! from TLS by its first byte). Its frames are RFC 4571: a 2-byte length, then a STUN,
//! DTLS or RTP/RTCP packet. The first frame must be a STUN request whose ufrag names a
//! worker; from then on every frame goes to that worker on its media lane, marked as
//! TCP, and the worker's `Rtc` checks it as it checks UDP (nothing is learnt from the
//! connection until a STUN request with valid MESSAGE-INTEGRITY). What the worker
//! transmits to the connection's peer comes back on a bounded queue and is written
//! length-prefixed; when the peer reads too slowly the queue fills and frames are
//! dropped (counted), so a slow or dead TCP peer never holds up a worker.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tracing::debug;

use super::demux::{self, Kind};
use super::engine::EngineHandle;
use super::lanes::Batch;
use super::shard::ufrag_worker;

/// Largest frame taken: STUN, DTLS records and RTP packets are well under it (the
/// length prefix would allow 64 KiB).
pub(crate) const MAX_FRAME: usize = 8 * 1024;
/// A connection must send its first frame within this time.
const FIRST_FRAME: Duration = Duration::from_secs(10);
/// A connection that sends nothing for this long is closed (browsers send ICE
/// consent checks every few seconds).
const IDLE: Duration = Duration::from_secs(30);
/// Frames waiting to be written to one connection before further ones are dropped.
const WRITE_QUEUE: usize = 512;

/// Starts connections' tasks and counts them.
#[derive(Debug, Clone)]
pub(crate) struct TcpMedia {
    engine: EngineHandle,
    stats: Arc<TcpStats>,
}

/// What `/metrics` shows of ICE-TCP.
#[derive(Debug, Default)]
pub(crate) struct TcpStats {
    open: AtomicUsize,
    /// Frames dropped on the way in: the worker's media lane was full.
    dropped: AtomicU64,
    /// Connections closed for breaking the framing or never naming a peer.
    refused: AtomicU64,
}

impl TcpStats {
    pub(crate) fn open(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }

    pub(crate) fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    pub(crate) fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }
}

impl TcpMedia {
    pub(crate) fn new(engine: EngineHandle, stats: Arc<TcpStats>) -> Self {
        TcpMedia { engine, stats }
    }

    /// Serves a connection from `peer` that reached the server's `local` address.
    pub(crate) fn spawn<S>(&self, stream: S, peer: SocketAddr, local: SocketAddr)
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let engine = self.engine.clone();
        let stats = self.stats.clone();
        tokio::spawn(async move {
            stats.open.fetch_add(1, Ordering::Relaxed);
            let why = serve(stream, canonical(peer), canonical(local), &engine, &stats).await;
            stats.open.fetch_sub(1, Ordering::Relaxed);
            debug!(%peer, why, "ICE-TCP connection closed");
        });
    }
}

/// An IPv4 address as itself, not mapped into IPv6 (as a dual-stack listener shows
/// it), so it matches the candidates.
fn canonical(a: SocketAddr) -> SocketAddr {
    SocketAddr::new(a.ip().to_canonical(), a.port())
}

/// The next frame's length, when `buf` holds the prefix; `Err` when the length is
/// one no ICE-TCP peer sends.
fn frame_len(buf: &[u8]) -> Result<Option<usize>, &'static str> {
    if buf.len() < 2 {
        return Ok(None);
    }
    match u16::from_be_bytes([buf[0], buf[1]]) as usize {
        0 => Err("empty frame"),
        n if n > MAX_FRAME => Err("frame too large"),
        n => Ok(Some(n)),
    }
}

/// The worker a first frame names: a STUN request with a known worker's ufrag.
fn first_worker(frame: &[u8], workers: usize) -> Option<usize> {
    if demux::classify(frame) != Kind::Stun {
        return None;
    }
    demux::stun_local_ufrag(frame)
        .and_then(ufrag_worker)
        .filter(|&w| w < workers)
}

async fn serve<S>(
    stream: S,
    peer: SocketAddr,
    local: SocketAddr,
    engine: &EngineHandle,
    stats: &TcpStats,
) -> &'static str
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut rd, wr) = tokio::io::split(stream);
    let mut buf = BytesMut::with_capacity(2 * 1024);
    // The first frame says which worker serves the connection.
    let worker = loop {
        match frame_len(&buf) {
            Err(why) => {
                stats.refused.fetch_add(1, Ordering::Relaxed);
                return why;
            }
            Ok(Some(n)) if buf.len() >= 2 + n => {
                match first_worker(&buf[2..2 + n], engine.workers()) {
                    Some(w) => break w,
                    None => {
                        stats.refused.fetch_add(1, Ordering::Relaxed);
                        return "the first frame is not a STUN request for this server";
                    }
                }
            }
            Ok(_) => {}
        }
        buf.reserve(2 + MAX_FRAME - buf.len().min(MAX_FRAME));
        match tokio::time::timeout(FIRST_FRAME, rd.read_buf(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return "closed before its first frame",
            Err(_) => return "no first frame in time",
            Ok(Ok(_)) => {}
        }
    };
    let (frames, queued) = mpsc::channel(WRITE_QUEUE);
    if !engine.tcp_opened(worker, peer, frames).await {
        return "the media engine stopped";
    }
    let writer = tokio::spawn(write_frames(wr, queued));
    let why = loop {
        // Every whole frame read so far goes to the worker in one batch.
        let mut batch = Batch {
            tcp: true,
            ..Batch::default()
        };
        let broken = loop {
            match frame_len(&buf) {
                Err(why) => break Some(why),
                Ok(Some(n)) if buf.len() >= 2 + n => {
                    batch.push(peer, local, &buf[2..2 + n]);
                    buf.advance(2 + n);
                }
                Ok(_) => break None,
            }
        };
        let count = batch.datagrams.len() as u64;
        if count > 0 && !engine.tcp_frames(worker, batch) {
            stats.dropped.fetch_add(count, Ordering::Relaxed);
        }
        if let Some(why) = broken {
            stats.refused.fetch_add(1, Ordering::Relaxed);
            break why;
        }
        buf.reserve(2 + MAX_FRAME - buf.len().min(MAX_FRAME));
        match tokio::time::timeout(IDLE, rd.read_buf(&mut buf)).await {
            Ok(Ok(0)) => break "closed by the peer",
            Ok(Err(_)) => break "read error",
            Err(_) => break "idle",
            Ok(Ok(_)) => {}
        }
    };
    engine.tcp_closed(worker, peer).await;
    writer.abort();
    why
}

/// Writes the worker's frames, length-prefixed, taking whatever is queued at once
/// into one write.
async fn write_frames<W: AsyncWrite + Unpin>(mut wr: W, mut queued: mpsc::Receiver<Bytes>) {
    let mut out = Vec::with_capacity(16 * 1024);
    while let Some(first) = queued.recv().await {
        out.clear();
        let mut next = Some(first);
        while let Some(frame) = next {
            // str0m never makes a frame over 64 KiB; were it to, it is not sent.
            if let Ok(len) = u16::try_from(frame.len()) {
                out.extend_from_slice(&len.to_be_bytes());
                out.extend_from_slice(&frame);
            }
            next = if out.len() < 64 * 1024 {
                queued.try_recv().ok()
            } else {
                None
            };
        }
        if wr.write_all(&out).await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_length_prefixed_and_bounded() {
        assert_eq!(frame_len(&[0]), Ok(None), "half a prefix");
        assert_eq!(frame_len(&[0, 20, 1]), Ok(Some(20)));
        assert_eq!(frame_len(&[0, 0]), Err("empty frame"));
        assert_eq!(frame_len(&[0x40, 0]), Err("frame too large"));
        // A TLS ClientHello never reaches here, but a plain HTTP request might.
        assert!(frame_len(b"GET / HTTP/1.1").is_err());
    }

    #[test]
    fn the_first_frame_must_be_stun_for_a_worker() {
        let user = b"Bxyz:remote";
        let mut stun = vec![0x00, 0x01, 0x00, 16, 0x21, 0x12, 0xA4, 0x42];
        stun.extend_from_slice(&[7; 12]);
        stun.extend_from_slice(&[0x00, 0x06, 0x00, user.len() as u8]);
        stun.extend_from_slice(user);
        stun.push(0);
        assert_eq!(first_worker(&stun, 4), Some(1));
        assert_eq!(first_worker(&stun, 1), None, "no such worker");
        assert_eq!(first_worker(&[0x80, 96, 0, 1], 4), None, "RTP first");
    }
}

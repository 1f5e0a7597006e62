//! A participant's ICE-TCP connection to the server's HTTPS port (`--tcp`): RFC 4571
//! framing both ways, non-blocking, with a bounded queue of frames to write.

use std::net::SocketAddr;

use tokio::net::TcpStream;

/// Active ICE-TCP candidates use the discard port (RFC 6544).
pub const ACTIVE_PORT: u16 = 9;

/// Frames waiting to be written before further ones are dropped.
const OUTBOX: usize = 1 << 20;

/// The TCP media connection of an ICE-TCP participant.
pub struct TcpLink {
    stream: TcpStream,
    server: SocketAddr,
    /// Bytes read and not yet a whole frame.
    inbox: Vec<u8>,
    /// Frames waiting for the socket to take them.
    outbox: Vec<u8>,
}

impl TcpLink {
    pub async fn connect(server: SocketAddr) -> std::io::Result<TcpLink> {
        let stream = TcpStream::connect(server).await?;
        stream.set_nodelay(true)?;
        Ok(TcpLink {
            stream,
            server,
            inbox: Vec::with_capacity(4096),
            outbox: Vec::with_capacity(4096),
        })
    }

    pub fn server(&self) -> SocketAddr {
        self.server
    }

    pub fn has_queued(&self) -> bool {
        !self.outbox.is_empty()
    }

    /// Reads what the socket has (using `buf`); the whole frames it completed.
    pub fn read(&mut self, buf: &mut [u8]) -> Result<Vec<Vec<u8>>, String> {
        match self.stream.try_read(buf) {
            Ok(0) => return Err("the server closed the ICE-TCP connection".into()),
            Ok(n) => self.inbox.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Ok(Vec::new()),
            Err(e) => return Err(format!("ICE-TCP read: {e}")),
        }
        let mut at = 0;
        let mut frames = Vec::new();
        while self.inbox.len() >= at + 2 {
            let n = u16::from_be_bytes([self.inbox[at], self.inbox[at + 1]]) as usize;
            if self.inbox.len() < at + 2 + n {
                break;
            }
            frames.push(self.inbox[at + 2..at + 2 + n].to_vec());
            at += 2 + n;
        }
        self.inbox.drain(..at);
        Ok(frames)
    }

    /// Queues one frame, length-prefixed; false when it was dropped (queue full, or
    /// too large for the prefix).
    pub fn queue(&mut self, frame: &[u8]) -> bool {
        match u16::try_from(frame.len()) {
            Ok(len) if self.outbox.len() < OUTBOX => {
                self.outbox.extend_from_slice(&len.to_be_bytes());
                self.outbox.extend_from_slice(frame);
                true
            }
            _ => false,
        }
    }

    /// Writes what the socket takes of the queued frames.
    pub fn flush(&mut self) {
        while !self.outbox.is_empty() {
            match self.stream.try_write(&self.outbox) {
                Ok(n) => {
                    self.outbox.drain(..n);
                }
                Err(_) => return,
            }
        }
    }
}

/// Resolves when the ICE-TCP connection has something to read (never without one).
pub async fn readable(tcp: &Option<TcpLink>) -> std::io::Result<()> {
    match tcp {
        Some(link) => link.stream.readable().await,
        None => std::future::pending().await,
    }
}

/// Resolves when the ICE-TCP connection takes writes (never without one).
pub async fn writable(tcp: &Option<TcpLink>) -> std::io::Result<()> {
    match tcp {
        Some(link) => link.stream.writable().await,
        None => std::future::pending().await,
    }
}

//! The media port: one UDP socket per address family, read in batches (recvmmsg, GRO)
//! with each datagram's destination address (IP_PKTINFO), which str0m needs to match
//! STUN requests to the candidate they were sent to.

use std::io::{self, IoSliceMut};
use std::net::{IpAddr, SocketAddr};

use quinn_udp::{RecvMeta, UdpSocketState, BATCH_SIZE};
use tokio::io::Interest;
use tokio::net::UdpSocket;

/// Room for one datagram (or one GRO batch slice) per receive slot.
const SLOT: usize = 64 * 1024;

/// A datagram read from the socket.
pub struct Datagram<'a> {
    pub source: SocketAddr,
    /// The local address it was sent to, when the OS told us.
    pub destination: Option<IpAddr>,
    pub contents: &'a [u8],
}

pub struct UdpIo {
    socket: UdpSocket,
    state: UdpSocketState,
    local: SocketAddr,
    buf: Vec<u8>,
}

impl UdpIo {
    /// Binds the media socket. IPv6 sockets are v6-only, so a v4 and a v6 socket can
    /// share one port number.
    pub fn bind(addr: SocketAddr) -> io::Result<Self> {
        let domain = socket2::Domain::for_address(addr);
        let sock =
            socket2::Socket::new(domain, socket2::Type::DGRAM, Some(socket2::Protocol::UDP))?;
        if addr.is_ipv6() {
            sock.set_only_v6(true)?;
        }
        sock.set_nonblocking(true)?;
        sock.bind(&addr.into())?;
        let std_sock: std::net::UdpSocket = sock.into();
        let state = UdpSocketState::new((&std_sock).into())?;
        // Bursts of video from many peers: give the kernel room to queue them.
        let _ = state.set_recv_buffer_size((&std_sock).into(), 4 << 20);
        let _ = state.set_send_buffer_size((&std_sock).into(), 4 << 20);
        let socket = UdpSocket::from_std(std_sock)?;
        let local = socket.local_addr()?;
        Ok(UdpIo {
            socket,
            state,
            local,
            buf: vec![0; SLOT * BATCH_SIZE],
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    pub async fn readable(&self) -> io::Result<()> {
        self.socket.readable().await
    }

    /// Reads what is queued without waiting, calling `f` for every datagram. Returns
    /// the number of datagrams read (0 when nothing was waiting).
    pub fn try_recv(&mut self, mut f: impl FnMut(Datagram<'_>)) -> io::Result<usize> {
        let mut meta = [RecvMeta::default(); BATCH_SIZE];
        let mut slices: Vec<IoSliceMut<'_>> =
            self.buf.chunks_mut(SLOT).map(IoSliceMut::new).collect();
        let (socket, state) = (&self.socket, &self.state);
        let n = match socket.try_io(Interest::READABLE, || {
            state.recv(socket.into(), &mut slices, &mut meta)
        }) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(0),
            Err(e) => return Err(e),
        };
        let mut count = 0;
        for (m, slice) in meta.iter().zip(slices.iter()).take(n) {
            let stride = m.stride.max(1);
            for contents in slice[..m.len].chunks(stride) {
                count += 1;
                f(Datagram {
                    source: m.addr,
                    destination: m.dst_ip,
                    contents,
                });
            }
        }
        Ok(count)
    }

    /// Sends one datagram, from `source` when the socket is bound to a wildcard address.
    /// A full socket buffer drops the datagram, as the network would.
    pub fn send(&self, destination: SocketAddr, source: Option<IpAddr>, contents: &[u8]) {
        let t = quinn_udp::Transmit {
            destination,
            ecn: None,
            contents,
            segment_size: None,
            src_ip: source,
        };
        let res = self.socket.try_io(Interest::WRITABLE, || {
            self.state.send((&self.socket).into(), &t)
        });
        if let Err(e) = res {
            tracing::trace!(%destination, "send dropped: {e}");
        }
    }
}

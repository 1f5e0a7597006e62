//! The media port: one UDP socket per address family, read in batches (recvmmsg, GRO)
//! with each datagram's destination address (IP_PKTINFO), which str0m needs to match
//! STUN requests to the candidate they were sent to. Each media worker writes to the
//! same sockets through its own [`UdpSender`], in batches (sendmmsg).

use std::cell::RefCell;
use std::io::{self, IoSlice, IoSliceMut};
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsRawFd;

use nix::errno::Errno;
use nix::sys::socket::{sendmmsg, ControlMessage, MsgFlags, MultiHeaders, SockaddrStorage};

use quinn_udp::{RecvMeta, UdpSocketState, BATCH_SIZE};
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

/// Room for one datagram (or one GRO batch slice) per receive slot.
const SLOT: usize = 64 * 1024;

/// Most datagrams handed to the kernel in one `sendmmsg`.
pub(crate) const SEND_BATCH: usize = 64;

/// A datagram read from the socket.
pub(crate) struct Datagram<'a> {
    pub(crate) source: SocketAddr,
    /// The local address it was sent to, when the OS told us.
    pub(crate) destination: Option<IpAddr>,
    pub(crate) contents: &'a [u8],
}

pub(crate) struct UdpIo {
    /// Registered for readability only: workers write from their own threads, and
    /// write-readiness events on every sent datagram would wake the reader for nothing.
    socket: AsyncFd<std::net::UdpSocket>,
    state: UdpSocketState,
    local: SocketAddr,
    buf: Vec<u8>,
}

impl UdpIo {
    /// Binds the media socket. IPv6 sockets are v6-only, so a v4 and a v6 socket can
    /// share one port number.
    pub(crate) fn bind(addr: SocketAddr) -> io::Result<Self> {
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
        let local = std_sock.local_addr()?;
        // Deprecated for types that do not own their descriptor; the socket is owned
        // here, so it stays open for as long as it is registered (the safe replacement
        // is an unsafe fn, and this crate forbids unsafe code).
        #[allow(deprecated)]
        let socket = AsyncFd::with_interest(std_sock, Interest::READABLE)?;
        Ok(UdpIo {
            socket,
            state,
            local,
            buf: vec![0; SLOT * BATCH_SIZE],
        })
    }

    pub(crate) fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// The same socket, registered with the current runtime's reactor (it was with
    /// the one it was bound on).
    pub(crate) fn rehome(self) -> io::Result<Self> {
        let std_sock = self.socket.into_inner();
        // As in `bind`: the socket is owned here.
        #[allow(deprecated)]
        let socket = AsyncFd::with_interest(std_sock, Interest::READABLE)?;
        Ok(UdpIo { socket, ..self })
    }

    /// A writer to this socket for another thread.
    pub(crate) fn sender(&self) -> io::Result<UdpSender> {
        let sock = self.socket.get_ref().try_clone()?;
        let state = UdpSocketState::new((&sock).into())?;
        Ok(UdpSender {
            sock,
            state,
            local: self.local,
            dropped: 0,
        })
    }

    pub(crate) async fn readable(&self) -> io::Result<()> {
        // Keep the readiness: try_recv clears it when the socket is drained.
        self.socket.readable().await.map(|mut g| g.retain_ready())
    }

    /// Reads what is queued without waiting, calling `f` for every datagram. Returns
    /// the number of datagrams read (0 when nothing was waiting).
    pub(crate) fn try_recv(&mut self, mut f: impl FnMut(Datagram<'_>)) -> io::Result<usize> {
        let mut meta = [RecvMeta::default(); BATCH_SIZE];
        let mut chunks = self.buf.chunks_mut(SLOT);
        let mut slices: [IoSliceMut<'_>; BATCH_SIZE] =
            std::array::from_fn(|_| IoSliceMut::new(chunks.next().unwrap_or_default()));
        let (socket, state) = (&self.socket, &self.state);
        let n = match socket.try_io(Interest::READABLE, |sock| {
            state.recv(sock.into(), &mut slices, &mut meta)
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
}

/// One worker's writer to a media socket: batches of datagrams to any destinations go
/// out in one `sendmmsg` each. A full socket buffer drops datagrams, as the network
/// would.
pub(crate) struct UdpSender {
    sock: std::net::UdpSocket,
    state: UdpSocketState,
    local: SocketAddr,
    /// Datagrams the kernel refused (full buffer, unreachable destination).
    pub(crate) dropped: u64,
}

/// What `UdpSender::send_batch` reuses on each worker thread: the `sendmmsg` headers
/// (they hold pointers, so they stay on the thread that made them) and the destination
/// addresses.
type SendScratch = (MultiHeaders<SockaddrStorage>, Vec<Option<SockaddrStorage>>);

thread_local! {
    static SEND_SCRATCH: RefCell<Option<SendScratch>> = const { RefCell::new(None) };
}

/// A datagram to send.
pub(crate) struct Outgoing<'a> {
    pub(crate) destination: SocketAddr,
    /// The local address to send from, when the socket is a wildcard with several
    /// advertised addresses (otherwise `None`: the kernel picks).
    pub(crate) source: Option<IpAddr>,
    pub(crate) contents: &'a [u8],
}

impl UdpSender {
    pub(crate) fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Sends every datagram, in as few system calls as the kernel allows.
    pub(crate) fn send_all(&mut self, datagrams: &[Outgoing<'_>]) {
        let mut rest = datagrams;
        while !rest.is_empty() {
            // A source address needs IP_PKTINFO: send that one alone through quinn-udp.
            if rest[0].source.is_some() {
                self.send_one(&rest[0]);
                rest = &rest[1..];
                continue;
            }
            let n = rest
                .iter()
                .take(SEND_BATCH)
                .take_while(|d| d.source.is_none())
                .count();
            let (batch, tail) = rest.split_at(n);
            let sent = self.send_batch(batch);
            // A datagram the kernel refused is skipped (one bad destination must not
            // block the others); a full buffer drops the rest of the batch.
            match sent {
                Ok(k) => rest = &rest[k.max(1)..],
                Err(Errno::EAGAIN) => {
                    self.dropped += n as u64;
                    rest = tail;
                }
                Err(e) => {
                    tracing::trace!(destination = %batch[0].destination, "send dropped: {e}");
                    self.dropped += 1;
                    rest = &rest[1..];
                }
            }
        }
    }

    /// One `sendmmsg` of at most [`SEND_BATCH`] datagrams; returns how many the kernel
    /// took. The message headers and addresses are this thread's, reused from one
    /// call to the next (a fan-out makes several calls per packet).
    fn send_batch(&mut self, batch: &[Outgoing<'_>]) -> Result<usize, Errno> {
        let batch = &batch[..batch.len().min(SEND_BATCH)];
        let mut iovs = [[IoSlice::new(&[])]; SEND_BATCH];
        for (iov, d) in iovs.iter_mut().zip(batch) {
            *iov = [IoSlice::new(d.contents)];
        }
        let iovs = &iovs[..batch.len()];
        SEND_SCRATCH.with_borrow_mut(|scratch| {
            let (headers, addrs) = scratch.get_or_insert_with(|| {
                (
                    MultiHeaders::preallocate(SEND_BATCH, None),
                    Vec::with_capacity(SEND_BATCH),
                )
            });
            addrs.clear();
            addrs.extend(
                batch
                    .iter()
                    .map(|d| Some(SockaddrStorage::from(d.destination))),
            );
            let cmsgs: [ControlMessage<'_>; 0] = [];
            loop {
                match sendmmsg(
                    self.sock.as_raw_fd(),
                    headers,
                    iovs,
                    &addrs[..],
                    cmsgs,
                    MsgFlags::empty(),
                ) {
                    Ok(results) => return Ok(results.count()),
                    Err(Errno::EINTR) => continue,
                    Err(e) => return Err(e),
                }
            }
        })
    }

    fn send_one(&mut self, d: &Outgoing<'_>) {
        let t = quinn_udp::Transmit {
            destination: d.destination,
            ecn: None,
            contents: d.contents,
            segment_size: None,
            src_ip: d.source,
        };
        if let Err(e) = self.state.send((&self.sock).into(), &t) {
            tracing::trace!(destination = %d.destination, "send dropped: {e}");
            self.dropped += 1;
        }
    }
}

/// The local address str0m must see as a datagram's destination: it must equal one of
/// the advertised candidates. With one candidate per family that candidate is used
/// (this also covers an advertised address that a 1:1 NAT maps to this host); with
/// several, the address the kernel reports.
pub(crate) fn destination_ip(
    candidates: &[SocketAddr],
    source: SocketAddr,
    reported: Option<IpAddr>,
    fallback: IpAddr,
) -> IpAddr {
    let mut same_family = candidates
        .iter()
        .filter(|c| c.is_ipv4() == source.is_ipv4());
    match (same_family.next(), same_family.next()) {
        (Some(only), None) => only.ip(),
        _ => reported.unwrap_or(fallback),
    }
}

/// The source address to send from: only needed when the socket is a wildcard and
/// several local addresses are advertised.
pub(crate) fn source_ip(
    candidates: &[SocketAddr],
    local: SocketAddr,
    source: SocketAddr,
) -> Option<IpAddr> {
    if !local.ip().is_unspecified() {
        return None;
    }
    let same_family = candidates
        .iter()
        .filter(|c| c.is_ipv4() == source.is_ipv4())
        .count();
    (same_family > 1).then_some(source.ip())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn destination_uses_the_only_candidate_of_the_family() {
        let c: Vec<SocketAddr> = vec![
            "192.0.2.1:8443".parse().unwrap(),
            "[2001:db8::1]:8443".parse().unwrap(),
        ];
        let src: SocketAddr = "198.51.100.7:5000".parse().unwrap();
        let fallback: IpAddr = "0.0.0.0".parse().unwrap();
        assert_eq!(
            destination_ip(&c, src, Some("10.0.0.5".parse().unwrap()), fallback),
            "192.0.2.1".parse::<IpAddr>().unwrap()
        );
        let c2: Vec<SocketAddr> = vec![
            "192.0.2.1:8443".parse().unwrap(),
            "192.0.2.2:8443".parse().unwrap(),
        ];
        let reported: IpAddr = "192.0.2.2".parse().unwrap();
        assert_eq!(destination_ip(&c2, src, Some(reported), fallback), reported);
        assert_eq!(
            source_ip(
                &c2,
                "0.0.0.0:8443".parse().unwrap(),
                "192.0.2.2:8443".parse().unwrap()
            ),
            Some(reported)
        );
        assert_eq!(
            source_ip(
                &c,
                "0.0.0.0:8443".parse().unwrap(),
                "192.0.2.1:8443".parse().unwrap()
            ),
            None
        );
    }
}

//! Datagrams with the kernel's arrival time (SO_TIMESTAMPNS), so transit is measured
//! to the moment a packet reached the receiver's socket, not to when the generator got
//! round to reading it; without unsafe code (nix's recvmsg).

use std::io::IoSliceMut;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;

use nix::sys::socket::{
    recvmsg, setsockopt, sockopt, ControlMessageOwned, MsgFlags, SockaddrStorage,
};
use tokio::io::Interest;
use tokio::net::UdpSocket;

/// Asks the kernel to timestamp every datagram `udp` receives.
pub fn enable(udp: &UdpSocket) -> std::io::Result<()> {
    setsockopt(udp, sockopt::ReceiveTimestampns, &true).map_err(std::io::Error::from)
}

/// Room for the timestamp's control message.
pub fn cmsg_buffer() -> Vec<u8> {
    nix::cmsg_space!(nix::sys::time::TimeSpec)
}

/// One datagram if one is queued (`WouldBlock` otherwise): its length, its source (if
/// it is an IP address) and its kernel arrival time in wall-clock nanoseconds.
pub fn try_recv(
    udp: &UdpSocket,
    buf: &mut [u8],
    cmsg: &mut [u8],
) -> std::io::Result<(usize, Option<SocketAddr>, Option<u64>)> {
    let fd = udp.as_raw_fd();
    udp.try_io(Interest::READABLE, || {
        let mut iov = [IoSliceMut::new(buf)];
        let msg = recvmsg::<SockaddrStorage>(fd, &mut iov, Some(cmsg), MsgFlags::empty())
            .map_err(std::io::Error::from)?;
        let mut arrived = None;
        if let Ok(cmsgs) = msg.cmsgs() {
            for c in cmsgs {
                if let ControlMessageOwned::ScmTimestampns(ts) = c {
                    arrived = Some(ts.tv_sec() as u64 * 1_000_000_000 + ts.tv_nsec() as u64);
                }
            }
        }
        let src = msg.address.and_then(|a| {
            a.as_sockaddr_in()
                .map(|v4| SocketAddr::V4((*v4).into()))
                .or_else(|| a.as_sockaddr_in6().map(|v6| SocketAddr::V6((*v6).into())))
        });
        Ok((msg.bytes, src, arrived))
    })
}

/// Wall-clock time in nanoseconds since 1970: the clock of the kernel's receive
/// timestamps, and the same for every participant of the machine.
pub fn wall_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

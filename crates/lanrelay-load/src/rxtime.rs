//! Datagrams with the kernel's arrival time (SO_TIMESTAMPNS), so transit is measured
//! to the moment a packet reached the receiver's socket, not to when the generator got
//! round to reading it; without unsafe code (nix's recvmsg).

use std::io::IoSliceMut;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

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

/// When a datagram arrived, as an `Instant`: `read_at` (the `Instant` it was read at,
/// `read_ns` in wall-clock time) moved back by the time it waited in the socket since
/// the kernel's arrival time `arrived_ns`. This is the time a participant's `Rtc` is
/// given with the datagram, so the transport-wide feedback it sends reports when each
/// packet reached the machine, as a browser's does, and not when the generator (one
/// thread for many receivers) got round to reading it: those waits would read as
/// queueing on the path to the server's bandwidth estimator.
pub fn arrival_instant(read_at: Instant, read_ns: u64, arrived_ns: u64) -> Instant {
    let waited = Duration::from_nanos(read_ns.saturating_sub(arrived_ns));
    read_at.checked_sub(waited).unwrap_or(read_at)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arrival_is_the_read_moved_back_by_the_wait() {
        let read_at = Instant::now();
        let read_ns = 1_000_000_000_000;
        let two_ms = Duration::from_millis(2);
        assert_eq!(
            arrival_instant(read_at, read_ns, read_ns - 2_000_000),
            read_at - two_ms
        );
        // No kernel time (the read's own) or a clock that stepped back: the read.
        assert_eq!(arrival_instant(read_at, read_ns, read_ns), read_at);
        assert_eq!(arrival_instant(read_at, read_ns, read_ns + 5_000), read_at);
    }
}

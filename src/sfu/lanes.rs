//! What reaches a media worker, on two lanes that never wait for each other:
//!
//! - the **media lane**: batches of datagrams from the receive task. Lossy: when a
//!   worker falls this far behind, the receive task drops a batch (counted), as a
//!   congested network would, and browsers recover (NACK, keyframes).
//! - the **control lane**: commands from signaling (joins, leaves, SDP, queries).
//!   Never dropped while the worker runs: a sender waits for room, and the worker
//!   takes control messages before media, so a busy media lane cannot hold up a join
//!   or an answer.
//!
//! And back from the workers, the **route lane**: the addresses whose DTLS and SRTP
//! belong to each worker, learnt from authenticated STUN. Between workers, the
//! **links** ([`Links`]): a room spread over several passes its packets and messages
//! on them.

use std::net::{IpAddr, SocketAddr};

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use super::link::LinkMsg;
use super::shard::{HttpAnswer, RecordError, RoomSnapshot, ShardCounters};
use crate::signaling::protocol::{ClientMsg, Mode, PeerId, Role, ServerMsg};

/// The channels between workers, for rooms spread over several (`core::mirror`).
#[derive(Debug)]
pub(crate) struct Links {
    txs: Vec<mpsc::UnboundedSender<Vec<LinkMsg>>>,
    /// Packets sent to each worker and not yet handled by it.
    backlog: Vec<AtomicUsize>,
}

/// Packets one worker may have waiting for another before further ones are dropped
/// (about 3 s of one 2.5 Mbit/s publisher's video and audio): a worker that far
/// behind is overloaded, and its viewers recover with a keyframe. Other messages are
/// never dropped.
const LINK_BACKLOG: usize = 1024;

impl Links {
    pub(crate) fn new(txs: Vec<mpsc::UnboundedSender<Vec<LinkMsg>>>) -> Self {
        let backlog = txs.iter().map(|_| AtomicUsize::new(0)).collect();
        Links { txs, backlog }
    }

    /// How many workers there are.
    pub(crate) fn workers(&self) -> usize {
        self.txs.len()
    }

    /// Sends messages to worker `to`; returns how many packets were dropped.
    pub(crate) fn send(&self, to: usize, mut msgs: Vec<LinkMsg>) -> u64 {
        let (Some(tx), Some(backlog)) = (self.txs.get(to), self.backlog.get(to)) else {
            return 0;
        };
        let media = msgs.iter().filter(|m| m.is_media()).count();
        let mut dropped = 0;
        if backlog.load(Ordering::Relaxed) + media > LINK_BACKLOG {
            msgs.retain(|m| !m.is_media());
            dropped = media as u64;
            if msgs.is_empty() {
                return dropped;
            }
        } else {
            backlog.fetch_add(media, Ordering::Relaxed);
        }
        if tx.send(msgs).is_err() {
            tracing::debug!(to, "worker gone: link messages dropped");
        }
        dropped
    }

    /// Worker `at` handled `media` packets sent to it.
    pub(crate) fn handled(&self, at: usize, media: usize) {
        if let Some(b) = self.backlog.get(at) {
            b.fetch_sub(media, Ordering::Relaxed);
        }
    }
}

/// Datagram batches a worker may have queued before the receive task drops further
/// ones for it (a worker that far behind is overloaded).
pub(crate) const MEDIA_QUEUE: usize = 1024;

/// Bytes of datagrams a worker may have queued, whatever the number of batches: a
/// batch holds what a few socket reads brought, so under overload 1,024 of them held
/// over 100 MiB (the soak's memory grew with the machine's load and stayed there).
/// 8 MiB is seconds of media for a worker: anything later is stale anyway.
pub(crate) const MEDIA_QUEUE_BYTES: usize = 8 << 20;

/// Spare batches kept for the receive task's next reads, and the buffer size a spare
/// keeps (a larger one, from a burst, is given back).
pub(crate) const SPARE_BATCHES: usize = 64;
const SPARE_BYTES: usize = 64 << 10;
const SPARE_DATAGRAMS: usize = 256;

/// The sending end of a worker's media lane: bounded in batches and in bytes.
#[derive(Debug, Clone)]
pub(crate) struct MediaLane {
    tx: mpsc::Sender<Batch>,
    queued: Arc<AtomicUsize>,
}

/// The worker's end of its media lane.
#[derive(Debug)]
pub(crate) struct MediaRx {
    rx: mpsc::Receiver<Batch>,
    queued: Arc<AtomicUsize>,
}

/// A worker's media lane.
pub(crate) fn media_lane() -> (MediaLane, MediaRx) {
    let (tx, rx) = mpsc::channel(MEDIA_QUEUE);
    let queued = Arc::new(AtomicUsize::new(0));
    (
        MediaLane {
            tx,
            queued: queued.clone(),
        },
        MediaRx { rx, queued },
    )
}

impl MediaLane {
    /// Queues `batch`, or gives it back when the lane is full (in batches or bytes)
    /// or closed.
    pub(crate) fn try_send(&self, batch: Batch) -> Result<(), mpsc::error::TrySendError<Batch>> {
        let n = batch.bytes.len();
        if self.queued.load(Ordering::Relaxed) + n > MEDIA_QUEUE_BYTES {
            return Err(mpsc::error::TrySendError::Full(batch));
        }
        self.queued.fetch_add(n, Ordering::Relaxed);
        self.tx.try_send(batch).inspect_err(|_| {
            self.queued.fetch_sub(n, Ordering::Relaxed);
        })
    }

    /// Whether the worker is gone.
    pub(crate) fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }

    /// Resolves when the worker is gone.
    pub(crate) async fn closed(&self) {
        self.tx.closed().await
    }

    /// Bytes queued and not yet taken by the worker.
    #[cfg(test)]
    pub(crate) fn queued(&self) -> usize {
        self.queued.load(Ordering::Relaxed)
    }
}

impl MediaRx {
    pub(crate) async fn recv(&mut self) -> Option<Batch> {
        let b = self.rx.recv().await?;
        self.queued.fetch_sub(b.bytes.len(), Ordering::Relaxed);
        Some(b)
    }

    pub(crate) fn try_recv(&mut self) -> Option<Batch> {
        let b = self.rx.try_recv().ok()?;
        self.queued.fetch_sub(b.bytes.len(), Ordering::Relaxed);
        Some(b)
    }
}

/// Commands a worker may have queued before senders wait.
pub(crate) const CONTROL_QUEUE: usize = 4096;

/// Route changes waiting for the receive task before further ones are dropped
/// (counted; every STUN check says its route again, so a lost change heals).
pub(crate) const ROUTE_QUEUE: usize = 4096;

/// Datagrams read from the media sockets for one worker, in one buffer (or the frames
/// of one ICE-TCP connection).
#[derive(Debug, Default)]
pub(crate) struct Batch {
    /// Frames of an ICE-TCP connection, not UDP datagrams.
    pub(crate) tcp: bool,
    pub(crate) bytes: Vec<u8>,
    /// Source, destination (the candidate address str0m must see), and the range of
    /// each datagram in `bytes`.
    pub(crate) datagrams: Vec<(SocketAddr, SocketAddr, std::ops::Range<usize>)>,
    /// When the socket was read: the arrival time str0m's jitter and RTT figures are
    /// computed from, not the (later) time the worker got to the batch.
    pub(crate) read_at: Option<std::time::Instant>,
}

impl Batch {
    pub(crate) fn push(&mut self, source: SocketAddr, destination: SocketAddr, contents: &[u8]) {
        let start = self.bytes.len();
        self.bytes.extend_from_slice(contents);
        self.datagrams
            .push((source, destination, start..self.bytes.len()));
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.datagrams.is_empty()
    }

    /// Empties the batch, keeping its buffers for the next read (up to a usual
    /// size: what a burst grew is given back).
    pub(crate) fn clear(&mut self) {
        self.tcp = false;
        self.bytes.clear();
        self.bytes.shrink_to(SPARE_BYTES);
        self.datagrams.clear();
        self.datagrams.shrink_to(SPARE_DATAGRAMS);
        self.read_at = None;
    }
}

/// A route change: DTLS and SRTP from `addr` go to `worker` (`learnt`), or no longer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Route {
    pub(crate) addr: SocketAddr,
    pub(crate) worker: usize,
    pub(crate) learnt: bool,
}

/// What a signaling session asks of the engine.
#[derive(Debug)]
pub enum Command {
    Join {
        id: PeerId,
        room: String,
        name: String,
        role: Role,
        mode: Mode,
        token: Option<String>,
        /// The `hostToken` of `join` (checked by the shard).
        host_token: Option<String>,
        /// Where the engine sends this participant's messages.
        tx: mpsc::Sender<ServerMsg>,
        /// The client's address (limits per address), when known.
        from: Option<IpAddr>,
    },
    Signal {
        id: PeerId,
        msg: ClientMsg,
    },
    Leave {
        id: PeerId,
        reason: &'static str,
    },
    /// Participant `id` goes on over a new signaling connection: its messages go to
    /// `tx` from now on, starting with a fresh `joined`.
    Resume {
        id: PeerId,
        tx: mpsc::Sender<ServerMsg>,
    },
    /// A WHIP (publish) or WHEP (play) offer for a room.
    HttpSession {
        whep: bool,
        id: PeerId,
        room: String,
        token: Option<String>,
        offer: String,
        reply: oneshot::Sender<HttpAnswer>,
        /// The client's address (limits per address), when known.
        from: Option<IpAddr>,
        /// A WHEP player of a room whose origin is another node: this node serves it
        /// as an edge (see `crate::cluster`).
        edge: bool,
    },
}

/// A message on a worker's control lane.
#[derive(Debug)]
pub(crate) enum Control {
    /// A command for a peer of this worker; `home` is the worker of its room (for a
    /// join or a new HTTP session, which may be served away from its room's home).
    Command { cmd: Command, home: usize },
    /// Ends a WHIP/WHEP session by its resource id; answers whether it was here.
    EndResource {
        resource: String,
        reply: oneshot::Sender<bool>,
    },
    /// Answers whether a WHIP/WHEP session with this resource id is here.
    HasResource {
        resource: String,
        reply: oneshot::Sender<bool>,
    },
    /// An ICE-TCP connection from `peer` sends its frames to this worker; what its
    /// peers transmit to `peer` over TCP goes to `frames` (bounded: when it is full
    /// the frame is dropped, never waited for).
    TcpOpened {
        peer: SocketAddr,
        frames: mpsc::Sender<bytes::Bytes>,
    },
    /// The ICE-TCP connection from `peer` closed.
    TcpClosed { peer: SocketAddr },
    /// Answers with the worker's share and counters.
    Status { reply: oneshot::Sender<Report> },
    /// Answers with the worker's rooms, participants and their stats.
    Rooms {
        reply: oneshot::Sender<Vec<RoomSnapshot>>,
    },
    /// Starts (`on`) or stops recording a room homed on this worker; answers whether
    /// that changed anything. `message`: why a recording stopped by itself.
    Recording {
        room: String,
        on: bool,
        message: Option<String>,
        reply: oneshot::Sender<Result<bool, RecordError>>,
    },
    /// Stops every recording of this worker (shutdown); answers how many.
    StopRecordings { reply: oneshot::Sender<usize> },
}

/// A worker's answer to [`Control::Status`].
#[derive(Debug, Clone, Default)]
pub(crate) struct Report {
    pub(crate) status: WorkerStatus,
    pub(crate) counters: ShardCounters,
    /// Datagrams the kernel refused to send.
    pub(crate) send_drops: u64,
    /// Datagrams the shard wanted sent to an address family without a media socket.
    pub(crate) no_socket_drops: u64,
    /// Signaling messages for a session that was too far behind (it was disconnected).
    pub(crate) session_drops: u64,
    /// Direct-call signals dropped because their receiver was behind.
    pub(crate) direct_drops: u64,
    /// Route changes the receive task had no room for.
    pub(crate) route_drops: u64,
    /// Packets for spread rooms this worker dropped, per receiving worker.
    pub(crate) link_drops: Vec<u64>,
    /// Relay links to and from other nodes this worker holds.
    pub(crate) relay_links: usize,
}

/// One media worker's share and load.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkerStatus {
    pub rooms: usize,
    pub participants: usize,
    pub forwarded_packets: u64,
    /// Timeouts given to its peers' `Rtc`s (str0m's timers).
    pub rtc_timeouts: u64,
    /// Seconds spent handling inputs and sending, as opposed to waiting.
    pub busy_seconds: f64,
    /// Datagram batches dropped on the media lane because the worker was behind.
    pub queue_drops: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(bytes: usize) -> Batch {
        Batch {
            bytes: vec![0; bytes],
            ..Batch::default()
        }
    }

    /// The lane holds at most MEDIA_QUEUE_BYTES whatever the number of batches, and a
    /// batch the worker takes makes room again.
    #[tokio::test]
    async fn the_media_lane_is_bounded_in_bytes() {
        let (lane, mut rx) = media_lane();
        let big = MEDIA_QUEUE_BYTES / 4;
        for _ in 0..4 {
            lane.try_send(batch(big)).expect("room for it");
        }
        assert_eq!(lane.queued(), MEDIA_QUEUE_BYTES);
        assert!(
            matches!(
                lane.try_send(batch(1)),
                Err(mpsc::error::TrySendError::Full(_))
            ),
            "a full lane refuses even a small batch"
        );
        let taken = rx.recv().await.expect("a batch");
        assert_eq!(taken.bytes.len(), big);
        assert_eq!(lane.queued(), 3 * big);
        lane.try_send(batch(1000)).expect("room again");
        assert!(rx.try_recv().is_some());
    }

    /// A batch that a burst grew does not keep its buffers when it is recycled.
    #[test]
    fn a_cleared_batch_gives_back_what_a_burst_grew() {
        let mut b = batch(4 << 20);
        b.clear();
        assert!(b.bytes.capacity() <= SPARE_BYTES, "{}", b.bytes.capacity());
        let mut small = Batch::default();
        small.bytes.reserve(1500);
        let cap = small.bytes.capacity();
        small.clear();
        assert_eq!(
            small.bytes.capacity(),
            cap,
            "a usual batch keeps its buffer"
        );
    }
}

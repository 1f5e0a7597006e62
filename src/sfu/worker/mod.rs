//! A media worker: one thread that owns a [`Shard`] (the rooms it serves, their peers
//! and timers) and feeds it what arrives for it: commands on the control lane first,
//! then datagram batches on the media lane (or, as the only worker, the media sockets
//! themselves), then messages from other workers. What the shard wants sent goes out
//! in `sendmmsg` batches on the shared media sockets; signaling messages go to their
//! sessions, route changes to the receive task (when there is one), and messages for
//! other workers (a room spread over several) to them in one batch per turn. This is
//! the I/O shell: it reads the clock and gives the shard the time.
//!
//! Here the thread, its loop and the inputs; [`control`]: the control lane's commands
//! and requests; [`flush`]: what the shard produced goes out; [`link_socket`]: the
//! sockets of relay links to other nodes.
#![allow(clippy::disallowed_methods)] // the shell reads the clock for the shard

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant as TokioInstant;
use tracing::debug;

use super::lanes::{Batch, Control, Links, MediaLane, MediaRx, Route};
use super::link::LinkMsg;
use super::receive::{Reader, Task};
use super::registry::Registry;
use super::shard::{HttpAnswer, Shard};
use super::udp::{source_ip, UdpSender};
use crate::signaling::protocol::{PeerId, ServerMsg};
use link_socket::LinkSocket;

mod control;
mod flush;
mod link_socket;

/// Most queued messages a worker handles before it flushes and checks its timers.
const MAX_MESSAGES_PER_TURN: usize = 64;

/// The lanes a worker reads.
pub(crate) struct WorkerLanes {
    pub(crate) control: mpsc::Receiver<Control>,
    pub(crate) media: MediaRx,
    pub(crate) links: mpsc::UnboundedReceiver<Vec<LinkMsg>>,
}

/// The lanes back to the receive task.
pub(crate) struct ToReceive {
    /// Emptied batches go back to be filled again.
    pub(crate) recycle: mpsc::Sender<Batch>,
    /// Route changes: addresses this worker's peers proved, or gave up. None when the
    /// worker reads the media sockets itself (its shard routes every datagram).
    pub(crate) routes: Option<mpsc::Sender<Route>>,
}

/// The I/O around one worker's `Shard`.
pub(crate) struct Worker {
    index: usize,
    senders: Vec<UdpSender>,
    /// Per sender: datagrams name their source address (a wildcard socket with several
    /// advertised addresses of its family), decided once.
    sets_source: Vec<bool>,
    registry: Arc<Registry>,
    sessions: HashMap<PeerId, mpsc::Sender<ServerMsg>>,
    /// WHEP requests waiting for their room's home to admit the player.
    http_waiting: HashMap<PeerId, oneshot::Sender<HttpAnswer>>,
    /// Datagrams waiting for the next `sendmmsg`, per socket.
    pending: Vec<Vec<(SocketAddr, Option<IpAddr>, str0m::net::DatagramSend)>>,
    /// Time spent between waking up and going back to wait.
    busy: Duration,
    links: Arc<Links>,
    /// Messages for each other worker, sent at the end of the turn.
    link_out: Vec<Vec<LinkMsg>>,
    link_drops: Vec<u64>,
    no_socket_drops: u64,
    session_drops: u64,
    direct_drops: u64,
    route_drops: u64,
    /// Open ICE-TCP connections whose frames come to this worker, by peer address.
    tcp: HashMap<SocketAddr, mpsc::Sender<bytes::Bytes>>,
    /// Frames for an ICE-TCP connection that was gone or too far behind.
    tcp_drops: u64,
    to_receive: ToReceive,
    /// Messages for other nodes (a cluster), to the cluster task.
    to_cluster: mpsc::UnboundedSender<(usize, LinkMsg)>,
    /// This worker's own media lane: the datagrams of its relay links' sockets come
    /// in on it like those of the media sockets.
    own_lane: MediaLane,
    /// Relay links to other nodes' origins (this node an edge): their sockets by
    /// local address, and the task reading each.
    link_sockets: HashMap<SocketAddr, LinkSocket>,
    /// The address relay link sockets bind to (the first advertised one).
    link_ip: Option<IpAddr>,
    /// Datagrams a link socket refused to send.
    link_send_drops: u64,
}

impl Worker {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        index: usize,
        senders: Vec<UdpSender>,
        candidates: Vec<SocketAddr>,
        registry: Arc<Registry>,
        links: Arc<Links>,
        to_receive: ToReceive,
        to_cluster: mpsc::UnboundedSender<(usize, LinkMsg)>,
        own_lane: MediaLane,
    ) -> Self {
        let sets_source = senders
            .iter()
            .map(|s| source_ip(&candidates, s.local_addr(), s.local_addr()).is_some())
            .collect();
        Worker {
            index,
            pending: senders.iter().map(|_| Vec::new()).collect(),
            senders,
            sets_source,
            registry,
            sessions: HashMap::new(),
            http_waiting: HashMap::new(),
            busy: Duration::ZERO,
            link_out: (0..links.workers()).map(|_| Vec::new()).collect(),
            link_drops: vec![0; links.workers()],
            links,
            no_socket_drops: 0,
            session_drops: 0,
            direct_drops: 0,
            route_drops: 0,
            tcp: HashMap::new(),
            tcp_drops: 0,
            to_receive,
            to_cluster,
            own_lane,
            link_sockets: HashMap::new(),
            link_ip: candidates.first().map(|c| c.ip()),
            link_send_drops: 0,
        }
    }
}

/// Runs a worker on the calling thread until the engine's handles are all dropped;
/// with `receive` (the only worker), it reads the media sockets itself.
pub(crate) fn run(mut worker: Worker, shard: Shard, lanes: WorkerLanes, receive: Option<Task>) {
    // Time for the shard's deadlines; I/O for the sockets of relay links.
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .enable_io()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!("media worker cannot start: {e}");
            return;
        }
    };
    rt.block_on(async move {
        let sockets = match receive.map(Reader::new).transpose() {
            Ok(sockets) => sockets,
            Err(e) => {
                tracing::error!("the media socket cannot be read on the worker's thread: {e}");
                return;
            }
        };
        if sockets.is_some() {
            worker.to_receive.routes = None;
        }
        run_loop(worker, shard, lanes, sockets).await
    });
}

async fn run_loop(
    mut w: Worker,
    mut shard: Shard,
    lanes: WorkerLanes,
    mut sockets: Option<Reader>,
) {
    if w.senders.is_empty() {
        tracing::error!("no media socket: the worker cannot run");
        return;
    }
    let WorkerLanes {
        mut control,
        mut media,
        links: mut link_rx,
    } = lanes;
    let mut woke = Instant::now();
    loop {
        // What the inputs produced goes out first; then the timers that came due while
        // they were handled (mostly str0m's pacer asking for its next turn), and what
        // those produced.
        let now = Instant::now();
        if shard.poll_timeout().is_some_and(|t| t <= now) {
            w.flush(&mut shard);
            shard.handle_timeout(now);
        }
        w.flush(&mut shard);
        w.busy += woke.elapsed();
        let deadline = shard
            .poll_timeout()
            .map(TokioInstant::from_std)
            .unwrap_or_else(|| TokioInstant::now() + Duration::from_secs(1));
        tokio::select! {
            // Control before media: a join or an answer never waits behind datagrams.
            biased;
            msg = control.recv() => {
                woke = Instant::now();
                let Some(msg) = msg else { break };
                w.control(&mut shard, msg);
                for _ in 1..MAX_MESSAGES_PER_TURN {
                    match control.try_recv() {
                        Ok(msg) => w.control(&mut shard, msg),
                        Err(_) => break,
                    }
                }
            }
            Some(batch) = media.recv() => {
                woke = Instant::now();
                w.datagrams(&mut shard, batch);
                // Take what else is queued, so one flush sends for all of it.
                for _ in 1..MAX_MESSAGES_PER_TURN {
                    match media.try_recv() {
                        Some(batch) => w.datagrams(&mut shard, batch),
                        None => break,
                    }
                }
                w.take_links(&mut shard, &mut link_rx);
            }
            index = readable(&sockets) => {
                woke = Instant::now();
                if let Some(sockets) = &mut sockets {
                    // A bounded number of reads per turn, each sent before the next.
                    for _ in 0..4 {
                        // A read's media packets go out together at its end (`hold`).
                        shard.start_batch();
                        let read = sockets.read(index, |now, src, dst, contents| {
                            shard.handle_datagram(now, src, dst, contents)
                        });
                        shard.end_batch();
                        if read == 0 {
                            break;
                        }
                        w.flush(&mut shard);
                    }
                }
                w.take_links(&mut shard, &mut link_rx);
            }
            Some(msgs) = link_rx.recv() => {
                woke = Instant::now();
                w.handle_links(&mut shard, msgs);
                w.take_links(&mut shard, &mut link_rx);
            }
            _ = tokio::time::sleep_until(deadline) => {
                woke = Instant::now();
                shard.handle_timeout(woke);
            }
        }
    }
    debug!(worker = w.index, "media worker stopped");
}

/// Which of the media sockets has datagrams waiting, when the worker reads them
/// itself; otherwise never.
async fn readable(sockets: &Option<Reader>) -> usize {
    match sockets {
        Some(s) => s.readable().await,
        None => std::future::pending().await,
    }
}

impl Worker {
    fn datagrams(&mut self, shard: &mut Shard, mut batch: Batch) {
        // Arrival time: when the receive task read the socket (never later than now).
        let now = Instant::now();
        let now = batch.read_at.map_or(now, |t| t.min(now));
        // The batch's media packets go out together at its end (`hold`).
        shard.start_batch();
        for (src, dst, range) in &batch.datagrams {
            let contents = &batch.bytes[range.clone()];
            if batch.tcp {
                shard.handle_tcp_frame(now, *src, *dst, contents);
            } else {
                shard.handle_datagram(now, *src, *dst, contents);
            }
        }
        shard.end_batch();
        batch.clear();
        // The receive task has enough spare batches when this fails.
        let _ = self.to_receive.recycle.try_send(batch);
    }

    /// Messages from other workers.
    fn handle_links(&mut self, shard: &mut Shard, msgs: Vec<LinkMsg>) {
        let now = Instant::now();
        let media = msgs.iter().filter(|m| m.is_media()).count();
        // The batch's packets go out together at its end (`hold`).
        shard.start_batch();
        for msg in msgs {
            shard.handle_link(now, msg);
        }
        shard.end_batch();
        self.links.handled(self.index, media);
    }

    /// Whatever other workers have queued, a bounded number of batches.
    fn take_links(
        &mut self,
        shard: &mut Shard,
        link_rx: &mut mpsc::UnboundedReceiver<Vec<LinkMsg>>,
    ) {
        for _ in 0..MAX_MESSAGES_PER_TURN {
            match link_rx.try_recv() {
                Ok(msgs) => self.handle_links(shard, msgs),
                Err(_) => break,
            }
        }
    }
}

//! A media worker: one thread that owns a [`Shard`] (the rooms it serves, their peers
//! and timers) and feeds it what arrives for it: commands on the control lane first,
//! then datagram batches on the media lane (or, as the only worker, the media sockets
//! themselves), then messages from other workers. What the shard wants sent goes out
//! in `sendmmsg` batches on the shared media sockets; signaling messages go to their
//! sessions, route changes to the receive task (when there is one), and messages for
//! other workers (a room spread over several) to them in one batch per turn. This is
//! the I/O shell: it reads the clock and gives the shard the time.
#![allow(clippy::disallowed_methods)] // the shell reads the clock for the shard

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant as TokioInstant;
use tracing::{debug, warn};

use super::lanes::{Batch, Command, Control, MediaRx, Report, Route, WorkerStatus};
use super::lanes::{Links, MediaLane};
use super::link::{is_remote, LinkMsg};
use super::receive::{Reader, Task};
use super::registry::Registry;
use super::shard::{HttpAnswer, Output, Shard};
use super::udp::{source_ip, Outgoing, UdpSender};
use crate::signaling::protocol::{ErrorCode, PeerId, ServerMsg};
use str0m::net::Protocol;
use tokio::sync::mpsc::error::TrySendError;

/// Datagrams for one socket that are sent as soon as they are there, in one
/// `sendmmsg`, without waiting for the rest of the turn's.
const SEND_AT: usize = 32;

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

/// The UDP socket of one relay link from this node (an edge) to a room's origin.
struct LinkSocket {
    socket: Arc<tokio::net::UdpSocket>,
    reader: tokio::task::JoinHandle<()>,
    link: PeerId,
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

    fn control(&mut self, shard: &mut Shard, msg: Control) {
        match msg {
            Control::Command { cmd, home } => self.command(shard, cmd, home),
            Control::EndResource { resource, reply } => {
                let _ = reply.send(shard.end_resource(Instant::now(), &resource));
            }
            Control::HasResource { resource, reply } => {
                let _ = reply.send(shard.has_resource(&resource));
            }
            Control::TcpOpened { peer, frames } => {
                self.tcp.insert(peer, frames);
            }
            Control::TcpClosed { peer } => {
                self.tcp.remove(&peer);
            }
            Control::Rooms { reply } => {
                let _ = reply.send(shard.rooms_snapshot());
            }
            Control::Recording {
                room,
                on,
                message,
                reply,
            } => {
                let r = match on {
                    true => shard.start_recording(Instant::now(), &room),
                    false => Ok(shard.stop_recording(&room, message)),
                };
                let _ = reply.send(r);
            }
            Control::StopRecordings { reply } => {
                let _ = reply.send(shard.stop_all_recordings());
            }
            Control::Status { reply } => {
                let counters = shard.counters();
                let _ = reply.send(Report {
                    status: WorkerStatus {
                        rooms: shard.room_count(),
                        participants: shard.peer_count(),
                        forwarded_packets: counters.forwarded,
                        rtc_timeouts: counters.rtc_timeouts,
                        busy_seconds: self.busy.as_secs_f64(),
                        queue_drops: 0,
                    },
                    counters,
                    send_drops: self.senders.iter().map(|s| s.dropped).sum::<u64>()
                        + self.tcp_drops
                        + self.link_send_drops,
                    no_socket_drops: self.no_socket_drops,
                    session_drops: self.session_drops,
                    direct_drops: self.direct_drops,
                    route_drops: self.route_drops,
                    link_drops: self.link_drops.clone(),
                    relay_links: shard.relay_links(),
                });
            }
        }
    }

    /// `home`: the worker of the room, for a join.
    fn command(&mut self, shard: &mut Shard, cmd: Command, home: usize) {
        let now = Instant::now();
        match cmd {
            Command::Join {
                id,
                room,
                name,
                role,
                mode,
                token,
                host_token,
                tx,
                from: _,
            } => {
                self.sessions.insert(id, tx);
                let tokens = (token.as_deref(), host_token.as_deref());
                if home == self.index {
                    shard.join(now, id, &room, &name, role, mode, tokens);
                } else {
                    shard.join_mirrored(home, id, &room, &name, mode, tokens);
                }
            }
            Command::Signal { id, msg } => shard.handle_signal(now, id, msg),
            Command::Resume { id, tx } => {
                // What was said to the old connection goes there; the new one starts
                // with the fresh `joined`.
                self.flush(shard);
                self.sessions.insert(id, tx);
                if !shard.resume(now, id) {
                    // Not here any more: dropping the sender ends the session.
                    self.sessions.remove(&id);
                }
            }
            Command::Leave { id, reason } => {
                shard.leave(now, id, reason);
                self.sessions.remove(&id);
                self.registry.release(id);
            }
            Command::HttpSession {
                whep,
                id,
                room,
                token,
                offer,
                reply,
                from: _,
                edge: _,
            } => {
                if whep && home != self.index {
                    // Answered once the room's home has admitted the player.
                    match shard.whep_mirrored(home, id, &room, token.as_deref(), &offer) {
                        Ok(()) => {
                            self.http_waiting.insert(id, reply);
                        }
                        Err(e) => {
                            self.registry.release(id);
                            let _ = reply.send(Err(e));
                        }
                    }
                    return;
                }
                let r: HttpAnswer = if whep {
                    shard.whep(now, id, &room, token.as_deref(), &offer)
                } else {
                    shard.whip(now, id, &room, token.as_deref(), &offer)
                };
                if r.is_err() {
                    self.registry.release(id);
                }
                let _ = reply.send(r);
            }
        }
    }

    /// Binds a UDP socket for relay link `link` on this node's advertised address and
    /// starts reading it: its datagrams come in on this worker's own media lane.
    fn bind_link(&mut self, link: PeerId) -> Option<SocketAddr> {
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

    /// Takes everything the `Shard` produced: route changes go to the receive task,
    /// datagrams are sent in batches, signaling messages delivered.
    fn flush(&mut self, shard: &mut Shard) {
        while let Some(out) = shard.poll_output() {
            match out {
                Output::Route(addr, learnt) => {
                    let route = Route {
                        addr,
                        worker: self.index,
                        learnt,
                    };
                    let Some(routes) = &self.to_receive.routes else {
                        continue;
                    };
                    if routes.try_send(route).is_err() {
                        self.route_drops += 1;
                    }
                }
                Output::Transmit(t) if t.proto == Protocol::Tcp => {
                    let sent = self.tcp.get(&t.destination).is_some_and(|frames| {
                        frames
                            .try_send(bytes::Bytes::from(Vec::from(t.contents)))
                            .is_ok()
                    });
                    if !sent {
                        self.tcp_drops += 1;
                    }
                }
                Output::Transmit(t)
                    if !self.link_sockets.is_empty()
                        && self.link_sockets.contains_key(&t.source) =>
                {
                    // A relay link's datagram: on its own socket.
                    if let Some(l) = self.link_sockets.get(&t.source) {
                        if l.socket.try_send_to(&t.contents, t.destination).is_err() {
                            self.link_send_drops += 1;
                        }
                    }
                }
                Output::BindLink(link) => {
                    let local = self.bind_link(link);
                    shard.link_bound(Instant::now(), link, local);
                }
                Output::Transmit(t) => {
                    let Some(i) = self
                        .senders
                        .iter()
                        .position(|s| s.local_addr().is_ipv4() == t.destination.is_ipv4())
                    else {
                        // No media socket of that family (e.g. IPv6 turned off).
                        self.no_socket_drops += 1;
                        continue;
                    };
                    let src = self.sets_source[i].then_some(t.source.ip());
                    self.pending[i].push((t.destination, src, t.contents));
                    // Sent as they come: the shard makes a fan-out's copies a step at
                    // a time, so the first receivers' leave while the rest are made.
                    if self.pending[i].len() >= SEND_AT {
                        self.send_pending(i);
                    }
                }
                Output::Signal(id, msg) => {
                    let Some(tx) = self.sessions.get(&id) else {
                        continue;
                    };
                    match tx.try_send(msg) {
                        Ok(()) => {}
                        // Another participant's signal for one that is behind: that
                        // signal is dropped, not the participant, and its sender hears.
                        Err(TrySendError::Full(ServerMsg::Direct { from, .. })) => {
                            self.direct_drops += 1;
                            if let Some(sender) = self.sessions.get(&from) {
                                let message = format!(
                                    "participant {id} is not keeping up: your signal was dropped"
                                );
                                let _ = sender
                                    .try_send(ServerMsg::error(ErrorCode::RateLimited, message));
                            }
                        }
                        Err(TrySendError::Full(_)) => {
                            // Too slow: dropping the sender ends the session, which then
                            // sends Leave.
                            warn!(id, "signaling queue full; disconnecting");
                            self.session_drops += 1;
                            self.sessions.remove(&id);
                        }
                        Err(TrySendError::Closed(_)) => {
                            // The session ended (its Leave is on the way): not a drop.
                            debug!(id, "session gone");
                            self.sessions.remove(&id);
                        }
                    }
                }
                Output::Close(id) => {
                    self.link_sockets.retain(|_, l| {
                        if l.link == id {
                            l.reader.abort();
                        }
                        l.link != id
                    });
                    self.sessions.remove(&id);
                    self.registry.release(id);
                }
                Output::Link(to, msg) if is_remote(to) => {
                    // Another node's: the cluster task carries it over NATS.
                    let _ = self.to_cluster.send((to, msg));
                }
                Output::Link(to, msg) => {
                    if let Some(out) = self.link_out.get_mut(to) {
                        out.push(msg);
                    }
                }
                Output::HttpAnswer(id, answer) => {
                    let admitted = answer.is_ok();
                    if !admitted {
                        self.registry.release(id);
                    }
                    let delivered = self
                        .http_waiting
                        .remove(&id)
                        .is_some_and(|reply| reply.send(answer).is_ok());
                    if admitted && !delivered {
                        // The request is gone, and with it the player.
                        shard.leave(Instant::now(), id, "left");
                    }
                }
            }
        }
        for (to, out) in self.link_out.iter_mut().enumerate() {
            if !out.is_empty() {
                let msgs = std::mem::take(out);
                self.link_drops[to] += self.links.send(to, msgs);
            }
        }
        for i in 0..self.pending.len() {
            self.send_pending(i);
        }
    }

    /// Sends the datagrams waiting for socket `i`.
    fn send_pending(&mut self, i: usize) {
        let (Some(sender), Some(pending)) = (self.senders.get_mut(i), self.pending.get_mut(i))
        else {
            return;
        };
        if pending.is_empty() {
            return;
        }
        let out: Vec<Outgoing<'_>> = pending
            .iter()
            .map(|(destination, source, contents)| Outgoing {
                destination: *destination,
                source: *source,
                contents,
            })
            .collect();
        sender.send_all(&out);
        drop(out);
        // The buffers go back to str0m for the next packets this worker encrypts.
        for (_, _, contents) in pending.drain(..) {
            str0m::net::recycle(contents);
        }
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

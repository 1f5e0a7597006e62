//! A media worker: one thread that owns an [`Sfu`] (the rooms it serves, their peers
//! and timers) and feeds it what arrives for it: datagram batches from the receive task
//! and commands from signaling. What the `Sfu` wants sent goes out in `sendmmsg`
//! batches on the shared media sockets; signaling messages go to their sessions, and
//! messages for other workers (a room spread over several) go to them in one batch per
//! turn.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant as TokioInstant;
use tracing::{debug, warn};

use super::core::{Counters, Output, Sfu};
use super::engine::{source_ip, Command, HttpAnswer, WorkerStatus};
use super::link::LinkMsg;
use super::registry::Registry;
use super::udp::{Outgoing, UdpSender};
use crate::signaling::protocol::{PeerId, ServerMsg};

/// What reaches a worker.
#[derive(Debug)]
pub enum WorkerMsg {
    Datagrams(Batch),
    Command(Command),
    /// A join ([`Command::Join`]) for a room whose home is worker `home`.
    Join {
        home: usize,
        cmd: Command,
    },
}

/// The channels between workers, for rooms spread over several (`core::mirror`).
#[derive(Debug)]
pub struct Links {
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
    pub fn new(txs: Vec<mpsc::UnboundedSender<Vec<LinkMsg>>>) -> Self {
        let backlog = txs.iter().map(|_| AtomicUsize::new(0)).collect();
        Links { txs, backlog }
    }

    /// Sends messages to worker `to`; returns how many packets were dropped.
    fn send(&self, to: usize, mut msgs: Vec<LinkMsg>) -> u64 {
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
            debug!(to, "worker gone: link messages dropped");
        }
        dropped
    }

    /// Worker `at` handled `media` packets sent to it.
    fn handled(&self, at: usize, media: usize) {
        if let Some(b) = self.backlog.get(at) {
            b.fetch_sub(media, Ordering::Relaxed);
        }
    }
}

/// Datagrams read from the media sockets for one worker, in one buffer.
#[derive(Debug, Default)]
pub struct Batch {
    pub bytes: Vec<u8>,
    /// Source, destination (the candidate address str0m must see), and the range of
    /// each datagram in `bytes`.
    pub datagrams: Vec<(SocketAddr, SocketAddr, std::ops::Range<usize>)>,
}

impl Batch {
    pub fn push(&mut self, source: SocketAddr, destination: SocketAddr, contents: &[u8]) {
        let start = self.bytes.len();
        self.bytes.extend_from_slice(contents);
        self.datagrams
            .push((source, destination, start..self.bytes.len()));
    }

    pub fn is_empty(&self) -> bool {
        self.datagrams.is_empty()
    }
}

/// A worker's answer to [`Command::Status`].
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub status: WorkerStatus,
    pub counters: Counters,
    pub send_drops: u64,
    /// Packets for spread rooms this worker dropped, per receiving worker.
    pub link_drops: Vec<u64>,
}

/// Most queued messages a worker handles before it flushes and checks its timers.
const MAX_MESSAGES_PER_TURN: usize = 64;

/// The I/O around one worker's `Sfu`.
pub struct Worker {
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
}

impl Worker {
    pub fn new(
        index: usize,
        senders: Vec<UdpSender>,
        candidates: Vec<SocketAddr>,
        registry: Arc<Registry>,
        links: Arc<Links>,
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
            link_out: links.txs.iter().map(|_| Vec::new()).collect(),
            link_drops: vec![0; links.txs.len()],
            links,
        }
    }
}

/// Runs a worker on the calling thread until the engine's handles are all dropped.
pub fn run(
    worker: Worker,
    sfu: Sfu,
    rx: mpsc::Receiver<WorkerMsg>,
    link_rx: mpsc::UnboundedReceiver<Vec<LinkMsg>>,
) {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!("media worker cannot start: {e}");
            return;
        }
    };
    rt.block_on(run_loop(worker, sfu, rx, link_rx));
}

async fn run_loop(
    mut w: Worker,
    mut sfu: Sfu,
    mut rx: mpsc::Receiver<WorkerMsg>,
    mut link_rx: mpsc::UnboundedReceiver<Vec<LinkMsg>>,
) {
    if w.senders.is_empty() {
        tracing::error!("no media socket: the worker cannot run");
        return;
    }
    let mut woke = Instant::now();
    loop {
        // What the inputs produced goes out first; then the timers that came due while
        // they were handled (mostly str0m's pacer asking for its next turn), and what
        // those produced.
        let now = Instant::now();
        if sfu.poll_timeout().is_some_and(|t| t <= now) {
            w.flush(&mut sfu);
            sfu.handle_timeout(now);
        }
        w.flush(&mut sfu);
        w.busy += woke.elapsed();
        let deadline = sfu
            .poll_timeout()
            .map(TokioInstant::from_std)
            .unwrap_or_else(|| TokioInstant::now() + Duration::from_secs(1));
        tokio::select! {
            biased;
            msg = rx.recv() => {
                woke = Instant::now();
                let Some(msg) = msg else { break };
                w.handle(&mut sfu, msg);
                // Take what else is queued, so one flush sends for all of it.
                for _ in 1..MAX_MESSAGES_PER_TURN {
                    match rx.try_recv() {
                        Ok(msg) => w.handle(&mut sfu, msg),
                        Err(_) => break,
                    }
                }
                w.take_links(&mut sfu, &mut link_rx);
            }
            Some(msgs) = link_rx.recv() => {
                woke = Instant::now();
                w.handle_links(&mut sfu, msgs);
                w.take_links(&mut sfu, &mut link_rx);
            }
            _ = tokio::time::sleep_until(deadline) => {
                woke = Instant::now();
                sfu.handle_timeout(woke);
            }
        }
    }
    debug!(worker = w.index, "media worker stopped");
}

impl Worker {
    fn handle(&mut self, sfu: &mut Sfu, msg: WorkerMsg) {
        match msg {
            WorkerMsg::Datagrams(batch) => {
                let now = Instant::now();
                for (src, dst, range) in &batch.datagrams {
                    sfu.handle_datagram(now, *src, *dst, &batch.bytes[range.clone()]);
                }
            }
            WorkerMsg::Command(cmd) => self.command(sfu, cmd, self.index),
            WorkerMsg::Join { home, cmd } => self.command(sfu, cmd, home),
        }
    }

    /// Messages from other workers.
    fn handle_links(&mut self, sfu: &mut Sfu, msgs: Vec<LinkMsg>) {
        let now = Instant::now();
        let media = msgs.iter().filter(|m| m.is_media()).count();
        for msg in msgs {
            sfu.handle_link(now, msg);
        }
        self.links.handled(self.index, media);
    }

    /// Whatever other workers have queued, a bounded number of batches.
    fn take_links(&mut self, sfu: &mut Sfu, link_rx: &mut mpsc::UnboundedReceiver<Vec<LinkMsg>>) {
        for _ in 0..MAX_MESSAGES_PER_TURN {
            match link_rx.try_recv() {
                Ok(msgs) => self.handle_links(sfu, msgs),
                Err(_) => break,
            }
        }
    }

    /// `home`: the worker of the room, for a join.
    fn command(&mut self, sfu: &mut Sfu, cmd: Command, home: usize) {
        let now = Instant::now();
        match cmd {
            Command::Join {
                id,
                room,
                name,
                role,
                mode,
                token,
                tx,
            } => {
                self.sessions.insert(id, tx);
                if home == self.index {
                    sfu.join(id, &room, &name, role, mode, token.as_deref());
                } else {
                    sfu.join_mirrored(home, id, &room, &name, mode, token.as_deref());
                }
            }
            Command::Signal { id, msg } => sfu.handle_signal(now, id, msg),
            Command::Leave { id, reason } => {
                sfu.leave(now, id, reason);
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
            } => {
                if whep && home != self.index {
                    // Answered once the room's home has admitted the player.
                    match sfu.whep_mirrored(home, id, &room, token.as_deref(), &offer) {
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
                let r = if whep {
                    sfu.whep(now, id, &room, token.as_deref(), &offer)
                } else {
                    sfu.whip(now, id, &room, token.as_deref(), &offer)
                };
                if r.is_err() {
                    self.registry.release(id);
                }
                let _ = reply.send(r);
            }
            Command::EndResource { resource, reply } => {
                let _ = reply.send(sfu.end_resource(now, &resource));
            }
            Command::Rooms { reply } => {
                let _ = reply.send(sfu.rooms_snapshot());
            }
            Command::Status { reply } => {
                let counters = sfu.counters();
                let _ = reply.send(Report {
                    status: WorkerStatus {
                        rooms: sfu.room_count(),
                        participants: sfu.peer_count(),
                        forwarded_packets: counters.forwarded,
                        busy_seconds: self.busy.as_secs_f64(),
                        queue_drops: 0,
                    },
                    counters,
                    send_drops: self.senders.iter().map(|s| s.dropped).sum(),
                    link_drops: self.link_drops.clone(),
                });
            }
        }
    }

    /// Takes everything the `Sfu` produced: datagrams are sent in batches, signaling
    /// messages delivered.
    fn flush(&mut self, sfu: &mut Sfu) {
        while let Some(out) = sfu.poll_output() {
            match out {
                Output::Transmit(t) => {
                    let Some(i) = self
                        .senders
                        .iter()
                        .position(|s| s.local_addr().is_ipv4() == t.destination.is_ipv4())
                    else {
                        continue;
                    };
                    let src = self.sets_source[i].then_some(t.source.ip());
                    self.pending[i].push((t.destination, src, t.contents));
                }
                Output::Signal(id, msg) => {
                    let Some(tx) = self.sessions.get(&id) else {
                        continue;
                    };
                    if tx.try_send(msg).is_err() {
                        // Too slow or gone: dropping the sender ends the session, which
                        // then sends Leave.
                        warn!(id, "signaling queue full; disconnecting");
                        self.sessions.remove(&id);
                    }
                }
                Output::Close(id) => {
                    self.sessions.remove(&id);
                    self.registry.release(id);
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
                        sfu.leave(Instant::now(), id, "left");
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
        for (sender, pending) in self.senders.iter_mut().zip(self.pending.iter_mut()) {
            if pending.is_empty() {
                continue;
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
            pending.clear();
        }
    }
}

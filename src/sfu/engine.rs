//! The media engine: worker threads that each own a share of the rooms, a receive
//! task that routes every datagram to the worker of its peer, and the handle signaling
//! uses to reach them.
//!
//! - Each worker ([`super::worker`]) is a thread with its own [`Sfu`]: the peers, their
//!   `Rtc`s and timers of the rooms it serves. Nothing on the packet path is shared
//!   between workers, so there are no locks on it.
//! - The receive task ([`super::dispatch`]) reads the media sockets in batches and hands
//!   each worker its datagrams: STUN by the worker index in the server's ICE ufrag,
//!   the rest by the source address learnt from STUN.
//! - A room lives on one worker, chosen when it opens (the least loaded,
//!   [`super::registry`]); commands go to the worker of their room or participant.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use tokio::sync::mpsc;
use tracing::error;

use super::core::{RoomSnapshot, Sfu, SfuConfig};
use super::registry::Registry;
use super::udp::UdpIo;
use super::worker::{self, WorkerMsg};
use crate::signaling::protocol::{ClientMsg, ErrorCode, Mode, PeerId, Role, ServerMsg};

/// Queue length of one session's outgoing messages. A session that falls this far
/// behind is disconnected rather than allowed to grow the engine's memory.
pub const SESSION_QUEUE: usize = 256;

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
        /// Where the engine sends this participant's messages.
        tx: mpsc::Sender<ServerMsg>,
    },
    Signal {
        id: PeerId,
        msg: ClientMsg,
    },
    Leave {
        id: PeerId,
        reason: &'static str,
    },
    /// Answers with the worker's share and counters.
    Status {
        reply: tokio::sync::oneshot::Sender<worker::Report>,
    },
    /// Answers with every room, its participants and their stats.
    Rooms {
        reply: tokio::sync::oneshot::Sender<Vec<RoomSnapshot>>,
    },
    /// A WHIP (publish) or WHEP (play) offer for a room.
    HttpSession {
        whep: bool,
        id: PeerId,
        room: String,
        token: Option<String>,
        offer: String,
        reply: tokio::sync::oneshot::Sender<HttpAnswer>,
    },
    /// Ends a WHIP/WHEP session by its resource id; answers whether it existed.
    EndResource {
        resource: String,
        reply: tokio::sync::oneshot::Sender<bool>,
    },
}

pub use super::core::HttpAnswer;

/// A snapshot of the engine, for health checks and tests.
#[derive(Debug, Clone, Default, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Status {
    pub rooms: usize,
    pub participants: usize,
    pub forwarded_packets: u64,
    /// RTP payload bytes forwarded (without headers and SRTP overhead).
    pub forwarded_bytes: u64,
    pub unroutable_datagrams: u64,
    pub rejected_datagrams: u64,
    /// Datagrams the kernel refused to send (full socket buffer, unreachable).
    pub send_drops: u64,
    /// Each media worker's load.
    pub workers: Vec<WorkerStatus>,
}

/// One media worker's share and load.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkerStatus {
    pub rooms: usize,
    pub participants: usize,
    pub forwarded_packets: u64,
    /// Seconds spent handling inputs and sending, as opposed to waiting.
    pub busy_seconds: f64,
    /// Datagram batches dropped because the worker's queue was full (overload).
    pub queue_drops: u64,
}

impl Status {
    /// Adds one worker's figures.
    pub fn add(&mut self, w: &worker::Report) {
        self.rooms += w.status.rooms;
        self.participants += w.status.participants;
        self.forwarded_packets += w.counters.forwarded;
        self.forwarded_bytes += w.counters.forwarded_bytes;
        self.unroutable_datagrams += w.counters.unroutable;
        self.rejected_datagrams += w.counters.rejected;
        self.send_drops += w.send_drops;
        self.workers.push(w.status);
    }
}

/// The engine's command side; cheap to clone.
#[derive(Debug, Clone)]
pub struct EngineHandle {
    workers: Vec<mpsc::Sender<WorkerMsg>>,
    registry: Arc<Registry>,
    dispatch: Arc<super::dispatch::Counters>,
}

impl EngineHandle {
    /// Sends a command to the worker it concerns; false when the engine has stopped.
    pub async fn send(&self, cmd: Command) -> bool {
        let (worker, home) = match &cmd {
            Command::Join { id, room, role, .. } => {
                // Browser viewers may be served by a worker other than their room's.
                let p = self.registry.admit(*id, room.trim(), *role == Role::Viewer);
                (p.worker, p.home)
            }
            Command::Signal { id, .. } | Command::Leave { id, .. } => {
                match self.registry.worker_of(*id) {
                    Some(w) => (w, w),
                    // Already gone from its worker (refused, failed, or left): nothing
                    // to deliver.
                    None => return true,
                }
            }
            Command::HttpSession { whep, id, room, .. } => {
                // WHEP players are viewers, and may be served by another worker too.
                let p = self.registry.admit(*id, room.trim(), *whep);
                (p.worker, p.home)
            }
            Command::Status { .. } | Command::Rooms { .. } | Command::EndResource { .. } => {
                error!("engine command sent to one worker: use the handle's methods");
                return false;
            }
        };
        let id = match &cmd {
            Command::Join { id, .. } | Command::HttpSession { id, .. } => Some(*id),
            _ => None,
        };
        let msg = match cmd {
            Command::Join { .. } | Command::HttpSession { .. } => WorkerMsg::Join { home, cmd },
            cmd => WorkerMsg::Command(cmd),
        };
        let ok = self.workers[worker].send(msg).await.is_ok();
        if !ok {
            if let Some(id) = id {
                self.registry.release(id);
            }
        }
        ok
    }

    /// Asks every worker; their answers in worker order.
    async fn ask_all<T>(
        &self,
        make: impl Fn(tokio::sync::oneshot::Sender<T>) -> Command,
    ) -> Option<Vec<T>> {
        let mut replies = Vec::with_capacity(self.workers.len());
        for w in &self.workers {
            let (reply, rx) = tokio::sync::oneshot::channel();
            w.send(WorkerMsg::Command(make(reply))).await.ok()?;
            replies.push(rx);
        }
        let mut out = Vec::with_capacity(replies.len());
        for rx in replies {
            out.push(rx.await.ok()?);
        }
        Some(out)
    }

    pub async fn status(&self) -> Option<Status> {
        let reports = self.ask_all(|reply| Command::Status { reply }).await?;
        let mut status = Status {
            unroutable_datagrams: self.dispatch.unroutable(),
            ..Status::default()
        };
        for r in &reports {
            status.add(r);
        }
        for (w, queue_drops) in status.workers.iter_mut().zip(self.dispatch.queue_drops()) {
            w.queue_drops = queue_drops;
        }
        // Packets one worker passed to another for a spread room and dropped because
        // the other was too far behind count as the other's queue drops.
        for r in &reports {
            for (w, drops) in status.workers.iter_mut().zip(&r.link_drops) {
                w.queue_drops += drops;
            }
        }
        Some(status)
    }

    /// Starts a WHIP (`whep` false) or WHEP session.
    pub async fn http_session(
        &self,
        whep: bool,
        room: String,
        token: Option<String>,
        offer: String,
    ) -> HttpAnswer {
        let (reply, rx) = tokio::sync::oneshot::channel();
        let id = crate::signaling::session::next_peer_id();
        let cmd = Command::HttpSession {
            whep,
            id,
            room,
            token,
            offer,
            reply,
        };
        let unavailable = || {
            (
                ErrorCode::Unavailable,
                "the media engine is not running".to_string(),
            )
        };
        if !self.send(cmd).await {
            return Err(unavailable());
        }
        rx.await.map_err(|_| unavailable())?
    }

    /// Ends a WHIP/WHEP session; false when it does not exist.
    pub async fn end_resource(&self, resource: String) -> bool {
        let answers = self
            .ask_all(|reply| Command::EndResource {
                resource: resource.clone(),
                reply,
            })
            .await;
        answers.is_some_and(|a| a.into_iter().any(|ended| ended))
    }

    pub async fn rooms(&self) -> Option<Vec<RoomSnapshot>> {
        let per_worker = self.ask_all(|reply| Command::Rooms { reply }).await?;
        // A room whose viewers are spread over workers shows once, with everyone.
        let mut rooms: Vec<RoomSnapshot> = Vec::new();
        for room in per_worker.into_iter().flatten() {
            match rooms.iter_mut().find(|r| r.name == room.name) {
                Some(r) => {
                    r.participants.extend(room.participants);
                    r.viewers.extend(room.viewers);
                }
                None => rooms.push(room),
            }
        }
        rooms.sort_by(|a, b| a.name.cmp(&b.name));
        Some(rooms)
    }

    /// Participants per worker, as the registry counts them.
    pub fn worker_load(&self) -> Vec<usize> {
        self.registry.load()
    }
}

/// The media sockets plus the address rules for them.
pub struct MediaSockets {
    pub sockets: Vec<UdpIo>,
    pub candidates: Vec<SocketAddr>,
}

/// Room limits and access rules.
#[derive(Debug, Clone, Default)]
pub struct Limits {
    pub room_capacity: usize,
    pub viewer_capacity: usize,
    pub room_tokens: HashMap<String, String>,
    /// Viewers of one room its own worker serves before further viewers go to other
    /// workers (see [`super::registry`]).
    pub spread_viewers_after: usize,
}

/// Datagram batches and commands a worker may have queued before the receive task
/// drops datagrams for it (a worker that far behind is overloaded).
const WORKER_QUEUE: usize = 1024;

/// Starts `workers` media worker threads (at least one) and the receive task (on the
/// current tokio runtime). The engine runs until every [`EngineHandle`] is dropped.
pub fn spawn(media: MediaSockets, limits: Limits, workers: usize) -> std::io::Result<EngineHandle> {
    let n = workers.clamp(1, super::core::MAX_WORKERS);
    let registry = Arc::new(Registry::new(n, limits.spread_viewers_after));
    let mut txs = Vec::with_capacity(n);
    let (link_txs, link_rxs): (Vec<_>, Vec<_>) = (0..n).map(|_| mpsc::unbounded_channel()).unzip();
    let links = Arc::new(worker::Links::new(link_txs));
    for (index, link_rx) in link_rxs.into_iter().enumerate() {
        let (tx, rx) = mpsc::channel(WORKER_QUEUE);
        let sfu = Sfu::new(SfuConfig {
            candidates: media.candidates.clone(),
            room_capacity: limits.room_capacity,
            viewer_capacity: limits.viewer_capacity,
            room_tokens: limits.room_tokens.clone(),
            worker: index,
        });
        let senders = media
            .sockets
            .iter()
            .map(UdpIo::sender)
            .collect::<std::io::Result<Vec<_>>>()?;
        let shell = worker::Worker::new(
            index,
            senders,
            media.candidates.clone(),
            registry.clone(),
            links.clone(),
        );
        std::thread::Builder::new()
            .name(format!("media-{index}"))
            .spawn(move || worker::run(shell, sfu, rx, link_rx))?;
        txs.push(tx);
    }
    let dispatch = Arc::new(super::dispatch::Counters::new(n));
    tokio::spawn(super::dispatch::run(
        media.sockets,
        media.candidates,
        txs.clone(),
        dispatch.clone(),
    ));
    Ok(EngineHandle {
        workers: txs,
        registry,
        dispatch,
    })
}

/// The local address str0m must see as a datagram's destination: it must equal one of
/// the advertised candidates. With one candidate per family that candidate is used
/// (this also covers an advertised address that a 1:1 NAT maps to this host); with
/// several, the address the kernel reports.
pub fn destination_ip(
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
pub fn source_ip(
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

/// A message for sessions the engine cannot serve.
pub fn unavailable() -> ServerMsg {
    ServerMsg::error(ErrorCode::Unavailable, "the media engine is not running")
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

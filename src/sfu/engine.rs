//! The media engine: worker threads that each own a share of the rooms, a receive
//! task that routes every datagram to the worker of its peer, and the handle signaling
//! uses to reach them.
//!
//! - Each worker ([`super::worker`]) is a thread with its own [`Shard`]: the peers, their
//!   `Rtc`s and timers of the rooms it serves. Nothing on the packet path is shared
//!   between workers, so there are no locks on it.
//! - The receive task ([`super::receive`]) reads the media sockets in batches and hands
//!   each worker its datagrams: STUN by the worker named in the server's ICE ufrag,
//!   the rest by the source addresses the workers learnt from authenticated STUN.
//!   With a single worker there is no receive task: the worker reads the sockets
//!   itself and its shard routes each datagram ([`super::receive::Reader`]).
//! - Each worker has two lanes in ([`super::lanes`]): lossy media, and control that is
//!   never dropped and goes first.
//! - A room lives on one worker, chosen when it opens (the least loaded,
//!   [`super::registry`]); commands go to the worker of their room or participant.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::{mpsc, oneshot};

use super::lanes::{self, Batch, Control};
use super::link::{LinkMsg, REMOTE_HOME};
use super::receive;
use super::registry::{Quotas, Registry};
use super::shard::{HttpAnswer, RecordError, RoomSnapshot, Shard, ShardConfig, MAX_WORKERS};
use super::udp::UdpIo;
use super::worker::{self, ToReceive, WorkerLanes};
use crate::cluster::placement::Arrival;
use crate::cluster::{Cluster, Place};
use crate::signaling::protocol::{ErrorCode, PeerId, Role, ServerMsg};
use std::sync::OnceLock;

pub use super::ids::{next_peer_id, spread_peer_ids};
pub use super::lanes::{Command, WorkerStatus};
pub use super::status::Status;

/// Queue length of one session's outgoing messages. A session that falls this far
/// behind is disconnected rather than allowed to grow the engine's memory.
pub const SESSION_QUEUE: usize = 256;

/// The engine's command side; cheap to clone.
#[derive(Debug, Clone)]
pub struct EngineHandle {
    /// Each worker's control lane.
    control: Vec<mpsc::Sender<Control>>,
    /// Each worker's media lane, for the frames of ICE-TCP connections.
    media: Vec<lanes::MediaLane>,
    registry: Arc<Registry>,
    receive: Arc<receive::ReceiveCounters>,
    /// Commands that found their worker gone.
    control_drops: Arc<AtomicU64>,
    /// The channels into the workers' link lanes (messages from other nodes).
    links: Arc<lanes::Links>,
    /// The cluster, when this node is in one (`--cluster`).
    cluster: Arc<OnceLock<Cluster>>,
    /// What the workers send to other nodes, until the cluster task takes it.
    to_cluster: Arc<std::sync::Mutex<Option<ClusterRx>>>,
}

/// The receiving end of the workers' messages for other nodes.
pub type ClusterRx = mpsc::UnboundedReceiver<(usize, LinkMsg)>;

impl EngineHandle {
    /// What the workers send to other nodes, for the cluster task (once).
    pub fn set_cluster_rx(&self) -> Option<ClusterRx> {
        self.to_cluster
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
    }

    /// Joins the cluster: placement goes through it from now on.
    pub fn set_cluster(&self, cluster: Cluster) {
        let _ = self.cluster.set(cluster);
    }

    /// The cluster, when this node is in one.
    pub fn cluster(&self) -> Option<&Cluster> {
        self.cluster.get()
    }

    /// Where a newcomer to `room` is served: here (`None` when not in a cluster), or
    /// what the cluster says.
    pub async fn place(&self, room: &str, viewer: bool) -> Option<Place> {
        let cluster = self.cluster.get()?;
        let room = room.trim();
        let viewers = self.registry.room_viewers(room);
        let arrival = if viewer {
            Arrival::Viewer
        } else {
            Arrival::Participant
        };
        Some(
            cluster
                .place(room, arrival, viewers.is_some(), viewers.unwrap_or(0))
                .await,
        )
    }

    /// Hands a message from another node to worker `worker`.
    pub(crate) fn deliver(&self, worker: usize, msg: LinkMsg) {
        let _ = self.links.send(worker, vec![msg]);
    }

    /// The worker that is the room's home here, while the room is open.
    pub(crate) fn home_of(&self, room: &str) -> Option<usize> {
        self.registry.home_of(room)
    }

    /// The worker serving a participant.
    pub(crate) fn worker_of(&self, id: PeerId) -> Option<usize> {
        self.registry.worker_of(id)
    }

    /// Whether `room` is open on this node.
    pub fn room_open(&self, room: &str) -> bool {
        self.registry.room_viewers(room).is_some()
    }

    /// Sessions here: (participants and publishers, viewers).
    pub fn session_counts(&self) -> (usize, usize) {
        self.registry.counts()
    }

    /// On a room's origin: a viewer that an edge node serves counts here (the room's
    /// limits, and its home stays while it watches). Returns the room's worker.
    pub(crate) fn admit_remote(
        &self,
        id: PeerId,
        room: &str,
        now: Instant,
    ) -> Result<usize, (ErrorCode, String)> {
        self.registry
            .admit(id, room.trim(), false, None, now)
            .map(|p| p.home)
            .map_err(|why| (why.code(), why.to_string()))
    }

    /// The far viewer is gone (left, refused, or its edge died).
    pub(crate) fn release_remote(&self, id: PeerId) {
        self.registry.release(id);
    }

    /// Sends a command to the worker it concerns, on its control lane (waiting for
    /// room, never behind media); false when the engine has stopped.
    pub async fn send(&self, cmd: Command) -> bool {
        let (worker, home) = match &cmd {
            Command::Join {
                id,
                room,
                role,
                from,
                tx,
                ..
            } => {
                // Browser viewers may be served by a worker other than their room's.
                let viewer = *role == Role::Viewer;
                let edge = match self.place(room, viewer).await {
                    None | Some(Place::Origin) => false,
                    Some(Place::Edge { .. }) => true,
                    Some(Place::Redirect { url }) => {
                        // The page follows it; the session ends (its channel closes).
                        let _ = tx.try_send(ServerMsg::Redirect { url });
                        return true;
                    }
                    Some(Place::Unavailable { retry_after }) => {
                        let msg = ServerMsg::error(
                            ErrorCode::Unavailable,
                            format!(
                                "the cluster cannot place you now (its coordination \
                                 service is unreachable); try again in {retry_after} s"
                            ),
                        );
                        let _ = tx.try_send(msg);
                        return true;
                    }
                };
                let now = Instant::now();
                let placed = if edge {
                    self.registry.admit_edge(*id, room.trim(), *from, now)
                } else {
                    self.registry.admit(*id, room.trim(), viewer, *from, now)
                };
                match placed {
                    Ok(p) if edge => (p.worker, REMOTE_HOME),
                    Ok(p) => (p.worker, p.home),
                    Err(why) => {
                        if let Command::Join { tx, .. } = cmd {
                            // The session shows the error and ends (its channel closes).
                            let msg = ServerMsg::error(why.code(), why.to_string());
                            let _ = tx.try_send(msg);
                        }
                        return true;
                    }
                }
            }
            Command::Signal { id, .. } | Command::Leave { id, .. } => {
                match self.registry.worker_of(*id) {
                    Some(w) => (w, w),
                    // Already gone from its worker (refused, failed, or left): nothing
                    // to deliver.
                    None => return true,
                }
            }
            Command::Resume { id, .. } => match self.registry.worker_of(*id) {
                Some(w) => (w, w),
                // Gone: dropping `tx` ends the new connection's session.
                None => return true,
            },
            Command::HttpSession {
                whep,
                id,
                room,
                from,
                edge,
                ..
            } => {
                // WHEP players are viewers, and may be served by another worker too.
                let now = Instant::now();
                let placed = if *edge {
                    self.registry.admit_edge(*id, room.trim(), *from, now)
                } else {
                    self.registry.admit(*id, room.trim(), *whep, *from, now)
                };
                match placed {
                    Ok(p) if *edge => (p.worker, REMOTE_HOME),
                    Ok(p) => (p.worker, p.home),
                    Err(why) => {
                        if let Command::HttpSession { reply, .. } = cmd {
                            let _ = reply.send(Err((why.code(), why.to_string())));
                        }
                        return true;
                    }
                }
            }
        };
        let id = match &cmd {
            Command::Join { id, .. } | Command::HttpSession { id, .. } => Some(*id),
            _ => None,
        };
        let ok = self.control[worker]
            .send(Control::Command { cmd, home })
            .await
            .is_ok();
        if !ok {
            self.control_drops.fetch_add(1, Ordering::Relaxed);
            if let Some(id) = id {
                self.registry.release(id);
            }
        }
        ok
    }

    /// Media workers.
    pub(crate) fn workers(&self) -> usize {
        self.control.len()
    }

    /// An ICE-TCP connection from `peer` now sends to `worker`, and takes what its
    /// peers transmit over TCP from `frames`. False when the engine has stopped.
    pub(crate) async fn tcp_opened(
        &self,
        worker: usize,
        peer: SocketAddr,
        frames: mpsc::Sender<bytes::Bytes>,
    ) -> bool {
        let Some(lane) = self.control.get(worker) else {
            return false;
        };
        lane.send(Control::TcpOpened { peer, frames }).await.is_ok()
    }

    /// Frames of an ICE-TCP connection for `worker`; false when its media lane is
    /// full (the frames are dropped, as datagrams would be) or gone.
    pub(crate) fn tcp_frames(&self, worker: usize, batch: Batch) -> bool {
        self.media
            .get(worker)
            .is_some_and(|lane| lane.try_send(batch).is_ok())
    }

    /// The ICE-TCP connection from `peer` to `worker` closed.
    pub(crate) async fn tcp_closed(&self, worker: usize, peer: SocketAddr) {
        if let Some(lane) = self.control.get(worker) {
            let _ = lane.send(Control::TcpClosed { peer }).await;
        }
    }

    /// Asks every worker; their answers in worker order.
    async fn ask_all<T>(&self, make: impl Fn(oneshot::Sender<T>) -> Control) -> Option<Vec<T>> {
        let mut replies = Vec::with_capacity(self.control.len());
        for w in &self.control {
            let (reply, rx) = oneshot::channel();
            w.send(make(reply)).await.ok()?;
            replies.push(rx);
        }
        let mut out = Vec::with_capacity(replies.len());
        for rx in replies {
            out.push(rx.await.ok()?);
        }
        Some(out)
    }

    pub async fn status(&self) -> Option<Status> {
        let reports = self.ask_all(|reply| Control::Status { reply }).await?;
        let refused = self.registry.refused();
        let mut status = Status {
            refused_rooms: refused.rooms,
            refused_sessions: refused.sessions,
            refused_per_address: refused.per_address,
            refused_rate: refused.rate,
            unroutable_datagrams: self.receive.unroutable(),
            stun_refused: self.receive.stun_refused(),
            control_drops: self.control_drops.load(Ordering::Relaxed),
            ..Status::default()
        };
        for r in &reports {
            status.add(r);
        }
        for (w, queue_drops) in status.workers.iter_mut().zip(self.receive.queue_drops()) {
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

    /// Starts a WHIP (`whep` false) or WHEP session; `edge`: a WHEP player of a room
    /// whose origin is another node ([`Place::Edge`]).
    pub async fn http_session(
        &self,
        whep: bool,
        room: String,
        token: Option<String>,
        offer: String,
        from: Option<std::net::IpAddr>,
        edge: bool,
    ) -> HttpAnswer {
        let (reply, rx) = oneshot::channel();
        let id = next_peer_id();
        let cmd = Command::HttpSession {
            whep,
            id,
            room,
            token,
            offer,
            reply,
            from,
            edge,
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
            .ask_all(|reply| Control::EndResource {
                resource: resource.clone(),
                reply,
            })
            .await;
        answers.is_some_and(|a| a.into_iter().any(|ended| ended))
    }

    /// Whether a WHIP/WHEP session with this resource id exists.
    pub async fn has_resource(&self, resource: String) -> bool {
        let answers = self
            .ask_all(|reply| Control::HasResource {
                resource: resource.clone(),
                reply,
            })
            .await;
        answers.is_some_and(|a| a.into_iter().any(|here| here))
    }

    pub async fn rooms(&self) -> Option<Vec<RoomSnapshot>> {
        let per_worker = self.ask_all(|reply| Control::Rooms { reply }).await?;
        // A room whose viewers are spread over workers shows once, with everyone.
        let mut rooms: Vec<RoomSnapshot> = Vec::new();
        for room in per_worker.into_iter().flatten() {
            match rooms.iter_mut().find(|r| r.name == room.name) {
                Some(r) => {
                    r.participants.extend(room.participants);
                    r.viewers.extend(room.viewers);
                    r.comparison = r.comparison.take().or(room.comparison);
                    r.edges.extend(room.edges);
                    // The home knows the host and the lock; mirrors know neither.
                    r.host = r.host.or(room.host);
                    r.locked |= room.locked;
                    r.recording |= room.recording;
                }
                None => rooms.push(room),
            }
        }
        rooms.sort_by(|a, b| a.name.cmp(&b.name));
        Some(rooms)
    }

    /// Starts (`on`) or stops recording `room`; `Ok(false)` when it already was (or
    /// was not). `message`: why a recording stopped by itself, for the room.
    pub async fn recording(
        &self,
        room: &str,
        on: bool,
        message: Option<String>,
    ) -> Result<bool, RecordError> {
        let Some(home) = self.registry.home_of(room.trim()) else {
            return Err(RecordError::NoRoom);
        };
        let (reply, rx) = oneshot::channel();
        let msg = Control::Recording {
            room: room.trim().to_string(),
            on,
            message,
            reply,
        };
        if self.control[home].send(msg).await.is_err() {
            return Err(RecordError::Off);
        }
        rx.await.unwrap_or(Err(RecordError::Off))
    }

    /// Stops every recording (the server is shutting down); how many there were.
    pub async fn stop_recordings(&self) -> usize {
        self.ask_all(|reply| Control::StopRecordings { reply })
            .await
            .map_or(0, |n| n.into_iter().sum())
    }

    /// Participants per worker, as the registry counts them.
    pub fn worker_load(&self) -> Vec<usize> {
        self.registry.load()
    }
}

/// The media sockets plus the address rules for them.
pub(crate) struct MediaSockets {
    pub(crate) sockets: Vec<UdpIo>,
    pub(crate) candidates: Vec<SocketAddr>,
    /// Passive ICE-TCP candidates (the HTTPS port); empty when TCP media is off.
    pub(crate) tcp_candidates: Vec<SocketAddr>,
}

/// Room limits and access rules.
#[derive(Debug, Clone, Default)]
pub struct Limits {
    pub room_capacity: usize,
    pub viewer_capacity: usize,
    pub room_tokens: HashMap<String, String>,
    /// The operator's token, which also makes its holder a room's host.
    pub operator_token: Option<String>,
    /// Viewers of one room its own worker serves before further viewers go to other
    /// workers (see [`super::registry`]).
    pub spread_viewers_after: usize,
    /// How long a media session may take to connect.
    pub connect_timeout: std::time::Duration,
    /// Direct-call signals per second per participant.
    pub direct_rate: u32,
    /// The chat's limits, and whether viewers may write.
    pub chat: crate::chat::ChatLimits,
    /// Rooms that may exist at once, server-wide.
    pub max_rooms: usize,
    /// Participants, viewers and WHIP/WHEP sessions at once, server-wide.
    pub max_sessions: usize,
    /// Sessions from one client address at once.
    pub max_per_address: usize,
    /// Sessions one client address may open per minute.
    pub joins_per_minute: u32,
    /// Where recordings go (`None`: recording is off).
    pub record: Option<crate::record::RecordSink>,
    /// Estimate the bandwidth towards each receiver (`--no-bandwidth-estimation`).
    pub bandwidth_estimation: bool,
}

/// Starts `workers` media worker threads (at least one) and the receive task (on the
/// current tokio runtime, or with one worker on its thread). The engine runs until
/// every [`EngineHandle`] is dropped.
pub(crate) fn spawn(
    media: MediaSockets,
    limits: Limits,
    workers: usize,
) -> std::io::Result<EngineHandle> {
    let n = workers.clamp(1, MAX_WORKERS);
    let registry = Arc::new(Registry::with_limits(
        n,
        limits.spread_viewers_after,
        Quotas {
            max_rooms: limits.max_rooms,
            max_sessions: limits.max_sessions,
            max_per_address: limits.max_per_address,
            joins_per_minute: limits.joins_per_minute,
        },
    ));
    let (link_txs, link_rxs): (Vec<_>, Vec<_>) = (0..n).map(|_| mpsc::unbounded_channel()).unzip();
    let links = Arc::new(lanes::Links::new(link_txs));
    let (cluster_tx, cluster_rx) = mpsc::unbounded_channel();
    let (route_tx, route_rx) = mpsc::channel(lanes::ROUTE_QUEUE);
    let (recycle_tx, recycle_rx) = mpsc::channel(lanes::SPARE_BATCHES);
    let mut control = Vec::with_capacity(n);
    let mut media_txs = Vec::with_capacity(n);
    let mut starts = Vec::with_capacity(n);
    for (index, link_rx) in link_rxs.into_iter().enumerate() {
        let (control_tx, control_rx) = mpsc::channel(lanes::CONTROL_QUEUE);
        let (media_tx, media_rx) = lanes::media_lane();
        let shard = Shard::new(ShardConfig {
            candidates: media.candidates.clone(),
            tcp_candidates: media.tcp_candidates.clone(),
            room_capacity: limits.room_capacity,
            viewer_capacity: limits.viewer_capacity,
            room_tokens: limits.room_tokens.clone(),
            operator_token: limits.operator_token.clone(),
            worker: index,
            seed: rand::random(),
            connect_timeout: limits.connect_timeout,
            direct_rate: limits.direct_rate,
            chat: limits.chat,
            record: limits.record.clone(),
            bandwidth_estimation: limits.bandwidth_estimation,
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
            ToReceive {
                recycle: recycle_tx.clone(),
                routes: Some(route_tx.clone()),
            },
            cluster_tx.clone(),
            media_tx.clone(),
        );
        let lanes = WorkerLanes {
            control: control_rx,
            media: media_rx,
            links: link_rx,
        };
        starts.push((shell, shard, lanes));
        control.push(control_tx);
        media_txs.push(media_tx);
    }
    let counters = Arc::new(receive::ReceiveCounters::new(n));
    let tcp_media = media_txs.clone();
    let task = receive::Task {
        sockets: media.sockets,
        candidates: media.candidates,
        lanes: receive::Lanes {
            media: media_txs,
            routes: route_rx,
            recycle: recycle_rx,
        },
        counters: counters.clone(),
    };
    // One worker reads the media socket itself: no routing table, no copy into a
    // batch and no hand-off per read. With several, a task of its own reads for all of
    // them, so none waits for another's work to have its datagrams read.
    let mut inline = if n == 1 {
        Some(task)
    } else {
        tokio::spawn(task.run());
        None
    };
    for (index, (shell, shard, lanes)) in starts.into_iter().enumerate() {
        let inline = inline.take();
        std::thread::Builder::new()
            .name(format!("media-{index}"))
            .spawn(move || worker::run(shell, shard, lanes, inline))?;
    }
    Ok(EngineHandle {
        control,
        media: tcp_media,
        registry,
        receive: counters,
        control_drops: Arc::new(AtomicU64::new(0)),
        links,
        cluster: Arc::new(OnceLock::new()),
        to_cluster: Arc::new(std::sync::Mutex::new(Some(cluster_rx))),
    })
}

/// A message for sessions the engine cannot serve.
pub fn unavailable() -> ServerMsg {
    ServerMsg::error(ErrorCode::Unavailable, "the media engine is not running")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sfu::lanes::{Batch, Command, MEDIA_QUEUE};
    use std::time::Duration;

    /// A worker whose media lane is full (it is far behind on datagrams) still gets
    /// every command at once: joins, leaves and answers are never stuck behind media.
    #[tokio::test]
    async fn commands_pass_a_full_media_lane() {
        let (control_tx, mut control_rx) = mpsc::channel(lanes::CONTROL_QUEUE);
        let (media_tx, _media_rx) = lanes::media_lane();
        for _ in 0..MEDIA_QUEUE {
            media_tx
                .try_send(Batch::default())
                .expect("room for a batch");
        }
        assert!(
            media_tx.try_send(Batch::default()).is_err(),
            "the media lane is full"
        );
        let (link_tx, _link_rx) = mpsc::unbounded_channel();
        let handle = EngineHandle {
            control: vec![control_tx],
            media: vec![media_tx.clone()],
            registry: Arc::new(Registry::new(1, usize::MAX)),
            receive: Arc::new(receive::ReceiveCounters::new(1)),
            control_drops: Arc::new(AtomicU64::new(0)),
            links: Arc::new(lanes::Links::new(vec![link_tx])),
            cluster: Arc::new(OnceLock::new()),
            to_cluster: Arc::new(std::sync::Mutex::new(None)),
        };
        for id in 1..=100 {
            let (tx, _rx) = mpsc::channel(SESSION_QUEUE);
            let join = Command::Join {
                id,
                room: "busy".into(),
                name: format!("p{id}"),
                role: Role::Participant,
                mode: Default::default(),
                token: None,
                host_token: None,
                tx,
                from: None,
            };
            let sent = tokio::time::timeout(Duration::from_secs(1), handle.send(join)).await;
            assert_eq!(sent, Ok(true), "join {id} is not held up by media");
        }
        for id in 1..=100 {
            match control_rx.try_recv() {
                Ok(Control::Command {
                    cmd: Command::Join { id: got, .. },
                    ..
                }) => assert_eq!(got, id),
                other => panic!("join {id} on the control lane, got {other:?}"),
            }
        }
        let status_drops = handle.control_drops.load(Ordering::Relaxed);
        assert_eq!(status_drops, 0, "nothing dropped on the control lane");
    }
}

//! The media engine: worker threads that each own a share of the rooms, a receive
//! task that routes every datagram to the worker of its peer, and the handle signaling
//! uses to reach them.
//!
//! - Each worker ([`super::worker`]) is a thread with its own [`Shard`](super::shard::Shard): the peers, their
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
//!
//! Here the handle and the commands it routes; `requests`: what it asks every
//! worker (status, rooms, recordings, WHIP/WHEP); `spawn`: starting the workers.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::mpsc;

use super::lanes::{self, Batch, Control};
use super::link::{LinkMsg, REMOTE_HOME};
use super::receive;
use super::registry::Registry;
use crate::cluster::placement::Arrival;
use crate::cluster::{Cluster, Place};
use crate::signaling::protocol::{ErrorCode, PeerId, Role, ServerMsg};
use std::sync::OnceLock;

pub use super::ids::{next_peer_id, spread_peer_ids};
pub use spawn::Limits;
pub(crate) use spawn::{spawn, MediaSockets};

mod requests;
mod spawn;
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

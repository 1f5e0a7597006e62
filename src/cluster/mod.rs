//! Several lanrelay nodes acting as one service, coordinated through NATS
//! (`--cluster nats://HOST:4222`). Without the flag none of this runs.
//!
//! - [`placement`]: where a newcomer to a room is served (Sans-IO).
//! - [`nats`]: the rooms and nodes buckets and the node subjects.
//! - [`wire`]: what nodes tell each other about a room served over several nodes.
//! - [`shell`]: the task bound to this node's media engine: heartbeats, giving back
//!   the entries of rooms that closed here, messages between the media workers and
//!   other nodes.
//! - This file: the [`Cluster`] handle. [`Cluster::place`] answers a join or a
//!   WHIP/WHEP request (serve here as origin or edge, send elsewhere, or `503`) from
//!   what NATS holds and what this node knows.
//!
//! `docs/cluster.md` has the design: why, the subjects and keys, the failure cases.

pub mod nats;
pub mod placement;
pub mod shell;
pub mod wire;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tracing::{debug, info, warn};

use nats::{Claim, Nats};
use placement::{Arrival, Decision, Inputs, NodeLoad};

/// The cluster flags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterConfig {
    /// The NATS server, `nats://HOST:4222`.
    pub nats: String,
    /// This node's name, unique in the cluster.
    pub node: String,
    /// Where browsers reach this node, `https://HOST:PORT`.
    pub url: String,
    /// Viewers of one room its origin serves before it sends further ones to edges.
    pub edge_after: usize,
}

/// Where a newcomer goes ([`Cluster::place`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Place {
    /// This node serves the room (it is, or just became, its origin).
    Origin,
    /// This node serves the viewer, relayed from the room's origin.
    Edge { origin: String },
    /// Another node serves it: its URL (`https://HOST:PORT`).
    Redirect { url: String },
    /// The cluster cannot say now (NATS unreachable): try again in `retry_after`
    /// seconds.
    Unavailable { retry_after: u32 },
}

/// Seconds a client is told to wait when NATS is unreachable.
pub const RETRY_AFTER: u32 = 5;

/// An origin entry written here is kept at least this long even when the room has
/// nobody yet: the newcomer it was claimed for is still on its way in.
const CLAIM_GRACE: Duration = Duration::from_secs(10);

/// Counters for `/metrics` and `/api/rooms`.
#[derive(Debug, Default)]
pub struct Counters {
    /// Placement decisions: served here as origin, as edge, sent elsewhere, refused.
    pub placed_origin: AtomicU64,
    pub placed_edge: AtomicU64,
    pub placed_redirect: AtomicU64,
    pub placed_unavailable: AtomicU64,
    /// Create-only or compare-and-swap writes that lost to another node.
    pub claims_lost: AtomicU64,
    /// Messages to and from other nodes.
    pub sent: AtomicU64,
    pub received: AtomicU64,
    /// Heartbeats that failed (NATS unreachable).
    pub heartbeat_failures: AtomicU64,
}

/// What `/metrics` and `/api/rooms` show of the cluster.
#[derive(Debug, Clone, Default, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Figures {
    pub node: String,
    pub url: String,
    /// NATS answered the last heartbeat.
    pub connected: bool,
    /// The live nodes as the last heartbeat saw them.
    pub nodes: Vec<NodeLoad>,
    /// Rooms this node is the origin of, and rooms it serves as an edge (→ origin).
    pub origin_of: Vec<String>,
    pub edge_of: Vec<(String, String)>,
    pub placed_origin: u64,
    pub placed_edge: u64,
    pub placed_redirect: u64,
    pub placed_unavailable: u64,
    pub claims_lost: u64,
    pub messages_sent: u64,
    pub messages_received: u64,
}

/// The cluster side of one node; cheap to clone.
#[derive(Clone)]
pub struct Cluster {
    inner: Arc<Inner>,
}

struct Inner {
    cfg: ClusterConfig,
    /// Set once connected.
    nats: watch::Receiver<Option<Nats>>,
    state: Mutex<State>,
    counters: Counters,
}

#[derive(Default)]
struct State {
    /// Rooms whose entry this node wrote: their revision and when.
    owned: HashMap<String, (u64, Instant)>,
    /// Rooms this node serves viewers of as an edge → their origin.
    edge_of: HashMap<String, String>,
    /// The live nodes at the last heartbeat.
    nodes: Vec<NodeLoad>,
    connected: bool,
    /// Edge nodes known to this node's workers by index (see [`crate::sfu::link`]).
    edges: Vec<String>,
    /// At the last heartbeat: when, bytes sent (forwarded and relayed), and each
    /// worker's busy seconds, for the rates in this node's entry.
    last: Option<(Instant, u64, Vec<f64>)>,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("node", &self.inner.cfg.node)
            .finish()
    }
}

/// The running cluster task; dropping `stop` ends it.
pub struct Task {
    pub stop: tokio::sync::oneshot::Sender<()>,
    pub task: tokio::task::JoinHandle<()>,
}

impl Cluster {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // Every update is one step: the map stays consistent even after a panic.
        self.inner.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn node(&self) -> &str {
        &self.inner.cfg.node
    }

    pub fn counters(&self) -> &Counters {
        &self.inner.counters
    }

    /// Where a newcomer to `room` goes. `open_here`: the room is open on this node
    /// (it has a participant, viewer or publisher here); `viewers_here`: its viewers
    /// this node serves.
    pub async fn place(
        &self,
        room: &str,
        arrival: Arrival,
        open_here: bool,
        viewers_here: usize,
    ) -> Place {
        let place = self.decide(room, arrival, open_here, viewers_here).await;
        let c = &self.inner.counters;
        let n = match &place {
            Place::Origin => &c.placed_origin,
            Place::Edge { .. } => &c.placed_edge,
            Place::Redirect { .. } => &c.placed_redirect,
            Place::Unavailable { .. } => &c.placed_unavailable,
        };
        n.fetch_add(1, Ordering::Relaxed);
        debug!(room, ?arrival, ?place, "placed");
        place
    }

    async fn decide(
        &self,
        room: &str,
        arrival: Arrival,
        open_here: bool,
        viewers_here: usize,
    ) -> Place {
        let me = self.inner.cfg.node.clone();
        {
            let s = self.state();
            // A room this node is the origin of is served here without asking NATS
            // (so it carries on while NATS is away), unless its viewers should move.
            if open_here && s.owned.contains_key(room) && arrival == Arrival::Participant {
                return Place::Origin;
            }
        }
        let Some(nats) = self.inner.nats.borrow().clone() else {
            return self.without_nats(room, open_here);
        };
        if nats.client.connection_state() != async_nats::connection::State::Connected {
            return self.without_nats(room, open_here);
        }
        for _ in 0..4 {
            let entry = match nats.room(room).await {
                Ok(e) => e,
                Err(e) => {
                    warn!(room, "cannot read the room's entry: {e}");
                    return self.without_nats(room, open_here);
                }
            };
            let nodes = self.state().nodes.clone();
            let decision = placement::decide(&Inputs {
                me: &me,
                arrival,
                entry: entry.as_ref(),
                nodes: &nodes,
                room_viewers_here: viewers_here,
                edge_after: self.inner.cfg.edge_after,
            });
            match decision {
                Decision::Origin => {
                    if let Some(e) = entry {
                        self.state()
                            .owned
                            .entry(room.to_string())
                            .or_insert((e.revision, Instant::now()));
                    }
                    return Place::Origin;
                }
                Decision::Claim { revision } => match nats.claim(room, &me, revision).await {
                    Ok((Claim::Won, rev)) => {
                        info!(room, "this node is the room's origin");
                        self.state()
                            .owned
                            .insert(room.to_string(), (rev, Instant::now()));
                        return Place::Origin;
                    }
                    Ok((Claim::Lost, _)) => {
                        self.inner
                            .counters
                            .claims_lost
                            .fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                    Err(e) => {
                        warn!(room, "cannot write the room's entry: {e}");
                        return self.without_nats(room, open_here);
                    }
                },
                Decision::Edge { origin } => {
                    self.state()
                        .edge_of
                        .insert(room.to_string(), origin.clone());
                    return Place::Edge { origin };
                }
                Decision::Redirect { url, .. } => return Place::Redirect { url },
            }
        }
        Place::Unavailable {
            retry_after: RETRY_AFTER,
        }
    }

    /// NATS is away: rooms this node is the origin of carry on; anything that needs
    /// another node (an edge's viewer is admitted by the origin, over NATS) waits.
    fn without_nats(&self, room: &str, open_here: bool) -> Place {
        if open_here && self.state().owned.contains_key(room) {
            return Place::Origin;
        }
        Place::Unavailable {
            retry_after: RETRY_AFTER,
        }
    }

    /// The other live nodes' URLs, for pages to move to should this node go.
    pub fn other_nodes(&self) -> Vec<String> {
        let me = &self.inner.cfg.node;
        self.state()
            .nodes
            .iter()
            .filter(|n| &n.name != me)
            .map(|n| n.url.clone())
            .collect()
    }

    /// The room's origin as this node knows it (an edge's rooms).
    pub fn origin_of(&self, room: &str) -> Option<String> {
        self.state().edge_of.get(room).cloned()
    }

    /// The index by which this node's workers know edge node `node` (see
    /// [`crate::sfu::link::edge_index`]).
    pub fn edge_index(&self, node: &str) -> usize {
        let mut s = self.state();
        let slot = match s.edges.iter().position(|n| n == node) {
            Some(i) => i,
            None => {
                s.edges.push(node.to_string());
                s.edges.len() - 1
            }
        };
        crate::sfu::link::edge_index(slot)
    }

    /// The edge node a worker index names.
    pub fn edge_name(&self, index: usize) -> Option<String> {
        let slot = crate::sfu::link::edge_slot(index)?;
        self.state().edges.get(slot).cloned()
    }

    /// Which node serves whom in `room`, as this node sees it; `edges`: the edge
    /// indexes relaying it from here, with their viewers.
    pub fn room_place(&self, room: &str, edges: &[(usize, usize)]) -> crate::sfu::shard::RoomPlace {
        let me = self.inner.cfg.node.clone();
        let origin = self.origin_of(room).unwrap_or_else(|| me.clone());
        let edges = edges
            .iter()
            .filter_map(|(i, viewers)| {
                Some(crate::sfu::shard::EdgePlace {
                    node: self.edge_name(*i)?,
                    viewers: *viewers,
                })
            })
            .collect();
        crate::sfu::shard::RoomPlace {
            node: me,
            origin,
            edges,
        }
    }

    /// What `/metrics` and `/api/rooms` show.
    pub fn figures(&self) -> Figures {
        let s = self.state();
        let c = &self.inner.counters;
        let mut origin_of: Vec<String> = s.owned.keys().cloned().collect();
        origin_of.sort();
        let mut edge_of: Vec<(String, String)> = s
            .edge_of
            .iter()
            .map(|(r, o)| (r.clone(), o.clone()))
            .collect();
        edge_of.sort();
        Figures {
            node: self.inner.cfg.node.clone(),
            url: self.inner.cfg.url.clone(),
            connected: s.connected,
            nodes: s.nodes.clone(),
            origin_of,
            edge_of,
            placed_origin: c.placed_origin.load(Ordering::Relaxed),
            placed_edge: c.placed_edge.load(Ordering::Relaxed),
            placed_redirect: c.placed_redirect.load(Ordering::Relaxed),
            placed_unavailable: c.placed_unavailable.load(Ordering::Relaxed),
            claims_lost: c.claims_lost.load(Ordering::Relaxed),
            messages_sent: c.sent.load(Ordering::Relaxed),
            messages_received: c.received.load(Ordering::Relaxed),
        }
    }
}

//! What a shard shows of itself: its rooms with their participants and the server's
//! measurements (`/api/rooms`), and its size (`/healthz`, `/metrics`).

use super::Shard;
use str0m::media::MediaKind;

use crate::sfu::peer::{codec_name, DownState};
use crate::signaling::protocol::{LegStats, Mode, PeerId, PeerInfo, Role};

/// A room as `/api/rooms` shows it.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RoomSnapshot {
    pub name: String,
    pub mode: Mode,
    pub capacity: usize,
    /// The participant that hosts the room (`null`: nobody, until a participant joins).
    pub host: Option<PeerId>,
    /// The host locked the room to new participants and viewers.
    pub locked: bool,
    pub participants: Vec<ParticipantSnapshot>,
    /// Receive-only viewers (browsers with `role=viewer`, WHEP players).
    pub viewers: Vec<ParticipantSnapshot>,
    /// The room is being recorded.
    pub recording: bool,
    /// The room's latest comparison report: not in `/api/rooms` (it can be tens of
    /// KiB), served at `/api/rooms/ROOM/comparison` under the same access rules.
    #[serde(skip)]
    pub comparison: Option<std::sync::Arc<serde_json::Value>>,
    /// On a room's origin in a cluster: the edge nodes (by worker index, see
    /// `sfu::link::edge_index`) serving its viewers, with how many each.
    #[serde(skip)]
    pub edges: Vec<(usize, usize)>,
    /// In a cluster: which node serves whom (filled by the HTTP handler).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster: Option<RoomPlace>,
}

/// Where a room is served in a cluster, as `/api/rooms` shows it on one node.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RoomPlace {
    /// The node answering (its participants and viewers are the ones listed).
    pub node: String,
    /// The room's origin node (its participants and publishers).
    pub origin: String,
    /// On the origin: the edge nodes relaying the room, with their viewers.
    pub edges: Vec<EdgePlace>,
}

/// An edge node of a room.
#[derive(Debug, Clone, serde::Serialize)]
pub struct EdgePlace {
    pub node: String,
    pub viewers: usize,
}

/// A participant as `/api/rooms` shows it.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ParticipantSnapshot {
    #[serde(flatten)]
    pub info: PeerInfo,
    pub role: Role,
    /// Its media connection to the server is up.
    pub relay_connected: bool,
    /// Tracks it sends to the server, and tracks the server sends it.
    pub up_tracks: usize,
    pub down_tracks: usize,
    /// The server's measurements of its relayed legs (when connected to the server).
    pub relay: Option<LegStats>,
    /// The codec of the video it sends, if any.
    pub video_codec: Option<&'static str>,
    /// Publishers whose video it cannot decode, with their codec.
    pub cannot_decode: Vec<CodecGap>,
}

/// A publisher whose video a receiver cannot decode.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CodecGap {
    pub peer: PeerId,
    pub codec: &'static str,
}

impl Shard {
    /// Participants and viewers this shard serves.
    pub fn peer_count(&self) -> usize {
        self.peers
            .values()
            .filter(|p| p.is_here() && !self.relays.contains_key(&p.id))
            .count()
    }

    /// Rooms whose home is this shard.
    pub fn room_count(&self) -> usize {
        self.rooms.len().saturating_sub(self.mirrored.len())
    }

    /// Every room with the participants this shard serves and the server's
    /// measurements, for `/api/rooms` (the engine merges a room spread over workers).
    pub fn rooms_snapshot(&self) -> Vec<RoomSnapshot> {
        let snap = |id: &PeerId| {
            let p = self.peers.get(id)?;
            let l = p.here()?;
            Some(ParticipantSnapshot {
                info: p.info.clone(),
                role: p.role,
                relay_connected: l.connected_at.is_some(),
                up_tracks: p.up.len(),
                down_tracks: l
                    .down
                    .values()
                    .filter(|d| matches!(d.state, DownState::Open(_)))
                    .count(),
                relay: l.connected_at.map(|_| l.stats.current().clone()),
                video_codec: p
                    .up
                    .values()
                    .find(|u| u.kind == MediaKind::Video)
                    .and_then(|u| u.codec)
                    .map(codec_name),
                cannot_decode: l
                    .down
                    .iter()
                    .filter_map(|((peer, _), d)| {
                        let codec = codec_name(d.undecodable?);
                        Some(CodecGap { peer: *peer, codec })
                    })
                    .collect(),
            })
        };
        self.rooms
            .names()
            .into_iter()
            .map(|name| {
                let mode = self.rooms.mode(&name).unwrap_or_default();
                let host = self.rooms.host_state(&name);
                RoomSnapshot {
                    host: host.host,
                    locked: host.locked,
                    capacity: self.rooms.capacity(mode),
                    participants: self.rooms.members(&name).iter().filter_map(snap).collect(),
                    viewers: self.rooms.viewers(&name).iter().filter_map(snap).collect(),
                    comparison: self.rooms.comparison(&name),
                    edges: self
                        .mirrors
                        .get(&name)
                        .map(|m| {
                            m.iter()
                                .copied()
                                .filter(|(w, _)| crate::sfu::link::is_remote(*w))
                                .collect()
                        })
                        .unwrap_or_default(),
                    cluster: None,
                    recording: self.recorders.contains_key(&name),
                    name,
                    mode,
                }
            })
            .collect()
    }
}

//! What nodes tell each other about a room served over several nodes, and the bridge
//! between those messages and the media workers' [`LinkMsg`]s.
//!
//! An edge node serves a room's viewers the way a mirror worker does (`sfu::shard::mirror`):
//! its viewers are admitted by the room's home on the origin node, which sends them
//! their signaling messages and the room's tracks; departures, chat and the relay
//! link's set-up go back. These are those [`LinkMsg`]s as JSON on NATS; media never
//! travels here (it has its own WebRTC link, `sfu::shard::relay`), nor do keyframe
//! requests (RTCP on that link).
//!
//! Routing on arrival: messages about a viewer go to the worker that serves it (the
//! registry knows), messages about a room to the room's worker on this node.

use std::time::Instant;

use serde::{Deserialize, Serialize};
use str0m::media::{MediaKind, Mid};
use tracing::debug;

use super::Cluster;
use crate::sfu::engine::EngineHandle;
use crate::sfu::link::{self, LinkMsg, LinkParams, Publisher, TrackInfo};
use crate::signaling::protocol::{ErrorCode, Mode, PeerId, PeerInfo, ServerMsg, Source};

/// One message on a node's subject: who sent it, and what.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Envelope {
    pub from: String,
    pub msg: NodeMsg,
}

/// What one node tells another.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum NodeMsg {
    // Edge to origin.
    AdmitViewer {
        id: PeerId,
        room: String,
        name: String,
        mode: Mode,
        /// It gave a valid host token (it gets into a locked room).
        #[serde(default)]
        host_token: bool,
    },
    ViewerLeft {
        room: String,
        id: PeerId,
    },
    Chat {
        room: String,
        from: PeerId,
        text: String,
    },
    ChatHistory {
        room: String,
        id: PeerId,
    },
    LinkOffer {
        room: String,
        link: PeerId,
        params: LinkParams,
    },
    LinkClosed {
        room: String,
    },
    // Origin to edge.
    Admitted {
        id: PeerId,
        room: String,
        mode: Mode,
        joined: ServerMsg,
        publishers: Vec<WirePublisher>,
    },
    Refused {
        id: PeerId,
        code: ErrorCode,
        message: String,
    },
    Signal {
        id: PeerId,
        msg: ServerMsg,
    },
    TrackAdded {
        room: String,
        publisher: PeerInfo,
        track: WireTrack,
    },
    TrackRemoved {
        room: String,
        publisher: PeerId,
        mid: String,
    },
    PublisherLeft {
        room: String,
        publisher: PeerId,
    },
    LinkAnswer {
        room: String,
        link: PeerId,
        params: LinkParams,
    },
}

/// A publisher and its tracks.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WirePublisher {
    pub info: PeerInfo,
    pub tracks: Vec<WireTrack>,
}

/// One track: its m-line at the publisher, its kind, what it shows, whether it has
/// simulcast layers.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WireTrack {
    pub mid: String,
    pub video: bool,
    #[serde(default)]
    pub source: Source,
    pub simulcast: bool,
}

impl From<TrackInfo> for WireTrack {
    fn from(t: TrackInfo) -> Self {
        WireTrack {
            mid: t.mid.to_string(),
            video: t.kind == MediaKind::Video,
            source: t.source,
            simulcast: t.simulcast,
        }
    }
}

impl From<&WireTrack> for TrackInfo {
    fn from(t: &WireTrack) -> Self {
        TrackInfo {
            mid: Mid::from(t.mid.as_str()),
            kind: if t.video {
                MediaKind::Video
            } else {
                MediaKind::Audio
            },
            source: t.source,
            simulcast: t.simulcast,
        }
    }
}

/// Carries messages between this node's workers and other nodes.
pub(crate) struct Bridge {
    cluster: Cluster,
    engine: EngineHandle,
}

impl Bridge {
    pub(crate) fn new(cluster: Cluster, engine: EngineHandle) -> Self {
        Bridge { cluster, engine }
    }

    /// A worker's message for another node (`to`, a remote index): the node's name and
    /// the payload, or `None` when it stays here (media, or a node no longer known).
    pub(crate) fn outgoing(&self, to: usize, msg: LinkMsg) -> Option<(String, Vec<u8>)> {
        let node = if to == link::REMOTE_HOME {
            let room = room_of(&msg)?;
            self.cluster.origin_of(room)?
        } else {
            self.cluster.edge_name(to)?
        };
        let msg = match msg {
            LinkMsg::AdmitViewer {
                id,
                room,
                name,
                mode,
                host_token,
                ..
            } => NodeMsg::AdmitViewer {
                id,
                room,
                name,
                mode,
                host_token,
            },
            LinkMsg::ViewerLeft { room, id } => NodeMsg::ViewerLeft { room, id },
            LinkMsg::Chat { room, from, text } => NodeMsg::Chat { room, from, text },
            LinkMsg::ChatHistory { room, id } => NodeMsg::ChatHistory { room, id },
            LinkMsg::LinkOffer {
                room, link, params, ..
            } => NodeMsg::LinkOffer { room, link, params },
            LinkMsg::LinkClosed { room, .. } => NodeMsg::LinkClosed { room },
            LinkMsg::Admitted {
                id,
                room,
                mode,
                joined,
                publishers,
                ..
            } => NodeMsg::Admitted {
                id,
                room,
                mode,
                joined,
                publishers: publishers
                    .into_iter()
                    .map(|p| WirePublisher {
                        info: p.info,
                        tracks: p.tracks.into_iter().map(WireTrack::from).collect(),
                    })
                    .collect(),
            },
            LinkMsg::Refused { id, code, message } => {
                // The origin counted the far viewer while it waited.
                self.engine.release_remote(id);
                NodeMsg::Refused { id, code, message }
            }
            LinkMsg::Signal { id, msg } => NodeMsg::Signal { id, msg },
            LinkMsg::TrackAdded {
                room,
                publisher,
                track,
            } => NodeMsg::TrackAdded {
                room,
                publisher,
                track: track.into(),
            },
            LinkMsg::TrackRemoved {
                room,
                publisher,
                mid,
            } => NodeMsg::TrackRemoved {
                room,
                publisher,
                mid: mid.to_string(),
            },
            LinkMsg::PublisherLeft { room, publisher } => {
                NodeMsg::PublisherLeft { room, publisher }
            }
            LinkMsg::LinkAnswer { room, link, params } => {
                NodeMsg::LinkAnswer { room, link, params }
            }
            // Media and keyframe requests travel on the relay link, never here.
            LinkMsg::Rtp { .. } | LinkMsg::KeyframeRequest { .. } => return None,
        };
        let env = Envelope {
            from: self.cluster.node().to_string(),
            msg,
        };
        let payload = serde_json::to_vec(&env).ok()?;
        Some((node, payload))
    }

    /// A message from another node: to the worker it concerns. Returns a reply for
    /// the sender when this node answers it at once (a viewer refused here).
    pub(crate) fn incoming(&self, payload: &[u8]) -> Option<(String, Vec<u8>)> {
        let Ok(Envelope { from, msg }) = serde_json::from_slice::<Envelope>(payload) else {
            debug!("unreadable message from another node dropped");
            return None;
        };
        let e = &self.engine;
        let (worker, msg) = match msg {
            NodeMsg::AdmitViewer {
                id,
                room,
                name,
                mode,
                host_token,
            } => {
                let from = self.cluster.edge_index(&from);
                let home = match e.admit_remote(id, &room, Instant::now()) {
                    Ok(home) => home,
                    Err((code, message)) => {
                        let refused = LinkMsg::Refused { id, code, message };
                        return self.outgoing(from, refused);
                    }
                };
                let msg = LinkMsg::AdmitViewer {
                    id,
                    room,
                    name,
                    mode,
                    host_token,
                    from,
                };
                (Some(home), msg)
            }
            NodeMsg::ViewerLeft { room, id } => {
                let w = e.worker_of(id);
                // Released here: the viewer's stub on the origin sends no `Close`.
                e.release_remote(id);
                (w, LinkMsg::ViewerLeft { room, id })
            }
            NodeMsg::Chat { room, from, text } => {
                (e.home_of(&room), LinkMsg::Chat { room, from, text })
            }
            NodeMsg::ChatHistory { room, id } => {
                (e.home_of(&room), LinkMsg::ChatHistory { room, id })
            }
            NodeMsg::LinkOffer { room, link, params } => {
                let from = self.cluster.edge_index(&from);
                let msg = LinkMsg::LinkOffer {
                    room: room.clone(),
                    link,
                    params,
                    from,
                };
                (e.home_of(&room), msg)
            }
            NodeMsg::LinkClosed { room } => {
                let from = self.cluster.edge_index(&from);
                let msg = LinkMsg::LinkClosed {
                    room: room.clone(),
                    from,
                };
                (e.home_of(&room), msg)
            }
            NodeMsg::Admitted {
                id,
                room,
                mode,
                joined,
                publishers,
            } => {
                let msg = LinkMsg::Admitted {
                    id,
                    room,
                    home: link::REMOTE_HOME,
                    mode,
                    joined,
                    publishers: publishers
                        .into_iter()
                        .map(|p| Publisher {
                            info: p.info,
                            tracks: p.tracks.iter().map(TrackInfo::from).collect(),
                        })
                        .collect(),
                };
                (e.worker_of(id), msg)
            }
            NodeMsg::Refused { id, code, message } => {
                (e.worker_of(id), LinkMsg::Refused { id, code, message })
            }
            NodeMsg::Signal { id, msg } => (e.worker_of(id), LinkMsg::Signal { id, msg }),
            NodeMsg::TrackAdded {
                room,
                publisher,
                track,
            } => {
                let msg = LinkMsg::TrackAdded {
                    room: room.clone(),
                    publisher,
                    track: TrackInfo::from(&track),
                };
                (e.home_of(&room), msg)
            }
            NodeMsg::TrackRemoved {
                room,
                publisher,
                mid,
            } => {
                let msg = LinkMsg::TrackRemoved {
                    room: room.clone(),
                    publisher,
                    mid: Mid::from(mid.as_str()),
                };
                (e.home_of(&room), msg)
            }
            NodeMsg::PublisherLeft { room, publisher } => {
                let msg = LinkMsg::PublisherLeft {
                    room: room.clone(),
                    publisher,
                };
                (e.home_of(&room), msg)
            }
            NodeMsg::LinkAnswer { room, link, params } => {
                let msg = LinkMsg::LinkAnswer {
                    room: room.clone(),
                    link,
                    params,
                };
                (e.home_of(&room), msg)
            }
        };
        match worker {
            Some(w) => e.deliver(w, msg),
            None => debug!(from, "message from another node for nobody here dropped"),
        }
        None
    }
}

/// The room a message for a room's origin concerns.
fn room_of(msg: &LinkMsg) -> Option<&str> {
    match msg {
        LinkMsg::AdmitViewer { room, .. }
        | LinkMsg::ViewerLeft { room, .. }
        | LinkMsg::Chat { room, .. }
        | LinkMsg::ChatHistory { room, .. }
        | LinkMsg::LinkOffer { room, .. }
        | LinkMsg::LinkClosed { room, .. } => Some(room),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every message survives JSON both ways with its type tag.
    #[test]
    fn node_messages_round_trip() {
        let params = LinkParams {
            ufrag: "u".into(),
            pass: "p".into(),
            fingerprint: "sha-256 AB".into(),
            candidates: vec!["10.0.0.1:4000".parse().unwrap()],
        };
        let msgs = vec![
            NodeMsg::LinkOffer {
                room: "r".into(),
                link: 5,
                params: params.clone(),
            },
            NodeMsg::Signal {
                id: 3,
                msg: ServerMsg::Viewers { count: 2 },
            },
            NodeMsg::TrackAdded {
                room: "r".into(),
                publisher: PeerInfo::joining(9, "cam".into()),
                track: WireTrack {
                    mid: "1".into(),
                    video: true,
                    source: Source::Screen,
                    simulcast: true,
                },
            },
        ];
        for m in msgs {
            let env = Envelope {
                from: "a".into(),
                msg: m,
            };
            let json = serde_json::to_string(&env).unwrap();
            let back: Envelope = serde_json::from_str(&json).unwrap();
            assert_eq!(serde_json::to_string(&back).unwrap(), json);
        }
    }
}

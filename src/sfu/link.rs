//! What media workers tell each other when one room's viewers are spread over several
//! workers (see `core::mirror`).
//!
//! The room's home worker owns its membership and its publishers; a mirror worker
//! serves some of its viewers. The home sends each of a publisher's packets once to
//! every mirror, which writes it to its own viewers, so one room's fan-out uses every
//! core. Everything else a mirror needs (the room's tracks, who is in it, messages for
//! its viewers) comes the same way, in order; keyframe requests and departures go back.
#![warn(clippy::disallowed_methods)] // Sans-IO: see clippy.toml

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use str0m::format::PayloadParams;
use str0m::media::{KeyframeRequestKind, MediaKind, Mid, Rid};
use str0m::rtp::{ExtensionValues, RtpPacket};

use crate::signaling::protocol::{ErrorCode, Mode, PeerId, PeerInfo, ServerMsg, Source};

/// Worker indexes from here on name no local worker but another node (a cluster, see
/// `crate::cluster`): their messages go to the cluster task, which carries them over
/// NATS. [`REMOTE_HOME`], on an edge node: the room's origin, whichever node it is
/// (the cluster task knows it by room). [`edge_index`]: on an origin, one edge node.
pub const REMOTE: usize = 1 << 20;

/// On an edge node: the home of a room whose origin is another node.
pub const REMOTE_HOME: usize = REMOTE;

/// The index by which an origin's workers know edge node number `slot`.
pub fn edge_index(slot: usize) -> usize {
    REMOTE + 1 + slot
}

/// The edge node an index names, if it names one.
pub fn edge_slot(index: usize) -> Option<usize> {
    index.checked_sub(REMOTE + 1)
}

/// Whether a worker index names another node.
pub fn is_remote(index: usize) -> bool {
    index >= REMOTE
}

/// ICE and DTLS parameters of one side of a relay link between two nodes.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LinkParams {
    pub ufrag: String,
    pub pass: String,
    /// The DTLS certificate's fingerprint, `sha-256 AB:CD:…`.
    pub fingerprint: String,
    /// Host candidates (the origin's media addresses; the edge's link socket).
    pub candidates: Vec<SocketAddr>,
}

/// One message between two workers.
#[derive(Debug)]
pub enum LinkMsg {
    // Mirror to home.
    /// A viewer asks to join `room` (opening it in `mode` if it is gone); `from` is
    /// the worker that serves it.
    AdmitViewer {
        id: PeerId,
        room: String,
        name: String,
        mode: Mode,
        /// It gave a valid host token (it gets into a locked room).
        host_token: bool,
        from: usize,
    },
    /// A viewer served by the sender is gone.
    ViewerLeft { room: String, id: PeerId },
    /// A viewer served by the sender writes in `room`'s chat.
    Chat {
        room: String,
        from: PeerId,
        text: String,
    },
    /// A viewer served by the sender needs `room`'s chat so far (it resumed).
    ChatHistory { room: String, id: PeerId },
    /// Edge to origin: open the relay link of `room` (`link` is the edge's peer id for
    /// it); `from` is the edge.
    LinkOffer {
        room: String,
        link: PeerId,
        params: LinkParams,
        from: usize,
    },
    /// Edge to origin: the edge closed its link of `room` (its last viewer left).
    LinkClosed { room: String, from: usize },
    /// A viewer needs a keyframe of the publisher's track.
    KeyframeRequest {
        publisher: PeerId,
        mid: Mid,
        layer: Option<Rid>,
        kind: KeyframeRequestKind,
    },

    // Home to mirror.
    /// The viewer is in: its `joined` message and the room's publishers so far.
    Admitted {
        id: PeerId,
        room: String,
        home: usize,
        mode: Mode,
        joined: ServerMsg,
        publishers: Vec<Publisher>,
    },
    /// The viewer may not join.
    Refused {
        id: PeerId,
        code: ErrorCode,
        message: String,
    },
    /// A signaling message for a viewer the receiver serves.
    Signal { id: PeerId, msg: ServerMsg },
    /// A publisher of `room` has a new track.
    TrackAdded {
        room: String,
        publisher: PeerInfo,
        track: TrackInfo,
    },
    /// A publisher stopped sending one track (its m-line no longer sends).
    TrackRemoved {
        room: String,
        publisher: PeerId,
        mid: Mid,
    },
    /// A publisher left `room`: its tracks end.
    PublisherLeft { room: String, publisher: PeerId },
    /// Origin to edge: the origin's side of the relay link of `room`.
    LinkAnswer {
        room: String,
        link: PeerId,
        params: LinkParams,
    },
    /// One packet of a publisher's track.
    Rtp {
        publisher: PeerId,
        packet: TrackPacket,
    },
}

impl LinkMsg {
    /// Packets may be dropped when a worker falls behind; nothing else may.
    pub fn is_media(&self) -> bool {
        matches!(self, LinkMsg::Rtp { .. })
    }
}

/// A publisher of a room and its tracks, as a mirror needs them.
#[derive(Debug, Clone)]
pub struct Publisher {
    pub info: PeerInfo,
    pub tracks: Vec<TrackInfo>,
}

/// One of a publisher's tracks.
#[derive(Debug, Clone, Copy)]
pub struct TrackInfo {
    pub mid: Mid,
    pub kind: MediaKind,
    pub source: Source,
    pub simulcast: bool,
}

/// An RTP packet of a publisher's track with what forwarding it needs: where it came
/// from (m-line, simulcast layer, codec) and the fields every receiver's copy keeps.
/// The payload is shared, never copied.
#[derive(Debug, Clone)]
pub struct TrackPacket {
    pub mid: Mid,
    pub rid: Option<Rid>,
    pub params: PayloadParams,
    pub ssrc: u32,
    pub seq_no: u64,
    pub rtp_time: u32,
    pub marker: bool,
    /// Header extensions carried over to receivers (audio level, orientation).
    pub ext: ExtensionValues,
    /// When the server received it.
    pub received: Instant,
    pub payload: Arc<[u8]>,
}

impl TrackPacket {
    /// A packet str0m received on m-line `mid` (layer `rid`, codec `params`), with
    /// the header extensions receivers keep.
    pub(crate) fn from_rtp(
        mid: Mid,
        rid: Option<Rid>,
        params: PayloadParams,
        pkt: RtpPacket,
    ) -> Self {
        TrackPacket {
            mid,
            rid,
            params,
            ssrc: *pkt.header.ssrc,
            seq_no: *pkt.seq_no,
            rtp_time: pkt.header.timestamp,
            marker: pkt.header.marker,
            ext: ExtensionValues {
                audio_level: pkt.header.ext_vals.audio_level,
                voice_activity: pkt.header.ext_vals.voice_activity,
                video_orientation: pkt.header.ext_vals.video_orientation,
                ..Default::default()
            },
            received: pkt.timestamp,
            payload: pkt.payload,
        }
    }
}

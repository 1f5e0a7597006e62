//! The media engine's logic, Sans-IO: rooms, peers, negotiation, and forwarding of RTP
//! between peers. It takes datagrams, signaling messages and the time as inputs and
//! produces datagrams to send and signaling messages to deliver; it never touches a
//! socket or reads the clock, so tests drive it directly. [`super::engine`] is the I/O
//! shell around it.
//!
//! Flow of a packet: a datagram is routed to its peer (STUN by the server's ufrag,
//! everything else by the source address learnt from STUN), fed to that peer's `Rtc`,
//! and the `Rtc` is drained. Drained events go to one queue; handling an `RtpPacket`
//! writes it to every subscriber's down stream (rewritten PT, sequence number,
//! timestamp) and drains each subscriber in turn.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rand::Rng;
use rustc_hash::FxHashMap;
use str0m::bwe::{Bitrate, BweKind};
use str0m::change::{SdpAnswer, SdpOffer};
use str0m::config::DtlsCert;
use str0m::format::Codec;
use str0m::ice::IceCreds;
use str0m::media::{Direction, KeyframeRequestKind, MediaKind, Mid, Rid};
use str0m::net::{Protocol, Receive, Transmit};
use str0m::rtp::{ExtensionValues, RtpPacket, RtpWrite, Vp8Descriptor};
use str0m::{Candidate, Event, IceConnectionState, Input, PacerReason, Reason, Rtc};
use tracing::{debug, info, warn};

mod mirror;

use super::codec;
use super::demux::{self, Kind};
use super::link::{LinkMsg, TrackPacket};
use super::peer::{nackable, DownState, DownTrack, Peer, SessionKind, TrackKey, UpTrack};
use super::simulcast::{Inputs, Quality};
use crate::room::{JoinError, Rooms};
use crate::signaling::protocol::{
    valid_name, ClientMsg, ErrorCode, LegStats, Mode, Path, PeerId, PeerInfo, Role, ServerMsg,
};

/// Settings of the media engine.
#[derive(Debug, Clone)]
pub struct SfuConfig {
    /// Addresses put in the server's ICE host candidates (advertised IP, media port).
    pub candidates: Vec<SocketAddr>,
    /// Most participants in one room.
    pub room_capacity: usize,
    /// Most viewers in one room (0: no limit).
    pub viewer_capacity: usize,
    /// Rooms that need a token, with their tokens.
    pub room_tokens: HashMap<String, String>,
    /// Which media worker this engine is: the first character of every server ICE
    /// ufrag names it, so the receive task routes STUN without asking anyone.
    pub worker: usize,
}

/// Most media workers (one ufrag character names each).
pub const MAX_WORKERS: usize = TOKEN_CHARS.len();

/// The media worker a server ICE ufrag belongs to (see [`SfuConfig::worker`]).
pub fn ufrag_worker(ufrag: &str) -> Option<usize> {
    let first = *ufrag.as_bytes().first()?;
    TOKEN_CHARS.iter().position(|&c| c == first)
}

/// How often simulcast layer choices are revisited (moving up needs time to pass).
const LAYER_TICK: Duration = Duration::from_millis(500);

/// Deadlines this close are run at once rather than waited for (the I/O shell's timer
/// cannot wait less than a millisecond anyway).
const TIMER_RESOLUTION: Duration = Duration::from_millis(1);

/// Passes over the timer queue in one `handle_timeout` (see there).
const TIMER_PASSES: usize = 4;

/// How long a receiver's pacer may wait for the turn that re-opens its gate after
/// sending a packet it was just given (see `run_timers`).
const GATE_DEFER: Duration = Duration::from_millis(5);

/// How long after str0m sends a peer padding or a resend (a bandwidth probe) every
/// turn its pacer asks for is given at once.
const PROBE_QUIET: Duration = Duration::from_secs(1);

/// Most timeouts given to one `Rtc` in one turn (its share of the worker's time).
const MAX_TIMEOUTS_PER_TURN: usize = 64;

/// Packets and age kept for answering NACKs per video stream (see `tune_send_stream`).
const RTX_CACHE_PACKETS: usize = 128;
const RTX_CACHE_AGE: Duration = Duration::from_secs(1);

/// Video packets kept per send stream for retransmission (see `build_rtc`).
const SEND_BUFFER_VIDEO: usize = 256;

/// The bandwidth estimate towards a receiver before any feedback: what a LAN carries.
const BWE_START: Bitrate = Bitrate::kbps(5_000);

/// What the engine wants the I/O shell to do.
#[derive(Debug)]
pub enum Output {
    /// Send a datagram.
    Transmit(Transmit),
    /// Deliver a signaling message to a participant's WebSocket.
    Signal(PeerId, ServerMsg),
    /// The participant is gone from the engine: close its WebSocket.
    Close(PeerId),
    /// A message for another media worker (a room spread over several, see `mirror`).
    Link(usize, LinkMsg),
    /// The answer to a WHEP offer that waited for its room's home to admit the player
    /// ([`Sfu::whep_mirrored`]).
    HttpAnswer(PeerId, HttpAnswer),
}

/// Counters of what the engine dropped, for logs and metrics.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counters {
    /// Datagrams that belonged to no peer (unknown ufrag or address, or garbage).
    pub unroutable: u64,
    /// Datagrams a peer's `Rtc` refused or could not parse.
    pub rejected: u64,
    /// RTP packets forwarded to a receiver.
    pub forwarded: u64,
    /// RTP payload bytes of those packets (headers and SRTP overhead not included).
    pub forwarded_bytes: u64,
}

/// A room as `/api/rooms` shows it.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RoomSnapshot {
    pub name: String,
    pub mode: Mode,
    pub capacity: usize,
    pub participants: Vec<ParticipantSnapshot>,
    /// Receive-only viewers (browsers with `role=viewer`, WHEP players).
    pub viewers: Vec<ParticipantSnapshot>,
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
}

pub struct Sfu {
    cfg: SfuConfig,
    /// One DTLS certificate for all peers: generating a key per peer costs milliseconds.
    dtls_cert: DtlsCert,
    rooms: Rooms,
    peers: FxHashMap<PeerId, Peer>,
    /// Server ufrag → peer, to route STUN requests.
    by_ufrag: HashMap<String, PeerId>,
    /// Remote address → peer, learnt from STUN, to route DTLS and SRTP.
    by_addr: FxHashMap<SocketAddr, PeerId>,
    /// WHIP/WHEP resource id (the last part of its URL) → peer.
    by_resource: HashMap<String, PeerId>,
    transmits: VecDeque<Transmit>,
    events: VecDeque<(PeerId, Event)>,
    out: VecDeque<Output>,
    /// Peers whose `Rtc` failed; removed once the current event is handled.
    doomed: Vec<(PeerId, &'static str)>,
    counters: Counters,
    /// When simulcast layer choices are next revisited (while any peer exists).
    next_layer_tick: Option<Instant>,
    /// Peers' `Rtc` deadlines, earliest first (one entry per peer, see `schedule`).
    timers: BinaryHeap<Reverse<(Instant, PeerId)>>,
    /// When the earliest deferred keyframe request is due.
    keyframes_due: Option<Instant>,
    /// Home side: rooms with viewers on other workers → (worker, its viewers of the room).
    mirrors: HashMap<String, Vec<(usize, usize)>>,
    /// Mirror side: rooms homed on another worker that this one serves viewers of →
    /// their home.
    mirrored: HashMap<String, usize>,
    /// Mirror side: viewers waiting for their room's home to admit them.
    pending_admits: HashMap<PeerId, PendingAdmit>,
}

/// Mirror side: a viewer waiting for its room's home to admit it.
struct PendingAdmit {
    name: String,
    /// A WHEP player's offer (and whether it negotiates transport-wide CC), answered
    /// once admitted; `None` for a browser viewer.
    whep: Option<(SdpOffer, bool)>,
}

/// The resource id and SDP answer of a new WHIP/WHEP session, or why it was refused.
pub type HttpAnswer = Result<(String, String), (ErrorCode, String)>;

impl Sfu {
    pub fn new(cfg: SfuConfig) -> Self {
        let dtls_cert = str0m::crypto::from_feature_flags()
            .dtls_provider
            .generate_certificate()
            .expect("the crypto backend generates a DTLS certificate");
        Sfu {
            rooms: Rooms::new(cfg.room_capacity, cfg.viewer_capacity),
            next_layer_tick: None,
            timers: BinaryHeap::new(),
            keyframes_due: None,
            mirrors: HashMap::new(),
            mirrored: HashMap::new(),
            pending_admits: HashMap::new(),
            cfg,
            dtls_cert,
            peers: FxHashMap::default(),
            by_ufrag: HashMap::new(),
            by_addr: FxHashMap::default(),
            by_resource: HashMap::new(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            out: VecDeque::new(),
            doomed: Vec::new(),
            counters: Counters::default(),
        }
    }

    pub fn counters(&self) -> Counters {
        self.counters
    }

    /// Participants and viewers this worker serves.
    pub fn peer_count(&self) -> usize {
        self.peers.values().filter(|p| p.kind.is_local()).count()
    }

    /// Rooms whose home is this worker.
    pub fn room_count(&self) -> usize {
        self.rooms.len().saturating_sub(self.mirrored.len())
    }

    /// Every room with the participants this worker serves and the server's
    /// measurements, for `/api/rooms` (the engine merges a room spread over workers).
    pub fn rooms_snapshot(&self) -> Vec<RoomSnapshot> {
        let snap = |id: &PeerId| {
            let p = self.peers.get(id).filter(|p| p.kind.is_local())?;
            Some(ParticipantSnapshot {
                info: p.info.clone(),
                role: p.role,
                relay_connected: p.connected_at.is_some(),
                up_tracks: p.up.len(),
                down_tracks: p
                    .down
                    .values()
                    .filter(|d| matches!(d.state, DownState::Open(_)))
                    .count(),
                relay: p.connected_at.map(|_| p.stats.current().clone()),
            })
        };
        self.rooms
            .names()
            .into_iter()
            .map(|name| {
                let mode = self.rooms.mode(&name).unwrap_or_default();
                RoomSnapshot {
                    capacity: self.rooms.capacity(mode),
                    participants: self.rooms.members(&name).iter().filter_map(snap).collect(),
                    viewers: self.rooms.viewers(&name).iter().filter_map(snap).collect(),
                    name,
                    mode,
                }
            })
            .collect()
    }

    /// Next output, datagrams first.
    pub fn poll_output(&mut self) -> Option<Output> {
        if let Some(t) = self.transmits.pop_front() {
            return Some(Output::Transmit(t));
        }
        self.out.pop_front()
    }

    /// When [`Sfu::handle_timeout`] must next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let layers = self.next_layer_tick.filter(|_| !self.peers.is_empty());
        [
            layers,
            self.keyframes_due,
            self.timers.peek().map(|t| t.0 .0),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// A participant asks to join a room.
    pub fn join(
        &mut self,
        id: PeerId,
        room: &str,
        name: &str,
        role: Role,
        mode: Mode,
        token: Option<&str>,
    ) {
        let Some((room, name)) = self.admissible(id, room, name, token) else {
            return;
        };
        let (mode, others) = match self.rooms.join(&room, id, mode, role) {
            Ok(joined) => joined,
            Err(e) => {
                info!(id, room, "join refused: {e}");
                self.signal(id, ServerMsg::error(ErrorCode::RoomFull, refusal(&room, e)));
                self.out.push_back(Output::Close(id));
                return;
            }
        };
        let ufrag = self.new_ufrag();
        let info = PeerInfo::joining(id, name);
        info!(id, room, name = info.name, ?mode, ?role, "joined");
        let peers = others
            .iter()
            .filter_map(|o| self.peers.get(o).map(|p| p.info.clone()))
            .collect();
        self.signal(
            id,
            ServerMsg::Joined {
                id,
                room: room.clone(),
                peers,
                capacity: self.rooms.capacity(mode),
                mode,
            },
        );
        match role {
            Role::Participant => {
                for o in self.audience(&room, id) {
                    self.signal(o, ServerMsg::PeerJoined { peer: info.clone() });
                }
                let count = self.rooms.viewers(&room).len();
                if count > 0 {
                    self.signal(id, ServerMsg::Viewers { count });
                }
            }
            Role::Viewer => self.announce_viewers(&room),
        }
        self.by_ufrag.insert(ufrag.clone(), id);
        self.peers
            .insert(id, Peer::new(id, info, role, room, ufrag));
        self.next_layer_tick.get_or_insert(Instant::now());
    }

    /// A viewer this worker serves asks to join a room whose home is worker `home`
    /// (its viewers are spread over workers): the home decides, and answers with
    /// [`LinkMsg::Admitted`] or [`LinkMsg::Refused`].
    pub fn join_mirrored(
        &mut self,
        home: usize,
        id: PeerId,
        room: &str,
        name: &str,
        mode: Mode,
        token: Option<&str>,
    ) {
        let Some((room, name)) = self.admissible(id, room, name, token) else {
            return;
        };
        debug!(id, room, home, "viewer waits for its room's home");
        self.ask_home(home, id, room, name, mode, None);
    }

    /// Mirror side: viewer `id` waits while worker `home` decides whether `room` takes
    /// it; `whep` is a WHEP player's offer, answered once admitted.
    fn ask_home(
        &mut self,
        home: usize,
        id: PeerId,
        room: String,
        name: String,
        mode: Mode,
        whep: Option<(SdpOffer, bool)>,
    ) {
        let pending = PendingAdmit {
            name: name.clone(),
            whep,
        };
        self.pending_admits.insert(id, pending);
        let from = self.cfg.worker;
        let msg = LinkMsg::AdmitViewer {
            id,
            room,
            name,
            mode,
            from,
        };
        self.out.push_back(Output::Link(home, msg));
    }

    /// The checks of a join that need no room: not joined yet, valid names, the
    /// room's token. Returns the trimmed room and name, or refuses.
    fn admissible(
        &mut self,
        id: PeerId,
        room: &str,
        name: &str,
        token: Option<&str>,
    ) -> Option<(String, String)> {
        if self.peers.contains_key(&id) || self.pending_admits.contains_key(&id) {
            self.signal(id, ServerMsg::error(ErrorCode::BadState, "already joined"));
            return None;
        }
        if !valid_name(room) || !valid_name(name) {
            self.signal(
                id,
                ServerMsg::error(
                    ErrorCode::BadName,
                    "room and name must be 1 to 64 characters, without control characters",
                ),
            );
            self.out.push_back(Output::Close(id));
            return None;
        }
        let (room, name) = (room.trim().to_string(), name.trim().to_string());
        if !self.token_ok(&room, token) {
            info!(id, room, "join refused: token");
            self.signal(
                id,
                ServerMsg::error(
                    ErrorCode::Forbidden,
                    format!("room \"{room}\" needs its token"),
                ),
            );
            self.out.push_back(Output::Close(id));
            return None;
        }
        Some((room, name))
    }

    /// Whether `token` opens `room` (rooms without a token are open).
    pub fn token_ok(&self, room: &str, token: Option<&str>) -> bool {
        match self.cfg.room_tokens.get(room) {
            None => true,
            Some(t) => token.is_some_and(|given| given.as_bytes() == t.as_bytes()),
        }
    }

    /// Everyone in `room` but `id`: participants and viewers.
    fn audience(&self, room: &str, id: PeerId) -> Vec<PeerId> {
        self.rooms
            .members(room)
            .iter()
            .chain(self.rooms.viewers(room))
            .copied()
            .filter(|o| *o != id)
            .collect()
    }

    /// Tells the participants of `room` how many viewers watch.
    fn announce_viewers(&mut self, room: &str) {
        let count = self.rooms.viewers(room).len();
        for o in self.rooms.members(room).to_vec() {
            self.signal(o, ServerMsg::Viewers { count });
        }
    }

    /// A signaling message from a joined participant.
    pub fn handle_signal(&mut self, now: Instant, id: PeerId, msg: ClientMsg) {
        if !self.peers.contains_key(&id) {
            return;
        }
        match msg {
            ClientMsg::Join { .. } => {
                self.signal(id, ServerMsg::error(ErrorCode::BadState, "already joined"))
            }
            ClientMsg::Offer { sdp } => self.handle_offer(now, id, &sdp),
            ClientMsg::Answer { sdp } => self.handle_answer(now, id, &sdp),
            ClientMsg::Candidate { candidate, .. } => self.handle_candidate(id, &candidate),
            ClientMsg::Media { audio, video } => self.handle_media_state(id, audio, video),
            ClientMsg::Direct { to, signal } => {
                let same_room =
                    self.peers.get(&to).map(|p| &p.room) == self.peers.get(&id).map(|p| &p.room);
                if to == id || !same_room {
                    self.signal(
                        id,
                        ServerMsg::error(
                            ErrorCode::NoSuchPeer,
                            format!("no participant {to} in your room"),
                        ),
                    );
                } else {
                    self.signal(to, ServerMsg::Direct { from: id, signal });
                }
            }
            ClientMsg::Path { path, reason } => self.handle_path(id, path, reason),
            ClientMsg::Render { peer, width, .. } => {
                if let Some(p) = self.peers.get_mut(&id) {
                    for ((src, _), d) in p.down.iter_mut() {
                        if *src == peer && d.kind == MediaKind::Video {
                            d.render_width = (width > 0).then_some(width);
                        }
                    }
                }
                self.choose_layers(now, id, "the video's size on screen changed");
            }
            ClientMsg::Quality { quality } => {
                if let Some(p) = self.peers.get_mut(&id) {
                    p.quality = quality;
                }
                self.choose_layers(now, id, "quality preference changed");
            }
            ClientMsg::Leave => self.leave(now, id, "left"),
        }
        self.process(now);
    }

    /// The participant's connection is gone (WebSocket closed or timed out).
    pub fn leave(&mut self, now: Instant, id: PeerId, reason: &'static str) {
        let Some(mut peer) = self.peers.remove(&id) else {
            if self.pending_admits.remove(&id).is_some() {
                // Gone before its room's home answered; the answer is turned down then.
                self.out.push_back(Output::Close(id));
            }
            return;
        };
        if peer.kind.is_local() {
            info!(id, room = peer.room, reason, "left");
        }
        self.by_ufrag.remove(&peer.ufrag);
        self.by_resource.retain(|_, p| *p != id);
        for a in &peer.addrs {
            if self.by_addr.get(a) == Some(&id) {
                self.by_addr.remove(a);
            }
        }
        self.rooms.leave(&peer.room, id);
        match peer.role {
            // The home tells the viewers about a mirrored publisher.
            _ if matches!(peer.kind, SessionKind::Mirror { .. }) => {}
            Role::Participant => {
                for o in self.audience(&peer.room, id) {
                    self.signal(
                        o,
                        ServerMsg::PeerLeft {
                            id,
                            reason: reason.to_string(),
                        },
                    );
                }
            }
            Role::Viewer => self.announce_viewers(&peer.room),
        }
        let mut touched: Vec<PeerId> = Vec::new();
        // Its up tracks: every receiver stops its down track.
        for (mid, up) in &peer.up {
            for s in &up.subscribers {
                let Some(sub) = self.peers.get_mut(s) else {
                    continue;
                };
                if !touched.contains(s) {
                    touched.push(*s);
                }
                let key = (id, *mid);
                let Some(d) = sub.down.get_mut(&key) else {
                    continue;
                };
                d.source_gone = true;
                if sub.kind == SessionKind::Whep {
                    // Its m-line is free for the next publisher.
                    sub.down.remove(&key);
                    continue;
                }
                match d.state {
                    DownState::ToOpen => {
                        sub.down.remove(&key);
                    }
                    DownState::Open(m) => d.state = DownState::ToStop(m),
                    _ => {}
                }
            }
        }
        // Its down tracks: the publishers forget it.
        for (src, mid) in peer.down.keys() {
            if let Some(up) = self.peers.get_mut(src).and_then(|p| p.up.get_mut(mid)) {
                up.subscribers.retain(|s| *s != id);
            }
        }
        for o in touched {
            if self
                .peers
                .get(&o)
                .is_some_and(|p| p.kind == SessionKind::Whep)
            {
                self.attach_fixed(now, o);
            } else {
                self.negotiate(o);
            }
        }
        if let Some(rtc) = peer.rtc.as_mut() {
            // Say goodbye on the media path too (RTCP BYE, DTLS close_notify).
            if rtc.close().is_ok() {
                let mut ignored = VecDeque::new();
                let _ = peer.drain(&mut self.transmits, &mut ignored);
            }
        }
        self.left_spread_room(&peer);
        if peer.kind.is_local() {
            self.out.push_back(Output::Close(id));
        }
    }

    /// A datagram arrived on the media port from `src`, addressed to `dst`.
    pub fn handle_datagram(&mut self, now: Instant, src: SocketAddr, dst: SocketAddr, buf: &[u8]) {
        let kind = demux::classify(buf);
        let id = match kind {
            Kind::Stun => demux::stun_local_ufrag(buf).and_then(|u| self.by_ufrag.get(u)),
            Kind::Dtls | Kind::Rtp => self.by_addr.get(&src),
            Kind::Other => None,
        };
        let Some(&id) = id else {
            self.counters.unroutable += 1;
            debug!(%src, len = buf.len(), "dropped unroutable datagram");
            return;
        };
        let Some(peer) = self.peers.get_mut(&id) else {
            self.counters.unroutable += 1;
            return;
        };
        let Some(rtc) = peer.rtc.as_mut() else {
            self.counters.unroutable += 1;
            return;
        };
        let Ok(recv) = Receive::new(Protocol::Udp, src, dst, buf) else {
            self.counters.rejected += 1;
            return;
        };
        let input = Input::Receive(now, recv);
        if !rtc.accepts(&input) {
            self.counters.rejected += 1;
            return;
        }
        if let Err(e) = rtc.handle_input(input) {
            // A bad datagram must not end a call: whatever is fatal shows in poll_output.
            self.counters.rejected += 1;
            debug!(id, %src, "datagram refused: {e}");
        }
        if kind == Kind::Stun && !peer.addrs.contains(&src) {
            peer.addrs.push(src);
            self.by_addr.insert(src, id);
        }
        self.drain(id);
        self.process(now);
    }

    /// Time has passed: drive every `Rtc` whose timer expired and send deferred
    /// keyframe requests.
    pub fn handle_timeout(&mut self, now: Instant) {
        // What is due now, in a few passes: running a peer's timers can queue it again
        // for now, and the passes keep the work of one call bounded.
        for _ in 0..TIMER_PASSES {
            let mut due = Vec::new();
            while let Some(&Reverse((t, id))) = self.timers.peek() {
                if t > now {
                    break;
                }
                self.timers.pop();
                due.push((t, id));
            }
            if due.is_empty() {
                break;
            }
            self.run_due(now, due);
        }
        if self.keyframes_due.is_some_and(|t| t <= now) {
            self.keyframes_due = None;
            let mut deferred = Vec::new();
            for p in self.peers.values_mut() {
                for (mid, up) in p.up.iter_mut() {
                    for (rid, throttle) in up.keyframes.iter_mut() {
                        if throttle.poll(now) {
                            deferred.push((p.id, *mid, *rid));
                        }
                        if let Some(t) = throttle.poll_timeout() {
                            self.keyframes_due = Some(self.keyframes_due.map_or(t, |d| d.min(t)));
                        }
                    }
                }
            }
            for (id, mid, rid) in deferred {
                self.send_keyframe_request(id, mid, rid, KeyframeRequestKind::Pli);
            }
        }
        if self.next_layer_tick.is_some_and(|t| t <= now) {
            self.next_layer_tick = Some(now + LAYER_TICK);
            let ids: Vec<PeerId> = self.peers.keys().copied().collect();
            for id in ids {
                self.choose_layers(now, id, "bandwidth estimate");
            }
        }
        self.process(now);
    }

    fn signal(&mut self, id: PeerId, msg: ServerMsg) {
        match self.peers.get(&id).map(|p| p.kind) {
            // A viewer served by another worker: that worker delivers it.
            Some(SessionKind::Remote { worker }) => self
                .out
                .push_back(Output::Link(worker, LinkMsg::Signal { id, msg })),
            // A mirror's stand-in for a publisher: the home talks to it.
            Some(SessionKind::Mirror { .. }) => {}
            _ => self.out.push_back(Output::Signal(id, msg)),
        }
    }

    /// A peer's `Rtc`. `bwe`: estimate the bandwidth towards it (only useful when it
    /// sends transport-wide CC feedback; without feedback the estimate never moves).
    fn build_rtc(&self, now: Instant, ufrag: &str, bwe: bool) -> Rtc {
        let mut cfg = Rtc::builder()
            .set_ice_lite(true)
            .set_rtp_mode(true)
            .set_local_ice_credentials(IceCreds {
                ufrag: ufrag.to_string(),
                pass: random_token(24),
            })
            .set_dtls_cert(self.dtls_cert.clone())
            .clear_codecs()
            .enable_opus(true, false)
            .enable_vp8(true)
            .enable_h264(true)
            .set_stats_interval(Some(Duration::from_secs(1)))
            // Each video send stream keeps this many packets for retransmission (and as
            // its send queue). str0m's default of 1000 costs about 430 bytes a slot per
            // receiver; 256 is about a second of 2.5 Mbit/s video, plenty for LAN round
            // trips.
            .set_send_buffer_video(SEND_BUFFER_VIDEO);
        if bwe {
            // Bandwidth estimation towards each browser picks its simulcast layers; it
            // only probes once a desired bitrate is set (see choose_layers). It starts
            // at what a LAN carries, so receivers start on a good layer.
            cfg = cfg.enable_bwe(Some(BWE_START));
        }
        let mut rtc = cfg.build(now);
        for addr in &self.cfg.candidates {
            match Candidate::host(*addr, "udp") {
                Ok(c) => {
                    rtc.add_local_candidate(c);
                }
                Err(e) => warn!(%addr, "unusable candidate address: {e}"),
            }
        }
        rtc
    }

    fn handle_offer(&mut self, now: Instant, id: PeerId, sdp: &str) {
        let offer = match SdpOffer::from_sdp_string(sdp) {
            Ok(o) => o,
            Err(e) => {
                self.signal(
                    id,
                    ServerMsg::error(ErrorCode::BadSdp, format!("invalid SDP offer: {e}")),
                );
                return;
            }
        };
        // Used only if the offer restarts ICE (see below).
        let restart_ufrag = self.new_ufrag();
        let fresh = self.peers.get(&id).is_some_and(|p| p.rtc.is_none());
        if fresh {
            let ufrag = self.peers[&id].ufrag.clone();
            let bwe = offers_twcc(sdp);
            let rtc = self.build_rtc(now, &ufrag, bwe);
            if let Some(p) = self.peers.get_mut(&id) {
                p.rtc = Some(rtc);
                p.bwe = bwe;
            }
        }
        let Some(peer) = self.peers.get_mut(&id) else {
            return;
        };
        // Glare: the browser's offer wins; str0m drops our pending offer, so the tracks
        // in it go back to waiting for the next one.
        if peer.pending_offer.take().is_some() {
            for d in peer.down.values_mut() {
                d.state = match d.state {
                    DownState::Negotiating(_) => DownState::ToOpen,
                    DownState::Stopping(m) => DownState::ToStop(m),
                    s => s,
                };
            }
            peer.down
                .retain(|_, d| !(d.state == DownState::ToOpen && d.source_gone));
        }
        let rtc = peer.rtc.as_mut().expect("created above");
        let answer = match rtc.sdp_api().accept_offer(offer) {
            Ok(a) => a,
            Err(e) => {
                if fresh {
                    peer.rtc = None;
                }
                self.signal(
                    id,
                    ServerMsg::error(ErrorCode::BadSdp, format!("cannot accept the offer: {e}")),
                );
                return;
            }
        };
        let first = !peer.answered;
        peer.answered = true;
        let mut sdp = answer.to_sdp_string();
        // A remote ICE restart gives the server new credentials. str0m picks them at
        // random; ours must name this worker (the receive task routes STUN by the
        // ufrag's first character), so they are replaced, in the answer too.
        let creds = rtc.direct_api().local_ice_credentials();
        if creds.ufrag != peer.ufrag {
            debug!(id, "ICE restart");
            let ours = IceCreds {
                ufrag: restart_ufrag,
                pass: random_token(24),
            };
            // Random tokens, so every occurrence is theirs (ice-ufrag, ice-pwd, and the
            // candidates' ufrag extension).
            sdp = sdp
                .replace(&creds.ufrag, &ours.ufrag)
                .replace(&creds.pass, &ours.pass);
            rtc.direct_api().set_local_ice_credentials(ours.clone());
            let old = std::mem::replace(&mut peer.ufrag, ours.ufrag.clone());
            self.by_ufrag.remove(&old);
            self.by_ufrag.insert(ours.ufrag, id);
        }
        self.signal(id, ServerMsg::Answer { sdp });
        self.drain(id);
        // MediaAdded events of this offer subscribe the others to the new up tracks.
        self.process(now);
        if first {
            // The newcomer receives everything already published in the room.
            let room = self.peers[&id].room.clone();
            let tracks: Vec<(TrackKey, MediaKind)> = self
                .rooms
                .members(&room)
                .iter()
                .filter(|o| **o != id)
                .filter_map(|o| self.peers.get(o))
                .flat_map(|p| p.up.iter().map(move |(mid, u)| ((p.id, *mid), u.kind)))
                .collect();
            // (a viewer gets the same tracks; it has no up tracks of its own)
            for (key, kind) in tracks {
                self.subscribe(id, key, kind);
            }
        }
        self.negotiate(id);
    }

    fn handle_answer(&mut self, now: Instant, id: PeerId, sdp: &str) {
        let answer = match SdpAnswer::from_sdp_string(sdp) {
            Ok(a) => a,
            Err(e) => {
                self.signal(
                    id,
                    ServerMsg::error(ErrorCode::BadSdp, format!("invalid SDP answer: {e}")),
                );
                return;
            }
        };
        let Some(peer) = self.peers.get_mut(&id) else {
            return;
        };
        let (Some(pending), Some(rtc)) = (peer.pending_offer.take(), peer.rtc.as_mut()) else {
            self.signal(
                id,
                ServerMsg::error(ErrorCode::BadState, "answer without a pending offer"),
            );
            return;
        };
        if let Err(e) = rtc.sdp_api().accept_answer(pending, answer) {
            // The offer is void; its changes wait for the next one.
            for d in peer.down.values_mut() {
                d.state = match d.state {
                    DownState::Negotiating(_) => DownState::ToOpen,
                    DownState::Stopping(m) => DownState::ToStop(m),
                    s => s,
                };
            }
            self.signal(
                id,
                ServerMsg::error(ErrorCode::BadSdp, format!("cannot accept the answer: {e}")),
            );
            self.drain(id);
            return;
        }
        let mut opened = Vec::new();
        let mut stopped = Vec::new();
        peer.down.retain(|key, d| match d.state {
            DownState::Negotiating(m) if d.source_gone => {
                d.state = DownState::ToStop(m);
                true
            }
            DownState::Negotiating(m) => {
                d.state = DownState::Open(m);
                if d.kind == MediaKind::Video {
                    opened.push((*key, m));
                }
                true
            }
            DownState::Stopping(m) => {
                stopped.push(m);
                false
            }
            _ => true,
        });
        for m in stopped {
            peer.stats.forget(m);
        }
        if let Some(rtc) = peer.rtc.as_mut() {
            for (_, mid) in &opened {
                tune_send_stream(rtc, *mid);
            }
        }
        self.drain(id);
        // A new receiver needs a keyframe to start decoding.
        for ((src, mid), _) in opened {
            self.request_keyframe(now, src, mid, None, KeyframeRequestKind::Fir);
        }
        self.choose_layers(now, id, "new track");
        self.negotiate(id);
    }

    fn handle_candidate(&mut self, id: PeerId, candidate: &str) {
        let line = candidate.trim();
        if line.is_empty() {
            return;
        }
        let Some(rtc) = self.peers.get_mut(&id).and_then(|p| p.rtc.as_mut()) else {
            return;
        };
        // ICE-lite needs no remote candidates (the browser's checks reveal its address),
        // but they help when given. mDNS names cannot be parsed and are skipped.
        match Candidate::from_sdp_string(line) {
            Ok(c) => {
                rtc.add_remote_candidate(c);
                self.drain(id);
            }
            Err(e) => debug!(id, "skipped remote candidate {line:?}: {e}"),
        }
    }

    fn handle_path(&mut self, id: PeerId, path: Path, reason: String) {
        let Some(peer) = self.peers.get_mut(&id) else {
            return;
        };
        let reason: String = reason.chars().take(200).collect();
        info!(id, ?path, reason, "receives on");
        peer.info.path = Some(path);
        let room = peer.room.clone();
        for o in self.others(&room, id) {
            self.signal(
                o,
                ServerMsg::PeerPath {
                    id,
                    path,
                    reason: reason.clone(),
                },
            );
        }
    }

    /// Members of `room` other than `id`.
    fn others(&self, room: &str, id: PeerId) -> Vec<PeerId> {
        self.rooms
            .members(room)
            .iter()
            .copied()
            .filter(|o| *o != id)
            .collect()
    }

    fn handle_media_state(&mut self, id: PeerId, audio: bool, video: bool) {
        let Some(peer) = self.peers.get_mut(&id) else {
            return;
        };
        peer.info.audio = audio;
        peer.info.video = video;
        let room = peer.room.clone();
        let others = self.others(&room, id);
        for o in others {
            self.signal(o, ServerMsg::PeerMedia { id, audio, video });
        }
    }

    /// Gives everyone else in the publisher's room its new track `mid`.
    fn offer_track(&mut self, now: Instant, publisher: PeerId, mid: Mid, kind: MediaKind) {
        let Some(room) = self.peers.get(&publisher).map(|p| p.room.clone()) else {
            return;
        };
        for o in self.audience(&room, publisher) {
            match self.peers.get(&o).map(|p| p.kind) {
                Some(SessionKind::Browser) => {
                    self.subscribe(o, (publisher, mid), kind);
                    self.negotiate(o);
                }
                Some(SessionKind::Whep) => self.attach_fixed(now, o),
                _ => {}
            }
        }
    }

    /// Makes `sub` a receiver of the track `key`.
    fn subscribe(&mut self, sub: PeerId, key: TrackKey, kind: MediaKind) {
        if sub == key.0 {
            return;
        }
        let Some(up) = self
            .peers
            .get_mut(&key.0)
            .and_then(|p| p.up.get_mut(&key.1))
        else {
            return;
        };
        if !up.subscribers.contains(&sub) {
            up.subscribers.push(sub);
        }
        let Some(peer) = self.peers.get_mut(&sub) else {
            return;
        };
        let start_seq = rand::rng().random_range(1..30_000);
        peer.down
            .entry(key)
            .or_insert_with(|| DownTrack::new(kind, start_seq));
    }

    /// Sends the server's offer for pending track changes, unless an exchange is
    /// already under way (one at a time; the answer triggers the next).
    fn negotiate(&mut self, id: PeerId) {
        let Some(peer) = self.peers.get_mut(&id) else {
            return;
        };
        if !peer.answered || peer.pending_offer.is_some() || peer.kind != SessionKind::Browser {
            return;
        }
        let Some(rtc) = peer.rtc.as_mut() else {
            return;
        };
        if !peer
            .down
            .values()
            .any(|d| matches!(d.state, DownState::ToOpen | DownState::ToStop(_)))
        {
            return;
        }
        let mut api = rtc.sdp_api();
        let mut keys: Vec<&TrackKey> = peer.down.keys().collect();
        // Stable m-line order: by publisher, then its mid.
        keys.sort();
        let keys: Vec<TrackKey> = keys.into_iter().copied().collect();
        for key in keys {
            let d = peer.down.get_mut(&key).expect("key from the map");
            match d.state {
                DownState::ToOpen => {
                    let mid = api.add_media(
                        d.kind,
                        Direction::SendOnly,
                        Some(key.0.to_string()),
                        Some(format!("{}-{}", key.0, key.1)),
                        None,
                    );
                    d.state = DownState::Negotiating(mid);
                }
                DownState::ToStop(mid) => {
                    api.stop_media(mid);
                    d.state = DownState::Stopping(mid);
                }
                _ => {}
            }
        }
        match api.apply() {
            Some((offer, pending)) => {
                peer.pending_offer = Some(pending);
                let sdp = offer.to_sdp_string();
                self.signal(id, ServerMsg::Offer { sdp });
            }
            None => {
                // Nothing changed for str0m (e.g. m-lines already stopped).
                peer.down
                    .retain(|_, d| !matches!(d.state, DownState::Stopping(_)));
            }
        }
        self.drain(id);
    }

    /// Drains a peer's `Rtc`; a failing one is scheduled for removal.
    fn drain(&mut self, id: PeerId) {
        self.drain_output(id);
        self.schedule(id);
    }

    /// Takes what a peer's `Rtc` has to send and report, and when it next wants time.
    fn drain_output(&mut self, id: PeerId) {
        let Some(peer) = self.peers.get_mut(&id) else {
            return;
        };
        if let Err(e) = peer.drain(&mut self.transmits, &mut self.events) {
            warn!(id, "media connection failed: {e}");
            self.doomed.push((id, "error"));
        }
    }

    /// Queues a peer's next timeout in the engine's timer queue.
    fn schedule(&mut self, id: PeerId) {
        let Some(peer) = self.peers.get_mut(&id) else {
            return;
        };
        // One queued entry per peer, at or before its Rtc's deadline: an entry that
        // comes due early is re-queued at the real deadline (see handle_timeout).
        if let Some(t) = peer.next_timeout {
            if peer.timer_queued.is_none_or(|q| t < q) {
                peer.timer_queued = Some(t);
                self.timers.push(Reverse((t, id)));
            }
        }
    }

    /// Runs the timers of peers whose queue entries came due.
    fn run_due(&mut self, now: Instant, due: Vec<(Instant, PeerId)>) {
        for (t, id) in due {
            let Some(peer) = self.peers.get_mut(&id) else {
                continue;
            };
            if peer.timer_queued != Some(t) {
                // Superseded by an earlier entry, which has run (or is queued).
                continue;
            }
            peer.timer_queued = None;
            match peer.next_timeout {
                Some(due) if due <= now => {}
                // The Rtc's deadline moved later since this entry was queued.
                Some(later) => {
                    peer.timer_queued = Some(later);
                    self.timers.push(Reverse((later, id)));
                    continue;
                }
                None => continue,
            }
            self.run_timers(now, id, None);
        }
    }

    /// Gives a peer's `Rtc` the time, and again for as long as it asks for a timeout
    /// within the timer's resolution. str0m's pacer releases one packet per timeout
    /// and asks for the next "immediately" (1 µs later): without this, a burst of N
    /// packets (a keyframe) would take N rounds of the worker's loop, at least 1 ms
    /// each (the timer's resolution), and with many receivers the loop falls behind
    /// the video for good.
    ///
    /// `written`: the SSRC of the stream a packet was just written to (`fan_out`). The
    /// pacer asks for that immediate turn after every packet it sends, only to re-open
    /// its gate for the next one. When the written packet went out alone, with no probe
    /// padding or resend around, that turn is left to the next written packet's, which
    /// runs it anyway, or to `GATE_DEFER` later: one `Rtc` timeout per forwarded packet
    /// and receiver instead of two. Anything else the peer receives (a NACK, feedback)
    /// asks for the turn again and gets it at once.
    fn run_timers(&mut self, now: Instant, id: PeerId, written: Option<u32>) {
        // str0m ignores a timeout earlier than the latest time it was given, and the
        // turns below run ahead of `now` by a microsecond each.
        let mut at = self
            .peers
            .get(&id)
            .and_then(|p| p.rtc_time)
            .map_or(now, |t| t.max(now));
        for turn in 0..MAX_TIMEOUTS_PER_TURN {
            let Some(peer) = self.peers.get_mut(&id) else {
                return;
            };
            let Some(rtc) = peer.rtc.as_mut() else {
                return;
            };
            if rtc_is_probing(rtc.last_timeout_reason()) {
                peer.probing_until = Some(now + PROBE_QUIET);
            }
            if let Err(e) = rtc.handle_input(Input::Timeout(at)) {
                debug!(id, "timeout input failed: {e}");
            }
            peer.rtc_time = Some(at);
            let first = self.transmits.len();
            self.drain_output(id);
            if let (0, Some(ssrc)) = (turn, written) {
                self.defer_gate(now, id, ssrc, first);
            }
            self.schedule(id);
            match self.peers.get(&id).and_then(|p| p.next_timeout) {
                // Time given to str0m only moves forward.
                Some(t) if t <= now + TIMER_RESOLUTION => {
                    at = if t > at {
                        t
                    } else {
                        at + Duration::from_micros(1)
                    }
                }
                _ => return,
            }
        }
    }

    /// See `run_timers`: the datagrams from `first` on are what the turn that sent the
    /// packet written to `ssrc` produced.
    fn defer_gate(&mut self, now: Instant, id: PeerId, ssrc: u32, first: usize) {
        let Some(peer) = self.peers.get_mut(&id) else {
            return;
        };
        let Some(reason) = peer.rtc.as_ref().map(|r| r.last_timeout_reason()) else {
            return;
        };
        let alone = sent_alone(self.transmits.range(first..), ssrc);
        if !alone {
            // Padding (a bandwidth probe, whose turns must keep their timing) or a resend.
            peer.probing_until = Some(now + PROBE_QUIET);
        }
        let quiet = peer.probing_until.is_none_or(|t| t <= now);
        if alone && quiet && reason == Reason::Pacer(PacerReason::Immediate) {
            if let Some(t) = peer.next_timeout {
                peer.next_timeout = Some(t.max(now + GATE_DEFER));
            }
        }
    }

    /// Handles queued events until none are left.
    fn process(&mut self, now: Instant) {
        loop {
            if let Some((id, event)) = self.events.pop_front() {
                self.handle_event(now, id, event);
                continue;
            }
            if let Some((id, reason)) = self.doomed.pop() {
                if self.peers.contains_key(&id) {
                    self.signal(
                        id,
                        ServerMsg::error(ErrorCode::MediaFailed, "the media connection failed"),
                    );
                    self.leave(now, id, reason);
                }
                continue;
            }
            break;
        }
    }

    fn handle_event(&mut self, now: Instant, id: PeerId, event: Event) {
        match event {
            Event::RtpPacket(pkt) => self.forward(now, id, pkt),
            Event::KeyframeRequest(req) => {
                let Some(peer) = self.peers.get(&id) else {
                    return;
                };
                let source = peer
                    .down
                    .iter()
                    .find(|(_, d)| d.state == DownState::Open(req.mid))
                    .map(|(k, d)| (*k, d.layer));
                if let Some(((src, mid), layer)) = source {
                    self.request_keyframe(now, src, mid, layer, req.kind);
                }
            }
            Event::MediaAdded(m) => {
                let Some(peer) = self.peers.get_mut(&id) else {
                    return;
                };
                if peer.kind == SessionKind::Whep {
                    // The player's m-lines appear once it is connected: bind them.
                    if m.direction.is_sending() {
                        peer.fixed_mids.push((m.mid, m.kind));
                        self.attach_fixed(now, id);
                    }
                    return;
                }
                if !m.direction.is_receiving()
                    || peer.up.contains_key(&m.mid)
                    || peer.role == Role::Viewer
                {
                    return;
                }
                let simulcast = m
                    .simulcast
                    .as_ref()
                    .is_some_and(|s| s.recv.len() > 1 || s.send.len() > 1);
                debug!(id, mid = %m.mid, kind = ?m.kind, simulcast, "up track");
                peer.up.insert(m.mid, UpTrack::new(m.kind, simulcast));
                self.offer_track(now, id, m.mid, m.kind);
                self.mirror_track(id, m.mid);
            }
            Event::Connected => {
                if let Some(p) = self.peers.get_mut(&id) {
                    p.connected_at = Some(now);
                    info!(id, "media connected");
                }
            }
            Event::IceConnectionStateChange(IceConnectionState::Disconnected)
                if self.peers.contains_key(&id) =>
            {
                self.signal(
                    id,
                    ServerMsg::error(
                        ErrorCode::MediaFailed,
                        "no media traffic from you for 15 seconds",
                    ),
                );
                self.leave(now, id, "timeout");
            }
            Event::Closed => self.leave(now, id, "left"),
            Event::MediaIngressStats(s) => {
                if let Some(p) = self.peers.get_mut(&id) {
                    let kind = p.up.get(&s.mid).map(|u| u.kind);
                    p.stats.on_ingress(&s, kind);
                }
            }
            Event::MediaEgressStats(s) => {
                if let Some(p) = self.peers.get_mut(&id) {
                    p.stats.on_egress(&s);
                }
            }
            Event::EgressBitrateEstimate(BweKind::Twcc { estimate, .. }) => {
                if let Some(p) = self.peers.get_mut(&id) {
                    debug!(id, estimate = estimate.as_f64(), "bandwidth estimate");
                    p.estimate_bps = Some(estimate.as_f64());
                    self.choose_layers(now, id, "bandwidth estimate");
                }
            }
            Event::PeerStats(s) => {
                if let Some(p) = self.peers.get_mut(&id) {
                    let stats = p.stats.on_peer(&s).clone();
                    self.signal(id, ServerMsg::Stats { stats });
                }
            }
            _ => {}
        }
    }

    /// A WHIP publisher (RFC 9725) offers to publish into `room`. Returns the resource
    /// id for its URL and the SDP answer.
    pub fn whip(
        &mut self,
        now: Instant,
        id: PeerId,
        room: &str,
        token: Option<&str>,
        offer: &str,
    ) -> Result<(String, String), (ErrorCode, String)> {
        self.http_session(now, id, room, token, offer, SessionKind::Whip)
    }

    /// A WHEP player offers to receive `room`'s current publishers. Returns the
    /// resource id for its URL and the SDP answer.
    pub fn whep(
        &mut self,
        now: Instant,
        id: PeerId,
        room: &str,
        token: Option<&str>,
        offer: &str,
    ) -> Result<(String, String), (ErrorCode, String)> {
        self.http_session(now, id, room, token, offer, SessionKind::Whep)
    }

    /// Ends the WHIP/WHEP session `resource`; false when there is none.
    pub fn end_resource(&mut self, now: Instant, resource: &str) -> bool {
        let Some(id) = self.by_resource.get(resource).copied() else {
            return false;
        };
        self.leave(now, id, "left");
        self.process(now);
        true
    }

    fn http_session(
        &mut self,
        now: Instant,
        id: PeerId,
        room: &str,
        token: Option<&str>,
        offer: &str,
        kind: SessionKind,
    ) -> HttpAnswer {
        let (room, offer, twcc) = self.check_http_offer(room, token, offer)?;
        self.rooms
            .join(&room, id, Mode::Relay, http_role(kind))
            .map_err(|e| (ErrorCode::RoomFull, e.to_string()))?;
        self.open_http_session(now, id, room, offer, twcc, kind)
    }

    /// A WHEP player served by this worker for a room homed on worker `home`: the
    /// request is checked here, the home admits the player (the viewer cap and the
    /// room's mode are its to judge), and the answer follows as
    /// [`Output::HttpAnswer`].
    pub fn whep_mirrored(
        &mut self,
        home: usize,
        id: PeerId,
        room: &str,
        token: Option<&str>,
        offer: &str,
    ) -> Result<(), (ErrorCode, String)> {
        let (room, offer, twcc) = self.check_http_offer(room, token, offer)?;
        if self.peers.contains_key(&id) || self.pending_admits.contains_key(&id) {
            return Err((ErrorCode::BadState, "already joined".into()));
        }
        debug!(id, room, home, "WHEP player waits for its room's home");
        let name = "WHEP player".to_string();
        self.ask_home(home, id, room, name, Mode::Relay, Some((offer, twcc)));
        Ok(())
    }

    /// The checks of a WHIP/WHEP request that need no room: the room's name and token,
    /// the offer. Returns the trimmed room, the parsed offer, and whether it
    /// negotiates transport-wide CC (which the bandwidth estimate needs).
    fn check_http_offer(
        &self,
        room: &str,
        token: Option<&str>,
        offer: &str,
    ) -> Result<(String, SdpOffer, bool), (ErrorCode, String)> {
        let room = room.trim().to_string();
        if !valid_name(&room) {
            return Err((ErrorCode::BadName, "invalid room name".into()));
        }
        if !self.token_ok(&room, token) {
            return Err((
                ErrorCode::Forbidden,
                format!("room \"{room}\" needs its token"),
            ));
        }
        let twcc = offers_twcc(offer);
        let offer = SdpOffer::from_sdp_string(offer)
            .map_err(|e| (ErrorCode::BadSdp, format!("invalid SDP offer: {e}")))?;
        Ok((room, offer, twcc))
    }

    /// A WHIP/WHEP peer that has joined `room`: its `Rtc`, the SDP answer, and the
    /// resource that ends it. Leaves the room again if the offer cannot be accepted.
    fn open_http_session(
        &mut self,
        now: Instant,
        id: PeerId,
        room: String,
        offer: SdpOffer,
        twcc: bool,
        kind: SessionKind,
    ) -> HttpAnswer {
        let role = http_role(kind);
        let ufrag = self.new_ufrag();
        let mut rtc = self.build_rtc(now, &ufrag, twcc);
        let answer = match rtc.sdp_api().accept_offer(offer) {
            Ok(a) => a,
            Err(e) => {
                self.rooms.leave(&room, id);
                return Err((ErrorCode::BadSdp, format!("cannot accept the offer: {e}")));
            }
        };
        let name = match kind {
            SessionKind::Whip => "WHIP publisher",
            _ => "WHEP player",
        };
        let info = PeerInfo {
            path: Some(Path::Relay),
            ..PeerInfo::joining(id, name.into())
        };
        let mut peer = Peer::new(id, info.clone(), role, room.clone(), ufrag.clone());
        peer.kind = kind;
        peer.rtc = Some(rtc);
        peer.bwe = twcc;
        peer.answered = true;
        let resource = random_token(24);
        info!(id, room, ?kind, "HTTP media session");
        self.by_ufrag.insert(ufrag, id);
        self.by_resource.insert(resource.clone(), id);
        self.peers.insert(id, peer);
        self.next_layer_tick.get_or_insert(now);
        match role {
            Role::Participant => {
                for o in self.audience(&room, id) {
                    self.signal(o, ServerMsg::PeerJoined { peer: info.clone() });
                }
            }
            // A mirrored room's viewers are counted by its home.
            Role::Viewer if !self.mirrored.contains_key(&room) => self.announce_viewers(&room),
            Role::Viewer => {}
        }
        self.drain(id);
        self.process(now);
        if kind == SessionKind::Whep {
            self.attach_fixed(now, id);
            self.process(now);
        }
        Ok((resource, answer.to_sdp_string()))
    }

    /// WHEP: binds the room's publishers' tracks to the player's free m-lines (first
    /// publisher first, one track per m-line of the same kind).
    fn attach_fixed(&mut self, now: Instant, id: PeerId) {
        let Some(peer) = self.peers.get(&id) else {
            return;
        };
        let bound: Vec<Mid> = peer
            .down
            .values()
            .filter_map(|d| match d.state {
                DownState::Open(m) => Some(m),
                _ => None,
            })
            .collect();
        let taken: Vec<TrackKey> = peer.down.keys().copied().collect();
        let free: Vec<(Mid, MediaKind)> = peer
            .fixed_mids
            .iter()
            .filter(|(m, _)| !bound.contains(m))
            .copied()
            .collect();
        let room = peer.room.clone();
        let mut binds: Vec<(Mid, TrackKey, MediaKind)> = Vec::new();
        for (mid, kind) in free {
            let source = self
                .rooms
                .members(&room)
                .iter()
                .filter_map(|p| self.peers.get(p))
                .flat_map(|p| p.up.iter().map(move |(m, u)| ((p.id, *m), u.kind)))
                .find(|(key, k)| {
                    *k == kind && !taken.contains(key) && !binds.iter().any(|(_, b, _)| b == key)
                });
            if let Some((key, _)) = source {
                binds.push((mid, key, kind));
            }
        }
        for (mid, key, kind) in binds {
            let start_seq = rand::rng().random_range(1..30_000);
            let mut down = DownTrack::new(kind, start_seq);
            down.state = DownState::Open(mid);
            if let Some(p) = self.peers.get_mut(&id) {
                p.down.insert(key, down);
                if let (MediaKind::Video, Some(rtc)) = (kind, p.rtc.as_mut()) {
                    tune_send_stream(rtc, mid);
                }
            }
            if let Some(up) = self
                .peers
                .get_mut(&key.0)
                .and_then(|p| p.up.get_mut(&key.1))
            {
                if !up.subscribers.contains(&id) {
                    up.subscribers.push(id);
                }
            }
            debug!(id, src = key.0, %mid, "WHEP m-line bound");
            self.request_keyframe(now, key.0, key.1, None, KeyframeRequestKind::Fir);
        }
        self.choose_layers(now, id, "new track");
    }

    /// An RTP packet arrived from publisher `from`: it goes to every receiver here and
    /// once to each other worker that serves viewers of the room.
    fn forward(&mut self, now: Instant, from: PeerId, pkt: RtpPacket) {
        let Some(publisher) = self.peers.get_mut(&from) else {
            return;
        };
        let Some(rtc) = publisher.rtc.as_mut() else {
            return;
        };
        let Some((mid, rid)) = rtc
            .direct_api()
            .stream_rx(&pkt.header.ssrc)
            .map(|s| (s.mid(), s.rid()))
        else {
            return;
        };
        let Some(up) = publisher.up.get_mut(&mid) else {
            return;
        };
        let Some(params) = up.params(rtc, pkt.header.payload_type) else {
            return;
        };
        let packet = TrackPacket {
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
        };
        // (no hash of the room name per packet when no room here is spread)
        let links = match self.mirrors.is_empty() {
            true => None,
            false => self.mirrors.get(&publisher.room),
        };
        if let Some(links) = links {
            for &(worker, _) in links {
                let msg = LinkMsg::Rtp {
                    publisher: from,
                    packet: packet.clone(),
                };
                self.out.push_back(Output::Link(worker, msg));
            }
        }
        self.fan_out(now, from, &packet);
    }

    /// Writes one packet of publisher `from` to each of its receivers on this worker.
    fn fan_out(&mut self, now: Instant, from: PeerId, pkt: &TrackPacket) {
        let Some(up) = self
            .peers
            .get_mut(&from)
            .and_then(|p| p.up.get_mut(&pkt.mid))
        else {
            return;
        };
        let (mid, rid) = (pkt.mid, pkt.rid);
        let params = pkt.params;
        let codec = params.spec().codec;
        let clock_rate = params.spec().clock_rate.get();
        let keyframe_start =
            up.kind == MediaKind::Video && codec::starts_keyframe(codec, &pkt.payload);
        let simulcast = up.simulcast && rid.is_some();
        // Parsed once for all receivers; each renumbers its own copy.
        let vp8 = match (up.kind, codec) {
            (MediaKind::Video, Codec::Vp8) => Vp8Descriptor::parse(&pkt.payload).ok(),
            _ => None,
        };
        if let (true, Some(r)) = (simulcast, rid) {
            up.rates.on_packet(now, r, pkt.payload.len());
            if keyframe_start {
                if let Some(w) = codec::vp8_keyframe_width(&pkt.payload) {
                    up.rates.on_width(r, w);
                }
            }
        }
        let generation = pkt.ssrc;
        let subscribers = std::mem::take(&mut up.subscribers);
        let mut wants_keyframe: Vec<Option<Rid>> = Vec::new();
        let mut switched: Vec<(PeerId, Rid)> = Vec::new();
        for sub_id in &subscribers {
            let Some(sub) = self.peers.get_mut(sub_id) else {
                continue;
            };
            let Some(down) = sub.down.get_mut(&(from, mid)) else {
                continue;
            };
            let DownState::Open(down_mid) = down.state else {
                continue;
            };
            // str0m drops writes before DTLS is up; keep waiting for a keyframe until then.
            if sub.connected_at.is_none() {
                continue;
            }
            let Some(rtc) = sub.rtc.as_mut() else {
                continue;
            };
            if simulcast {
                // One layer per receiver: the current one, until the wanted one starts
                // with a keyframe (the decoder can only join a stream there).
                let target = down.selector.target();
                if rid == target && target != down.layer {
                    if keyframe_start {
                        down.layer = target;
                        if let Some(t) = target {
                            switched.push((*sub_id, t));
                        }
                    } else {
                        if !wants_keyframe.contains(&target) {
                            wants_keyframe.push(target);
                        }
                        if down.layer.is_none() {
                            continue;
                        }
                    }
                }
                if rid != down.layer {
                    continue;
                }
            } else if down.waiting_keyframe {
                if !keyframe_start {
                    if !wants_keyframe.contains(&None) {
                        wants_keyframe.push(None);
                    }
                    continue;
                }
                down.waiting_keyframe = false;
            }
            let Some(pt) = down.map_pt(rtc, down_mid, &params) else {
                continue;
            };
            let Some(rw) =
                down.rewriter
                    .rewrite(generation, pkt.seq_no, pkt.rtp_time, now, clock_rate)
            else {
                continue;
            };
            let mut write =
                RtpWrite::new(pt, rw.seq.into(), rw.ts, pkt.received, pkt.payload.clone())
                    .marker(pkt.marker)
                    .ext_vals(pkt.ext.clone())
                    .nackable(nackable(codec));
            if let Some(patch) = vp8.as_ref().and_then(|d| down.vp8.patch(generation, d)) {
                write = write.vp8_patch(patch);
            }
            let mut api = rtc.direct_api();
            let Some(tx) = api.stream_tx_by_mid(down_mid, None) else {
                continue;
            };
            let ssrc = *tx.ssrc();
            tx.write_rtp(write);
            self.counters.forwarded += 1;
            self.counters.forwarded_bytes += pkt.payload.len() as u64;
            // str0m sends a written packet on its pacer's next turn, a timeout: give
            // it now rather than poll for that deadline and queue it.
            let id = *sub_id;
            self.run_timers(now, id, Some(ssrc));
        }
        if let Some(up) = self.peers.get_mut(&from).and_then(|p| p.up.get_mut(&mid)) {
            // Subscribers added while forwarding (none today) would be lost otherwise.
            let added = std::mem::replace(&mut up.subscribers, subscribers);
            up.subscribers.extend(added);
        }
        for layer in wants_keyframe {
            self.request_keyframe(now, from, mid, layer, KeyframeRequestKind::Pli);
        }
        for (sub, layer) in switched {
            self.announce_layer(sub, from, mid, layer);
        }
    }

    /// Tells a receiver which layer of a publisher's video it now gets.
    fn announce_layer(&mut self, sub: PeerId, src: PeerId, mid: Mid, layer: Rid) {
        let Some(up) = self.peers.get(&src).and_then(|p| p.up.get(&mid)) else {
            return;
        };
        let layers = up.rates.active(Instant::now());
        let index = layers.iter().position(|l| l.rid == layer).unwrap_or(0);
        let reason = self
            .peers
            .get(&sub)
            .map(|p| match p.quality {
                Quality::High => "you asked for high quality".to_string(),
                Quality::Low => "you asked for low quality".to_string(),
                Quality::Auto if !p.bwe => "fits your screen".to_string(),
                Quality::Auto => match p.estimate_bps {
                    Some(e) => format!(
                        "fits your link (estimate {:.0} kbit/s) and screen",
                        e / 1000.0
                    ),
                    None => "starting small until your link is measured".to_string(),
                },
            })
            .unwrap_or_default();
        debug!(sub, src, %layer, index, "layer switch");
        self.signal(
            sub,
            ServerMsg::Layer {
                peer: src,
                rid: layer.to_string(),
                index,
                count: layers.len(),
                reason,
            },
        );
    }

    /// Revisits the simulcast layer of every video `id` receives; asks for a keyframe
    /// on each newly wanted layer and sets the bandwidth estimator's goals.
    fn choose_layers(&mut self, now: Instant, id: PeerId, why: &str) {
        let Some(peer) = self.peers.get(&id) else {
            return;
        };
        let keys: Vec<TrackKey> = peer
            .down
            .iter()
            .filter(|(_, d)| d.kind == MediaKind::Video && matches!(d.state, DownState::Open(_)))
            .map(|(k, _)| *k)
            .collect();
        // Without an estimate (no transport-wide CC feedback) only the screen and the
        // preference choose.
        let estimate = match peer.bwe {
            true => peer.estimate_bps,
            false => Some(f64::INFINITY),
        };
        let quality = peer.quality;
        let mut requests = Vec::new();
        let (mut min_bps, mut desired_bps) = (0.0, 0.0);
        for (src, mid) in keys {
            let Some(up) = self.peers.get(&src).and_then(|p| p.up.get(&mid)) else {
                continue;
            };
            if !up.simulcast {
                continue;
            }
            let layers = up.rates.active(now);
            let Some(down) = self
                .peers
                .get_mut(&id)
                .and_then(|p| p.down.get_mut(&(src, mid)))
            else {
                continue;
            };
            let before = down.selector.target();
            let target = down.selector.choose(
                now,
                Inputs {
                    layers: &layers,
                    estimate_bps: estimate,
                    render_width: down.render_width,
                    quality,
                },
            );
            if target != before && target != down.layer {
                debug!(id, src, ?target, why, "layer wanted");
                requests.push((src, mid, target));
            }
            // Keep probing towards the next layer up, so the estimate can show it fits.
            if let Some(i) = target.and_then(|t| layers.iter().position(|l| l.rid == t)) {
                min_bps += layers[i].bps;
                desired_bps += layers.get(i + 1).unwrap_or(&layers[i]).bps * 1.2;
            }
        }
        if desired_bps > 0.0 {
            if let Some(rtc) = self.peers.get_mut(&id).and_then(|p| p.rtc.as_mut()) {
                rtc.bwe().set_bitrate(
                    Bitrate::bps(min_bps as u64),
                    Bitrate::bps(desired_bps as u64),
                );
                self.drain(id);
            }
        }
        for (src, mid, layer) in requests {
            self.request_keyframe(now, src, mid, layer, KeyframeRequestKind::Pli);
        }
    }

    /// Asks the publisher of track (`src`, `mid`) for a keyframe on `layer`, throttled.
    fn request_keyframe(
        &mut self,
        now: Instant,
        src: PeerId,
        mid: Mid,
        layer: Option<Rid>,
        kind: KeyframeRequestKind,
    ) {
        let Some(up) = self.peers.get_mut(&src).and_then(|p| p.up.get_mut(&mid)) else {
            return;
        };
        if up.kind != MediaKind::Video {
            return;
        }
        // Without a layer on a simulcast track (a new receiver), ask every layer: the
        // receiver's layer is chosen from what arrives first.
        let layers: Vec<Option<Rid>> = if layer.is_none() && up.simulcast {
            up.rates.active(now).iter().map(|l| Some(l.rid)).collect()
        } else {
            vec![layer]
        };
        let mut send = Vec::new();
        for l in layers {
            let throttle = up.throttle(l);
            if throttle.request(now) {
                send.push(l);
            } else if let Some(t) = throttle.poll_timeout() {
                self.keyframes_due = Some(self.keyframes_due.map_or(t, |d| d.min(t)));
            }
        }
        for l in send {
            self.send_keyframe_request(src, mid, l, kind);
        }
    }

    fn send_keyframe_request(
        &mut self,
        src: PeerId,
        mid: Mid,
        layer: Option<Rid>,
        kind: KeyframeRequestKind,
    ) {
        let Some(peer) = self.peers.get_mut(&src) else {
            return;
        };
        if let SessionKind::Mirror { home } = peer.kind {
            let msg = LinkMsg::KeyframeRequest {
                publisher: src,
                mid,
                layer,
                kind,
            };
            self.out.push_back(Output::Link(home, msg));
            return;
        }
        let Some(rtc) = peer.rtc.as_mut() else {
            return;
        };
        let mut api = rtc.direct_api();
        let Some(rx) = api.stream_rx_by_mid(mid, layer) else {
            return;
        };
        debug!(src, %mid, ?layer, ?kind, "keyframe request");
        rx.request_keyframe(kind);
        self.drain(src);
    }
}

impl Sfu {
    /// A server ICE ufrag no other peer uses (STUN requests are routed by it).
    fn new_ufrag(&self) -> String {
        loop {
            let mut u = String::with_capacity(16);
            u.push(TOKEN_CHARS[self.cfg.worker % MAX_WORKERS] as char);
            u.push_str(&random_token(15));
            if !self.by_ufrag.contains_key(&u) {
                return u;
            }
        }
    }
}

/// Sets up the stream this server sends on `mid`:
/// - **Unpaced**: a forwarded packet goes out as soon as it arrives, as mediasoup and
///   Janus forward. The publisher's browser already paces its encoder's output, and a
///   relay cannot slow that encoder for one receiver: str0m's pacer (on with bandwidth
///   estimation, audio excepted) would hold video to a receiver's estimate and queue
///   the rest for up to 2 s, a picture seconds late or frozen after a layer switch. The
///   estimate still picks simulcast layers (`choose_layers`), and pacing costs a second
///   `Rtc` timeout round per packet and receiver.
/// - **A retransmission cache sized for a LAN**: str0m keeps up to 256 packets
///   (`SEND_BUFFER_VIDEO`) for 3 s, about 430 bytes a slot per receiver; 128 packets,
///   at most 1 s old, answer NACKs for half a second of 2.5 Mbit/s video, many round
///   trips on a LAN.
fn tune_send_stream(rtc: &mut Rtc, mid: Mid) {
    if let Some(tx) = rtc.direct_api().stream_tx_by_mid(mid, None) {
        // 0.15: str0m's default cap on the share of resends.
        tx.set_rtx_cache(RTX_CACHE_PACKETS, RTX_CACHE_AGE, Some(0.15));
        tx.set_unpaced(true);
    }
}

/// Whether str0m asked for this timeout to send probe padding.
fn rtc_is_probing(reason: Reason) -> bool {
    matches!(
        reason,
        Reason::Pacer(PacerReason::Probe1 | PacerReason::Probe2 | PacerReason::Padding)
    )
}

/// Whether `datagrams` (SRTP and SRTCP) hold exactly one RTP packet, on `ssrc`: a
/// written packet that went out alone, with no padding or resend (other SSRCs).
fn sent_alone<'a>(datagrams: impl Iterator<Item = &'a Transmit>, ssrc: u32) -> bool {
    let mut rtp = datagrams.filter_map(|t| rtp_ssrc(&t.contents));
    rtp.next() == Some(ssrc) && rtp.next().is_none()
}

/// The SSRC of an (S)RTP packet; `None` for RTCP (packet types 192-223, RFC 5761) and
/// anything else.
fn rtp_ssrc(b: &[u8]) -> Option<u32> {
    if b.len() < 12 || b[0] >> 6 != 2 || (192..=223).contains(&b[1]) {
        return None;
    }
    Some(u32::from_be_bytes([b[8], b[9], b[10], b[11]]))
}

/// The role of a WHIP (`Participant`) or WHEP (`Viewer`) peer in its room.
fn http_role(kind: SessionKind) -> Role {
    match kind {
        SessionKind::Whep => Role::Viewer,
        _ => Role::Participant,
    }
}

/// Why `room` refused a join, in words for the person joining.
fn refusal(room: &str, e: JoinError) -> String {
    match e {
        JoinError::Full(n) => format!("room \"{room}\" is full ({n} participants)"),
        JoinError::DirectFull => format!(
            "room \"{room}\" is full: it is a direct call, which takes two participants; \
             use another room in relay or auto mode for more"
        ),
        JoinError::ViewersFull(n) => format!("room \"{room}\" has its maximum of {n} viewers"),
        JoinError::DirectNoViewers => format!(
            "room \"{room}\" is a direct call between two devices: the server does not \
             carry its media, so it cannot be watched"
        ),
    }
}

/// Whether an SDP offer negotiates transport-wide congestion control feedback, which
/// the bandwidth estimate needs.
fn offers_twcc(sdp: &str) -> bool {
    sdp.contains("transport-wide-cc-extensions")
}

/// A random alphanumeric token (ICE credentials).
fn random_token(len: usize) -> String {
    let mut rng = rand::rng();
    (0..len)
        .map(|_| TOKEN_CHARS[rng.random_range(0..TOKEN_CHARS.len())] as char)
        .collect()
}

/// The characters of ICE credentials and resource ids.
const TOKEN_CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

#[cfg(test)]
mod tests {
    use super::*;

    fn datagram(bytes: Vec<u8>) -> Transmit {
        Transmit {
            proto: Protocol::Udp,
            source: "127.0.0.1:1".parse().unwrap(),
            destination: "127.0.0.1:2".parse().unwrap(),
            contents: bytes.into(),
        }
    }

    /// An (S)RTP packet on `ssrc`: version 2, payload type 96.
    fn rtp(ssrc: u32) -> Transmit {
        let mut b = vec![0x80, 96, 0, 1, 0, 0, 0, 1];
        b.extend_from_slice(&ssrc.to_be_bytes());
        b.extend_from_slice(&[0; 100]);
        datagram(b)
    }

    /// An SRTCP receiver report (packet type 201).
    fn rtcp() -> Transmit {
        datagram(vec![0x81, 201, 0, 7, 0, 0, 0, 9, 0, 0, 0, 1, 0, 0, 0, 0])
    }

    #[test]
    fn a_written_packet_sent_alone_is_recognised() {
        assert!(sent_alone([rtp(7)].iter(), 7));
        assert!(
            sent_alone([rtcp(), rtp(7), rtcp()].iter(), 7),
            "RTCP is not media"
        );
    }

    #[test]
    fn padding_resends_or_nothing_sent_are_not_alone() {
        assert!(!sent_alone([].iter(), 7), "the packet did not leave");
        assert!(
            !sent_alone([rtp(9)].iter(), 7),
            "padding or a resend on the RTX SSRC"
        );
        assert!(!sent_alone([rtp(9), rtp(7)].iter(), 7), "padding first");
        assert!(
            !sent_alone([rtp(7), rtp(9)].iter(), 7),
            "something else queued"
        );
        assert!(!sent_alone([rtp(7), rtp(7)].iter(), 7), "two packets");
    }

    #[test]
    fn only_rtp_has_an_ssrc() {
        assert_eq!(rtp_ssrc(&rtp(0xDEAD_BEEF).contents), Some(0xDEAD_BEEF));
        assert_eq!(rtp_ssrc(&rtcp().contents), None);
        assert_eq!(rtp_ssrc(&[0x80, 96, 0]), None, "too short");
        assert_eq!(rtp_ssrc(&[0x16; 40]), None, "DTLS");
    }
}

//! One media worker's share of the rooms, Sans-IO: its peers, their `Rtc`s, the rooms'
//! membership and the forwarding between peers. It takes datagrams, commands from
//! signaling, messages from other workers, the time and a seeded random generator as
//! inputs, and produces datagrams to send, messages to deliver and the next deadline;
//! it never touches a socket, reads the clock or draws from a global RNG, so a test
//! drives it on a fake clock ([`super::worker`] is the I/O shell around it).
//!
//! The concerns, one file each:
//! - [`route`]: which peer a datagram belongs to, and the addresses learnt from
//!   authenticated STUN.
//! - [`admit`]: joining and leaving, one `admit` for browsers, WHIP/WHEP sessions and
//!   viewers served by other workers.
//! - [`negotiate`]: SDP offers and answers, the down tracks they open and stop.
//! - [`fanout`]: forwarding a publisher's packets to its receivers, simulcast layers.
//! - [`hold`]: the packets of one read held back to its end, fanned out a track at a
//!   time.
//! - [`keyframes`]: keyframe requests to publishers, throttled.
//! - [`http`]: WHIP publishers and WHEP players.
//! - [`mirror`]: one room spread over several workers (home and mirrors).
//! - [`relay`]: one room spread over several nodes, a WebRTC link per edge node: the
//!   edge's side in [`relay_edge`], the origin's in [`relay_origin`].
//! - [`timers`]: every `Rtc`'s deadline in one queue.
//! - [`control`]: signaling messages from joined participants.
//! - [`chat`]: the rooms' text chat.
//! - [`host`]: the room's host: muting, removing, locking, handing the role over.
//! - [`expiry`]: media sessions that never connect are removed.
//! - [`snapshot`]: what `/api/rooms` and `/healthz` show.
//! - [`speaker`]: who is speaking in each room, from the packets' audio levels.
//! - [`screen`]: screen shares, one at a time per room unless it allows more.
//!
//! Every `Rtc` is driven by its peer's [`Driver`](super::driver::Driver): a change,
//! then a drain to `Output::Timeout`. Drained events land in one queue that
//! [`Shard::process`] works through, so a packet from a publisher is written to each
//! receiver (and each receiver drained) before the next input.
#![warn(clippy::disallowed_methods)] // Sans-IO: see clippy.toml

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rustc_hash::FxHashMap;
use str0m::bwe::BweKind;
use str0m::config::DtlsCert;
use str0m::ice::IceCreds;
use str0m::media::{MediaKind, Mid, Rid};
use str0m::net::Transmit;
use str0m::{Event, IceConnectionState, Rtc, RtcError};
use tracing::{debug, info, warn};

mod admit;
mod chat;
mod codecs;
mod control;
mod estimation;
mod expiry;
mod fanout;
mod hold;
mod host;
mod http;
mod keyframes;
mod layers;
mod mirror;
mod negotiate;
mod publish;
mod record;
mod relay;
mod relay_edge;
mod relay_origin;
mod route;
mod rtc;
mod screen;
mod snapshot;
mod speaker;
mod timers;

pub use http::HttpAnswer;
pub use record::RecordError;
pub use snapshot::{EdgePlace, ParticipantSnapshot, RoomPlace, RoomSnapshot};

use super::driver::Drained;
use super::link::LinkMsg;
use super::peer::{DownState, Peer, Served};
use crate::chat::ChatLimits;
use crate::room::{JoinError, Rooms};
use crate::signaling::protocol::{ErrorCode, PeerId, ServerMsg};
use route::Routes;
use timers::Timers;

/// Settings of one shard.
#[derive(Debug, Clone)]
pub struct ShardConfig {
    /// Addresses put in the server's ICE host candidates (advertised IP, media port).
    pub candidates: Vec<SocketAddr>,
    /// Passive ICE-TCP host candidates (advertised IP, HTTPS port); none when TCP
    /// media is off.
    pub tcp_candidates: Vec<SocketAddr>,
    /// Most participants in one room.
    pub room_capacity: usize,
    /// Most viewers in one room (0: no limit).
    pub viewer_capacity: usize,
    /// Rooms that need a token, with their tokens.
    pub room_tokens: HashMap<String, String>,
    /// The operator's token (`--operator-token`): given as `hostToken`, it makes a
    /// joiner the host of any room.
    pub operator_token: Option<String>,
    /// Which media worker this shard is: the first character of every server ICE
    /// ufrag names it, so the receive task routes STUN without asking anyone.
    pub worker: usize,
    /// Seeds the shard's random choices (ICE credentials, resource ids, first
    /// sequence numbers), so a test can replay a run.
    pub seed: u64,
    /// How long a media session may take to connect before it is removed.
    pub connect_timeout: Duration,
    /// Direct-call signals per second one participant may send (twice that at once).
    pub direct_rate: u32,
    /// The chat's limits, and whether viewers may write.
    pub chat: ChatLimits,
    /// Where recorded frames go (`None`: recording is off).
    pub record: Option<crate::record::RecordSink>,
    /// Estimate the bandwidth towards each receiver (`--no-bandwidth-estimation` turns
    /// it off: see [`Shard::build_rtc`]).
    pub bandwidth_estimation: bool,
}

/// Most media workers (one ufrag character names each).
pub const MAX_WORKERS: usize = TOKEN_CHARS.len();

/// The media worker a server ICE ufrag belongs to (see [`ShardConfig::worker`]).
pub fn ufrag_worker(ufrag: &str) -> Option<usize> {
    let first = *ufrag.as_bytes().first()?;
    TOKEN_CHARS.iter().position(|&c| c == first)
}

/// What the shard wants the I/O shell to do.
#[derive(Debug)]
pub enum Output {
    /// Send a datagram.
    Transmit(Transmit),
    /// Deliver a signaling message to a participant's WebSocket.
    Signal(PeerId, ServerMsg),
    /// The participant is gone from the shard: close its WebSocket.
    Close(PeerId),
    /// A message for another media worker (a room spread over several, see `mirror`).
    Link(usize, LinkMsg),
    /// The answer to a WHEP offer that waited for its room's home to admit the player
    /// ([`Shard::whep_mirrored`]).
    HttpAnswer(PeerId, HttpAnswer),
    /// DTLS and SRTP from `addr` belong to this shard (`true`), or no longer (`false`):
    /// an address a peer proved with an authenticated STUN request, for the receive
    /// task's routes.
    Route(SocketAddr, bool),
    /// Bind a UDP socket for relay link `PeerId` (this node an edge) and tell
    /// [`Shard::link_bound`] its address.
    BindLink(PeerId),
}

/// What the shard counted, for `/metrics` and tests.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ShardCounters {
    /// Datagrams that belonged to no peer (unknown ufrag or address, or garbage).
    pub unroutable: u64,
    /// Datagrams a peer's `Rtc` refused or could not parse.
    pub rejected: u64,
    /// STUN requests refused before reaching an `Rtc`: a wrong MESSAGE-INTEGRITY, a
    /// request replayed from another address, or an address another peer holds.
    pub stun_refused: u64,
    /// RTP packets forwarded to a receiver.
    pub forwarded: u64,
    /// RTP payload bytes of those packets (headers and SRTP overhead not included).
    pub forwarded_bytes: u64,
    /// Media sessions removed because they did not connect in time.
    pub connect_timeouts: u64,
    /// Direct-call signals refused: too many, or too large.
    pub direct_refused: u64,
    /// Chat messages posted, and those refused: over the rate, too long, from a viewer
    /// where viewers only read.
    pub chat_messages: u64,
    pub chat_refused_rate: u64,
    pub chat_refused_length: u64,
    pub chat_refused_viewer: u64,
    /// RTP packets (and their payload bytes) sent on relay links to edge nodes: each
    /// of a publisher's packets once per edge, whatever its number of viewers.
    pub relayed: u64,
    pub relayed_bytes: u64,
    /// `host` actions from participants that are not the host.
    pub not_host: u64,
    /// The host's `record` and `stopRecording` actions, and those refused (a direct
    /// room, a server that records nothing).
    pub host_recordings: u64,
    pub recordings_refused: u64,
    /// Timeouts given to peers' `Rtc`s (str0m's timers: RTCP, ICE, the pacer): the
    /// engine's work besides handling datagrams, kept well below one per forwarded
    /// packet and receiver.
    pub rtc_timeouts: u64,
}

/// One worker's share of the rooms.
pub struct Shard {
    cfg: ShardConfig,
    rng: StdRng,
    /// One DTLS certificate for all peers: generating a key per peer costs milliseconds.
    dtls_cert: DtlsCert,
    rooms: Rooms,
    peers: FxHashMap<PeerId, Peer>,
    routes: Routes,
    /// WHIP/WHEP resource id (the last part of its URL) → peer.
    by_resource: HashMap<String, PeerId>,
    /// What the `Rtc`s' drains produced: datagrams and events.
    drained: Drained,
    /// The fan-out under way, if any (see `fanout`).
    fanout: Option<Box<fanout::FanOut>>,
    /// Packets held back to the end of the read under way (see `hold`).
    held: hold::Held,
    /// Route changes for the receive task, handed out before any datagram so that the
    /// reply to a STUN request never overtakes the route its DTLS will need.
    routes_out: VecDeque<Output>,
    out: VecDeque<Output>,
    /// Peers whose `Rtc` failed; removed once the current event is handled.
    doomed: Vec<(PeerId, &'static str)>,
    counters: ShardCounters,
    timers: Timers,
    /// Home side: rooms with viewers on other workers → (worker, its viewers of the room).
    mirrors: HashMap<String, Vec<(usize, usize)>>,
    /// Mirror side: rooms homed on another worker that this one serves viewers of →
    /// their home.
    mirrored: HashMap<String, usize>,
    /// Mirror side: viewers waiting for their room's home to admit them.
    pending_admits: HashMap<PeerId, mirror::PendingAdmit>,
    /// Home side: who is speaking in each room where someone was heard lately.
    speakers: speaker::Speakers,
    /// Relay links to and from other nodes of a cluster, by their peer id (see
    /// `relay`).
    relays: HashMap<PeerId, relay::Link>,
    /// Edge side: each room's link from its origin.
    relay_in: HashMap<String, PeerId>,
    /// Edge side: links whose socket the worker is binding → their room.
    pending_links: HashMap<PeerId, String>,
    /// Edge side: link sockets' addresses → link (the origin's STUN responses carry
    /// no ufrag to find it by).
    relay_local: HashMap<SocketAddr, PeerId>,
    /// Origin side: each room's links to edges → (edge index, link).
    relay_out: HashMap<String, Vec<(usize, PeerId)>>,
    /// Home side: the recorders of the rooms being recorded.
    recorders: HashMap<String, crate::record::room::RoomRecorder>,
}

impl Shard {
    pub fn new(cfg: ShardConfig) -> Self {
        let dtls_cert = str0m::crypto::from_feature_flags()
            .dtls_provider
            .generate_certificate()
            .expect("the crypto backend generates a DTLS certificate");
        Shard {
            rooms: Rooms::new(cfg.room_capacity, cfg.viewer_capacity),
            rng: StdRng::seed_from_u64(cfg.seed),
            timers: Timers::default(),
            mirrors: HashMap::new(),
            mirrored: HashMap::new(),
            pending_admits: HashMap::new(),
            speakers: speaker::Speakers::default(),
            relays: HashMap::new(),
            relay_in: HashMap::new(),
            pending_links: HashMap::new(),
            relay_local: HashMap::new(),
            relay_out: HashMap::new(),
            recorders: HashMap::new(),
            cfg,
            dtls_cert,
            peers: FxHashMap::default(),
            routes: Routes::default(),
            by_resource: HashMap::new(),
            drained: Drained::default(),
            fanout: None,
            held: hold::Held::default(),
            routes_out: VecDeque::new(),
            out: VecDeque::new(),
            doomed: Vec::new(),
            counters: ShardCounters::default(),
        }
    }

    pub fn counters(&self) -> ShardCounters {
        self.counters
    }

    /// Next output: route changes, then datagrams, then the rest. A fan-out under way
    /// goes on here, a step each time the datagrams of the steps before have been
    /// handed out; the events behind it are handled once it ends.
    pub fn poll_output(&mut self) -> Option<Output> {
        loop {
            if let Some(r) = self.routes_out.pop_front() {
                return Some(r);
            }
            if let Some(t) = self.drained.transmits.pop_front() {
                return Some(Output::Transmit(t));
            }
            let Some(now) = self.fanout.as_ref().map(|f| f.now()) else {
                return self.out.pop_front();
            };
            // When that fan-out ends: the next track held from a read, else the
            // events that waited behind it.
            if !self.step_fan_out() && !self.fan_out_held() {
                self.process(now);
            }
        }
    }

    /// When [`Shard::handle_timeout`] must next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.poll_timeout(!self.peers.is_empty())
    }

    /// Handles queued events until none are left, or until one starts a fan-out that
    /// goes on in [`Shard::poll_output`] (and this with it, after).
    fn process(&mut self, now: Instant) {
        loop {
            if self.fan_out_pending(now) {
                return;
            }
            if let Some((id, event)) = self.drained.events.pop_front() {
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
            Event::RtpPacket(pkt) if self.is_relay(id) => self.relay_in_rtp(now, id, pkt),
            Event::RtpPacket(pkt) => self.forward(now, id, pkt),
            Event::KeyframeRequest(req) if self.is_relay(id) => {
                self.relay_keyframe_request(now, id, req)
            }
            Event::KeyframeRequest(req) => {
                let Some(local) = self.peers.get(&id).and_then(Peer::here) else {
                    return;
                };
                let source = local
                    .down
                    .iter()
                    .find(|(_, d)| d.state == DownState::Open(req.mid))
                    .map(|(k, d)| (*k, d.layer));
                if let Some(((src, mid), layer)) = source {
                    self.request_keyframe(now, src, mid, layer, req.kind);
                }
            }
            Event::MediaAdded(m) => self.publish(now, id, m),
            // The browser stopped sending on an m-line (a share ended, a camera moved
            // to another m-line): its receivers stop it. Or sends on one again.
            Event::MediaChanged(m) if !m.direction.is_receiving() => self.unpublish(now, id, m.mid),
            Event::MediaChanged(m) => self.republish(now, id, m.mid),
            Event::Connected => {
                if let Some(l) = self.peers.get_mut(&id).and_then(Peer::here_mut) {
                    l.connected_at = Some(now);
                    info!(id, "media connected");
                }
            }
            Event::IceConnectionStateChange(IceConnectionState::Disconnected) => {
                let Some(l) = self.peers.get(&id).and_then(Peer::here) else {
                    return;
                };
                let born = l.rtc.as_ref().map_or(now, |d| d.born());
                let Some(message) = expiry::ice_lost_message(now, born, l.connected_at) else {
                    // Not final: see `ice_lost_message`. The connect timeout
                    // (expiry.rs) removes a session that never connects.
                    debug!(
                        id,
                        after_ms = now.saturating_duration_since(born).as_millis() as u64,
                        "ICE disconnected before media connected (no usable candidate pair yet): waiting"
                    );
                    return;
                };
                info!(id, %message, "ICE disconnected: removed");
                self.signal(id, ServerMsg::error(ErrorCode::MediaFailed, message));
                self.leave(now, id, "timeout");
            }
            Event::Closed => self.leave(now, id, "left"),
            Event::MediaIngressStats(s) => {
                if let Some(p) = self.peers.get_mut(&id) {
                    let kind = p.up.get(&s.mid).map(|u| u.kind);
                    if let Some(l) = p.here_mut() {
                        l.stats.on_ingress(&s, kind);
                    }
                }
            }
            Event::MediaEgressStats(s) => {
                if let Some(l) = self.peers.get_mut(&id).and_then(Peer::here_mut) {
                    let kind = l
                        .down
                        .values()
                        .find(|d| matches!(d.state, DownState::Open(m) if m == s.mid))
                        .map(|d| d.kind);
                    l.stats.on_egress(&s, kind);
                }
            }
            Event::EgressBitrateEstimate(BweKind::Twcc { estimate, .. }) => {
                if let Some(l) = self.peers.get_mut(&id).and_then(Peer::here_mut) {
                    debug!(id, estimate = estimate.as_f64(), "bandwidth estimate");
                    l.estimate_bps = Some(estimate.as_f64());
                    self.choose_layers(now, id, "bandwidth estimate");
                }
            }
            Event::PeerStats(s) => {
                let forwarded = self.forwarded_layers(id);
                if let Some(l) = self.peers.get_mut(&id).and_then(Peer::here_mut) {
                    let stats = l.stats.on_peer(&s, &forwarded).clone();
                    self.signal(id, ServerMsg::Stats { stats });
                }
            }
            _ => {}
        }
    }

    /// The layer of each of `id`'s simulcast video tracks that its receivers get
    /// (the one most of them get), so its up-leg jitter is measured on that layer.
    fn forwarded_layers(&self, id: PeerId) -> Vec<(Mid, Option<Rid>)> {
        let Some(p) = self.peers.get(&id) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for (mid, up) in &p.up {
            if up.kind != MediaKind::Video || !up.simulcast {
                continue;
            }
            let mut counts: Vec<(Rid, usize)> = Vec::new();
            for s in &up.subscribers {
                let layer = self
                    .peers
                    .get(s)
                    .and_then(Peer::here)
                    .and_then(|l| l.down.get(&(id, *mid)))
                    .and_then(|d| d.layer);
                if let Some(rid) = layer {
                    match counts.iter_mut().find(|(r, _)| *r == rid) {
                        Some((_, n)) => *n += 1,
                        None => counts.push((rid, 1)),
                    }
                }
            }
            if let Some((rid, _)) = counts.into_iter().max_by_key(|(_, n)| *n) {
                out.push((*mid, Some(rid)));
            }
        }
        out
    }

    /// Queues a signaling message for a participant, wherever it is served.
    fn signal(&mut self, id: PeerId, msg: ServerMsg) {
        match self.peers.get(&id).map(|p| &p.served) {
            // A viewer served by another worker: that worker delivers it.
            Some(Served::Elsewhere { worker }) => {
                let worker = *worker;
                self.out
                    .push_back(Output::Link(worker, LinkMsg::Signal { id, msg }))
            }
            // A stand-in for a publisher served elsewhere: its home talks to it.
            Some(Served::StandIn { .. }) => {}
            _ => self.out.push_back(Output::Signal(id, msg)),
        }
    }

    /// Runs `change` on peer `id`'s `Rtc` and drains it; a failing `Rtc` dooms the
    /// peer. `None` when the peer has no `Rtc` here.
    fn with_rtc<R>(&mut self, id: PeerId, change: impl FnOnce(&mut Rtc) -> R) -> Option<R> {
        let local = self.peers.get_mut(&id)?.here_mut()?;
        let driver = local.rtc.as_mut()?;
        let r = match driver.mutate(&mut self.drained, change) {
            Ok(r) => Some(r),
            Err(e) => {
                self.fail(id, &e);
                None
            }
        };
        self.schedule(id);
        r
    }

    /// Peer `id`'s `Rtc` failed: the peer is removed once the current event is handled.
    fn fail(&mut self, id: PeerId, e: &RtcError) {
        warn!(id, "media connection failed: {e}");
        self.doomed.push((id, "error"));
    }

    /// New server ICE credentials: a ufrag no other peer uses, whose first character
    /// names this worker (STUN requests are routed by it), and a password.
    fn new_creds(&mut self) -> IceCreds {
        loop {
            let mut ufrag = String::with_capacity(16);
            ufrag.push(TOKEN_CHARS[self.cfg.worker % MAX_WORKERS] as char);
            ufrag.push_str(&self.random_token(15));
            if !self.routes.has_ufrag(&ufrag) {
                let pass = self.random_token(24);
                return IceCreds { ufrag, pass };
            }
        }
    }

    /// A random alphanumeric token (ICE credentials, resource ids).
    fn random_token(&mut self, len: usize) -> String {
        (0..len)
            .map(|_| TOKEN_CHARS[self.rng.random_range(0..TOKEN_CHARS.len())] as char)
            .collect()
    }

    /// The first sequence number of a new down stream.
    fn start_seq(&mut self) -> u16 {
        self.rng.random_range(1..30_000)
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
        JoinError::Locked => format!("room \"{room}\" is locked by its host"),
        JoinError::DirectNoViewers => format!(
            "room \"{room}\" is a direct call between two devices: the server does not \
             carry its media, so it cannot be watched"
        ),
    }
}

/// The characters of ICE credentials and resource ids.
const TOKEN_CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

//! One participant's media side: its `Rtc`, the tracks it sends up, the tracks it
//! receives down, and the state of its SDP negotiation with the server.
//!
//! [`Peer::drain`] is the only place in the crate that calls `Rtc::poll_output`; every
//! mutation of the `Rtc` is followed by a drain (str0m's run-loop contract).

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::Instant;

use rustc_hash::FxHashMap;
use str0m::change::SdpPendingOffer;
use str0m::format::{Codec, PayloadParams};
use str0m::media::{MediaKind, Mid, Pt, Rid};
use str0m::net::Transmit;
use str0m::{Event, Output, Rtc, RtcError};

use super::forward::{Rewriter, Vp8Rewriter};
use super::keyframe::Throttle;
use super::simulcast::{LayerRates, Quality, Selector};
use super::stats::StatsTracker;
use crate::signaling::protocol::{PeerId, PeerInfo, Role};

/// Identifies a track across the server: the publishing peer and its m-line.
pub type TrackKey = (PeerId, Mid);

/// A track the browser sends to the server.
#[derive(Debug)]
pub struct UpTrack {
    pub kind: MediaKind,
    /// Peers that receive this track (their down track is keyed by this track's key).
    pub subscribers: Vec<PeerId>,
    /// Keyframe requests on their way to the publisher, per layer (`None`: no simulcast).
    pub keyframes: Vec<(Option<Rid>, Throttle)>,
    /// The browser sends several layers (simulcast), with these rids.
    pub simulcast: bool,
    /// Bitrate and size of each layer.
    pub rates: LayerRates,
    /// Payload parameters of the PTs seen on this track, looked up once.
    params: Vec<(Pt, Option<PayloadParams>)>,
}

impl UpTrack {
    pub fn new(kind: MediaKind, simulcast: bool) -> Self {
        UpTrack {
            kind,
            subscribers: Vec::new(),
            keyframes: Vec::new(),
            simulcast,
            rates: LayerRates::default(),
            params: Vec::new(),
        }
    }

    /// The keyframe request throttle of layer `rid`.
    pub fn throttle(&mut self, rid: Option<Rid>) -> &mut Throttle {
        let i = match self.keyframes.iter().position(|(r, _)| *r == rid) {
            Some(i) => i,
            None => {
                self.keyframes.push((rid, Throttle::default()));
                self.keyframes.len() - 1
            }
        };
        &mut self.keyframes[i].1
    }

    /// The payload parameters of `pt` in the publisher's `Rtc`.
    pub fn params(&mut self, rtc: &Rtc, pt: Pt) -> Option<PayloadParams> {
        if let Some((_, p)) = self.params.iter().find(|(k, _)| *k == pt) {
            return *p;
        }
        let p = rtc.codec_config().find(|p| p.pt() == pt).copied();
        self.params.push((pt, p));
        p
    }
}

/// Where a down track is in its negotiation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DownState {
    /// Waiting for the next offer to add it.
    ToOpen,
    /// In an offer that is waiting for the browser's answer.
    Negotiating(Mid),
    /// Negotiated: packets flow.
    Open(Mid),
    /// Waiting for the next offer to stop it.
    ToStop(Mid),
    /// Stopped in an offer that is waiting for the browser's answer.
    Stopping(Mid),
}

/// A track the server sends to the browser: another participant's up track.
#[derive(Debug)]
pub struct DownTrack {
    pub kind: MediaKind,
    pub state: DownState,
    /// The publisher left; stop this track as soon as negotiation allows.
    pub source_gone: bool,
    /// No video is forwarded until a keyframe starts, so the decoder never sees a
    /// frame that references one it does not have.
    pub waiting_keyframe: bool,
    pub rewriter: Rewriter,
    /// VP8 picture ids and TL0PICIDX, continuous across source switches.
    pub vp8: Vp8Rewriter,
    /// Simulcast: the layer wanted for this receiver.
    pub selector: Selector,
    /// Simulcast: the layer being forwarded (switches to the wanted one on its keyframe).
    pub layer: Option<Rid>,
    /// The width this receiver shows the video at, when it told us.
    pub render_width: Option<u32>,
    /// Publisher PT → this peer's PT (`None`: codec not negotiated here; packets dropped).
    pt_map: Vec<(Pt, Option<Pt>)>,
}

impl DownTrack {
    pub fn new(kind: MediaKind, start_seq: u16) -> Self {
        DownTrack {
            kind,
            state: DownState::ToOpen,
            source_gone: false,
            waiting_keyframe: kind == MediaKind::Video,
            rewriter: Rewriter::new(start_seq),
            vp8: Vp8Rewriter::default(),
            selector: Selector::default(),
            layer: None,
            render_width: None,
            pt_map: Vec::new(),
        }
    }

    /// The PT this peer expects for the publisher's payload `params` on m-line `mid`.
    pub fn map_pt(&mut self, rtc: &Rtc, mid: Mid, params: &PayloadParams) -> Option<Pt> {
        if let Some((_, out)) = self.pt_map.iter().find(|(k, _)| *k == params.pt()) {
            return *out;
        }
        let out = rtc
            .codec_config()
            .match_params(*params)
            .map(|p| p.pt())
            .filter(|pt| {
                rtc.media(mid)
                    .is_none_or(|m| m.remote_pts().is_empty() || m.remote_pts().contains(pt))
            });
        self.pt_map.push((params.pt(), out));
        out
    }
}

/// How a peer talks to the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionKind {
    /// A browser on the WebSocket: renegotiates as tracks come and go.
    Browser,
    /// A WHIP publisher (RFC 9725): publishes only, one SDP exchange.
    Whip,
    /// A WHEP player: receives on the m-lines of its one offer; publishers' tracks are
    /// bound to those m-lines (and rebound when publishers change).
    Whep,
    /// On a mirror worker: a publisher of a room whose home is worker `home`. It has no
    /// `Rtc`; its packets arrive from the home, and keyframe requests go there.
    Mirror { home: usize },
    /// On a room's home worker: a viewer served by worker `worker`. It has no `Rtc`;
    /// messages for it go to that worker.
    Remote { worker: usize },
}

impl SessionKind {
    /// A participant this worker serves itself (not a mirror's stand-in).
    pub fn is_local(self) -> bool {
        matches!(
            self,
            SessionKind::Browser | SessionKind::Whip | SessionKind::Whep
        )
    }
}

/// One participant.
pub struct Peer {
    pub id: PeerId,
    pub info: PeerInfo,
    pub role: Role,
    pub kind: SessionKind,
    /// WHEP: the m-lines of its offer that the server sends on, with their kind.
    pub fixed_mids: Vec<(Mid, MediaKind)>,
    /// The server estimates the bandwidth towards this peer (it sends transport-wide
    /// CC feedback).
    pub bwe: bool,
    /// The server's bandwidth estimate towards this peer (bits per second).
    pub estimate_bps: Option<f64>,
    /// This peer's simulcast quality preference.
    pub quality: Quality,
    pub room: String,
    /// Created by the browser's first offer.
    pub rtc: Option<Rtc>,
    /// The server-side ICE username fragment; STUN requests carrying it belong here.
    pub ufrag: String,
    /// When the `Rtc` next wants `Input::Timeout`.
    pub next_timeout: Option<Instant>,
    /// Until then, str0m may be probing the bandwidth towards this peer: its pacer gets
    /// every turn it asks for (see `Sfu::run_timers`).
    pub probing_until: Option<Instant>,
    /// The latest time given to its `Rtc` in a timeout.
    pub rtc_time: Option<Instant>,
    /// The deadline of this peer's entry in the engine's timer queue, if it has one.
    pub timer_queued: Option<Instant>,
    pub up: FxHashMap<Mid, UpTrack>,
    pub down: FxHashMap<TrackKey, DownTrack>,
    /// The browser's first offer has been answered; server offers may follow.
    pub answered: bool,
    /// The server's offer awaiting the browser's answer.
    pub pending_offer: Option<SdpPendingOffer>,
    /// Remote addresses seen on the media port, for routing and cleanup.
    pub addrs: Vec<SocketAddr>,
    pub connected_at: Option<Instant>,
    /// The server's measurements of this participant's relayed legs.
    pub stats: StatsTracker,
}

impl Peer {
    pub fn new(id: PeerId, info: PeerInfo, role: Role, room: String, ufrag: String) -> Self {
        Peer {
            id,
            info,
            role,
            kind: SessionKind::Browser,
            fixed_mids: Vec::new(),
            bwe: false,
            estimate_bps: None,
            quality: Quality::Auto,
            room,
            rtc: None,
            ufrag,
            next_timeout: None,
            probing_until: None,
            rtc_time: None,
            timer_queued: None,
            up: FxHashMap::default(),
            down: FxHashMap::default(),
            answered: false,
            pending_offer: None,
            addrs: Vec::new(),
            connected_at: None,
            stats: StatsTracker::default(),
        }
    }

    /// Drains the `Rtc` to its next timeout: datagrams go to `transmits`, events the
    /// engine acts on go to `events`. The only caller of `poll_output`.
    pub fn drain(
        &mut self,
        transmits: &mut VecDeque<Transmit>,
        events: &mut VecDeque<(PeerId, Event)>,
    ) -> Result<(), RtcError> {
        let Some(rtc) = self.rtc.as_mut() else {
            return Ok(());
        };
        loop {
            match rtc.poll_output()? {
                Output::Timeout(t) => {
                    self.next_timeout = Some(t);
                    return Ok(());
                }
                Output::Transmit(t) => transmits.push_back(t),
                Output::Event(e) => {
                    if wanted(&e) {
                        events.push_back((self.id, e));
                    }
                }
            }
        }
    }
}

/// Events the engine acts on; the rest are dropped in the drain.
fn wanted(e: &Event) -> bool {
    matches!(
        e,
        Event::Connected
            | Event::IceConnectionStateChange(_)
            | Event::MediaAdded(_)
            | Event::RtpPacket(_)
            | Event::KeyframeRequest(_)
            | Event::Closed
            | Event::PeerStats(_)
            | Event::MediaIngressStats(_)
            | Event::MediaEgressStats(_)
            | Event::EgressBitrateEstimate(_)
    )
}

/// Whether the codec's packets can be resent on NACK (video; audio is not worth it).
pub fn nackable(codec: Codec) -> bool {
    codec.is_video()
}

//! One participant as a shard sees it, by role: a peer this worker serves (its
//! [`Driver`], the tracks it sends up and receives down, its negotiation), a stand-in
//! for a publisher served by another worker, or a viewer served by another worker.
//! Up tracks (what a publisher sends) and down tracks (what a receiver gets) are here
//! too.
#![warn(clippy::disallowed_methods)] // Sans-IO: see clippy.toml

use std::net::SocketAddr;
use std::time::Instant;

use rustc_hash::FxHashMap;
use str0m::change::SdpPendingOffer;
use str0m::format::{Codec, PayloadParams};
use str0m::ice::TransId;
use str0m::media::{MediaKind, Mid, Pt, Rid};
use str0m::Rtc;

use super::driver::Driver;
use super::keyframe::Throttle;
use super::rewrite::{Rewriter, Vp8Rewriter};
use super::simulcast::{LayerRates, Quality, Selector};
use super::speaker::LevelMeter;
use super::stats::StatsTracker;
use crate::rate::TokenBucket;
use crate::room::Holds;
use crate::signaling::protocol::{PeerId, PeerInfo, Role, Source};

/// Identifies a track across the server: the publishing peer and its m-line.
pub(crate) type TrackKey = (PeerId, Mid);

/// A track the browser sends to the server.
#[derive(Debug)]
pub(crate) struct UpTrack {
    pub(crate) kind: MediaKind,
    /// Camera, microphone or screen: receivers' offers say which, WHEP players get
    /// a screen before a camera, and the host holds by it (see [`Holds`]).
    pub(crate) source: Source,
    /// Peers that receive this track (their down track is keyed by this track's key).
    pub(crate) subscribers: Vec<PeerId>,
    /// Keyframe requests on their way to the publisher, per layer (`None`: no simulcast).
    pub(crate) keyframes: Vec<(Option<Rid>, Throttle)>,
    /// The browser sends several layers (simulcast), with these rids.
    pub(crate) simulcast: bool,
    /// Bitrate and size of each layer.
    pub(crate) rates: LayerRates,
    /// Payload parameters of the PTs seen on this track, looked up once.
    params: Vec<(Pt, Option<PayloadParams>)>,
    /// The codec of the latest packet.
    pub(crate) codec: Option<Codec>,
    /// The publisher was asked to send another codec (once: see `Shard::codec_gap`).
    pub(crate) asked_codec: bool,
    /// Audio: the loudest level heard since the room's speaker detector last looked.
    pub(crate) level: LevelMeter,
}

impl UpTrack {
    pub(crate) fn new(kind: MediaKind, source: Source, simulcast: bool) -> Self {
        UpTrack {
            kind,
            source,
            subscribers: Vec::new(),
            keyframes: Vec::new(),
            simulcast,
            rates: LayerRates::default(),
            params: Vec::new(),
            codec: None,
            asked_codec: false,
            level: LevelMeter::default(),
        }
    }

    /// The keyframe request throttle of layer `rid`.
    pub(crate) fn throttle(&mut self, rid: Option<Rid>) -> &mut Throttle {
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
    pub(crate) fn params(&mut self, rtc: &Rtc, pt: Pt) -> Option<PayloadParams> {
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
pub(crate) enum DownState {
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
pub(crate) struct DownTrack {
    pub(crate) kind: MediaKind,
    /// What the publisher's track carries (for the offers' `tracks`).
    pub(crate) source: Source,
    pub(crate) state: DownState,
    /// The publisher left; stop this track as soon as negotiation allows.
    pub(crate) source_gone: bool,
    /// No video is forwarded until a keyframe starts, so the decoder never sees a
    /// frame that references one it does not have.
    pub(crate) waiting_keyframe: bool,
    pub(crate) rewriter: Rewriter,
    /// VP8 picture ids and TL0PICIDX, continuous across source switches.
    pub(crate) vp8: Vp8Rewriter,
    /// Simulcast: the layer wanted for this receiver.
    pub(crate) selector: Selector,
    /// Simulcast: the layer being forwarded (switches to the wanted one on its keyframe).
    pub(crate) layer: Option<Rid>,
    /// The width this receiver shows the video at, when it told us.
    pub(crate) render_width: Option<u32>,
    /// Publisher PT → this peer's PT (`None`: codec not negotiated here; packets dropped).
    pt_map: Vec<(Pt, Option<Pt>)>,
    /// The publisher's codec, which this receiver did not negotiate (it was told).
    pub(crate) undecodable: Option<Codec>,
}

impl DownTrack {
    pub(crate) fn new(kind: MediaKind, source: Source, start_seq: u16) -> Self {
        DownTrack {
            kind,
            source,
            state: DownState::ToOpen,
            source_gone: false,
            waiting_keyframe: kind == MediaKind::Video,
            rewriter: Rewriter::new(start_seq),
            vp8: Vp8Rewriter::default(),
            selector: Selector::default(),
            layer: None,
            render_width: None,
            pt_map: Vec::new(),
            undecodable: None,
        }
    }

    /// Its open m-line as a spare for the next track, with the stream's rewriters.
    pub(crate) fn into_spare(self) -> Option<Spare> {
        let DownState::Open(mid) = self.state else {
            return None;
        };
        Some(Spare {
            mid,
            kind: self.kind,
            rewriter: self.rewriter,
            vp8: self.vp8,
        })
    }

    /// The PT this peer expects for the publisher's payload `params` on m-line `mid`.
    pub(crate) fn map_pt(&mut self, rtc: &Rtc, mid: Mid, params: &PayloadParams) -> Option<Pt> {
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

/// An m-line whose track ended, kept for the next track of its kind: str0m as the
/// offerer never recycles a stopped m-line, so stopping them would grow every
/// remaining participant's SDP and state with each track that ever left. An idle
/// m-line is made inactive and later sends again, keeping its SSRC, so its rewriters
/// carry on where they stopped.
#[derive(Debug)]
pub(crate) struct Spare {
    pub(crate) mid: Mid,
    pub(crate) kind: MediaKind,
    pub(crate) rewriter: Rewriter,
    pub(crate) vp8: Vp8Rewriter,
}

/// One participant of a room on this shard.
pub(crate) struct Peer {
    pub(crate) id: PeerId,
    pub(crate) info: PeerInfo,
    pub(crate) role: Role,
    pub(crate) room: String,
    /// Tracks it publishes (a local publisher's, or a stand-in's copy of a far one's).
    pub(crate) up: FxHashMap<Mid, UpTrack>,
    /// Who serves it.
    pub(crate) served: Served,
    /// What the room's host stopped it from sending: checked before any of its packets
    /// is forwarded (kept on the publisher's home, where its packets arrive).
    pub(crate) holds: Holds,
}

/// Who serves a peer: this shard, or another worker.
pub(crate) enum Served {
    /// This shard: its `Rtc`, negotiation and down tracks.
    Here(Box<Local>),
    /// A publisher of a room homed on worker `home`, which sends its packets here; this
    /// shard serves some of the room's viewers (see `shard::mirror`).
    StandIn { home: usize },
    /// A viewer of a room homed here, served by worker `worker`; messages for it go
    /// there.
    Elsewhere { worker: usize },
}

impl Peer {
    pub(crate) fn new(
        id: PeerId,
        info: PeerInfo,
        role: Role,
        room: String,
        served: Served,
    ) -> Self {
        Peer {
            id,
            info,
            role,
            room,
            up: FxHashMap::default(),
            served,
            holds: Holds::default(),
        }
    }

    pub(crate) fn here(&self) -> Option<&Local> {
        match &self.served {
            Served::Here(l) => Some(l),
            _ => None,
        }
    }

    pub(crate) fn here_mut(&mut self) -> Option<&mut Local> {
        match &mut self.served {
            Served::Here(l) => Some(l),
            _ => None,
        }
    }

    /// Served by this shard (not a stand-in or a far viewer's stub).
    pub(crate) fn is_here(&self) -> bool {
        matches!(self.served, Served::Here(_))
    }

    pub(crate) fn is_stand_in(&self) -> bool {
        matches!(self.served, Served::StandIn { .. })
    }
}

/// How a peer this shard serves talks to the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Client {
    /// A browser on the WebSocket: renegotiates as tracks come and go.
    Browser,
    /// A WHIP publisher (RFC 9725): publishes only, one SDP exchange.
    Whip,
    /// A WHEP player: receives on the m-lines of its one offer (`mids`, with their
    /// kind, once connected); publishers' tracks are bound to those m-lines and
    /// rebound when publishers change.
    Whep { mids: Vec<(Mid, MediaKind)> },
    /// A relay link to or from another node of a cluster (`shard::relay`): set up
    /// without SDP, it carries a whole room's tracks.
    Relay,
}

/// Most remote addresses kept per peer (a browser checks from one or a few
/// candidates); the least recently confirmed one makes room for a new one.
pub(crate) const MAX_ADDRS: usize = 8;

/// New remote addresses a peer may bring per second, after a first burst of
/// [`MAX_ADDRS`]: a phone moving between networks brings one every few seconds at most.
pub(crate) const NEW_ADDRS_PER_SEC: f64 = 0.5;

/// Binding requests remembered per peer to spot one replayed from another address.
pub(crate) const RECENT_STUN: usize = 32;

/// A binding request a peer's `Rtc` took: what it was, on which transport, from and
/// to which address, and when it (or its replay) was last fed to the `Rtc`.
#[derive(Debug, Clone)]
pub(crate) struct Consent {
    pub(crate) request: Vec<u8>,
    pub(crate) proto: str0m::net::Protocol,
    pub(crate) from: SocketAddr,
    pub(crate) to: SocketAddr,
    pub(crate) at: Instant,
}

/// A peer this shard serves.
pub(crate) struct Local {
    pub(crate) client: Client,
    /// Its `Rtc`; a browser's is created by its first offer.
    pub(crate) rtc: Option<Driver>,
    /// The server-side ICE credentials: STUN requests carrying the ufrag belong here,
    /// and must be signed with the password.
    pub(crate) ufrag: String,
    pub(crate) pass: String,
    /// Remote addresses that sent a STUN request this peer's `Rtc` accepted, with when
    /// they last did (at most [`MAX_ADDRS`]).
    pub(crate) addrs: Vec<(SocketAddr, Instant)>,
    /// Recent binding requests (transaction id, source), newest last.
    pub(crate) recent_stun: Vec<(TransId, SocketAddr)>,
    /// New remote addresses it may still bring (see `shard::route`).
    pub(crate) new_addrs: TokenBucket,
    /// Its incoming streams: SSRC → m-line and simulcast layer, looked up once each.
    pub(crate) rx_streams: Vec<(u32, Mid, Option<Rid>)>,
    /// The server estimates the bandwidth towards this peer (it sends transport-wide
    /// CC feedback).
    pub(crate) bwe: bool,
    /// With `bwe`: the estimation is paused while it has no layers to choose
    /// (`shard::estimation`).
    pub(crate) estimation_paused: bool,
    /// The server's bandwidth estimate towards this peer (bits per second).
    pub(crate) estimate_bps: Option<f64>,
    /// This peer's simulcast quality preference.
    pub(crate) quality: Quality,
    pub(crate) down: FxHashMap<TrackKey, DownTrack>,
    /// Inactive m-lines, each reused by the next down track of its kind.
    pub(crate) spare: Vec<Spare>,
    /// Spare m-lines that `pending_offer` makes send again.
    pub(crate) reusing: Vec<Mid>,
    /// Publishers it was told it cannot decode, until a packet of theirs is written to
    /// it (then it is told it can: see `shard::codecs`).
    pub(crate) undecodable_from: Vec<PeerId>,
    /// Its m-lines that stopped sending (kind, simulcast), in case one sends again.
    pub(crate) ended_up: Vec<(Mid, MediaKind, bool)>,
    /// The m-line its page says carries its screen share (accepted: the room had room
    /// for one), and one it refused: that m-line's packets are not forwarded.
    pub(crate) screen: Option<Mid>,
    pub(crate) screen_refused: Option<Mid>,
    /// The first offer has been answered; server offers may follow.
    pub(crate) answered: bool,
    /// The server's offer awaiting the browser's answer.
    pub(crate) pending_offer: Option<SdpPendingOffer>,
    /// The SDP of `pending_offer`, sent again to a participant resumed on a new
    /// signaling connection (the old one may have lost it).
    pub(crate) pending_sdp: Option<String>,
    /// The deadline of this peer's entry in the shard's timer queue, if it has one.
    pub(crate) timer_queued: Option<Instant>,
    /// Until then, the pacer's turn that only re-opens its gate after sending a
    /// forwarded packet waits (see `shard::timers`).
    pub(crate) gate_until: Option<Instant>,
    /// Until then, str0m may be probing the bandwidth towards this peer: every turn it
    /// asks for is given at its time.
    pub(crate) probing_until: Option<Instant>,
    pub(crate) connected_at: Option<Instant>,
    /// The last binding request its `Rtc` took, to keep ICE consent fresh on its
    /// behalf while its media flows (see `Shard::refresh_consent`).
    pub(crate) consent: Option<Consent>,
    /// Where its RTP and RTCP last came from: when that changes (a new network, an ICE
    /// restart), keyframes are asked for at once (see `Shard::media_moved`).
    pub(crate) media_from: Option<SocketAddr>,
    /// The server's measurements of this participant's relayed legs.
    pub(crate) stats: StatsTracker,
    /// Direct-call signals it may still send (a flood must not push another
    /// participant's queue over).
    pub(crate) direct: TokenBucket,
}

impl Local {
    /// `direct_rate`: direct-call signals it may send per second (twice that at once).
    pub(crate) fn new(client: Client, ufrag: String, pass: String, direct_rate: u32) -> Self {
        let rate = f64::from(direct_rate);
        Local {
            direct: TokenBucket::new(rate, 2.0 * rate),
            client,
            rtc: None,
            ufrag,
            pass,
            addrs: Vec::new(),
            recent_stun: Vec::new(),
            new_addrs: TokenBucket::new(NEW_ADDRS_PER_SEC, MAX_ADDRS as f64),
            rx_streams: Vec::new(),
            bwe: false,
            estimation_paused: false,
            estimate_bps: None,
            quality: Quality::Auto,
            down: FxHashMap::default(),
            spare: Vec::new(),
            reusing: Vec::new(),
            ended_up: Vec::new(),
            screen: None,
            screen_refused: None,
            undecodable_from: Vec::new(),
            answered: false,
            pending_offer: None,
            pending_sdp: None,
            timer_queued: None,
            gate_until: None,
            probing_until: None,
            connected_at: None,
            consent: None,
            media_from: None,
            stats: StatsTracker::default(),
        }
    }

    pub(crate) fn is_whep(&self) -> bool {
        matches!(self.client, Client::Whep { .. })
    }

    /// What the m-line `mid` of kind `kind` that it sends carries.
    pub(crate) fn source(&self, mid: Mid, kind: MediaKind) -> Source {
        match kind {
            MediaKind::Audio => Source::Microphone,
            MediaKind::Video if self.screen == Some(mid) => Source::Screen,
            MediaKind::Video => Source::Camera,
        }
    }
}

/// A codec's name for people (and the wire).
pub(crate) fn codec_name(codec: Codec) -> &'static str {
    match codec {
        Codec::Opus => "Opus",
        Codec::Vp8 => "VP8",
        Codec::Vp9 => "VP9",
        Codec::H264 => "H.264",
        Codec::H265 => "H.265",
        Codec::Av1 => "AV1",
        _ => "another codec",
    }
}

/// Whether the codec's packets can be resent on NACK (video; audio is not worth it).
pub(crate) fn nackable(codec: Codec) -> bool {
    codec.is_video()
}

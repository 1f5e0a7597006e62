//! The participant: one str0m `Rtc` with full ICE (like a browser), Opus and VP8, in
//! RTP mode (the caller writes each packet, as the load generator's pacer and the
//! engine benchmarks need) or frame mode (str0m packetizes whole frames, as the
//! integration tests' participants send them). Sans-IO: datagrams and time go in,
//! [`PeerOutput`]s come out; whoever owns the socket sends them.

use std::net::SocketAddr;
use std::time::Instant;

use str0m::change::{SdpAnswer, SdpOffer, SdpPendingOffer};
use str0m::format::Codec;
use str0m::media::{
    Direction, KeyframeRequestKind, MediaKind, MediaTime, Mid, Pt, Rid, Simulcast, SimulcastLayer,
};
use str0m::net::{Protocol, Receive, TcpType};
use str0m::rtp::{Extension, ExtensionValues, RtpWrite};
use str0m::{Candidate, Event, IceConnectionState, Input, Output, Rtc};

use crate::event::{Frame, Packet, PeerEvent, PeerOutput};
use crate::received::Received;
use crate::{frame, payload, PeerError};

/// How to build a participant.
#[derive(Debug, Clone, Copy)]
pub struct PeerConfig {
    /// The address its datagrams come from: its one ICE host candidate.
    pub local: SocketAddr,
    /// RTP mode (write and read packets) rather than frame mode (whole frames).
    pub rtp_mode: bool,
    /// Negotiate transport-wide congestion control feedback (as browsers do).
    pub twcc: bool,
    /// ICE over TCP: `local` is an active TCP candidate (RFC 6544, port 9 by
    /// convention) and datagrams are RFC 4571 frames, not UDP.
    pub tcp: bool,
    /// Its one video codec, sent and received: VP8, or H.264 (like an encoder that
    /// only has H.264, or a browser told to prefer it).
    pub video: Codec,
}

/// An m-line to offer.
#[derive(Debug, Clone, Copy)]
pub struct Track<'a> {
    pub kind: MediaKind,
    pub direction: Direction,
    /// Simulcast layers to send, best first (empty: one stream).
    pub send_rids: &'a [&'a str],
}

impl Track<'static> {
    pub fn new(kind: MediaKind, direction: Direction) -> Self {
        Track {
            kind,
            direction,
            send_rids: &[],
        }
    }
}

/// One RTP packet to write (RTP mode).
#[derive(Debug, Clone)]
pub struct RtpOut {
    pub mid: Mid,
    /// The simulcast layer, if any.
    pub rid: Option<Rid>,
    pub codec: Codec,
    pub seq: u64,
    pub rtp_ts: u32,
    pub marker: bool,
    /// Kept for retransmission on NACK.
    pub nackable: bool,
    pub payload: Vec<u8>,
}

/// A str0m participant.
pub struct Peer {
    rtc: Rtc,
    local: SocketAddr,
    proto: Protocol,
    pending: Option<SdpPendingOffer>,
    received: Received,
}

impl Peer {
    pub fn new(cfg: PeerConfig, now: Instant) -> Result<Peer, PeerError> {
        let mut builder = Rtc::builder()
            .set_rtp_mode(cfg.rtp_mode)
            .clear_codecs()
            .enable_opus(true, false)
            .enable_vp8(cfg.video == Codec::Vp8)
            .enable_h264(cfg.video == Codec::H264);
        if !cfg.twcc {
            // str0m's standard map (Chrome's ids) without transport-wide CC.
            builder = builder
                .clear_extension_map()
                .set_extension(1, Extension::AudioLevel)
                .set_extension(2, Extension::AbsoluteSendTime)
                .set_extension(4, Extension::RtpMid)
                .set_extension(10, Extension::RtpStreamId)
                .set_extension(11, Extension::RepairedRtpStreamId)
                .set_extension(13, Extension::VideoOrientation);
        }
        let mut rtc = builder.build(now);
        let candidate = if cfg.tcp {
            Candidate::builder()
                .tcp()
                .host(cfg.local)
                .tcptype(TcpType::Active)
                .build()
        } else {
            Candidate::host(cfg.local, "udp")
        }
        .map_err(|e| PeerError::Candidate(cfg.local, e.to_string()))?;
        rtc.add_local_candidate(candidate);
        Ok(Peer {
            rtc,
            local: cfg.local,
            proto: if cfg.tcp {
                Protocol::Tcp
            } else {
                Protocol::Udp
            },
            pending: None,
            received: Received::default(),
        })
    }

    pub fn local(&self) -> SocketAddr {
        self.local
    }

    /// Offers `tracks` (added to what is already negotiated); returns the SDP and the
    /// new tracks' mids in order. The answer goes to [`Peer::accept_answer`].
    pub fn offer(&mut self, tracks: &[Track<'_>]) -> Result<(String, Vec<Mid>), PeerError> {
        let mut api = self.rtc.sdp_api();
        let mids = tracks
            .iter()
            .map(|t| {
                let simulcast = (!t.send_rids.is_empty()).then(|| {
                    let mut s = Simulcast::new();
                    s.send = t.send_rids.iter().map(|r| SimulcastLayer::new(r)).collect();
                    s
                });
                api.add_media(t.kind, t.direction, None, None, simulcast)
            })
            .collect();
        let (offer, pending) = api.apply().ok_or(PeerError::NothingToOffer)?;
        self.pending = Some(pending);
        Ok((offer.to_sdp_string(), mids))
    }

    /// Offers m-line `mid` in a new direction (e.g. `RecvOnly`: it stops sending, as a
    /// browser does when a screen share ends).
    pub fn offer_direction(&mut self, mid: Mid, dir: Direction) -> Result<String, PeerError> {
        let mut api = self.rtc.sdp_api();
        api.set_direction(mid, dir);
        let (offer, pending) = api.apply().ok_or(PeerError::NothingToOffer)?;
        self.pending = Some(pending);
        Ok(offer.to_sdp_string())
    }

    /// Offers new ICE credentials.
    pub fn offer_ice_restart(&mut self) -> Result<String, PeerError> {
        let mut api = self.rtc.sdp_api();
        api.ice_restart(true);
        let (offer, pending) = api.apply().ok_or(PeerError::NothingToOffer)?;
        self.pending = Some(pending);
        Ok(offer.to_sdp_string())
    }

    /// Whether an offer of ours waits for its answer.
    pub fn has_pending_offer(&self) -> bool {
        self.pending.is_some()
    }

    pub fn accept_answer(&mut self, sdp: &str) -> Result<(), PeerError> {
        let answer = SdpAnswer::from_sdp_string(sdp).map_err(|e| PeerError::Sdp(e.to_string()))?;
        let pending = self.pending.take().ok_or(PeerError::NoPendingOffer)?;
        self.rtc
            .sdp_api()
            .accept_answer(pending, answer)
            .map_err(|e| PeerError::Sdp(e.to_string()))
    }

    /// Answers the other side's offer (a pending offer of ours is dropped by str0m).
    pub fn accept_offer(&mut self, sdp: &str) -> Result<String, PeerError> {
        let offer = SdpOffer::from_sdp_string(sdp).map_err(|e| PeerError::Sdp(e.to_string()))?;
        let answer = self
            .rtc
            .sdp_api()
            .accept_offer(offer)
            .map_err(|e| PeerError::Sdp(e.to_string()))?;
        Ok(answer.to_sdp_string())
    }

    /// A datagram from `source` to `destination` (normally [`Peer::local`]).
    /// Anything that is not STUN, DTLS, RTP or RTCP is ignored, as a browser does.
    pub fn receive(
        &mut self,
        now: Instant,
        source: SocketAddr,
        destination: SocketAddr,
        contents: &[u8],
    ) {
        if let Ok(r) = Receive::new(self.proto, source, destination, contents) {
            let _ = self.rtc.handle_input(Input::Receive(now, r));
        }
    }

    /// Time has come to `now` (a timeout it asked for, or a write to release).
    pub fn timeout(&mut self, now: Instant) {
        let _ = self.rtc.handle_input(Input::Timeout(now));
    }

    /// The next output; call until [`PeerOutput::Timeout`].
    pub fn poll(&mut self) -> Result<PeerOutput, PeerError> {
        loop {
            match self.rtc.poll_output()? {
                Output::Timeout(t) => return Ok(PeerOutput::Timeout(t)),
                Output::Transmit(t) => return Ok(PeerOutput::Transmit(t)),
                Output::Event(e) => {
                    if let Some(e) = self.digest(e) {
                        return Ok(PeerOutput::Event(e));
                    }
                }
            }
        }
    }

    fn digest(&mut self, e: Event) -> Option<PeerEvent> {
        Some(match e {
            Event::Connected => PeerEvent::Connected,
            Event::IceConnectionStateChange(IceConnectionState::Connected) => {
                PeerEvent::IceConnected
            }
            Event::MediaAdded(m) => PeerEvent::MediaAdded {
                mid: m.mid,
                kind: m.kind,
                direction: m.direction,
            },
            Event::KeyframeRequest(r) => PeerEvent::KeyframeRequest { mid: r.mid },
            Event::RtpPacket(p) => {
                let mid = self
                    .rtc
                    .direct_api()
                    .stream_rx(&p.header.ssrc)
                    .map(|s| s.mid());
                let kind = mid.and_then(|m| self.rtc.media(m)).map(|m| m.kind());
                let stamp = payload::check(&p.payload);
                if let (Some(mid), Some(kind)) = (mid, kind) {
                    let key = kind == MediaKind::Video && payload::starts_keyframe(&p.payload);
                    self.received.record(mid, kind, false, stamp.is_some(), key);
                }
                PeerEvent::Packet(Packet {
                    ssrc: *p.header.ssrc,
                    seq: *p.seq_no,
                    mid,
                    kind,
                    transport_seq: p.header.ext_vals.transport_cc,
                    payload: p.payload,
                    stamp,
                    time: p.timestamp,
                })
            }
            Event::MediaData(d) => {
                let kind = if d.params.spec().codec == Codec::Opus {
                    MediaKind::Audio
                } else {
                    MediaKind::Video
                };
                let tagged = frame::check(kind, &d.data);
                let key = frame::is_keyframe(kind, &d.data);
                self.received
                    .record(d.mid, kind, true, tagged.is_some(), key);
                PeerEvent::Frame(Frame {
                    mid: d.mid,
                    kind,
                    data: d.data,
                    tagged,
                })
            }
            _ => return None,
        })
    }

    pub fn is_connected(&self) -> bool {
        self.rtc.is_connected()
    }

    /// The kind of a negotiated track.
    pub fn kind(&self, mid: Mid) -> Option<MediaKind> {
        self.rtc.media(mid).map(|m| m.kind())
    }

    /// What arrived so far, per track.
    pub fn received(&self) -> &Received {
        &self.received
    }

    fn payload_type(&self, codec: Codec) -> Option<Pt> {
        self.rtc
            .codec_config()
            .find(|p| p.spec().codec == codec)
            .map(|p| p.pt())
    }

    /// Writes one RTP packet (RTP mode); false when the track or codec is not
    /// negotiated (yet). It leaves on the next [`Peer::timeout`], which str0m asks
    /// for at once.
    pub fn write_rtp(&mut self, now: Instant, out: RtpOut) -> bool {
        self.write_rtp_ext(now, out, ExtensionValues::default())
    }

    /// [`Peer::write_rtp`] with header extension values, such as an audio level
    /// (RFC 6464) as browsers send on every audio packet.
    pub fn write_rtp_ext(&mut self, now: Instant, out: RtpOut, ext: ExtensionValues) -> bool {
        let Some(pt) = self.payload_type(out.codec) else {
            return false;
        };
        let mut api = self.rtc.direct_api();
        let Some(tx) = api.stream_tx_by_mid(out.mid, out.rid) else {
            return false;
        };
        let write = RtpWrite::new(pt, out.seq.into(), out.rtp_ts, now, out.payload)
            .marker(out.marker)
            .ext_vals(ext)
            .nackable(out.nackable);
        tx.write_rtp(write);
        true
    }

    /// Writes one frame (frame mode); false when the track or codec is not negotiated.
    pub fn write_frame(
        &mut self,
        now: Instant,
        mid: Mid,
        codec: Codec,
        time: MediaTime,
        data: Vec<u8>,
    ) -> bool {
        let Some(w) = self.rtc.writer(mid) else {
            return false;
        };
        let Some(pt) = w
            .payload_params()
            .find(|p| p.spec().codec == codec)
            .map(|p| p.pt())
        else {
            return false;
        };
        w.write(pt, now, time, data).is_ok()
    }

    /// Asks the sender of a received video track for a keyframe (PLI); false when
    /// that is not possible on `mid`.
    pub fn request_keyframe(&mut self, mid: Mid) -> bool {
        if self.kind(mid) != Some(MediaKind::Video) {
            return false;
        }
        let Some(mut w) = self.rtc.writer(mid) else {
            return false;
        };
        w.is_request_keyframe_possible(KeyframeRequestKind::Pli)
            && w.request_keyframe(None, KeyframeRequestKind::Pli).is_ok()
    }

    /// Starts closing: RTCP BYE and DTLS close_notify come out of the next polls.
    pub fn close(&mut self) {
        let _ = self.rtc.close();
    }
}

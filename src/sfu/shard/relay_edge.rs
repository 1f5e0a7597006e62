//! Relay links, the edge's side: it opens the link for a room whose origin is another
//! node, declares the relayed tracks as its stand-in publishers' media, and hands their
//! packets and keyframe requests on (see `relay.rs`).
#![warn(clippy::disallowed_methods)] // Sans-IO: see clippy.toml

use std::net::SocketAddr;
use std::time::Instant;

use str0m::media::{KeyframeRequestKind, MediaKind, Mid, Rid};
use str0m::rtp::RtpPacket;
use str0m::{Candidate, Rtc};
use tracing::{debug, info, warn};

use super::relay::{relay_mid, set_link_peer, Link, Side};
use super::{Output, Shard};
use crate::sfu::driver::{Drained, Driver};
use crate::sfu::link::{LinkMsg, LinkParams, TrackPacket, REMOTE_HOME};
use crate::sfu::peer::Peer;
use crate::signaling::protocol::{ErrorCode, PeerId, ServerMsg};

impl Shard {
    /// Edge: `room`, whose origin is another node, has a viewer here: open its link if
    /// there is none (the worker binds the link's socket, then [`Shard::link_bound`]).
    pub(super) fn ensure_relay_in(&mut self, room: &str) {
        if self.relay_in.contains_key(room) {
            return;
        }
        let id = self.link_id();
        self.relay_in.insert(room.to_string(), id);
        self.pending_links.insert(id, room.to_string());
        self.out.push_back(Output::BindLink(id));
    }

    /// Edge: the worker bound the socket of link `id` at `local` (`None`: it could
    /// not). Builds the link's `Rtc` and offers it to the room's origin.
    pub fn link_bound(&mut self, now: Instant, id: PeerId, local: Option<SocketAddr>) {
        let Some(room) = self.pending_links.remove(&id) else {
            return;
        };
        let Some(local) = local else {
            warn!(
                room,
                "no socket for the relay link: its viewers are turned away"
            );
            self.relay_in.remove(&room);
            self.relay_lost(now, &room);
            return;
        };
        let creds = self.new_creds();
        let mut rtc = Rtc::builder()
            .set_rtp_mode(true)
            .set_local_ice_credentials(creds.clone())
            .set_dtls_cert(self.dtls_cert.clone())
            .clear_codecs()
            .enable_opus(true, false)
            .enable_vp8(true)
            .enable_h264(true)
            .set_stats_interval(None)
            .build(now);
        if let Ok(c) = Candidate::host(local, "udp") {
            rtc.add_local_candidate(c);
        }
        rtc.direct_api().set_ice_controlling(true);
        let fingerprint = rtc.direct_api().local_dtls_fingerprint().to_string();
        let mut scratch = Drained::default();
        let driver = match Driver::new(id, rtc, now, &mut scratch) {
            Ok(d) => d,
            Err(e) => {
                warn!(room, "relay link: {e}");
                self.relay_in.remove(&room);
                self.relay_lost(now, &room);
                return;
            }
        };
        self.drained.transmits.extend(scratch.transmits);
        self.relay_local.insert(local, id);
        let side = Side::In {
            local,
            medias: Vec::new(),
            params: Vec::new(),
        };
        self.add_link(id, &room, &creds, driver, side);
        self.declare_relay_media(&room);
        self.schedule(id);
        info!(room, %local, "relay link offered to the room's origin");
        let msg = LinkMsg::LinkOffer {
            room,
            link: id,
            params: LinkParams {
                ufrag: creds.ufrag,
                pass: creds.pass,
                fingerprint,
                candidates: vec![local],
            },
            from: self.cfg.worker,
        };
        self.out.push_back(Output::Link(REMOTE_HOME, msg));
    }

    /// Edge: every track of `room`'s stand-ins is a media on its link.
    pub(super) fn declare_relay_media(&mut self, room: &str) {
        let Some(&link) = self.relay_in.get(room) else {
            return;
        };
        let tracks: Vec<(PeerId, Mid, MediaKind)> = self
            .rooms
            .members(room)
            .iter()
            .filter_map(|id| self.peers.get(id))
            .filter(|p| p.is_stand_in())
            .flat_map(|p| p.up.iter().map(|(mid, u)| (p.id, *mid, u.kind)))
            .collect();
        let Some(Link {
            side: Side::In { medias, .. },
            ..
        }) = self.relays.get_mut(&link)
        else {
            return;
        };
        let new: Vec<(Mid, PeerId, Mid, MediaKind)> = tracks
            .into_iter()
            .map(|(p, m, k)| (relay_mid(p, m), p, m, k))
            .filter(|(r, ..)| !medias.iter().any(|(d, ..)| d == r))
            .collect();
        if new.is_empty() {
            return;
        }
        medias.extend(new.iter().map(|(r, p, m, _)| (*r, *p, *m)));
        self.with_rtc(link, |rtc| {
            let mut api = rtc.direct_api();
            for (r, _, _, kind) in &new {
                api.declare_media(*r, *kind);
            }
        });
    }

    /// Edge: the origin answered the offer of link `link`: ICE and DTLS start.
    pub(super) fn link_answer(&mut self, room: &str, link: PeerId, params: LinkParams) {
        let ours = self
            .relays
            .get(&link)
            .is_some_and(|l| l.room == room && matches!(l.side, Side::In { .. }));
        if !ours {
            return;
        }
        let Ok(fingerprint) = params.fingerprint.parse() else {
            warn!(room, "the origin's DTLS fingerprint does not parse");
            return;
        };
        debug!(room, candidates = ?params.candidates, "relay link answered");
        let r = self.with_rtc(link, |rtc| {
            set_link_peer(rtc, params, fingerprint);
            rtc.direct_api().start_dtls(true)
        });
        if let Some(Err(e)) = r {
            warn!(room, "relay link: {e}");
        }
    }

    /// Edge: a packet from the origin on link `link`: to the viewers here, as the
    /// stand-in publisher's.
    pub(super) fn relay_in_rtp(&mut self, now: Instant, link: PeerId, pkt: RtpPacket) {
        let Some((relay_mid, rid)) = self.rx_stream(link, *pkt.header.ssrc) else {
            return;
        };
        let Some(Link {
            side: Side::In { medias, params, .. },
            ..
        }) = self.relays.get_mut(&link)
        else {
            return;
        };
        let Some(&(_, publisher, mid)) = medias.iter().find(|(r, ..)| *r == relay_mid) else {
            return;
        };
        let pt = pkt.header.payload_type;
        let found = match params.iter().find(|(p, _)| *p == pt) {
            Some((_, found)) => *found,
            None => {
                let rtc = self
                    .peers
                    .get(&link)
                    .and_then(Peer::here)
                    .and_then(|l| l.rtc.as_ref());
                let found =
                    rtc.and_then(|d| d.rtc().codec_config().find(|p| p.pt() == pt).copied());
                params.push((pt, found));
                found
            }
        };
        let Some(params) = found else {
            return;
        };
        let packet = TrackPacket::from_rtp(mid, rid, params, pkt);
        if self.peers.get(&publisher).is_some_and(Peer::is_stand_in) {
            self.fan_out_or_hold_stand_in(now, publisher, packet);
        }
    }

    /// Edge: asks the origin for a keyframe of stand-in `src`'s track, on the link.
    pub(super) fn relay_keyframe(
        &mut self,
        src: PeerId,
        mid: Mid,
        layer: Option<Rid>,
        kind: KeyframeRequestKind,
    ) {
        let Some(room) = self.peers.get(&src).map(|p| p.room.clone()) else {
            return;
        };
        let Some(&link) = self.relay_in.get(&room) else {
            return;
        };
        let relay = relay_mid(src, mid);
        self.with_rtc(link, |rtc| {
            if let Some(rx) = rtc.direct_api().stream_rx_by_mid(relay, layer) {
                rx.request_keyframe(kind);
            }
        });
    }

    /// Edge: the link of `room` is gone (the origin or the network failed): its
    /// viewers here hear it and leave; their pages reconnect and are placed again.
    pub(super) fn relay_lost(&mut self, now: Instant, room: &str) {
        let viewers: Vec<PeerId> = self
            .rooms
            .viewers(room)
            .iter()
            .copied()
            .filter(|v| self.peers.get(v).is_some_and(Peer::is_here))
            .collect();
        for v in viewers {
            self.signal(
                v,
                ServerMsg::error(
                    ErrorCode::MediaFailed,
                    "the link to the node serving this room was lost",
                ),
            );
            self.leave(now, v, "error");
        }
    }
}

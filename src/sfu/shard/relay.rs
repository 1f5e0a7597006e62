//! Relay links between nodes of a cluster: one WebRTC connection per (room, edge
//! node) that carries every track of the room's publishers, every simulcast layer,
//! from the room's origin to the edge (see `crate::cluster` and `docs/cluster.md`).
//!
//! An edge serves the room's viewers as a mirror worker does (`shard::mirror`), with
//! the room's home being another node ([`REMOTE_HOME`]): its stand-in publishers get
//! their packets from the link instead of from another worker, and their keyframe
//! requests go back as RTCP on the link. The origin keeps a stub for each viewer an
//! edge serves ([`Served::Elsewhere`] with the edge's index), as a home does.
//!
//! The link is set up without SDP, through str0m's direct API: the edge (the ICE
//! controlling agent, DTLS client, on a UDP socket of its own) offers its ICE
//! credentials, DTLS fingerprint and socket address over NATS; the origin (ICE-lite
//! on its media port, DTLS server) answers with its own. Each publisher track is one
//! media on the link, its mid derived from the publisher's id and mid
//! ([`relay_mid`]) so that both sides name it alike without telling each other; each
//! simulcast layer is one stream of it (its rid), declared by the origin on its first
//! packet with an SSRC and an RTX SSRC of its own. The edge finds the streams by the
//! mid and rid header extensions str0m sends until the edge's receiver reports come
//! back. A new track therefore needs no renegotiation: a `TrackAdded` over NATS, and
//! its packets.
//!
//! Sequence numbers are renumbered per stream from a fixed start, keeping the
//! publisher's gaps (a loss upstream stays a loss) so that NACKs on the link ask for
//! the packets the link lost, which the origin resends from its RTX cache.
#![warn(clippy::disallowed_methods)] // Sans-IO: see clippy.toml

use std::net::SocketAddr;
use std::time::Instant;

use rand::Rng;
use str0m::format::PayloadParams;
use str0m::media::{KeyframeRequest, KeyframeRequestKind, MediaKind, Mid, Pt, Rid};
use str0m::rtp::{RtpPacket, RtpWrite};
use str0m::{Candidate, Rtc};
use tracing::{debug, info, warn};

use super::{Output, Shard};
use crate::sfu::driver::{Drained, Driver};
use crate::sfu::link::{LinkMsg, LinkParams, TrackPacket, REMOTE_HOME};
use crate::sfu::peer::{nackable, Client, Local, Peer, Served};
use crate::signaling::protocol::{ErrorCode, PeerId, PeerInfo, Role, ServerMsg};

/// The first sequence number of a relayed stream; packets of the publisher's that
/// arrive out of order from before the first one relayed keep their place below it.
const START_SEQ: u64 = 1 << 14;

/// One relay link this shard holds.
pub(super) struct Link {
    pub(super) room: String,
    pub(super) side: Side,
}

/// Which end of the link this shard is.
pub(super) enum Side {
    /// The room's origin, sending to edge `edge` (its worker index).
    Out {
        edge: usize,
        /// The streams declared so far, one per (publisher, mid, layer).
        streams: Vec<OutStream>,
        /// Medias declared so far (relay mids).
        medias: Vec<Mid>,
    },
    /// An edge, receiving from the origin on its own socket `local`.
    In {
        local: SocketAddr,
        /// Medias declared so far: relay mid → (publisher, its mid).
        medias: Vec<(Mid, PeerId, Mid)>,
        /// Payload parameters of the PTs seen, looked up once.
        params: Vec<(Pt, Option<PayloadParams>)>,
    },
}

/// One relayed stream at the origin.
pub(super) struct OutStream {
    publisher: PeerId,
    mid: Mid,
    rid: Option<Rid>,
    relay_mid: Mid,
    ssrc: u32,
    /// The publisher's sequence number of the first packet relayed.
    first_seq: u64,
    /// Publisher PT → the link's PT for the same codec.
    pts: Vec<(Pt, Option<Pt>)>,
}

/// The mid of publisher `publisher`'s track `mid` on every relay link (at most 16
/// characters: the id in base 36, `_`, the publisher's mid).
pub(crate) fn relay_mid(publisher: PeerId, mid: Mid) -> Mid {
    const DIGITS: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut id = String::new();
    let mut n = publisher;
    loop {
        id.insert(0, DIGITS[(n % 36) as usize] as char);
        n /= 36;
        if n == 0 {
            break;
        }
    }
    Mid::from(format!("{id}_{}", mid.to_string().trim()).as_str())
}

impl Shard {
    /// Relay links this shard holds.
    pub fn relay_links(&self) -> usize {
        self.relays.len()
    }

    /// Whether `id` is a relay link.
    pub(super) fn is_relay(&self, id: PeerId) -> bool {
        !self.relays.is_empty() && self.relays.contains_key(&id)
    }

    /// A peer id for a new link: drawn from the shard's generator, above the ids
    /// signaling hands out (they never reach a page).
    fn link_id(&mut self) -> PeerId {
        loop {
            let id = self.rng.random::<u64>() | (1 << 63);
            if !self.peers.contains_key(&id) {
                return id;
            }
        }
    }

    // ---- edge side ---------------------------------------------------------------

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
        let rate = self.cfg.direct_rate;
        let mut local_peer =
            Local::new(Client::Relay, creds.ufrag.clone(), creds.pass.clone(), rate);
        local_peer.rtc = Some(driver);
        let info = PeerInfo::joining(id, "relay link".into());
        let peer = Peer::new(
            id,
            info,
            Role::Viewer,
            room.clone(),
            Served::Here(Box::new(local_peer)),
        );
        self.peers.insert(id, peer);
        self.relay_local.insert(local, id);
        self.relays.insert(
            id,
            Link {
                room: room.clone(),
                side: Side::In {
                    local,
                    medias: Vec::new(),
                    params: Vec::new(),
                },
            },
        );
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
            let mut api = rtc.direct_api();
            api.set_remote_ice_credentials(str0m::ice::IceCreds {
                ufrag: params.ufrag,
                pass: params.pass,
            });
            api.set_remote_fingerprint(fingerprint);
            for addr in &params.candidates {
                if let Ok(c) = Candidate::host(*addr, "udp") {
                    rtc.add_remote_candidate(c);
                }
            }
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
            self.fan_out(now, publisher, packet);
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
    fn relay_lost(&mut self, now: Instant, room: &str) {
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

    // ---- origin side -------------------------------------------------------------

    /// Origin: edge `from` offers a link for `room` (its link id `link`).
    pub(super) fn link_offer(
        &mut self,
        now: Instant,
        room: String,
        link: PeerId,
        params: LinkParams,
        from: usize,
    ) {
        // An edge that offers again replaces its link.
        let old: Vec<PeerId> = self
            .relay_out
            .get(&room)
            .map(|v| {
                v.iter()
                    .filter(|(e, _)| *e == from)
                    .map(|(_, id)| *id)
                    .collect()
            })
            .unwrap_or_default();
        for id in old {
            self.close_relay(now, id, "replaced", false);
        }
        let Ok(fingerprint) = params.fingerprint.parse() else {
            warn!(room, "an edge's DTLS fingerprint does not parse");
            return;
        };
        let id = self.link_id();
        let creds = self.new_creds();
        let mut rtc = self.build_rtc(now, creds.clone(), false, false);
        {
            let mut api = rtc.direct_api();
            api.set_ice_controlling(false);
            api.set_remote_ice_credentials(str0m::ice::IceCreds {
                ufrag: params.ufrag,
                pass: params.pass,
            });
            api.set_remote_fingerprint(fingerprint);
        }
        for addr in &params.candidates {
            if let Ok(c) = Candidate::host(*addr, "udp") {
                rtc.add_remote_candidate(c);
            }
        }
        let fingerprint = rtc.direct_api().local_dtls_fingerprint().to_string();
        if let Err(e) = rtc.direct_api().start_dtls(false) {
            warn!(room, "relay link: {e}");
            return;
        }
        let mut scratch = Drained::default();
        let driver = match Driver::new(id, rtc, now, &mut scratch) {
            Ok(d) => d,
            Err(e) => {
                warn!(room, "relay link: {e}");
                return;
            }
        };
        self.drained.transmits.extend(scratch.transmits);
        let rate = self.cfg.direct_rate;
        let mut local = Local::new(Client::Relay, creds.ufrag.clone(), creds.pass.clone(), rate);
        local.rtc = Some(driver);
        self.routes.add_ufrag(creds.ufrag.clone(), id);
        let info = PeerInfo::joining(id, "relay link".into());
        let peer = Peer::new(
            id,
            info,
            Role::Viewer,
            room.clone(),
            Served::Here(Box::new(local)),
        );
        self.peers.insert(id, peer);
        self.relays.insert(
            id,
            Link {
                room: room.clone(),
                side: Side::Out {
                    edge: from,
                    streams: Vec::new(),
                    medias: Vec::new(),
                },
            },
        );
        self.relay_out
            .entry(room.clone())
            .or_default()
            .push((from, id));
        self.schedule(id);
        info!(room, edge = from, "relay link to an edge node");
        let msg = LinkMsg::LinkAnswer {
            room,
            link,
            params: LinkParams {
                ufrag: creds.ufrag,
                pass: creds.pass,
                fingerprint,
                candidates: self.cfg.candidates.clone(),
            },
        };
        self.out.push_back(Output::Link(from, msg));
    }

    /// Origin: edge `from` closed its link of `room`.
    pub(super) fn link_closed(&mut self, now: Instant, room: &str, from: usize) {
        let ids: Vec<PeerId> = self
            .relay_out
            .get(room)
            .map(|v| {
                v.iter()
                    .filter(|(e, _)| *e == from)
                    .map(|(_, id)| *id)
                    .collect()
            })
            .unwrap_or_default();
        for id in ids {
            self.close_relay(now, id, "closed by the edge", true);
        }
    }

    /// Origin: one of publisher `from`'s packets, once on each link of its room.
    pub(super) fn relay_out_rtp(&mut self, now: Instant, from: PeerId, pkt: &TrackPacket) {
        let Some(room) = self.peers.get(&from).map(|p| p.room.as_str()) else {
            return;
        };
        let Some(links) = self.relay_out.get(room) else {
            return;
        };
        let links: Vec<PeerId> = links.iter().map(|(_, id)| *id).collect();
        let kind = self
            .peers
            .get(&from)
            .and_then(|p| p.up.get(&pkt.mid))
            .map(|u| u.kind);
        let Some(kind) = kind else {
            return;
        };
        for link in links {
            match self.write_relay(link, from, kind, pkt) {
                Ok(true) => {
                    self.counters.relayed += 1;
                    self.counters.relayed_bytes += pkt.payload.len() as u64;
                    // Written with `write_rtp`: it waits for a timeout.
                    self.after_write(now, link, false);
                }
                Ok(false) => {}
                Err(e) => self.fail(link, &e),
            }
        }
    }

    /// Writes one packet on one link; `Ok(false)` when not (not connected yet, a
    /// codec the link lacks, or a packet from before the stream's first).
    fn write_relay(
        &mut self,
        link: PeerId,
        from: PeerId,
        kind: MediaKind,
        pkt: &TrackPacket,
    ) -> Result<bool, str0m::RtcError> {
        let new_ssrcs: (u32, u32) = (self.rng.random(), self.rng.random());
        let (
            Some(Link {
                side: Side::Out {
                    streams, medias, ..
                },
                ..
            }),
            Some(peer),
        ) = (self.relays.get_mut(&link), self.peers.get_mut(&link))
        else {
            return Ok(false);
        };
        let Some(local) = peer.here_mut() else {
            return Ok(false);
        };
        let (Some(_), Some(driver)) = (local.connected_at, local.rtc.as_mut()) else {
            return Ok(false);
        };
        let index = streams
            .iter()
            .position(|s| s.publisher == from && s.mid == pkt.mid && s.rid == pkt.rid);
        let (index, declare) = match index {
            Some(i) => (i, None),
            None => {
                let relay_mid = relay_mid(from, pkt.mid);
                let rtx = (kind == MediaKind::Video).then_some(new_ssrcs.1);
                streams.push(OutStream {
                    publisher: from,
                    mid: pkt.mid,
                    rid: pkt.rid,
                    relay_mid,
                    ssrc: new_ssrcs.0,
                    first_seq: pkt.seq_no,
                    pts: Vec::new(),
                });
                let media = (!medias.contains(&relay_mid)).then_some(kind);
                if media.is_some() {
                    medias.push(relay_mid);
                }
                (streams.len() - 1, Some((relay_mid, rtx, media)))
            }
        };
        let s = &mut streams[index];
        let Some(delta) = pkt.seq_no.checked_sub(s.first_seq) else {
            return Ok(false);
        };
        let pt = match s.pts.iter().find(|(p, _)| *p == pkt.params.pt()) {
            Some((_, out)) => *out,
            None => {
                let out = driver
                    .rtc()
                    .codec_config()
                    .match_params(pkt.params)
                    .map(|p| p.pt());
                s.pts.push((pkt.params.pt(), out));
                out
            }
        };
        let Some(pt) = pt else {
            return Ok(false);
        };
        let (ssrc, rid) = (s.ssrc, s.rid);
        let write = RtpWrite::new(
            pt,
            (START_SEQ + delta).into(),
            pkt.rtp_time,
            pkt.received,
            pkt.payload.clone(),
        )
        .marker(pkt.marker)
        .ext_vals(pkt.ext.clone())
        .nackable(nackable(pkt.params.spec().codec));
        driver.mutate(&mut self.drained, |rtc| {
            let mut api = rtc.direct_api();
            if let Some((relay_mid, rtx, media)) = declare {
                if let Some(kind) = media {
                    api.declare_media(relay_mid, kind);
                }
                api.declare_stream_tx(ssrc.into(), rtx.map(Into::into), relay_mid, rid);
            }
            match api.stream_tx(&ssrc.into()) {
                Some(tx) => {
                    tx.write_rtp(write);
                    true
                }
                None => false,
            }
        })
    }

    /// Origin: an edge asks (RTCP on the link) for a keyframe of a relayed track.
    pub(super) fn relay_keyframe_request(
        &mut self,
        now: Instant,
        link: PeerId,
        req: KeyframeRequest,
    ) {
        let Some(Link {
            side: Side::Out { streams, .. },
            ..
        }) = self.relays.get(&link)
        else {
            return;
        };
        let Some(s) = streams.iter().find(|s| s.relay_mid == req.mid) else {
            return;
        };
        let (publisher, mid) = (s.publisher, s.mid);
        self.request_keyframe(now, publisher, mid, req.rid, req.kind);
    }

    // ---- both --------------------------------------------------------------------

    /// Removes link `id` (it failed, timed out, or is no longer needed). `tell`: the
    /// other node hears it (over NATS) when it does not know yet.
    pub(super) fn close_relay(&mut self, now: Instant, id: PeerId, why: &str, tell: bool) {
        let Some(link) = self.relays.remove(&id) else {
            return;
        };
        let Some(mut peer) = self.peers.remove(&id) else {
            return;
        };
        info!(room = link.room, why, "relay link closed");
        if let Served::Here(local) = &mut peer.served {
            self.unroute(id, local);
            if let Some(driver) = local.rtc.as_mut() {
                let mut scratch = Drained::default();
                let _ = driver.mutate(&mut scratch, |rtc| rtc.close());
                self.drained.transmits.extend(scratch.transmits);
            }
        }
        self.out.push_back(Output::Close(id));
        match link.side {
            Side::In { local, .. } => {
                self.relay_local.remove(&local);
                if self.relay_in.get(&link.room) == Some(&id) {
                    self.relay_in.remove(&link.room);
                }
                if tell {
                    let msg = LinkMsg::LinkClosed {
                        room: link.room.clone(),
                        from: self.cfg.worker,
                    };
                    self.out.push_back(Output::Link(REMOTE_HOME, msg));
                } else {
                    self.relay_lost(now, &link.room);
                }
            }
            Side::Out { edge, .. } => {
                if let Some(v) = self.relay_out.get_mut(&link.room) {
                    v.retain(|(_, l)| *l != id);
                    if v.is_empty() {
                        self.relay_out.remove(&link.room);
                    }
                }
                // The edge's viewers of the room go with the link: their stubs here
                // (and what the registry counts for them) are removed.
                let far: Vec<PeerId> = self
                    .rooms
                    .viewers(&link.room)
                    .iter()
                    .copied()
                    .filter(|v| {
                        self.peers.get(v).is_some_and(
                            |p| matches!(p.served, Served::Elsewhere { worker } if worker == edge),
                        )
                    })
                    .collect();
                for v in far {
                    self.leave(now, v, "disconnected");
                    self.out.push_back(Output::Close(v));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relay_mids_fit_and_differ() {
        let a = relay_mid((1 << 52) + 12345, Mid::from("10"));
        let b = relay_mid((1 << 52) + 12345, Mid::from("1"));
        let c = relay_mid(7, Mid::from("10"));
        assert_ne!(a, b);
        assert_ne!(a, c);
        assert!(a.to_string().trim().len() <= 16, "{a}");
        assert_eq!(c.to_string().trim(), "7_10");
    }
}

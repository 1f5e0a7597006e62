//! Relay links, the origin's side: it answers an edge's offer, declares each relayed
//! stream on its first packet, and writes the room's packets to every link (see
//! `relay.rs`).
#![warn(clippy::disallowed_methods)] // Sans-IO: see clippy.toml

use std::time::Instant;

use rand::Rng;
use str0m::media::{KeyframeRequest, MediaKind};
use str0m::rtp::RtpWrite;
use tracing::{info, warn};

use super::relay::{relay_mid, set_link_peer, Link, OutStream, Side, START_SEQ};
use super::{Output, Shard};
use crate::sfu::driver::{Drained, Driver};
use crate::sfu::link::{LinkMsg, LinkParams, TrackPacket};
use crate::sfu::peer::nackable;
use crate::signaling::protocol::PeerId;

impl Shard {
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
        let old = self.links_from(&room, from);
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
        rtc.direct_api().set_ice_controlling(false);
        set_link_peer(&mut rtc, params, fingerprint);
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
        self.routes.add_ufrag(creds.ufrag.clone(), id);
        let side = Side::Out {
            edge: from,
            streams: Vec::new(),
            medias: Vec::new(),
        };
        self.add_link(id, &room, &creds, driver, side);
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
        let ids = self.links_from(room, from);
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
}

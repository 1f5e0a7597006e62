//! SDP negotiation with browsers: their offers (the first creates the peer's `Rtc`),
//! the server's offers when tracks come and go (one exchange at a time; the answer
//! triggers the next), trickled candidates, and the down tracks each exchange opens
//! and stops.

use std::time::{Duration, Instant};

use str0m::change::{SdpAnswer, SdpOffer};
use str0m::ice::IceCreds;
use str0m::media::{Direction, KeyframeRequestKind, MediaKind, Mid};
use str0m::Candidate;
use tracing::debug;

use super::rtc::offers_twcc;
use super::Shard;
use crate::sfu::driver::Driver;
use crate::sfu::peer::{Client, DownState, DownTrack, Local, Peer, Spare, TrackKey};
use crate::sfu::rewrite::Rewriter;
use crate::signaling::protocol::{ErrorCode, MidOwner, PeerId, Role, ServerMsg};

/// Packets and age kept for answering NACKs per video stream (see `tune_send_stream`).
const RTX_CACHE_PACKETS: usize = 128;
const RTX_CACHE_AGE: Duration = Duration::from_secs(1);

impl Shard {
    pub(super) fn handle_offer(&mut self, now: Instant, id: PeerId, sdp: &str) {
        let offer = match SdpOffer::from_sdp_string(sdp) {
            Ok(o) => o,
            Err(e) => {
                let msg = format!("invalid SDP offer: {e}");
                self.signal(id, ServerMsg::error(ErrorCode::BadSdp, msg));
                return;
            }
        };
        // Used only if the offer restarts ICE (see below).
        let restart = self.new_creds();
        let Some(peer) = self.peers.get(&id) else {
            return;
        };
        let receive_only = peer.role == Role::Viewer;
        let Some(local) = peer.here() else {
            return;
        };
        let fresh = local.rtc.is_none();
        if fresh {
            let creds = IceCreds {
                ufrag: local.ufrag.clone(),
                pass: local.pass.clone(),
            };
            let twcc = offers_twcc(sdp);
            let bwe = self.estimates(twcc);
            let rtc = self.build_rtc(now, creds, twcc, receive_only);
            let Ok(driver) = Driver::new(id, rtc, now, &mut self.drained) else {
                return;
            };
            if let Some(l) = self.peers.get_mut(&id).and_then(Peer::here_mut) {
                l.rtc = Some(driver);
                l.bwe = bwe;
                l.estimation_paused = false;
            }
        }
        // Glare: the browser's offer wins; str0m drops our pending offer, so the tracks
        // in it go back to waiting for the next one.
        if self.void_offer(id) {
            if let Some(local) = self.peers.get_mut(&id).and_then(Peer::here_mut) {
                local
                    .down
                    .retain(|_, d| !(d.state == DownState::ToOpen && d.source_gone));
            }
        }
        let Some(local) = self.peers.get_mut(&id).and_then(Peer::here_mut) else {
            return;
        };
        let driver = local.rtc.as_mut().expect("created above");
        let accepted = driver.mutate(&mut self.drained, |rtc| {
            let answer = rtc.sdp_api().accept_offer(offer)?;
            let creds = rtc.direct_api().local_ice_credentials();
            Ok::<_, str0m::RtcError>((answer, creds))
        });
        let (answer, creds) = match accepted {
            Ok(Ok(a)) => a,
            Ok(Err(e)) => {
                if fresh {
                    local.rtc = None;
                }
                let msg = format!("cannot accept the offer: {e}");
                self.signal(id, ServerMsg::error(ErrorCode::BadSdp, msg));
                return;
            }
            Err(e) => {
                self.fail(id, &e);
                return;
            }
        };
        let first = !local.answered;
        local.answered = true;
        let mut sdp = answer.to_sdp_string();
        // A remote ICE restart gives the server new credentials. str0m picks them at
        // random; ours must name this worker (the receive task routes STUN by the
        // ufrag's first character), so they are replaced, in the answer too.
        if creds.ufrag != local.ufrag {
            debug!(id, "ICE restart");
            // Random tokens, so every occurrence is theirs (ice-ufrag, ice-pwd, and the
            // candidates' ufrag extension).
            sdp = sdp
                .replace(&creds.ufrag, &restart.ufrag)
                .replace(&creds.pass, &restart.pass);
            let ours = restart.clone();
            let failed = driver
                .mutate(&mut self.drained, |rtc| {
                    rtc.direct_api().set_local_ice_credentials(ours)
                })
                .err();
            let old = std::mem::replace(&mut local.ufrag, restart.ufrag.clone());
            local.pass = restart.pass;
            local.recent_stun.clear();
            self.routes.remove_ufrag(&old);
            self.routes.add_ufrag(restart.ufrag, id);
            if let Some(e) = failed {
                self.fail(id, &e);
            }
        }
        self.schedule(id);
        self.signal(id, ServerMsg::Answer { sdp });
        // MediaAdded events of this offer subscribe the others to the new up tracks.
        self.process(now);
        if first {
            // The newcomer receives everything already published in the room (a viewer
            // the same; it has no up tracks of its own).
            let room = self.peers[&id].room.clone();
            let tracks: Vec<(TrackKey, MediaKind)> = self
                .rooms
                .members(&room)
                .iter()
                .filter(|o| **o != id)
                .filter_map(|o| self.peers.get(o))
                .flat_map(|p| p.up.iter().map(move |(mid, u)| ((p.id, *mid), u.kind)))
                .collect();
            for (key, kind) in tracks {
                self.subscribe(id, key, kind);
            }
        }
        self.negotiate(id);
    }

    pub(super) fn handle_answer(&mut self, now: Instant, id: PeerId, sdp: &str) {
        let answer = match SdpAnswer::from_sdp_string(sdp) {
            Ok(a) => a,
            Err(e) => {
                let msg = format!("invalid SDP answer: {e}");
                self.signal(id, ServerMsg::error(ErrorCode::BadSdp, msg));
                return;
            }
        };
        let Some(local) = self.peers.get_mut(&id).and_then(Peer::here_mut) else {
            return;
        };
        let (Some(pending), Some(driver)) = (local.pending_offer.take(), local.rtc.as_mut()) else {
            let msg = "answer without a pending offer";
            self.signal(id, ServerMsg::error(ErrorCode::BadState, msg));
            return;
        };
        let accepted = driver.mutate(&mut self.drained, |rtc| {
            rtc.sdp_api().accept_answer(pending, answer)
        });
        match accepted {
            Ok(Ok(())) => local.reusing.clear(),
            Ok(Err(e)) => {
                // The offer is void; its changes wait for the next one.
                self.requeue(id);
                self.schedule(id);
                let msg = format!("cannot accept the answer: {e}");
                self.signal(id, ServerMsg::error(ErrorCode::BadSdp, msg));
                return;
            }
            Err(e) => {
                self.fail(id, &e);
                return;
            }
        }
        let mut opened = Vec::new();
        let mut stopped = Vec::new();
        for (key, d) in local.down.iter_mut() {
            match d.state {
                DownState::Negotiating(m) if d.source_gone => d.state = DownState::ToStop(m),
                DownState::Negotiating(m) => {
                    d.state = DownState::Open(m);
                    if d.kind == MediaKind::Video {
                        opened.push((*key, m));
                    }
                }
                DownState::Stopping(_) => stopped.push(*key),
                _ => {}
            }
        }
        for key in stopped {
            retire(local, key);
        }
        self.schedule(id);
        for (_, mid) in &opened {
            self.tune_send_stream(id, *mid);
        }
        // A new receiver needs a keyframe to start decoding.
        for ((src, mid), _) in opened {
            self.request_keyframe(now, src, mid, None, KeyframeRequestKind::Fir);
        }
        self.choose_layers(now, id, "new track");
        self.negotiate(id);
    }

    pub(super) fn handle_candidate(&mut self, id: PeerId, candidate: &str) {
        let line = candidate.trim();
        if line.is_empty() {
            return;
        }
        // ICE-lite needs no remote candidates (the browser's checks reveal its address),
        // but they help when given. mDNS names cannot be parsed and are skipped.
        match Candidate::from_sdp_string(line) {
            Ok(c) => {
                self.with_rtc(id, |rtc| rtc.add_remote_candidate(c));
            }
            Err(e) => debug!(id, "skipped remote candidate {line:?}: {e}"),
        }
    }

    /// Gives everyone else in the publisher's room its new track `mid`.
    pub(super) fn offer_track(
        &mut self,
        now: Instant,
        publisher: PeerId,
        mid: Mid,
        kind: MediaKind,
    ) {
        let Some(room) = self.peers.get(&publisher).map(|p| p.room.clone()) else {
            return;
        };
        for o in self.audience(&room, publisher) {
            let client = self
                .peers
                .get(&o)
                .and_then(Peer::here)
                .map(|l| matches!(l.client, Client::Whep { .. }));
            match client {
                Some(false) => {
                    self.subscribe(o, (publisher, mid), kind);
                    self.negotiate(o);
                }
                Some(true) => self.attach_fixed(now, o),
                None => {}
            }
        }
    }

    /// Makes `sub` a receiver of the track `key`.
    pub(super) fn subscribe(&mut self, sub: PeerId, key: TrackKey, kind: MediaKind) {
        if sub == key.0 {
            return;
        }
        let start_seq = self.start_seq();
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
        let source = up.source;
        let Some(local) = self.peers.get_mut(&sub).and_then(Peer::here_mut) else {
            return;
        };
        local
            .down
            .entry(key)
            .or_insert_with(|| DownTrack::new(kind, source, start_seq));
    }

    /// Sends the server's offer for pending track changes, unless an exchange is
    /// already under way (one at a time; the answer triggers the next).
    pub(super) fn negotiate(&mut self, id: PeerId) {
        let Some(local) = self.peers.get_mut(&id).and_then(Peer::here_mut) else {
            return;
        };
        if !local.answered || local.pending_offer.is_some() || local.client != Client::Browser {
            return;
        }
        if !local
            .down
            .values()
            .any(|d| matches!(d.state, DownState::ToOpen | DownState::ToStop(_)))
        {
            return;
        }
        let Local {
            rtc,
            down,
            spare,
            reusing,
            ..
        } = local;
        let Some(driver) = rtc.as_mut() else {
            return;
        };
        let applied = driver.mutate(&mut self.drained, |rtc| {
            let mut api = rtc.sdp_api();
            // Stable m-line order: by publisher, then its mid.
            let mut keys: Vec<TrackKey> = down.keys().copied().collect();
            keys.sort();
            for key in keys {
                let d = down.get_mut(&key).expect("key from the map");
                match d.state {
                    DownState::ToOpen => {
                        let mid = match spare.iter().position(|s| s.kind == d.kind) {
                            Some(i) => {
                                // An idle m-line of this kind sends again; its stream
                                // carries on from where it stopped.
                                let s = spare.swap_remove(i);
                                api.set_direction(s.mid, Direction::SendOnly);
                                d.rewriter = s.rewriter;
                                d.vp8 = s.vp8;
                                reusing.push(s.mid);
                                s.mid
                            }
                            None => api.add_media(
                                d.kind,
                                Direction::SendOnly,
                                Some(key.0.to_string()),
                                Some(format!("{}-{}", key.0, key.1)),
                                None,
                            ),
                        };
                        d.state = DownState::Negotiating(mid);
                    }
                    DownState::ToStop(mid) => {
                        // Inactive, not stopped: the m-line is kept for the next track.
                        api.set_direction(mid, Direction::Inactive);
                        d.state = DownState::Stopping(mid);
                    }
                    _ => {}
                }
            }
            api.apply()
        });
        match applied {
            Ok(Some((offer, pending))) => {
                local.pending_offer = Some(pending);
                let sdp = offer.to_sdp_string();
                local.pending_sdp = Some(sdp.clone());
                let tracks = owners(local);
                self.schedule(id);
                self.signal(id, ServerMsg::Offer { sdp, tracks });
            }
            Ok(None) => {
                // Nothing changed for str0m (e.g. m-lines already inactive).
                let idle: Vec<TrackKey> = local
                    .down
                    .iter()
                    .filter(|(_, d)| matches!(d.state, DownState::Stopping(_)))
                    .map(|(k, _)| *k)
                    .collect();
                for key in idle {
                    retire(local, key);
                }
                self.schedule(id);
            }
            Err(e) => {
                self.fail(id, &e);
            }
        }
    }

    /// Sets up the stream this server sends on `mid`:
    /// - **Unpaced**: a forwarded packet goes out as soon as it arrives, as mediasoup
    ///   and Janus forward. The publisher's browser already paces its encoder's output,
    ///   and a relay cannot slow that encoder for one receiver: str0m's pacer (on with
    ///   bandwidth estimation, audio excepted) would hold video to a receiver's
    ///   estimate and queue the rest for up to 2 s. The estimate still picks simulcast
    ///   layers (`choose_layers`).
    /// - **A retransmission cache sized for a LAN**: 128 packets, at most 1 s old,
    ///   answer NACKs for half a second of 2.5 Mbit/s video, many round trips on a LAN.
    pub(super) fn tune_send_stream(&mut self, id: PeerId, mid: Mid) {
        self.with_rtc(id, |rtc| {
            if let Some(tx) = rtc.direct_api().stream_tx_by_mid(mid, None) {
                // 0.15: str0m's default cap on the share of resends.
                tx.set_rtx_cache(RTX_CACHE_PACKETS, RTX_CACHE_AGE, Some(0.15));
            }
        });
        self.with_rtc(id, |rtc| {
            if let Some(tx) = rtc.direct_api().stream_tx_by_mid(mid, None) {
                tx.set_unpaced(true);
            }
        });
    }
}

/// Whose track each sending m-line carries, for the page (see `ServerMsg::Offer`).
pub(super) fn owners(local: &Local) -> Vec<MidOwner> {
    let mut tracks: Vec<MidOwner> = local
        .down
        .iter()
        .filter_map(|(key, d)| match d.state {
            DownState::Negotiating(m) | DownState::Open(m) => Some(MidOwner {
                mid: m.to_string(),
                peer: key.0,
                source: d.source,
            }),
            _ => None,
        })
        .collect();
    tracks.sort_by(|a, b| a.mid.cmp(&b.mid));
    tracks
}

/// The down track `key` has stopped: its m-line becomes a spare.
fn retire(local: &mut Local, key: TrackKey) {
    let Some(d) = local.down.remove(&key) else {
        return;
    };
    let DownState::Stopping(mid) = d.state else {
        return;
    };
    local.stats.forget(mid);
    local.spare.push(Spare {
        mid,
        kind: d.kind,
        rewriter: d.rewriter,
        vp8: d.vp8,
    });
}

impl Shard {
    /// Drops the server's pending offer, if there is one (glare, or its answer was
    /// refused): the tracks in it go back to waiting for the next one. Returns
    /// whether there was one.
    fn void_offer(&mut self, id: PeerId) -> bool {
        let Some(local) = self.peers.get_mut(&id).and_then(Peer::here_mut) else {
            return false;
        };
        if local.pending_offer.take().is_none() {
            return false;
        }
        self.requeue(id);
        true
    }

    /// The changes of a void offer wait for the next one.
    fn requeue(&mut self, id: PeerId) {
        let Some(local) = self.peers.get_mut(&id).and_then(Peer::here_mut) else {
            return;
        };
        let reused = std::mem::take(&mut local.reusing);
        self.unreuse(id, reused);
        let Some(local) = self.peers.get_mut(&id).and_then(Peer::here_mut) else {
            return;
        };
        for d in local.down.values_mut() {
            d.state = match d.state {
                DownState::Negotiating(_) => DownState::ToOpen,
                DownState::Stopping(m) => DownState::ToStop(m),
                s => s,
            };
        }
    }

    /// The spare m-lines `mids` that a void offer was reusing are spares again,
    /// inactive as the browser last agreed, with their streams' rewriters.
    fn unreuse(&mut self, id: PeerId, mids: Vec<Mid>) {
        for mid in mids {
            let start_seq = self.start_seq();
            let Some(local) = self.peers.get_mut(&id).and_then(Peer::here_mut) else {
                return;
            };
            let Some(d) = local
                .down
                .values_mut()
                .find(|d| d.state == DownState::Negotiating(mid))
            else {
                continue;
            };
            d.state = DownState::ToOpen;
            let spare = Spare {
                mid,
                kind: d.kind,
                rewriter: std::mem::replace(&mut d.rewriter, Rewriter::new(start_seq)),
                vp8: std::mem::take(&mut d.vp8),
            };
            local.spare.push(spare);
            self.with_rtc(id, |rtc| {
                rtc.sdp_api().set_direction(mid, Direction::Inactive)
            });
        }
    }
}

//! Up tracks coming and going: an m-line a participant sends on becomes a track the
//! room receives (`publish`), and one it stops sending on ends for every receiver
//! (`unpublish`), as does every track of a participant who leaves (`end_track`).
//! Receivers' m-lines are then renegotiated (browsers) or rebound (WHEP players).

use std::time::Instant;

use str0m::media::{MediaAdded, Mid};
use tracing::debug;

use super::Shard;
use crate::sfu::peer::{Client, DownState, Peer, Served, TrackKey, UpTrack};
use crate::signaling::protocol::{PeerId, Role};

impl Shard {
    /// Peer `id`'s `Rtc` has a new m-line: a WHEP player's m-lines are bound to the
    /// room's publishers; a participant's m-line that sends is a new up track.
    pub(super) fn publish(&mut self, now: Instant, id: PeerId, m: MediaAdded) {
        let Some(peer) = self.peers.get_mut(&id) else {
            return;
        };
        let role = peer.role;
        let Served::Here(local) = &mut peer.served else {
            return;
        };
        if let Client::Whep { mids } = &mut local.client {
            // The player's m-lines appear once it is connected: bind them.
            if m.direction.is_sending() {
                mids.push((m.mid, m.kind));
                self.attach_fixed(now, id);
            }
            return;
        }
        if !m.direction.is_receiving() || peer.up.contains_key(&m.mid) || role == Role::Viewer {
            return;
        }
        let simulcast = m
            .simulcast
            .as_ref()
            .is_some_and(|s| s.recv.len() > 1 || s.send.len() > 1);
        if local.screen_refused == Some(m.mid) {
            // A share the room had no room for: not forwarded, but remembered, so it
            // sends again once a later `screen` for it is accepted.
            debug!(id, mid = %m.mid, "refused screen share: not forwarded");
            local.ended_up.push((m.mid, m.kind, simulcast));
            return;
        }
        let source = local.source(m.mid, m.kind);
        debug!(id, mid = %m.mid, kind = ?m.kind, ?source, simulcast, "up track");
        peer.up
            .insert(m.mid, UpTrack::new(m.kind, source, simulcast));
        self.offer_track(now, id, m.mid, m.kind);
        self.mirror_track(id, m.mid);
    }

    /// Peer `id` stopped sending on `mid`: the track ends for every receiver (and on
    /// the other workers of a spread room).
    pub(super) fn unpublish(&mut self, now: Instant, id: PeerId, mid: Mid) {
        let Some(peer) = self.peers.get_mut(&id) else {
            return;
        };
        let Some(up) = peer.up.remove(&mid) else {
            return;
        };
        debug!(id, %mid, "up track ended");
        if let Some(local) = peer.here_mut() {
            if !local.ended_up.iter().any(|(m, _, _)| *m == mid) {
                local.ended_up.push((mid, up.kind, up.simulcast));
            }
        }
        let room = peer.room.clone();
        let mut touched = Vec::new();
        self.record_ended(&room, id, Some(mid));
        self.end_track((id, mid), &up, &mut touched);
        self.renegotiate(now, touched);
        if self.peers.get(&id).is_some_and(Peer::is_here) {
            self.unmirror_track(id, mid);
        }
    }

    /// Peer `id` sends on `mid` again, an m-line that had stopped: a new up track.
    pub(super) fn republish(&mut self, now: Instant, id: PeerId, mid: Mid) {
        let Some(peer) = self.peers.get_mut(&id) else {
            return;
        };
        if peer.up.contains_key(&mid) || peer.role == Role::Viewer {
            return;
        }
        let Some(local) = peer.here_mut() else {
            return;
        };
        if local.screen_refused == Some(mid) {
            return;
        }
        let Some(i) = local.ended_up.iter().position(|(m, _, _)| *m == mid) else {
            return;
        };
        let (_, kind, simulcast) = local.ended_up.swap_remove(i);
        let source = local.source(mid, kind);
        debug!(id, %mid, ?source, "up track sends again");
        peer.up.insert(mid, UpTrack::new(kind, source, simulcast));
        self.offer_track(now, id, mid, kind);
        self.mirror_track(id, mid);
    }

    /// The up track `key` ended: each receiver's down track stops (or never opens),
    /// and the receivers to renegotiate are added to `touched`.
    pub(super) fn end_track(&mut self, key: TrackKey, up: &UpTrack, touched: &mut Vec<PeerId>) {
        for s in &up.subscribers {
            let Some(sub) = self.peers.get_mut(s).and_then(Peer::here_mut) else {
                continue;
            };
            if !touched.contains(s) {
                touched.push(*s);
            }
            let whep = sub.is_whep();
            let Some(d) = sub.down.get_mut(&key) else {
                continue;
            };
            d.source_gone = true;
            if whep {
                // Its m-line is free for the next publisher, whose packets carry on
                // the stream the player knows.
                if let Some(d) = sub.down.remove(&key) {
                    sub.spare.extend(d.into_spare());
                }
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

    /// Receivers whose tracks changed: browsers get the server's next offer, WHEP
    /// players have their fixed m-lines rebound.
    pub(super) fn renegotiate(&mut self, now: Instant, touched: Vec<PeerId>) {
        for o in touched {
            let whep = self
                .peers
                .get(&o)
                .and_then(Peer::here)
                .is_some_and(|l| l.is_whep());
            if whep {
                self.attach_fixed(now, o);
            } else {
                self.negotiate(o);
            }
        }
    }
}

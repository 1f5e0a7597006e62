//! One room over several workers: its home and its mirrors.
//!
//! A room's home worker owns its membership and its publishers' `Rtc`s. When the room
//! has many viewers the registry sends new viewers to other workers, which mirror the
//! room:
//!
//! - The mirror asks the home to admit each viewer (capacity, mode and the list of
//!   participants are the home's), and serves it itself once admitted: its `Rtc`,
//!   negotiation, layer choice and bandwidth estimate.
//! - For every publisher of the room the mirror keeps a stand-in peer without an `Rtc`
//!   ([`Served::StandIn`]) with the publisher's tracks; the home sends it each
//!   packet once, and the mirror fans it out to its viewers as the home does to its own.
//!   Keyframe requests for a stand-in go to the home.
//! - The home keeps a stub for each viewer served elsewhere ([`Served::Elsewhere`]):
//!   it counts towards the room's viewers, and signaling messages for it (someone
//!   joined, left, turned the camera off) are passed to its worker.
//!
//! Links between two workers keep their order, so a track is announced before its first
//! packet, and a viewer is admitted before any message for it.

use std::time::Instant;

use str0m::change::SdpOffer;
use str0m::media::Mid;
use tracing::{debug, info};

use super::admit::Arrival;
use super::{Output, Shard};
use crate::room::Joiner;
use crate::sfu::link::{LinkMsg, Publisher, TrackInfo, REMOTE_HOME};
use crate::sfu::peer::{Client, Peer, Served, UpTrack};
use crate::signaling::protocol::{ErrorCode, Mode, PeerId, PeerInfo, Role, ServerMsg};

/// Mirror side: a viewer waiting for its room's home to admit it.
pub(super) struct PendingAdmit {
    name: String,
    /// A WHEP player's offer (and whether it negotiates transport-wide CC), answered
    /// once admitted; `None` for a browser viewer.
    whep: Option<(SdpOffer, bool)>,
}

impl Shard {
    /// A viewer this shard serves asks to join a room whose home is worker `home`
    /// (its viewers are spread over workers): the home decides, and answers with
    /// [`LinkMsg::Admitted`] or [`LinkMsg::Refused`].
    pub fn join_mirrored(
        &mut self,
        home: usize,
        id: PeerId,
        room: &str,
        name: &str,
        mode: Mode,
        (token, host_token): (Option<&str>, Option<&str>),
    ) {
        let Some((room, name)) = self.admissible(id, room, name, token) else {
            return;
        };
        debug!(id, room, home, "viewer waits for its room's home");
        let host_token = self.host_token_ok(&room, host_token);
        self.ask_home(home, id, room, name, (mode, host_token), None);
    }

    /// Mirror side: viewer `id` waits while worker `home` decides whether `room` takes
    /// it; `whep` is a WHEP player's offer, answered once admitted.
    pub(super) fn ask_home(
        &mut self,
        home: usize,
        id: PeerId,
        room: String,
        name: String,
        (mode, host_token): (Mode, bool),
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
            host_token,
            from,
        };
        self.out.push_back(Output::Link(home, msg));
    }

    /// A message from another worker.
    pub fn handle_link(&mut self, now: Instant, msg: LinkMsg) {
        match msg {
            LinkMsg::Rtp { publisher, packet } => {
                if self.is_stand_in(publisher) {
                    self.fan_out_or_hold_stand_in(now, publisher, packet);
                }
            }
            LinkMsg::AdmitViewer {
                id,
                room,
                name,
                mode,
                host_token,
                from,
            } => self.admit_viewer(now, id, room, name, (mode, host_token), from),
            LinkMsg::ViewerLeft { room, id } => {
                let remote = self.peers.get(&id).is_some_and(|p| {
                    matches!(p.served, Served::Elsewhere { .. }) && p.room == room
                });
                if remote {
                    self.leave(now, id, "left");
                }
            }
            LinkMsg::Chat { room, from, text } => self.chat_from_elsewhere(now, &room, from, &text),
            LinkMsg::ChatHistory { room, id } => self.chat_history_elsewhere(now, &room, id),
            LinkMsg::KeyframeRequest {
                publisher,
                mid,
                layer,
                kind,
            } => {
                if self.peers.get(&publisher).is_some_and(Peer::is_here) {
                    self.request_keyframe(now, publisher, mid, layer, kind);
                }
            }
            LinkMsg::Admitted {
                id,
                room,
                home,
                mode,
                joined,
                publishers,
            } => self.admitted(now, id, room, home, mode, joined, publishers),
            LinkMsg::Refused { id, code, message } => {
                if let Some(pending) = self.pending_admits.remove(&id) {
                    info!(id, "join refused by the room's home: {message}");
                    self.refuse_waiting(id, pending.whep.is_some(), (code, message));
                }
            }
            LinkMsg::Signal { id, msg } => {
                if self.peers.get(&id).is_some_and(Peer::is_here) {
                    self.out.push_back(Output::Signal(id, msg));
                }
            }
            LinkMsg::TrackAdded {
                room,
                publisher,
                track,
            } => {
                let Some(&home) = self.mirrored.get(&room) else {
                    return;
                };
                let id = publisher.id;
                if self.stand_in(&room, home, publisher, &[track]) {
                    self.offer_track(now, id, track.mid, track.kind);
                }
            }
            LinkMsg::TrackRemoved {
                room,
                publisher,
                mid,
            } => {
                let here = self
                    .peers
                    .get(&publisher)
                    .is_some_and(|p| p.is_stand_in() && p.room == room);
                if here {
                    self.unpublish(now, publisher, mid);
                }
            }
            LinkMsg::LinkOffer {
                room,
                link,
                params,
                from,
            } => self.link_offer(now, room, link, params, from),
            LinkMsg::LinkClosed { room, from } => self.link_closed(now, &room, from),
            LinkMsg::LinkAnswer { room, link, params } => self.link_answer(&room, link, params),
            LinkMsg::PublisherLeft { room, publisher } => {
                let here = self
                    .peers
                    .get(&publisher)
                    .is_some_and(|p| p.is_stand_in() && p.room == room);
                if here {
                    self.leave(now, publisher, "left");
                }
            }
        }
        self.process(now);
    }

    fn is_stand_in(&self, id: PeerId) -> bool {
        self.peers.get(&id).is_some_and(Peer::is_stand_in)
    }

    /// Home: a viewer served by worker `from` asks to join `room`.
    fn admit_viewer(
        &mut self,
        now: Instant,
        id: PeerId,
        room: String,
        name: String,
        (mode, host_token): (Mode, bool),
        from: usize,
    ) {
        // The publishers as they are before the viewer arrives.
        let publishers: Vec<Publisher> = self
            .rooms
            .members(&room)
            .iter()
            .filter_map(|o| self.peers.get(o))
            .filter(|p| !p.up.is_empty())
            .map(|p| Publisher {
                info: p.info.clone(),
                tracks: p.up.iter().map(|(mid, u)| track_info(*mid, u)).collect(),
            })
            .collect();
        let arrival = Arrival::Elsewhere { worker: from };
        let admitted = match self.admit(
            now,
            id,
            &room,
            (mode, host_token),
            Role::Viewer,
            name.clone(),
            arrival,
        ) {
            Ok(a) => a,
            Err(e) => {
                let (code, message) = e.into_wire(&room);
                info!(id, room, "join refused: {message}");
                let msg = LinkMsg::Refused { id, code, message };
                self.out.push_back(Output::Link(from, msg));
                return;
            }
        };
        info!(
            id,
            room,
            name,
            worker = from,
            "joined as a viewer served by another worker"
        );
        let joined = self.joined_msg(id, &room, admitted.mode, &admitted.others);
        let links = self.mirrors.entry(room.clone()).or_default();
        match links.iter_mut().find(|(w, _)| *w == from) {
            Some((_, n)) => *n += 1,
            None => links.push((from, 1)),
        }
        let room_name = room.clone();
        let msg = LinkMsg::Admitted {
            id,
            room,
            home: self.cfg.worker,
            mode: admitted.mode,
            joined,
            publishers,
        };
        self.out.push_back(Output::Link(from, msg));
        self.tell_speaker(id, &room_name);
        self.tell_room(id, &room_name);
        self.tell_recording(id, &room_name);
        // After `Admitted` on the same link: the viewer is in by then.
        self.send_chat_history(now, id);
    }

    /// Mirror: viewer `id`, which was waiting to be admitted, hears why not: a WHEP
    /// player as its HTTP answer, a browser on its WebSocket, which then closes.
    fn refuse_waiting(&mut self, id: PeerId, whep: bool, (code, message): (ErrorCode, String)) {
        if whep {
            self.out
                .push_back(Output::HttpAnswer(id, Err((code, message))));
        } else {
            self.out
                .push_back(Output::Signal(id, ServerMsg::error(code, message)));
            self.out.push_back(Output::Close(id));
        }
    }

    /// Mirror: the home admitted viewer `id` into `room`.
    #[allow(clippy::too_many_arguments)]
    fn admitted(
        &mut self,
        now: Instant,
        id: PeerId,
        room: String,
        home: usize,
        mode: Mode,
        joined: ServerMsg,
        publishers: Vec<Publisher>,
    ) {
        let Some(PendingAdmit { name, whep, .. }) = self.pending_admits.remove(&id) else {
            // It left while waiting.
            self.out
                .push_back(Output::Link(home, LinkMsg::ViewerLeft { room, id }));
            return;
        };
        self.mirrored.insert(room.clone(), home);
        if home == REMOTE_HOME {
            self.ensure_relay_in(&room);
        }
        for Publisher { info, tracks } in publishers {
            let publisher = info.id;
            if self.stand_in(&room, home, info, &tracks) {
                for t in tracks {
                    self.offer_track(now, publisher, t.mid, t.kind);
                }
            }
        }
        if let Some((offer, twcc)) = whep {
            let client = Client::Whep { mids: Vec::new() };
            match self.open_http_session(now, id, room.clone(), offer, twcc, client) {
                Ok(answer) => {
                    debug!(id, room, home, "WHEP player admitted by its room's home");
                    self.out.push_back(Output::HttpAnswer(id, Ok(answer)));
                }
                Err(why) => self.turn_away(now, id, &room, home, true, why),
            }
            return;
        }
        let arrival = Arrival::Browser;
        if let Err(e) = self.admit(now, id, &room, (mode, true), Role::Viewer, name, arrival) {
            // Only if this worker's limits differ from the home's.
            let why = e.into_wire(&room);
            self.turn_away(now, id, &room, home, false, why);
            return;
        }
        debug!(id, room, home, "viewer admitted by its room's home");
        self.out.push_back(Output::Signal(id, joined));
    }

    /// Mirror: viewer `id`, admitted by the home, cannot be served here after all: it
    /// hears why, and the home that it left.
    fn turn_away(
        &mut self,
        now: Instant,
        id: PeerId,
        room: &str,
        home: usize,
        whep: bool,
        why: (ErrorCode, String),
    ) {
        self.refuse_waiting(id, whep, why);
        let msg = LinkMsg::ViewerLeft {
            room: room.to_string(),
            id,
        };
        self.out.push_back(Output::Link(home, msg));
        self.unmirror_if_unwatched(now, room);
    }

    /// Mirror: makes sure publisher `info` of `room` has a stand-in with `tracks`.
    /// Returns whether any track was new.
    fn stand_in(&mut self, room: &str, home: usize, info: PeerInfo, tracks: &[TrackInfo]) -> bool {
        let id = info.id;
        if !self.peers.contains_key(&id) {
            let mode = self.rooms.mode(room).unwrap_or_default();
            // A copy of the home's member: the home decided on the lock and the host.
            let copy = Joiner {
                role: Role::Participant,
                can_host: false,
                host_token: true,
            };
            if self.rooms.join(room, id, mode, copy).is_err() {
                return false;
            }
            let served = Served::StandIn { home };
            let peer = Peer::new(id, info, Role::Participant, room.to_string(), served);
            self.peers.insert(id, peer);
        }
        let Some(peer) = self.peers.get_mut(&id) else {
            return false;
        };
        let mut added = false;
        for t in tracks {
            if let std::collections::hash_map::Entry::Vacant(e) = peer.up.entry(t.mid) {
                e.insert(UpTrack::new(t.kind, t.source, t.simulcast));
                added = true;
            }
        }
        if added && home == REMOTE_HOME {
            self.declare_relay_media(room);
        }
        added
    }

    /// Home: publisher `id` has a new track `mid`; the mirrors of its room learn it.
    pub(super) fn mirror_track(&mut self, id: PeerId, mid: Mid) {
        let Some(peer) = self.peers.get(&id) else {
            return;
        };
        let (Some(links), Some(up)) = (self.mirrors.get(&peer.room), peer.up.get(&mid)) else {
            return;
        };
        let track = track_info(mid, up);
        for &(worker, _) in links {
            let msg = LinkMsg::TrackAdded {
                room: peer.room.clone(),
                publisher: peer.info.clone(),
                track,
            };
            self.out.push_back(Output::Link(worker, msg));
        }
    }

    /// The other workers of a spread room hear that `id` stopped sending `mid`.
    pub(super) fn unmirror_track(&mut self, id: PeerId, mid: Mid) {
        let Some(peer) = self.peers.get(&id) else {
            return;
        };
        let Some(links) = self.mirrors.get(&peer.room) else {
            return;
        };
        for &(worker, _) in links {
            let msg = LinkMsg::TrackRemoved {
                room: peer.room.clone(),
                publisher: id,
                mid,
            };
            self.out.push_back(Output::Link(worker, msg));
        }
    }

    /// After `peer` left: the other workers of a spread room hear of it.
    pub(super) fn left_spread_room(&mut self, now: Instant, peer: &Peer) {
        let room = &peer.room;
        match peer.served {
            Served::Elsewhere { worker } => {
                if let Some(links) = self.mirrors.get_mut(room) {
                    if let Some(l) = links.iter_mut().find(|(w, _)| *w == worker) {
                        l.1 = l.1.saturating_sub(1);
                    }
                    links.retain(|(_, n)| *n > 0);
                    if links.is_empty() {
                        self.mirrors.remove(room);
                    }
                }
            }
            Served::StandIn { .. } => {}
            Served::Here(_) => {
                if let (Role::Participant, Some(links)) = (peer.role, self.mirrors.get(room)) {
                    for &(worker, _) in links {
                        let msg = LinkMsg::PublisherLeft {
                            room: room.clone(),
                            publisher: peer.id,
                        };
                        self.out.push_back(Output::Link(worker, msg));
                    }
                }
                if let Some(&home) = self.mirrored.get(room) {
                    let msg = LinkMsg::ViewerLeft {
                        room: room.clone(),
                        id: peer.id,
                    };
                    self.out.push_back(Output::Link(home, msg));
                    self.unmirror_if_unwatched(now, room);
                }
            }
        }
    }

    /// Mirror: once none of a mirrored room's viewers is left here, its stand-ins go.
    fn unmirror_if_unwatched(&mut self, now: Instant, room: &str) {
        if !self.mirrored.contains_key(room) || !self.rooms.viewers(room).is_empty() {
            return;
        }
        for id in self.rooms.members(room).to_vec() {
            self.peers.remove(&id);
            self.rooms.leave(room, id);
        }
        if self.mirrored.remove(room) == Some(REMOTE_HOME) {
            if let Some(link) = self.relay_in.get(room).copied() {
                self.close_relay(now, link, "no viewer left here", true);
            }
        }
        debug!(room, "no viewer left here: mirror closed");
    }
}

/// What a mirror needs to know of a publisher's track.
fn track_info(mid: Mid, up: &UpTrack) -> TrackInfo {
    TrackInfo {
        mid,
        kind: up.kind,
        source: up.source,
        simulcast: up.simulcast,
    }
}

#[cfg(test)]
#[path = "mirror_tests.rs"]
mod tests;

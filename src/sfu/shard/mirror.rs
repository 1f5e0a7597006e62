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
use crate::sfu::link::{LinkMsg, Publisher, TrackInfo};
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
        token: Option<&str>,
    ) {
        let Some((room, name)) = self.admissible(id, room, name, token) else {
            return;
        };
        debug!(id, room, home, "viewer waits for its room's home");
        self.ask_home(home, id, room, name, mode, None);
    }

    /// Mirror side: viewer `id` waits while worker `home` decides whether `room` takes
    /// it; `whep` is a WHEP player's offer, answered once admitted.
    pub(super) fn ask_home(
        &mut self,
        home: usize,
        id: PeerId,
        room: String,
        name: String,
        mode: Mode,
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
            from,
        };
        self.out.push_back(Output::Link(home, msg));
    }

    /// A message from another worker.
    pub fn handle_link(&mut self, now: Instant, msg: LinkMsg) {
        match msg {
            LinkMsg::Rtp { publisher, packet } => {
                if self.is_stand_in(publisher) {
                    self.fan_out(now, publisher, &packet);
                }
            }
            LinkMsg::AdmitViewer {
                id,
                room,
                name,
                mode,
                from,
            } => self.admit_viewer(now, id, room, name, mode, from),
            LinkMsg::ViewerLeft { room, id } => {
                let remote = self.peers.get(&id).is_some_and(|p| {
                    matches!(p.served, Served::Elsewhere { .. }) && p.room == room
                });
                if remote {
                    self.leave(now, id, "left");
                }
            }
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
                    if pending.whep.is_some() {
                        self.out
                            .push_back(Output::HttpAnswer(id, Err((code, message))));
                    } else {
                        self.out
                            .push_back(Output::Signal(id, ServerMsg::error(code, message)));
                        self.out.push_back(Output::Close(id));
                    }
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
        mode: Mode,
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
        let admitted = match self.admit(now, id, &room, mode, Role::Viewer, name.clone(), arrival) {
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
        let msg = LinkMsg::Admitted {
            id,
            room,
            home: self.cfg.worker,
            mode: admitted.mode,
            joined,
            publishers,
        };
        self.out.push_back(Output::Link(from, msg));
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
                Err(why) => self.turn_away(id, &room, home, true, why),
            }
            return;
        }
        let arrival = Arrival::Browser;
        if let Err(e) = self.admit(now, id, &room, mode, Role::Viewer, name, arrival) {
            // Only if this worker's limits differ from the home's.
            let why = e.into_wire(&room);
            self.turn_away(id, &room, home, false, why);
            return;
        }
        debug!(id, room, home, "viewer admitted by its room's home");
        self.out.push_back(Output::Signal(id, joined));
    }

    /// Mirror: viewer `id`, admitted by the home, cannot be served here after all: it
    /// hears why, and the home that it left.
    fn turn_away(
        &mut self,
        id: PeerId,
        room: &str,
        home: usize,
        whep: bool,
        (code, message): (ErrorCode, String),
    ) {
        if whep {
            self.out
                .push_back(Output::HttpAnswer(id, Err((code, message))));
        } else {
            self.out
                .push_back(Output::Signal(id, ServerMsg::error(code, message)));
            self.out.push_back(Output::Close(id));
        }
        let msg = LinkMsg::ViewerLeft {
            room: room.to_string(),
            id,
        };
        self.out.push_back(Output::Link(home, msg));
        self.unmirror_if_unwatched(room);
    }

    /// Mirror: makes sure publisher `info` of `room` has a stand-in with `tracks`.
    /// Returns whether any track was new.
    fn stand_in(&mut self, room: &str, home: usize, info: PeerInfo, tracks: &[TrackInfo]) -> bool {
        let id = info.id;
        if !self.peers.contains_key(&id) {
            let mode = self.rooms.mode(room).unwrap_or_default();
            if self.rooms.join(room, id, mode, Role::Participant).is_err() {
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
                e.insert(UpTrack::new(t.kind, t.simulcast));
                added = true;
            }
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

    /// After `peer` left: the other workers of a spread room hear of it.
    pub(super) fn left_spread_room(&mut self, peer: &Peer) {
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
                    self.unmirror_if_unwatched(room);
                }
            }
        }
    }

    /// Mirror: once none of a mirrored room's viewers is left here, its stand-ins go.
    fn unmirror_if_unwatched(&mut self, room: &str) {
        if !self.mirrored.contains_key(room) || !self.rooms.viewers(room).is_empty() {
            return;
        }
        for id in self.rooms.members(room).to_vec() {
            self.peers.remove(&id);
            self.rooms.leave(room, id);
        }
        self.mirrored.remove(room);
        debug!(room, "no viewer left here: mirror closed");
    }
}

/// What a mirror needs to know of a publisher's track.
fn track_info(mid: Mid, up: &UpTrack) -> TrackInfo {
    TrackInfo {
        mid,
        kind: up.kind,
        simulcast: up.simulcast,
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // a test's fake clock starts anywhere
mod tests {
    use super::*;
    use crate::sfu::shard::ShardConfig;

    fn engine(worker: usize, viewer_capacity: usize) -> Shard {
        Shard::new(ShardConfig {
            candidates: vec!["127.0.0.1:5000".parse().unwrap()],
            room_capacity: 8,
            viewer_capacity,
            room_tokens: Default::default(),
            worker,
            seed: worker as u64,
        })
    }

    /// Everything `from` produced: link messages for `to` delivered to it (and so on
    /// until quiet); signals and closes returned per worker.
    fn settle(engines: &mut [Shard], now: Instant) -> Vec<(usize, Output)> {
        let mut seen = Vec::new();
        loop {
            let mut moved = false;
            for w in 0..engines.len() {
                while let Some(out) = engines[w].poll_output() {
                    moved = true;
                    match out {
                        Output::Link(to, msg) => engines[to].handle_link(now, msg),
                        other => seen.push((w, other)),
                    }
                }
            }
            if !moved {
                return seen;
            }
        }
    }

    fn signals(seen: &[(usize, Output)], id: PeerId) -> Vec<ServerMsg> {
        seen.iter()
            .filter_map(|(_, o)| match o {
                Output::Signal(i, m) if *i == id => Some(m.clone()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_far_viewer_is_admitted_counted_and_released() {
        let now = Instant::now();
        let mut e = vec![engine(0, 0), engine(1, 0)];
        e[0].join(
            now,
            1,
            "talk",
            "presenter",
            Role::Participant,
            Mode::Relay,
            None,
        );
        e[1].join_mirrored(0, 2, "talk", "far", Mode::Auto, None);
        let seen = settle(&mut e, now);
        let joined = signals(&seen, 2);
        assert!(
            matches!(&joined[..], [ServerMsg::Joined { peers, mode: Mode::Relay, .. }] if peers.len() == 1 && peers[0].name == "presenter"),
            "the far viewer gets the home's room: {joined:?}"
        );
        assert!(signals(&seen, 1).contains(&ServerMsg::Viewers { count: 1 }));
        assert_eq!(
            (e[0].peer_count(), e[1].peer_count()),
            (1, 1),
            "stubs and stand-ins are not counted"
        );
        assert_eq!((e[0].room_count(), e[1].room_count()), (1, 0));
        let rooms: Vec<_> = e.iter().flat_map(|s| s.rooms_snapshot()).collect();
        let viewers: usize = rooms.iter().map(|r| r.viewers.len()).sum();
        let participants: usize = rooms.iter().map(|r| r.participants.len()).sum();
        assert_eq!((participants, viewers), (1, 1));

        // The presenter's name change of state reaches the far viewer through the home.
        e[0].handle_signal(now, 1, crate::signaling::protocol::ClientMsg::Leave);
        let seen = settle(&mut e, now);
        assert!(
            signals(&seen, 2)
                .iter()
                .any(|m| matches!(m, ServerMsg::PeerLeft { id: 1, .. })),
            "{seen:?}"
        );
        // The far viewer leaves: the home forgets it, the mirror closes.
        e[1].leave(now, 2, "left");
        let seen = settle(&mut e, now);
        assert!(seen
            .iter()
            .any(|(w, o)| *w == 1 && matches!(o, Output::Close(2))));
        assert!(e[0].peers.is_empty() && e[0].rooms.is_empty(), "home clean");
        assert!(e[1].peers.is_empty() && e[1].rooms.is_empty() && e[1].mirrored.is_empty());
    }

    #[test]
    fn a_viewer_gone_before_its_admission_is_not_left_behind() {
        let now = Instant::now();
        let mut e = vec![engine(0, 0), engine(1, 0)];
        e[0].join(
            now,
            1,
            "talk",
            "presenter",
            Role::Participant,
            Mode::Relay,
            None,
        );
        e[1].join_mirrored(0, 2, "talk", "far", Mode::Auto, None);
        // It leaves before the home's answer arrives.
        let ask: Vec<Output> = std::iter::from_fn(|| e[1].poll_output()).collect();
        e[1].leave(now, 2, "left");
        for out in ask {
            if let Output::Link(to, msg) = out {
                e[to].handle_link(now, msg);
            }
        }
        let seen = settle(&mut e, now);
        assert!(
            signals(&seen, 2).is_empty(),
            "no joined for a viewer gone: {seen:?}"
        );
        assert_eq!(
            e[0].rooms.viewers("talk"),
            &[] as &[PeerId],
            "the home dropped it"
        );
        assert!(e[0].peers.keys().eq([&1]));
        assert!(e[1].peers.is_empty() && e[1].mirrored.is_empty());
    }

    #[test]
    fn the_home_refuses_for_the_room() {
        let now = Instant::now();
        let mut e = vec![engine(0, 1), engine(1, 1)];
        e[0].join(
            now,
            1,
            "talk",
            "presenter",
            Role::Participant,
            Mode::Relay,
            None,
        );
        e[0].join(now, 2, "talk", "near", Role::Viewer, Mode::Auto, None);
        e[1].join_mirrored(0, 3, "talk", "far", Mode::Auto, None);
        e[0].join(now, 4, "call", "a", Role::Participant, Mode::Direct, None);
        e[1].join_mirrored(0, 5, "call", "watcher", Mode::Auto, None);
        let seen = settle(&mut e, now);
        let full = signals(&seen, 3);
        assert!(
            matches!(&full[..], [ServerMsg::Error { code: ErrorCode::RoomFull, message }] if message.contains("maximum of 1 viewers")),
            "{full:?}"
        );
        let direct = signals(&seen, 5);
        assert!(
            matches!(&direct[..], [ServerMsg::Error { message, .. }] if message.contains("cannot be watched")),
            "{direct:?}"
        );
        for id in [3, 5] {
            assert!(seen
                .iter()
                .any(|(w, o)| *w == 1 && matches!(o, Output::Close(i) if *i == id)));
        }
        assert!(e[1].peers.is_empty() && e[1].pending_admits.is_empty());
        assert_eq!(e[0].rooms.viewers("talk"), &[2]);
    }

    /// A WHEP player's offer (receive video and audio), from a str0m peer.
    fn whep_offer() -> String {
        use str0m::media::{Direction, MediaKind};
        let mut rtc = str0m::Rtc::builder().build(Instant::now());
        let mut api = rtc.sdp_api();
        api.add_media(MediaKind::Video, Direction::RecvOnly, None, None, None);
        api.add_media(MediaKind::Audio, Direction::RecvOnly, None, None, None);
        let (offer, _) = api.apply().expect("an offer");
        offer.to_sdp_string()
    }

    fn answers(seen: &[(usize, Output)], id: PeerId) -> Vec<&crate::sfu::shard::HttpAnswer> {
        seen.iter()
            .filter_map(|(_, o)| match o {
                Output::HttpAnswer(i, a) if *i == id => Some(a),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_far_whep_player_is_answered_once_the_home_admits_it() {
        let now = Instant::now();
        let mut e = vec![engine(0, 1), engine(1, 1)];
        e[0].join(
            now,
            1,
            "talk",
            "presenter",
            Role::Participant,
            Mode::Relay,
            None,
        );
        // Bad requests are refused on the spot, without asking the home.
        let bad = e[1].whep_mirrored(0, 2, "talk", None, "not sdp");
        assert!(matches!(bad, Err((ErrorCode::BadSdp, _))), "{bad:?}");
        assert!(e[1].poll_output().is_none());

        e[1].whep_mirrored(0, 3, "talk", None, &whep_offer())
            .expect("checked here");
        let seen = settle(&mut e, now);
        let a = answers(&seen, 3);
        let resource = match &a[..] {
            [Ok((resource, sdp))] if sdp.starts_with("v=0") => resource.clone(),
            _ => panic!("one answer with SDP: {a:?}"),
        };
        assert!(signals(&seen, 1).contains(&ServerMsg::Viewers { count: 1 }));
        assert_eq!(e[0].rooms.viewers("talk"), &[3], "the home counts it");
        assert_eq!(e[1].rooms_snapshot()[0].viewers.len(), 1, "served here");

        // The home's viewer cap (1) is reached: the next player hears so.
        e[1].whep_mirrored(0, 4, "talk", None, &whep_offer())
            .expect("checked here");
        let seen = settle(&mut e, now);
        let a = answers(&seen, 4);
        assert!(
            matches!(&a[..], [Err((ErrorCode::RoomFull, m))] if m.contains("maximum of 1 viewers")),
            "{a:?}"
        );
        assert!(!e[1].peers.contains_key(&4) && e[1].pending_admits.is_empty());

        // DELETE of the first player's resource ends it on the worker serving it,
        // and the home forgets it.
        assert!(!e[0].end_resource(now, &resource));
        assert!(e[1].end_resource(now, &resource));
        let seen = settle(&mut e, now);
        assert!(signals(&seen, 1).contains(&ServerMsg::Viewers { count: 0 }));
        assert_eq!(e[0].rooms.viewers("talk"), &[] as &[PeerId]);
        assert!(e[1].peers.is_empty() && e[1].mirrored.is_empty());
    }

    #[test]
    fn viewers_near_and_far_hear_that_the_camera_went_off() {
        use crate::signaling::protocol::ClientMsg;
        let now = Instant::now();
        let mut e = vec![engine(0, 0), engine(1, 0)];
        e[0].join(
            now,
            1,
            "talk",
            "presenter",
            Role::Participant,
            Mode::Relay,
            None,
        );
        e[0].join(now, 2, "talk", "near", Role::Viewer, Mode::Auto, None);
        e[1].join_mirrored(0, 3, "talk", "far", Mode::Auto, None);
        settle(&mut e, now);
        let off = ClientMsg::Media {
            audio: true,
            video: false,
        };
        e[0].handle_signal(now, 1, off);
        let seen = settle(&mut e, now);
        let camera_off = ServerMsg::PeerMedia {
            id: 1,
            audio: true,
            video: false,
        };
        for viewer in [2, 3] {
            assert!(
                signals(&seen, viewer).contains(&camera_off),
                "viewer {viewer} hears it: {seen:?}"
            );
        }
    }
}

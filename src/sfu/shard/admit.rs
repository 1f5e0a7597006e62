//! Joining and leaving. Four kinds of arrival (a browser, a WHIP/WHEP session, a
//! viewer that another worker serves, and on that worker the viewer once its room's
//! home admitted it) all pass through [`Shard::admit`]: the room takes the peer or
//! says why not, the peer is built for its role, and the room hears of it.

use std::time::Instant;

use str0m::change::SdpOffer;
use tracing::info;

use super::{refusal, Output, Shard};
use crate::room::{JoinError, Joiner};
use crate::sfu::driver::{Drained, Driver};
use crate::sfu::peer::{Client, Local, Peer, Served};
use crate::signaling::protocol::{
    check_display_name, check_name, ErrorCode, Mode, PeerId, PeerInfo, Role, ServerMsg,
};

/// How an admitted peer will be served.
pub(super) enum Arrival {
    /// A browser on the WebSocket; its `Rtc` comes with its first offer.
    Browser,
    /// A WHIP publisher or WHEP player with its offer (and whether the offer
    /// negotiates transport-wide CC).
    Http {
        client: Client,
        offer: SdpOffer,
        twcc: bool,
    },
    /// A viewer served by another worker (on the room's home).
    Elsewhere { worker: usize },
}

/// Why [`Shard::admit`] turned a peer away.
pub(super) enum AdmitError {
    Room(JoinError),
    Sdp(String),
}

impl AdmitError {
    pub(super) fn into_wire(self, room: &str) -> (ErrorCode, String) {
        match self {
            AdmitError::Room(JoinError::Locked) => {
                (ErrorCode::RoomLocked, refusal(room, JoinError::Locked))
            }
            AdmitError::Room(e) => (ErrorCode::RoomFull, refusal(room, e)),
            AdmitError::Sdp(e) => (ErrorCode::BadSdp, format!("cannot accept the offer: {e}")),
        }
    }
}

/// What the room looked like to an admitted peer.
pub(super) struct Admitted {
    pub(super) mode: Mode,
    /// Everyone already in the room (participants, then viewers).
    pub(super) others: Vec<PeerId>,
    /// A WHIP/WHEP peer's SDP answer.
    pub(super) answer: Option<String>,
}

impl Shard {
    /// A participant asks to join a room whose home is this shard (the fields of its
    /// `join` message, and the time).
    #[allow(clippy::too_many_arguments)]
    pub fn join(
        &mut self,
        now: Instant,
        id: PeerId,
        room: &str,
        name: &str,
        role: Role,
        mode: Mode,
        (token, host_token): (Option<&str>, Option<&str>),
    ) {
        let Some((room, name)) = self.admissible(id, room, name, token) else {
            return;
        };
        let host_token = self.host_token_ok(&room, host_token);
        let arrival = Arrival::Browser;
        let admitted = match self.admit(
            now,
            id,
            &room,
            (mode, host_token),
            role,
            name.clone(),
            arrival,
        ) {
            Ok(a) => a,
            Err(e) => {
                let (code, message) = e.into_wire(&room);
                info!(id, room, "join refused: {message}");
                self.signal(id, ServerMsg::error(code, message));
                self.out.push_back(Output::Close(id));
                return;
            }
        };
        info!(id, room, name, mode = ?admitted.mode, ?role, "joined");
        let joined = self.joined_msg(id, &room, admitted.mode, &admitted.others);
        self.signal(id, joined);
        let count = self.rooms.viewers(&room).len();
        if role == Role::Participant && count > 0 {
            self.signal(id, ServerMsg::Viewers { count });
        }
        self.tell_speaker(id, &room);
        self.tell_room(id, &room);
        self.tell_recording(id, &room);
        self.send_chat_history(now, id);
    }

    /// The one way into a room: the room takes `id` (or says why not), the peer is
    /// built for its `arrival`, and the room hears of it.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn admit(
        &mut self,
        now: Instant,
        id: PeerId,
        room: &str,
        (mode, host_token): (Mode, bool),
        role: Role,
        name: String,
        arrival: Arrival,
    ) -> Result<Admitted, AdmitError> {
        let before = self.rooms.host_state(room);
        let who = Joiner {
            role,
            // WHIP publishers are never host; viewers neither.
            can_host: role == Role::Participant && matches!(arrival, Arrival::Browser),
            host_token,
        };
        let (mode, others) = self
            .rooms
            .join(room, id, mode, who)
            .map_err(AdmitError::Room)?;
        let mut info = PeerInfo::joining(id, name);
        let mut answer = None;
        let served = match arrival {
            Arrival::Elsewhere { worker } => Served::Elsewhere { worker },
            Arrival::Browser => {
                let creds = self.new_creds();
                {
                    let rate = self.cfg.direct_rate;
                    let local = Local::new(Client::Browser, creds.ufrag, creds.pass, rate);
                    Served::Here(Box::new(local))
                }
            }
            Arrival::Http {
                client,
                offer,
                twcc,
            } => {
                let creds = self.new_creds();
                let receive_only = matches!(client, Client::Whep { .. });
                let mut rtc = self.build_rtc(now, creds.clone(), twcc, receive_only);
                let sdp = match rtc.sdp_api().accept_offer(offer) {
                    Ok(a) => a.to_sdp_string(),
                    Err(e) => {
                        self.rooms.leave(room, id);
                        return Err(AdmitError::Sdp(e.to_string()));
                    }
                };
                answer = Some(sdp);
                info.path = Some(crate::signaling::protocol::Path::Relay);
                let rate = self.cfg.direct_rate;
                let mut local = Local::new(client, creds.ufrag, creds.pass, rate);
                let mut scratch = Drained::default();
                match Driver::new(id, rtc, now, &mut scratch) {
                    Ok(d) => local.rtc = Some(d),
                    Err(e) => {
                        self.rooms.leave(room, id);
                        return Err(AdmitError::Sdp(e.to_string()));
                    }
                }
                self.drained.transmits.extend(scratch.transmits);
                self.drained.events.extend(scratch.events);
                local.bwe = self.estimates(twcc);
                local.answered = true;
                Served::Here(Box::new(local))
            }
        };
        if let Served::Here(local) = &served {
            self.routes.add_ufrag(local.ufrag.clone(), id);
        }
        let peer = Peer::new(id, info.clone(), role, room.to_string(), served);
        let here = peer.is_here();
        self.peers.insert(id, peer);
        if here {
            self.schedule(id);
        }
        match role {
            Role::Participant => {
                for o in self.audience(room, id) {
                    self.signal(o, ServerMsg::PeerJoined { peer: info.clone() });
                }
            }
            // A mirrored room's viewers are counted by its home.
            Role::Viewer if !self.mirrored.contains_key(room) => self.announce_viewers(room),
            Role::Viewer => {}
        }
        // A participant that opened the room, or came with a host token, is its host.
        self.room_changed(room, before, Some(id));
        self.timers.start_layer_ticks(now);
        Ok(Admitted {
            mode,
            others,
            answer,
        })
    }

    /// The `joined` message for `id`, who found `others` in `room`.
    pub(super) fn joined_msg(
        &self,
        id: PeerId,
        room: &str,
        mode: Mode,
        others: &[PeerId],
    ) -> ServerMsg {
        let peers = others
            .iter()
            .filter_map(|o| self.peers.get(o).map(|p| p.info.clone()))
            .collect();
        ServerMsg::Joined {
            id,
            room: room.to_string(),
            peers,
            capacity: self.rooms.capacity(mode),
            mode,
            // The signaling session adds its token, and the cluster's nodes.
            resume: None,
            nodes: Vec::new(),
        }
    }

    /// Participant `id` is back on a new signaling connection (its old one dropped):
    /// it hears the room as it is now, in a fresh `joined`, and the server's offer
    /// again if one is waiting for its answer (the first may have been lost with the
    /// old connection), and the room's chat so far. False when `id` is not here any
    /// more.
    pub fn resume(&mut self, now: Instant, id: PeerId) -> bool {
        let Some(peer) = self.peers.get(&id) else {
            return false;
        };
        let (room, role) = (peer.room.clone(), peer.role);
        let Some(mode) = self.rooms.mode(&room) else {
            return false;
        };
        let others: Vec<PeerId> = self
            .rooms
            .members(&room)
            .iter()
            .chain(self.rooms.viewers(&room))
            .copied()
            .filter(|o| *o != id)
            .collect();
        info!(id, room, "resumed on a new connection");
        let joined = self.joined_msg(id, &room, mode, &others);
        self.signal(id, joined);
        let count = self.rooms.viewers(&room).len();
        if role == Role::Participant && count > 0 {
            self.signal(id, ServerMsg::Viewers { count });
        }
        self.tell_speaker(id, &room);
        self.tell_room(id, &room);
        self.tell_held(id);
        self.tell_recording(id, &room);
        let offer = self
            .peers
            .get(&id)
            .and_then(Peer::here)
            .filter(|l| l.pending_offer.is_some())
            .and_then(|l| Some((l.pending_sdp.clone()?, super::negotiate::owners(l))));
        if let Some((sdp, tracks)) = offer {
            self.signal(id, ServerMsg::Offer { sdp, tracks });
        }
        self.send_chat_history(now, id);
        true
    }

    /// The checks of a join that need no room: not joined yet, valid names, the
    /// room's token. Returns the trimmed room and name, or refuses.
    pub(super) fn admissible(
        &mut self,
        id: PeerId,
        room: &str,
        name: &str,
        token: Option<&str>,
    ) -> Option<(String, String)> {
        if self.peers.contains_key(&id) || self.pending_admits.contains_key(&id) {
            self.signal(id, ServerMsg::error(ErrorCode::BadState, "already joined"));
            return None;
        }
        let refused = match (check_name(room), check_display_name(name)) {
            (Err(e), _) => Some(format!("the room name {e}")),
            (_, Err(e)) => Some(format!("your name {e}")),
            _ => None,
        };
        if let Some(message) = refused {
            self.signal(id, ServerMsg::error(ErrorCode::BadName, message));
            self.out.push_back(Output::Close(id));
            return None;
        }
        let (room, name) = (room.trim().to_string(), name.trim().to_string());
        if !self.token_ok(&room, token) {
            info!(id, room, "join refused: token");
            self.signal(
                id,
                ServerMsg::error(
                    ErrorCode::Forbidden,
                    format!("room \"{room}\" needs its token"),
                ),
            );
            self.out.push_back(Output::Close(id));
            return None;
        }
        Some((room, name))
    }

    /// Whether `token` opens `room` (rooms without a token are open). The tokens are
    /// keyed by [`crate::token::room_key`], so look-alikes of a room need its token.
    pub fn token_ok(&self, room: &str, token: Option<&str>) -> bool {
        match self.cfg.room_tokens.get(&crate::token::room_key(room)) {
            None => true,
            Some(t) => token.is_some_and(|given| crate::token::matches(given, t)),
        }
    }

    /// Everyone in `room` but `id`: participants and viewers.
    pub(super) fn audience(&self, room: &str, id: PeerId) -> Vec<PeerId> {
        self.rooms
            .members(room)
            .iter()
            .chain(self.rooms.viewers(room))
            .copied()
            .filter(|o| *o != id)
            .collect()
    }

    /// Members of `room` other than `id`.
    pub(super) fn others(&self, room: &str, id: PeerId) -> Vec<PeerId> {
        self.rooms
            .members(room)
            .iter()
            .copied()
            .filter(|o| *o != id)
            .collect()
    }

    /// Tells the participants of `room` how many viewers watch.
    pub(super) fn announce_viewers(&mut self, room: &str) {
        let count = self.rooms.viewers(room).len();
        for o in self.rooms.members(room).to_vec() {
            self.signal(o, ServerMsg::Viewers { count });
        }
    }

    /// The participant is gone (it left, its WebSocket closed, its media failed).
    pub fn leave(&mut self, now: Instant, id: PeerId, reason: &'static str) {
        if self.is_relay(id) {
            // A relay link that failed or timed out (see `relay`).
            self.close_relay(now, id, reason, false);
            return;
        }
        let Some(mut peer) = self.peers.remove(&id) else {
            if self.pending_admits.remove(&id).is_some() {
                // Gone before its room's home answered; the answer is turned down then.
                self.out.push_back(Output::Close(id));
            }
            return;
        };
        if peer.is_here() {
            info!(id, room = peer.room, reason, "left");
        }
        self.by_resource.retain(|_, p| *p != id);
        if let Served::Here(local) = &peer.served {
            self.unroute(id, local);
        }
        let before = self.rooms.host_state(&peer.room);
        self.rooms.leave(&peer.room, id);
        self.speaker_left(&peer.room, id);
        // The host left: the role passes on (everyone hears who has it).
        self.room_changed(&peer.room, before, None);
        if !self.recorders.is_empty() {
            self.record_ended(&peer.room, id, None);
            if self.rooms.mode(&peer.room).is_none() {
                // Nobody left in the room: its recording ends with it.
                self.stop_recording(&peer.room, None);
            }
        }
        match (&peer.served, peer.role) {
            // The home tells the viewers about a mirrored publisher.
            (Served::StandIn { .. }, _) => {}
            (_, Role::Participant) => {
                for o in self.audience(&peer.room, id) {
                    let reason = reason.to_string();
                    self.signal(o, ServerMsg::PeerLeft { id, reason });
                }
            }
            (_, Role::Viewer) => self.announce_viewers(&peer.room),
        }
        let mut touched: Vec<PeerId> = Vec::new();
        // Its up tracks: every receiver stops its down track.
        for (mid, up) in &peer.up {
            self.end_track((id, *mid), up, &mut touched);
        }
        if let Served::Here(local) = &mut peer.served {
            // Its down tracks: the publishers forget it.
            for (src, mid) in local.down.keys() {
                if let Some(up) = self.peers.get_mut(src).and_then(|p| p.up.get_mut(mid)) {
                    up.subscribers.retain(|s| *s != id);
                }
            }
            // Say goodbye on the media path too (RTCP BYE, DTLS close_notify).
            if let Some(driver) = local.rtc.as_mut() {
                let mut scratch = Drained::default();
                let _ = driver.mutate(&mut scratch, |rtc| rtc.close());
                self.drained.transmits.extend(scratch.transmits);
            }
        }
        self.renegotiate(now, touched);
        self.left_spread_room(now, &peer);
        if peer.is_here() {
            self.out.push_back(Output::Close(id));
        }
    }
}

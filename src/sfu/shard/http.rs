//! WHIP publishers (RFC 9725) and WHEP players: one SDP exchange over HTTP each, a
//! resource id that ends the session, and for a player the binding of the room's
//! publishers' tracks to the m-lines of its one offer.

use std::time::Instant;

use str0m::change::SdpOffer;
use str0m::media::{KeyframeRequestKind, MediaKind, Mid};
use tracing::{debug, info};

use super::admit::Arrival;
use super::{offers_twcc, Shard};
use crate::sfu::peer::{Client, DownState, DownTrack, Peer, TrackKey};
use crate::signaling::protocol::{check_name, ErrorCode, Mode, PeerId, Role};

/// The resource id and SDP answer of a new WHIP/WHEP session, or why it was refused.
pub type HttpAnswer = Result<(String, String), (ErrorCode, String)>;

impl Shard {
    /// A WHIP publisher offers to publish into `room`. Returns the resource id for its
    /// URL and the SDP answer.
    pub fn whip(
        &mut self,
        now: Instant,
        id: PeerId,
        room: &str,
        token: Option<&str>,
        offer: &str,
    ) -> HttpAnswer {
        let (room, offer, twcc) = self.check_http_offer(room, token, offer)?;
        self.open_http_session(now, id, room, offer, twcc, Client::Whip)
    }

    /// A WHEP player offers to receive `room`'s current publishers. Returns the
    /// resource id for its URL and the SDP answer.
    pub fn whep(
        &mut self,
        now: Instant,
        id: PeerId,
        room: &str,
        token: Option<&str>,
        offer: &str,
    ) -> HttpAnswer {
        let (room, offer, twcc) = self.check_http_offer(room, token, offer)?;
        let client = Client::Whep { mids: Vec::new() };
        self.open_http_session(now, id, room, offer, twcc, client)
    }

    /// Ends the WHIP/WHEP session `resource`; false when there is none here.
    pub fn end_resource(&mut self, now: Instant, resource: &str) -> bool {
        let Some(id) = self.by_resource.get(resource).copied() else {
            return false;
        };
        self.leave(now, id, "left");
        self.process(now);
        true
    }

    /// Whether the WHIP/WHEP session `resource` is here.
    pub fn has_resource(&self, resource: &str) -> bool {
        self.by_resource.contains_key(resource)
    }

    /// A WHEP player served by this shard for a room homed on worker `home`: the
    /// request is checked here, the home admits the player (the viewer cap and the
    /// room's mode are its to judge), and the answer follows as
    /// [`super::Output::HttpAnswer`].
    pub fn whep_mirrored(
        &mut self,
        home: usize,
        id: PeerId,
        room: &str,
        token: Option<&str>,
        offer: &str,
    ) -> Result<(), (ErrorCode, String)> {
        let (room, offer, twcc) = self.check_http_offer(room, token, offer)?;
        if self.peers.contains_key(&id) || self.pending_admits.contains_key(&id) {
            return Err((ErrorCode::BadState, "already joined".into()));
        }
        debug!(id, room, home, "WHEP player waits for its room's home");
        let name = "WHEP player".to_string();
        self.ask_home(
            home,
            id,
            room,
            name,
            (Mode::Relay, false),
            Some((offer, twcc)),
        );
        Ok(())
    }

    /// The checks of a WHIP/WHEP request that need no room: the room's name and token,
    /// the offer. Returns the trimmed room, the parsed offer, and whether it
    /// negotiates transport-wide CC (which the bandwidth estimate needs).
    fn check_http_offer(
        &self,
        room: &str,
        token: Option<&str>,
        offer: &str,
    ) -> Result<(String, SdpOffer, bool), (ErrorCode, String)> {
        let room = room.trim().to_string();
        if let Err(e) = check_name(&room) {
            return Err((ErrorCode::BadName, format!("the room name {e}")));
        }
        if !self.token_ok(&room, token) {
            return Err((
                ErrorCode::Forbidden,
                format!("room \"{room}\" needs its token"),
            ));
        }
        let twcc = offers_twcc(offer);
        let offer = SdpOffer::from_sdp_string(offer)
            .map_err(|e| (ErrorCode::BadSdp, format!("invalid SDP offer: {e}")))?;
        Ok((room, offer, twcc))
    }

    /// Admits a WHIP/WHEP peer into `room`: its `Rtc`, the SDP answer, and the
    /// resource that ends it.
    pub(super) fn open_http_session(
        &mut self,
        now: Instant,
        id: PeerId,
        room: String,
        offer: SdpOffer,
        twcc: bool,
        client: Client,
    ) -> HttpAnswer {
        let (role, name) = match client {
            Client::Whep { .. } => (Role::Viewer, "WHEP player"),
            _ => (Role::Participant, "WHIP publisher"),
        };
        let whep = role == Role::Viewer;
        let arrival = Arrival::Http {
            client,
            offer,
            twcc,
        };
        let admitted = self
            .admit(
                now,
                id,
                &room,
                (Mode::Relay, false),
                role,
                name.into(),
                arrival,
            )
            .map_err(|e| e.into_wire(&room))?;
        let answer = admitted.answer.expect("an HTTP session has an answer");
        let resource = self.random_token(24);
        info!(id, room, name, "HTTP media session");
        self.by_resource.insert(resource.clone(), id);
        self.process(now);
        if whep {
            self.attach_fixed(now, id);
            self.process(now);
        }
        Ok((resource, answer))
    }

    /// WHEP: binds the room's publishers' tracks to the player's free m-lines (first
    /// publisher first, one track per m-line of the same kind).
    pub(super) fn attach_fixed(&mut self, now: Instant, id: PeerId) {
        let Some(peer) = self.peers.get(&id) else {
            return;
        };
        let Some(local) = peer.here() else {
            return;
        };
        let Client::Whep { mids } = &local.client else {
            return;
        };
        let bound: Vec<Mid> = local
            .down
            .values()
            .filter_map(|d| match d.state {
                DownState::Open(m) => Some(m),
                _ => None,
            })
            .collect();
        let taken: Vec<TrackKey> = local.down.keys().copied().collect();
        let free: Vec<(Mid, MediaKind)> = mids
            .iter()
            .filter(|(m, _)| !bound.contains(m))
            .copied()
            .collect();
        let room = peer.room.clone();
        let mut binds: Vec<(Mid, TrackKey, MediaKind)> = Vec::new();
        for (mid, kind) in free {
            let source = self
                .rooms
                .members(&room)
                .iter()
                .filter_map(|p| self.peers.get(p))
                .flat_map(|p| p.up.iter().map(move |(m, u)| ((p.id, *m), u.kind)))
                .find(|(key, k)| {
                    *k == kind && !taken.contains(key) && !binds.iter().any(|(_, b, _)| b == key)
                });
            if let Some((key, _)) = source {
                binds.push((mid, key, kind));
            }
        }
        for (mid, key, kind) in binds {
            let start_seq = self.start_seq();
            let mut down = DownTrack::new(kind, start_seq);
            down.state = DownState::Open(mid);
            if let Some(l) = self.peers.get_mut(&id).and_then(Peer::here_mut) {
                l.down.insert(key, down);
            }
            if kind == MediaKind::Video {
                self.tune_send_stream(id, mid);
            }
            if let Some(up) = self
                .peers
                .get_mut(&key.0)
                .and_then(|p| p.up.get_mut(&key.1))
            {
                if !up.subscribers.contains(&id) {
                    up.subscribers.push(id);
                }
            }
            debug!(id, src = key.0, %mid, "WHEP m-line bound");
            self.request_keyframe(now, key.0, key.1, None, KeyframeRequestKind::Fir);
        }
        self.choose_layers(now, id, "new track");
    }
}

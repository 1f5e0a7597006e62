//! WHIP publishers (RFC 9725) and WHEP players: one SDP exchange over HTTP each, a
//! resource id that ends the session, and for a player the binding of the room's
//! publishers' tracks to the m-lines of its one offer.

use std::time::Instant;

use str0m::change::SdpOffer;
use str0m::media::{KeyframeRequestKind, MediaKind, Mid};
use tracing::{debug, info};

use super::admit::Arrival;
use super::rtc::offers_twcc;
use super::Shard;
use crate::sfu::peer::{Client, DownState, DownTrack, Peer, TrackKey};
use crate::signaling::protocol::{check_name, ErrorCode, Mode, PeerId, Role, Source};

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

    /// WHEP: binds the room's publishers' tracks to the player's m-lines, one track
    /// per m-line of the same kind. A player gets the room's best tracks: shares
    /// before cameras (so a player with one video m-line sees the screen while a share
    /// is on, and the camera again once it ends), then by joining order. A track it
    /// already gets stays on its m-line; a track that is no longer among the best
    /// makes way, and the next one carries on its m-line's stream (rewriters kept),
    /// starting with a keyframe.
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
        // The room's tracks, best first.
        let mut ranked: Vec<(bool, usize, TrackKey, MediaKind, Source)> = Vec::new();
        for (order, p) in self
            .rooms
            .members(&peer.room)
            .iter()
            .filter_map(|p| self.peers.get(p))
            .enumerate()
        {
            for (m, u) in &p.up {
                let camera = u.source != Source::Screen;
                ranked.push((camera, order, (p.id, *m), u.kind, u.source));
            }
        }
        ranked.sort_by_key(|(camera, order, key, _, _)| (*camera, *order, *key));
        let bound: Vec<(Mid, TrackKey)> = local
            .down
            .iter()
            .filter_map(|(k, d)| match d.state {
                DownState::Open(m) => Some((m, *k)),
                _ => None,
            })
            .collect();
        let mut unbind: Vec<TrackKey> = Vec::new();
        let mut binds: Vec<(Mid, TrackKey, MediaKind, Source)> = Vec::new();
        for kind in [MediaKind::Audio, MediaKind::Video] {
            let lines: Vec<Mid> = mids
                .iter()
                .filter(|(_, k)| *k == kind)
                .map(|(m, _)| *m)
                .collect();
            let wanted: Vec<(TrackKey, Source)> = ranked
                .iter()
                .filter(|t| t.3 == kind)
                .take(lines.len())
                .map(|t| (t.2, t.4))
                .collect();
            let mut free: Vec<Mid> = Vec::new();
            for mid in lines {
                match bound.iter().find(|(m, _)| *m == mid) {
                    Some((_, key)) if wanted.iter().any(|(w, _)| w == key) => {}
                    Some((_, key)) => {
                        unbind.push(*key);
                        free.push(mid);
                    }
                    None => free.push(mid),
                }
            }
            let missing = wanted
                .into_iter()
                .filter(|(w, _)| !bound.iter().any(|(_, k)| k == w));
            for ((key, source), mid) in missing.zip(free) {
                binds.push((mid, key, kind, source));
            }
        }
        for key in unbind {
            if let Some(l) = self.peers.get_mut(&id).and_then(Peer::here_mut) {
                if let Some(d) = l.down.remove(&key) {
                    l.spare.extend(d.into_spare());
                }
            }
            if let Some(up) = self
                .peers
                .get_mut(&key.0)
                .and_then(|p| p.up.get_mut(&key.1))
            {
                up.subscribers.retain(|s| *s != id);
            }
            debug!(id, src = key.0, "WHEP m-line freed for a better track");
        }
        for (mid, key, kind, source) in binds {
            let start_seq = self.start_seq();
            let mut down = DownTrack::new(kind, source, start_seq);
            down.state = DownState::Open(mid);
            if let Some(l) = self.peers.get_mut(&id).and_then(Peer::here_mut) {
                if let Some(i) = l.spare.iter().position(|s| s.mid == mid) {
                    let spare = l.spare.swap_remove(i);
                    down.rewriter = spare.rewriter;
                    down.vp8 = spare.vp8;
                }
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
            debug!(id, src = key.0, %mid, ?source, "WHEP m-line bound");
            self.request_keyframe(now, key.0, key.1, None, KeyframeRequestKind::Fir);
        }
        self.choose_layers(now, id, "new track");
    }
}

//! Screen sharing. A participant's page says which of its m-lines carries its share
//! (`screen {mid}`, with the offer that adds it; `mid: null` when it stops). The room
//! allows so many shares at once (`room::Rooms::start_screen`, one unless changed):
//! an accepted share's up track is tagged [`Source::Screen`] (receivers' offers say
//! so, WHEP players get it before cameras) and the room hears `peerScreen`; a refused
//! one is not forwarded and its page hears `screenRefused`. A sharer who leaves ends
//! its share with everything else it sent.

use std::time::Instant;

use str0m::media::Mid;
use tracing::info;

use super::Shard;
use crate::sfu::peer::Peer;
use crate::signaling::protocol::{ErrorCode, PeerId, Role, ServerMsg};

impl Shard {
    /// Participant `id`'s page says its screen share is on m-line `mid` (`None`: the
    /// share stopped).
    pub(super) fn handle_screen(&mut self, now: Instant, id: PeerId, mid: Option<String>) {
        let Some(peer) = self.peers.get(&id) else {
            return;
        };
        if peer.role == Role::Viewer {
            let msg = "viewers do not share screens";
            self.signal(id, ServerMsg::error(ErrorCode::BadState, msg));
            return;
        }
        let Some(local) = peer.here() else {
            return;
        };
        let Some(mid) = mid.map(|m| Mid::from(m.as_str())) else {
            self.end_share(now, id);
            return;
        };
        if local.screen == Some(mid) {
            return;
        }
        if local.screen.is_some() {
            // The share moved to another m-line.
            self.end_share(now, id);
        }
        let room = self.peers[&id].room.clone();
        if let Err(sharer) = self.rooms.start_screen(&room, id) {
            let name = self
                .peers
                .get(&sharer)
                .map(|p| p.info.name.clone())
                .unwrap_or_default();
            info!(id, room, sharer, "screen share refused: the room has one");
            self.refuse_share(now, id, mid);
            let message = format!("{name} is already sharing a screen");
            let code = ErrorCode::ScreenBusy;
            self.signal(id, ServerMsg::ScreenRefused { code, message });
            return;
        }
        info!(id, room, %mid, "shares a screen");
        let Some(peer) = self.peers.get_mut(&id) else {
            return;
        };
        peer.info.screen = true;
        let published = peer.up.contains_key(&mid);
        if let Some(l) = peer.here_mut() {
            l.screen = Some(mid);
            l.screen_refused = None;
        }
        if published {
            // The offer came first and the track went out as a camera: it goes out
            // again, as a screen.
            self.unpublish(now, id, mid);
            self.republish(now, id, mid);
        } else if let Some(l) = self.peers.get_mut(&id).and_then(Peer::here_mut) {
            // A refused share that sent before: it may send again now.
            if l.ended_up.iter().any(|(m, _, _)| *m == mid) && self.sends(id, mid) {
                self.republish(now, id, mid);
            }
        }
        for o in self.audience(&room, id) {
            self.signal(o, ServerMsg::PeerScreen { id, screen: true });
        }
    }

    /// Ends participant `id`'s screen share on the server's side (a host's action):
    /// its track ends for everyone, the room hears `peerScreen`, and its page hears
    /// `screenRefused` (`screenStopped`) and stops sharing. False when it shares none.
    pub fn stop_screen(&mut self, now: Instant, id: PeerId) -> bool {
        let Some(mid) = self.end_share(now, id) else {
            return false;
        };
        // Its m-line may still send until its page renegotiates: not forwarded.
        self.refuse_share(now, id, mid);
        let message = "the host stopped your screen share".to_string();
        let code = ErrorCode::ScreenStopped;
        self.signal(id, ServerMsg::ScreenRefused { code, message });
        self.process(now);
        true
    }

    /// Participant `id`'s share ends: its track ends for every receiver and the room
    /// hears of it. Returns the share's m-line, if it had one.
    fn end_share(&mut self, now: Instant, id: PeerId) -> Option<Mid> {
        let peer = self.peers.get_mut(&id)?;
        let room = peer.room.clone();
        peer.info.screen = false;
        let mid = peer.here_mut().and_then(|l| l.screen.take());
        let was = self.rooms.stop_screen(&room, id);
        if let Some(mid) = mid {
            self.unpublish(now, id, mid);
        }
        if was {
            info!(id, room, "stopped sharing a screen");
            for o in self.audience(&room, id) {
                self.signal(o, ServerMsg::PeerScreen { id, screen: false });
            }
        }
        mid
    }

    /// Participant `id`'s packets on `mid` are not forwarded until a `screen` for it
    /// is accepted (a track already out on it ends).
    fn refuse_share(&mut self, now: Instant, id: PeerId, mid: Mid) {
        let Some(peer) = self.peers.get_mut(&id) else {
            return;
        };
        if let Some(l) = peer.here_mut() {
            l.screen_refused = Some(mid);
        }
        if peer.up.contains_key(&mid) {
            self.unpublish(now, id, mid);
        }
    }

    /// Whether peer `id`'s `Rtc` receives on `mid` (its page sends there).
    fn sends(&self, id: PeerId, mid: Mid) -> bool {
        self.peers
            .get(&id)
            .and_then(Peer::here)
            .and_then(|l| l.rtc.as_ref())
            .and_then(|d| d.rtc().media(mid))
            .is_some_and(|m| m.direction().is_receiving())
    }
}

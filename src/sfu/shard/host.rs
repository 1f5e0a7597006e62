//! The room's host keeps order: it mutes a participant's microphone or stops its
//! camera (the server stops forwarding it at once), allows it back, removes a
//! participant, hands the role over, and locks the room. Every action is checked here,
//! on the room's home, whatever the page shows: anyone else gets `notHost` and nothing
//! changes.
//!
//! Who hosts and whether the room is locked are [`Rooms`](crate::room::Rooms)' rules;
//! what a participant may send is its [`Holds`](crate::room::Holds), which
//! `Shard::forward` asks before a packet goes to anyone. Everyone in the room,
//! participants and viewers (those served by other workers through
//! [`Shard::signal`]), hears `room` after `joined` and whenever the host or the lock
//! changes; a held participant hears `held`.

use std::time::Instant;

use str0m::media::{KeyframeRequestKind, MediaKind};
use tracing::info;

use super::Shard;
use crate::room::{HostState, SCREEN_LIMIT};
use crate::sfu::peer::Peer;
use crate::signaling::protocol::{ErrorCode, HostAction, Mode, PeerId, ServerMsg, Source};

impl Shard {
    /// A `host` message from participant `id`.
    pub(super) fn handle_host(
        &mut self,
        now: Instant,
        id: PeerId,
        action: HostAction,
        target: Option<PeerId>,
    ) {
        let Some(peer) = self.peers.get(&id) else {
            return;
        };
        let room = peer.room.clone();
        if !self.rooms.is_host(&room, id) {
            self.counters.not_host += 1;
            info!(id, room, ?action, "host action refused: not the host");
            let message = match self.rooms.host_state(&room).host {
                Some(h) => format!(
                    "only the room's host can do that; the host is {}",
                    self.peers.get(&h).map_or("someone else", |p| &p.info.name)
                ),
                None => "only the room's host can do that".to_string(),
            };
            self.signal(id, ServerMsg::error(ErrorCode::NotHost, message));
            return;
        }
        if let HostAction::Lock | HostAction::Unlock = action {
            let before = self.rooms.host_state(&room);
            let locked = action == HostAction::Lock;
            self.rooms.set_locked(&room, locked);
            info!(id, room, locked, "room lock");
            self.room_changed(&room, before, None);
            return;
        }
        if let HostAction::AllowShares | HostAction::OneShare = action {
            let before = self.rooms.host_state(&room);
            let limit = match action {
                HostAction::AllowShares => self.rooms.capacity(Mode::Relay),
                _ => SCREEN_LIMIT,
            };
            self.rooms.set_screen_limit(&room, limit);
            info!(id, room, limit, "screen shares allowed at once");
            self.room_changed(&room, before, None);
            return;
        }
        let Some(target) = target else {
            let message = format!("the host action {action:?} needs a `peer`");
            self.signal(id, ServerMsg::error(ErrorCode::BadMessage, message));
            return;
        };
        if !self.rooms.members(&room).contains(&target) {
            let message = format!("no participant {target} in your room");
            self.signal(id, ServerMsg::error(ErrorCode::NoSuchPeer, message));
            return;
        }
        if target == id {
            let message = "that is you: use your own controls";
            self.signal(id, ServerMsg::error(ErrorCode::BadState, message));
            return;
        }
        info!(id, target, room, ?action, "host action");
        match action {
            HostAction::Mute => self.hold(id, target, Source::Microphone),
            HostAction::StopVideo => self.hold(id, target, Source::Camera),
            HostAction::StopScreen => {
                if !self.stop_screen(now, target) {
                    let message = format!("participant {target} is not sharing a screen");
                    self.signal(id, ServerMsg::error(ErrorCode::BadState, message));
                }
            }
            HostAction::AllowUnmute => {
                let released = self
                    .peers
                    .get_mut(&target)
                    .is_some_and(|p| p.holds.release(id));
                if released {
                    self.send_held(target);
                }
            }
            HostAction::Remove => {
                let message = "the host removed you from the room";
                self.signal(target, ServerMsg::error(ErrorCode::Removed, message));
                self.leave(now, target, "removed");
            }
            HostAction::MakeHost => {
                let before = self.rooms.host_state(&room);
                if self.rooms.make_host(&room, target) {
                    self.room_changed(&room, before, None);
                } else {
                    let message =
                        format!("participant {target} publishes over WHIP and cannot host");
                    self.signal(id, ServerMsg::error(ErrorCode::BadState, message));
                }
            }
            HostAction::Lock
            | HostAction::Unlock
            | HostAction::AllowShares
            | HostAction::OneShare => {}
        }
    }

    /// Host `by` stops `target`'s `source`: its packets stop at once, everyone sees it
    /// off, and it hears what is held and by whom.
    fn hold(&mut self, by: PeerId, target: PeerId, source: Source) {
        let Some(p) = self.peers.get_mut(&target) else {
            return;
        };
        if !p.holds.hold(source, by) {
            return;
        }
        for up in p.up.values_mut().filter(|u| u.source == source) {
            // A level heard before the hold must not make it the speaker.
            up.level.take();
        }
        match source {
            Source::Microphone => p.info.audio = false,
            Source::Camera => p.info.video = false,
            // Not held: `stop_screen` ends a share.
            Source::Screen => {}
        }
        let (audio, video, room) = (p.info.audio, p.info.video, p.room.clone());
        self.send_held(target);
        for o in self.audience(&room, target) {
            self.signal(
                o,
                ServerMsg::PeerMedia {
                    id: target,
                    audio,
                    video,
                },
            );
        }
        if source == Source::Microphone {
            self.speaker_left(&room, target);
        }
    }

    /// Participant `id` says its microphone and camera are `audio` and `video`: what
    /// the host holds stays off (and `id` hears why); a source the host allowed back
    /// is forwarded again from now, video from a keyframe. Returns what is on.
    pub(super) fn media_allowed(
        &mut self,
        now: Instant,
        id: PeerId,
        audio: bool,
        video: bool,
    ) -> (bool, bool) {
        let Some(p) = self.peers.get_mut(&id) else {
            return (audio, video);
        };
        let mut refused = Vec::new();
        let mut on = |wanted: bool, source: Source| {
            if !wanted {
                return (false, false);
            }
            match p.holds.turn_on(source) {
                Ok(resumed) => (true, resumed),
                Err(_) => {
                    refused.push(source);
                    (false, false)
                }
            }
        };
        let (audio, _) = on(audio, Source::Microphone);
        let (video, video_resumed) = on(video, Source::Camera);
        for source in refused {
            let what = match source {
                Source::Microphone => "microphone",
                Source::Camera | Source::Screen => "camera",
            };
            let message = format!(
                "the host turned your {what} off; you can turn it on when the host allows it"
            );
            self.signal(id, ServerMsg::error(ErrorCode::HeldByHost, message));
        }
        if video_resumed {
            self.restart_video(now, id);
        }
        (audio, video)
    }

    /// Forwarding of `id`'s camera resumes: its receivers here wait for a keyframe,
    /// which it is asked for on every layer it sends.
    fn restart_video(&mut self, now: Instant, id: PeerId) {
        let Some(p) = self.peers.get(&id) else {
            return;
        };
        let streams: Vec<_> = p
            .here()
            .map(|l| {
                l.rx_streams
                    .iter()
                    .map(|(_, mid, rid)| (*mid, *rid))
                    .collect()
            })
            .unwrap_or_default();
        let tracks: Vec<_> =
            p.up.iter()
                .filter(|(_, u)| u.kind == MediaKind::Video && u.source == Source::Camera)
                .map(|(mid, u)| (*mid, u.subscribers.clone()))
                .collect();
        for (mid, subscribers) in tracks {
            for s in subscribers {
                if let Some(d) = self
                    .peers
                    .get_mut(&s)
                    .and_then(Peer::here_mut)
                    .and_then(|l| l.down.get_mut(&(id, mid)))
                {
                    d.waiting_keyframe = true;
                }
            }
            let layers: Vec<_> = streams.iter().filter(|(m, _)| *m == mid).collect();
            if layers.is_empty() {
                self.request_keyframe(now, id, mid, None, KeyframeRequestKind::Pli);
            }
            for (_, rid) in layers {
                self.send_keyframe_request(id, mid, *rid, KeyframeRequestKind::Pli);
            }
        }
    }

    /// Tells `id` what the host holds of its media.
    fn send_held(&mut self, id: PeerId) {
        let Some(p) = self.peers.get(&id) else {
            return;
        };
        let msg = ServerMsg::Held {
            audio: p.holds.held(Source::Microphone),
            video: p.holds.held(Source::Camera),
            by: p.holds.by().unwrap_or_default(),
        };
        self.signal(id, msg);
    }

    /// After a resume: `id` hears what is still held, if anything.
    pub(super) fn tell_held(&mut self, id: PeerId) {
        if self.peers.get(&id).is_some_and(|p| p.holds.any_held()) {
            self.send_held(id);
        }
    }

    /// Tells `id`, who just joined `room` (or resumed), who hosts it and whether it is
    /// locked.
    pub(super) fn tell_room(&mut self, id: PeerId, room: &str) {
        if self.mirrored.contains_key(room) {
            // A viewer this mirror serves, resuming: only the home knows, and it
            // tells the viewer of every change.
            return;
        }
        let msg = self.rooms.host_state(room).message();
        self.signal(id, msg);
    }

    /// `room`'s host or lock may have changed since `before`: if so, everyone in the
    /// room hears it (but `except`, who hears it after its `joined`).
    pub(super) fn room_changed(&mut self, room: &str, before: HostState, except: Option<PeerId>) {
        let now = self.rooms.host_state(room);
        if now == before {
            return;
        }
        let msg = now.message();
        let everyone: Vec<PeerId> = self
            .rooms
            .members(room)
            .iter()
            .chain(self.rooms.viewers(room))
            .copied()
            .filter(|o| Some(*o) != except)
            .collect();
        for o in everyone {
            self.signal(o, msg.clone());
        }
    }

    /// Whether `given` makes its holder `room`'s host: the room's token (when it has
    /// one) or the server's operator token.
    pub(super) fn host_token_ok(&self, room: &str, given: Option<&str>) -> bool {
        let Some(given) = given else {
            return false;
        };
        let room_token = self.cfg.room_tokens.get(&crate::token::room_key(room));
        room_token
            .into_iter()
            .chain(self.cfg.operator_token.as_ref())
            .any(|t| crate::token::matches(given, t))
    }
}

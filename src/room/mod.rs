//! Who is in which room, the room's call mode, its host and whether it is locked, and
//! what a host may hold of a participant's media ([`Holds`], in `holds.rs`). A plain
//! registry owned by the media engine's task; it knows nothing about media, only
//! membership, capacity and these rules.
#![warn(clippy::disallowed_methods)] // Sans-IO: see clippy.toml

mod holds;

pub(crate) use holds::Holds;

use std::collections::HashMap;
use std::sync::Arc;

use crate::chat::ChatLog;
use crate::signaling::protocol::{Mode, PeerId, Role, ServerMsg};

/// A direct call connects two browsers to each other, so a direct room takes two.
pub(crate) const DIRECT_CAPACITY: usize = 2;

/// Screen shares a room allows at once unless changed (`Rooms::set_screen_limit`).
pub(crate) const SCREEN_LIMIT: usize = 1;

/// Why a join was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum JoinError {
    #[error("the room is full ({0} participants)")]
    Full(usize),
    #[error("the room is a direct call, which takes two participants")]
    DirectFull,
    #[error("the room has its maximum of {0} viewers")]
    ViewersFull(usize),
    #[error("a direct call is not relayed by the server, so it cannot be watched")]
    DirectNoViewers,
    #[error("the room is locked by its host")]
    Locked,
}

/// Who asks to join, as the room's rules see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Joiner {
    pub(crate) role: Role,
    /// It may hold the host role (a browser participant; never a WHIP publisher, nor a
    /// viewer).
    pub(crate) can_host: bool,
    /// It gave a valid host token: it takes the role, and gets into a locked room.
    pub(crate) host_token: bool,
}

impl Joiner {
    /// A browser participant or viewer without a host token.
    #[cfg(test)]
    pub(crate) fn plain(role: Role) -> Self {
        Joiner {
            role,
            can_host: role == Role::Participant,
            host_token: false,
        }
    }
}

/// Who holds a room's host role and whether the room is locked: what the `room`
/// message says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct HostState {
    pub(crate) host: Option<PeerId>,
    pub(crate) locked: bool,
    /// More than one screen share at a time is allowed.
    pub(crate) many_shares: bool,
}

impl HostState {
    /// The `room` message that says it.
    pub(crate) fn message(self) -> ServerMsg {
        ServerMsg::Room {
            host: self.host,
            locked: self.locked,
            many_shares: self.many_shares,
        }
    }
}

#[derive(Debug)]
struct Room {
    /// Participants, in joining order.
    members: Vec<PeerId>,
    /// Receive-only viewers; they have their own cap.
    viewers: Vec<PeerId>,
    /// Set by whoever opened the room; joiners follow it.
    mode: Mode,
    /// The latest comparison report a participant sent (`GET
    /// /api/rooms/ROOM/comparison`); it goes with the room. Shared, so that a
    /// snapshot of the room does not copy it.
    comparison: Option<Arc<serde_json::Value>>,
    /// The room's chat (its last messages, who posted when); it goes with the room.
    chat: ChatLog,
    /// The participant that keeps order (mutes, removes, locks); `None` while no
    /// participant that can host is in the room.
    host: Option<PeerId>,
    /// Members that never hold the role (WHIP publishers): skipped when it passes on.
    hostless: Vec<PeerId>,
    /// New participants and viewers are refused, but for host-token holders; lifted
    /// by the host, or when no participant is left to lift it.
    locked: bool,
    /// Participants sharing a screen, in the order they started.
    screens: Vec<PeerId>,
    /// Most screen shares at once ([`SCREEN_LIMIT`] unless a host allows more).
    screen_limit: usize,
}

/// All rooms of the server. A room exists while it has members.
#[derive(Debug)]
pub(crate) struct Rooms {
    rooms: HashMap<String, Room>,
    /// Most participants one room takes.
    capacity: usize,
    /// Most viewers one room takes (0: no limit but the machine's).
    viewer_capacity: usize,
}

impl Rooms {
    pub(crate) fn new(capacity: usize, viewer_capacity: usize) -> Self {
        Rooms {
            rooms: HashMap::new(),
            capacity,
            viewer_capacity,
        }
    }

    /// Most participants of a room in `mode`.
    pub(crate) fn capacity(&self, mode: Mode) -> usize {
        match mode {
            Mode::Direct => self.capacity.min(DIRECT_CAPACITY),
            Mode::Relay | Mode::Auto => self.capacity,
        }
    }

    /// Adds `id` to `room` as `role`, opening the room in `mode` if it does not exist;
    /// returns the room's mode and the participants that were already there.
    pub(crate) fn join(
        &mut self,
        room: &str,
        id: PeerId,
        mode: Mode,
        who: Joiner,
    ) -> Result<(Mode, Vec<PeerId>), JoinError> {
        let role = who.role;
        let (capacity, viewer_capacity) = (self.capacity, self.viewer_capacity);
        let entry = self.rooms.entry(room.to_string()).or_insert_with(|| Room {
            members: Vec::new(),
            viewers: Vec::new(),
            // Viewers open rooms for participants to come: never as direct calls.
            mode: if role == Role::Viewer && mode == Mode::Direct {
                Mode::Auto
            } else {
                mode
            },
            comparison: None,
            chat: ChatLog::default(),
            host: None,
            hostless: Vec::new(),
            locked: false,
            screens: Vec::new(),
            screen_limit: SCREEN_LIMIT,
        });
        let refused = match role {
            _ if entry.locked && !who.host_token => Some(JoinError::Locked),
            Role::Viewer if entry.mode == Mode::Direct => Some(JoinError::DirectNoViewers),
            Role::Viewer if viewer_capacity > 0 && entry.viewers.len() >= viewer_capacity => {
                Some(JoinError::ViewersFull(viewer_capacity))
            }
            Role::Viewer => None,
            Role::Participant => {
                let cap = match entry.mode {
                    Mode::Direct => capacity.min(DIRECT_CAPACITY),
                    _ => capacity,
                };
                if entry.members.len() < cap {
                    None
                } else if entry.mode == Mode::Direct && cap < capacity {
                    Some(JoinError::DirectFull)
                } else {
                    Some(JoinError::Full(cap))
                }
            }
        };
        if let Some(e) = refused {
            if entry.members.is_empty() && entry.viewers.is_empty() {
                self.rooms.remove(room);
            }
            return Err(e);
        }
        let others = entry.members.clone();
        match role {
            Role::Participant => entry.members.push(id),
            Role::Viewer => entry.viewers.push(id),
        }
        if role == Role::Participant {
            if !who.can_host {
                entry.hostless.push(id);
            } else if entry.host.is_none() || who.host_token {
                entry.host = Some(id);
            }
        }
        Ok((entry.mode, others))
    }

    /// Who hosts `room` and whether it is locked.
    pub(crate) fn host_state(&self, room: &str) -> HostState {
        self.rooms
            .get(room)
            .map(|r| HostState {
                host: r.host,
                locked: r.locked,
                many_shares: r.screen_limit > SCREEN_LIMIT,
            })
            .unwrap_or_default()
    }

    /// Whether `id` is the host of `room`.
    pub(crate) fn is_host(&self, room: &str, id: PeerId) -> bool {
        self.rooms.get(room).is_some_and(|r| r.host == Some(id))
    }

    /// Whether `id` could hold `room`'s host role (a participant, not a WHIP publisher).
    pub(crate) fn can_host(&self, room: &str, id: PeerId) -> bool {
        self.rooms
            .get(room)
            .is_some_and(|r| r.members.contains(&id) && !r.hostless.contains(&id))
    }

    /// Hands `room`'s host role to `id`, which must be able to hold it; false if not.
    pub(crate) fn make_host(&mut self, room: &str, id: PeerId) -> bool {
        if !self.can_host(room, id) {
            return false;
        }
        if let Some(r) = self.rooms.get_mut(room) {
            r.host = Some(id);
        }
        true
    }

    /// Locks or unlocks `room` (nothing if it does not exist).
    pub(crate) fn set_locked(&mut self, room: &str, locked: bool) {
        if let Some(r) = self.rooms.get_mut(room) {
            r.locked = locked;
        }
    }

    /// Removes `id` from `room`; returns the members that remain.
    pub(crate) fn leave(&mut self, room: &str, id: PeerId) -> Vec<PeerId> {
        let Some(r) = self.rooms.get_mut(room) else {
            return Vec::new();
        };
        r.members.retain(|m| *m != id);
        r.viewers.retain(|m| *m != id);
        r.hostless.retain(|m| *m != id);
        r.screens.retain(|m| *m != id);
        r.chat.forget(id);
        if r.host == Some(id) {
            // The participant present longest takes over (members are in joining
            // order); with none, the next participant to join gets the role.
            r.host = r.members.iter().copied().find(|m| !r.hostless.contains(m));
        }
        if r.members.is_empty() {
            // Nobody is left to unlock it.
            r.locked = false;
        }
        let rest = r.members.clone();
        if rest.is_empty() && r.viewers.is_empty() {
            self.rooms.remove(room);
        }
        rest
    }

    /// Viewers of `room`.
    pub(crate) fn viewers(&self, room: &str) -> &[PeerId] {
        self.rooms
            .get(room)
            .map(|r| r.viewers.as_slice())
            .unwrap_or(&[])
    }

    /// Members of `room`, in joining order.
    pub(crate) fn members(&self, room: &str) -> &[PeerId] {
        self.rooms
            .get(room)
            .map(|r| r.members.as_slice())
            .unwrap_or(&[])
    }

    /// `id` starts sharing a screen in `room`: `Err` with the first sharer when the
    /// room already has as many shares as it allows. Sharing again is fine.
    pub(crate) fn start_screen(&mut self, room: &str, id: PeerId) -> Result<(), PeerId> {
        let Some(r) = self.rooms.get_mut(room) else {
            return Err(id);
        };
        if r.screens.contains(&id) {
            return Ok(());
        }
        if r.screens.len() >= r.screen_limit {
            return Err(r.screens.first().copied().unwrap_or(id));
        }
        r.screens.push(id);
        Ok(())
    }

    /// `id` stops sharing a screen in `room`; false when it was not sharing.
    pub(crate) fn stop_screen(&mut self, room: &str, id: PeerId) -> bool {
        let Some(r) = self.rooms.get_mut(room) else {
            return false;
        };
        let before = r.screens.len();
        r.screens.retain(|m| *m != id);
        r.screens.len() != before
    }

    /// Whether `id` shares a screen in `room`.
    #[cfg(test)]
    pub(crate) fn is_sharing(&self, room: &str, id: PeerId) -> bool {
        self.rooms
            .get(room)
            .is_some_and(|r| r.screens.contains(&id))
    }

    /// Allows `limit` screen shares at once in `room` (at least one); shares already
    /// under way go on.
    pub(crate) fn set_screen_limit(&mut self, room: &str, limit: usize) {
        if let Some(r) = self.rooms.get_mut(room) {
            r.screen_limit = limit.max(1);
        }
    }

    /// Keeps `report` as the room's latest comparison report (nothing if the room
    /// does not exist).
    pub(crate) fn set_comparison(&mut self, room: &str, report: serde_json::Value) {
        if let Some(r) = self.rooms.get_mut(room) {
            r.comparison = Some(Arc::new(report));
        }
    }

    /// The room's latest comparison report.
    pub(crate) fn comparison(&self, room: &str) -> Option<Arc<serde_json::Value>> {
        self.rooms.get(room).and_then(|r| r.comparison.clone())
    }

    /// The chat of `room`, if it exists.
    pub(crate) fn chat_mut(&mut self, room: &str) -> Option<&mut ChatLog> {
        self.rooms.get_mut(room).map(|r| &mut r.chat)
    }

    /// The chat of `room`, if it exists.
    pub(crate) fn chat(&self, room: &str) -> Option<&ChatLog> {
        self.rooms.get(room).map(|r| &r.chat)
    }

    pub(crate) fn mode(&self, room: &str) -> Option<Mode> {
        self.rooms.get(room).map(|r| r.mode)
    }

    /// Names of the rooms with at least one member, sorted.
    pub(crate) fn names(&self) -> Vec<String> {
        let mut v: Vec<String> = self.rooms.keys().cloned().collect();
        v.sort();
        v
    }

    /// Number of rooms with at least one member.
    pub(crate) fn len(&self) -> usize {
        self.rooms.len()
    }

    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        self.rooms.is_empty()
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // a test's fake clock starts anywhere
mod tests {
    use super::*;

    #[test]
    fn a_comparison_report_lives_as_long_as_its_room() {
        let mut rooms = Rooms::new(4, 0);
        rooms
            .join("a", 1, Mode::Auto, Joiner::plain(Role::Participant))
            .unwrap();
        rooms
            .join("a", 2, Mode::Auto, Joiner::plain(Role::Participant))
            .unwrap();
        rooms.set_comparison("a", serde_json::json!({"verdict": {"better": "direct"}}));
        rooms.set_comparison("nowhere", serde_json::json!({}));
        assert_eq!(
            rooms.comparison("a").unwrap()["verdict"]["better"],
            "direct"
        );
        assert!(rooms.comparison("nowhere").is_none());
        rooms.leave("a", 1);
        assert!(
            rooms.comparison("a").is_some(),
            "kept while someone is there"
        );
        rooms.leave("a", 2);
        rooms
            .join("a", 3, Mode::Auto, Joiner::plain(Role::Participant))
            .unwrap();
        assert!(rooms.comparison("a").is_none(), "gone with the room");
    }

    #[test]
    fn capacity_is_enforced_and_rooms_vanish_when_empty() {
        let mut r = Rooms::new(2, 0);
        assert_eq!(
            r.join("a", 1, Mode::Relay, Joiner::plain(Role::Participant))
                .unwrap(),
            (Mode::Relay, vec![])
        );
        assert_eq!(
            r.join("a", 2, Mode::Relay, Joiner::plain(Role::Participant))
                .unwrap()
                .1,
            vec![1]
        );
        assert_eq!(
            r.join("a", 3, Mode::Relay, Joiner::plain(Role::Participant)),
            Err(JoinError::Full(2))
        );
        assert!(r
            .join("b", 3, Mode::Relay, Joiner::plain(Role::Participant))
            .unwrap()
            .1
            .is_empty());
        assert_eq!(r.leave("a", 1), vec![2]);
        assert_eq!(
            r.join("a", 4, Mode::Relay, Joiner::plain(Role::Participant))
                .unwrap()
                .1,
            vec![2]
        );
        r.leave("a", 2);
        r.leave("a", 4);
        assert_eq!(r.members("a"), &[] as &[PeerId]);
        assert_eq!(r.len(), 1);
    }

    #[test]
    fn the_opener_sets_the_mode_and_direct_rooms_take_two() {
        let mut r = Rooms::new(8, 0);
        assert_eq!(
            r.join("d", 1, Mode::Direct, Joiner::plain(Role::Participant))
                .unwrap()
                .0,
            Mode::Direct
        );
        // A joiner asking for another mode gets the room's.
        assert_eq!(
            r.join("d", 2, Mode::Auto, Joiner::plain(Role::Participant))
                .unwrap()
                .0,
            Mode::Direct
        );
        assert_eq!(
            r.join("d", 3, Mode::Direct, Joiner::plain(Role::Participant)),
            Err(JoinError::DirectFull)
        );
        assert_eq!(r.capacity(Mode::Direct), 2);
        assert_eq!(r.capacity(Mode::Auto), 8);
        assert_eq!(r.mode("d"), Some(Mode::Direct));
        assert_eq!(r.names(), vec!["d".to_string()]);
    }

    #[test]
    fn one_screen_share_at_a_time_unless_allowed_more() {
        let mut r = Rooms::new(4, 0);
        for id in 1..=3 {
            r.join("s", id, Mode::Relay, Joiner::plain(Role::Participant))
                .unwrap();
        }
        assert_eq!(r.start_screen("s", 1), Ok(()));
        assert_eq!(r.start_screen("s", 1), Ok(()), "sharing again is fine");
        assert_eq!(r.start_screen("s", 2), Err(1), "names who shares");
        assert!(r.is_sharing("s", 1) && !r.is_sharing("s", 2));
        r.set_screen_limit("s", 2);
        assert_eq!(r.start_screen("s", 2), Ok(()));
        assert_eq!(r.start_screen("s", 3), Err(1));
        assert!(r.stop_screen("s", 1));
        assert!(!r.stop_screen("s", 1));
        // A sharer who leaves ends its share.
        r.leave("s", 2);
        assert!(!r.is_sharing("s", 2));
        assert_eq!(r.start_screen("s", 3), Ok(()));
        assert_eq!(r.start_screen("nowhere", 3), Err(3));
    }

    #[test]
    fn viewers_have_their_own_cap_and_keep_rooms_alive() {
        let mut r = Rooms::new(1, 2);
        r.join("v", 1, Mode::Auto, Joiner::plain(Role::Participant))
            .unwrap();
        assert_eq!(
            r.join("v", 2, Mode::Auto, Joiner::plain(Role::Viewer))
                .unwrap()
                .1,
            vec![1]
        );
        r.join("v", 3, Mode::Auto, Joiner::plain(Role::Viewer))
            .unwrap();
        assert_eq!(
            r.join("v", 4, Mode::Auto, Joiner::plain(Role::Viewer)),
            Err(JoinError::ViewersFull(2))
        );
        assert_eq!(r.members("v"), &[1]);
        assert_eq!(r.viewers("v"), &[2, 3]);
        // The participant leaves; the viewers keep the room for the next presenter.
        r.leave("v", 1);
        assert_eq!(r.viewers("v"), &[2, 3]);
        assert!(r
            .join("v", 5, Mode::Auto, Joiner::plain(Role::Participant))
            .is_ok());
        r.join("d", 6, Mode::Direct, Joiner::plain(Role::Participant))
            .unwrap();
        assert_eq!(
            r.join("d", 7, Mode::Auto, Joiner::plain(Role::Viewer)),
            Err(JoinError::DirectNoViewers)
        );
    }

    fn host(r: &Rooms, room: &str) -> Option<PeerId> {
        r.host_state(room).host
    }

    #[test]
    fn the_opener_hosts_and_the_role_passes_to_the_longest_present() {
        let mut r = Rooms::new(8, 0);
        let p = Joiner::plain(Role::Participant);
        r.join("h", 1, Mode::Auto, p).unwrap();
        r.join("h", 2, Mode::Auto, p).unwrap();
        r.join("h", 3, Mode::Auto, p).unwrap();
        assert_eq!(host(&r, "h"), Some(1));
        assert!(r.is_host("h", 1) && !r.is_host("h", 2));
        r.leave("h", 1);
        assert_eq!(host(&r, "h"), Some(2), "the participant present longest");
        // Someone who is not the host leaving changes nothing.
        r.leave("h", 3);
        assert_eq!(host(&r, "h"), Some(2));
    }

    #[test]
    fn with_nobody_left_the_next_participant_gets_the_role() {
        let mut r = Rooms::new(8, 0);
        r.join("h", 1, Mode::Auto, Joiner::plain(Role::Participant))
            .unwrap();
        r.join("h", 2, Mode::Auto, Joiner::plain(Role::Viewer))
            .unwrap();
        r.leave("h", 1);
        assert_eq!(host(&r, "h"), None, "a viewer never hosts");
        r.join("h", 3, Mode::Auto, Joiner::plain(Role::Participant))
            .unwrap();
        assert_eq!(host(&r, "h"), Some(3));
    }

    #[test]
    fn whip_publishers_never_host() {
        let mut r = Rooms::new(8, 0);
        let whip = Joiner {
            role: Role::Participant,
            can_host: false,
            host_token: true,
        };
        r.join("w", 1, Mode::Relay, whip).unwrap();
        assert_eq!(host(&r, "w"), None);
        r.join("w", 2, Mode::Relay, Joiner::plain(Role::Participant))
            .unwrap();
        r.join("w", 3, Mode::Relay, Joiner::plain(Role::Participant))
            .unwrap();
        assert_eq!(host(&r, "w"), Some(2));
        assert!(!r.make_host("w", 1), "cannot be handed to a WHIP publisher");
        r.leave("w", 2);
        assert_eq!(host(&r, "w"), Some(3), "skips the WHIP publisher");
    }

    #[test]
    fn a_host_token_takes_the_role_and_make_host_hands_it_over() {
        let mut r = Rooms::new(8, 0);
        let p = Joiner::plain(Role::Participant);
        r.join("t", 1, Mode::Auto, p).unwrap();
        let holder = Joiner {
            host_token: true,
            ..p
        };
        r.join("t", 2, Mode::Auto, holder).unwrap();
        assert_eq!(host(&r, "t"), Some(2));
        assert!(r.make_host("t", 1));
        assert_eq!(host(&r, "t"), Some(1));
        assert!(!r.make_host("t", 9), "not in the room");
        r.join("t", 4, Mode::Auto, Joiner::plain(Role::Viewer))
            .unwrap();
        assert!(!r.make_host("t", 4), "a viewer");
        assert_eq!(host(&r, "t"), Some(1));
    }

    #[test]
    fn a_locked_room_admits_only_host_tokens_until_unlocked_or_emptied() {
        let mut r = Rooms::new(8, 0);
        let p = Joiner::plain(Role::Participant);
        r.join("l", 1, Mode::Auto, p).unwrap();
        r.set_locked("l", true);
        assert!(r.host_state("l").locked);
        assert_eq!(r.join("l", 2, Mode::Auto, p), Err(JoinError::Locked));
        assert_eq!(
            r.join("l", 3, Mode::Auto, Joiner::plain(Role::Viewer)),
            Err(JoinError::Locked)
        );
        let holder = Joiner {
            host_token: true,
            ..p
        };
        r.join("l", 4, Mode::Auto, holder).unwrap();
        assert_eq!(r.members("l"), &[1, 4]);
        r.set_locked("l", false);
        r.join("l", 5, Mode::Auto, p).unwrap();
        r.set_locked("l", true);
        r.join("l", 6, Mode::Auto, Joiner::plain(Role::Viewer)).ok();
        for id in [1, 4, 5] {
            r.leave("l", id);
        }
        assert!(!r.host_state("l").locked, "nobody is left to unlock it");
    }
}

//! Who is in which room, and the room's call mode. A plain registry owned by the media
//! engine's task; it knows nothing about media, only membership and capacity.

use std::collections::HashMap;

use crate::signaling::protocol::{Mode, PeerId};

/// A direct call connects two browsers to each other, so a direct room takes two.
pub const DIRECT_CAPACITY: usize = 2;

/// Why a join was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum JoinError {
    #[error("the room is full ({0} participants)")]
    Full(usize),
    #[error("the room is a direct call, which takes two participants")]
    DirectFull,
}

#[derive(Debug)]
struct Room {
    members: Vec<PeerId>,
    /// Set by whoever opened the room; joiners follow it.
    mode: Mode,
}

/// All rooms of the server. A room exists while it has members.
#[derive(Debug)]
pub struct Rooms {
    rooms: HashMap<String, Room>,
    /// Most participants one room takes.
    capacity: usize,
}

impl Rooms {
    pub fn new(capacity: usize) -> Self {
        Rooms {
            rooms: HashMap::new(),
            capacity,
        }
    }

    /// Most participants of a room in `mode`.
    pub fn capacity(&self, mode: Mode) -> usize {
        match mode {
            Mode::Direct => self.capacity.min(DIRECT_CAPACITY),
            Mode::Relay | Mode::Auto => self.capacity,
        }
    }

    /// Adds `id` to `room`, opening it in `mode` if it does not exist; returns the
    /// room's mode and the members that were already there.
    pub fn join(
        &mut self,
        room: &str,
        id: PeerId,
        mode: Mode,
    ) -> Result<(Mode, Vec<PeerId>), JoinError> {
        let capacity = self.capacity;
        let entry = self.rooms.entry(room.to_string()).or_insert_with(|| Room {
            members: Vec::new(),
            mode,
        });
        let cap = match entry.mode {
            Mode::Direct => capacity.min(DIRECT_CAPACITY),
            _ => capacity,
        };
        if entry.members.len() >= cap {
            return Err(if entry.mode == Mode::Direct && cap < capacity {
                JoinError::DirectFull
            } else {
                JoinError::Full(cap)
            });
        }
        let others = entry.members.clone();
        entry.members.push(id);
        Ok((entry.mode, others))
    }

    /// Removes `id` from `room`; returns the members that remain.
    pub fn leave(&mut self, room: &str, id: PeerId) -> Vec<PeerId> {
        let Some(r) = self.rooms.get_mut(room) else {
            return Vec::new();
        };
        r.members.retain(|m| *m != id);
        let rest = r.members.clone();
        if rest.is_empty() {
            self.rooms.remove(room);
        }
        rest
    }

    /// Members of `room`, in joining order.
    pub fn members(&self, room: &str) -> &[PeerId] {
        self.rooms
            .get(room)
            .map(|r| r.members.as_slice())
            .unwrap_or(&[])
    }

    pub fn mode(&self, room: &str) -> Option<Mode> {
        self.rooms.get(room).map(|r| r.mode)
    }

    /// Names of the rooms with at least one member, sorted.
    pub fn names(&self) -> Vec<String> {
        let mut v: Vec<String> = self.rooms.keys().cloned().collect();
        v.sort();
        v
    }

    /// Number of rooms with at least one member.
    pub fn len(&self) -> usize {
        self.rooms.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rooms.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capacity_is_enforced_and_rooms_vanish_when_empty() {
        let mut r = Rooms::new(2);
        assert_eq!(r.join("a", 1, Mode::Relay).unwrap(), (Mode::Relay, vec![]));
        assert_eq!(r.join("a", 2, Mode::Relay).unwrap().1, vec![1]);
        assert_eq!(r.join("a", 3, Mode::Relay), Err(JoinError::Full(2)));
        assert!(r.join("b", 3, Mode::Relay).unwrap().1.is_empty());
        assert_eq!(r.leave("a", 1), vec![2]);
        assert_eq!(r.join("a", 4, Mode::Relay).unwrap().1, vec![2]);
        r.leave("a", 2);
        r.leave("a", 4);
        assert_eq!(r.members("a"), &[] as &[PeerId]);
        assert_eq!(r.len(), 1);
    }

    #[test]
    fn the_opener_sets_the_mode_and_direct_rooms_take_two() {
        let mut r = Rooms::new(8);
        assert_eq!(r.join("d", 1, Mode::Direct).unwrap().0, Mode::Direct);
        // A joiner asking for another mode gets the room's.
        assert_eq!(r.join("d", 2, Mode::Auto).unwrap().0, Mode::Direct);
        assert_eq!(r.join("d", 3, Mode::Direct), Err(JoinError::DirectFull));
        assert_eq!(r.capacity(Mode::Direct), 2);
        assert_eq!(r.capacity(Mode::Auto), 8);
        assert_eq!(r.mode("d"), Some(Mode::Direct));
        assert_eq!(r.names(), vec!["d".to_string()]);
    }
}

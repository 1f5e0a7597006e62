//! Who is in which room. A plain registry owned by the media engine's task; it knows
//! nothing about media, only membership and capacity.

use std::collections::HashMap;

use crate::signaling::protocol::PeerId;

/// Why a join was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum JoinError {
    #[error("the room is full ({0} participants)")]
    Full(usize),
}

/// All rooms of the server. A room exists while it has members.
#[derive(Debug)]
pub struct Rooms {
    rooms: HashMap<String, Vec<PeerId>>,
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

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Adds `id` to `room`; returns the members that were already there.
    pub fn join(&mut self, room: &str, id: PeerId) -> Result<Vec<PeerId>, JoinError> {
        let members = self.rooms.entry(room.to_string()).or_default();
        if members.len() >= self.capacity {
            if members.is_empty() {
                self.rooms.remove(room);
            }
            return Err(JoinError::Full(self.capacity));
        }
        let others = members.clone();
        members.push(id);
        Ok(others)
    }

    /// Removes `id` from `room`; returns the members that remain.
    pub fn leave(&mut self, room: &str, id: PeerId) -> Vec<PeerId> {
        let Some(members) = self.rooms.get_mut(room) else {
            return Vec::new();
        };
        members.retain(|m| *m != id);
        let rest = members.clone();
        if rest.is_empty() {
            self.rooms.remove(room);
        }
        rest
    }

    /// Members of `room`, in joining order.
    pub fn members(&self, room: &str) -> &[PeerId] {
        self.rooms.get(room).map(Vec::as_slice).unwrap_or(&[])
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
        assert_eq!(r.join("a", 1).unwrap(), Vec::<PeerId>::new());
        assert_eq!(r.join("a", 2).unwrap(), vec![1]);
        assert_eq!(r.join("a", 3), Err(JoinError::Full(2)));
        assert_eq!(r.join("b", 3).unwrap(), Vec::<PeerId>::new());
        assert_eq!(r.leave("a", 1), vec![2]);
        assert_eq!(r.join("a", 4).unwrap(), vec![2]);
        r.leave("a", 2);
        r.leave("a", 4);
        assert_eq!(r.members("a"), &[] as &[PeerId]);
        assert_eq!(r.len(), 1);
    }
}

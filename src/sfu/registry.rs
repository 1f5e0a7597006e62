//! Which media worker serves which room and which participant.
//!
//! A room lives on one worker, chosen when its first participant arrives: the worker
//! with the fewest rooms, then the fewest participants (rooms often open together,
//! before anyone else joins them, so participant counts alone would stack them on
//! one worker). Everyone who joins the room later is sent to the same worker, so a
//! room's media never crosses threads. A room is forgotten once every
//! participant routed to it is gone, and the next one to open it picks a worker anew.
//!
//! Only signaling touches this (a join, a message, a leave), never the packet path.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::signaling::protocol::PeerId;

/// The worker of each room and participant, and how many participants each has.
#[derive(Debug)]
pub struct Registry {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    /// Room → (its worker, participants routed to it and not yet released).
    rooms: HashMap<String, (usize, usize)>,
    /// Participant → (its worker, its room).
    peers: HashMap<PeerId, (usize, String)>,
    /// Participants per worker.
    load: Vec<usize>,
    /// Rooms per worker.
    rooms_on: Vec<usize>,
}

impl Registry {
    pub fn new(workers: usize) -> Self {
        Registry {
            inner: Mutex::new(Inner {
                load: vec![0; workers.max(1)],
                rooms_on: vec![0; workers.max(1)],
                ..Inner::default()
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // The map stays consistent even if a holder panicked: every update is one step.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Routes a new participant of `room`; returns its worker.
    pub fn admit(&self, id: PeerId, room: &str) -> usize {
        let mut g = self.lock();
        let inner = &mut *g;
        let least = (0..inner.load.len())
            .min_by_key(|&w| (inner.rooms_on[w], inner.load[w]))
            .unwrap_or(0);
        let entry = inner.rooms.entry(room.to_string()).or_insert_with(|| {
            inner.rooms_on[least] += 1;
            (least, 0)
        });
        entry.1 += 1;
        let worker = entry.0;
        inner.load[worker] += 1;
        inner.peers.insert(id, (worker, room.to_string()));
        worker
    }

    /// The worker serving a participant, while it is routed.
    pub fn worker_of(&self, id: PeerId) -> Option<usize> {
        self.lock().peers.get(&id).map(|(w, _)| *w)
    }

    /// The participant is gone from its worker (left, refused, or failed). Idempotent.
    pub fn release(&self, id: PeerId) {
        let mut g = self.lock();
        let inner = &mut *g;
        let Some((worker, room)) = inner.peers.remove(&id) else {
            return;
        };
        inner.load[worker] = inner.load[worker].saturating_sub(1);
        if let Some(entry) = inner.rooms.get_mut(&room) {
            entry.1 = entry.1.saturating_sub(1);
            if entry.1 == 0 {
                inner.rooms.remove(&room);
                inner.rooms_on[worker] = inner.rooms_on[worker].saturating_sub(1);
            }
        }
    }

    /// Participants per worker.
    pub fn load(&self) -> Vec<usize> {
        self.lock().load.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rooms_spread_over_workers_and_stay_together() {
        let r = Registry::new(2);
        let a = r.admit(1, "a");
        let b = r.admit(2, "b");
        assert_ne!(a, b, "the second room goes to the idle worker");
        assert_eq!(r.admit(3, "a"), a, "a room's participants share its worker");
        assert_eq!(r.admit(4, "a"), a);
        assert_eq!(r.load()[a], 3);
        // Both have one room; b has fewer participants, so a new room goes there.
        assert_eq!(r.admit(5, "c"), b);
        assert_eq!(r.worker_of(3), Some(a));
    }

    #[test]
    fn rooms_opening_together_are_balanced_by_count() {
        let r = Registry::new(2);
        // a fills up before b, c and d get their second participant.
        let a = r.admit(1, "a");
        for id in 2..6 {
            r.admit(id, "a");
        }
        let b = r.admit(6, "b");
        let c = r.admit(7, "c");
        let d = r.admit(8, "d");
        assert_ne!(a, b);
        assert_eq!(c, b, "same room count: the one with fewer participants");
        assert_eq!(d, a, "then the one with fewer rooms: two rooms each");
    }

    #[test]
    fn a_room_is_forgotten_when_its_last_participant_is_released() {
        let r = Registry::new(2);
        let a = r.admit(1, "a");
        r.admit(2, "a");
        r.release(1);
        r.release(1);
        assert_eq!(r.load()[a], 1, "releasing twice counts once");
        r.release(2);
        assert_eq!(r.worker_of(2), None);
        assert_eq!(r.load(), vec![0, 0]);
        // The other worker has a room now; the room reopens on the idle one.
        let other = r.admit(3, "b");
        assert_eq!(r.admit(4, "a"), 1 - other);
    }
}

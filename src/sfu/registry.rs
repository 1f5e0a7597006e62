//! Which media worker serves which room and which participant.
//!
//! A room lives on one worker, its home, chosen when its first participant arrives:
//! the worker with the fewest rooms, then the fewest participants (rooms often open
//! together, before anyone else joins them, so participant counts alone would stack
//! them on one worker). Participants who join the room later go to its home, so a
//! call's media never crosses threads.
//!
//! Viewers (receive-only browsers) are the exception that lets one big room use every
//! core: once the home serves `spread_after` viewers of the room, the next viewer goes
//! to the least loaded worker, which mirrors the room (see `core::mirror`): the home
//! hands it each packet once and it fans the packet out to its own viewers.
//!
//! A room is forgotten once everyone routed to it is gone, and the next one to open it
//! picks a home anew. Only signaling touches this (a join, a message, a leave), never
//! the packet path.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;

use crate::signaling::protocol::PeerId;

/// Where a new participant goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Placement {
    /// The worker that serves it.
    pub(crate) worker: usize,
    /// The worker that serves its room (owns the room's membership and publishers).
    pub(crate) home: usize,
}

/// The worker of each room and participant, and how many participants each has.
#[derive(Debug)]
pub(crate) struct Registry {
    inner: Mutex<Inner>,
    /// Viewers of one room its home serves before viewers go to other workers.
    spread_after: usize,
    /// Server-wide limits: rooms that may exist, sessions (participants, viewers,
    /// WHIP/WHEP sessions) that may be in them.
    max_rooms: usize,
    max_sessions: usize,
    /// Sessions one client address may have at once.
    max_per_address: usize,
}

/// Why [`Registry::admit`] turned someone away: a server-wide limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Refused {
    #[error("the server has its maximum of {0} rooms; try again later or join an existing room")]
    Rooms(usize),
    #[error("the server has its maximum of {0} participants and viewers; try again later")]
    Sessions(usize),
    #[error("your address already has {0} sessions on this server, its maximum")]
    Address(usize),
}

#[derive(Debug)]
struct RoomEntry {
    home: usize,
    /// Participants and viewers routed to the room and not yet released.
    refs: usize,
    /// The room's spreadable viewers, per worker.
    viewers_on: Vec<usize>,
}

#[derive(Debug, Default)]
struct Inner {
    rooms: HashMap<String, RoomEntry>,
    /// Participant → (its worker, its room, whether it counts as a spread viewer, the
    /// address it came from).
    peers: HashMap<PeerId, (usize, String, bool, Option<IpAddr>)>,
    /// Sessions per client address (only addresses with at least one).
    per_address: HashMap<IpAddr, usize>,
    /// Participants per worker.
    load: Vec<usize>,
    /// Rooms per home worker.
    rooms_on: Vec<usize>,
    /// Refusals so far: (rooms, sessions, per address).
    refused: (u64, u64, u64),
}

impl Registry {
    /// `spread_after`: see [`Registry`]; `usize::MAX` keeps every room on its home.
    /// No server-wide limits (see [`Registry::with_limits`]).
    #[cfg(test)]
    pub(crate) fn new(workers: usize, spread_after: usize) -> Self {
        Self::with_limits(workers, spread_after, usize::MAX, usize::MAX, usize::MAX)
    }

    /// With at most `max_rooms` rooms and `max_sessions` sessions server-wide, and
    /// `max_per_address` sessions from one client address.
    pub(crate) fn with_limits(
        workers: usize,
        spread_after: usize,
        max_rooms: usize,
        max_sessions: usize,
        max_per_address: usize,
    ) -> Self {
        Registry {
            max_rooms,
            max_sessions,
            max_per_address,
            inner: Mutex::new(Inner {
                load: vec![0; workers.max(1)],
                rooms_on: vec![0; workers.max(1)],
                ..Inner::default()
            }),
            spread_after,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // The map stays consistent even if a holder panicked: every update is one step.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Routes a new participant of `room`. `viewer`: a receive-only browser, which may
    /// be served by a worker other than the room's home.
    /// `from`: the client's address, when known (a session from inside the server,
    /// such as a test, has none).
    pub(crate) fn admit(
        &self,
        id: PeerId,
        room: &str,
        viewer: bool,
        from: Option<IpAddr>,
    ) -> Result<Placement, Refused> {
        let mut g = self.lock();
        let inner = &mut *g;
        if let Some(ip) = from {
            if inner.per_address.get(&ip).copied().unwrap_or(0) >= self.max_per_address {
                inner.refused.2 += 1;
                return Err(Refused::Address(self.max_per_address));
            }
        }
        if inner.peers.len() >= self.max_sessions {
            inner.refused.1 += 1;
            return Err(Refused::Sessions(self.max_sessions));
        }
        if !inner.rooms.contains_key(room) && inner.rooms.len() >= self.max_rooms {
            inner.refused.0 += 1;
            return Err(Refused::Rooms(self.max_rooms));
        }
        let workers = inner.load.len();
        let least = (0..workers)
            .min_by_key(|&w| (inner.rooms_on[w], inner.load[w]))
            .unwrap_or(0);
        let entry = inner.rooms.entry(room.to_string()).or_insert_with(|| {
            inner.rooms_on[least] += 1;
            RoomEntry {
                home: least,
                refs: 0,
                viewers_on: vec![0; workers],
            }
        });
        let home = entry.home;
        let worker = if viewer && entry.viewers_on[home] >= self.spread_after {
            // The least loaded worker; the home on a tie (no hop between threads).
            (0..workers)
                .min_by_key(|&w| (inner.load[w], w != home))
                .unwrap_or(home)
        } else {
            home
        };
        entry.refs += 1;
        if viewer {
            entry.viewers_on[worker] += 1;
        }
        inner.load[worker] += 1;
        inner
            .peers
            .insert(id, (worker, room.to_string(), viewer, from));
        if let Some(ip) = from {
            *inner.per_address.entry(ip).or_default() += 1;
        }
        Ok(Placement { worker, home })
    }

    /// Refusals so far: (rooms over `max_rooms`, sessions over `max_sessions`,
    /// sessions over `max_per_address`).
    pub(crate) fn refused(&self) -> (u64, u64, u64) {
        self.lock().refused
    }

    /// The worker serving a participant, while it is routed.
    pub(crate) fn worker_of(&self, id: PeerId) -> Option<usize> {
        self.lock().peers.get(&id).map(|(w, _, _, _)| *w)
    }

    /// The participant is gone from its worker (left, refused, or failed). Idempotent.
    pub(crate) fn release(&self, id: PeerId) {
        let mut g = self.lock();
        let inner = &mut *g;
        let Some((worker, room, viewer, from)) = inner.peers.remove(&id) else {
            return;
        };
        if let Some(ip) = from {
            if let Some(n) = inner.per_address.get_mut(&ip) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    inner.per_address.remove(&ip);
                }
            }
        }
        inner.load[worker] = inner.load[worker].saturating_sub(1);
        if let Some(entry) = inner.rooms.get_mut(&room) {
            entry.refs = entry.refs.saturating_sub(1);
            if viewer {
                entry.viewers_on[worker] = entry.viewers_on[worker].saturating_sub(1);
            }
            if entry.refs == 0 {
                let home = entry.home;
                inner.rooms.remove(&room);
                inner.rooms_on[home] = inner.rooms_on[home].saturating_sub(1);
            }
        }
    }

    /// Participants per worker.
    pub(crate) fn load(&self) -> Vec<usize> {
        self.lock().load.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_wide_limits_refuse_new_rooms_and_sessions() {
        let r = Registry::with_limits(2, usize::MAX, 2, 3, usize::MAX);
        assert!(r.admit(1, "a", false, None).is_ok());
        assert!(r.admit(2, "b", false, None).is_ok());
        assert_eq!(
            r.admit(3, "c", false, None),
            Err(Refused::Rooms(2)),
            "a third room"
        );
        assert!(
            r.admit(4, "a", false, None).is_ok(),
            "an existing room is fine"
        );
        assert_eq!(r.admit(5, "a", false, None), Err(Refused::Sessions(3)));
        assert_eq!(r.refused(), (1, 1, 0));
        r.release(1);
        r.release(4);
        assert!(
            r.admit(6, "c", false, None).is_ok(),
            "room a closed: room c may open"
        );
    }

    #[test]
    fn one_address_has_at_most_its_share() {
        let r = Registry::with_limits(1, usize::MAX, 100, 100, 2);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        assert!(r.admit(1, "x", false, Some(a)).is_ok());
        assert!(r.admit(2, "y", false, Some(a)).is_ok());
        assert_eq!(r.admit(3, "z", false, Some(a)), Err(Refused::Address(2)));
        assert!(
            r.admit(4, "x", false, Some(b)).is_ok(),
            "another address is fine"
        );
        r.release(1);
        assert!(
            r.admit(5, "x", false, Some(a)).is_ok(),
            "a freed session counts back"
        );
        assert_eq!(r.refused(), (0, 0, 1));
    }

    #[test]
    fn rooms_spread_over_workers_and_stay_together() {
        let r = Registry::new(2, usize::MAX);
        let a = r.admit(1, "a", false, None).unwrap().worker;
        let b = r.admit(2, "b", false, None).unwrap().worker;
        assert_ne!(a, b, "the second room goes to the idle worker");
        assert_eq!(
            r.admit(3, "a", false, None).unwrap().worker,
            a,
            "a room's participants share its worker"
        );
        assert_eq!(r.admit(4, "a", false, None).unwrap().worker, a);
        assert_eq!(r.load()[a], 3);
        // Both have one room; b has fewer participants, so a new room goes there.
        assert_eq!(r.admit(5, "c", false, None).unwrap().worker, b);
        assert_eq!(r.worker_of(3), Some(a));
    }

    #[test]
    fn rooms_opening_together_are_balanced_by_count() {
        let r = Registry::new(2, usize::MAX);
        // a fills up before b, c and d get their second participant.
        let a = r.admit(1, "a", false, None).unwrap().worker;
        for id in 2..6 {
            r.admit(id, "a", false, None).unwrap();
        }
        let b = r.admit(6, "b", false, None).unwrap().worker;
        let c = r.admit(7, "c", false, None).unwrap().worker;
        let d = r.admit(8, "d", false, None).unwrap().worker;
        assert_ne!(a, b);
        assert_eq!(c, b, "same room count: the one with fewer participants");
        assert_eq!(d, a, "then the one with fewer rooms: two rooms each");
    }

    #[test]
    fn a_room_is_forgotten_when_its_last_participant_is_released() {
        let r = Registry::new(2, usize::MAX);
        let a = r.admit(1, "a", false, None).unwrap().worker;
        r.admit(2, "a", false, None).unwrap();
        r.release(1);
        r.release(1);
        assert_eq!(r.load()[a], 1, "releasing twice counts once");
        r.release(2);
        assert_eq!(r.worker_of(2), None);
        assert_eq!(r.load(), vec![0, 0]);
        // The other worker has a room now; the room reopens on the idle one.
        let other = r.admit(3, "b", false, None).unwrap().worker;
        assert_eq!(r.admit(4, "a", false, None).unwrap().worker, 1 - other);
    }

    #[test]
    fn viewers_spread_once_the_home_serves_enough_of_them() {
        let r = Registry::new(2, 2);
        let home = r.admit(1, "big", false, None).unwrap().worker;
        let other = 1 - home;
        // Two viewers stay home, with the publisher.
        for id in 2..4 {
            assert_eq!(
                r.admit(id, "big", true, None).unwrap(),
                Placement { worker: home, home }
            );
        }
        // Then the least loaded worker takes each: the other one, until they are even.
        for id in 4..7 {
            assert_eq!(
                r.admit(id, "big", true, None).unwrap(),
                Placement {
                    worker: other,
                    home
                }
            );
        }
        assert_eq!(r.load(), vec![3, 3]);
        // Even: the home wins the tie.
        assert_eq!(r.admit(7, "big", true, None).unwrap().worker, home);
        // Participants always go home.
        assert_eq!(r.admit(8, "big", false, None).unwrap().worker, home);
        // The room stays while a viewer served elsewhere remains.
        for id in [1, 2, 3, 7, 8] {
            r.release(id);
        }
        assert_eq!(
            r.admit(9, "big", false, None).unwrap().worker,
            home,
            "the room kept its home"
        );
        for id in [4, 5, 6, 9] {
            r.release(id);
        }
        assert_eq!(r.load(), vec![0, 0]);
        assert_eq!(r.worker_of(4), None);
    }
}

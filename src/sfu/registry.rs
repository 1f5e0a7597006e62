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
use std::time::Instant;

use crate::rate::TokenBucket;
use crate::signaling::protocol::{ErrorCode, PeerId};

/// Addresses whose recent joins are remembered (see [`Quotas::joins_per_minute`]); an
/// address whose allowance has refilled is forgotten first.
const MAX_JOIN_BUCKETS: usize = 4096;

/// Where a new participant goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Placement {
    /// The worker that serves it.
    pub(crate) worker: usize,
    /// The worker that serves its room (owns the room's membership and publishers).
    pub(crate) home: usize,
}

/// The server-wide limits on what clients may open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Quotas {
    /// Rooms that may exist at once.
    pub(crate) max_rooms: usize,
    /// Sessions (participants, viewers, WHIP/WHEP sessions) at once.
    pub(crate) max_sessions: usize,
    /// Sessions one client address may have at once.
    pub(crate) max_per_address: usize,
    /// Sessions one client address may open per minute (all at once, then one every
    /// 60/N seconds), so a script cannot churn rooms and sessions.
    pub(crate) joins_per_minute: u32,
}

impl Quotas {
    /// No limits.
    #[cfg(test)]
    pub(crate) const NONE: Quotas = Quotas {
        max_rooms: usize::MAX,
        max_sessions: usize::MAX,
        max_per_address: usize::MAX,
        joins_per_minute: u32::MAX,
    };
}

/// The worker of each room and participant, and how many participants each has.
#[derive(Debug)]
pub(crate) struct Registry {
    inner: Mutex<Inner>,
    /// Viewers of one room its home serves before viewers go to other workers.
    spread_after: usize,
    quotas: Quotas,
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
    #[error(
        "your address opened {0} sessions in the last minute, its maximum; try again in a minute"
    )]
    Rate(u32),
}

impl Refused {
    /// The error code clients see: a rate is `rateLimited` (HTTP 429), the rest
    /// `unavailable` (HTTP 503).
    pub(crate) fn code(self) -> ErrorCode {
        match self {
            Refused::Rate(_) => ErrorCode::RateLimited,
            _ => ErrorCode::Unavailable,
        }
    }
}

/// Refusals so far, per limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Refusals {
    pub(crate) rooms: u64,
    pub(crate) sessions: u64,
    pub(crate) per_address: u64,
    pub(crate) rate: u64,
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
    /// Each recent client address's allowance of new sessions.
    joins: HashMap<IpAddr, TokenBucket>,
    refused: Refusals,
}

impl Registry {
    /// `spread_after`: see [`Registry`]; `usize::MAX` keeps every room on its home.
    /// No server-wide limits (see [`Registry::with_limits`]).
    #[cfg(test)]
    pub(crate) fn new(workers: usize, spread_after: usize) -> Self {
        Self::with_limits(workers, spread_after, Quotas::NONE)
    }

    /// With the server-wide `quotas`.
    pub(crate) fn with_limits(workers: usize, spread_after: usize, quotas: Quotas) -> Self {
        Registry {
            quotas,
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
    /// such as a test, has none). `now`: the time, for the rate of new sessions.
    pub(crate) fn admit(
        &self,
        id: PeerId,
        room: &str,
        viewer: bool,
        from: Option<IpAddr>,
        now: Instant,
    ) -> Result<Placement, Refused> {
        self.admit_as(id, room, viewer, viewer, from, now)
    }

    /// Routes a viewer of a room whose origin is another node (this node is an edge
    /// for it): it counts as a viewer but stays on the room's worker here, which holds
    /// the room's one relay link.
    pub(crate) fn admit_edge(
        &self,
        id: PeerId,
        room: &str,
        from: Option<IpAddr>,
        now: Instant,
    ) -> Result<Placement, Refused> {
        self.admit_as(id, room, true, false, from, now)
    }

    /// `viewer`: counts as a viewer; `spread`: may go to a worker other than the
    /// room's home.
    fn admit_as(
        &self,
        id: PeerId,
        room: &str,
        viewer: bool,
        spread: bool,
        from: Option<IpAddr>,
        now: Instant,
    ) -> Result<Placement, Refused> {
        let mut g = self.lock();
        let inner = &mut *g;
        let q = self.quotas;
        if let Some(ip) = from {
            if inner.per_address.get(&ip).copied().unwrap_or(0) >= q.max_per_address {
                inner.refused.per_address += 1;
                return Err(Refused::Address(q.max_per_address));
            }
            if !inner.take_join(ip, q.joins_per_minute, now) {
                inner.refused.rate += 1;
                return Err(Refused::Rate(q.joins_per_minute));
            }
        }
        if inner.peers.len() >= q.max_sessions {
            inner.refused.sessions += 1;
            return Err(Refused::Sessions(q.max_sessions));
        }
        if !inner.rooms.contains_key(room) && inner.rooms.len() >= q.max_rooms {
            inner.refused.rooms += 1;
            return Err(Refused::Rooms(q.max_rooms));
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
        let worker = if spread && entry.viewers_on[home] >= self.spread_after {
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

    /// Refusals so far, per limit.
    pub(crate) fn refused(&self) -> Refusals {
        self.lock().refused
    }

    /// Client addresses whose recent joins are remembered.
    #[cfg(test)]
    fn join_buckets(&self) -> usize {
        self.lock().joins.len()
    }

    /// The home worker of `room`, while it exists.
    pub(crate) fn home_of(&self, room: &str) -> Option<usize> {
        self.lock().rooms.get(room).map(|r| r.home)
    }

    /// The worker that serves participant `id`, if it is known.
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

    /// The room's viewers on this server (all workers), `None` when it is not open.
    pub(crate) fn room_viewers(&self, room: &str) -> Option<usize> {
        self.lock()
            .rooms
            .get(room)
            .map(|e| e.viewers_on.iter().sum())
    }

    /// Sessions routed now: (participants and publishers, viewers).
    pub(crate) fn counts(&self) -> (usize, usize) {
        let g = self.lock();
        let viewers = g.peers.values().filter(|p| p.2).count();
        (g.peers.len() - viewers, viewers)
    }
}

impl Inner {
    /// Takes one of `ip`'s new sessions for this minute; false when none is left. The
    /// map stays bounded: when it is full, addresses whose allowance has refilled (so
    /// forgetting them changes nothing) are dropped, and if every remembered address
    /// is still busy, the newcomer is refused rather than remembered.
    fn take_join(&mut self, ip: IpAddr, per_minute: u32, now: Instant) -> bool {
        if per_minute == u32::MAX {
            return true;
        }
        if !self.joins.contains_key(&ip) && self.joins.len() >= MAX_JOIN_BUCKETS {
            self.joins.retain(|_, b| !b.is_full(now));
            if self.joins.len() >= MAX_JOIN_BUCKETS {
                return false;
            }
        }
        let burst = f64::from(per_minute);
        self.joins
            .entry(ip)
            .or_insert_with(|| TokenBucket::new(burst / 60.0, burst))
            .take(now)
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // a test's clock starts anywhere
mod tests {
    use super::*;
    use std::sync::OnceLock;
    use std::time::Duration;

    /// One fixed instant for the tests that do not care about time.
    fn t0() -> Instant {
        static T0: OnceLock<Instant> = OnceLock::new();
        *T0.get_or_init(Instant::now)
    }

    fn quotas(max_rooms: usize, max_sessions: usize, max_per_address: usize) -> Quotas {
        Quotas {
            max_rooms,
            max_sessions,
            max_per_address,
            ..Quotas::NONE
        }
    }

    #[test]
    fn one_address_opens_at_most_its_sessions_per_minute() {
        let r = Registry::with_limits(
            1,
            usize::MAX,
            Quotas {
                joins_per_minute: 3,
                ..Quotas::NONE
            },
        );
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        for id in 1..=3 {
            assert!(r.admit(id, "x", false, Some(a), t0()).is_ok());
            r.release(id);
        }
        assert_eq!(
            r.admit(4, "x", false, Some(a), t0()),
            Err(Refused::Rate(3)),
            "leaving does not give back the allowance"
        );
        assert_eq!(Refused::Rate(3).code(), ErrorCode::RateLimited);
        assert!(
            r.admit(5, "x", false, Some(b), t0()).is_ok(),
            "another address"
        );
        assert!(
            r.admit(6, "x", false, Some(a), t0() + Duration::from_secs(20))
                .is_ok(),
            "one more every 20 s"
        );
        assert_eq!(r.refused().rate, 1);
        assert!(
            r.admit(7, "x", false, None, t0()).is_ok(),
            "no address, no rate"
        );
    }

    #[test]
    fn the_memory_of_recent_joins_is_bounded() {
        let r = Registry::with_limits(
            1,
            usize::MAX,
            Quotas {
                joins_per_minute: 2,
                ..Quotas::NONE
            },
        );
        let addr = |i: usize| IpAddr::from([10, (i >> 16) as u8, (i >> 8) as u8, i as u8]);
        for i in 0..MAX_JOIN_BUCKETS {
            assert!(r
                .admit(i as PeerId, "x", false, Some(addr(i)), t0())
                .is_ok());
            r.release(i as PeerId);
        }
        let id = MAX_JOIN_BUCKETS as PeerId;
        assert_eq!(
            r.admit(id, "x", false, Some(addr(id as usize)), t0()),
            Err(Refused::Rate(2)),
            "every remembered address is busy: the newcomer waits"
        );
        assert_eq!(r.join_buckets(), MAX_JOIN_BUCKETS);
        let later = t0() + Duration::from_secs(60);
        assert!(
            r.admit(id + 1, "x", false, Some(addr(id as usize)), later)
                .is_ok(),
            "a minute on, the refilled ones are forgotten"
        );
        assert_eq!(r.join_buckets(), 1);
    }

    #[test]
    fn server_wide_limits_refuse_new_rooms_and_sessions() {
        let r = Registry::with_limits(2, usize::MAX, quotas(2, 3, usize::MAX));
        assert!(r.admit(1, "a", false, None, t0()).is_ok());
        assert!(r.admit(2, "b", false, None, t0()).is_ok());
        assert_eq!(
            r.admit(3, "c", false, None, t0()),
            Err(Refused::Rooms(2)),
            "a third room"
        );
        assert!(
            r.admit(4, "a", false, None, t0()).is_ok(),
            "an existing room is fine"
        );
        assert_eq!(
            r.admit(5, "a", false, None, t0()),
            Err(Refused::Sessions(3))
        );
        assert_eq!(
            r.refused(),
            Refusals {
                rooms: 1,
                sessions: 1,
                ..Refusals::default()
            }
        );
        r.release(1);
        r.release(4);
        assert!(
            r.admit(6, "c", false, None, t0()).is_ok(),
            "room a closed: room c may open"
        );
    }

    #[test]
    fn one_address_has_at_most_its_share() {
        let r = Registry::with_limits(1, usize::MAX, quotas(100, 100, 2));
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        assert!(r.admit(1, "x", false, Some(a), t0()).is_ok());
        assert!(r.admit(2, "y", false, Some(a), t0()).is_ok());
        assert_eq!(
            r.admit(3, "z", false, Some(a), t0()),
            Err(Refused::Address(2))
        );
        assert!(
            r.admit(4, "x", false, Some(b), t0()).is_ok(),
            "another address is fine"
        );
        r.release(1);
        assert!(
            r.admit(5, "x", false, Some(a), t0()).is_ok(),
            "a freed session counts back"
        );
        assert_eq!(r.refused().per_address, 1);
    }

    #[test]
    fn rooms_spread_over_workers_and_stay_together() {
        let r = Registry::new(2, usize::MAX);
        let a = r.admit(1, "a", false, None, t0()).unwrap().worker;
        let b = r.admit(2, "b", false, None, t0()).unwrap().worker;
        assert_ne!(a, b, "the second room goes to the idle worker");
        assert_eq!(
            r.admit(3, "a", false, None, t0()).unwrap().worker,
            a,
            "a room's participants share its worker"
        );
        assert_eq!(r.admit(4, "a", false, None, t0()).unwrap().worker, a);
        assert_eq!(r.load()[a], 3);
        // Both have one room; b has fewer participants, so a new room goes there.
        assert_eq!(r.admit(5, "c", false, None, t0()).unwrap().worker, b);
        assert_eq!(r.worker_of(3), Some(a));
    }

    #[test]
    fn rooms_opening_together_are_balanced_by_count() {
        let r = Registry::new(2, usize::MAX);
        // a fills up before b, c and d get their second participant.
        let a = r.admit(1, "a", false, None, t0()).unwrap().worker;
        for id in 2..6 {
            r.admit(id, "a", false, None, t0()).unwrap();
        }
        let b = r.admit(6, "b", false, None, t0()).unwrap().worker;
        let c = r.admit(7, "c", false, None, t0()).unwrap().worker;
        let d = r.admit(8, "d", false, None, t0()).unwrap().worker;
        assert_ne!(a, b);
        assert_eq!(c, b, "same room count: the one with fewer participants");
        assert_eq!(d, a, "then the one with fewer rooms: two rooms each");
    }

    #[test]
    fn a_room_is_forgotten_when_its_last_participant_is_released() {
        let r = Registry::new(2, usize::MAX);
        let a = r.admit(1, "a", false, None, t0()).unwrap().worker;
        r.admit(2, "a", false, None, t0()).unwrap();
        r.release(1);
        r.release(1);
        assert_eq!(r.load()[a], 1, "releasing twice counts once");
        r.release(2);
        assert_eq!(r.worker_of(2), None);
        assert_eq!(r.load(), vec![0, 0]);
        // The other worker has a room now; the room reopens on the idle one.
        let other = r.admit(3, "b", false, None, t0()).unwrap().worker;
        assert_eq!(
            r.admit(4, "a", false, None, t0()).unwrap().worker,
            1 - other
        );
    }

    #[test]
    fn viewers_spread_once_the_home_serves_enough_of_them() {
        let r = Registry::new(2, 2);
        let home = r.admit(1, "big", false, None, t0()).unwrap().worker;
        let other = 1 - home;
        // Two viewers stay home, with the publisher.
        for id in 2..4 {
            assert_eq!(
                r.admit(id, "big", true, None, t0()).unwrap(),
                Placement { worker: home, home }
            );
        }
        // Then the least loaded worker takes each: the other one, until they are even.
        for id in 4..7 {
            assert_eq!(
                r.admit(id, "big", true, None, t0()).unwrap(),
                Placement {
                    worker: other,
                    home
                }
            );
        }
        assert_eq!(r.load(), vec![3, 3]);
        // Even: the home wins the tie.
        assert_eq!(r.admit(7, "big", true, None, t0()).unwrap().worker, home);
        // Participants always go home.
        assert_eq!(r.admit(8, "big", false, None, t0()).unwrap().worker, home);
        // The room stays while a viewer served elsewhere remains.
        for id in [1, 2, 3, 7, 8] {
            r.release(id);
        }
        assert_eq!(
            r.admit(9, "big", false, None, t0()).unwrap().worker,
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

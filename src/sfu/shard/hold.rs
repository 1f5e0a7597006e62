//! Packets held back to the end of a read. The worker hands the shard the datagrams
//! of one `recvmmsg` (or one batch of messages from other workers) between
//! [`Shard::start_batch`] and [`Shard::end_batch`]; in
//! between, a publisher's packets are not fanned out as they come but held, and at
//! the end each track's packets go out in one fan-out that writes all of them to a
//! receiver before the next ([`Shard::fan_out_group`]), one track's fan-out after
//! the other.
//!
//! A receiver's state (its down track, its `Rtc`'s send stream, the retransmission
//! ring, the SRTP key) is cold again by the time its next packet comes, and walking
//! to it is most of what a copy costs. Packets queue up when the server is behind,
//! as in a keyframe burst to many viewers: held and written together, each receiver
//! is walked once for the lot, so the queue drains sooner. A read that holds one
//! packet forwards it as before, and so does a track with few receivers
//! ([`HOLD_MIN_RECEIVERS`]).
//!
//! What else the read brings (a receiver's feedback, a join) is handled as it comes,
//! before the held packets go out; the packets of one track keep their order, and
//! each receiver gets them in that order.

use std::collections::VecDeque;
use std::time::Instant;

use str0m::media::{Mid, Rid};

use super::Shard;
use crate::sfu::link::TrackPacket;
use crate::signaling::protocol::PeerId;

/// Tracks with fewer receivers here are fanned out as their packets come: a walk to
/// a handful of receivers costs too little for holding to pay (in calls and rooms of
/// five it cost a few per cent), and their reads seldom hold two packets of a track.
const HOLD_MIN_RECEIVERS: usize = 8;

/// The most packets held at once; past it the held ones are queued to go out and
/// holding starts over (a read is at most 32 datagrams).
const MAX_HELD: usize = 256;

/// The packets of the read under way, in the order they came, and the tracks whose
/// fan-out waits for the one under way to end.
#[derive(Default)]
pub(super) struct Held {
    holding: bool,
    packets: Vec<(Instant, PeerId, TrackPacket)>,
    tracks: VecDeque<Track>,
}

/// One track's packets of a read, in order.
struct Track {
    /// When the first one came.
    now: Instant,
    from: PeerId,
    first: TrackPacket,
    rest: Vec<TrackPacket>,
}

/// Which track of which publisher a packet belongs to.
fn track_of(from: PeerId, pkt: &TrackPacket) -> (PeerId, Mid, Option<Rid>) {
    (from, pkt.mid, pkt.rid)
}

impl Shard {
    /// The datagrams handed in until [`Shard::end_batch`] came in one read: their
    /// media packets are held back and fanned out together at its end.
    pub fn start_batch(&mut self) {
        self.held.holding = true;
    }

    /// The read is over: each track's held packets go out in one fan-out, tracks in
    /// the order their first packet came, one fan-out after the other (the next
    /// starts when [`Shard::poll_output`] has handed out the last step of the one
    /// before, so that no more than a step's datagrams wait at a time).
    pub fn end_batch(&mut self) {
        self.held.holding = false;
        self.queue_held();
    }

    /// The held packets, grouped by track, join the tracks waiting to be fanned out,
    /// and the first of those starts if no fan-out is under way.
    fn queue_held(&mut self) {
        let mut packets = std::mem::take(&mut self.held.packets);
        for (now, from, pkt) in packets.drain(..) {
            let key = track_of(from, &pkt);
            match self
                .held
                .tracks
                .iter_mut()
                .find(|t| track_of(t.from, &t.first) == key)
            {
                Some(t) => t.rest.push(pkt),
                None => self.held.tracks.push_back(Track {
                    now,
                    from,
                    first: pkt,
                    rest: Vec::new(),
                }),
            }
        }
        // The list's allocation is kept for the next read.
        self.held.packets = packets;
        if self.fanout.is_none() {
            self.fan_out_held();
        }
    }

    /// Starts the fan-outs of the tracks held from a read, until one is under way
    /// (it goes on in [`Shard::poll_output`]) or none is left. Returns whether one is
    /// under way.
    pub(super) fn fan_out_held(&mut self) -> bool {
        while self.fanout.is_none() {
            let Some(t) = self.held.tracks.pop_front() else {
                return false;
            };
            self.fan_out_group(t.now, t.from, t.first, t.rest);
        }
        true
    }

    /// A packet of stand-in `publisher` (a publisher served by another worker or
    /// node, whose packets come as link messages): held or fanned out as a packet
    /// from a publisher here.
    pub(super) fn fan_out_or_hold_stand_in(
        &mut self,
        now: Instant,
        publisher: PeerId,
        pkt: TrackPacket,
    ) {
        let receivers = self
            .peers
            .get(&publisher)
            .and_then(|p| p.up.get(&pkt.mid))
            .map_or(0, |up| up.subscribers.len());
        self.fan_out_or_hold(now, publisher, pkt, receivers);
    }

    /// A publisher's packet for `receivers` receivers here: held while a read is
    /// under way if the track has [`HOLD_MIN_RECEIVERS`] or more (or has packets
    /// held already, which it must not overtake), else fanned out now.
    pub(super) fn fan_out_or_hold(
        &mut self,
        now: Instant,
        from: PeerId,
        pkt: TrackPacket,
        receivers: usize,
    ) {
        // A track with packets held or waiting keeps its order behind them.
        let waiting = || {
            let key = track_of(from, &pkt);
            self.held
                .packets
                .iter()
                .any(|(_, f, p)| track_of(*f, p) == key)
                || self
                    .held
                    .tracks
                    .iter()
                    .any(|t| track_of(t.from, &t.first) == key)
        };
        let hold = (self.held.holding && receivers >= HOLD_MIN_RECEIVERS) || waiting();
        if !hold {
            self.fan_out(now, from, pkt);
            return;
        }
        self.held.packets.push((now, from, pkt));
        // Outside a read (a packet behind its track's waiting ones), or a batch this
        // long (messages from other workers can be many): queued to go out now.
        if !self.held.holding || self.held.packets.len() >= MAX_HELD {
            self.queue_held();
        }
    }
}

//! Every `Rtc`'s deadline in one queue, and the shard's own periodic work (simulcast
//! layer choices, deferred keyframe requests).
//!
//! A peer has at most one entry in the queue that counts (`Local::timer_queued`): an
//! entry that comes due early is re-queued at the `Rtc`'s real deadline, one that was
//! superseded is skipped. So the queue holds O(peers) entries, and a worker wakes
//! when the earliest deadline of any of them is due.
//!
//! One deadline is given late on purpose. After str0m's pacer sends a packet it asks
//! for a turn a microsecond later (`Reason::Pacer(PacerReason::Immediate)`) only to
//! re-open its gate for the next packet. When that turn follows a forwarded packet
//! and str0m has not been probing the bandwidth lately (no turn for `Probe1`,
//! `Probe2` or `Padding` in the last second: probes must keep their timing), the
//! turn waits for the next forwarded packet, whose write re-opens the gate anyway
//! (it offers the packet to the pacer at once, `DirectApi::write_rtp_at`), or
//! [`GATE_DEFER`]: no `Rtc` timeout per forwarded packet and receiver, where str0m's
//! own loop takes two. The `Rtc` is drained after every input all the same (str0m's
//! contract); a timeout given late only delays what it would have sent, and here it
//! would send nothing. Anything the peer receives (a NACK, feedback) lifts the wait.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::{Duration, Instant};

use str0m::media::KeyframeRequestKind;
use str0m::{PacerReason, Reason};

use super::Shard;
use crate::sfu::driver::Drained;
use crate::sfu::peer::Local;
use crate::signaling::protocol::PeerId;
use str0m::RtcError;

/// How often simulcast layer choices are revisited (moving up needs time to pass).
const LAYER_TICK: Duration = Duration::from_millis(500);

/// Deadlines this close are run at once rather than waited for (the I/O shell's timer
/// cannot wait less than a millisecond anyway).
pub(super) const TIMER_RESOLUTION: Duration = Duration::from_millis(1);

/// Passes over the timer queue in one `handle_timeout` (see there).
const TIMER_PASSES: usize = 4;

/// Most timeouts given to one `Rtc` in one turn (its share of the worker's time).
const MAX_TIMEOUTS_PER_TURN: usize = 64;

/// How long the pacer's gate turn after a forwarded packet may wait (see above).
const GATE_DEFER: Duration = Duration::from_millis(5);

/// How long after str0m asked for a turn to probe the bandwidth every turn is given at
/// its time.
const PROBE_QUIET: Duration = Duration::from_secs(1);

/// The shard's deadlines.
#[derive(Debug, Default)]
pub(super) struct Timers {
    /// Peers' `Rtc` deadlines, earliest first.
    queue: BinaryHeap<Reverse<(Instant, PeerId)>>,
    /// When simulcast layer choices are next revisited (while any peer exists).
    next_layer_tick: Option<Instant>,
    /// When the earliest deferred keyframe request is due.
    pub(super) keyframes_due: Option<Instant>,
    /// When the rooms' speaker detectors are next read (while audio levels arrive or a
    /// room has a speaker; see `shard::speaker`).
    pub(super) speaker_due: Option<Instant>,
}

impl Timers {
    pub(super) fn poll_timeout(&self, any_peer: bool) -> Option<Instant> {
        let layers = self.next_layer_tick.filter(|_| any_peer);
        [
            layers,
            self.keyframes_due,
            self.speaker_due,
            self.queue.peek().map(|t| t.0 .0),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Layer choices start being revisited from `now` (a peer arrived).
    pub(super) fn start_layer_ticks(&mut self, now: Instant) {
        self.next_layer_tick.get_or_insert(now);
    }

    /// An audio level arrived: the speaker detectors are read a tick from now, unless
    /// they already are sooner.
    #[inline]
    pub(super) fn speaker_heard(&mut self, now: Instant) {
        if self.speaker_due.is_none() {
            self.speaker_due = Some(now + crate::sfu::speaker::TICK);
        }
    }

    /// A deferred keyframe request comes due at `t`.
    pub(super) fn keyframe_at(&mut self, t: Instant) {
        self.keyframes_due = Some(self.keyframes_due.map_or(t, |d| d.min(t)));
    }
}

impl Shard {
    /// Time has passed: drive every `Rtc` whose deadline came, send deferred keyframe
    /// requests, revisit layer choices.
    pub fn handle_timeout(&mut self, now: Instant) {
        // What is due now, in a few passes: running a peer's timers can queue it again
        // for now, and the passes keep the work of one call bounded.
        for _ in 0..TIMER_PASSES {
            let mut due = Vec::new();
            while let Some(&Reverse((t, id))) = self.timers.queue.peek() {
                if t > now {
                    break;
                }
                self.timers.queue.pop();
                due.push((t, id));
            }
            if due.is_empty() {
                break;
            }
            self.run_due(now, due);
        }
        if self.timers.keyframes_due.is_some_and(|t| t <= now) {
            self.timers.keyframes_due = None;
            for (id, mid, rid) in self.due_keyframes(now) {
                self.send_keyframe_request(id, mid, rid, KeyframeRequestKind::Pli);
            }
        }
        if self.timers.speaker_due.is_some_and(|t| t <= now) {
            self.speaker_tick(now);
        }
        if self.timers.next_layer_tick.is_some_and(|t| t <= now) {
            self.timers.next_layer_tick = Some(now + LAYER_TICK);
            let ids: Vec<PeerId> = self.peers.keys().copied().collect();
            for id in ids {
                self.choose_layers(now, id, "bandwidth estimate");
            }
            self.expire_unconnected(now);
        }
        self.process(now);
    }

    /// Queues a peer's next deadline.
    pub(super) fn schedule(&mut self, id: PeerId) {
        let Some(local) = self.peers.get_mut(&id).and_then(|p| p.here_mut()) else {
            return;
        };
        let Some(t) = due_at(local) else {
            return;
        };
        // One entry per peer, at or before its Rtc's deadline.
        if local.timer_queued.is_none_or(|q| t < q) {
            local.timer_queued = Some(t);
            self.timers.queue.push(Reverse((t, id)));
        }
    }

    /// Runs the timers of peers whose queue entries came due.
    fn run_due(&mut self, now: Instant, due: Vec<(Instant, PeerId)>) {
        for (t, id) in due {
            let Some(local) = self.peers.get_mut(&id).and_then(|p| p.here_mut()) else {
                continue;
            };
            if local.timer_queued != Some(t) {
                // Superseded by an earlier entry, which has run (or is queued).
                continue;
            }
            local.timer_queued = None;
            match due_at(local) {
                Some(deadline) if deadline <= now => {}
                // The Rtc's deadline moved later since this entry was queued.
                Some(_) => {
                    self.schedule(id);
                    continue;
                }
                None => continue,
            }
            self.run_timers(now, id);
        }
    }

    /// Gives a peer's `Rtc` the time, and again (up to `MAX_TIMEOUTS_PER_TURN` times) for as long as it
    /// asks for a timeout within the timer's resolution. str0m's pacer releases one
    /// packet per timeout and asks for the next "immediately" (1 µs later): without
    /// this, a burst of N packets (a keyframe) would take N rounds of the worker's
    /// loop, at least 1 ms each.
    fn run_timers(&mut self, now: Instant, id: PeerId) {
        for _ in 0..MAX_TIMEOUTS_PER_TURN {
            let Some(local) = self.peers.get_mut(&id).and_then(|p| p.here_mut()) else {
                return;
            };
            let Some(next) = turn(local, now, &mut self.drained) else {
                return;
            };
            self.counters.rtc_timeouts += 1;
            if let Err(e) = next {
                self.fail(id, &e);
                return;
            }
            self.schedule(id);
            if next.is_ok_and(|t| t > now + TIMER_RESOLUTION) {
                return;
            }
        }
    }
}

impl Shard {
    /// A packet was just written for `id` and its `Rtc` drained. When the write sent
    /// it at once or `offered` it to str0m's pacer at `now`, it has usually been sent
    /// already, and what may be due is the pacer's gate turn, which may wait (see the
    /// module's notes). Any other turn due is given now (the one that sends a packet
    /// that was not offered, during a bandwidth probe or on a relay link, among them),
    /// and the gate turn after it may wait too. One lookup of the peer and at most one
    /// entry in the timer queue per packet.
    pub(super) fn after_write(&mut self, now: Instant, id: PeerId, offered: bool) {
        let Some(local) = self.peers.get_mut(&id).and_then(|p| p.here_mut()) else {
            return;
        };
        local.gate_until = None;
        let due = local
            .rtc
            .as_ref()
            .is_some_and(|d| d.deadline() <= now + TIMER_RESOLUTION);
        if due && !(offered && only_gate(local, now)) {
            let turned = turn(local, now, &mut self.drained);
            self.counters.rtc_timeouts += u64::from(turned.is_some());
            if let Some(Err(e)) = turned {
                self.fail(id, &e);
                return;
            }
        }
        if only_gate(local, now) {
            local.gate_until = Some(now + GATE_DEFER);
        }
        self.schedule(id);
    }
}

/// Whether all a peer's `Rtc` asks for is the pacer's gate turn, and it has not been
/// probing the bandwidth lately: that turn may wait.
fn only_gate(local: &Local, now: Instant) -> bool {
    let quiet = local.probing_until.is_none_or(|t| t <= now);
    quiet
        && local
            .rtc
            .as_ref()
            .is_some_and(|d| d.rtc().last_timeout_reason() == Reason::Pacer(PacerReason::Immediate))
}

/// Gives a peer's `Rtc` its next turn: its deadline or `now`, whichever is later, and
/// never earlier than the time it has (a turn asked for "immediately" runs a
/// microsecond after the last). Notes a turn str0m asked for to probe. Returns the
/// `Rtc`'s next deadline; `None` without an `Rtc`.
fn turn(local: &mut Local, now: Instant, out: &mut Drained) -> Option<Result<Instant, RtcError>> {
    local.gate_until = None;
    let driver = local.rtc.as_mut()?;
    if is_probe(driver.rtc().last_timeout_reason()) {
        local.probing_until = Some(now + PROBE_QUIET);
    }
    let at = driver
        .deadline()
        .max(now)
        .max(driver.time() + Duration::from_micros(1));
    Some(driver.timeout(at, out).map(|()| driver.deadline()))
}

/// When a peer's `Rtc` is next given the time: its deadline, or a deferred gate turn's.
fn due_at(local: &Local) -> Option<Instant> {
    let deadline = local.rtc.as_ref()?.deadline();
    Some(match local.gate_until {
        Some(g) if deadline < g => g,
        _ => deadline,
    })
}

/// Whether str0m asked for a turn to send bandwidth probes or padding.
fn is_probe(reason: Reason) -> bool {
    matches!(
        reason,
        Reason::Pacer(PacerReason::Probe1 | PacerReason::Probe2 | PacerReason::Padding)
    )
}

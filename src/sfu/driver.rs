//! The one place that mutates and drains an `Rtc`.
//!
//! str0m's contract: every mutation of an `Rtc` (an input, a write, an SDP or direct
//! API change) is followed by polling `poll_output` until it returns
//! `Output::Timeout`, before the next mutation. [`Driver`] owns a peer's `Rtc` and
//! offers only operations that keep it: [`Driver::mutate`] (and [`Driver::mutate_at`],
//! for a change that moves the `Rtc`'s time) runs one change and drains,
//! [`Driver::receive`] and [`Driver::timeout`] feed one input and drain. Reads go
//! through [`Driver::rtc`], a shared reference, so nothing else can change the `Rtc`.
//!
//! What a drain yields goes to a [`Drained`] sink: datagrams to send, and the events
//! the shard acts on (the rest are dropped here).
#![warn(clippy::disallowed_methods)] // Sans-IO: see clippy.toml

use std::collections::VecDeque;
use std::time::Instant;

use str0m::net::{Receive, Transmit};
use str0m::{Event, Input, Output, Rtc, RtcError};

use crate::signaling::protocol::PeerId;

/// Where drained output goes: the shard's queues.
#[derive(Debug, Default)]
pub(crate) struct Drained {
    pub(crate) transmits: VecDeque<Transmit>,
    pub(crate) events: VecDeque<(PeerId, Event)>,
}

/// A peer's `Rtc` and the time str0m asked for.
pub(crate) struct Driver {
    id: PeerId,
    rtc: Rtc,
    /// When the `Rtc` next wants `Input::Timeout` (from the last drain).
    deadline: Instant,
    /// The latest time given to the `Rtc`: str0m ignores an earlier one.
    time: Instant,
    /// When the `Rtc` was made (a session that takes too long to connect is removed).
    born: Instant,
}

impl Driver {
    /// Takes a freshly built `Rtc` (built at `now`) and drains it once.
    pub(crate) fn new(
        id: PeerId,
        rtc: Rtc,
        now: Instant,
        out: &mut Drained,
    ) -> Result<Self, RtcError> {
        let mut d = Driver {
            id,
            rtc,
            deadline: now,
            time: now,
            born: now,
        };
        d.drain(out)?;
        Ok(d)
    }

    /// The `Rtc`, to read.
    pub(crate) fn rtc(&self) -> &Rtc {
        &self.rtc
    }

    /// When the `Rtc` next wants the time.
    pub(crate) fn deadline(&self) -> Instant {
        self.deadline
    }

    /// Makes one change to the `Rtc` and drains it.
    pub(crate) fn mutate<R>(
        &mut self,
        out: &mut Drained,
        change: impl FnOnce(&mut Rtc) -> R,
    ) -> Result<R, RtcError> {
        let r = change(&mut self.rtc);
        self.drain(out)?;
        Ok(r)
    }

    /// Makes one change that gives the `Rtc` the time `now` (never earlier than it
    /// already had: the change is handed the time to give), such as
    /// `DirectApi::write_rtp_at`, and drains.
    pub(crate) fn mutate_at<R>(
        &mut self,
        now: Instant,
        out: &mut Drained,
        change: impl FnOnce(&mut Rtc, Instant) -> R,
    ) -> Result<R, RtcError> {
        self.time = self.time.max(now);
        let r = change(&mut self.rtc, self.time);
        self.drain(out)?;
        Ok(r)
    }

    /// Feeds a datagram the `Rtc` accepts and drains. `Ok(false)`: the `Rtc` does not
    /// take it (not its ufrag, address or protocol), and nothing changed. A datagram
    /// it takes but cannot use (e.g. fails SRTP authentication) is an `Err` of the
    /// input, reported as `Ok(true)` after the drain: a bad datagram must not end a
    /// call, and what is fatal shows in the drain.
    pub(crate) fn receive(
        &mut self,
        now: Instant,
        recv: Receive<'_>,
        out: &mut Drained,
    ) -> Result<Received, RtcError> {
        let input = Input::Receive(now.max(self.time), recv);
        if !self.rtc.accepts(&input) {
            return Ok(Received::NotOurs);
        }
        self.time = self.time.max(now);
        let taken = self.rtc.handle_input(input).is_ok();
        self.drain(out)?;
        Ok(if taken {
            Received::Taken
        } else {
            Received::Refused
        })
    }

    /// Gives the `Rtc` the time `at` (never earlier than it already had) and drains.
    pub(crate) fn timeout(&mut self, at: Instant, out: &mut Drained) -> Result<(), RtcError> {
        self.time = self.time.max(at);
        // An error here is about one timer (e.g. a stream gone); what is fatal shows
        // in the drain.
        let _ = self.rtc.handle_input(Input::Timeout(self.time));
        self.drain(out)
    }

    /// When the `Rtc` was made.
    pub(crate) fn born(&self) -> Instant {
        self.born
    }

    /// The latest time given to the `Rtc`.
    pub(crate) fn time(&self) -> Instant {
        self.time
    }

    /// Polls until `Output::Timeout`. The only caller of `poll_output` in the crate.
    fn drain(&mut self, out: &mut Drained) -> Result<(), RtcError> {
        // The packets a write sent at once come first, without `Output`'s moves (see
        // str0m's `Rtc::poll_sent_now`); the loop then drains the rest to the timeout.
        while let Some(t) = self.rtc.poll_sent_now() {
            out.transmits.push_back(t);
        }
        loop {
            match self.rtc.poll_output()? {
                Output::Timeout(t) => {
                    self.deadline = t;
                    return Ok(());
                }
                Output::Transmit(t) => out.transmits.push_back(t),
                Output::Event(e) => {
                    if wanted(&e) {
                        out.events.push_back((self.id, e));
                    }
                }
            }
        }
    }
}

/// What became of a datagram given to [`Driver::receive`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Received {
    /// The `Rtc` handled it.
    Taken,
    /// The `Rtc` took it but could not use it (bad SRTP, a broken DTLS record).
    Refused,
    /// Not for this `Rtc` (other ufrag, unknown address).
    NotOurs,
}

/// Events the shard acts on; the rest are dropped in the drain.
fn wanted(e: &Event) -> bool {
    matches!(
        e,
        Event::Connected
            | Event::IceConnectionStateChange(_)
            | Event::MediaAdded(_)
            | Event::MediaChanged(_)
            | Event::RtpPacket(_)
            | Event::KeyframeRequest(_)
            | Event::Closed
            | Event::PeerStats(_)
            | Event::MediaIngressStats(_)
            | Event::MediaEgressStats(_)
            | Event::EgressBitrateEstimate(_)
    )
}

//! Who is speaking, per room: the shard's side of [`crate::sfu::speaker`].
//!
//! Forwarding a packet that carries an audio level costs one comparison (the up
//! track's [`LevelMeter`](crate::sfu::speaker::LevelMeter)) and arms a timer once. Every
//! [`TICK`] while levels arrive or a room has a speaker, each local participant's
//! loudest level of the tick goes to its room's [`Detector`]; a change is sent as
//! `speaker` to everyone in the room, participants and viewers, those served by other
//! workers too (through [`Shard::signal`]). A publisher's packets are handled on its
//! room's home worker, so only the home decides; mirrors only pass the message on.
//! Late joiners hear the current speaker after `joined`.

use std::time::Instant;

use rustc_hash::FxHashMap;
use str0m::media::MediaKind;

use super::Shard;
use crate::sfu::speaker::{Detector, TICK};
use crate::signaling::protocol::{PeerId, Role, ServerMsg};

/// Each room's speaker detector, for rooms where someone was heard lately.
pub(super) type Speakers = FxHashMap<String, Detector>;

impl Shard {
    /// The speaker tick: each room's detector gets its participants' loudest levels.
    pub(super) fn speaker_tick(&mut self, now: Instant) {
        self.timers.speaker_due = None;
        let mut by_room: FxHashMap<&str, Vec<(PeerId, Option<u8>)>> = FxHashMap::default();
        for p in self.peers.values_mut() {
            if p.role != Role::Participant || !p.is_here() {
                continue;
            }
            let mut audio = false;
            let mut loudest: Option<u8> = None;
            for up in p.up.values_mut() {
                if up.kind == MediaKind::Audio {
                    audio = true;
                    loudest = loudest.max(up.level.take());
                }
            }
            if audio {
                by_room
                    .entry(p.room.as_str())
                    .or_default()
                    .push((p.id, loudest));
            }
        }
        let mut changes: Vec<(String, Option<PeerId>)> = Vec::new();
        for (room, levels) in by_room {
            let detector = match self.speakers.get_mut(room) {
                Some(d) => d,
                // Nothing but silence from a room without a detector: nothing to do.
                None if levels.iter().all(|(_, l)| l.is_none_or(|l| l == 0)) => continue,
                None => self.speakers.entry(room.to_string()).or_default(),
            };
            if let Some(change) = detector.tick(now, levels) {
                changes.push((room.to_string(), change));
            }
        }
        // A detector with nothing to decide is as good as a new one.
        self.speakers.retain(|_, d| !d.is_idle());
        if !self.speakers.is_empty() {
            self.timers.speaker_due = Some(now + TICK);
        }
        for (room, id) in changes {
            tracing::debug!(room, speaker = ?id, "active speaker");
            self.announce_speaker(&room, id);
        }
    }

    /// Participant `id` left `room`: if it was the speaker, the room hears that nobody
    /// is.
    pub(super) fn speaker_left(&mut self, room: &str, id: PeerId) {
        let Some(detector) = self.speakers.get_mut(room) else {
            return;
        };
        let change = detector.remove(id);
        if detector.is_idle() {
            self.speakers.remove(room);
        }
        if let Some(speaker) = change {
            self.announce_speaker(room, speaker);
        }
    }

    /// Tells `id`, who just joined `room` (or resumed), who is speaking, if anyone.
    pub(super) fn tell_speaker(&mut self, id: PeerId, room: &str) {
        let speaker = self.speakers.get(room).and_then(Detector::speaker);
        if speaker.is_some() {
            self.signal(id, ServerMsg::Speaker { id: speaker });
        }
    }

    /// Everyone in `room`, participants and viewers, hears who speaks.
    fn announce_speaker(&mut self, room: &str, speaker: Option<PeerId>) {
        let audience: Vec<PeerId> = self
            .rooms
            .members(room)
            .iter()
            .chain(self.rooms.viewers(room))
            .copied()
            .collect();
        for o in audience {
            self.signal(o, ServerMsg::Speaker { id: speaker });
        }
    }
}

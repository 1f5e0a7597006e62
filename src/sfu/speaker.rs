//! Who is speaking in a room, from the audio level each browser puts in its RTP
//! headers (RFC 6464: the packet's level in -dBov, 127 for digital silence).
//!
//! Two parts, both Sans-IO:
//! - [`LevelMeter`]: one per audio up track, fed by every packet. It keeps the loudest
//!   level since it was last read: one comparison per packet, no clock, no lookup.
//! - [`Detector`]: one per room, read every [`TICK`] with each participant's loudest
//!   level of the tick. Each voice has two meters. A peak meter rises at once and
//!   falls by [`RELEASE_DB_PER_S`], so the pauses between words and a beep every half
//!   second keep a voice speaking, and a voice that stops falls under
//!   [`SPEAKING_LOUDNESS`] within about a second. A moving average over
//!   [`RECENT_TAU`] says how loud a voice is now, to compare voices: the floor goes to
//!   the loudest speaking voice when it is free (nobody speaking); a speaker keeps it
//!   until it falls silent or another voice has been [`SWITCH_MARGIN_DB`] louder on
//!   average for [`SWITCH_HOLD`], so two people talking at once, or a cough, do not
//!   make the highlight flicker.
//!
//! A muted microphone (`track.enabled = false`) sends level 127, loudness 0: it never
//! speaks.
#![warn(clippy::disallowed_methods)] // Sans-IO: see clippy.toml

use std::time::{Duration, Instant};

use crate::signaling::protocol::PeerId;

/// How often the rooms' detectors are read.
pub const TICK: Duration = Duration::from_millis(100);

/// Loudness (dB above -127 dBov) a voice's meter must reach to count as speaking:
/// -55 dBov. Speech after the browser's gain control is around -40 to -20 dBov; a
/// quiet room after noise suppression is below -70.
pub const SPEAKING_LOUDNESS: f32 = 72.0;

/// How fast a voice's meter falls when it is quieter than the meter (dB a second):
/// from ordinary speech to under the threshold in about a second.
pub const RELEASE_DB_PER_S: f32 = 25.0;

/// Time constant of the moving average that compares voices.
pub const RECENT_TAU: Duration = Duration::from_millis(300);

/// How much louder than the speaker another voice must be to take the floor from it.
pub const SWITCH_MARGIN_DB: f32 = 6.0;

/// How long another voice must stay that much louder before the floor changes hands.
pub const SWITCH_HOLD: Duration = Duration::from_millis(600);

/// The loudest audio level of one track since it was last read.
#[derive(Debug, Default, Clone, Copy)]
pub struct LevelMeter {
    /// Loudness (127 + the level in dBov: 0 silence, 127 full scale) of the loudest
    /// packet since the last [`LevelMeter::take`]; `None`: no level heard.
    loudest: Option<u8>,
}

impl LevelMeter {
    /// A packet's audio level as str0m gives it (-127..=0 dBov).
    #[inline]
    pub fn on_level(&mut self, level: i8) {
        let loudness = (127 + i16::from(level.clamp(-127, 0))) as u8;
        if self.loudest.is_none_or(|l| loudness > l) {
            self.loudest = Some(loudness);
        }
    }

    /// The loudest level since the last call, and a fresh start.
    pub fn take(&mut self) -> Option<u8> {
        self.loudest.take()
    }
}

/// One room's active speaker.
#[derive(Debug, Default)]
pub struct Detector {
    voices: Vec<Voice>,
    speaker: Option<PeerId>,
    /// A voice louder than the speaker, and since when.
    challenger: Option<(PeerId, Instant)>,
    last_tick: Option<Instant>,
}

/// One participant's meter.
#[derive(Debug, Clone, Copy)]
struct Voice {
    id: PeerId,
    /// Peak-hold loudness in dB above -127 dBov: whether it speaks.
    meter: f32,
    /// Moving average of its loudness: how loud it is now.
    recent: f32,
    /// The loudest level of the current tick (scratch).
    heard: f32,
}

impl Detector {
    /// The current speaker.
    pub fn speaker(&self) -> Option<PeerId> {
        self.speaker
    }

    /// Nothing left to decide until a level is heard: no speaker, every meter down.
    pub fn is_idle(&self) -> bool {
        self.speaker.is_none() && self.voices.iter().all(|v| v.meter <= 0.0 && v.recent < 1.0)
    }

    /// A tick: `levels` has each participant heard from with its loudest level since
    /// the last tick (`None`: no packet with a level). Participants not listed keep
    /// falling. Returns the new speaker when it changed (`Some(None)`: nobody).
    pub fn tick(
        &mut self,
        now: Instant,
        levels: impl IntoIterator<Item = (PeerId, Option<u8>)>,
    ) -> Option<Option<PeerId>> {
        let dt = self
            .last_tick
            .map_or(TICK, |t| now.saturating_duration_since(t))
            .as_secs_f32();
        self.last_tick = Some(now);
        let fall = RELEASE_DB_PER_S * dt;
        let alpha = (dt / RECENT_TAU.as_secs_f32()).min(1.0);
        let known = self.voices.len();
        for (id, level) in levels {
            let Some(level) = level else {
                continue;
            };
            let level = f32::from(level);
            match self.voices.iter_mut().find(|v| v.id == id) {
                // Known voices are updated below, with the silent ones.
                Some(v) => v.heard = v.heard.max(level),
                None => self.voices.push(Voice {
                    id,
                    meter: level,
                    recent: alpha * level,
                    heard: 0.0,
                }),
            }
        }
        for v in &mut self.voices[..known] {
            let level = std::mem::take(&mut v.heard);
            v.meter = (v.meter - fall).max(level).max(0.0);
            v.recent += alpha * (level - v.recent);
        }
        self.voices
            .retain(|v| v.meter > 0.0 || v.recent >= 1.0 || Some(v.id) == self.speaker);
        self.decide(now)
    }

    /// Participant `id` left: if it was speaking, the floor is free (returned as a
    /// change, like [`Detector::tick`]).
    pub fn remove(&mut self, id: PeerId) -> Option<Option<PeerId>> {
        self.voices.retain(|v| v.id != id);
        if self.challenger.is_some_and(|(c, _)| c == id) {
            self.challenger = None;
        }
        if self.speaker == Some(id) {
            self.speaker = None;
            return Some(None);
        }
        None
    }

    fn voice(&self, id: PeerId) -> Option<&Voice> {
        self.voices.iter().find(|v| v.id == id)
    }

    fn decide(&mut self, now: Instant) -> Option<Option<PeerId>> {
        // The loudest voice now among those that speak; on a tie the speaker keeps
        // the floor.
        let loudest = self
            .voices
            .iter()
            .filter(|v| v.meter >= SPEAKING_LOUDNESS)
            .max_by(|a, b| {
                a.recent
                    .total_cmp(&b.recent)
                    .then_with(|| (Some(a.id) == self.speaker).cmp(&(Some(b.id) == self.speaker)))
            })
            .map(|v| (v.id, v.recent));
        let speaking = self.speaker.and_then(|s| self.voice(s)).copied();
        let next = match (self.speaker, speaking, loudest) {
            // Nobody speaks.
            (_, _, None) => None,
            // The speaker is the loudest.
            (Some(s), _, Some((l, _))) if s == l => Some(s),
            // The floor is free (no speaker, or it fell silent): the loudest takes it.
            (None, _, Some((l, _))) => Some(l),
            (Some(_), None, Some((l, _))) => Some(l),
            (Some(_), Some(v), Some((l, _))) if v.meter < SPEAKING_LOUDNESS => Some(l),
            // Another voice is louder now than a speaker still speaking: only by a
            // margin, and for a while.
            (Some(s), Some(v), Some((l, lm))) => {
                if lm < v.recent + SWITCH_MARGIN_DB {
                    self.challenger = None;
                    Some(s)
                } else {
                    match self.challenger {
                        Some((c, since)) if c == l => {
                            if now.saturating_duration_since(since) >= SWITCH_HOLD {
                                Some(l)
                            } else {
                                Some(s)
                            }
                        }
                        _ => {
                            self.challenger = Some((l, now));
                            Some(s)
                        }
                    }
                }
            }
        };
        if next == self.speaker {
            if next.is_none() || loudest.is_some_and(|(l, _)| Some(l) == next) {
                self.challenger = None;
            }
            return None;
        }
        self.speaker = next;
        self.challenger = None;
        Some(next)
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // a test's fake clock starts anywhere
mod tests {
    use super::*;

    /// Level in dBov for a loudness.
    const SPEECH: u8 = 127 - 30; // -30 dBov
    const LOUD: u8 = 127 - 20; // -20 dBov
    const SILENT: u8 = 0; // level 127: a muted microphone

    /// Runs `ticks` ticks from `t`, each with `levels`, and returns every change with
    /// its tick number.
    fn run(
        d: &mut Detector,
        t: &mut Instant,
        ticks: usize,
        levels: &[(PeerId, Option<u8>)],
    ) -> Vec<(usize, Option<PeerId>)> {
        let mut changes = Vec::new();
        for i in 0..ticks {
            *t += TICK;
            if let Some(c) = d.tick(*t, levels.iter().copied()) {
                changes.push((i, c));
            }
        }
        changes
    }

    #[test]
    fn meter_keeps_the_loudest_packet_until_read() {
        let mut m = LevelMeter::default();
        assert_eq!(m.take(), None);
        m.on_level(-127);
        m.on_level(-30);
        m.on_level(-90);
        assert_eq!(m.take(), Some(97));
        assert_eq!(m.take(), None);
        m.on_level(0);
        assert_eq!(m.take(), Some(127));
        // Out of range values from the network are clamped.
        m.on_level(i8::MIN);
        assert_eq!(m.take(), Some(0));
    }

    #[test]
    fn the_unmuted_voice_speaks_and_the_muted_one_never_does() {
        let mut d = Detector::default();
        let mut t = Instant::now();
        let changes = run(&mut d, &mut t, 50, &[(1, Some(SILENT)), (2, Some(SPEECH))]);
        assert_eq!(changes, vec![(0, Some(2))], "at once, and no flicker");
        assert_eq!(d.speaker(), Some(2));
    }

    #[test]
    fn silence_from_everyone_is_nobody() {
        let mut d = Detector::default();
        let mut t = Instant::now();
        let changes = run(&mut d, &mut t, 20, &[(1, Some(SILENT)), (2, Some(SILENT))]);
        assert!(changes.is_empty());
        assert_eq!(d.speaker(), None);
        assert!(d.is_idle());
    }

    #[test]
    fn a_beep_every_half_second_keeps_the_floor() {
        // Chromium's fake microphone: a short beep, then silence, twice a second.
        let mut d = Detector::default();
        let mut t = Instant::now();
        let mut changes = Vec::new();
        for i in 0..100 {
            t += TICK;
            let level = if i % 5 == 0 { LOUD } else { SILENT };
            if let Some(c) = d.tick(t, [(7, Some(level))]) {
                changes.push((i, c));
            }
        }
        assert_eq!(changes, vec![(0, Some(7))]);
    }

    #[test]
    fn the_speaker_who_stops_is_released_within_a_second_and_a_half() {
        let mut d = Detector::default();
        let mut t = Instant::now();
        run(&mut d, &mut t, 10, &[(1, Some(SPEECH))]);
        assert_eq!(d.speaker(), Some(1));
        let changes = run(&mut d, &mut t, 20, &[(1, Some(SILENT))]);
        assert_eq!(changes.len(), 1);
        let (tick, who) = changes[0];
        assert_eq!(who, None);
        // 25 dB/s from -30 dBov (97) to the threshold (72): a second.
        assert!((8..=12).contains(&tick), "released after {tick} ticks");
        assert!(d.is_idle() || d.speaker().is_none());
        // Packets that stop altogether (no level heard) release it too.
        run(&mut d, &mut t, 10, &[(1, Some(SPEECH))]);
        let changes = run(&mut d, &mut t, 20, &[(1, None)]);
        assert_eq!(changes.len(), 1, "{changes:?}");
    }

    #[test]
    fn turns_pass_once_the_speaker_falls_silent() {
        let mut d = Detector::default();
        let mut t = Instant::now();
        run(&mut d, &mut t, 10, &[(1, Some(SPEECH)), (2, Some(SILENT))]);
        // 2 answers as soon as 1 stops: 1's meter is still falling, but 2 is louder
        // than the speaker by the margin for the hold time, or 1 falls under the
        // threshold; whichever comes first, within about a second.
        let changes = run(&mut d, &mut t, 20, &[(1, Some(SILENT)), (2, Some(SPEECH))]);
        assert_eq!(changes.len(), 1, "{changes:?}");
        assert_eq!(changes[0].1, Some(2));
        assert!(changes[0].0 <= 10, "{changes:?}");
    }

    #[test]
    fn a_slightly_louder_voice_does_not_take_the_floor() {
        let mut d = Detector::default();
        let mut t = Instant::now();
        run(&mut d, &mut t, 5, &[(1, Some(SPEECH))]);
        // Both talk; 2 is louder, but by less than the margin.
        let changes = run(
            &mut d,
            &mut t,
            50,
            &[(1, Some(SPEECH)), (2, Some(SPEECH + 3))],
        );
        assert!(changes.is_empty(), "{changes:?}");
        assert_eq!(d.speaker(), Some(1));
    }

    #[test]
    fn a_much_louder_voice_takes_the_floor_after_the_hold_only() {
        let mut d = Detector::default();
        let mut t = Instant::now();
        run(&mut d, &mut t, 5, &[(1, Some(SPEECH))]);
        // A cough: one loud tick, then quiet; the speaker keeps the floor.
        let changes = run(&mut d, &mut t, 1, &[(1, Some(SPEECH)), (2, Some(127))]);
        assert!(changes.is_empty());
        let changes = run(&mut d, &mut t, 30, &[(1, Some(SPEECH)), (2, Some(SILENT))]);
        assert!(changes.is_empty(), "a cough does not switch: {changes:?}");
        // 2 talks much louder for long: it takes the floor after the hold.
        let changes = run(
            &mut d,
            &mut t,
            20,
            &[(1, Some(SPEECH)), (2, Some(LOUD + 10))],
        );
        assert_eq!(changes.len(), 1, "{changes:?}");
        let hold_ticks = (SWITCH_HOLD.as_millis() / TICK.as_millis()) as usize;
        // The average needs a few ticks to rise past the margin, then the hold.
        let (tick, who) = changes[0];
        assert_eq!(who, Some(2));
        assert!((hold_ticks..=hold_ticks + 6).contains(&tick), "{changes:?}");
    }

    #[test]
    fn the_speaker_leaving_frees_the_floor() {
        let mut d = Detector::default();
        let mut t = Instant::now();
        run(&mut d, &mut t, 5, &[(1, Some(SPEECH)), (2, Some(SILENT))]);
        assert_eq!(d.remove(2), None);
        assert_eq!(d.remove(1), Some(None));
        assert_eq!(d.speaker(), None);
        assert!(d.is_idle());
    }

    #[test]
    fn same_inputs_same_decisions() {
        // Deterministic: a fake clock and the same levels give the same transcript.
        let script = |d: &mut Detector| {
            let mut t = Instant::now();
            let mut out = Vec::new();
            for i in 0..200u32 {
                t += TICK;
                let a = ((i * 37) % 128) as u8;
                let b = ((i * 53 + 11) % 128) as u8;
                out.push(d.tick(t, [(1, Some(a)), (2, Some(b)), (3, None)]));
            }
            out
        };
        let (mut d1, mut d2) = (Detector::default(), Detector::default());
        assert_eq!(script(&mut d1), script(&mut d2));
    }
}

//! Where a frame goes on a recording's time line, Sans-IO. RTP timestamps are only
//! good within one stream and while it flows: a simulcast layer has its own clock
//! offset, and after a mute or a camera turned off a sender may restart its clock.
//! So each frame's place comes from its RTP timestamp measured from an *anchor*, an
//! arrival time paired with the RTP timestamp of the frame that arrived then; the
//! anchor is set anew from the arrival time when the stream changes (another SSRC)
//! or when the RTP clock and the arrivals disagree by more than [`RESYNC`] (a pause,
//! a restarted clock), and moved to any frame that arrives sooner than its anchor
//! predicts (so the anchor follows the least delayed frames, not a late first one). Between re-anchorings, the sender's even spacing is kept
//! (network jitter does not move frames), and across them the recording follows
//! the wall clock: no stretched or frozen stretch.
#![warn(clippy::disallowed_methods)] // Sans-IO: see clippy.toml

use std::time::{Duration, Instant};

/// How far the RTP clock may stray from arrival times before it is re-anchored:
/// more than a jitter buffer's wait plus network jitter, less than a noticeable
/// pause.
pub(crate) const RESYNC: Duration = Duration::from_millis(400);

/// The smallest step between two frames of a track (timestamps must increase).
const STEP: Duration = Duration::from_millis(1);

#[derive(Debug, Clone, Copy)]
struct Anchor {
    ssrc: u32,
    rtp_time: u32,
    at: Instant,
}

/// The time line of one track of a recording.
#[derive(Debug, Clone)]
pub(crate) struct Timeline {
    /// Time zero of the file.
    zero: Instant,
    /// The RTP clock rate (48 kHz audio, 90 kHz video).
    clock_rate: u32,
    anchor: Option<Anchor>,
    last: Option<Duration>,
}

impl Timeline {
    pub(crate) fn new(zero: Instant, clock_rate: u32) -> Self {
        Timeline {
            zero,
            clock_rate: clock_rate.max(1),
            anchor: None,
            last: None,
        }
    }

    /// The place in the file of a frame of stream `ssrc` with RTP timestamp
    /// `rtp_time`, whose first packet arrived at `arrival`. Always after the track's
    /// previous frame.
    pub(crate) fn place(&mut self, ssrc: u32, rtp_time: u32, arrival: Instant) -> Duration {
        let predicted = self
            .anchor
            .filter(|a| a.ssrc == ssrc)
            .and_then(|a| self.time_of(a, rtp_time))
            // A frame that came sooner than the anchor says: the anchor's own frame
            // was held up on its way; this one is the better anchor.
            .filter(|t| *t <= arrival && abs_diff(*t, arrival) <= RESYNC);
        let at = match predicted {
            Some(t) => t,
            None => {
                self.anchor = Some(Anchor {
                    ssrc,
                    rtp_time,
                    at: arrival,
                });
                arrival
            }
        };
        let mut t = at.saturating_duration_since(self.zero);
        if let Some(last) = self.last {
            if t <= last {
                t = last + STEP;
            }
        }
        self.last = Some(t);
        t
    }

    /// The time RTP timestamp `rtp_time` stands for, counted from anchor `a`.
    fn time_of(&self, a: Anchor, rtp_time: u32) -> Option<Instant> {
        // Wrapping difference: a frame may be a little before the anchor.
        let ticks = rtp_time.wrapping_sub(a.rtp_time) as i32 as i64;
        let nanos = ticks.unsigned_abs() as u128 * 1_000_000_000 / self.clock_rate as u128;
        let d = Duration::from_nanos(nanos as u64);
        if ticks >= 0 {
            a.at.checked_add(d)
        } else {
            a.at.checked_sub(d)
        }
    }
}

fn abs_diff(a: Instant, b: Instant) -> Duration {
    a.saturating_duration_since(b)
        .max(b.saturating_duration_since(a))
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // a fake clock needs a starting instant
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn steady_frames_keep_the_senders_spacing_despite_jitter() {
        let zero = Instant::now();
        let mut t = Timeline::new(zero, 90_000);
        assert_eq!(t.place(1, 1000, zero + ms(10)), ms(10));
        // 33 ms later by the RTP clock, arriving 20 ms late: placed by the clock.
        assert_eq!(t.place(1, 1000 + 2970, zero + ms(63)), ms(43));
        assert_eq!(t.place(1, 1000 + 5940, zero + ms(76)), ms(76));
    }

    #[test]
    fn a_pause_follows_the_wall_clock() {
        let zero = Instant::now();
        let mut t = Timeline::new(zero, 48_000);
        assert_eq!(t.place(7, 0, zero), ms(0));
        assert_eq!(t.place(7, 960, zero + ms(20)), ms(20));
        // Muted for 3 s; the sender's clock did not advance (or restarted).
        assert_eq!(t.place(7, 1920, zero + ms(3020)), ms(3020));
        assert_eq!(t.place(7, 2880, zero + ms(3040)), ms(3040));
        // A clock that jumped far ahead over a short pause: arrival wins too.
        assert_eq!(t.place(7, 2880 + 48_000 * 60, zero + ms(3060)), ms(3060));
    }

    #[test]
    fn a_layer_switch_reanchors_on_the_new_stream() {
        let zero = Instant::now();
        let mut t = Timeline::new(zero, 90_000);
        assert_eq!(t.place(1, 50_000, zero + ms(100)), ms(100));
        assert_eq!(t.place(1, 50_000 + 9000, zero + ms(200)), ms(200));
        // Another SSRC with an unrelated clock: placed by its arrival.
        assert_eq!(t.place(2, 7, zero + ms(233)), ms(233));
        assert_eq!(t.place(2, 7 + 2970, zero + ms(270)), ms(266));
    }

    #[test]
    fn a_late_first_frame_does_not_delay_the_rest() {
        let zero = Instant::now();
        let mut t = Timeline::new(zero, 48_000);
        // The first frame was held up 300 ms; the next arrives on time.
        assert_eq!(t.place(1, 0, zero + ms(300)), ms(300));
        assert_eq!(t.place(1, 960, zero + ms(40)), ms(301));
        assert_eq!(t.place(1, 1920, zero + ms(60)), ms(302));
        assert_eq!(t.place(1, 2880 + 48 * 300, zero + ms(380)), ms(380));
    }

    #[test]
    fn times_only_move_forward() {
        let zero = Instant::now();
        let mut t = Timeline::new(zero, 90_000);
        assert_eq!(t.place(1, 90_000, zero + ms(1000)), ms(1000));
        // A new stream whose first frame arrived earlier than the last one's place.
        assert_eq!(t.place(2, 5, zero + ms(990)), ms(1001));
        // Before time zero counts as zero, then moves forward.
        let mut t = Timeline::new(zero + ms(50), 90_000);
        assert_eq!(t.place(1, 0, zero), ms(0));
        assert_eq!(t.place(1, 90, zero + ms(1)), ms(1));
    }
}

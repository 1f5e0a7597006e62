//! Sequence number and timestamp rewriting for one outgoing stream.
//!
//! Each down track sends with its own SSRC and must present one continuous stream to
//! the browser: sequence numbers without jumps (a jump looks like loss and triggers
//! NACKs) and timestamps that keep advancing. The incoming stream that feeds it can
//! change (a simulcast layer switch, a publisher's SSRC change); each change is a new
//! *source generation* and is spliced on right after what was already sent.
//! Gaps *within* one source are kept, so real loss still reaches the receiver as loss
//! and its NACKs can be answered.

use std::time::Instant;

/// Rewrites (sequence number, RTP timestamp) pairs of incoming packets for one down stream.
#[derive(Debug)]
pub struct Rewriter {
    /// First outgoing sequence number; below 2^16 so the SRTP rollover counter starts at 0.
    start_seq: u64,
    state: Option<State>,
}

#[derive(Debug, Clone, Copy)]
struct State {
    generation: u32,
    /// Incoming sequence number of the first packet forwarded from this generation;
    /// anything older belongs to before the splice and is dropped.
    first_in_seq: u64,
    seq_offset: u64,
    ts_offset: u32,
    max_out_seq: u64,
    last_out_ts: u32,
    last_out_at: Instant,
}

/// One packet's rewritten numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rewritten {
    pub seq: u64,
    pub ts: u32,
}

impl Rewriter {
    /// A rewriter whose first packet goes out with sequence number `start_seq` (< 2^16).
    pub fn new(start_seq: u16) -> Self {
        Rewriter {
            start_seq: start_seq as u64,
            state: None,
        }
    }

    /// Rewrites one packet of source `generation`, with extended incoming sequence number
    /// `seq` and RTP timestamp `ts`, arriving at `now`. Returns `None` for a packet that
    /// belongs before the point where this source was spliced in.
    pub fn rewrite(
        &mut self,
        generation: u32,
        seq: u64,
        ts: u32,
        now: Instant,
        clock_rate: u32,
    ) -> Option<Rewritten> {
        let state = match self.state {
            Some(s) if s.generation == generation => {
                if seq < s.first_in_seq {
                    return None;
                }
                s
            }
            Some(prev) => {
                // Splice a new source right after the last packet sent, with the timestamp
                // advanced by the wall-clock time since then (at least one tick).
                let elapsed = now.saturating_duration_since(prev.last_out_at);
                let ticks = (elapsed.as_secs_f64() * clock_rate as f64) as u32;
                let out_ts = prev.last_out_ts.wrapping_add(ticks.max(1));
                State {
                    generation,
                    first_in_seq: seq,
                    seq_offset: (prev.max_out_seq + 1).wrapping_sub(seq),
                    ts_offset: out_ts.wrapping_sub(ts),
                    max_out_seq: prev.max_out_seq,
                    last_out_ts: prev.last_out_ts,
                    last_out_at: prev.last_out_at,
                }
            }
            None => State {
                generation,
                first_in_seq: seq,
                seq_offset: self.start_seq.wrapping_sub(seq),
                ts_offset: 0,
                max_out_seq: self.start_seq,
                last_out_ts: ts,
                last_out_at: now,
            },
        };
        let out = Rewritten {
            seq: seq.wrapping_add(state.seq_offset),
            ts: ts.wrapping_add(state.ts_offset),
        };
        let mut state = state;
        if out.seq >= state.max_out_seq {
            state.max_out_seq = out.seq;
            state.last_out_ts = out.ts;
            state.last_out_at = now;
        }
        self.state = Some(state);
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn one_source_keeps_gaps_and_order() {
        let t0 = Instant::now();
        let mut r = Rewriter::new(1000);
        let a = r.rewrite(0, 70_000, 500, t0, 90_000).unwrap();
        assert_eq!(a, Rewritten { seq: 1000, ts: 500 });
        // A gap of one (lost packet) stays a gap.
        let b = r.rewrite(0, 70_002, 3500, t0, 90_000).unwrap();
        assert_eq!(b.seq, 1002);
        // The lost packet, late: fills the gap.
        let c = r.rewrite(0, 70_001, 500, t0, 90_000).unwrap();
        assert_eq!(c.seq, 1001);
        // Older than the first forwarded packet: dropped.
        assert_eq!(r.rewrite(0, 69_999, 0, t0, 90_000), None);
    }

    #[test]
    fn switching_source_continues_numbers() {
        let t0 = Instant::now();
        let mut r = Rewriter::new(10);
        for i in 0..5u64 {
            r.rewrite(0, 100 + i, 9000 * i as u32, t0, 90_000).unwrap();
        }
        // New source with unrelated numbers, 100 ms later.
        let t1 = t0 + Duration::from_millis(100);
        let s = r.rewrite(1, 50_000, 123_456, t1, 90_000).unwrap();
        assert_eq!(s.seq, 15);
        assert_eq!(s.ts, 4 * 9000 + 9000);
        let s2 = r.rewrite(1, 50_001, 123_456 + 3000, t1, 90_000).unwrap();
        assert_eq!(
            s2,
            Rewritten {
                seq: 16,
                ts: 4 * 9000 + 9000 + 3000
            }
        );
        // Stragglers of the old generation are no longer forwarded through the new splice.
        assert_eq!(r.rewrite(1, 49_999, 0, t1, 90_000), None);
    }

    #[test]
    fn timestamps_wrap() {
        let t0 = Instant::now();
        let mut r = Rewriter::new(1);
        r.rewrite(0, 1, u32::MAX - 10, t0, 90_000).unwrap();
        let b = r.rewrite(0, 2, 5, t0, 90_000).unwrap();
        assert_eq!(b.ts, 5);
        let c = r
            .rewrite(1, 7, 0, t0 + Duration::from_millis(1), 90_000)
            .unwrap();
        assert_eq!(c.ts, 5 + 90);
        assert_eq!(c.seq, 3);
    }
}

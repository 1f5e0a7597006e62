//! Sequence number and timestamp rewriting for one outgoing stream.
//!
//! Each down track sends with its own SSRC and must present one continuous stream to
//! the browser: sequence numbers without jumps (a jump looks like loss and triggers
//! NACKs) and timestamps that keep advancing. The incoming stream that feeds it can
//! change (a simulcast layer switch, a publisher's SSRC change); each change is a new
//! *source generation* and is spliced on right after what was already sent.
//! Gaps *within* one source are kept, so real loss still reaches the receiver as loss
//! and its NACKs can be answered.
#![warn(clippy::disallowed_methods)] // Sans-IO: see clippy.toml

use std::time::Instant;

use str0m::rtp::{Vp8Descriptor, Vp8Patch, Vp8PatchError};

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

/// VP8 picture ids are 15-bit counters.
const PICTURE_ID_MOD: u16 = 1 << 15;

/// Rewrites the VP8 payload descriptor's picture id and TL0PICIDX for one down stream.
///
/// Each encoding of a simulcast publisher counts its own pictures. A receiver's
/// reference finder (Chrome's) tracks those counters; after a switch to a layer whose
/// counter is ahead it takes every picture id in between for frames it has not got
/// yet, and holds back the frames that might refer to them until the next keyframe:
/// a freeze of seconds. So, like the sequence numbers, each new source generation
/// continues the counters right after the last ones sent (switches happen on a
/// keyframe, which refers to nothing).
#[derive(Debug, Default)]
pub struct Vp8Rewriter {
    state: Option<Vp8State>,
}

#[derive(Debug, Clone, Copy)]
struct Vp8State {
    generation: u32,
    pid_offset: u16,
    tl0_offset: u8,
    /// The newest picture id and TL0PICIDX sent.
    last_pid: Option<u16>,
    last_tl0: Option<u8>,
}

impl Vp8Rewriter {
    /// The picture id and TL0PICIDX to send for a packet of source `generation` that
    /// carries `pid` and `tl0` (each may be absent from the descriptor).
    pub fn rewrite(
        &mut self,
        generation: u32,
        pid: Option<u16>,
        tl0: Option<u8>,
    ) -> (Option<u16>, Option<u8>) {
        let mut state = match self.state {
            Some(s) if s.generation == generation => s,
            Some(prev) => Vp8State {
                generation,
                pid_offset: match (prev.last_pid, pid) {
                    (Some(last), Some(p)) => pid_add(last, 1).wrapping_sub(p) % PICTURE_ID_MOD,
                    _ => 0,
                },
                tl0_offset: match (prev.last_tl0, tl0) {
                    (Some(last), Some(t)) => last.wrapping_add(1).wrapping_sub(t),
                    _ => 0,
                },
                ..prev
            },
            None => Vp8State {
                generation,
                pid_offset: 0,
                tl0_offset: 0,
                last_pid: None,
                last_tl0: None,
            },
        };
        let out_pid = pid.map(|p| pid_add(p, state.pid_offset));
        let out_tl0 = tl0.map(|t| t.wrapping_add(state.tl0_offset));
        // Only newer values move the mark (a late packet must not pull it back).
        if let Some(p) = out_pid {
            if state.last_pid.is_none_or(|l| pid_ahead(p, l)) {
                state.last_pid = Some(p);
            }
        }
        if let Some(t) = out_tl0 {
            if state
                .last_tl0
                .is_none_or(|l| t != l && t.wrapping_sub(l) < 128)
            {
                state.last_tl0 = Some(t);
            }
        }
        self.state = Some(state);
        (out_pid, out_tl0)
    }

    /// The descriptor patch for a packet of `generation` with descriptor `d`; `None`
    /// when nothing changes.
    pub fn patch(&mut self, generation: u32, d: &Vp8Descriptor) -> Option<Vp8Patch> {
        let (pid, tl0) = (d.picture_id(), d.tl0_pic_idx());
        let (out_pid, out_tl0) = self.rewrite(generation, pid, tl0);
        if (out_pid, out_tl0) == (pid, tl0) {
            return None;
        }
        let build = |pid: Option<u16>| {
            let mut b = d.patch();
            if let Some(p) = pid {
                b = b.picture_id(p);
            }
            if let Some(t) = out_tl0 {
                b = b.tl0_pic_idx(t);
            }
            b.build()
        };
        match build(out_pid) {
            Ok(patch) => Some(patch),
            // A 7-bit picture id: keep its low bits.
            Err(Vp8PatchError::PictureIdTooLarge) => build(out_pid.map(|p| p & 0x7f)).ok(),
            Err(_) => None,
        }
    }
}

fn pid_add(a: u16, b: u16) -> u16 {
    a.wrapping_add(b) % PICTURE_ID_MOD
}

/// Whether 15-bit picture id `a` comes after `b` (within half the range).
fn pid_ahead(a: u16, b: u16) -> bool {
    let d = a.wrapping_sub(b) % PICTURE_ID_MOD;
    d != 0 && d < PICTURE_ID_MOD / 2
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // a test's fake clock starts anywhere
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

    #[test]
    fn vp8_picture_ids_continue_across_a_switch() {
        let mut v = Vp8Rewriter::default();
        // The first source passes through unchanged.
        assert_eq!(v.rewrite(1, Some(500), Some(7)), (Some(500), Some(7)));
        assert_eq!(v.rewrite(1, Some(501), Some(7)), (Some(501), Some(7)));
        assert_eq!(v.rewrite(1, Some(502), Some(8)), (Some(502), Some(8)));
        // A late packet of an older picture does not move the mark back.
        assert_eq!(v.rewrite(1, Some(501), Some(7)), (Some(501), Some(7)));
        // A switch to a layer whose counters are far ahead: they continue from 502/8.
        assert_eq!(v.rewrite(2, Some(20_000), Some(200)), (Some(503), Some(9)));
        assert_eq!(v.rewrite(2, Some(20_001), Some(200)), (Some(504), Some(9)));
        assert_eq!(v.rewrite(2, Some(20_002), Some(201)), (Some(505), Some(10)));
        // And back to one whose counters are behind.
        assert_eq!(v.rewrite(1, Some(600), Some(20)), (Some(506), Some(11)));
    }

    #[test]
    fn vp8_picture_ids_wrap_at_15_bits() {
        let mut v = Vp8Rewriter::default();
        v.rewrite(1, Some(32_767), Some(255));
        assert_eq!(v.rewrite(2, Some(40), Some(3)), (Some(0), Some(0)));
        assert_eq!(v.rewrite(2, Some(41), Some(4)), (Some(1), Some(1)));
        // Fields the descriptor lacks stay absent.
        assert_eq!(v.rewrite(3, None, None), (None, None));
    }

    #[test]
    fn vp8_descriptor_patch_rewrites_the_bytes() {
        // X=1, S=1; I=1, L=1, T=1; a 15-bit picture id (0x1234, then 0x4001); a
        // TL0PICIDX (9, then 0x42); TID 0; a keyframe header.
        let first = [0x90, 0xE0, 0x92, 0x34, 0x09, 0x00, 0x00, 0x01];
        let second = [0x90, 0xE0, 0xC0, 0x01, 0x42, 0x00, 0x00, 0x01];
        let mut v = Vp8Rewriter::default();
        let d = Vp8Descriptor::parse(&first).unwrap();
        assert!(v.patch(1, &d).is_none(), "the first source needs no patch");
        let d = Vp8Descriptor::parse(&second).unwrap();
        let patch = v.patch(2, &d).expect("a new source is renumbered");
        let expected = d
            .patch()
            .picture_id(0x1235)
            .tl0_pic_idx(10)
            .build()
            .unwrap();
        assert_eq!(patch, expected);
    }
}

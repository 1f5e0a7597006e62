//! RTP packets of one stream back into whole frames, Sans-IO: packets go in (in any
//! order, duplicated, some late), complete frames come out in sequence order, each
//! reassembled with str0m's VP8 depacketizer (an Opus payload is its frame, RFC 7587).
//!
//! A gap waits [`MAX_WAIT`] for its retransmission (the publisher's `Rtc` sends the
//! NACKs: a repaired packet arrives here like any other). A gap that does not fill in
//! time is loss: the frames around it are dropped and, for video, every frame until
//! the next keyframe (a decoder given a frame whose reference is missing shows
//! garbage), and the caller is told to ask for a keyframe.
#![warn(clippy::disallowed_methods)] // Sans-IO: see clippy.toml

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use str0m::format::Codec;
use str0m::unversioned::{Depacketizer, Vp8Depacketizer};

use crate::sfu::codec;

/// How long a gap waits for its retransmission before it counts as loss: a few LAN
/// round trips plus the sender's NACK handling.
pub(crate) const MAX_WAIT: Duration = Duration::from_millis(250);

/// Most packets held behind a gap (about a second of 2.5 Mbit/s video).
const MAX_HELD: usize = 300;

/// One received packet, as the buffer keeps it.
#[derive(Debug, Clone)]
struct Held {
    rtp_time: u32,
    marker: bool,
    arrival: Instant,
    payload: Arc<[u8]>,
}

/// A reassembled frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Assembled {
    /// The RTP timestamp of its packets.
    pub(crate) rtp_time: u32,
    /// When its first packet arrived.
    pub(crate) arrival: Instant,
    pub(crate) keyframe: bool,
    pub(crate) data: Vec<u8>,
}

/// What one [`Jitter::push`] produced.
#[derive(Debug, Default)]
pub(crate) struct Drained {
    /// Complete frames, in order.
    pub(crate) frames: Vec<Assembled>,
    /// Packets were lost for good: video needs a keyframe to go on.
    pub(crate) lost: bool,
    /// Frames dropped: incomplete, or video waiting for a keyframe.
    pub(crate) dropped: u64,
}

/// The reorder buffer of one RTP stream.
#[derive(Debug)]
pub(crate) struct Jitter {
    codec: Codec,
    video: bool,
    /// VP8's; `None` for Opus.
    depacketizer: Option<Vp8Depacketizer>,
    packets: BTreeMap<u64, Held>,
    /// The sequence number the next frame starts at (`None`: not started, or lost
    /// track after a gap; the next frame head starts it).
    next: Option<u64>,
    /// Highest sequence number handed out or skipped: anything at or below is late.
    done: Option<u64>,
    /// Video: frames are dropped until a keyframe.
    need_keyframe: bool,
}

impl Jitter {
    /// A buffer for `codec`; `None` for a codec it cannot reassemble.
    pub(crate) fn new(codec: Codec) -> Option<Self> {
        let (video, depacketizer) = match codec {
            Codec::Vp8 => (true, Some(Vp8Depacketizer::default())),
            Codec::Opus => (false, None),
            _ => return None,
        };
        Some(Jitter {
            codec,
            video,
            depacketizer,
            packets: BTreeMap::new(),
            next: None,
            done: None,
            need_keyframe: video,
        })
    }

    /// A packet arrived (`seq`: the extended sequence number); returns the frames it
    /// completed, and what was lost.
    pub(crate) fn push(
        &mut self,
        now: Instant,
        seq: u64,
        rtp_time: u32,
        marker: bool,
        arrival: Instant,
        payload: Arc<[u8]>,
    ) -> Drained {
        let late = self.done.is_some_and(|d| seq <= d);
        if !late {
            self.packets.entry(seq).or_insert(Held {
                rtp_time,
                marker,
                arrival,
                payload,
            });
        }
        self.drain(now)
    }

    /// Whatever is complete, and gaps that waited too long given up.
    pub(crate) fn drain(&mut self, now: Instant) -> Drained {
        let mut out = Drained::default();
        while let Some(next) = self.start() {
            match self.frame_at(next) {
                Some(end) => self.emit(next, end, &mut out),
                None if self.overdue(now) => self.skip_gap(next, &mut out),
                None => break,
            }
        }
        out
    }

    /// Where the next frame starts: `next`, or the first frame head held (dropping
    /// what comes before it). `None`: nothing to start from yet.
    fn start(&mut self) -> Option<u64> {
        if let Some(n) = self.next {
            return Some(n);
        }
        let head = self
            .packets
            .iter()
            .find(|(_, p)| self.is_head(&p.payload))
            .map(|(s, _)| *s)?;
        self.packets = self.packets.split_off(&head);
        self.next = Some(head);
        // What comes before the frame started from is late from now on: a repair of
        // a packet given up with its gap must not sit below `next`, where the next
        // emit would take it as part of its frame.
        if let Some(before) = head.checked_sub(1) {
            self.done = Some(self.done.map_or(before, |d| d.max(before)));
        }
        Some(head)
    }

    /// The last sequence number of the complete frame starting at `start`, if it is.
    fn frame_at(&self, start: u64) -> Option<u64> {
        let first = self.packets.get(&start)?;
        let mut seq = start;
        let mut p = first;
        loop {
            if self.is_tail(p) {
                return Some(seq);
            }
            let after = self.packets.get(&(seq + 1))?;
            // A new timestamp: the frame ended without a marker.
            if after.rtp_time != first.rtp_time {
                return Some(seq);
            }
            seq += 1;
            p = after;
        }
    }

    fn emit(&mut self, start: u64, end: u64, out: &mut Drained) {
        // Nothing is held below `start`: whatever is at or below `done` is refused,
        // and `done` is always just below the frame a drain starts from.
        let rest = self.packets.split_off(&(end + 1));
        let frame = std::mem::replace(&mut self.packets, rest);
        self.next = Some(end + 1);
        self.done = Some(end);
        let Some(first) = frame.get(&start) else {
            return;
        };
        if !self.is_head(&first.payload) {
            // Padding, or the middle of a frame whose start was lost.
            if !first.payload.is_empty() {
                out.dropped += 1;
            }
            return;
        }
        let keyframe = self.video && codec::starts_keyframe(self.codec, &first.payload);
        if self.need_keyframe && !keyframe {
            out.dropped += 1;
            return;
        }
        let (rtp_time, arrival) = (first.rtp_time, first.arrival);
        let size: usize = frame.values().map(|p| p.payload.len()).sum();
        let mut data = Vec::with_capacity(size);
        let mut extra = str0m::format::CodecExtra::None;
        for p in frame.values() {
            let ok = match self.depacketizer.as_mut() {
                Some(d) => d.depacketize(&p.payload, &mut data, &mut extra).is_ok(),
                None => {
                    data.extend_from_slice(&p.payload);
                    true
                }
            };
            if !ok {
                out.dropped += 1;
                if self.video {
                    self.need_keyframe = true;
                    out.lost = true;
                }
                return;
            }
        }
        if data.is_empty() {
            return;
        }
        if self.codec == Codec::Vp8 && !codec::vp8_frame_holds_first_partition(&data) {
            // Packets missing at its end that nothing above caught: never hand a decoder
            // a frame it cannot parse, go on from the next keyframe.
            tracing::warn!(
                packets = ?describe(frame.iter()),
                after = ?describe(self.packets.iter().take(3)),
                len = data.len(),
                "recorder: a VP8 frame shorter than its first partition, dropped"
            );
            out.dropped += 1;
            self.need_keyframe = true;
            out.lost = true;
            return;
        }
        self.need_keyframe = false;
        out.frames.push(Assembled {
            rtp_time,
            arrival,
            keyframe,
            data,
        });
    }

    /// Whether the packets held behind the gap have waited too long.
    fn overdue(&self, now: Instant) -> bool {
        let Some((_, oldest)) = self.packets.first_key_value() else {
            return false;
        };
        self.packets.len() > MAX_HELD || now.saturating_duration_since(oldest.arrival) >= MAX_WAIT
    }

    /// Gives up on the gap at `next`: what is held up to the next frame head goes.
    fn skip_gap(&mut self, next: u64, out: &mut Drained) {
        let head = self
            .packets
            .iter()
            .filter(|(s, _)| **s > next)
            .find(|(_, p)| self.is_head(&p.payload))
            .map(|(s, _)| *s);
        out.dropped += 1;
        if self.video {
            self.need_keyframe = true;
            out.lost = true;
        }
        match head {
            Some(h) => {
                self.packets = self.packets.split_off(&h);
                self.done = Some(h - 1);
                self.next = Some(h);
            }
            None => {
                if let Some((last, _)) = self.packets.last_key_value() {
                    self.done = Some(*last);
                }
                self.packets.clear();
                self.next = None;
            }
        }
    }

    fn is_head(&self, payload: &[u8]) -> bool {
        !payload.is_empty()
            && self
                .depacketizer
                .as_ref()
                .is_none_or(|d| d.is_partition_head(payload))
    }

    fn is_tail(&self, p: &Held) -> bool {
        self.depacketizer
            .as_ref()
            .is_none_or(|d| d.is_partition_tail(p.marker, &p.payload))
    }
}

/// Held packets as a log line shows them: sequence number, size, marker, timestamp.
fn describe<'a>(held: impl Iterator<Item = (&'a u64, &'a Held)>) -> Vec<(u64, usize, bool, u32)> {
    held.map(|(s, p)| (*s, p.payload.len(), p.marker, p.rtp_time))
        .collect()
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // a fake clock needs a starting instant
mod tests {
    use super::*;

    /// VP8 packets of one frame: descriptor (S on the first), a keyframe or inter
    /// frame tag on the first, then filler.
    fn vp8_frame(key: bool, packets: usize) -> Vec<Vec<u8>> {
        (0..packets)
            .map(|i| {
                let mut p = vec![if i == 0 { 0x10 } else { 0x00 }];
                if i == 0 {
                    p.extend_from_slice(&[if key { 0x00 } else { 0x01 }, 0x02, 0x00]);
                    if key {
                        p.extend_from_slice(&[0x9d, 0x01, 0x2a, 0x40, 0x01, 0xf0, 0x00]);
                    }
                }
                p.extend(std::iter::repeat_n(i as u8 + 1, 50));
                p
            })
            .collect()
    }

    struct Feed {
        j: Jitter,
        t0: Instant,
        frames: Vec<Assembled>,
        lost: bool,
    }

    impl Feed {
        fn new(codec: Codec) -> Self {
            Feed {
                j: Jitter::new(codec).unwrap(),
                t0: Instant::now(),
                frames: Vec::new(),
                lost: false,
            }
        }
        fn at(&self, ms: u64) -> Instant {
            self.t0 + Duration::from_millis(ms)
        }
        fn push(&mut self, ms: u64, seq: u64, ts: u32, marker: bool, payload: &[u8]) {
            let now = self.at(ms);
            let d = self.j.push(now, seq, ts, marker, now, payload.into());
            self.frames.extend(d.frames);
            self.lost |= d.lost;
        }
        /// A frame's packets, in order, from `seq`.
        fn frame(&mut self, ms: u64, seq: u64, ts: u32, pkts: &[Vec<u8>]) {
            for (i, p) in pkts.iter().enumerate() {
                self.push(ms, seq + i as u64, ts, i + 1 == pkts.len(), p);
            }
        }
    }

    #[test]
    fn frames_are_reassembled_in_order_despite_reordering() {
        let mut f = Feed::new(Codec::Vp8);
        let key = vp8_frame(true, 3);
        let inter = vp8_frame(false, 2);
        // Keyframe packets 10..=12 arrive 12, 10, 11; an inter frame 13..=14 after.
        f.push(0, 12, 1000, true, &key[2]);
        f.push(1, 10, 1000, false, &key[0]);
        assert!(f.frames.is_empty(), "incomplete: nothing yet");
        f.push(2, 11, 1000, false, &key[1]);
        assert_eq!(f.frames.len(), 1);
        assert!(f.frames[0].keyframe);
        // Descriptors stripped: 3 packets of payload, frame tag first.
        assert_eq!(f.frames[0].data[..3], [0x00, 0x02, 0x00]);
        assert_eq!(f.frames[0].data.len(), 10 + 50 * 3);
        f.frame(33, 13, 4000, &inter);
        assert_eq!(f.frames.len(), 2);
        assert!(!f.frames[1].keyframe);
        // A duplicate and a late packet change nothing.
        f.push(40, 11, 1000, false, &key[1]);
        f.push(40, 14, 4000, true, &inter[1]);
        assert_eq!(f.frames.len(), 2);
        assert!(!f.lost);
    }

    #[test]
    fn video_waits_for_a_keyframe_at_the_start() {
        let mut f = Feed::new(Codec::Vp8);
        f.frame(0, 1, 0, &vp8_frame(false, 2));
        f.frame(33, 3, 3000, &vp8_frame(false, 2));
        assert!(f.frames.is_empty());
        f.frame(66, 5, 6000, &vp8_frame(true, 2));
        assert_eq!(f.frames.len(), 1);
        assert!(f.frames[0].keyframe);
    }

    #[test]
    fn a_retransmission_within_the_wait_fills_the_gap() {
        let mut f = Feed::new(Codec::Vp8);
        f.frame(0, 1, 0, &vp8_frame(true, 2));
        let inter = vp8_frame(false, 3);
        f.push(33, 3, 3000, false, &inter[0]);
        f.push(33, 5, 3000, true, &inter[2]);
        f.frame(66, 6, 6000, &vp8_frame(false, 1));
        assert_eq!(f.frames.len(), 1, "held behind the gap");
        // The NACKed packet comes back 100 ms later.
        f.push(133, 4, 3000, false, &inter[1]);
        assert_eq!(f.frames.len(), 3);
        assert!(!f.lost);
    }

    #[test]
    fn a_gap_that_never_fills_drops_video_until_a_keyframe() {
        let mut f = Feed::new(Codec::Vp8);
        f.frame(0, 1, 0, &vp8_frame(true, 2));
        let inter = vp8_frame(false, 3);
        f.push(33, 3, 3000, false, &inter[0]);
        f.push(33, 5, 3000, true, &inter[2]);
        // Packet 4 never comes; frames keep arriving.
        f.frame(66, 6, 6000, &vp8_frame(false, 1));
        f.frame(100, 7, 9000, &vp8_frame(false, 1));
        assert_eq!(f.frames.len(), 1);
        assert!(!f.lost, "still waiting at 100 ms");
        f.frame(300, 8, 12000, &vp8_frame(false, 1));
        assert!(f.lost, "given up after the wait: a keyframe is needed");
        assert_eq!(f.frames.len(), 1, "inter frames after the loss are dropped");
        f.frame(333, 9, 15000, &vp8_frame(true, 2));
        f.frame(366, 11, 18000, &vp8_frame(false, 1));
        assert_eq!(f.frames.len(), 3);
        assert!(f.frames[1].keyframe);
    }

    #[test]
    fn a_frame_shorter_than_its_first_partition_is_dropped_until_a_keyframe() {
        let mut f = Feed::new(Codec::Vp8);
        f.frame(0, 1, 0, &vp8_frame(true, 2));
        // An inter frame whose tag claims a 200-byte first partition, its only packet
        // marked as the last: its end is missing though no sequence number is.
        let mut short = vp8_frame(false, 1).remove(0);
        short[1..4].copy_from_slice(&(200u32 << 5 | 0x10 | 0x01).to_le_bytes()[..3]);
        f.push(33, 3, 3000, true, &short);
        assert_eq!(f.frames.len(), 1, "not handed on");
        assert!(f.lost, "a keyframe is asked for");
        f.frame(66, 4, 6000, &vp8_frame(false, 1));
        assert_eq!(f.frames.len(), 1, "inter frames wait for the keyframe");
        f.frame(100, 5, 9000, &vp8_frame(true, 2));
        assert_eq!(f.frames.len(), 2);
        assert!(f.frames[1].keyframe);
    }

    #[test]
    fn a_packet_from_before_the_frame_started_from_is_not_glued_to_it() {
        let mut f = Feed::new(Codec::Vp8);
        f.frame(0, 1, 0, &vp8_frame(true, 2));
        // An inter frame missing its middle, and nothing after it: given up whole.
        let inter = vp8_frame(false, 3);
        f.push(33, 3, 3000, false, &inter[0]);
        f.push(33, 5, 3000, true, &inter[2]);
        f.j.drain(f.at(300));
        // A keyframe starts at 7; before it completes, a late packet of the frame
        // before it (6, whose head was lost) arrives.
        let key = vp8_frame(true, 2);
        f.push(310, 7, 9000, false, &key[0]);
        f.push(311, 6, 6000, true, &vp8_frame(false, 2)[1]);
        f.push(312, 8, 9000, true, &key[1]);
        assert_eq!(f.frames.len(), 2);
        let k = &f.frames[1];
        assert!(k.keyframe);
        assert_eq!(
            k.data[..3],
            [0x00, 0x02, 0x00],
            "starts with its own frame tag"
        );
        assert_eq!(
            k.data.len(),
            10 + 50 * 2,
            "its two packets and nothing else"
        );
    }

    #[test]
    fn lost_audio_is_a_gap_and_nothing_more() {
        let mut f = Feed::new(Codec::Opus);
        for seq in [1u64, 2, 4, 5] {
            f.push(seq * 20, seq, seq as u32 * 960, false, &[0x78, seq as u8]);
        }
        assert_eq!(f.frames.len(), 2, "3 missing: 4 and 5 wait");
        f.push(400, 6, 6 * 960, false, &[0x78, 6]);
        let got: Vec<u8> = f.frames.iter().map(|a| a.data[1]).collect();
        assert_eq!(got, vec![1, 2, 4, 5, 6]);
        assert_eq!(
            f.frames[2].data,
            vec![0x78, 4],
            "Opus payloads are the frames"
        );
    }

    #[test]
    fn other_codecs_are_not_reassembled() {
        assert!(Jitter::new(Codec::H264).is_none());
    }
}

//! What a receiving participant checks on every packet: the stamp's checksum
//! (integrity), the sender's packet numbers (loss, reordering), that the server's
//! rewritten RTP sequence numbers move in step with them (continuity), and the
//! one-way transit time from the publisher's stamp to the moment the datagram was
//! read from the socket.
//!
//! Loss is counted against what the publishers actually sent ([`delivery`]): a
//! receiver's expected packets are every packet its publishers wrote during the
//! counting window, so a stream that stops (or never starts) shows as loss, not only
//! a gap between two packets that did arrive.

use std::collections::{HashMap, HashSet};

use lanrelay_peer::payload::{self, Stamp};

/// One incoming stream (by SSRC).
#[derive(Debug, Default, Clone)]
struct StreamProbe {
    first: Option<u32>,
    max: u32,
    received: u64,
    /// Difference between the RTP sequence number and the stamp's packet number;
    /// constant while the server forwards one source without gaps or jumps.
    seq_delta: Option<i64>,
}

/// A receiver's measurements during the measuring window.
#[derive(Debug, Default, Clone)]
pub struct Probe {
    /// By (source, the sender's stream): one SSRC may carry several simulcast layers
    /// over time, and, as the server reuses m-lines, several participants' tracks.
    streams: HashMap<(u64, u8), StreamProbe>,
    /// Transit times in nanoseconds, one per packet: from the publisher's stamp to the
    /// kernel's arrival timestamp at the receiver's socket.
    pub transit_ns: Vec<u32>,
    /// The same for audio packets only (Opus payloads of the generator).
    pub audio_transit_ns: Vec<u32>,
    /// From the stamp to when the receiver read the packet (adds the generator's own
    /// queueing).
    pub read_transit_ns: Vec<u32>,
    pub packets: u64,
    pub bytes: u64,
    /// Payloads whose stamp was missing or whose bytes changed.
    pub corrupt: u64,
    /// Packets that arrived after a higher packet number of the same stream.
    pub reordered: u64,
    /// Times the server's sequence numbers jumped relative to the sender's numbering
    /// (other than by the sender's own gaps).
    pub seq_breaks: u64,
    /// The stamp of every intact packet, for [`delivery`].
    pub stamps: Vec<Stamp>,
}

/// The source of an incoming packet: its SSRC, and the participant the server's offer
/// names as the owner of its m-line (the server reuses the m-lines of tracks that
/// ended, with their SSRCs).
pub fn source(ssrc: u32, owner: u64) -> u64 {
    owner << 32 | u64::from(ssrc)
}

impl Probe {
    /// Records one packet of `source` (its SSRC, and the participant the server says
    /// sends on it: see [`source`]): RTP sequence number (extended), payload and its checked
    /// stamp (`lanrelay_peer::payload::check`, done once by the participant), kernel
    /// arrival time and read time (wall-clock nanoseconds, the clock of the stamps).
    pub fn record(
        &mut self,
        source: u64,
        rtp_seq: u64,
        data: &[u8],
        stamp: Option<Stamp>,
        arrived_ns: u64,
        read_ns: u64,
    ) {
        self.packets += 1;
        self.bytes += data.len() as u64;
        let Some(Stamp {
            stream,
            number,
            sent_ns,
        }) = stamp
        else {
            self.corrupt += 1;
            return;
        };
        let since = |t: u64| t.saturating_sub(sent_ns).min(u32::MAX as u64) as u32;
        let transit = since(arrived_ns);
        self.read_transit_ns.push(since(read_ns));
        self.transit_ns.push(transit);
        if data.first() == Some(&payload::OPUS_TOC) {
            self.audio_transit_ns.push(transit);
        }
        self.stamps.push(Stamp {
            stream,
            number,
            sent_ns,
        });
        let s = self.streams.entry((source, stream)).or_default();
        s.received += 1;
        match s.first {
            None => {
                s.first = Some(number);
                s.max = number;
            }
            Some(_) if number > s.max => s.max = number,
            Some(_) => self.reordered += 1,
        }
        let delta = rtp_seq as i64 - number as i64;
        match s.seq_delta {
            Some(d) if d != delta => {
                self.seq_breaks += 1;
                s.seq_delta = Some(delta);
            }
            _ => s.seq_delta = Some(delta),
        }
    }

    /// Gaps between packets that arrived: per stream, the packet numbers from the
    /// first to the highest seen that did not arrive. Blind to a stream that stops or
    /// never starts (see [`delivery`] for the loss the report uses).
    pub fn gaps(&self) -> u64 {
        self.streams
            .values()
            .filter_map(|s| {
                let first = s.first?;
                Some(((s.max - first) as u64 + 1).saturating_sub(s.received))
            })
            .sum()
    }
}

/// The packets that count, by send time (the stamp's wall clock): `from_ns <= sent_ns <
/// to_ns`. The run narrows the measuring window by an in-flight allowance at both
/// ends, so packets sent just before the window closed (still on their way) and
/// those around its opening (before every participant saw it open) count neither as
/// expected nor as received.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    pub from_ns: u64,
    pub to_ns: u64,
}

impl Window {
    /// The measuring window (`open_ns`..`close_ns`) less `allowance_ns` at each end.
    pub fn narrowed(open_ns: u64, close_ns: u64, allowance_ns: u64) -> Window {
        Window {
            from_ns: open_ns + allowance_ns,
            to_ns: close_ns.saturating_sub(allowance_ns),
        }
    }

    fn has(&self, t: u64) -> bool {
        self.from_ns <= t && t < self.to_ns
    }
}

/// A receiver "is receiving" when it got media from every publisher it expects
/// (that sent anything then) during this last part of the counting window.
pub const RECEIVING_TAIL_NS: u64 = 2_000_000_000;

/// One receiver's delivery against what its publishers sent.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Delivery {
    /// Packets its publishers sent in the window that it should get.
    pub expected: u64,
    /// Of those, how many arrived (each counted once).
    pub received: u64,
    /// Copies of a packet that had already arrived.
    pub duplicates: u64,
    /// Intact packets in the window that none of its publishers sent.
    pub unexpected: u64,
    /// Got media from every publisher it expects in the window's last
    /// [`RECEIVING_TAIL_NS`].
    pub receiving: bool,
}

impl Delivery {
    pub fn lost(&self) -> u64 {
        self.expected.saturating_sub(self.received)
    }
}

/// Counts a receiver's packets against the send logs of the publishers it expects
/// media from (every stamp each wrote, in order). Per publisher and stream, expected
/// = the packets sent in the window, received = those of them that arrived.
///
/// A simulcast publisher (several video streams) is forwarded one layer at a time,
/// so its video counts only on the layers the receiver got: each layer from its first
/// to its last packet that arrived, the earliest layer from the window's start and
/// the latest to its end (a stall after a layer switch is still loss). If none of its
/// video arrived, its smallest layer (the fewest packets) counts as expected.
pub fn delivery(probe: &Probe, publishers: &[&[Stamp]], window: Window) -> Delivery {
    let mut d = Delivery::default();
    // Which publisher wrote each packet (stream, number and nanosecond send time
    // identify it).
    let mut owner: HashMap<(u8, u32, u64), usize> = HashMap::new();
    for (i, log) in publishers.iter().enumerate() {
        for s in log.iter().filter(|s| window.has(s.sent_ns)) {
            owner.insert((s.stream, s.number, s.sent_ns), i);
        }
    }
    let mut seen: HashSet<(u8, u32, u64)> = HashSet::new();
    // Per publisher and stream: the send times of the packets that arrived.
    let mut got: HashMap<(usize, u8), Vec<u64>> = HashMap::new();
    for s in probe.stamps.iter().filter(|s| window.has(s.sent_ns)) {
        let key = (s.stream, s.number, s.sent_ns);
        let Some(&p) = owner.get(&key) else {
            d.unexpected += 1;
            continue;
        };
        if !seen.insert(key) {
            d.duplicates += 1;
            continue;
        }
        got.entry((p, s.stream)).or_default().push(s.sent_ns);
    }
    let tail_from = window.to_ns.saturating_sub(RECEIVING_TAIL_NS);
    let mut tail_publishers = 0;
    let mut tail_heard = 0;
    for (p, log) in publishers.iter().enumerate() {
        let in_window: Vec<&Stamp> = log.iter().filter(|s| window.has(s.sent_ns)).collect();
        let count = |stream: u8, from: u64, to: u64| {
            in_window
                .iter()
                .filter(|s| s.stream == stream && from <= s.sent_ns && s.sent_ns <= to)
                .count() as u64
        };
        let mut streams: Vec<u8> = in_window.iter().map(|s| s.stream).collect();
        streams.sort_unstable();
        streams.dedup();
        let video: Vec<u8> = streams.iter().copied().filter(|s| *s > 0).collect();
        let arrived = |stream: u8| got.get(&(p, stream)).map_or(&[][..], |v| &v[..]);
        for &s in &streams {
            if s == 0 || video.len() == 1 {
                d.expected += count(s, 0, u64::MAX);
                d.received += arrived(s).len() as u64;
            }
        }
        if video.len() > 1 {
            // (layer, first and last arrival's send time)
            let spans: Vec<(u8, u64, u64)> = video
                .iter()
                .filter_map(|&l| {
                    let a = arrived(l);
                    Some((l, *a.iter().min()?, *a.iter().max()?))
                })
                .collect();
            if spans.is_empty() {
                d.expected += video
                    .iter()
                    .map(|&l| count(l, 0, u64::MAX))
                    .min()
                    .unwrap_or(0);
            }
            let earliest = spans.iter().map(|s| s.1).min().unwrap_or(0);
            let latest = spans.iter().map(|s| s.2).max().unwrap_or(0);
            for &(l, first, last) in &spans {
                let from = if first == earliest { 0 } else { first };
                let to = if last == latest { u64::MAX } else { last };
                d.expected += count(l, from, to);
                d.received += arrived(l).len() as u64;
            }
        }
        if in_window.iter().any(|s| s.sent_ns >= tail_from) {
            tail_publishers += 1;
            if got
                .iter()
                .any(|((q, _), t)| *q == p && t.iter().any(|t| *t >= tail_from))
            {
                tail_heard += 1;
            }
        }
    }
    d.receiving = tail_publishers > 0 && tail_heard == tail_publishers;
    d
}

/// Percentile of sorted samples (nearest rank); 0 when empty.
pub fn percentile(sorted: &[u32], p: f64) -> u32 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loss_transit_and_continuity() {
        let mut p = Probe::default();
        let pkt = |n: u32| {
            payload::opus(
                100,
                Stamp {
                    stream: 0,
                    number: n,
                    sent_ns: n as u64 * 1_000_000,
                },
            )
        };
        // Numbers 0..10 without 5; RTP seq follows with an offset of 1000.
        for n in (0..10).filter(|n| *n != 5) {
            let arrived = n as u64 * 1_000_000 + 300_000;
            let data = pkt(n);
            let stamp = payload::check(&data);
            p.record(7, 1000 + n as u64, &data, stamp, arrived, arrived + 50_000);
        }
        assert_eq!(p.gaps(), 1);
        assert_eq!(p.seq_breaks, 0);
        assert!(p.transit_ns.iter().all(|t| *t == 300_000));
        assert!(p.read_transit_ns.iter().all(|t| *t == 350_000));
        // A server that renumbers wrongly shows as a break.
        let data = pkt(10);
        p.record(
            7,
            5000,
            &data,
            payload::check(&data),
            10_000_000,
            10_000_000,
        );
        assert_eq!(p.seq_breaks, 1);
        let mut bad = pkt(11);
        bad[3] ^= 0xff;
        p.record(7, 5001, &bad, payload::check(&bad), 0, 0);
        assert_eq!(p.corrupt, 1);
        assert_eq!(percentile(&[1, 2, 3, 4], 50.0), 2);
        assert_eq!(percentile(&[1, 2, 3, 4], 99.0), 4);
    }

    const MS: u64 = 1_000_000;

    /// A publisher's log: `n` packets on `stream`, one every 10 ms from `start_ns`.
    fn sent(stream: u8, n: u32, start_ns: u64) -> Vec<Stamp> {
        (0..n)
            .map(|number| Stamp {
                stream,
                number,
                sent_ns: start_ns + number as u64 * 10 * MS,
            })
            .collect()
    }

    fn receive(p: &mut Probe, ssrc: u32, s: &Stamp) {
        let data = payload::vp8(
            payload::Vp8Packet {
                picture_id: 0,
                first: false,
                keyframe: false,
                width: 0,
                height: 0,
            },
            200,
            *s,
        );
        let at = s.sent_ns + MS;
        p.record(
            ssrc.into(),
            s.number as u64,
            &data,
            payload::check(&data),
            at,
            at,
        );
    }

    /// Measuring from 0.9 s to 4.1 s with 100 ms in flight allowed at each end: the
    /// packets sent from 1.0 s to 4.0 s count.
    fn window() -> Window {
        Window::narrowed(900 * MS, 4100 * MS, 100 * MS)
    }

    #[test]
    fn a_stream_that_stops_counts_as_loss() {
        // 300 packets from 1.0 s to 3.99 s, then one sent 4.05 s (still in flight when
        // the window closes: not lost).
        let mut log = sent(1, 301, 1000 * MS);
        log[300].sent_ns = 4050 * MS;
        let mut p = Probe::default();
        for s in &log[..100] {
            receive(&mut p, 7, s);
        }
        // No gap between the packets that arrived.
        assert_eq!(p.gaps(), 0);
        let d = delivery(&p, &[&log], window());
        assert_eq!((d.expected, d.received, d.lost()), (300, 100, 200));
        assert!(!d.receiving, "stalled for 2 s before the window closed");
        // Had the rest arrived (one twice), nothing would be lost.
        for s in &log[100..] {
            receive(&mut p, 7, s);
        }
        receive(&mut p, 7, &log[5]);
        let d = delivery(&p, &[&log], window());
        assert_eq!((d.expected, d.received, d.lost()), (300, 300, 0));
        assert_eq!(d.duplicates, 1);
        assert!(d.receiving);
    }

    #[test]
    fn a_receiver_that_got_nothing_lost_everything() {
        let video = sent(1, 300, 1000 * MS);
        let audio = sent(0, 150, 1000 * MS);
        let log: Vec<Stamp> = video.iter().chain(&audio).copied().collect();
        let d = delivery(&Probe::default(), &[&log], window());
        assert_eq!((d.expected, d.received, d.lost()), (450, 0, 450));
        assert!(!d.receiving);
    }

    #[test]
    fn simulcast_counts_the_forwarded_layers() {
        // Three layers of 300 packets each; the receiver gets layer 1 up to 2.0 s,
        // then layer 2 until 3.0 s, then nothing.
        let log: Vec<Stamp> = (1..=3).flat_map(|l| sent(l, 300, 1000 * MS)).collect();
        let mut p = Probe::default();
        for s in &log[..100] {
            receive(&mut p, 7, s);
        }
        for s in &log[400..500] {
            receive(&mut p, 7, s);
        }
        let d = delivery(&p, &[&log], window());
        // Layer 1 from the window's start to its last arrival (100); layer 2 from its
        // first arrival to the window's end (200).
        assert_eq!((d.expected, d.received, d.lost()), (300, 200, 100));
        // Nothing forwarded: the smallest layer's count.
        let d = delivery(&Probe::default(), &[&log], window());
        assert_eq!(d.expected, 300);
        // Packets of a publisher it does not expect are not counted.
        let d = delivery(&p, &[], window());
        assert_eq!((d.expected, d.received, d.unexpected), (0, 0, 200));
    }
}

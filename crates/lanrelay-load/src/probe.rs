//! What a receiving participant checks on every packet: the stamp's checksum
//! (integrity), the sender's packet numbers (loss, reordering), that the server's
//! rewritten RTP sequence numbers move in step with them (continuity), and the
//! one-way transit time from the publisher's stamp to the moment the datagram was
//! read from the socket.

use std::collections::HashMap;

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
    /// By (SSRC, the sender's stream): one SSRC may carry several simulcast layers
    /// over time.
    streams: HashMap<(u32, u8), StreamProbe>,
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
}

/// Totals over all streams, for the report.
#[derive(Debug, Default, Clone, Copy)]
pub struct LossCount {
    pub expected: u64,
    pub received: u64,
}

impl Probe {
    /// Records one packet: RTP sequence number (extended), payload and its checked
    /// stamp (`lanrelay_peer::payload::check`, done once by the participant), kernel
    /// arrival time and read time (wall-clock nanoseconds, the clock of the stamps).
    pub fn record(
        &mut self,
        ssrc: u32,
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
        let s = self.streams.entry((ssrc, stream)).or_default();
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

    /// Expected packets (from the first to the highest number seen, per stream) and
    /// those that arrived. Packets still in flight when the window closed are not
    /// counted as lost.
    pub fn loss(&self) -> LossCount {
        let mut c = LossCount::default();
        for s in self.streams.values() {
            if let Some(first) = s.first {
                c.expected += (s.max - first) as u64 + 1;
                c.received += s.received;
            }
        }
        c
    }
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
        let l = p.loss();
        assert_eq!((l.expected, l.received), (10, 9));
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
}

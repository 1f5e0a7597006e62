//! Server-side measurements of one participant's relayed connection, folded from
//! str0m's stats events (`PeerStats` once a second, ingress and egress stats per
//! stream) into the [`LegStats`] the browser's comparison panel and `/api/rooms` show.
//! Sans-IO: it takes events and their timestamps, nothing else.
//!
//! Streams are kept per `(mid, rid)`: the layers of a simulcast track have their own
//! SSRCs, sequence numbers and timestamp bases, so keying them by m-line alone made
//! each layer's figures overwrite the others'. RTCP interarrival jitter is in RTP
//! timestamp units of each stream's clock (90 kHz video, 48 kHz Opus) and is turned
//! into milliseconds here, per stream; the leg's video jitter is the one of the layer
//! the other participants actually receive ([`StatsTracker::on_peer`] is told which).
//!
//! The up streams' jitter is estimated here from each packet's arrival
//! ([`StatsTracker::on_rtp`]), the way browsers do (libwebrtc): only packets that
//! arrive in order and start a new frame count. str0m's own estimate counts every
//! packet, so a reordered or retransmitted packet of an older frame adds the whole
//! frame interval to it: on video with retransmissions that read tens to hundreds of
//! milliseconds where the browsers measured a few.
#![warn(clippy::disallowed_methods)] // Sans-IO: see clippy.toml

use std::time::{Duration, Instant};

use rustc_hash::FxHashMap;
use str0m::media::{MediaKind, Mid, Rid};
use str0m::stats::{MediaEgressStats, MediaIngressStats, PeerStats};

use crate::signaling::protocol::{LegStats, StreamStats};

/// RTP clock rate of a kind of media: what RTCP jitter is counted in.
fn clock_hz(kind: MediaKind) -> f64 {
    match kind {
        MediaKind::Audio => 48_000.0,
        MediaKind::Video => 90_000.0,
    }
}

/// RTCP jitter (RTP timestamp units) in milliseconds.
fn jitter_ms(units: u32, kind: MediaKind) -> f64 {
    f64::from(units) * 1000.0 / clock_hz(kind)
}

/// What is kept of one stream between two `PeerStats`.
#[derive(Debug, Clone)]
struct Stream {
    kind: MediaKind,
    /// Interarrival jitter (ms) as last reported; `None` before a packet.
    jitter_ms: Option<f64>,
    /// Packet and NACK totals, and the packet total at the previous `PeerStats`.
    packets: u64,
    nacks: u64,
    packets_before: u64,
    /// Loss fraction (0..1) of the last receiver report.
    loss: Option<f64>,
    /// Round trip (ms) from the last receiver report (down streams only).
    rtt_ms: Option<f64>,
}

/// RFC 3550 interarrival jitter of one stream, from arrival times, counting only
/// packets in sequence order that begin a new RTP timestamp (as libwebrtc does).
#[derive(Debug, Clone, Default)]
struct Interarrival {
    /// The last counted packet: extended sequence number, RTP time, arrival.
    last: Option<(u64, u32, Instant)>,
    /// Highest extended sequence number seen.
    max_seq: u64,
    /// The estimate, seconds.
    jitter_s: f64,
}

/// A stream silent for longer than this paused (a muted track, a relay kept quiet
/// while the call went direct): the first packet after it starts the estimate's
/// timing afresh, for its transit difference says how the sender paused, not how the
/// network carries packets.
const PAUSE: Duration = Duration::from_millis(500);

impl Interarrival {
    fn on_packet(&mut self, seq: u64, rtp_time: u32, clock_hz: u32, arrival: Instant) {
        if self.last.is_some() && seq <= self.max_seq {
            return; // reordered, repeated or retransmitted
        }
        self.max_seq = seq;
        match self.last {
            Some((_, rtp, _)) if rtp == rtp_time => {} // same frame
            Some((_, _, at)) if arrival.saturating_duration_since(at) > PAUSE => {
                self.last = Some((seq, rtp_time, arrival));
            }
            Some((_, rtp, at)) if clock_hz > 0 && arrival >= at => {
                let transit_change = (arrival - at).as_secs_f64()
                    - f64::from(rtp_time.wrapping_sub(rtp) as i32) / f64::from(clock_hz);
                self.jitter_s += (transit_change.abs() - self.jitter_s) / 16.0;
                self.last = Some((seq, rtp_time, arrival));
            }
            _ => self.last = Some((seq, rtp_time, arrival)),
        }
    }
}

#[derive(Debug, Default)]
pub(crate) struct StatsTracker {
    /// Interarrival jitter of each up stream, from the packets themselves (looked up
    /// for every packet received: FxHash, where std's SipHash cost 360 instructions).
    arrivals: FxHashMap<(Mid, Option<Rid>), Interarrival>,
    /// Media payload byte totals (received, sent) at the previous `PeerStats`.
    last: Option<(Instant, u64, u64)>,
    /// Each up stream (browser to server), per `(mid, rid)`.
    ingress: FxHashMap<(Mid, Option<Rid>), Stream>,
    /// Each down stream (server to browser), per `(mid, rid)`; jitter and loss as the
    /// browser reports them.
    egress: FxHashMap<(Mid, Option<Rid>), Stream>,
    /// Keyframe requests (PLI and FIR) of each down stream.
    keyframe_requests: FxHashMap<(Mid, Option<Rid>), u64>,
    /// The browser has sent receiver reports with a round trip: str0m's own
    /// (feedback-based) figure is no longer used.
    rtcp_seen: bool,
    current: LegStats,
}

impl StatsTracker {
    /// An RTP packet from the browser (not a retransmission's repair copy): its
    /// extended sequence number, RTP timestamp, clock rate and arrival time.
    pub(crate) fn on_rtp(
        &mut self,
        stream: (Mid, Option<Rid>),
        seq: u64,
        rtp_time: u32,
        clock_hz: u32,
        arrival: Instant,
    ) {
        self.arrivals
            .entry(stream)
            .or_default()
            .on_packet(seq, rtp_time, clock_hz, arrival);
    }

    /// Stats of a stream received from the browser. `kind` is its m-line's kind, when
    /// known (video otherwise: a stream of an m-line not known yet is rare).
    pub(crate) fn on_ingress(&mut self, s: &MediaIngressStats, kind: Option<MediaKind>) {
        let kind = kind.unwrap_or(MediaKind::Video);
        let before = self
            .ingress
            .get(&(s.mid, s.rid))
            .map_or(0, |p| p.packets_before);
        self.ingress.insert(
            (s.mid, s.rid),
            Stream {
                kind,
                jitter_ms: match self.arrivals.get(&(s.mid, s.rid)) {
                    Some(a) if a.last.is_some() => Some(a.jitter_s * 1000.0),
                    _ => (s.packets > 0).then(|| jitter_ms(s.jitter, kind)),
                },
                packets: s.packets,
                nacks: s.nacks,
                packets_before: before,
                loss: s.loss.map(f64::from),
                rtt_ms: None,
            },
        );
    }

    /// Stats of a stream sent to the browser.
    pub(crate) fn on_egress(&mut self, s: &MediaEgressStats, kind: Option<MediaKind>) {
        let kind = kind.unwrap_or(MediaKind::Video);
        let before = self
            .egress
            .get(&(s.mid, s.rid))
            .map_or(0, |p| p.packets_before);
        self.egress.insert(
            (s.mid, s.rid),
            Stream {
                kind,
                jitter_ms: s.remote.as_ref().map(|r| jitter_ms(r.jitter, kind)),
                packets: s.packets,
                nacks: s.nacks,
                packets_before: before,
                loss: s.loss.map(f64::from),
                // Only a report that came since the last event (str0m's `loss` says
                // so): an older one's round trip may be from other conditions.
                rtt_ms: s.loss.and(s.rtt).map(|d| d.as_secs_f64() * 1000.0),
            },
        );
        self.keyframe_requests
            .insert((s.mid, s.rid), s.plis + s.firs);
    }

    /// Forgets the streams of an m-line that no longer exists.
    pub(crate) fn forget(&mut self, mid: Mid) {
        self.ingress.retain(|(m, _), _| *m != mid);
        self.arrivals.retain(|(m, _), _| *m != mid);
        self.egress.retain(|(m, _), _| *m != mid);
        self.keyframe_requests.retain(|(m, _), _| *m != mid);
    }

    /// The once-a-second peer stats: completes a measurement and returns it.
    /// `forwarded` names, per up video m-line, the layer the other participants get
    /// (simulcast), so that the leg's video jitter is the one of that layer.
    pub(crate) fn on_peer(&mut self, s: &PeerStats, forwarded: &[(Mid, Option<Rid>)]) -> &LegStats {
        let (up_bps, down_bps) = match self.last {
            Some((t, rx, tx)) if s.timestamp > t => {
                let secs = (s.timestamp - t).as_secs_f64();
                (
                    s.bytes_rx.saturating_sub(rx) as f64 * 8.0 / secs,
                    s.bytes_tx.saturating_sub(tx) as f64 * 8.0 / secs,
                )
            }
            _ => (0.0, 0.0),
        };
        self.last = Some((s.timestamp, s.bytes_rx, s.bytes_tx));
        let pair = s.selected_candidate_pair.as_ref();
        let up_streams = streams(&self.ingress);
        let down_streams = streams(&self.egress);
        self.current = LegStats {
            rtt_ms: match rtcp_rtt(&self.egress) {
                Some(rtt) => {
                    self.rtcp_seen = true;
                    Some(rtt)
                }
                // A browser that sends receiver reports: none this second.
                None if self.rtcp_seen => None,
                None => s.rtt.map(|d| d.as_secs_f64() * 1000.0),
            },
            up_bps,
            down_bps,
            up_loss: s.ingress_loss_fraction.map(f64::from),
            down_loss: s.egress_loss_fraction.map(f64::from),
            up_jitter_ms: chosen(&self.ingress, MediaKind::Video, forwarded),
            up_audio_jitter_ms: chosen(&self.ingress, MediaKind::Audio, &[]),
            down_jitter_ms: chosen(&self.egress, MediaKind::Video, &[]),
            down_audio_jitter_ms: chosen(&self.egress, MediaKind::Audio, &[]),
            up_nacks: self.ingress.values().map(|st| st.nacks).sum(),
            down_nacks: self.egress.values().map(|st| st.nacks).sum(),
            down_plis: self.keyframe_requests.values().sum(),
            up_streams,
            down_streams,
            local: pair.map(|p| p.local.addr.to_string()),
            remote: pair.map(|p| p.remote.addr.to_string()),
            protocol: pair.map(|p| p.protocol.to_string()),
        };
        for st in self.ingress.values_mut().chain(self.egress.values_mut()) {
            st.packets_before = st.packets;
        }
        &self.current
    }

    /// The latest complete measurement.
    pub(crate) fn current(&self) -> &LegStats {
        &self.current
    }
}

/// The jitter (ms) of the stream of `kind` that matters: one named in `forwarded`
/// (the layer others receive) if it carried packets in the last second, else the
/// stream of that kind that carried the most packets in it.
fn chosen(
    streams: &FxHashMap<(Mid, Option<Rid>), Stream>,
    kind: MediaKind,
    forwarded: &[(Mid, Option<Rid>)],
) -> Option<f64> {
    let active = |st: &Stream| st.kind == kind && st.packets > st.packets_before;
    let named = forwarded
        .iter()
        .filter_map(|key| streams.get(key))
        .find(|st| active(st) && st.jitter_ms.is_some());
    named
        .or_else(|| {
            streams
                .values()
                .filter(|st| active(st) && st.jitter_ms.is_some())
                .max_by_key(|st| st.packets - st.packets_before)
        })
        .and_then(|st| st.jitter_ms)
}

/// The round trip (ms) of the browser's receiver reports that came in the last second
/// on the down streams that carried packets in it (their mean): RTCP's LSR/DLSR timing, what the
/// browser's own RTCP round trip is. str0m's `PeerStats::rtt` is the time from
/// sending a packet to its transport-wide feedback, which the browser batches (tens
/// of ms), so it is the fallback only.
fn rtcp_rtt(streams: &FxHashMap<(Mid, Option<Rid>), Stream>) -> Option<f64> {
    let rtts: Vec<f64> = streams
        .values()
        .filter(|st| st.packets > st.packets_before)
        .filter_map(|st| st.rtt_ms)
        .collect();
    (!rtts.is_empty()).then(|| rtts.iter().sum::<f64>() / rtts.len() as f64)
}

/// Every stream with packets, for the wire: kind, layer, jitter (ms), packets in the
/// last second, loss of the last report.
fn streams(streams: &FxHashMap<(Mid, Option<Rid>), Stream>) -> Vec<StreamStats> {
    let mut v: Vec<StreamStats> = streams
        .iter()
        .filter(|(_, st)| st.packets > 0)
        .map(|((mid, rid), st)| StreamStats {
            mid: mid.to_string(),
            rid: rid.map(|r| r.to_string()),
            kind: match st.kind {
                MediaKind::Audio => "audio".into(),
                MediaKind::Video => "video".into(),
            },
            jitter_ms: st.jitter_ms,
            packets: st.packets.saturating_sub(st.packets_before),
            loss: st.loss,
        })
        .collect();
    v.sort_by(|a, b| (&a.mid, &a.rid).cmp(&(&b.mid, &b.rid)));
    v
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // a test's fake clock starts anywhere
mod tests {
    use super::*;

    fn ingress(mid: &str, rid: Option<&str>, packets: u64, jitter: u32) -> MediaIngressStats {
        MediaIngressStats {
            mid: mid.into(),
            rid: rid.map(Rid::from),
            bytes: packets * 1000,
            packets,
            firs: 0,
            plis: 0,
            nacks: 0,
            jitter,
            rtt: None,
            loss: None,
            timestamp: Instant::now(),
            remote: None,
        }
    }

    fn peer(at: Instant) -> PeerStats {
        PeerStats {
            peer_bytes_rx: 0,
            peer_bytes_tx: 0,
            bytes_rx: 0,
            bytes_tx: 0,
            timestamp: at,
            bwe_tx: None,
            egress_loss_fraction: None,
            ingress_loss_fraction: None,
            rtt: None,
            selected_candidate_pair: None,
        }
    }

    #[test]
    fn jitter_is_in_milliseconds_of_each_streams_clock() {
        let mut t = StatsTracker::default();
        // 900 units of a 90 kHz clock and 480 of a 48 kHz one are both 10 ms.
        t.on_ingress(&ingress("0", None, 50, 480), Some(MediaKind::Audio));
        t.on_ingress(&ingress("1", None, 100, 900), Some(MediaKind::Video));
        let s = t.on_peer(&peer(Instant::now()), &[]).clone();
        assert_eq!(s.up_audio_jitter_ms, Some(10.0));
        assert_eq!(s.up_jitter_ms, Some(10.0));
        assert_eq!(s.up_streams.len(), 2);
    }

    #[test]
    fn simulcast_layers_do_not_overwrite_each_other() {
        let mut t = StatsTracker::default();
        let start = Instant::now();
        // Three layers of one m-line, each with its own jitter; the receiver gets "m".
        t.on_ingress(&ingress("1", Some("l"), 100, 9_000), Some(MediaKind::Video));
        t.on_ingress(&ingress("1", Some("m"), 200, 450), Some(MediaKind::Video));
        t.on_ingress(
            &ingress("1", Some("h"), 300, 27_000),
            Some(MediaKind::Video),
        );
        let forwarded = [(Mid::from("1"), Some(Rid::from("m")))];
        let s = t.on_peer(&peer(start), &forwarded).clone();
        assert_eq!(s.up_jitter_ms, Some(5.0), "the forwarded layer's jitter");
        assert_eq!(
            s.up_streams.len(),
            3,
            "one entry per layer: {:?}",
            s.up_streams
        );
        // Nothing said about the layer: the busiest stream of the last second.
        t.on_ingress(&ingress("1", Some("l"), 400, 9_000), Some(MediaKind::Video));
        t.on_ingress(&ingress("1", Some("m"), 250, 450), Some(MediaKind::Video));
        let s = t
            .on_peer(&peer(start + Duration::from_secs(1)), &[])
            .clone();
        assert_eq!(s.up_jitter_ms, Some(100.0));
    }

    #[test]
    fn jitter_from_arrivals_skips_reordered_packets_and_frames_in_flight() {
        let mut a = Interarrival::default();
        let t0 = Instant::now();
        let ms = |n: u64| t0 + Duration::from_millis(n);
        // Audio, 20 ms frames (960 units at 48 kHz), arriving 20 ms apart, then one
        // 8 ms late: RFC 3550 adds 8/16 ms.
        for i in 0..10u32 {
            a.on_packet(u64::from(i), i * 960, 48_000, ms(u64::from(i) * 20));
        }
        assert!(a.jitter_s.abs() < 1e-9, "steady arrivals: {}", a.jitter_s);
        a.on_packet(10, 9_600, 48_000, ms(208));
        assert!(
            (a.jitter_s * 1000.0 - 0.5).abs() < 1e-6,
            "{}",
            a.jitter_s * 1000.0
        );
        let before = a.jitter_s;
        // An old packet (a retransmission, or reordered) 100 ms late: not counted.
        a.on_packet(3, 2_880, 48_000, ms(210));
        assert_eq!(a.jitter_s, before);
        // After a pause (a muted microphone) the first packet restarts the timing.
        a.on_packet(11, 9_600 + 960 * 100, 48_000, ms(208 + 3_000));
        assert_eq!(a.jitter_s, before);
        // The second packet of a video frame (same timestamp): not counted either.
        let mut v = Interarrival::default();
        v.on_packet(1, 0, 90_000, ms(0));
        v.on_packet(2, 0, 90_000, ms(15));
        assert_eq!(v.jitter_s, 0.0);
    }

    #[test]
    fn the_legs_up_jitter_comes_from_arrivals_when_there_are_some() {
        let mut t = StatsTracker::default();
        let t0 = Instant::now();
        let key = (Mid::from("0"), None);
        for i in 0..5u32 {
            t.on_rtp(
                key,
                u64::from(i),
                i * 960,
                48_000,
                t0 + Duration::from_millis(u64::from(i) * 20),
            );
        }
        // str0m says 4,800 units (100 ms); the arrivals say 0.
        t.on_ingress(&ingress("0", None, 5, 4_800), Some(MediaKind::Audio));
        let s = t.on_peer(&peer(t0), &[]);
        assert_eq!(s.up_audio_jitter_ms, Some(0.0));
    }

    fn egress(mid: &str, packets: u64, rtt_ms: u64, fresh: bool) -> MediaEgressStats {
        MediaEgressStats {
            mid: mid.into(),
            rid: None,
            bytes: packets * 1000,
            packets,
            firs: 0,
            plis: 0,
            nacks: 0,
            rtt: Some(Duration::from_millis(rtt_ms)),
            loss: fresh.then_some(0.0),
            timestamp: Instant::now(),
            remote: None,
        }
    }

    #[test]
    fn the_round_trip_comes_from_receiver_reports_of_the_last_second() {
        let mut t = StatsTracker::default();
        let t0 = Instant::now();
        t.on_egress(&egress("0", 50, 40, true), Some(MediaKind::Audio));
        t.on_egress(&egress("1", 100, 44, true), Some(MediaKind::Video));
        assert_eq!(t.on_peer(&peer(t0), &[]).rtt_ms, Some(42.0));
        // A second later: the video stream's new report says 12 ms; the audio's last
        // report (40 ms, before the conditions changed) is not used again.
        t.on_egress(&egress("0", 100, 40, false), Some(MediaKind::Audio));
        t.on_egress(&egress("1", 200, 12, true), Some(MediaKind::Video));
        let s = t.on_peer(&peer(t0 + Duration::from_secs(1)), &[]);
        assert_eq!(s.rtt_ms, Some(12.0));
        // No report at all in a second: no figure, rather than an old one.
        t.on_egress(&egress("0", 150, 40, false), Some(MediaKind::Audio));
        t.on_egress(&egress("1", 300, 12, false), Some(MediaKind::Video));
        assert_eq!(
            t.on_peer(&peer(t0 + Duration::from_secs(2)), &[]).rtt_ms,
            None
        );
    }

    #[test]
    fn a_layer_that_stopped_is_not_the_legs_jitter() {
        let mut t = StatsTracker::default();
        let start = Instant::now();
        t.on_ingress(
            &ingress("1", Some("h"), 300, 90_000),
            Some(MediaKind::Video),
        );
        t.on_ingress(&ingress("1", Some("l"), 100, 900), Some(MediaKind::Video));
        t.on_peer(&peer(start), &[]);
        // "h" sent nothing since: even when named, its stale jitter is not used.
        t.on_ingress(&ingress("1", Some("l"), 130, 900), Some(MediaKind::Video));
        let forwarded = [(Mid::from("1"), Some(Rid::from("h")))];
        let s = t.on_peer(&peer(start + Duration::from_secs(1)), &forwarded);
        assert_eq!(s.up_jitter_ms, Some(10.0));
    }
}

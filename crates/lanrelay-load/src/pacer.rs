//! A publisher's encoder and pacer: frames at a fixed rate (a keyframe every few
//! seconds and whenever asked), one stream or three simulcast layers, each frame split
//! into packets spread evenly over the frame interval as a browser's pacer does, and
//! Opus-sized audio every 20 ms. Pure: it takes the time and says what to send when;
//! [`super::peer`] writes the packets.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use str0m::media::{MediaKind, Mid, Rid};

use super::peer::Publish;
use lanrelay_peer::payload::{self, Vp8Packet};

/// A packet waiting for its send time (the pacer).
#[derive(Debug, Clone, Copy)]
pub struct Scheduled {
    pub at: Instant,
    pub kind: MediaKind,
    /// 0: audio; 1..: the video stream or simulcast layer.
    pub slot: usize,
    pub size: usize,
    pub rtp_ts: u32,
    pub marker: bool,
    pub vp8: Option<Vp8Packet>,
}

/// A publisher's encoder and pacer: frames at a fixed rate, split into packets that
/// are spread evenly over the frame interval, as a browser's pacer does.
pub struct Publisher {
    pub cfg: Publish,
    pub audio_mid: Option<Mid>,
    pub video_mid: Option<Mid>,
    start: Instant,
    next_frame: Instant,
    next_audio: Instant,
    frame_no: u64,
    audio_no: u64,
    pub keyframe_wanted: bool,
    pub queue: VecDeque<Scheduled>,
    /// Video streams: one, or the simulcast layers.
    layers: Vec<Layer>,
    /// Stamp packet numbers and RTP sequence numbers by slot (0: audio, then layers).
    pub numbers: Vec<u32>,
    pub seqs: Vec<u64>,
}

/// One simulcast layer: its rid, its share of the bitrate, its picture size.
#[derive(Debug, Clone, Copy)]
pub struct Layer {
    pub rid: &'static str,
    divisor: u32,
    width: u16,
    height: u16,
}

/// High to low, the order the SDP lists them in (as janus.js and most browsers'
/// apps do; Janus takes the first rid as the best layer).
pub const SIMULCAST_LAYERS: [Layer; 3] = [
    Layer {
        rid: "h",
        divisor: 1,
        width: 1280,
        height: 720,
    },
    Layer {
        rid: "m",
        divisor: 4,
        width: 640,
        height: 360,
    },
    Layer {
        rid: "l",
        divisor: 16,
        width: 320,
        height: 180,
    },
];

const AUDIO_EVERY: Duration = Duration::from_millis(20);
/// Opus at about 48 kbit/s in 20 ms frames.
const AUDIO_BYTES: usize = 120;

impl Publisher {
    pub fn new(cfg: Publish, now: Instant) -> Self {
        let start_seq = 1000 + (now.elapsed().as_nanos() % 20_000) as u64;
        Publisher {
            cfg,
            audio_mid: None,
            video_mid: None,
            start: now,
            next_frame: now,
            next_audio: now,
            frame_no: 0,
            audio_no: 0,
            keyframe_wanted: true,
            queue: VecDeque::new(),
            layers: if cfg.simulcast {
                SIMULCAST_LAYERS.to_vec()
            } else {
                vec![Layer {
                    rid: "",
                    ..SIMULCAST_LAYERS[0]
                }]
            },
            numbers: vec![0; 4],
            seqs: (0..4).map(|i| start_seq + 7 * i).collect(),
        }
    }

    /// The rid of a slot's stream (`None` for audio and a single video stream).
    pub fn rid(&self, slot: usize) -> Option<Rid> {
        let layer = self.layers.get(slot.checked_sub(1)?)?;
        (!layer.rid.is_empty()).then(|| Rid::from(layer.rid))
    }

    fn frame_interval(&self) -> Duration {
        Duration::from_secs(1) / self.cfg.fps.max(1)
    }

    pub fn next_due(&self) -> Instant {
        let mut due = self.next_frame;
        if self.cfg.audio {
            due = due.min(self.next_audio);
        }
        if let Some(q) = self.queue.front() {
            due = due.min(q.at);
        }
        due
    }

    /// Queues the frames and audio packets whose time has come.
    pub fn schedule(&mut self, now: Instant) {
        while self.cfg.audio && self.next_audio <= now {
            let at = self.next_audio;
            let rtp_ts = (self.audio_no * 960) as u32;
            self.audio_no += 1;
            self.next_audio += AUDIO_EVERY;
            self.insert(Scheduled {
                at,
                kind: MediaKind::Audio,
                slot: 0,
                size: AUDIO_BYTES,
                rtp_ts,
                marker: false,
                vp8: None,
            });
        }
        let interval = self.frame_interval();
        while self.next_frame <= now {
            let at = self.next_frame;
            self.next_frame += interval;
            let gop = (self.cfg.keyframe_secs.max(1) * self.cfg.fps.max(1)) as u64;
            let keyframe = self.keyframe_wanted || self.frame_no % gop == 0;
            self.keyframe_wanted = false;
            // Budget per GOP at the target bitrate; a keyframe is 4x an inter frame.
            let rtp_ts = (at.duration_since(self.start).as_micros() * 9 / 100) as u32;
            let picture_id = (self.frame_no % 0x8000) as u16;
            for (index, layer) in self.layers.clone().into_iter().enumerate() {
                let kbps = self.cfg.video_kbps / layer.divisor;
                let per_frame = kbps as f64 * 1000.0 / 8.0 / self.cfg.fps.max(1) as f64;
                let unit = per_frame * gop as f64 / (gop as f64 + 3.0);
                let bytes = if keyframe { unit * 4.0 } else { unit } as usize;
                let sizes = payload::split_frame(bytes);
                let step = interval / sizes.len() as u32;
                let count = sizes.len();
                for (i, size) in sizes.into_iter().enumerate() {
                    self.insert(Scheduled {
                        at: at + step * i as u32,
                        kind: MediaKind::Video,
                        slot: 1 + index,
                        size,
                        rtp_ts,
                        marker: i + 1 == count,
                        vp8: Some(Vp8Packet {
                            picture_id,
                            first: i == 0,
                            keyframe,
                            width: layer.width,
                            height: layer.height,
                        }),
                    });
                }
            }
            self.frame_no += 1;
        }
    }

    /// Inserts keeping the queue in time order (audio between video packets).
    fn insert(&mut self, s: Scheduled) {
        let pos = self.queue.partition_point(|q| q.at <= s.at);
        self.queue.insert(pos, s);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pacer_hits_the_bitrate_and_spreads_packets() {
        let t0 = Instant::now();
        let mut p = Publisher::new(
            Publish {
                video_kbps: 2500,
                fps: 30,
                keyframe_secs: 3,
                audio: true,
                simulcast: false,
            },
            t0,
        );
        p.keyframe_wanted = false;
        let mut video_bytes = 0;
        let mut audio = 0;
        let mut last = t0;
        // Three seconds: one GOP.
        for ms in 0..3000u64 {
            let now = t0 + Duration::from_millis(ms);
            p.schedule(now);
            while let Some(s) = p.queue.front().copied() {
                if s.at > now {
                    break;
                }
                p.queue.pop_front();
                assert!(s.at >= last, "time order");
                last = s.at;
                match s.kind {
                    MediaKind::Video => video_bytes += s.size,
                    MediaKind::Audio => audio += 1,
                }
            }
        }
        let kbps = video_bytes * 8 / 3 / 1000;
        assert!((2300..=2600).contains(&kbps), "{kbps} kbit/s");
        assert_eq!(audio, 150);
    }
}

//! The recorder of one room, Sans-IO: a receiver inside the server that needs no
//! network. It takes every packet of the room's publishers (after the shard has
//! forwarded it), keeps one simulcast layer per video track (the highest, switching
//! on its keyframe like a viewer), reassembles frames ([`super::jitter`]), places them
//! on the file's time line ([`super::timeline`]) and says what to hand to the writer
//! thread and which keyframes to ask for. It never blocks and never touches a file.
//!
//! Files: one per participant per track group, the camera and the microphone
//! together, each further video track (a screen share) on its own.
#![warn(clippy::disallowed_methods)] // Sans-IO: see clippy.toml

use std::collections::HashMap;
use std::time::{Duration, Instant};

use str0m::format::Codec;
use str0m::media::{MediaKind, Mid, Rid};

use super::jitter::Jitter;
use super::timeline::Timeline;
use super::{FileId, Frame, WriterMsg};
use crate::sfu::codec;
use crate::sfu::link::TrackPacket;
use crate::signaling::protocol::PeerId;

/// Keyframe requests for one track, at most this often (the shard's throttle still
/// applies on top).
const KEYFRAME_EVERY: Duration = Duration::from_secs(1);

/// Which file of a participant a track goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Group {
    /// The camera and the microphone.
    Camera,
    /// Another video track (a screen share), by its m-line.
    Screen(Mid),
}

/// What the shard knows of a packet's track and publisher, for the recorder.
#[derive(Debug, Clone)]
pub(crate) struct TrackInfo<'a> {
    pub(crate) participant: &'a str,
    pub(crate) kind: MediaKind,
    pub(crate) group: Group,
    /// The group's tracks: (has audio, has video).
    pub(crate) group_kinds: (bool, bool),
    /// Simulcast: the layer to record (the highest heard lately).
    pub(crate) best_layer: Option<Rid>,
}

/// What the shard must do for the recorder.
#[derive(Debug, Default)]
pub(crate) struct RecordOut {
    /// Messages for the writer thread, in order.
    pub(crate) msgs: Vec<WriterMsg>,
    /// Keyframe requests: (publisher, m-line, layer).
    pub(crate) keyframes: Vec<(PeerId, Mid, Option<Rid>)>,
    /// Frames dropped (incomplete, or video waiting for a keyframe).
    pub(crate) dropped: u64,
}

#[derive(Debug)]
struct FileRec {
    id: FileId,
    publisher: PeerId,
    group: Group,
}

#[derive(Debug)]
struct TrackRec {
    file: FileId,
    video: bool,
    /// The layer being recorded (simulcast), and its stream.
    layer: Option<Rid>,
    ssrc: Option<u32>,
    jitter: Option<Jitter>,
    timeline: Timeline,
    last_request: Option<Instant>,
}

/// The recording of one room.
#[derive(Debug)]
pub(crate) struct RoomRecorder {
    files: Vec<FileRec>,
    tracks: HashMap<(PeerId, Mid), TrackRec>,
    /// Codecs that cannot go into WebM, said once per track.
    unsupported: Vec<(PeerId, Mid)>,
}

impl RoomRecorder {
    pub(crate) fn new() -> Self {
        RoomRecorder {
            files: Vec::new(),
            tracks: HashMap::new(),
            unsupported: Vec::new(),
        }
    }

    /// A packet of `publisher`'s track, already forwarded to the room. `new_file`
    /// gives a fresh file id.
    pub(crate) fn on_packet(
        &mut self,
        now: Instant,
        publisher: PeerId,
        info: &TrackInfo<'_>,
        pkt: &TrackPacket,
        mut new_file: impl FnMut() -> FileId,
        out: &mut RecordOut,
    ) {
        let key = (publisher, pkt.mid);
        let codec_ = pkt.params.spec().codec;
        if !matches!(codec_, Codec::Vp8 | Codec::Opus) {
            if !self.unsupported.contains(&key) {
                self.unsupported.push(key);
                tracing::warn!(
                    publisher,
                    mid = %pkt.mid,
                    codec = ?codec_,
                    "recording: only VP8 and Opus go into WebM; this track is not recorded"
                );
            }
            return;
        }
        if !self.tracks.contains_key(&key) {
            let file = self.file_for(publisher, info, &mut new_file, out);
            let video = info.kind == MediaKind::Video;
            let clock = pkt.params.spec().clock_rate.get();
            self.tracks.insert(
                key,
                TrackRec {
                    file,
                    video,
                    layer: None,
                    ssrc: None,
                    jitter: None,
                    timeline: Timeline::new(now, clock),
                    last_request: None,
                },
            );
        }
        let Some(t) = self.tracks.get_mut(&key) else {
            return;
        };
        let keyframe_start = t.video && codec::starts_keyframe(codec_, &pkt.payload);
        if t.ssrc != Some(pkt.ssrc) {
            // A stream to take up: the first one that starts a keyframe, the wanted
            // layer starting one, or a new stream of a track without layers.
            let wanted = t.ssrc.is_none() || pkt.rid.is_none() || pkt.rid == info.best_layer;
            if !wanted {
                return;
            }
            if t.video && !keyframe_start {
                let layer = match t.ssrc {
                    None => info.best_layer.or(pkt.rid),
                    Some(_) => pkt.rid,
                };
                t.ask_keyframe(now, key, layer, out);
                return;
            }
            t.ssrc = Some(pkt.ssrc);
            t.layer = pkt.rid;
            t.jitter = Jitter::new(codec_);
        } else if t.video && info.best_layer.is_some() && t.layer != info.best_layer {
            // A better layer is there: ask for its keyframe to switch.
            t.ask_keyframe(now, key, info.best_layer, out);
        }
        let Some(jitter) = t.jitter.as_mut() else {
            return;
        };
        let drained = jitter.push(
            now,
            pkt.seq_no,
            pkt.rtp_time,
            pkt.marker,
            pkt.received,
            pkt.payload.clone(),
        );
        out.dropped += drained.dropped;
        if drained.lost {
            t.ask_keyframe(now, key, t.layer, out);
        }
        for f in drained.frames {
            let at = t.timeline.place(pkt.ssrc, f.rtp_time, f.arrival);
            out.msgs.push(WriterMsg::Frame(Frame {
                file: t.file,
                video: t.video,
                at,
                keyframe: f.keyframe,
                data: f.data,
            }));
        }
    }

    /// The file of `publisher`'s group, opened now if it is new.
    fn file_for(
        &mut self,
        publisher: PeerId,
        info: &TrackInfo<'_>,
        new_file: &mut impl FnMut() -> FileId,
        out: &mut RecordOut,
    ) -> FileId {
        if let Some(f) = self
            .files
            .iter()
            .find(|f| f.publisher == publisher && f.group == info.group)
        {
            return f.id;
        }
        let id = new_file();
        self.files.push(FileRec {
            id,
            publisher,
            group: info.group,
        });
        let (audio, video) = info.group_kinds;
        out.msgs.push(WriterMsg::Open {
            file: id,
            participant: info.participant.to_string(),
            screen: matches!(info.group, Group::Screen(_)),
            audio,
            video,
        });
        id
    }

    /// `publisher`'s track `mid` ended: a screen share's file is finished.
    pub(crate) fn track_ended(&mut self, publisher: PeerId, mid: Mid, out: &mut RecordOut) {
        let Some(t) = self.tracks.remove(&(publisher, mid)) else {
            return;
        };
        let shared = self.tracks.values().any(|o| o.file == t.file);
        if !shared
            && self
                .files
                .iter()
                .any(|f| f.id == t.file && f.group != Group::Camera)
        {
            self.files.retain(|f| f.id != t.file);
            out.msgs.push(WriterMsg::Close { file: t.file });
        }
    }

    /// `publisher` left: its files are finished.
    pub(crate) fn left(&mut self, publisher: PeerId, out: &mut RecordOut) {
        self.tracks.retain(|(p, _), _| *p != publisher);
        self.files.retain(|f| {
            if f.publisher == publisher {
                out.msgs.push(WriterMsg::Close { file: f.id });
                false
            } else {
                true
            }
        });
    }

    /// The recording stops: every file is finished.
    pub(crate) fn stop(self, out: &mut RecordOut) {
        for f in self.files {
            out.msgs.push(WriterMsg::Close { file: f.id });
        }
    }
}

impl TrackRec {
    fn ask_keyframe(
        &mut self,
        now: Instant,
        (publisher, mid): (PeerId, Mid),
        layer: Option<Rid>,
        out: &mut RecordOut,
    ) {
        if self
            .last_request
            .is_some_and(|t| now.saturating_duration_since(t) < KEYFRAME_EVERY)
        {
            return;
        }
        self.last_request = Some(now);
        out.keyframes.push((publisher, mid, layer));
    }
}

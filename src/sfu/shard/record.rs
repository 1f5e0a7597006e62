//! Recording, on the room's home shard (which sees every publisher's packets): the
//! two commands that start and stop a room's recording, what the room hears about
//! it, and the hooks that feed the room's [`RoomRecorder`] after each packet is
//! forwarded. The recorder only ever `try_send`s to the writer thread: a full queue
//! stops the room's recording, never the call.

use std::time::Instant;

use str0m::media::{KeyframeRequestKind, MediaKind, Mid};
use tracing::{info, warn};

use super::Shard;
use crate::record::room::{Group, RecordOut, RoomRecorder, TrackInfo};
use crate::record::{SinkError, WriterMsg};
use crate::sfu::link::TrackPacket;
use crate::signaling::protocol::{Mode, PeerId, ServerMsg, Source};

/// Why a recording could not start.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    #[error("no such room")]
    NoRoom,
    #[error("recording is off on this server")]
    Off,
    #[error("this room is a direct call: its media does not pass through the server")]
    Direct,
}

impl Shard {
    /// Starts recording `room` (this shard is its home). `Ok(false)`: it already was.
    pub fn start_recording(&mut self, now: Instant, room: &str) -> Result<bool, RecordError> {
        let Some(sink) = self.cfg.record.as_ref() else {
            return Err(RecordError::Off);
        };
        let mode = match self.rooms.mode(room) {
            Some(m) if !self.mirrored.contains_key(room) => m,
            _ => return Err(RecordError::NoRoom),
        };
        if mode == Mode::Direct {
            return Err(RecordError::Direct);
        }
        if self.recorders.contains_key(room) {
            return Ok(false);
        }
        sink.stats
            .rooms
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.recorders.insert(room.to_string(), RoomRecorder::new());
        info!(room, "recording started");
        self.announce_recording(room, true, None);
        // A keyframe from every camera and screen, so each file starts at once.
        let video: Vec<(PeerId, Mid)> = self
            .rooms
            .members(room)
            .iter()
            .filter_map(|id| self.peers.get(id))
            .flat_map(|p| {
                p.up.iter()
                    .filter(|(_, u)| u.kind == MediaKind::Video)
                    .map(|(mid, _)| (p.id, *mid))
            })
            .collect();
        for (id, mid) in video {
            self.request_keyframe(now, id, mid, None, KeyframeRequestKind::Pli);
        }
        Ok(true)
    }

    /// Stops recording `room`: its files are finished, the room hears it (with
    /// `message` when it stopped by itself). False when it was not being recorded.
    pub fn stop_recording(&mut self, room: &str, message: Option<String>) -> bool {
        let Some(recorder) = self.recorders.remove(room) else {
            return false;
        };
        let mut out = RecordOut::default();
        recorder.stop(&mut out);
        self.send_record(room, out);
        if let Some(sink) = self.cfg.record.as_ref() {
            sink.stats
                .rooms
                .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        }
        match &message {
            Some(m) => warn!(room, "recording stopped: {m}"),
            None => info!(room, "recording stopped"),
        }
        self.announce_recording(room, false, message);
        true
    }

    /// Stops every recording of this shard (the server is shutting down).
    pub fn stop_all_recordings(&mut self) -> usize {
        let rooms: Vec<String> = self.recorders.keys().cloned().collect();
        for room in &rooms {
            self.stop_recording(room, None);
        }
        rooms.len()
    }

    /// Whether `room` is being recorded here.
    pub fn is_recording(&self, room: &str) -> bool {
        self.recorders.contains_key(room)
    }

    /// Tells `id`, who just joined `room` (or resumed), that it is being recorded.
    pub(super) fn tell_recording(&mut self, id: PeerId, room: &str) {
        if self.recorders.contains_key(room) {
            self.signal(
                id,
                ServerMsg::Recording {
                    on: true,
                    message: None,
                },
            );
        }
    }

    fn announce_recording(&mut self, room: &str, on: bool, message: Option<String>) {
        for o in self.audience(room, 0) {
            let message = message.clone();
            self.signal(o, ServerMsg::Recording { on, message });
        }
    }

    /// A packet of publisher `from` was forwarded: its room's recorder takes it.
    pub(super) fn record_packet(&mut self, now: Instant, from: PeerId, pkt: &TrackPacket) {
        let Some(peer) = self.peers.get(&from) else {
            return;
        };
        let Some(recorder) = self.recorders.get_mut(peer.room.as_str()) else {
            return;
        };
        let Some(sink) = self.cfg.record.as_ref() else {
            return;
        };
        let Some(up) = peer.up.get(&pkt.mid) else {
            return;
        };
        // A screen share (the page named its m-line) has a file of its own; the camera
        // and microphone share one.
        let group = match up.source {
            Source::Screen => Group::Screen(pkt.mid),
            Source::Camera | Source::Microphone => Group::Camera,
        };
        let group_kinds = match group {
            Group::Screen(_) => (false, true),
            Group::Camera => (
                peer.up.values().any(|u| u.source == Source::Microphone),
                peer.up.values().any(|u| u.source == Source::Camera),
            ),
        };
        let best_layer = match up.simulcast {
            true => up.rates.active(now).last().map(|l| l.rid),
            false => None,
        };
        let info = TrackInfo {
            participant: &peer.info.name,
            kind: up.kind,
            group,
            group_kinds,
            best_layer,
        };
        let mut out = RecordOut::default();
        recorder.on_packet(now, from, &info, pkt, || sink.new_file(), &mut out);
        let room = peer.room.clone();
        for (src, mid, layer) in std::mem::take(&mut out.keyframes) {
            self.request_keyframe(now, src, mid, layer, KeyframeRequestKind::Pli);
        }
        self.send_record(&room, out);
    }

    /// Publisher `id` of `room` stopped sending on `mid`, or left (`mid` `None`).
    pub(super) fn record_ended(&mut self, room: &str, id: PeerId, mid: Option<Mid>) {
        let Some(recorder) = self.recorders.get_mut(room) else {
            return;
        };
        let mut out = RecordOut::default();
        match mid {
            Some(mid) => recorder.track_ended(id, mid, &mut out),
            None => recorder.left(id, &mut out),
        }
        self.send_record(room, out);
    }

    /// Hands what the recorder made to the writer thread; a full queue stops the
    /// room's recording.
    fn send_record(&mut self, room: &str, out: RecordOut) {
        let Some(sink) = self.cfg.record.clone() else {
            return;
        };
        let stats = &sink.stats;
        stats
            .frames_dropped
            .fetch_add(out.dropped, std::sync::atomic::Ordering::Relaxed);
        let mut failed = None;
        for msg in out.msgs {
            if failed.is_some() {
                if matches!(msg, WriterMsg::Frame(_)) {
                    stats
                        .frames_dropped
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
                continue;
            }
            if let Err(e) = sink.try_send(room, msg) {
                stats
                    .frames_dropped
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                failed = Some(e);
            }
        }
        if let Some(e) = failed {
            stats
                .failures
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let message = match e {
                SinkError::Full => {
                    "the recording stopped: the server could not write it fast enough"
                }
                SinkError::Gone => "the recording stopped: the recorder is not running",
            };
            self.stop_recording(room, Some(message.to_string()));
        }
    }
}

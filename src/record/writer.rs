//! The recorder's thread: it takes frames from the shards' bounded queue, puts each
//! file's audio and video in time order and muxes them into WebM with libwebm (the
//! `webm` crate). Nothing here runs on a media worker.
//!
//! A file is created when it is opened; its WebM segment starts once its first video
//! keyframe is there (its size goes in the track header), or after
//! [`START_WITHOUT_VIDEO`] with what there is. Frames wait [`HOLD`] so that audio and
//! video, which reach the queue at slightly different delays, go into the file in
//! time order (libwebm wants that). The file is written as it goes, flushed at least
//! every [`FLUSH_EVERY`]: clusters have their sizes once they end, the segment's
//! size and its cues only when the file is finished, and players read a file that
//! never was (a crash) by scanning its clusters.
//!
//! A file that cannot be written (a full disk, a folder that went away) stops its
//! room's recording: every file of the room is finished as well as it can be, and
//! the engine is told ([`super::Failure`]) so that the room hears why.
#![allow(clippy::disallowed_methods)] // the I/O shell: it reads the clock to flush

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufWriter, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, RecvTimeoutError, TryRecvError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc::UnboundedSender;
use tracing::{info, warn};
use webm::mux::{
    AudioCodecId, AudioTrack, Segment, SegmentBuilder, SegmentMode, VideoCodecId, VideoTrack,
    Writer as MuxWriter,
};

use super::{file_name, Envelope, Failure, FileId, Frame, RecordStats, WriterMsg};

/// How long frames wait to be put in time order.
pub(crate) const HOLD: Duration = Duration::from_millis(500);

/// A file whose video has not sent a keyframe by then starts without knowing its
/// size (players take it from the frames).
pub(crate) const START_WITHOUT_VIDEO: Duration = Duration::from_secs(2);

/// A frame this far behind what was written is dropped rather than moved.
const LATE: Duration = Duration::from_millis(100);

/// Data goes to disk at least this often.
pub(crate) const FLUSH_EVERY: Duration = Duration::from_secs(1);

/// The frame size written when the first keyframe did not say.
const DEFAULT_SIZE: (u32, u32) = (640, 480);

/// Opus's identification header (RFC 7845 5.1), the codec private data of WebM's
/// Opus tracks: version 1, 2 channels, no pre-skip, 48 kHz, no gain, mapping 0.
const OPUS_HEAD: [u8; 19] = [
    b'O', b'p', b'u', b's', b'H', b'e', b'a', b'd', 1, 2, 0, 0, 0x80, 0xbb, 0, 0, 0, 0, 0,
];

/// The file under libwebm: buffered, flushed every [`FLUSH_EVERY`], counting what it
/// writes.
struct Disk {
    file: BufWriter<File>,
    flushed: Instant,
    stats: Arc<RecordStats>,
}

impl Write for Disk {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.write(buf)?;
        self.stats.bytes.fetch_add(n as u64, Ordering::Relaxed);
        if self.flushed.elapsed() >= FLUSH_EVERY {
            self.file.flush()?;
            self.flushed = Instant::now();
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

impl Seek for Disk {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        self.file.seek(pos)
    }
}

/// A file's WebM segment, once started.
struct Mux {
    segment: Segment<Disk>,
    audio: Option<AudioTrack>,
    video: Option<VideoTrack>,
    /// The latest timestamp written (all tracks): libwebm wants them in order.
    last: Duration,
    /// Where each track may go on (audio, video): a frame goes after the one before
    /// on its track, in whole milliseconds (the file's time unit), and audio after
    /// the end of the audio before it (decoded audio must not overlap).
    next_audio: Duration,
    next_video: Duration,
}

/// One file being written.
struct OpenFile {
    room: String,
    name: String,
    audio: bool,
    video: bool,
    /// Created at open; taken when the segment starts.
    disk: Option<Disk>,
    mux: Option<Mux>,
    /// Frames waiting to be written, in time order.
    queue: Vec<Frame>,
    newest: Duration,
    stats: Arc<RecordStats>,
}

pub(crate) struct Writer {
    dir: PathBuf,
    stats: Arc<RecordStats>,
    failures: UnboundedSender<Failure>,
    files: HashMap<FileId, OpenFile>,
    /// Files to close once the frame queue has been seen empty.
    closing: Vec<FileId>,
}

/// How long the thread waits for a frame before it looks at the opens and closes.
const IDLE: Duration = Duration::from_millis(100);

impl Writer {
    pub(crate) fn new(
        dir: PathBuf,
        stats: Arc<RecordStats>,
        failures: UnboundedSender<Failure>,
    ) -> Self {
        Writer {
            dir,
            stats,
            failures,
            files: HashMap::new(),
            closing: Vec::new(),
        }
    }

    /// Runs until told to stop or every sender is gone, then finishes every file.
    ///
    /// `ctl` (opening and closing files) is read before each frame, so a file is
    /// open before its first frame. A file to close is closed once the frame queue
    /// has been seen empty after the close arrived: every frame sent before the close
    /// has been written then (the queue is first in, first out).
    pub(crate) fn run(mut self, rx: Receiver<Envelope>, ctl: Receiver<Envelope>) {
        let mut stopping = false;
        loop {
            stopping |= self.take_ctl(&ctl);
            match rx.try_recv() {
                Ok(env) => {
                    stopping |= self.take_ctl(&ctl);
                    self.handle(env);
                    continue;
                }
                Err(TryRecvError::Disconnected) => break,
                Err(TryRecvError::Empty) => {}
            }
            // The queue is empty: what was sent before each close is written.
            let closing: Vec<FileId> = std::mem::take(&mut self.closing);
            for id in closing {
                self.close(id);
            }
            if stopping {
                break;
            }
            match rx.recv_timeout(IDLE) {
                Ok(env) => {
                    stopping |= self.take_ctl(&ctl);
                    self.handle(env);
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
        }
        let ids: Vec<FileId> = self.files.keys().copied().collect();
        for id in ids {
            self.close(id);
        }
    }

    /// Handles the queued opens and closes; true when told to stop.
    fn take_ctl(&mut self, ctl: &Receiver<Envelope>) -> bool {
        let mut stop = false;
        while let Ok(env) = ctl.try_recv() {
            match env.msg {
                WriterMsg::Shutdown => stop = true,
                WriterMsg::Close { file } => {
                    if !self.closing.contains(&file) {
                        self.closing.push(file);
                    }
                }
                _ => self.handle(env),
            }
        }
        stop
    }

    fn handle(&mut self, env: Envelope) {
        let Envelope { room, msg } = env;
        let result = match msg {
            WriterMsg::Open {
                file,
                participant,
                screen,
                audio,
                video,
            } => self.open(file, &room, &participant, screen, audio, video),
            WriterMsg::Frame(f) => self.frame(f),
            WriterMsg::Close { file } => {
                self.close(file);
                Ok(())
            }
            WriterMsg::Shutdown => Ok(()),
        };
        if let Err(e) = result {
            self.fail(&room, e);
        }
    }

    fn open(
        &mut self,
        id: FileId,
        room: &str,
        participant: &str,
        screen: bool,
        audio: bool,
        video: bool,
    ) -> Result<(), String> {
        std::fs::create_dir_all(&self.dir)
            .map_err(|e| format!("cannot create {}: {e}", self.dir.display()))?;
        let start = time::OffsetDateTime::now_utc();
        let stamp = format!(
            "{:04}{:02}{:02}-{:02}{:02}{:02}Z",
            start.year(),
            start.month() as u8,
            start.day(),
            start.hour(),
            start.minute(),
            start.second()
        );
        let (file, name) = create_new(&self.dir, &file_name(room, participant, screen, &stamp))?;
        info!(room, participant, file = name, "recording to a file");
        self.stats.set_writing(&name, true);
        self.stats.files_open.fetch_add(1, Ordering::Relaxed);
        self.files.insert(
            id,
            OpenFile {
                room: room.to_string(),
                name,
                audio,
                video,
                disk: Some(Disk {
                    file: BufWriter::new(file),
                    flushed: Instant::now(),
                    stats: self.stats.clone(),
                }),
                mux: None,
                queue: Vec::new(),
                newest: Duration::ZERO,
                stats: self.stats.clone(),
            },
        );
        Ok(())
    }

    fn frame(&mut self, f: Frame) -> Result<(), String> {
        let Some(file) = self.files.get_mut(&f.file) else {
            // A file already finished (its room's recording failed).
            return Ok(());
        };
        if (f.video && !file.video) || (!f.video && !file.audio) {
            return Ok(());
        }
        file.newest = file.newest.max(f.at);
        let i = file.queue.partition_point(|q| q.at <= f.at);
        file.queue.insert(i, f);
        file.write_ready(false)
    }

    /// Finishes file `id` (what is queued, then cues and duration).
    fn close(&mut self, id: FileId) {
        let Some(mut file) = self.files.remove(&id) else {
            return;
        };
        self.finish(&mut file);
        // Listed as finished (with its duration) only now that it is.
        self.stats.set_writing(&file.name, false);
    }

    fn finish(&self, file: &mut OpenFile) {
        self.stats.files_open.fetch_sub(1, Ordering::Relaxed);
        if let Err(e) = file.write_ready(true) {
            warn!(file = file.name, "recording: {e}");
        }
        let Some(mux) = file.mux.take() else {
            // Not one frame: no file worth keeping.
            drop(file.disk.take());
            let _ = std::fs::remove_file(self.dir.join(&file.name));
            return;
        };
        match mux.segment.finalize(None) {
            Ok(w) => {
                let mut disk = w.into_inner();
                if let Err(e) = disk.flush() {
                    warn!(file = file.name, "recording: cannot finish the file: {e}");
                }
                info!(file = file.name, "recording finished");
            }
            Err(_) => warn!(
                file = file.name,
                "recording: the file could not be finished"
            ),
        }
    }

    /// A file of `room` cannot be written: the room's recording stops.
    fn fail(&mut self, room: &str, message: String) {
        warn!(room, "recording stopped: {message}");
        self.stats.failures.fetch_add(1, Ordering::Relaxed);
        let ids: Vec<FileId> = self
            .files
            .iter()
            .filter(|(_, f)| f.room == room)
            .map(|(id, _)| *id)
            .collect();
        for id in ids {
            self.close(id);
        }
        let _ = self.failures.send(Failure {
            room: room.to_string(),
            message,
        });
    }
}

impl OpenFile {
    /// Writes the frames that have waited long enough (all of them with `all`),
    /// starting the segment first when it can.
    fn write_ready(&mut self, all: bool) -> Result<(), String> {
        if self.mux.is_none() {
            let keyframe = self.queue.iter().find(|f| f.video && f.keyframe);
            let waited = self
                .newest
                .saturating_sub(self.queue.first().map_or(self.newest, |f| f.at));
            if self.video && keyframe.is_none() && waited < START_WITHOUT_VIDEO && !all {
                return Ok(());
            }
            if self.queue.is_empty() {
                return Ok(());
            }
            let size = keyframe
                .and_then(|f| vp8_size(&f.data))
                .unwrap_or(DEFAULT_SIZE);
            // Video starts on its keyframe: what came before cannot be decoded.
            let first_key = keyframe.map(|f| f.at);
            self.queue
                .retain(|f| !f.video || first_key.is_some_and(|k| f.at >= k));
            self.start(size)?;
        }
        let Some(mux) = self.mux.as_mut() else {
            return Ok(());
        };
        let ready = if all {
            self.queue.len()
        } else {
            let until = self.newest.saturating_sub(HOLD);
            self.queue.partition_point(|f| f.at <= until)
        };
        for f in self.queue.drain(..ready) {
            let next = match f.video {
                true => &mut mux.next_video,
                false => &mut mux.next_audio,
            };
            // Too late to go in order (it came long after the frames around it): a
            // gap is better than a frame out of place.
            if f.at + LATE < mux.last && !f.keyframe {
                self.stats.frames_dropped.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            let at = Duration::from_millis(f.at.max(mux.last).max(*next).as_millis() as u64);
            let length = match f.video {
                true => Duration::ZERO,
                false => opus_duration(&f.data),
            };
            *next = at + length.max(Duration::from_millis(1));
            mux.last = at;
            let track: u64 = match (f.video, mux.video, mux.audio) {
                (true, Some(v), _) => v.into(),
                (false, _, Some(a)) => a.into(),
                _ => continue,
            };
            mux.segment
                .add_frame(track, &f.data, at.as_nanos() as u64, f.keyframe || !f.video)
                .map_err(|e| format!("cannot write {}: {e}", self.name))?;
        }
        Ok(())
    }

    fn start(&mut self, (width, height): (u32, u32)) -> Result<(), String> {
        let Some(disk) = self.disk.take() else {
            return Err(format!("{}: no file", self.name));
        };
        let bad = |e: webm::mux::Error| format!("cannot write {}: {e}", self.name);
        let mut b = SegmentBuilder::new(MuxWriter::new(disk))
            .and_then(|b| b.set_mode(SegmentMode::File))
            .and_then(|b| b.set_writing_app("lanrelay"))
            .map_err(bad)?;
        let mut video = None;
        let mut audio = None;
        if self.video {
            let (nb, v) = b
                .add_video_track(width, height, VideoCodecId::VP8, None)
                .map_err(bad)?;
            b = nb;
            video = Some(v);
        }
        if self.audio {
            let (nb, a) = b
                .add_audio_track(48_000, 2, AudioCodecId::Opus, None)
                .map_err(bad)?;
            b = nb.set_codec_private(a, &OPUS_HEAD).map_err(bad)?;
            audio = Some(a);
        }
        self.mux = Some(Mux {
            segment: b.build(),
            audio,
            video,
            last: Duration::ZERO,
            next_audio: Duration::ZERO,
            next_video: Duration::ZERO,
        });
        Ok(())
    }
}

/// Creates `name` in `dir`, never over an existing file (`-2`, `-3`, ... added).
fn create_new(dir: &Path, name: &str) -> Result<(File, String), String> {
    let stem = name.trim_end_matches(".webm");
    for n in 1..100 {
        let candidate = match n {
            1 => name.to_string(),
            n => format!("{stem}-{n}.webm"),
        };
        match File::options()
            .write(true)
            .read(true)
            .create_new(true)
            .open(dir.join(&candidate))
        {
            Ok(f) => return Ok((f, candidate)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => {
                return Err(format!(
                    "cannot create {}: {e}",
                    dir.join(&candidate).display()
                ))
            }
        }
    }
    Err(format!("cannot create {name}: too many files of that name"))
}

/// The frame size in a VP8 keyframe (RFC 6386 9.1).
fn vp8_size(frame: &[u8]) -> Option<(u32, u32)> {
    let h = frame.get(..10)?;
    if h[0] & 1 != 0 || h[3..6] != [0x9d, 0x01, 0x2a] {
        return None;
    }
    let w = u16::from_le_bytes([h[6], h[7]]) & 0x3fff;
    let ht = u16::from_le_bytes([h[8], h[9]]) & 0x3fff;
    (w > 0 && ht > 0).then_some((w as u32, ht as u32))
}

/// How much audio an Opus packet holds (RFC 6716 3.1: its TOC byte's configuration
/// and frame count); 20 ms when it does not say.
fn opus_duration(packet: &[u8]) -> Duration {
    let Some(&toc) = packet.first() else {
        return Duration::from_millis(20);
    };
    let config = toc >> 3;
    let micros: u64 = match config {
        0..=11 => [10_000, 20_000, 40_000, 60_000][config as usize % 4],
        12..=15 => [10_000, 20_000][config as usize % 2],
        _ => [2_500, 5_000, 10_000, 20_000][config as usize % 4],
    };
    let frames = match toc & 3 {
        0 => 1,
        1 | 2 => 2,
        _ => packet.get(1).map_or(1, |c| (c & 0x3f).max(1) as u64),
    };
    Duration::from_micros(micros * frames)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opus_packets_say_how_long_they_are() {
        // CELT fullband 20 ms, one frame (what browsers send).
        assert_eq!(opus_duration(&[0xf8, 1, 2]), Duration::from_millis(20));
        // SILK wideband 60 ms; two 10 ms hybrid frames; three 2.5 ms CELT frames.
        assert_eq!(opus_duration(&[(11 << 3), 0]), Duration::from_millis(60));
        assert_eq!(opus_duration(&[(12 << 3) | 1]), Duration::from_millis(20));
        assert_eq!(
            opus_duration(&[(16 << 3) | 3, 3]),
            Duration::from_micros(7_500)
        );
        assert_eq!(opus_duration(&[]), Duration::from_millis(20));
    }

    #[test]
    fn keyframe_sizes_are_read() {
        let key = [0x50, 0x02, 0x00, 0x9d, 0x01, 0x2a, 0x40, 0x01, 0xf0, 0x00];
        assert_eq!(vp8_size(&key), Some((320, 240)));
        assert_eq!(vp8_size(&key[..6]), None);
        assert_eq!(vp8_size(&[0x51, 0, 0, 0x9d, 1, 0x2a, 1, 1, 1, 1]), None);
    }
}

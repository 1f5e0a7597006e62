//! Recording: a room's tracks written to WebM files (VP8 + Opus) that ordinary
//! players open, at no risk to the live call.
//!
//! - [`room`]: the recorder of one room, inside the room's home shard (Sans-IO): a
//!   receiver of every track that needs no network; [`jitter`] turns RTP back into
//!   frames, [`timeline`] places them on the file's time line.
//! - [`writer`]: the one thread that muxes and writes files (libwebm), behind a
//!   bounded queue. The shards only `try_send` to it ([`RecordSink`]): when it is
//!   full, or a file cannot be written (a full disk), that room's recording stops
//!   with a message to the room and in the log, and the call carries on.
//! - [`files`]: the recordings folder, its listing (duration and size) and safe
//!   look-ups of a file by name; [`http`]: `/api/rooms/ROOM/recording` and
//!   `/recordings`.
//!
//! Files are written live-style: clusters go to disk as they are made (flushed at
//! least every second), so a crash leaves a file players open up to its last
//! seconds; a stop, a participant's leave and a clean shutdown finalise them
//! (duration and cues).

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{channel, sync_channel, Sender, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

pub(crate) mod files;
pub(crate) mod http;
pub(crate) mod jitter;
pub(crate) mod room;
pub(crate) mod timeline;
pub(crate) mod writer;

/// Messages the writer thread may have waiting: about 10 s of a 4-participant call
/// (30 video and 50 audio frames a second each). A writer further behind than that
/// is not keeping up with the disk.
pub(crate) const QUEUE: usize = 4096;

/// Identifies one file being written, server-wide.
pub(crate) type FileId = u64;

/// One frame for a file.
#[derive(Debug)]
pub(crate) struct Frame {
    pub(crate) file: FileId,
    pub(crate) video: bool,
    /// Its place in the file, from the file's time zero.
    pub(crate) at: Duration,
    pub(crate) keyframe: bool,
    pub(crate) data: Vec<u8>,
}

/// What the shards tell the writer thread.
#[derive(Debug)]
pub(crate) enum WriterMsg {
    /// A file of `participant` (its camera and microphone, or a screen share) with
    /// these tracks; the writer names it by the room, the participant and the time.
    Open {
        file: FileId,
        participant: String,
        screen: bool,
        audio: bool,
        video: bool,
    },
    Frame(Frame),
    /// Finish the file (cues, duration) and close it.
    Close {
        file: FileId,
    },
    /// The server stops: finish every file and end the thread.
    Shutdown,
}

/// A message with the room it is for (the writer reports a failure to that room).
#[derive(Debug)]
pub(crate) struct Envelope {
    pub(crate) room: String,
    pub(crate) msg: WriterMsg,
}

/// The writer gave up on a room's recording (a file it could not write).
#[derive(Debug, Clone)]
pub(crate) struct Failure {
    pub(crate) room: String,
    /// For the room and the log, in words.
    pub(crate) message: String,
}

/// What `/metrics` shows of recording.
#[derive(Debug, Default)]
pub struct RecordStats {
    /// Rooms being recorded.
    pub(crate) rooms: AtomicU64,
    /// Files open for writing.
    pub(crate) files_open: AtomicU64,
    /// Bytes written to recording files.
    pub(crate) bytes: AtomicU64,
    /// Frames not recorded: incomplete after loss, video waiting for a keyframe, a
    /// full queue.
    pub(crate) frames_dropped: AtomicU64,
    /// Recordings stopped by a full queue or a write error.
    pub(crate) failures: AtomicU64,
    /// Ids of files, server-wide.
    next_file: AtomicU64,
    /// Names of the files being written (the listing shows no duration for them).
    /// Taken by the writer thread and `/recordings`, never on the media path.
    writing: std::sync::Mutex<Vec<String>>,
}

impl RecordStats {
    pub(crate) fn rooms(&self) -> u64 {
        self.rooms.load(Ordering::Relaxed)
    }
    pub(crate) fn files_open(&self) -> u64 {
        self.files_open.load(Ordering::Relaxed)
    }
    pub(crate) fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }
    pub(crate) fn frames_dropped(&self) -> u64 {
        self.frames_dropped.load(Ordering::Relaxed)
    }
    pub(crate) fn failures(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }
    /// The names of the files being written.
    pub(crate) fn writing(&self) -> Vec<String> {
        self.writing
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
    pub(crate) fn set_writing(&self, name: &str, on: bool) {
        let mut w = self.writing.lock().unwrap_or_else(|e| e.into_inner());
        w.retain(|n| n != name);
        if on {
            w.push(name.to_string());
        }
    }
}

/// A shard's way to the writer thread: never blocks. Frames go on the bounded queue;
/// opening and closing files (rare, small, and a close must never be lost) on an
/// unbounded one that the writer reads first.
#[derive(Debug, Clone)]
pub struct RecordSink {
    tx: SyncSender<Envelope>,
    ctl: Sender<Envelope>,
    pub(crate) stats: Arc<RecordStats>,
}

/// Why a message did not reach the writer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum SinkError {
    #[error("the recorder is not keeping up (its queue is full)")]
    Full,
    #[error("the recorder has stopped")]
    Gone,
}

impl RecordSink {
    /// Queues `msg` for the writer, or says why not (the caller stops the recording).
    pub(crate) fn try_send(&self, room: &str, msg: WriterMsg) -> Result<(), SinkError> {
        let frame = matches!(msg, WriterMsg::Frame(_));
        let env = Envelope {
            room: room.to_string(),
            msg,
        };
        if !frame {
            return self.ctl.send(env).map_err(|_| SinkError::Gone);
        }
        match self.tx.try_send(env) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(_)) => Err(SinkError::Full),
            Err(TrySendError::Disconnected(_)) => Err(SinkError::Gone),
        }
    }

    /// A fresh file id.
    pub(crate) fn new_file(&self) -> FileId {
        self.stats.next_file.fetch_add(1, Ordering::Relaxed) + 1
    }
}

/// The recording service: the writer thread and its counters.
pub(crate) struct Recordings {
    pub(crate) stats: Arc<RecordStats>,
    sink: RecordSink,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Recordings {
    /// Starts the writer thread for `dir` (created when the first file is). Writer
    /// failures come out of the returned receiver, for the engine to stop the room's
    /// recording.
    pub(crate) fn start(
        dir: PathBuf,
    ) -> std::io::Result<(Recordings, mpsc::UnboundedReceiver<Failure>)> {
        let (tx, rx) = sync_channel(QUEUE);
        let (ctl, ctl_rx) = channel();
        let (fail_tx, fail_rx) = mpsc::unbounded_channel();
        let stats = Arc::new(RecordStats::default());
        let w = writer::Writer::new(dir.clone(), stats.clone(), fail_tx);
        let thread = std::thread::Builder::new()
            .name("recorder".into())
            .spawn(move || w.run(rx, ctl_rx))?;
        let sink = RecordSink {
            tx,
            ctl,
            stats: stats.clone(),
        };
        Ok((
            Recordings {
                stats,
                sink,
                thread: Some(thread),
            },
            fail_rx,
        ))
    }

    /// What the shards send frames with.
    pub(crate) fn sink(&self) -> RecordSink {
        self.sink.clone()
    }

    /// Waits (up to `limit`) for the writer to finish every file it has open and
    /// end. Called at shutdown, after the engine stopped the rooms' recordings.
    pub(crate) async fn finish(mut self, limit: Duration) {
        let Some(thread) = self.thread.take() else {
            return;
        };
        // Behind the files the shards closed (the engine stopped the recordings
        // first); waits for room in the queue, which the writer is emptying.
        let tx = self.sink.ctl.clone();
        let joined = tokio::task::spawn_blocking(move || {
            let _ = tx.send(Envelope {
                room: String::new(),
                msg: WriterMsg::Shutdown,
            });
            thread.join()
        });
        if tokio::time::timeout(limit, joined).await.is_err() {
            tracing::warn!("recorder: files still being finished at shutdown");
        }
    }
}

/// `ROOM-PARTICIPANT[-screen]-STARTTIME.webm`, with only characters that are safe in
/// a file name on every system (others become `_`).
pub(crate) fn file_name(room: &str, participant: &str, screen: bool, start: &str) -> String {
    let clean = |s: &str| -> String {
        let c: String = s
            .chars()
            .take(40)
            .map(|c| {
                if c.is_alphanumeric() || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        if c.is_empty() {
            "_".to_string()
        } else {
            c
        }
    };
    let screen = if screen { "-screen" } else { "" };
    format!(
        "{}-{}{screen}-{start}.webm",
        clean(room),
        clean(participant)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_are_sanitised() {
        assert_eq!(
            file_name("maths", "Ana", false, "20260101-101500"),
            "maths-Ana-20260101-101500.webm"
        );
        assert_eq!(
            file_name("../etc", "a/b c.d", true, "T"),
            "___etc-a_b_c_d-screen-T.webm"
        );
        assert_eq!(file_name("", "李雷", false, "T"), "_-李雷-T.webm");
    }
}

//! A participant's tally of what arrived, per received track: what every user wants
//! to know first (did media come, was it intact, were there keyframes) without keeping
//! its own books.

use std::collections::HashMap;

use str0m::media::{MediaKind, Mid};

/// One track's counts.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct TrackTally {
    pub kind: Option<MediaKind>,
    /// RTP packets (RTP mode).
    pub packets: u64,
    /// Frames (frame mode).
    pub frames: u64,
    /// Packets or frames whose payload checked.
    pub intact: u64,
    /// Packets or frames whose payload did not check.
    pub corrupt: u64,
    /// Intact video packets or frames that start a keyframe.
    pub keyframes: u64,
}

/// Counts by track.
#[derive(Debug, Default, Clone)]
pub struct Received {
    tracks: HashMap<Mid, TrackTally>,
}

impl Received {
    /// Records one packet (`frame` false) or frame on `mid`.
    pub(crate) fn record(
        &mut self,
        mid: Mid,
        kind: MediaKind,
        frame: bool,
        intact: bool,
        keyframe: bool,
    ) {
        let t = self.tracks.entry(mid).or_default();
        t.kind = Some(kind);
        if frame {
            t.frames += 1;
        } else {
            t.packets += 1;
        }
        if intact {
            t.intact += 1;
            t.keyframes += u64::from(keyframe);
        } else {
            t.corrupt += 1;
        }
    }

    pub fn track(&self, mid: Mid) -> Option<&TrackTally> {
        self.tracks.get(&mid)
    }

    pub fn tracks(&self) -> impl Iterator<Item = (&Mid, &TrackTally)> {
        self.tracks.iter()
    }

    /// Tracks of `kind` that delivered at least one intact payload.
    pub fn intact_tracks(&self, kind: MediaKind) -> usize {
        self.tracks
            .values()
            .filter(|t| t.kind == Some(kind) && t.intact > 0)
            .count()
    }

    /// Payloads that did not check, over every track.
    pub fn corrupt(&self) -> u64 {
        self.tracks.values().map(|t| t.corrupt).sum()
    }
}

//! Real media for the test participants, where a test needs what a decoder accepts
//! (the recording tests decode the files): a VP8 clip (one keyframe a second) and an
//! Opus tone (20 ms frames), made with Debian's `ffmpeg` and read back frame by
//! frame from their IVF and Ogg files.

use std::path::Path;
use std::process::Command;

/// Frames to send, looped.
#[derive(Debug, Clone)]
pub struct Clip {
    /// VP8 frames (keyframe, data); the first is a keyframe.
    pub video: Vec<(bool, Vec<u8>)>,
    /// Opus packets of 20 ms.
    pub audio: Vec<Vec<u8>>,
}

/// Whether `tool` runs here.
pub fn have(tool: &str) -> bool {
    Command::new(tool)
        .arg("-version")
        .output()
        .is_ok_and(|o| o.status.success())
}

impl Clip {
    /// Makes the clip in `dir`; `None` when ffmpeg is missing.
    pub fn make(dir: &Path) -> Option<Clip> {
        if !have("ffmpeg") {
            return None;
        }
        let ivf = dir.join("clip.ivf");
        let ogg = dir.join("tone.ogg");
        let run = |args: &[&str]| {
            let st = Command::new("ffmpeg")
                .args(args)
                .status()
                .expect("ffmpeg runs");
            assert!(st.success(), "ffmpeg {args:?}");
        };
        run(&[
            "-v",
            "error",
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=320x240:rate=30",
            "-t",
            "4",
            "-c:v",
            "libvpx",
            "-b:v",
            "400k",
            "-g",
            "30",
            "-keyint_min",
            "30",
            "-auto-alt-ref",
            "0",
            "-lag-in-frames",
            "0",
            "-deadline",
            "realtime",
            "-cpu-used",
            "8",
            "-y",
            ivf.to_str()?,
        ]);
        run(&[
            "-v",
            "error",
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440:sample_rate=48000",
            "-t",
            "4",
            "-c:a",
            "libopus",
            "-b:a",
            "32k",
            "-frame_duration",
            "20",
            "-ac",
            "1",
            "-y",
            ogg.to_str()?,
        ]);
        let video = ivf_frames(&std::fs::read(ivf).ok()?);
        let audio = ogg_packets(&std::fs::read(ogg).ok()?)
            .into_iter()
            .skip(2) // OpusHead, OpusTags
            .collect();
        Some(Clip { video, audio })
    }
}

/// The frames of an IVF file.
fn ivf_frames(b: &[u8]) -> Vec<(bool, Vec<u8>)> {
    let mut out = Vec::new();
    let mut i = 32;
    while i + 12 <= b.len() {
        let n = u32::from_le_bytes(b[i..i + 4].try_into().unwrap()) as usize;
        let Some(f) = b.get(i + 12..i + 12 + n) else {
            break;
        };
        out.push((f[0] & 1 == 0, f.to_vec()));
        i += 12 + n;
    }
    out
}

/// The packets of an Ogg stream (one logical stream).
fn ogg_packets(b: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut packet = Vec::new();
    let mut i = 0;
    while i + 27 <= b.len() && &b[i..i + 4] == b"OggS" {
        let segments = b[i + 26] as usize;
        let table = &b[i + 27..i + 27 + segments];
        let mut at = i + 27 + segments;
        for &len in table {
            packet.extend_from_slice(&b[at..at + len as usize]);
            at += len as usize;
            if len < 255 {
                out.push(std::mem::take(&mut packet));
            }
        }
        i = at;
    }
    out
}

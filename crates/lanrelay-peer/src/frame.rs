//! Tagged whole frames for frame mode, where str0m packetizes what is written and
//! reassembles what arrives: a VP8 frame header (keyframe bit as asked), then the
//! sender's tag, a counter, and a pattern derived from both, so the receiver can
//! attribute every frame to its sender and check every byte.

use str0m::media::MediaKind;

/// Size of a video frame: several packets, so reassembly is exercised.
pub const VIDEO_FRAME_BYTES: usize = 3000;
/// Size of an audio frame.
pub const AUDIO_FRAME_BYTES: usize = 80;

/// A frame of `kind` from the sender tagged `tag`.
pub fn make(kind: MediaKind, tag: &str, counter: u32, keyframe: bool) -> Vec<u8> {
    let size = if kind == MediaKind::Video {
        VIDEO_FRAME_BYTES
    } else {
        AUDIO_FRAME_BYTES
    };
    let mut f = Vec::with_capacity(size);
    if kind == MediaKind::Video {
        // VP8 payload header: bit 0 clear = key frame; keyframes carry the start code.
        f.extend_from_slice(&[
            if keyframe { 0x10 } else { 0x11 },
            0x02,
            0x00,
            0x9d,
            0x01,
            0x2a,
        ]);
    }
    f.push(tag.len() as u8);
    f.extend_from_slice(tag.as_bytes());
    f.extend_from_slice(&counter.to_be_bytes());
    let seed = counter as usize + tag.len();
    while f.len() < size {
        f.push(((f.len() + seed) % 251) as u8);
    }
    f
}

/// Parses a frame made by [`make`]: the sender's tag and counter, `None` when any
/// byte is off.
pub fn check(kind: MediaKind, data: &[u8]) -> Option<(String, u32)> {
    let body = if kind == MediaKind::Video {
        data.get(6..)?
    } else {
        data
    };
    let n = *body.first()? as usize;
    let tag = std::str::from_utf8(body.get(1..1 + n)?).ok()?.to_string();
    let counter = u32::from_be_bytes(body.get(1 + n..5 + n)?.try_into().ok()?);
    (make(kind, &tag, counter, is_keyframe(kind, data)) == data).then_some((tag, counter))
}

/// Whether a frame made by [`make`] is a video keyframe.
pub fn is_keyframe(kind: MediaKind, data: &[u8]) -> bool {
    kind == MediaKind::Video && data.first() == Some(&0x10)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_corruption() {
        let f = make(MediaKind::Video, "alice", 7, true);
        assert_eq!(f.len(), VIDEO_FRAME_BYTES);
        assert!(is_keyframe(MediaKind::Video, &f));
        assert_eq!(check(MediaKind::Video, &f), Some(("alice".into(), 7)));
        let mut bad = f.clone();
        bad[100] ^= 1;
        assert_eq!(check(MediaKind::Video, &bad), None);
        let a = make(MediaKind::Audio, "bob", 1, false);
        assert_eq!(check(MediaKind::Audio, &a), Some(("bob".into(), 1)));
        assert_eq!(check(MediaKind::Audio, &a[..3]), None);
    }
}

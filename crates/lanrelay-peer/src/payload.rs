//! Synthetic media payloads: valid VP8 RTP payloads (RFC 7741 descriptor with a 15-bit
//! picture id, a key frame or inter frame header at the start of each frame) and
//! Opus-sized audio, each ending in a *stamp* that the receiver checks.
//!
//! The stamp (last [`STAMP_LEN`] bytes) carries the sender's stream (audio, or which
//! video layer), its packet number on that stream and its wall-clock send time in
//! nanoseconds (same machine, same clock), followed by a checksum and a magic word.
//! The checksum covers every byte before it except the VP8 payload descriptor, which a
//! simulcast forwarder may legitimately rewrite (Janus renumbers picture ids when it
//! switches layers); the stamp says how many leading bytes it skips. The filler bytes
//! depend on the packet number, so any other changed byte fails the checksum.

/// Bytes at the end of every payload: stream (1), bytes skipped by the checksum (1),
/// packet number (4), send time (8), checksum (4), magic (4).
pub const STAMP_LEN: usize = 22;
const MAGIC: [u8; 4] = *b"LRLD";

/// Largest RTP payload the generator writes, so SRTP packets stay under 1200 bytes.
pub const MAX_PAYLOAD: usize = 1100;

/// What the receiver learns from a valid stamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    /// Which of the sender's streams: 0 audio, 1.. video (simulcast layers).
    pub stream: u8,
    /// The sender's packet number on this stream (from 0, no gaps).
    pub number: u32,
    /// Send time, wall-clock nanoseconds since 1970.
    pub sent_ns: u64,
}

/// Where a video packet sits in its frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Vp8Packet {
    pub picture_id: u16,
    /// First packet of the frame (S bit, frame header follows the descriptor).
    pub first: bool,
    pub keyframe: bool,
    pub width: u16,
    pub height: u16,
}

/// A VP8 RTP payload of `size` bytes (at least the headers plus the stamp).
pub fn vp8(p: Vp8Packet, size: usize, stamp: Stamp) -> Vec<u8> {
    let mut out = Vec::with_capacity(size.max(32));
    // Descriptor: X=1, S as given, PID=0; then I=1 and a 15-bit picture id (M=1).
    out.push(0x80 | if p.first { 0x10 } else { 0x00 });
    out.push(0x80);
    out.push(0x80 | ((p.picture_id >> 8) as u8 & 0x7f));
    out.push(p.picture_id as u8);
    let descriptor = out.len();
    if p.first {
        // Frame tag (RFC 6386 9.1): bit 0 = 0 for a key frame, version 0, show_frame 1,
        // then a first partition size we do not honour (no decoder reads this).
        let tag: u32 = (if p.keyframe { 0 } else { 1 }) | (1 << 4) | (100 << 5);
        out.extend_from_slice(&tag.to_le_bytes()[..3]);
        if p.keyframe {
            out.extend_from_slice(&[0x9d, 0x01, 0x2a]);
            out.extend_from_slice(&p.width.to_le_bytes());
            out.extend_from_slice(&p.height.to_le_bytes());
        }
    }
    finish(out, size, stamp, descriptor)
}

/// The TOC byte of the generator's Opus payloads (CELT fullband 20 ms, one frame); a
/// VP8 descriptor never starts with it (its X bit is always set here).
pub const OPUS_TOC: u8 = 0x78;

/// An Opus-sized audio payload: a TOC byte, filler, stamp.
pub fn opus(size: usize, stamp: Stamp) -> Vec<u8> {
    let out = vec![OPUS_TOC];
    finish(out, size, stamp, 0)
}

fn finish(mut out: Vec<u8>, size: usize, stamp: Stamp, skip: usize) -> Vec<u8> {
    let size = size.max(out.len() + STAMP_LEN);
    let seed = stamp.number as usize;
    while out.len() < size - STAMP_LEN {
        out.push(((out.len() * 7 + seed) % 251) as u8);
    }
    out.push(stamp.stream);
    out.push(skip as u8);
    out.extend_from_slice(&stamp.number.to_be_bytes());
    out.extend_from_slice(&stamp.sent_ns.to_be_bytes());
    let sum = fnv1a(&out[skip..]);
    out.extend_from_slice(&sum.to_be_bytes());
    out.extend_from_slice(&MAGIC);
    out
}

/// Whether a payload made by [`vp8`] starts a keyframe (the descriptor's S bit, then
/// the frame tag's key frame bit); Opus payloads never do.
pub fn starts_keyframe(payload: &[u8]) -> bool {
    match payload {
        [d, _, _, _, tag, ..] => d & 0x90 == 0x90 && tag & 1 == 0,
        _ => false,
    }
}

/// Checks a payload's stamp: `None` when it is missing or any byte before it changed.
pub fn check(payload: &[u8]) -> Option<Stamp> {
    let n = payload.len();
    if n < STAMP_LEN || payload[n - 4..] != MAGIC {
        return None;
    }
    let stream = payload[n - 22];
    let skip = payload[n - 21] as usize;
    let body = payload.get(skip..n - 8)?;
    let sum = u32::from_be_bytes(payload[n - 8..n - 4].try_into().ok()?);
    if fnv1a(body) != sum {
        return None;
    }
    let number = u32::from_be_bytes(payload[n - 20..n - 16].try_into().ok()?);
    let sent_ns = u64::from_be_bytes(payload[n - 16..n - 8].try_into().ok()?);
    Some(Stamp {
        stream,
        number,
        sent_ns,
    })
}

/// FNV-1a, 32 bits: cheap and enough to catch changed bytes (not an adversary).
fn fnv1a(data: &[u8]) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in data {
        h ^= *b as u32;
        h = h.wrapping_mul(0x0100_0193);
    }
    h
}

/// Splits a frame of `bytes` into packet payload sizes of at most [`MAX_PAYLOAD`],
/// as even as possible (like libwebrtc's VP8 packetizer).
pub fn split_frame(bytes: usize) -> Vec<usize> {
    let bytes = bytes.max(STAMP_LEN + 16);
    let count = bytes.div_ceil(MAX_PAYLOAD);
    let base = bytes / count;
    let extra = bytes % count;
    (0..count).map(|i| base + usize::from(i < extra)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamp_round_trip_and_corruption() {
        let s = Stamp {
            stream: 0,
            number: 42,
            sent_ns: 123_456_789,
        };
        let p = opus(120, s);
        assert_eq!(p.len(), 120);
        assert_eq!(check(&p), Some(s));
        let mut bad = p.clone();
        bad[10] ^= 1;
        assert_eq!(check(&bad), None);
        assert_eq!(check(&p[..10]), None);
    }

    #[test]
    fn vp8_stamps_survive_a_renumbered_descriptor() {
        let s = Stamp {
            stream: 2,
            number: 1,
            sent_ns: 5,
        };
        let p = Vp8Packet {
            picture_id: 300,
            first: true,
            keyframe: true,
            width: 1280,
            height: 720,
        };
        let key = vp8(p, 1000, s);
        assert_eq!(key.len(), 1000);
        assert!(starts_keyframe(&key));
        assert!(!starts_keyframe(&vp8(
            Vp8Packet {
                keyframe: false,
                ..p
            },
            1000,
            s
        )));
        assert!(!starts_keyframe(&vp8(
            Vp8Packet { first: false, ..p },
            1000,
            s
        )));
        assert!(!starts_keyframe(&opus(100, s)));
        assert_eq!(check(&key), Some(s));
        // A forwarder may renumber the picture id; the stamp still checks.
        let mut renumbered = key.clone();
        renumbered[3] ^= 0x55;
        assert_eq!(check(&renumbered), Some(s));
        renumbered[4] ^= 1;
        assert_eq!(check(&renumbered), None);
    }

    #[test]
    fn frames_split_evenly() {
        assert_eq!(split_frame(2200), vec![1100, 1100]);
        assert_eq!(split_frame(2201), vec![734, 734, 733]);
        assert_eq!(split_frame(10).len(), 1);
        assert!(split_frame(10_417).iter().all(|s| *s <= MAX_PAYLOAD));
    }
}

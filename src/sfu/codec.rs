//! Codec knowledge the forwarder needs from RTP payloads: does this packet start a
//! keyframe? (VP8: RFC 7741; H.264: RFC 6184; VP9: RFC 9628.) A new receiver must not
//! get video until a keyframe begins, or its decoder shows garbage.
#![warn(clippy::disallowed_methods)] // Sans-IO: see clippy.toml

use str0m::format::Codec;

/// Whether `payload` (an RTP payload without header) is the first packet of a keyframe.
pub fn starts_keyframe(codec: Codec, payload: &[u8]) -> bool {
    match codec {
        Codec::Vp8 => vp8_starts_keyframe(payload),
        Codec::H264 => h264_starts_keyframe(payload),
        Codec::Vp9 => vp9_starts_keyframe(payload),
        // Unknown codecs: forward from the first packet, the receiver will ask for a keyframe.
        _ => true,
    }
}

fn vp8_starts_keyframe(p: &[u8]) -> bool {
    vp8_header_offset(p).is_some_and(|i| p.get(i).is_some_and(|h| h & 0x01 == 0))
}

/// The frame width of a VP8 keyframe's first packet (RFC 6386 9.1), if it is one.
pub fn vp8_keyframe_width(p: &[u8]) -> Option<u32> {
    let i = vp8_header_offset(p)?;
    let h = p.get(i..i + 8)?;
    if h[0] & 0x01 != 0 || h[3..6] != [0x9d, 0x01, 0x2a] {
        return None;
    }
    Some(u16::from_le_bytes([h[6], h[7]]) as u32 & 0x3fff)
}

/// Where the VP8 payload header starts, for the first packet of a frame (S=1, PID=0).
fn vp8_header_offset(p: &[u8]) -> Option<usize> {
    let b0 = *p.first()?;
    let extended = b0 & 0x80 != 0;
    let start = b0 & 0x10 != 0;
    let partition = b0 & 0x07;
    if !start || partition != 0 {
        return None;
    }
    let mut i = 1;
    if extended {
        let x = *p.get(1)?;
        i = 2;
        if x & 0x80 != 0 {
            // PictureID: one or two bytes.
            let pid = *p.get(i)?;
            i += if pid & 0x80 != 0 { 2 } else { 1 };
        }
        if x & 0x40 != 0 {
            i += 1; // TL0PICIDX
        }
        if x & 0x30 != 0 {
            i += 1; // TID/Y/KEYIDX
        }
    }
    Some(i)
}

/// Whether a reassembled VP8 frame is at least as long as its frame tag says its first
/// partition is (RFC 6386 9.1): a frame missing packets at its end fails this, the first
/// check a decoder makes.
pub fn vp8_frame_holds_first_partition(frame: &[u8]) -> bool {
    let Some(tag) = frame.get(..3) else {
        return false;
    };
    let keyframe = tag[0] & 0x01 == 0;
    let first_partition = u32::from_le_bytes([tag[0], tag[1], tag[2], 0]) >> 5;
    let header = if keyframe { 10 } else { 3 };
    frame.len() >= header + first_partition as usize
}

fn h264_starts_keyframe(p: &[u8]) -> bool {
    let Some(&b0) = p.first() else { return false };
    match b0 & 0x1F {
        // IDR slice or SPS on its own.
        5 | 7 => true,
        // STAP-A: look for SPS or IDR among the aggregated units.
        24 => {
            let mut rest = &p[1..];
            while rest.len() > 2 {
                let len = u16::from_be_bytes([rest[0], rest[1]]) as usize;
                let Some(nal) = rest.get(2..2 + len) else {
                    return false;
                };
                if matches!(nal.first().map(|b| b & 0x1F), Some(5 | 7)) {
                    return true;
                }
                rest = &rest[2 + len..];
            }
            false
        }
        // FU-A: the start fragment of an IDR slice.
        28 => p.get(1).is_some_and(|fu| fu & 0x80 != 0 && fu & 0x1F == 5),
        _ => false,
    }
}

fn vp9_starts_keyframe(p: &[u8]) -> bool {
    // Descriptor first byte: I P L F B E V Z. Start of frame (B) and not inter-predicted (P).
    p.first().is_some_and(|b| b & 0x08 != 0 && b & 0x40 == 0)
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // a test's fake clock starts anywhere
mod tests {
    use super::*;

    #[test]
    fn vp8_keyframe_with_and_without_extension() {
        // S=1, PID=0, no extension, then a key frame header (bit0 = 0).
        assert!(starts_keyframe(Codec::Vp8, &[0x10, 0x50, 0x01, 0x00]));
        // Same but an interframe.
        assert!(!starts_keyframe(Codec::Vp8, &[0x10, 0x51, 0x01, 0x00]));
        // Extended: X=1, I=1 with 15-bit picture id, then key frame header.
        assert!(starts_keyframe(
            Codec::Vp8,
            &[0x90, 0x80, 0x81, 0x23, 0x50, 0x01]
        ));
        // Not a start packet.
        assert!(!starts_keyframe(Codec::Vp8, &[0x00, 0x50]));
        assert!(!starts_keyframe(Codec::Vp8, &[]));
        assert!(!starts_keyframe(Codec::Vp8, &[0x90, 0x80]));
    }

    #[test]
    fn a_vp8_frame_shorter_than_its_first_partition_is_caught() {
        // Inter frame tag: show_frame, first partition of 100 bytes (100 << 5 | 0x10 | 1).
        let tag = (100u32 << 5 | 0x10 | 0x01).to_le_bytes();
        let mut frame = tag[..3].to_vec();
        frame.resize(3 + 99, 0);
        assert!(!vp8_frame_holds_first_partition(&frame));
        frame.push(0);
        assert!(vp8_frame_holds_first_partition(&frame));
        // A keyframe's header is 10 bytes before its first partition.
        let tag = (20u32 << 5 | 0x10).to_le_bytes();
        let mut key = tag[..3].to_vec();
        key.extend_from_slice(&[0x9d, 0x01, 0x2a, 0x80, 0x02, 0x68, 0x01]);
        key.resize(10 + 19, 0);
        assert!(!vp8_frame_holds_first_partition(&key));
        key.push(0);
        assert!(vp8_frame_holds_first_partition(&key));
        assert!(!vp8_frame_holds_first_partition(&[0x01, 0x00]));
    }

    #[test]
    fn vp8_keyframe_width_is_read() {
        // S=1 PID=0, frame tag (key frame), start code, width 640 | scale bits, height 360.
        let p = [
            0x10, 0x50, 0x01, 0x00, 0x9d, 0x01, 0x2a, 0x80, 0x02, 0x68, 0x01,
        ];
        assert_eq!(vp8_keyframe_width(&p), Some(640));
        assert_eq!(vp8_keyframe_width(&[0x10, 0x51, 0x01, 0x00]), None);
        assert_eq!(vp8_keyframe_width(&p[..6]), None);
    }

    #[test]
    fn h264_keyframes() {
        assert!(starts_keyframe(Codec::H264, &[0x65, 0x88]));
        assert!(!starts_keyframe(Codec::H264, &[0x41, 0x9a]));
        // STAP-A with SPS.
        assert!(starts_keyframe(
            Codec::H264,
            &[0x78, 0x00, 0x02, 0x67, 0x42, 0x00, 0x01, 0x68]
        ));
        // FU-A start of IDR, and a middle fragment.
        assert!(starts_keyframe(Codec::H264, &[0x7c, 0x85, 0x00]));
        assert!(!starts_keyframe(Codec::H264, &[0x7c, 0x05, 0x00]));
        // Truncated STAP-A.
        assert!(!starts_keyframe(Codec::H264, &[0x78, 0x00, 0x09, 0x67]));
    }

    #[test]
    fn vp9_keyframes() {
        assert!(starts_keyframe(Codec::Vp9, &[0x08]));
        assert!(!starts_keyframe(Codec::Vp9, &[0x48]));
    }
}

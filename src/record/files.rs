//! The recordings folder as `/recordings` shows it: each `.webm` file with its size
//! and duration (read from the file's segment information; a file that was never
//! finished, after a crash, has none), and the one safe way to find a file by the
//! name a request gives (no path, no traversal).

use std::io::Read;
use std::path::{Path, PathBuf};

use serde::Serialize;

/// One recording, as listed.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub(crate) struct Listed {
    pub(crate) name: String,
    pub(crate) bytes: u64,
    /// Seconds; `None` while it is being written, or if it never was finished.
    pub(crate) duration: Option<f64>,
    /// Modified, seconds since 1970.
    pub(crate) modified: u64,
    /// Where to download or play it.
    pub(crate) url: String,
}

/// The `.webm` files of `dir`, newest first (an absent folder lists nothing); those
/// in `writing` are being written (no duration yet).
pub(crate) fn list(dir: &Path, writing: &[String]) -> Vec<Listed> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<Listed> = entries
        .filter_map(Result::ok)
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            if !is_recording_name(&name) {
                return None;
            }
            let meta = e.metadata().ok()?;
            if !meta.is_file() {
                return None;
            }
            let modified = meta
                .modified()
                .ok()
                .and_then(|m| m.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_secs());
            let being_written = writing.contains(&name);
            Some(Listed {
                duration: if being_written {
                    None
                } else {
                    duration(&e.path())
                },
                url: format!("/recordings/{}", encode(&name)),
                name,
                bytes: meta.len(),
                modified,
            })
        })
        .collect();
    out.sort_by(|a, b| b.modified.cmp(&a.modified).then(a.name.cmp(&b.name)));
    out
}

/// The path of recording `name` in `dir`, if `name` is a plain recording file name
/// (no separator, no `..`, ends in `.webm`) and the file exists.
pub(crate) fn find(dir: &Path, name: &str) -> Option<PathBuf> {
    if !is_recording_name(name) {
        return None;
    }
    let path = dir.join(name);
    path.is_file().then_some(path)
}

fn is_recording_name(name: &str) -> bool {
    name.ends_with(".webm")
        && !name.starts_with('.')
        && !name.contains(['/', '\\', '\0'])
        && !name.contains("..")
}

/// Percent-encodes what is not safe in a URL path segment.
fn encode(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The duration in a WebM file's segment information, in seconds; `None` until the
/// file is finished.
pub(crate) fn duration(path: &Path) -> Option<f64> {
    let mut head = Vec::new();
    std::fs::File::open(path)
        .ok()?
        .take(64 * 1024)
        .read_to_end(&mut head)
        .ok()?;
    webm_duration(&head)
}

/// EBML IDs: Segment, Info, TimecodeScale, Duration.
const SEGMENT: u32 = 0x1853_8067;
const INFO: u32 = 0x1549_A966;
const TIMECODE_SCALE: u32 = 0x2A_D7B1;
const DURATION: u32 = 0x4489;

/// Finds Segment → Info → Duration (× TimecodeScale) in the start of a file.
fn webm_duration(b: &[u8]) -> Option<f64> {
    let mut i = 0;
    // The EBML header, then the segment (whose size may be "unknown").
    while i < b.len() {
        let (id, n) = read_id(&b[i..])?;
        let (size, m) = read_size(&b[i + n..])?;
        i += n + m;
        if id == SEGMENT {
            break;
        }
        i += usize::try_from(size?).ok()?;
    }
    // The segment's children, up to its Info.
    while i < b.len() {
        let (id, n) = read_id(&b[i..])?;
        let (size, m) = read_size(&b[i + n..])?;
        let size = usize::try_from(size?).ok()?;
        let body = b.get(i + n + m..i + n + m + size)?;
        if id == INFO {
            return info_duration(body);
        }
        i += n + m + size;
    }
    None
}

fn info_duration(mut b: &[u8]) -> Option<f64> {
    let mut scale = 1_000_000.0;
    let mut duration = None;
    while !b.is_empty() {
        let (id, n) = read_id(b)?;
        let (size, m) = read_size(&b[n..])?;
        let size = usize::try_from(size?).ok()?;
        let v = b.get(n + m..n + m + size)?;
        match id {
            TIMECODE_SCALE => scale = v.iter().fold(0u64, |a, x| a << 8 | *x as u64) as f64,
            DURATION if size == 8 => duration = Some(f64::from_be_bytes(v.try_into().ok()?)),
            DURATION if size == 4 => duration = Some(f32::from_be_bytes(v.try_into().ok()?) as f64),
            _ => {}
        }
        b = &b[n + m + size..];
    }
    // libwebm writes 0 until the file is finished.
    duration.filter(|d| *d > 0.0).map(|d| d * scale / 1e9)
}

/// An element ID (its marker bits kept) and its length.
fn read_id(b: &[u8]) -> Option<(u32, usize)> {
    let first = *b.first()?;
    let len = first.leading_zeros() as usize + 1;
    if len > 4 {
        return None;
    }
    let bytes = b.get(..len)?;
    Some((bytes.iter().fold(0u32, |a, x| a << 8 | *x as u32), len))
}

/// A size (`None` inside: unknown) and its length.
fn read_size(b: &[u8]) -> Option<(Option<u64>, usize)> {
    let first = *b.first()?;
    let len = first.leading_zeros() as usize + 1;
    if len > 8 {
        return None;
    }
    let bytes = b.get(..len)?;
    let mask = if len == 8 { 0 } else { 0xffu8 >> len };
    let mut v = (bytes[0] & mask) as u64;
    for x in &bytes[1..] {
        v = v << 8 | *x as u64;
    }
    let unknown = v == (1u64 << (7 * len)) - 1;
    Some(((!unknown).then_some(v), len))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_webm_names_are_found() {
        let dir = std::env::temp_dir().join(format!("lanrelay-files-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("a-b-1.webm"), b"x").unwrap();
        assert!(find(&dir, "a-b-1.webm").is_some());
        for bad in [
            "../a-b-1.webm",
            "x/../a-b-1.webm",
            "a-b-1.mp4",
            ".webm",
            "nope.webm",
        ] {
            assert!(find(&dir, bad).is_none(), "{bad}");
        }
        assert_eq!(list(&dir, &["a-b-1.webm".into()])[0].duration, None);
        let listed = list(&dir, &[]);
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].url, "/recordings/a-b-1.webm");
        assert_eq!(listed[0].duration, None);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_duration_is_read_from_the_segment_info() {
        // EBML header (empty), Segment of unknown size, Info: TimecodeScale 1 ms,
        // Duration 5250.0 (f64).
        let mut b = vec![0x1A, 0x45, 0xDF, 0xA3, 0x80];
        b.extend_from_slice(&[
            0x18, 0x53, 0x80, 0x67, 0x01, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
        ]);
        let mut info = vec![0x2A, 0xD7, 0xB1, 0x83, 0x0F, 0x42, 0x40];
        info.extend_from_slice(&[0x44, 0x89, 0x88]);
        info.extend_from_slice(&5250.0f64.to_be_bytes());
        b.extend_from_slice(&[0x15, 0x49, 0xA9, 0x66, 0x80 | info.len() as u8]);
        b.extend_from_slice(&info);
        assert_eq!(webm_duration(&b), Some(5.25));
        assert_eq!(webm_duration(&b[..20]), None);
        assert_eq!(encode("a b%.webm"), "a%20b%25.webm");
    }
}

//! Property-based fuzzing of every parser fed by the network: signaling messages
//! (`ClientMsg` JSON, room and participant names), WHIP/WHEP bodies (SDP offers, parsed
//! by str0m), the datagram classifier and STUN ufrag extraction, the VP8/H.264/VP9
//! keyframe parsers and the sequence-number and VP8 picture-id rewriters.
//!
//! Each property runs over arbitrary bytes or strings and over near-valid inputs (a
//! well-formed message with mutated lengths or fields), and asserts no panic plus an
//! invariant. `cargo test` runs a bounded number of cases (the whole file in a few
//! seconds); a longer run drives more with the environment variable:
//!
//! ```sh
//! PROPTEST_CASES=100000 cargo test --release --test fuzz
//! ```
//!
//! Failures proptest finds are written to `tests/fuzz.proptest-regressions` and replayed
//! first on every run; crashers worth naming are also kept as plain tests at the bottom.
#![allow(clippy::disallowed_methods)] // tests read the clock

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use lanrelay::sfu::codec::{starts_keyframe, vp8_keyframe_width};
use lanrelay::sfu::demux::{classify, stun_local_ufrag, Kind};
use lanrelay::sfu::rewrite::{Rewriter, Vp8Rewriter};
use lanrelay::sfu::shard::{ufrag_worker, MAX_WORKERS};
use lanrelay::signaling::protocol::{
    check_name, valid_name, ClientMsg, DirectSignal, HostAction, Mode, Path, Quality, Role,
    MAX_NAME_CHARS,
};
use proptest::prelude::*;
use proptest::test_runner::Config as ProptestConfig;
use serde_json::Value;
use str0m::change::SdpOffer;
use str0m::format::Codec;
use str0m::media::{Direction, MediaKind};
use str0m::Candidate;
use str0m::Rtc;

/// `default` cases, or `PROPTEST_CASES` when set (a hard-coded count would override it).
fn cases(default: u32) -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default);
    ProptestConfig {
        cases,
        ..ProptestConfig::default()
    }
}

fn bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(any::<u8>(), 0..max)
}

/// Whether `part` lies inside `whole` (a borrowed sub-slice, not a copy).
fn is_within(part: &str, whole: &[u8]) -> bool {
    let start = whole.as_ptr() as usize;
    let p = part.as_ptr() as usize;
    p >= start && p + part.len() <= start + whole.len()
}

// ---------------------------------------------------------------------------------
// Datagrams: classifier and STUN
// ---------------------------------------------------------------------------------

const MAGIC_COOKIE: [u8; 4] = [0x21, 0x12, 0xA4, 0x42];

/// One STUN attribute as generated: its type, value, and how far its declared length
/// is off the real one.
#[derive(Debug, Clone)]
struct Attr {
    typ: u16,
    value: Vec<u8>,
    len_delta: i32,
}

fn attr() -> impl Strategy<Value = Attr> {
    let typ = prop_oneof![
        Just(0x0006u16), // USERNAME
        Just(0x0008),    // MESSAGE-INTEGRITY
        Just(0x8028),    // FINGERPRINT
        Just(0x0024),    // PRIORITY
        Just(0x8022),    // SOFTWARE
        any::<u16>(),
    ];
    let value = prop_oneof![
        bytes(40),
        "[a-zA-Z0-9+/]{0,12}:[a-zA-Z0-9+/]{0,12}".prop_map(String::into_bytes),
        ".{0,10}".prop_map(String::into_bytes),
    ];
    let len_delta = prop_oneof![4 => Just(0), 1 => -8..8i32, 1 => Just(0xffff)];
    (typ, value, len_delta).prop_map(|(typ, value, len_delta)| Attr {
        typ,
        value,
        len_delta,
    })
}

/// A STUN message: a valid header (or one with a mutated first byte) and the
/// attributes, each padded to four bytes, with the declared lengths mutated.
fn stun_message(first: u8, attrs: &[Attr], body_delta: i32, truncate: Option<usize>) -> Vec<u8> {
    let mut body = Vec::new();
    for a in attrs {
        let len = (a.value.len() as i32 + a.len_delta).clamp(0, 0xffff) as u16;
        body.extend_from_slice(&a.typ.to_be_bytes());
        body.extend_from_slice(&len.to_be_bytes());
        body.extend_from_slice(&a.value);
        while body.len() % 4 != 0 {
            body.push(0);
        }
    }
    let body_len = (body.len() as i32 + body_delta).clamp(0, 0xffff) as u16;
    let mut m = vec![first, 0x01];
    m.extend_from_slice(&body_len.to_be_bytes());
    m.extend_from_slice(&MAGIC_COOKIE);
    m.extend_from_slice(&[0x5a; 12]);
    m.extend_from_slice(&body);
    if let Some(n) = truncate {
        m.truncate(n);
    }
    m
}

fn check_ufrag(buf: &[u8]) -> Result<(), TestCaseError> {
    if let Some(ufrag) = stun_local_ufrag(buf) {
        prop_assert!(is_within(ufrag, buf), "not a substring of the datagram");
        prop_assert!(!ufrag.contains(':'));
        prop_assert!(buf.len() >= 20 && buf[0] & 0xC0 == 0 && buf[4..8] == MAGIC_COOKIE);
    }
    Ok(())
}

proptest! {
    #![proptest_config(cases(2000))]

    /// The classifier is total and follows RFC 7983's first-byte ranges.
    #[test]
    fn classify_any_bytes(buf in bytes(64)) {
        let kind = classify(&buf);
        let expected = match buf.first() {
            Some(0..=3) => Kind::Stun,
            Some(20..=63) => Kind::Dtls,
            Some(128..=191) => Kind::Rtp,
            _ => Kind::Other,
        };
        prop_assert_eq!(kind, expected);
    }

    /// The worker a ufrag names: its first character, when alphanumeric.
    #[test]
    fn ufrag_worker_any_string(u in prop_oneof![any::<String>(), "[ -~]{0,4}"]) {
        let w = ufrag_worker(&u);
        let alnum = u.as_bytes().first().is_some_and(u8::is_ascii_alphanumeric);
        prop_assert_eq!(w.is_some(), alnum);
        if let Some(w) = w {
            prop_assert!(w < MAX_WORKERS);
        }
    }

    /// Arbitrary datagrams: no panic; a ufrag found is a borrowed piece without ':'.
    #[test]
    fn stun_ufrag_any_bytes(buf in bytes(128)) {
        check_ufrag(&buf)?;
    }

    /// Arbitrary bytes behind a valid STUN header (its length field random too).
    #[test]
    fn stun_ufrag_valid_header_random_body(len in any::<u16>(), body in bytes(128)) {
        let mut m = vec![0x00, 0x01];
        m.extend_from_slice(&len.to_be_bytes());
        m.extend_from_slice(&MAGIC_COOKIE);
        m.extend_from_slice(&[7; 12]);
        m.extend_from_slice(&body);
        check_ufrag(&m)?;
    }

    /// Near-valid STUN messages: mutated attribute and body lengths, truncation.
    #[test]
    fn stun_ufrag_mutated_lengths(
        first in prop_oneof![Just(0u8), Just(1), any::<u8>()],
        attrs in proptest::collection::vec(attr(), 0..6),
        body_delta in prop_oneof![3 => Just(0), 1 => -12..12i32, 1 => Just(0xffff)],
        truncate in proptest::option::weighted(0.2, 0..200usize),
    ) {
        let m = stun_message(first, &attrs, body_delta, truncate);
        check_ufrag(&m)?;
    }

    /// A well-formed message whose USERNAME follows other attributes: the receiver's
    /// part is found, whatever comes before it.
    #[test]
    fn stun_ufrag_found_in_well_formed(
        before in proptest::collection::vec(attr(), 0..4),
        receiver in "[a-zA-Z0-9+/]{0,16}",
        sender in "[a-zA-Z0-9+/:]{0,16}",
        after in proptest::collection::vec(attr(), 0..3),
    ) {
        let mut attrs: Vec<Attr> = before
            .into_iter()
            .filter(|a| a.typ != 0x0006)
            .map(|a| Attr { len_delta: 0, ..a })
            .collect();
        attrs.push(Attr {
            typ: 0x0006,
            value: format!("{receiver}:{sender}").into_bytes(),
            len_delta: 0,
        });
        attrs.extend(after);
        let m = stun_message(0x00, &attrs, 0, None);
        prop_assert_eq!(classify(&m), Kind::Stun);
        prop_assert_eq!(stun_local_ufrag(&m), Some(receiver.as_str()));
    }
}

// ---------------------------------------------------------------------------------
// Codecs: keyframe detection and VP8 frame width
// ---------------------------------------------------------------------------------

fn codec() -> impl Strategy<Value = Codec> {
    prop_oneof![
        Just(Codec::Vp8),
        Just(Codec::H264),
        Just(Codec::Vp9),
        Just(Codec::Av1),
        Just(Codec::Opus),
    ]
}

/// A VP8 payload descriptor from random bits (RFC 7741 4.2), with S=1 and PID=0 so it
/// begins a frame, its optional fields laid out as its X/I/M/L/T/K bits say.
fn vp8_descriptor() -> impl Strategy<Value = Vec<u8>> {
    (any::<u8>(), any::<u8>(), any::<[u8; 4]>()).prop_map(|(b0, x, fields)| {
        let b0 = (b0 | 0x10) & !0x07;
        let mut d = vec![b0];
        if b0 & 0x80 != 0 {
            d.push(x);
            if x & 0x80 != 0 {
                d.push(fields[0]);
                if fields[0] & 0x80 != 0 {
                    d.push(fields[1]);
                }
            }
            if x & 0x40 != 0 {
                d.push(fields[2]);
            }
            if x & 0x30 != 0 {
                d.push(fields[3]);
            }
        }
        d
    })
}

/// A VP8 keyframe header (RFC 6386 9.1): frame tag, start code, width and height with
/// their scale bits.
fn vp8_key_header(tag: [u8; 3], width: u16, height: u16) -> Vec<u8> {
    let mut h = vec![tag[0] & !0x01, tag[1], tag[2], 0x9d, 0x01, 0x2a];
    h.extend_from_slice(&width.to_le_bytes());
    h.extend_from_slice(&height.to_le_bytes());
    h
}

/// An H.264 NAL unit: a header byte and a body.
fn nal() -> impl Strategy<Value = Vec<u8>> {
    (any::<u8>(), bytes(12)).prop_map(|(h, body)| {
        let mut n = vec![h];
        n.extend(body);
        n
    })
}

proptest! {
    #![proptest_config(cases(2000))]

    /// Arbitrary payloads of every codec: no panic; a VP8 width is only read from a
    /// keyframe and fits in 14 bits.
    #[test]
    fn keyframe_any_bytes(codec in codec(), p in bytes(64)) {
        let key = starts_keyframe(codec, &p);
        if let Some(w) = vp8_keyframe_width(&p) {
            prop_assert!(w < 1 << 14);
            prop_assert!(starts_keyframe(Codec::Vp8, &p));
        }
        if p.is_empty() && matches!(codec, Codec::Vp8 | Codec::H264 | Codec::Vp9) {
            prop_assert!(!key);
        }
    }

    /// Random descriptor bits in front of a keyframe header: the width is found where
    /// the descriptor ends, and the descriptor cut short is never a keyframe.
    #[test]
    fn vp8_random_descriptor_keyframe(
        d in vp8_descriptor(),
        tag in any::<[u8; 3]>(),
        width in any::<u16>(),
        height in any::<u16>(),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut p = d.clone();
        p.extend(vp8_key_header(tag, width, height));
        prop_assert!(starts_keyframe(Codec::Vp8, &p));
        prop_assert_eq!(vp8_keyframe_width(&p), Some(u32::from(width & 0x3fff)));
        // The descriptor alone, or any prefix of it.
        let short = &d[..cut.index(d.len() + 1)];
        prop_assert!(!starts_keyframe(Codec::Vp8, short));
        prop_assert_eq!(vp8_keyframe_width(short), None);
        // An interframe (tag bit 0 set) is not a keyframe.
        let mut inter = p.clone();
        inter[d.len()] |= 0x01;
        prop_assert!(!starts_keyframe(Codec::Vp8, &inter));
        prop_assert_eq!(vp8_keyframe_width(&inter), None);
    }

    /// lanrelay's VP8 detector agrees with str0m's descriptor parser on every payload
    /// str0m accepts.
    #[test]
    fn vp8_detector_agrees_with_str0m(
        p in prop_oneof![bytes(24), (vp8_descriptor(), bytes(12)).prop_map(|(mut d, t)| {
            d.extend(t);
            d
        })],
    ) {
        if let Ok(d) = str0m::rtp::Vp8Descriptor::parse(&p) {
            prop_assert_eq!(d.starts_keyframe(&p), starts_keyframe(Codec::Vp8, &p));
        }
    }

    /// STAP-A aggregates: with true lengths, a keyframe iff an SPS or IDR unit is inside;
    /// with mutated lengths or a cut, no panic.
    #[test]
    fn h264_stap_a(
        nri in 0u8..4,
        units in proptest::collection::vec(nal(), 0..5),
        len_delta in prop_oneof![3 => Just(0i32), 1 => -4..4i32, 1 => Just(0xffff)],
        cut in proptest::option::weighted(0.2, any::<prop::sample::Index>()),
    ) {
        let mut p = vec![(nri << 5) | 24];
        for (i, u) in units.iter().enumerate() {
            let delta = if i == 0 { len_delta } else { 0 };
            let len = (u.len() as i32 + delta).clamp(0, 0xffff) as u16;
            p.extend_from_slice(&len.to_be_bytes());
            p.extend_from_slice(u);
        }
        if let Some(cut) = cut {
            p.truncate(cut.index(p.len() + 1));
            let _ = starts_keyframe(Codec::H264, &p);
        } else if len_delta == 0 {
            let expected = units.iter().any(|u| matches!(u[0] & 0x1f, 5 | 7));
            prop_assert_eq!(starts_keyframe(Codec::H264, &p), expected);
        } else {
            let _ = starts_keyframe(Codec::H264, &p);
        }
    }

    /// Single NAL units and FU-A fragments follow the NAL type and the FU header.
    #[test]
    fn h264_single_and_fu_a(h in any::<u8>(), fu in any::<u8>(), rest in bytes(16)) {
        let mut p = vec![h, fu];
        p.extend(rest);
        let expected = match h & 0x1f {
            5 | 7 => true,
            24 => starts_keyframe(Codec::H264, &p), // covered by h264_stap_a
            28 => fu & 0x80 != 0 && fu & 0x1f == 5,
            _ => false,
        };
        prop_assert_eq!(starts_keyframe(Codec::H264, &p), expected);
        prop_assert_eq!(starts_keyframe(Codec::H264, &p[..1]), matches!(h & 0x1f, 5 | 7));
    }
}

// ---------------------------------------------------------------------------------
// Rewriters
// ---------------------------------------------------------------------------------

/// One packet fed to a rewriter: its source generation, how far its sequence number
/// moves from the previous packet's, its RTP timestamp, and the time that passed.
#[derive(Debug, Clone)]
struct Packet {
    generation: u32,
    seq_step: i64,
    ts: u32,
    after_ms: u64,
}

fn packets() -> impl Strategy<Value = Vec<Packet>> {
    proptest::collection::vec(
        (0u32..3, -50..200i64, any::<u32>(), 0u64..200).prop_map(
            |(generation, seq_step, ts, after_ms)| Packet {
                generation,
                seq_step,
                ts,
                after_ms,
            },
        ),
        1..60,
    )
}

proptest! {
    #![proptest_config(cases(1000))]

    /// One source with increasing incoming sequence numbers: outgoing ones strictly
    /// increase, start at `start_seq`, and keep the gaps; timestamps keep their steps.
    #[test]
    fn rewriter_one_source_increasing(
        start_seq in any::<u16>(),
        first in 0u64..1 << 48,
        steps in proptest::collection::vec((1u64..1000, any::<u32>(), 0u64..100), 1..80),
        first_ts in any::<u32>(),
        clock_rate in prop_oneof![Just(90_000u32), Just(48_000), any::<u32>()],
    ) {
        let t0 = Instant::now();
        let mut r = Rewriter::new(start_seq);
        let out = r.rewrite(7, first, first_ts, t0, clock_rate).expect("first packet");
        prop_assert_eq!(out.seq, u64::from(start_seq));
        prop_assert_eq!(out.ts, first_ts);
        let (mut seq, mut now, mut prev) = (first, t0, out);
        for (step, ts, ms) in steps {
            seq += step;
            now += Duration::from_millis(ms);
            let out = r.rewrite(7, seq, ts, now, clock_rate).expect("newer packet");
            prop_assert!(out.seq > prev.seq);
            prop_assert_eq!(out.seq - prev.seq, step);
            prop_assert_eq!(out.ts, ts, "one source keeps its timestamps");
            prev = out;
        }
    }

    /// Any mix of sources, reordering and late packets: no panic; a packet of a new
    /// source goes out right after the newest one sent, its timestamp at least one
    /// tick on; within a source, order is kept.
    #[test]
    fn rewriter_switches_and_reordering(
        start_seq in any::<u16>(),
        first in 0u64..1 << 40,
        packets in packets(),
        clock_rate in prop_oneof![Just(90_000u32), Just(48_000), Just(1)],
    ) {
        let t0 = Instant::now();
        let mut r = Rewriter::new(start_seq);
        let mut now = t0;
        let mut seqs = [first; 3];
        let mut current: Option<u32> = None;
        // The newest packet sent: sequence number and timestamp.
        let mut newest: Option<(u64, u32)> = None;
        // Within the current source: (incoming, outgoing) of the last packet forwarded.
        let mut last_in_source: Option<(u64, u64)> = None;
        for p in packets {
            let g = p.generation as usize;
            seqs[g] = seqs[g].saturating_add_signed(p.seq_step);
            now += Duration::from_millis(p.after_ms);
            let out = r.rewrite(p.generation, seqs[g], p.ts, now, clock_rate);
            let switched = current != Some(p.generation);
            if switched {
                let out = out.expect("a new source's first packet is forwarded");
                match newest {
                    None => prop_assert_eq!(out.seq, u64::from(start_seq)),
                    Some((seq, ts)) => {
                        prop_assert_eq!(out.seq, seq + 1);
                        prop_assert!(out.ts != ts, "the timestamp moves on");
                    }
                }
                current = Some(p.generation);
                last_in_source = None;
            }
            if let Some(out) = out {
                if let Some((i, o)) = last_in_source {
                    prop_assert_eq!(
                        seqs[g] > i,
                        out.seq > o,
                        "order within a source is kept"
                    );
                }
                last_in_source = Some((seqs[g], out.seq));
                if newest.is_none_or(|(s, _)| out.seq >= s) {
                    newest = Some((out.seq, out.ts));
                }
            }
        }
    }

    /// VP8 picture ids and TL0PICIDX: no panic for any input, ids stay 15-bit, absent
    /// fields stay absent, and within one source the offset is constant.
    #[test]
    fn vp8_rewriter_any_sequence(
        ops in proptest::collection::vec(
            (0u32..3, proptest::option::of(any::<u16>()), proptest::option::of(any::<u8>())),
            1..80,
        ),
    ) {
        let mut v = Vp8Rewriter::default();
        let mut current: Option<u32> = None;
        let mut offsets: (Option<u16>, Option<u8>) = (None, None);
        for (g, pid, tl0) in ops {
            let pid = pid.map(|p| p & 0x7fff);
            let (out_pid, out_tl0) = v.rewrite(g, pid, tl0);
            prop_assert_eq!(out_pid.is_some(), pid.is_some());
            prop_assert_eq!(out_tl0.is_some(), tl0.is_some());
            if current != Some(g) {
                current = Some(g);
                offsets = (None, None);
            }
            if let (Some(i), Some(o)) = (pid, out_pid) {
                prop_assert!(o < 1 << 15);
                let d = o.wrapping_sub(i) & 0x7fff;
                prop_assert_eq!(*offsets.0.get_or_insert(d), d);
            }
            if let (Some(i), Some(o)) = (tl0, out_tl0) {
                let d = o.wrapping_sub(i);
                prop_assert_eq!(*offsets.1.get_or_insert(d), d);
            }
        }
    }

    /// The descriptor patch for arbitrary payloads str0m parses, across source
    /// switches: no panic.
    #[test]
    fn vp8_rewriter_patch_any_descriptor(
        payloads in proptest::collection::vec(
            (0u32..3, prop_oneof![bytes(16), (vp8_descriptor(), bytes(4)).prop_map(|(mut d, t)| {
                d.extend(t);
                d
            })]),
            1..20,
        ),
    ) {
        let mut v = Vp8Rewriter::default();
        for (g, p) in payloads {
            if let Ok(d) = str0m::rtp::Vp8Descriptor::parse(&p) {
                let _ = v.patch(g, &d);
            }
        }
    }
}

// ---------------------------------------------------------------------------------
// Signaling: ClientMsg JSON and names
// ---------------------------------------------------------------------------------

fn role() -> impl Strategy<Value = Role> {
    prop_oneof![Just(Role::Participant), Just(Role::Viewer)]
}

fn mode() -> impl Strategy<Value = Mode> {
    prop_oneof![Just(Mode::Relay), Just(Mode::Direct), Just(Mode::Auto)]
}

fn path() -> impl Strategy<Value = Path> {
    prop_oneof![Just(Path::Relay), Just(Path::Direct)]
}

fn host_action() -> impl Strategy<Value = HostAction> {
    prop_oneof![
        Just(HostAction::Mute),
        Just(HostAction::AllowUnmute),
        Just(HostAction::StopVideo),
        Just(HostAction::Remove),
        Just(HostAction::MakeHost),
        Just(HostAction::Lock),
        Just(HostAction::Unlock),
    ]
}

fn quality() -> impl Strategy<Value = Quality> {
    prop_oneof![Just(Quality::Auto), Just(Quality::High), Just(Quality::Low)]
}

fn text() -> impl Strategy<Value = String> {
    prop_oneof![".{0,20}", any::<String>()]
}

fn direct_signal() -> impl Strategy<Value = DirectSignal> {
    prop_oneof![
        text().prop_map(|sdp| DirectSignal::Offer { sdp }),
        text().prop_map(|sdp| DirectSignal::Answer { sdp }),
        (
            text(),
            proptest::option::of(text()),
            proptest::option::of(any::<u16>())
        )
            .prop_map(|(candidate, sdp_mid, sdp_m_line_index)| {
                DirectSignal::Candidate {
                    candidate,
                    sdp_mid,
                    sdp_m_line_index,
                }
            }),
        path().prop_map(|path| DirectSignal::Using { path }),
        proptest::option::of(path()).prop_map(|path| DirectSignal::Force { path }),
        text().prop_map(|reason| DirectSignal::Bye { reason }),
    ]
}

fn client_msg() -> impl Strategy<Value = ClientMsg> {
    prop_oneof![
        (
            text(),
            text(),
            role(),
            mode(),
            proptest::option::of(text()),
            proptest::option::of(text())
        )
            .prop_map(
                |(room, name, role, mode, token, host_token)| ClientMsg::Join {
                    room,
                    name,
                    role,
                    mode,
                    token,
                    host_token,
                }
            ),
        text().prop_map(|sdp| ClientMsg::Offer { sdp }),
        text().prop_map(|sdp| ClientMsg::Answer { sdp }),
        (text(), proptest::option::of(text()))
            .prop_map(|(candidate, sdp_mid)| ClientMsg::Candidate { candidate, sdp_mid }),
        (any::<bool>(), any::<bool>()).prop_map(|(audio, video)| ClientMsg::Media { audio, video }),
        (host_action(), proptest::option::of(any::<u64>()))
            .prop_map(|(action, peer)| ClientMsg::Host { action, peer }),
        (any::<u64>(), direct_signal()).prop_map(|(to, signal)| ClientMsg::Direct { to, signal }),
        (path(), text()).prop_map(|(path, reason)| ClientMsg::Path { path, reason }),
        (any::<u64>(), any::<u32>(), any::<u32>()).prop_map(|(peer, width, height)| {
            ClientMsg::Render {
                peer,
                width,
                height,
            }
        }),
        quality().prop_map(|quality| ClientMsg::Quality { quality }),
        text().prop_map(|text| ClientMsg::Chat { text }),
        Just(ClientMsg::Leave),
    ]
}

/// Any JSON value, a few levels deep.
fn json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        text().prop_map(Value::String),
        prop_oneof![
            Just("relay"),
            Just("direct"),
            Just("auto"),
            Just("viewer"),
            Just("participant"),
            Just("high"),
            Just("offer"),
            Just("candidate"),
        ]
        .prop_map(|s| Value::String(s.into())),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::btree_map(field_name(), inner, 0..5)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Field names of the protocol, and others.
fn field_name() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => proptest::sample::select(vec![
            "type", "room", "name", "role", "mode", "token", "sdp", "candidate", "sdpMid",
            "sdpMLineIndex", "audio", "video", "to", "signal", "kind", "path", "reason",
            "peer", "width", "height", "quality", "text",
        ])
        .prop_map(String::from),
        1 => ".{0,8}",
    ]
}

fn message_type() -> impl Strategy<Value = &'static str> {
    proptest::sample::select(vec![
        "join",
        "offer",
        "answer",
        "candidate",
        "media",
        "direct",
        "path",
        "render",
        "quality",
        "chat",
        "leave",
        "Join",
        "",
    ])
}

/// Parses, and when it parses, checks that the message survives a round trip.
fn parse_client(input: &[u8]) -> Result<(), TestCaseError> {
    if let Ok(msg) = serde_json::from_slice::<ClientMsg>(input) {
        let again: ClientMsg = serde_json::from_str(&serde_json::to_string(&msg).unwrap())
            .expect("a parsed message serializes to one that parses");
        prop_assert_eq!(again, msg);
    }
    Ok(())
}

proptest! {
    #![proptest_config(cases(1000))]

    /// Every message the protocol can express parses back to itself.
    #[test]
    fn client_msg_round_trips(msg in client_msg()) {
        let json = serde_json::to_string(&msg).unwrap();
        let back: ClientMsg = serde_json::from_str(&json).unwrap();
        prop_assert_eq!(back, msg);
    }

    /// Arbitrary bytes and strings as a WebSocket message: no panic.
    #[test]
    fn client_msg_any_input(
        input in prop_oneof![bytes(96), any::<String>().prop_map(String::into_bytes)],
    ) {
        parse_client(&input)?;
    }

    /// JSON objects with a valid `type` and random fields: no panic; what parses
    /// round-trips.
    #[test]
    fn client_msg_valid_type_random_fields(
        typ in message_type(),
        fields in proptest::collection::btree_map(field_name(), json(), 0..7),
    ) {
        let mut obj: serde_json::Map<String, Value> = fields.into_iter().collect();
        obj.insert("type".into(), Value::String(typ.into()));
        parse_client(&serde_json::to_vec(&Value::Object(obj)).unwrap())?;
    }

    /// A valid message with one field replaced or added at random, or its text cut
    /// short: no panic; what parses round-trips.
    #[test]
    fn client_msg_mutated(
        msg in client_msg(),
        field in field_name(),
        value in json(),
        cut in proptest::option::weighted(0.3, any::<prop::sample::Index>()),
    ) {
        let mut v = serde_json::to_value(&msg).unwrap();
        v.as_object_mut().unwrap().insert(field, value);
        let mut text = serde_json::to_vec(&v).unwrap();
        if let Some(cut) = cut {
            text.truncate(cut.index(text.len() + 1));
        }
        parse_client(&text)?;
    }

    /// Names: no panic; an accepted name is non-empty, at most MAX_NAME_CHARS
    /// characters and free of control characters once trimmed.
    #[test]
    fn names_any_string(
        s in prop_oneof![any::<String>(), "[ a-zA-Z\u{200b}\u{feff}\u{0}\t\n\u{ad}]{0,70}"],
    ) {
        let result = check_name(&s);
        prop_assert_eq!(valid_name(&s), result.is_ok());
        if result.is_ok() {
            let t = s.trim();
            prop_assert!(!t.is_empty());
            prop_assert!(t.chars().count() <= MAX_NAME_CHARS);
            prop_assert!(!t.chars().any(char::is_control));
        }
    }

    /// A good name with an invisible or control character inside is refused.
    #[test]
    fn names_with_hidden_characters_are_refused(
        a in "[a-z]{1,20}",
        hidden in proptest::sample::select(vec![
            '\u{0}', '\u{7}', '\u{1b}', '\u{7f}', '\u{ad}', '\u{200b}', '\u{200d}',
            '\u{202e}', '\u{2066}', '\u{feff}', '\u{e0041}',
        ]),
        b in "[a-z]{1,20}",
    ) {
        let plain = format!("{}{}", a, b);
        let with_hidden = format!("{}{}{}", a, hidden, b);
        prop_assert!(valid_name(&plain));
        prop_assert!(!valid_name(&with_hidden));
    }
}

// ---------------------------------------------------------------------------------
// WHIP/WHEP bodies: SDP offers
// ---------------------------------------------------------------------------------

/// Real offers from str0m: audio and video (one with simulcast), and a data channel.
fn real_offers() -> &'static [String] {
    static OFFERS: OnceLock<Vec<String>> = OnceLock::new();
    OFFERS.get_or_init(|| {
        let mut out = Vec::new();
        for variant in 0..3 {
            let mut rtc = Rtc::builder().build(Instant::now());
            let addr = "192.168.1.20:50000".parse().unwrap();
            rtc.add_local_candidate(Candidate::host(addr, "udp").unwrap());
            let mut api = rtc.sdp_api();
            api.add_media(MediaKind::Audio, Direction::SendRecv, None, None, None);
            let simulcast = (variant == 1).then(|| {
                let mut s = str0m::media::Simulcast::new();
                s.send = ["h", "m", "l"]
                    .into_iter()
                    .map(str0m::media::SimulcastLayer::new)
                    .collect();
                s
            });
            let dir = if variant == 2 {
                Direction::RecvOnly
            } else {
                Direction::SendOnly
            };
            api.add_media(MediaKind::Video, dir, None, None, simulcast);
            if variant == 2 {
                api.add_channel("chat".into());
            }
            let (offer, _pending) = api.apply().expect("an offer");
            out.push(offer.to_sdp_string());
        }
        out
    })
}

/// One change to an SDP's lines.
#[derive(Debug, Clone)]
enum SdpMutation {
    DeleteLine(prop::sample::Index),
    DuplicateLine(prop::sample::Index),
    SwapLines(prop::sample::Index, prop::sample::Index),
    InsertLine(prop::sample::Index, String),
    /// Replace the numbers of a line with this one.
    Numbers(prop::sample::Index, String),
    /// Cut a line at a character.
    CutLine(prop::sample::Index, prop::sample::Index),
    /// Overwrite one byte of a line (the result need not be UTF-8: lossily converted).
    Byte(prop::sample::Index, prop::sample::Index, u8),
}

fn sdp_mutation() -> impl Strategy<Value = SdpMutation> {
    use prop::sample::Index;
    let line = prop_oneof![
        "[a-z]=[ -~]{0,30}",
        "a=(rtpmap|fmtp|ssrc|ssrc-group|rid|simulcast|extmap|mid|msid|candidate|rtcp-fb|fingerprint|setup|ice-ufrag|ice-pwd|sctp-port|group):[ -~]{0,30}",
        "m=(audio|video|application) [0-9]{1,6} [A-Z/]{0,16}( [0-9]{1,4}){0,3}",
        ".{0,20}",
    ];
    let number = prop_oneof![
        Just("0".to_string()),
        Just("-1".to_string()),
        Just("4294967296".to_string()),
        Just("18446744073709551616".to_string()),
        Just("99999999999999999999999999".to_string()),
        Just("65536".to_string()),
        "[0-9]{1,25}",
    ];
    prop_oneof![
        any::<Index>().prop_map(SdpMutation::DeleteLine),
        any::<Index>().prop_map(SdpMutation::DuplicateLine),
        (any::<Index>(), any::<Index>()).prop_map(|(a, b)| SdpMutation::SwapLines(a, b)),
        (any::<Index>(), line).prop_map(|(i, l)| SdpMutation::InsertLine(i, l)),
        (any::<Index>(), number).prop_map(|(i, n)| SdpMutation::Numbers(i, n)),
        (any::<Index>(), any::<Index>()).prop_map(|(i, c)| SdpMutation::CutLine(i, c)),
        (any::<Index>(), any::<Index>(), any::<u8>())
            .prop_map(|(i, c, b)| SdpMutation::Byte(i, c, b)),
    ]
}

fn mutate_sdp(sdp: &str, mutations: &[SdpMutation]) -> String {
    let mut lines: Vec<String> = sdp.split("\r\n").map(String::from).collect();
    for m in mutations {
        if lines.is_empty() {
            lines.push(String::new());
        }
        let n = lines.len();
        match m {
            SdpMutation::DeleteLine(i) => {
                lines.remove(i.index(n));
            }
            SdpMutation::DuplicateLine(i) => {
                let l = lines[i.index(n)].clone();
                lines.insert(i.index(n), l);
            }
            SdpMutation::SwapLines(a, b) => lines.swap(a.index(n), b.index(n)),
            SdpMutation::InsertLine(i, l) => lines.insert(i.index(n + 1), l.clone()),
            SdpMutation::Numbers(i, num) => {
                let l = &mut lines[i.index(n)];
                let mut out = String::new();
                let mut in_number = false;
                for c in l.chars() {
                    if c.is_ascii_digit() {
                        if !in_number {
                            out.push_str(num);
                        }
                        in_number = true;
                    } else {
                        in_number = false;
                        out.push(c);
                    }
                }
                *l = out;
            }
            SdpMutation::CutLine(i, c) => {
                let l = &mut lines[i.index(n)];
                let chars: Vec<char> = l.chars().collect();
                *l = chars[..c.index(chars.len() + 1)].iter().collect();
            }
            SdpMutation::Byte(i, c, b) => {
                let l = &mut lines[i.index(n)];
                let mut bytes = l.clone().into_bytes();
                if !bytes.is_empty() {
                    let at = c.index(bytes.len());
                    bytes[at] = *b;
                }
                *l = String::from_utf8_lossy(&bytes).into_owned();
            }
        }
    }
    lines.join("\r\n")
}

proptest! {
    #![proptest_config(cases(500))]

    /// Real offers with lines deleted, duplicated, swapped, inserted, cut, renumbered
    /// or with a byte changed: str0m's parser does not panic.
    #[test]
    fn sdp_offer_mutated(
        which in any::<prop::sample::Index>(),
        mutations in proptest::collection::vec(sdp_mutation(), 1..6),
    ) {
        let offers = real_offers();
        let sdp = mutate_sdp(&offers[which.index(offers.len())], &mutations);
        let _ = SdpOffer::from_sdp_string(&sdp);
    }

    /// Arbitrary text as a WHIP/WHEP body: no panic.
    #[test]
    fn sdp_offer_any_text(
        sdp in prop_oneof![any::<String>(), "([a-z]=[ -~]{0,20}\r\n){0,10}"],
    ) {
        let _ = SdpOffer::from_sdp_string(&sdp);
    }
}

/// An `Rtc` configured as the server configures each peer's (ICE lite, RTP mode, Opus,
/// VP8 and H.264, one DTLS certificate shared by all).
fn server_rtc() -> Rtc {
    static CERT: OnceLock<str0m::config::DtlsCert> = OnceLock::new();
    let cert = CERT.get_or_init(|| {
        str0m::crypto::from_feature_flags()
            .dtls_provider
            .generate_certificate()
            .expect("a DTLS certificate")
    });
    let mut rtc = Rtc::builder()
        .set_ice_lite(true)
        .set_rtp_mode(true)
        .set_dtls_cert(cert.clone())
        .clear_codecs()
        .enable_opus(true, false)
        .enable_vp8(true)
        .enable_h264(true)
        .build(Instant::now());
    let addr = "192.168.1.2:3478".parse().unwrap();
    rtc.add_local_candidate(Candidate::host(addr, "udp").unwrap());
    rtc
}

proptest! {
    #![proptest_config(cases(300))]

    /// Mutated real offers that parse are then accepted (or refused) by an `Rtc` set up
    /// as the server's, as a WHIP/WHEP or WebSocket offer is: no panic.
    #[test]
    fn sdp_offer_mutated_accepted(
        which in any::<prop::sample::Index>(),
        mutations in proptest::collection::vec(sdp_mutation(), 0..4),
    ) {
        let offers = real_offers();
        let sdp = mutate_sdp(&offers[which.index(offers.len())], &mutations);
        if let Ok(offer) = SdpOffer::from_sdp_string(&sdp) {
            let mut rtc = server_rtc();
            let _ = rtc.sdp_api().accept_offer(offer);
        }
    }
}

/// A server-like `Rtc` with a pending offer of audio and video, and a str0m client's
/// real answer to it.
fn offer_and_answer(simulcast: bool) -> (Rtc, str0m::change::SdpPendingOffer, String) {
    let mut server = server_rtc();
    let mut api = server.sdp_api();
    api.add_media(MediaKind::Audio, Direction::SendOnly, None, None, None);
    let simulcast = simulcast.then(|| {
        let mut s = str0m::media::Simulcast::new();
        s.recv = ["h", "l"]
            .into_iter()
            .map(str0m::media::SimulcastLayer::new)
            .collect();
        s
    });
    api.add_media(MediaKind::Video, Direction::RecvOnly, None, None, simulcast);
    let (offer, pending) = api.apply().expect("an offer");
    let mut client = Rtc::builder().build(Instant::now());
    let addr = "192.168.1.30:40000".parse().unwrap();
    client.add_local_candidate(Candidate::host(addr, "udp").unwrap());
    let answer = client
        .sdp_api()
        .accept_offer(offer)
        .expect("the client accepts the offer");
    (server, pending, answer.to_sdp_string())
}

proptest! {
    #![proptest_config(cases(200))]

    /// A browser's answer (over the WebSocket), mutated: str0m parses it and the
    /// server's `Rtc` accepts it against its pending offer, or refuses it: no panic.
    #[test]
    fn sdp_answer_mutated_accepted(
        simulcast in any::<bool>(),
        mutations in proptest::collection::vec(sdp_mutation(), 0..4),
    ) {
        let (mut server, pending, answer) = offer_and_answer(simulcast);
        let sdp = mutate_sdp(&answer, &mutations);
        if let Ok(answer) = str0m::change::SdpAnswer::from_sdp_string(&sdp) {
            let _ = server.sdp_api().accept_answer(pending, answer);
        }
    }
}

#[test]
fn real_answers_are_accepted() {
    for simulcast in [false, true] {
        let (mut server, pending, answer) = offer_and_answer(simulcast);
        let answer = str0m::change::SdpAnswer::from_sdp_string(&answer).expect("it parses");
        server
            .sdp_api()
            .accept_answer(pending, answer)
            .expect("the server accepts the unmutated answer");
    }
}

#[test]
fn real_offers_are_accepted() {
    for sdp in real_offers() {
        let offer = SdpOffer::from_sdp_string(sdp).expect("str0m's own offer parses");
        server_rtc()
            .sdp_api()
            .accept_offer(offer)
            .expect("the server accepts the unmutated offer");
    }
}

#[test]
fn real_offers_parse() {
    for sdp in real_offers() {
        SdpOffer::from_sdp_string(sdp).expect("str0m's own offer parses");
    }
}

// ---------------------------------------------------------------------------------
// Regression corpus: edge cases kept as plain tests
// ---------------------------------------------------------------------------------

/// STUN lengths at their limits: a body length of 0xffff on a short datagram, an
/// attribute length of 0xffff, an attribute header cut short, a USERNAME that is not
/// UTF-8 or lacks its colon.
#[test]
fn stun_length_edges() {
    let user = |value: &[u8], len: u16| {
        stun_message(
            0,
            &[Attr {
                typ: 0x0006,
                value: value.to_vec(),
                len_delta: i32::from(len) - value.len() as i32,
            }],
            0,
            None,
        )
    };
    assert_eq!(stun_local_ufrag(&user(b"a:b", 3)), Some("a"));
    assert_eq!(stun_local_ufrag(&user(b"a:b", 0xffff)), None);
    assert_eq!(stun_local_ufrag(&user(b"\xff:b", 3)), None);
    assert_eq!(stun_local_ufrag(&user(b"ab", 2)), None);
    assert_eq!(stun_local_ufrag(&user(b":b", 2)), Some(""));
    assert_eq!(stun_local_ufrag(&stun_message(0, &[], 0xffff, None)), None);
    // A body of two bytes: shorter than an attribute header.
    let mut m = stun_message(0, &[], 2, None);
    m.extend_from_slice(&[0, 6]);
    assert_eq!(stun_local_ufrag(&m), None);
}

/// Codec edges: a STAP-A whose length runs past the end, a STAP-A of one byte, VP8
/// descriptors that announce fields they lack.
#[test]
fn codec_edges() {
    assert!(!starts_keyframe(Codec::H264, &[0x78, 0xff, 0xff, 0x65]));
    assert!(!starts_keyframe(Codec::H264, &[0x78]));
    assert!(!starts_keyframe(
        Codec::H264,
        &[0x78, 0x00, 0x00, 0x00, 0x00]
    ));
    assert!(!starts_keyframe(Codec::H264, &[0x7c]));
    assert!(!starts_keyframe(Codec::Vp8, &[0x90]));
    assert!(!starts_keyframe(Codec::Vp8, &[0x90, 0xf0, 0x80]));
    assert_eq!(
        vp8_keyframe_width(&[0x90, 0xf0, 0x80, 0x00, 0x00, 0x00]),
        None
    );
    assert!(!starts_keyframe(Codec::Vp9, &[]));
}

/// Rewriters at the numbers' limits.
#[test]
fn rewriter_edges() {
    let t0 = Instant::now();
    let mut r = Rewriter::new(u16::MAX);
    let a = r.rewrite(0, (1 << 48) - 1, u32::MAX, t0, 90_000).unwrap();
    let b = r.rewrite(0, 1 << 48, 0, t0, 90_000).unwrap();
    assert_eq!(b.seq, a.seq + 1);
    let c = r.rewrite(1, 0, 0, t0, u32::MAX).unwrap();
    assert_eq!(c.seq, b.seq + 1);
    let mut v = Vp8Rewriter::default();
    assert_eq!(
        v.rewrite(0, Some(0x7fff), Some(255)),
        (Some(0x7fff), Some(255))
    );
    assert_eq!(v.rewrite(1, Some(0xffff), Some(0)), (Some(0), Some(0)));
}

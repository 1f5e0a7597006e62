//! The synthetic VP8 payloads of the test participant and the load generator are what
//! the server's keyframe detection recognises: a keyframe opens a viewer's video, so a
//! generator whose keyframes the server missed would measure nothing.

use lanrelay::sfu::codec::starts_keyframe;
use lanrelay_peer::payload::{vp8, Stamp, Vp8Packet};
use str0m::format::Codec;

#[test]
fn vp8_payloads_are_what_the_server_recognises() {
    let s = Stamp {
        stream: 2,
        number: 1,
        sent_ns: 5,
    };
    let mut p = Vp8Packet {
        picture_id: 300,
        first: true,
        keyframe: true,
        width: 1280,
        height: 720,
    };
    assert!(starts_keyframe(Codec::Vp8, &vp8(p, 1000, s)));
    p.keyframe = false;
    assert!(!starts_keyframe(Codec::Vp8, &vp8(p, 1000, s)));
    p.first = false;
    p.keyframe = true;
    assert!(!starts_keyframe(Codec::Vp8, &vp8(p, 1000, s)));
}

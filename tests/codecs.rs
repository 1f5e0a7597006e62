//! Codecs across a room: a receiver that cannot decode what a publisher sends is told
//! so (not left with a black tile), the publisher is asked for VP8, and `/api/rooms`
//! shows the gap. (The browser side, where the page switches to VP8 and the receiver
//! then decodes, is in tests/e2e/firefox.test.mjs.)

mod common;

use std::time::Duration;

use common::{https_get, start_server, TestPeer};
use lanrelay::signaling::protocol::Role;
use str0m::format::Codec;
use str0m::media::MediaKind;

const WAIT: Duration = Duration::from_secs(15);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_h264_only_sender_and_a_vp8_only_receiver_are_told() {
    let server = start_server(8).await;
    let a = TestPeer::join_with(&server, "codecs", "a", Role::Participant, Codec::H264).await;
    let b = TestPeer::join(&server, "codecs", "b").await;
    let a_id = a.seen().id;
    let b_id = b.seen().id;

    b.wait_for("a note that a's video cannot be decoded", WAIT, |s| {
        s.codec_notes
            .iter()
            .any(|(id, codec, ok, _)| *id == a_id && codec == "H.264" && !ok)
    })
    .await;
    let note = b.seen().codec_notes[0].3.clone();
    assert_eq!(
        note,
        "a's video is H.264, which this browser cannot decode: a was asked to send VP8 instead"
    );
    a.wait_for("asked to send VP8", WAIT, |s| {
        s.send_codec.as_deref() == Some("VP8")
    })
    .await;
    // The rest of the call goes on: a's audio reaches b, b's VP8 video is not what a
    // decodes either (a offered H.264 only), and b is told.
    b.wait_for("a's audio", WAIT, |s| {
        s.frames.get(&("a".to_string(), MediaKind::Audio)) > Some(&10)
    })
    .await;
    a.wait_for("a note about b's VP8", WAIT, |s| {
        s.codec_notes
            .iter()
            .any(|(id, codec, ok, _)| *id == b_id && codec == "VP8" && !ok)
    })
    .await;
    let told = a.seen().codec_notes;
    assert!(
        told.iter().any(|n| n.3 == "b's video is VP8, which this browser cannot decode, and b's sender cannot send another codec"),
        "VP8 is what everyone can send: nobody is asked to switch to it: {told:?}"
    );
    assert_eq!(b.seen().send_codec, None);
    assert_eq!(b.seen().codec_notes.len(), 1, "said once, not per packet");

    let (status, body) = https_get(&server, "/api/rooms/codecs").await;
    assert_eq!(status, 200, "{body}");
    let room: serde_json::Value = serde_json::from_str(&body).unwrap();
    let people = room["participants"].as_array().unwrap();
    let find = |id| people.iter().find(|p| p["id"] == id).unwrap();
    assert_eq!(find(a_id)["videoCodec"], "H.264", "{body}");
    assert_eq!(find(b_id)["videoCodec"], "VP8", "{body}");
    assert_eq!(
        find(b_id)["cannotDecode"],
        serde_json::json!([{"peer": a_id, "codec": "H.264"}]),
        "{body}"
    );
    a.leave().await;
    b.leave().await;
    server.shutdown().await;
}

//! Keyframe requests: a receiver's PLI reaches the sender through the server, and a
//! burst of requests is throttled into few.

mod common;

use std::time::Duration;

use common::{start_server, PeerCmd, TestPeer};
use str0m::media::MediaKind;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receiver_pli_reaches_sender_throttled() {
    let server = start_server(8).await;
    let alice = TestPeer::join(&server, "kf", "alice").await;
    let bob = TestPeer::join(&server, "kf", "bob").await;

    bob.wait_for("alice's video", Duration::from_secs(15), |s| {
        s.frames
            .get(&("alice".into(), MediaKind::Video))
            .copied()
            .unwrap_or(0)
            >= 20
    })
    .await;
    // The server asked alice for a keyframe when bob's track opened.
    assert!(
        alice.seen().keyframe_requests >= 1,
        "a new receiver triggers a keyframe request"
    );

    // Steady state: no request arrives on its own.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let settled = alice.seen().keyframe_requests;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(
        alice.seen().keyframe_requests,
        settled,
        "no spontaneous requests"
    );

    // One request from bob arrives at alice.
    bob.command(PeerCmd::RequestKeyframe(1));
    alice
        .wait_for("the forwarded request", Duration::from_secs(2), |s| {
            s.keyframe_requests > settled
        })
        .await;

    // A burst of ten within a moment reaches alice as at most two (one now, one
    // deferred by the throttle).
    tokio::time::sleep(Duration::from_millis(700)).await;
    let before = alice.seen().keyframe_requests;
    bob.command(PeerCmd::RequestKeyframe(10));
    tokio::time::sleep(Duration::from_millis(400)).await;
    let burst = alice.seen().keyframe_requests - before;
    assert!((1..=2).contains(&burst), "burst of 10 became {burst}");

    alice.leave().await;
    bob.leave().await;
    server.shutdown().await;
}

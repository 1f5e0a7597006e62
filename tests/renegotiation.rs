//! Renegotiation started by the browser: a participant adds a track mid-call (others
//! receive it), both sides offering at the same moment (glare) resolves, and an ICE
//! restart keeps the call going.

mod common;

use std::time::Duration;

use common::{start_server, video_from, PeerCmd, TestPeer};

const WAIT: Duration = Duration::from_secs(15);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_track_added_mid_call_reaches_the_others() {
    let server = start_server(8).await;
    let a = TestPeer::join(&server, "share", "a").await;
    let b = TestPeer::join(&server, "share", "b").await;
    b.wait_for("a's video", WAIT, |s| video_from(s, "a") > 10)
        .await;
    a.command(PeerCmd::AddVideoTrack { glare: false });
    b.wait_for("a's second video", WAIT, |s| video_from(s, "a+") > 10)
        .await;
    assert!(video_from(&b.seen(), "a") > 20, "the first track continues");
    assert!(a.seen().errors.is_empty(), "{:?}", a.seen().errors);
    a.leave().await;
    b.leave().await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offers_crossing_each_other_resolve() {
    let server = start_server(8).await;
    let a = TestPeer::join(&server, "glare", "a").await;
    a.wait_for("media connected", WAIT, |s| s.connected).await;
    // a answers the server's next offer (for b's tracks) with an offer of its own.
    a.command(PeerCmd::AddVideoTrack { glare: true });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let b = TestPeer::join(&server, "glare", "b").await;
    // Both directions end up negotiated: b gets a's two tracks, a gets b's track.
    b.wait_for("a's two videos", WAIT, |s| {
        video_from(s, "a") > 10 && video_from(s, "a+") > 10
    })
    .await;
    a.wait_for("b's video", WAIT, |s| video_from(s, "b") > 10)
        .await;
    assert!(
        a.seen().server_offers >= 2,
        "the server re-offered after the glare"
    );
    assert!(a.seen().errors.is_empty(), "{:?}", a.seen().errors);
    a.leave().await;
    b.leave().await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ice_restart_keeps_the_call() {
    let server = start_server(8).await;
    let a = TestPeer::join(&server, "restart", "a").await;
    let b = TestPeer::join(&server, "restart", "b").await;
    b.wait_for("a's video", WAIT, |s| video_from(s, "a") > 10)
        .await;
    a.command(PeerCmd::IceRestart);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = video_from(&b.seen(), "a");
    // Still flowing after the restart, for longer than the old credentials would
    // survive if the server had stopped routing them.
    b.wait_for("a's video after the restart", WAIT, |s| {
        video_from(s, "a") > before + 60
    })
    .await;
    assert!(a.seen().errors.is_empty(), "{:?}", a.seen().errors);
    a.leave().await;
    b.leave().await;
    server.shutdown().await;
}

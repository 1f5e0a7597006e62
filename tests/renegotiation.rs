//! Renegotiation started by the browser: a participant adds a track mid-call (others
//! receive it), both sides offering at the same moment (glare) resolves, and an ICE
//! restart keeps the call going; a track the participant stops sending ends for the
//! others. Started by the server: the m-lines of participants who left carry the
//! tracks of those who come next.

mod common;

use std::time::Duration;

use common::{start_server, video_from, PeerCmd, TestPeer};
use str0m::media::MediaKind;

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

/// A second video track (a screen share) that stops: the others stop receiving it,
/// their m-line for it goes idle, and the next share reuses it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_track_the_participant_stops_sending_ends_for_the_others() {
    let server = start_server(8).await;
    let a = TestPeer::join(&server, "unshare", "a").await;
    let b = TestPeer::join(&server, "unshare", "b").await;
    b.wait_for("a's video", WAIT, |s| video_from(s, "a") > 10)
        .await;
    a.command(PeerCmd::AddVideoTrack { glare: false });
    b.wait_for("a's share", WAIT, |s| video_from(s, "a+") > 10)
        .await;
    let offers = b.seen().server_offers;
    a.command(PeerCmd::StopVideoTrack);
    b.wait_for("an offer that ends the share", WAIT, |s| {
        s.server_offers > offers && s.offer_owners.len() == 2
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let stopped = video_from(&b.seen(), "a+");
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(
        video_from(&b.seen(), "a+"),
        stopped,
        "the share no longer arrives"
    );
    let before = video_from(&b.seen(), "a");
    b.wait_for("a's camera goes on", WAIT, |s| {
        video_from(s, "a") > before + 20
    })
    .await;
    // Shared again: the idle m-line carries it, b's SDP does not grow.
    let mlines = b.seen().offer_mlines;
    a.command(PeerCmd::AddVideoTrack { glare: false });
    b.wait_for("a's second share", WAIT, |s| {
        video_from(s, "a+") > stopped + 10
    })
    .await;
    assert_eq!(b.seen().offer_mlines, mlines, "m-lines in b's latest offer");
    assert!(a.seen().errors.is_empty(), "{:?}", a.seen().errors);
    assert!(b.seen().errors.is_empty(), "{:?}", b.seen().errors);
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

/// A participant who stays while others come and go keeps a bounded SDP: str0m never
/// recycles a stopped m-line as the offerer, so before m-lines were reused every guest
/// left two dead m-lines behind in everyone else's session (60 guests: SDP > 64 KiB,
/// refused as too large).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn m_lines_of_departed_guests_carry_the_next_ones() {
    let server = start_server(8).await;
    let a = TestPeer::join(&server, "churn", "a").await;
    a.wait_for("media connected", WAIT, |s| s.connected).await;
    for i in 0..4 {
        let tag = format!("g{i}");
        let g = TestPeer::join(&server, "churn", &tag).await;
        a.wait_for(&format!("{tag}'s video and audio"), WAIT, |s| {
            video_from(s, &tag) > 10 && s.frames.get(&(tag.clone(), MediaKind::Audio)) > Some(&10)
        })
        .await;
        let id = g.seen().id;
        let owners = a.seen().offer_owners;
        assert_eq!(
            owners.iter().filter(|o| o.peer == id).count(),
            2,
            "the offer names {tag} ({id}) as the owner of its two m-lines: {owners:?}"
        );
        assert!(a.seen().corrupt == 0, "no frame mixed up after the reuse");
        g.leave().await;
    }
    // a's own two m-lines and one audio and one video line for the guests, not two
    // more for every guest that ever came.
    let seen = a.seen();
    assert_eq!(seen.offer_mlines, 4, "m-lines in the last offer");
    assert!(seen.errors.is_empty(), "{:?}", seen.errors);
    a.leave().await;
    server.shutdown().await;
}

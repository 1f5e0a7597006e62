//! Retransmissions work on each leg: with packets lost between a sender and the server,
//! or between the server and a receiver, NACKs bring them back (RTX), so (nearly) every
//! video frame still arrives whole. Without retransmission a 3-packet frame would be
//! lost for about every fifth dropped packet... here one in 12 packets is dropped.

mod common;

use std::time::Duration;

use common::{start_server, PeerCmd, Seen, TestPeer};
use str0m::media::MediaKind;

/// Frames of `tag` received since the first one, as a share of those sent.
fn delivered(s: &Seen, tag: &str) -> f64 {
    let key = (tag.to_string(), MediaKind::Video);
    let (Some(first), Some(last), Some(n)) = (
        s.first_counter.get(&key),
        s.last_counter.get(&key),
        s.frames.get(&key),
    ) else {
        return 0.0;
    };
    *n as f64 / (last - first + 1) as f64
}

async fn run_with_loss(up: u32, down: u32) -> (f64, u64) {
    let server = start_server(8).await;
    let alice = TestPeer::join(&server, "lossy", "alice").await;
    let bob = TestPeer::join(&server, "lossy", "bob").await;
    bob.wait_for("alice's video", Duration::from_secs(15), |s| {
        s.frames
            .get(&("alice".into(), MediaKind::Video))
            .copied()
            .unwrap_or(0)
            > 10
    })
    .await;
    alice.command(PeerCmd::SetLoss { up, down: 0 });
    bob.command(PeerCmd::SetLoss { up: 0, down });
    let start = bob.seen().frames[&("alice".to_string(), MediaKind::Video)];
    tokio::time::sleep(Duration::from_secs(4)).await;
    let s = bob.seen();
    let got = s.frames[&("alice".to_string(), MediaKind::Video)] - start;
    let share = delivered(&s, "alice");
    assert_eq!(s.corrupt, 0);
    alice.leave().await;
    bob.leave().await;
    server.shutdown().await;
    (share, got)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_packets_from_the_sender_are_recovered() {
    let (share, got) = run_with_loss(12, 0).await;
    eprintln!(
        "up-leg loss 1/12: {:.1}% of frames delivered ({got} in 4 s)",
        share * 100.0
    );
    assert!(got > 80, "video kept flowing: {got}");
    assert!(share > 0.97, "delivered {share}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_packets_to_the_receiver_are_recovered() {
    let (share, got) = run_with_loss(0, 12).await;
    eprintln!(
        "down-leg loss 1/12: {:.1}% of frames delivered ({got} in 4 s)",
        share * 100.0
    );
    assert!(got > 80, "video kept flowing: {got}");
    assert!(share > 0.97, "delivered {share}");
}

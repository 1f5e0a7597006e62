//! A participant that vanishes without a goodbye (its network disappears: sockets stay
//! open but nothing more comes) is removed, and the others are told within about 15 s.

#![allow(clippy::disallowed_methods)] // tests read the clock

mod common;

use std::time::{Duration, Instant};

use common::{start_server, PeerCmd, TestPeer};
use str0m::media::MediaKind;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vanished_participant_is_removed() {
    let server = start_server(8).await;
    let a = TestPeer::join(&server, "ghost", "a").await;
    let b = TestPeer::join(&server, "ghost", "b").await;
    a.wait_for("b's video", Duration::from_secs(15), |s| {
        s.frames
            .get(&("b".into(), MediaKind::Video))
            .copied()
            .unwrap_or(0)
            > 10
    })
    .await;

    let b_id = b.seen().id;
    b.command(PeerCmd::Vanish);
    let t0 = Instant::now();
    a.wait_for("b's removal", Duration::from_secs(20), |s| {
        s.left.iter().any(|(id, _)| *id == b_id)
    })
    .await;
    let took = t0.elapsed();
    eprintln!("vanished participant removed after {took:?}");
    assert!(took <= Duration::from_secs(18), "took {took:?}");
    assert_eq!(server.engine.status().await.unwrap().participants, 1);
    a.leave().await;
    server.shutdown().await;
}

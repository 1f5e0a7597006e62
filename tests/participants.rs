//! Rooms of more than two: a third participant joining receives everyone and is
//! received by everyone (server-initiated renegotiation), and one leaving is removed
//! from the others' calls while the rest carry on.

mod common;

use std::time::Duration;

use common::{start_server, video_from, TestPeer};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn third_joins_and_one_leaves() {
    let server = start_server(8).await;
    let a = TestPeer::join(&server, "trio", "a").await;
    let b = TestPeer::join(&server, "trio", "b").await;
    let wait = Duration::from_secs(15);
    b.wait_for("a's video", wait, |s| video_from(s, "a") > 10)
        .await;

    let c = TestPeer::join(&server, "trio", "c").await;
    c.wait_for("a's and b's video", wait, |s| {
        video_from(s, "a") > 10 && video_from(s, "b") > 10
    })
    .await;
    a.wait_for("c's video", wait, |s| video_from(s, "c") > 10)
        .await;
    b.wait_for("c's video", wait, |s| video_from(s, "c") > 10)
        .await;
    for p in [&a, &b, &c] {
        let s = p.seen();
        assert_eq!(s.corrupt, 0, "{}", p.tag);
        assert!(
            s.server_offers >= 1,
            "{}: tracks were added by server offers",
            p.tag
        );
    }
    assert!(a.seen().joined.contains(&c.seen().id));

    // c leaves: a and b are told, get an offer removing c's tracks, and keep talking.
    let c_id = c.seen().id;
    let offers_before = a.seen().server_offers;
    c.leave().await;
    a.wait_for("c's departure", wait, |s| {
        s.left.iter().any(|(id, r)| *id == c_id && r == "left")
    })
    .await;
    a.wait_for("an offer stopping c's tracks", wait, |s| {
        s.server_offers > offers_before
    })
    .await;
    let b_before = video_from(&a.seen(), "b");
    let c_before = video_from(&a.seen(), "c");
    a.wait_for("b's video to continue", wait, |s| {
        video_from(s, "b") > b_before + 20
    })
    .await;
    assert_eq!(
        video_from(&a.seen(), "c"),
        c_before,
        "nothing arrives from c anymore"
    );
    assert_eq!(server.engine.status().await.unwrap().participants, 2);

    a.leave().await;
    b.leave().await;
    server.shutdown().await;
}

//! Media workers: rooms spread over the worker threads (the least loaded takes a new
//! room), everyone in a room shares its worker, calls on different workers carry on
//! independently, and a room emptied and reopened is placed afresh.

mod common;

use std::time::Duration;

use common::{start_server, video_from, TestPeer};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rooms_spread_over_workers_and_calls_flow_on_each() {
    // Config::loopback runs two media workers.
    let server = start_server(8).await;
    let wait = Duration::from_secs(15);
    let a1 = TestPeer::join(&server, "first", "a1").await;
    let b1 = TestPeer::join(&server, "first", "b1").await;
    let a2 = TestPeer::join(&server, "second", "a2").await;
    let b2 = TestPeer::join(&server, "second", "b2").await;
    b1.wait_for("a1's video", wait, |s| video_from(s, "a1") > 10)
        .await;
    a1.wait_for("b1's video", wait, |s| video_from(s, "b1") > 10)
        .await;
    b2.wait_for("a2's video", wait, |s| video_from(s, "a2") > 10)
        .await;
    a2.wait_for("b2's video", wait, |s| video_from(s, "b2") > 10)
        .await;

    let status = server.engine.status().await.expect("engine runs");
    assert_eq!(status.workers.len(), 2);
    let rooms: Vec<usize> = status.workers.iter().map(|w| w.rooms).collect();
    let participants: Vec<usize> = status.workers.iter().map(|w| w.participants).collect();
    assert_eq!(rooms, vec![1, 1], "one room per worker: {status:?}");
    assert_eq!(
        participants,
        vec![2, 2],
        "a room's participants share its worker"
    );
    assert!(
        status.workers.iter().all(|w| w.forwarded_packets > 0),
        "both workers forward: {status:?}"
    );
    let api_rooms = server.engine.rooms().await.expect("rooms");
    let names: Vec<&str> = api_rooms.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(
        names,
        vec!["first", "second"],
        "/api/rooms merges the workers"
    );

    // The first room empties: the second call is not disturbed, and the worker it
    // left is idle again, so the next new room goes there.
    a1.leave().await;
    b1.leave().await;
    let before = video_from(&b2.seen(), "a2");
    b2.wait_for("a2's video after the other room closed", wait, |s| {
        video_from(s, "a2") > before + 30
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let load = server.engine.worker_load();
    assert_eq!(load.iter().sum::<usize>(), 2, "released: {load:?}");
    let a3 = TestPeer::join(&server, "third", "a3").await;
    let b3 = TestPeer::join(&server, "third", "b3").await;
    b3.wait_for("a3's video", wait, |s| video_from(s, "a3") > 10)
        .await;
    let status = server.engine.status().await.expect("engine runs");
    let participants: Vec<usize> = status.workers.iter().map(|w| w.participants).collect();
    assert_eq!(
        participants,
        vec![2, 2],
        "the new room took the idle worker"
    );
    for p in [a2, b2, a3, b3] {
        assert_eq!(p.seen().corrupt, 0, "{}", p.tag);
        p.leave().await;
    }
    server.shutdown().await;
}

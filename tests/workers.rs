//! Media workers: rooms spread over the worker threads (the least loaded takes a new
//! room), everyone in a room shares its worker, calls on different workers carry on
//! independently, and a room emptied and reopened is placed afresh. One room's viewers
//! spread over the workers too, and see the same room as if it had one.

mod common;

use std::time::Duration;

use common::{connect_ws, expect_error, send, start_server, video_from, PeerCmd, TestPeer};
use lanrelay::signaling::protocol::{ClientMsg, ErrorCode, Mode, Role};
use str0m::media::MediaKind;

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

/// With one media worker the worker's thread reads the media socket itself (no
/// receive task, no routing table before its shard): ICE, DTLS and media all arrive
/// that way, a second call runs beside the first, and garbage on the media port is
/// counted as unroutable without disturbing either.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_worker_reads_the_media_socket_and_calls_flow() {
    let mut config = lanrelay::Config::loopback(common::temp_dir("one-worker"));
    config.workers = 1;
    let server = lanrelay::start(config).await.expect("server starts");
    let wait = Duration::from_secs(15);
    let a = TestPeer::join(&server, "one", "a").await;
    let b = TestPeer::join(&server, "one", "b").await;
    let c = TestPeer::join(&server, "two", "c").await;
    let d = TestPeer::join(&server, "two", "d").await;
    for (to, from) in [(&b, "a"), (&a, "b"), (&d, "c"), (&c, "d")] {
        to.wait_for(&format!("{from}'s video"), wait, |s| {
            video_from(s, from) > 30
        })
        .await;
    }
    // Garbage, media from an unknown address and STUN for nobody, read by the worker.
    let junk = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let mut stun = vec![0x00, 0x01, 0x00, 0x0c, 0x21, 0x12, 0xa4, 0x42];
    stun.extend_from_slice(&[9; 12]);
    stun.extend_from_slice(&[0x00, 0x06, 0x00, 0x08]);
    stun.extend_from_slice(b"nobody:x");
    let rtp = [
        vec![0x80, 0x60, 0, 1, 0, 0, 0, 1, 0xde, 0xad, 0xbe, 0xef],
        vec![7; 900],
    ]
    .concat();
    let samples = [vec![0xff; 40], stun, rtp];
    let before = (video_from(&a.seen(), "b"), video_from(&c.seen(), "d"));
    for _ in 0..100 {
        for s in &samples {
            let _ = junk.send_to(s, server.candidates[0]).await;
        }
    }
    a.wait_for("more of b's video", wait, |s| {
        video_from(s, "b") > before.0 + 20
    })
    .await;
    c.wait_for("more of d's video", wait, |s| {
        video_from(s, "d") > before.1 + 20
    })
    .await;
    let status = server.engine.status().await.expect("engine runs");
    assert_eq!(status.workers.len(), 1, "{status:?}");
    assert_eq!(status.workers[0].participants, 4, "{status:?}");
    assert!(status.forwarded_packets > 120, "{status:?}");
    assert!(status.unroutable_datagrams >= 300, "{status:?}");
    for p in [a, b, c, d] {
        assert_eq!(p.seen().corrupt, 0, "{}", p.tag);
        p.leave().await;
    }
    server.shutdown().await;
}

/// Starts a loopback server (two workers) whose rooms spread their viewers from the
/// second one on, with at most `viewer_capacity` viewers per room.
async fn spreading_server(viewer_capacity: usize) -> lanrelay::Server {
    let mut config = lanrelay::Config::loopback(common::temp_dir("spread"));
    config.spread_viewers_after = 1;
    config.viewer_capacity = viewer_capacity;
    lanrelay::start(config).await.expect("server starts")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_rooms_viewers_spread_over_workers() {
    let server = spreading_server(3).await;
    let wait = Duration::from_secs(15);
    let presenter = TestPeer::join(&server, "talk", "presenter").await;
    // The first viewer stays with the room; the next go to the least loaded worker.
    let v1 = TestPeer::join_as(&server, "talk", "v1", Role::Viewer).await;
    let v2 = TestPeer::join_as(&server, "talk", "v2", Role::Viewer).await;
    let v3 = TestPeer::join_as(&server, "talk", "v3", Role::Viewer).await;
    for v in [&v1, &v2, &v3] {
        v.wait_for("the presenter's video", wait, |s| {
            video_from(s, "presenter") > 20
                && s.frames
                    .contains_key(&("presenter".into(), MediaKind::Audio))
        })
        .await;
    }
    let status = server.engine.status().await.expect("engine runs");
    let participants: Vec<usize> = status.workers.iter().map(|w| w.participants).collect();
    assert_eq!(
        participants,
        vec![2, 2],
        "two viewers served by the other worker: {status:?}"
    );
    assert!(
        status.workers.iter().all(|w| w.forwarded_packets > 0),
        "both workers forward the one room: {status:?}"
    );
    assert_eq!(status.rooms, 1, "the room counts once: {status:?}");
    let rooms = server.engine.rooms().await.expect("rooms");
    assert_eq!(rooms.len(), 1, "/api/rooms shows the room once: {rooms:?}");
    assert_eq!(rooms[0].participants.len(), 1);
    assert_eq!(
        rooms[0].viewers.len(),
        3,
        "with the viewers of both workers"
    );
    presenter
        .wait_for("the viewer count", wait, |s| s.viewers == Some(3))
        .await;

    // The room's viewer cap holds across workers: the fourth viewer, sent to the other
    // worker, is refused by the room's own.
    let mut ws = connect_ws(&server).await;
    send(
        &mut ws,
        &ClientMsg::Join {
            room: "talk".into(),
            name: "v4".into(),
            role: Role::Viewer,
            mode: Mode::Auto,
            token: None,
            host_token: None,
        },
    )
    .await;
    let msg = expect_error(&mut ws, ErrorCode::RoomFull).await;
    assert!(msg.contains("maximum of 3 viewers"), "{msg}");

    // A second presenter: viewers on both workers learn of them and get their video
    // (the first keyframe comes on request, across workers for the far viewers).
    let second = TestPeer::join(&server, "talk", "second").await;
    let second_id = second.seen().id;
    for v in [&v1, &v2, &v3] {
        v.wait_for("the second presenter", wait, |s| {
            s.joined.contains(&second_id) && video_from(s, "second") > 10
        })
        .await;
    }
    // A late keyframe request from a far viewer reaches the presenter.
    let before = presenter.seen().keyframe_requests;
    v3.command(PeerCmd::RequestKeyframe(1));
    presenter
        .wait_for("a keyframe request from a far viewer", wait, |s| {
            s.keyframe_requests > before
        })
        .await;

    // The first presenter leaves: every viewer hears of it and keeps the second.
    let presenter_id = presenter.seen().id;
    presenter.leave().await;
    for v in [&v1, &v2, &v3] {
        v.wait_for("the presenter leaving", wait, |s| {
            s.left.iter().any(|(id, _)| *id == presenter_id)
        })
        .await;
        let got = video_from(&v.seen(), "second");
        v.wait_for("the second presenter's video after", wait, |s| {
            video_from(s, "second") > got + 20
        })
        .await;
    }
    // A far viewer leaves: the room's count drops.
    v3.leave().await;
    second
        .wait_for("the viewer count after one left", wait, |s| {
            s.viewers == Some(2)
        })
        .await;
    for p in [v1, v2] {
        assert_eq!(p.seen().corrupt, 0, "{}", p.tag);
        p.leave().await;
    }
    second.leave().await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(server.engine.worker_load(), vec![0, 0], "everyone released");
    let status = server.engine.status().await.expect("engine runs");
    assert_eq!((status.rooms, status.participants), (0, 0), "{status:?}");
    server.shutdown().await;
}

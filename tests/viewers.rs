//! Receive-only viewers: they get the participants' media, send nothing that reaches
//! anyone, are not announced as participants, and have their own cap; participants see
//! how many watch.

mod common;

use std::time::Duration;

use common::{connect_ws, expect_error, recv, send, start_server, temp_dir, video_from, TestPeer};
use lanrelay::config::Config;
use lanrelay::signaling::protocol::{ClientMsg, ErrorCode, Mode, Role, ServerMsg};
use str0m::media::MediaKind;

const WAIT: Duration = Duration::from_secs(15);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn viewers_watch_the_presenter() {
    let server = start_server(2).await;
    let presenter = TestPeer::join(&server, "talk", "presenter").await;
    let mut viewers = Vec::new();
    // More viewers than the participant capacity (2): viewers have their own cap.
    for i in 0..3 {
        viewers.push(TestPeer::join_as(&server, "talk", &format!("viewer{i}"), Role::Viewer).await);
    }
    for v in &viewers {
        v.wait_for("the presenter's audio and video", WAIT, |s| {
            s.frames
                .get(&("presenter".into(), MediaKind::Video))
                .copied()
                .unwrap_or(0)
                > 20
                && s.frames
                    .get(&("presenter".into(), MediaKind::Audio))
                    .copied()
                    .unwrap_or(0)
                    > 20
        })
        .await;
        assert_eq!(v.seen().corrupt, 0);
    }
    presenter
        .wait_for("the viewer count", WAIT, |s| s.viewers == Some(3))
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let p = presenter.seen();
    assert!(
        p.joined.is_empty(),
        "viewers are not announced as participants: {:?}",
        p.joined
    );
    assert!(
        p.frames.keys().all(|(tag, _)| !tag.starts_with("viewer")),
        "nothing from viewers reaches the presenter"
    );
    // Viewers do not receive each other either.
    assert!(viewers[0]
        .seen()
        .frames
        .keys()
        .all(|(tag, _)| tag == "presenter"));

    // A second participant still fits (the viewers did not use up the room).
    let guest = TestPeer::join(&server, "talk", "guest").await;
    viewers[1]
        .wait_for("the guest's video too", WAIT, |s| {
            s.frames
                .get(&("guest".into(), MediaKind::Video))
                .copied()
                .unwrap_or(0)
                > 10
        })
        .await;

    // A viewer leaving updates the count.
    let v = viewers.pop().unwrap();
    v.leave().await;
    presenter
        .wait_for("the viewer count to drop", WAIT, |s| s.viewers == Some(2))
        .await;
    assert_eq!(server.engine.status().await.unwrap().participants, 4);
    for v in viewers {
        v.leave().await;
    }
    guest.leave().await;
    presenter.leave().await;
    server.shutdown().await;
}

#[tokio::test]
async fn viewer_caps_and_direct_rooms() {
    let mut config = lanrelay::Config::loopback(common::temp_dir("viewers"));
    config.viewer_capacity = 1;
    let server = lanrelay::start(config).await.unwrap();
    let join = |room: &str, role: Role, mode: Mode| ClientMsg::Join {
        room: room.into(),
        name: "v".into(),
        role,
        mode,
        token: None,
        host_token: None,
    };
    let mut a = connect_ws(&server).await;
    send(&mut a, &join("r", Role::Viewer, Mode::Auto)).await;
    assert!(matches!(recv(&mut a).await, Some(ServerMsg::Joined { .. })));
    let mut b = connect_ws(&server).await;
    send(&mut b, &join("r", Role::Viewer, Mode::Auto)).await;
    let msg = expect_error(&mut b, ErrorCode::RoomFull).await;
    assert!(msg.contains("viewers"), "{msg}");
    // A direct call is not relayed, so it cannot be watched.
    let mut c = connect_ws(&server).await;
    send(&mut c, &join("d", Role::Participant, Mode::Direct)).await;
    assert!(matches!(recv(&mut c).await, Some(ServerMsg::Joined { .. })));
    let mut d = connect_ws(&server).await;
    send(&mut d, &join("d", Role::Viewer, Mode::Auto)).await;
    let msg = expect_error(&mut d, ErrorCode::RoomFull).await;
    assert!(msg.contains("cannot be watched"), "{msg}");
    server.shutdown().await;
}

#[tokio::test]
async fn rooms_with_a_token_need_it() {
    let mut config = lanrelay::Config::loopback(common::temp_dir("token"));
    config.room_tokens = vec![("secret".into(), "s3cr3t".into())];
    let server = lanrelay::start(config).await.unwrap();
    for (token, ok) in [(None, false), (Some("nope"), false), (Some("s3cr3t"), true)] {
        let mut ws = connect_ws(&server).await;
        let msg = ClientMsg::Join {
            room: "secret".into(),
            name: "n".into(),
            role: Role::Viewer,
            mode: Mode::Auto,
            token: token.map(String::from),
            host_token: None,
        };
        send(&mut ws, &msg).await;
        if ok {
            assert!(matches!(
                recv(&mut ws).await,
                Some(ServerMsg::Joined { .. })
            ));
        } else {
            expect_error(&mut ws, ErrorCode::Forbidden).await;
        }
    }
    // Look-alikes of the protected room need its token too: case and full width are
    // the same room for the token check, invisible characters are refused outright.
    let join = |room: &str, token: Option<&str>| ClientMsg::Join {
        room: room.into(),
        name: "n".into(),
        role: Role::Viewer,
        mode: Mode::Auto,
        token: token.map(String::from),
        host_token: None,
    };
    for alike in ["Secret", "SECRET", "ｓｅｃｒｅｔ", " secret "] {
        let mut ws = connect_ws(&server).await;
        send(&mut ws, &join(alike, None)).await;
        expect_error(&mut ws, ErrorCode::Forbidden).await;
        let mut ws = connect_ws(&server).await;
        send(&mut ws, &join(alike, Some("s3cr3t"))).await;
        assert!(
            matches!(recv(&mut ws).await, Some(ServerMsg::Joined { .. })),
            "{alike:?} opens with the token"
        );
    }
    for hidden in [
        "secret\u{200B}",
        "se\u{200D}cret",
        "\u{FEFF}secret",
        "secret\u{7}",
    ] {
        let mut ws = connect_ws(&server).await;
        send(&mut ws, &join(hidden, None)).await;
        expect_error(&mut ws, ErrorCode::BadName).await;
    }
    server.shutdown().await;
}

#[tokio::test]
async fn a_bad_room_token_flag_stops_the_start() {
    for (room, token) in [("board ", "tok"), ("secret\u{200B}", "tok"), ("board", "")] {
        let mut config = lanrelay::Config::loopback(common::temp_dir("bad-token"));
        config.room_tokens = vec![(room.into(), token.into())];
        let Err(e) = lanrelay::start(config).await else {
            panic!("{room:?}={token:?} must stop the start");
        };
        let e = format!("{e:#}");
        assert!(
            e.contains("--room-token")
                && e.contains(&format!("{room}={token}").escape_debug().to_string()),
            "{e}"
        );
    }
}

/// `--no-bandwidth-estimation`: a viewer negotiates no transport-wide congestion control
/// (nothing to feed back, nothing to read) and still gets the video; a participant who
/// publishes keeps it for its upload. With the default, the viewer negotiates it too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_bandwidth_estimation_viewers_negotiate_no_congestion_control() {
    for estimate in [false, true] {
        let mut config = Config::loopback(temp_dir("certs"));
        config.bandwidth_estimation = estimate;
        let server = lanrelay::start(config).await.expect("server starts");
        let presenter = TestPeer::join(&server, "talk", "presenter").await;
        let viewer = TestPeer::join_as(&server, "talk", "viewer", Role::Viewer).await;
        viewer
            .wait_for("the presenter's video", WAIT, |s| {
                video_from(s, "presenter") > 20
            })
            .await;
        assert_eq!(viewer.seen().corrupt, 0);
        assert!(
            presenter.seen().server_twcc,
            "the publisher keeps transport-wide CC (estimate: {estimate})"
        );
        assert_eq!(
            viewer.seen().server_twcc,
            estimate,
            "the viewer negotiates transport-wide CC only with bandwidth estimation"
        );
    }
}

//! The server's side of direct and automatic calls: it passes direct-connection
//! messages between the two browsers of a room, keeps direct rooms to two people,
//! records which path each participant receives on, and publishes its own
//! measurements of relayed legs (to each browser once a second, and at /api/rooms).

mod common;

use std::time::Duration;

use common::{connect_ws, expect_error, https_get, recv, send, start_server, TestPeer, Ws};
use lanrelay::signaling::protocol::{ClientMsg, DirectSignal, ErrorCode, Mode, Path, ServerMsg};
use str0m::media::MediaKind;

async fn join(ws: &mut Ws, room: &str, name: &str, mode: Mode) -> (u64, Mode) {
    send(
        ws,
        &ClientMsg::Join {
            room: room.into(),
            name: name.into(),
            role: Default::default(),
            mode,
            token: None,
            host_token: None,
        },
    )
    .await;
    match recv(ws).await {
        Some(ServerMsg::Joined { id, mode, .. }) => (id, mode),
        other => panic!("expected joined, got {other:?}"),
    }
}

/// The next message that is not a once-a-second stats report, the chat history that
/// follows `joined`, who speaks, who hosts, or the host's recordings key.
async fn next(ws: &mut Ws) -> Option<ServerMsg> {
    loop {
        match recv(ws).await {
            Some(ServerMsg::Stats { .. })
            | Some(ServerMsg::ChatHistory { .. })
            | Some(ServerMsg::Speaker { .. })
            | Some(ServerMsg::Room { .. })
            | Some(ServerMsg::RecordingAccess { .. }) => continue,
            other => return other,
        }
    }
}

#[tokio::test]
async fn direct_signals_pass_between_the_two_browsers() {
    let server = start_server(8).await;
    let mut a = connect_ws(&server).await;
    let mut b = connect_ws(&server).await;
    let (a_id, mode) = join(&mut a, "p2p", "a", Mode::Direct).await;
    assert_eq!(mode, Mode::Direct);
    // The room keeps the opener's mode.
    let (b_id, mode) = join(&mut b, "p2p", "b", Mode::Auto).await;
    assert_eq!(mode, Mode::Direct);
    assert!(matches!(
        next(&mut a).await,
        Some(ServerMsg::PeerJoined { .. })
    ));

    let offer = DirectSignal::Offer {
        sdp: "v=0 (opaque to the server)".into(),
    };
    send(
        &mut b,
        &ClientMsg::Direct {
            to: a_id,
            signal: offer.clone(),
        },
    )
    .await;
    assert_eq!(
        next(&mut a).await,
        Some(ServerMsg::Direct {
            from: b_id,
            signal: offer
        })
    );
    let cand = DirectSignal::Candidate {
        candidate: "candidate:1 1 udp 2122260223 10.0.0.2 50000 typ host".into(),
        sdp_mid: Some("0".into()),
        sdp_m_line_index: Some(0),
    };
    send(
        &mut a,
        &ClientMsg::Direct {
            to: b_id,
            signal: cand.clone(),
        },
    )
    .await;
    assert_eq!(
        next(&mut b).await,
        Some(ServerMsg::Direct {
            from: a_id,
            signal: cand
        })
    );

    // Nobody else can be addressed, nor yourself.
    send(
        &mut a,
        &ClientMsg::Direct {
            to: 999,
            signal: DirectSignal::Bye { reason: "x".into() },
        },
    )
    .await;
    expect_error(&mut a, ErrorCode::NoSuchPeer).await;
    send(
        &mut a,
        &ClientMsg::Direct {
            to: a_id,
            signal: DirectSignal::Bye { reason: "x".into() },
        },
    )
    .await;
    expect_error(&mut a, ErrorCode::NoSuchPeer).await;
    // Someone in another room is not reachable either.
    let mut c = connect_ws(&server).await;
    let (c_id, _) = join(&mut c, "elsewhere", "c", Mode::Auto).await;
    send(
        &mut a,
        &ClientMsg::Direct {
            to: c_id,
            signal: DirectSignal::Bye { reason: "x".into() },
        },
    )
    .await;
    expect_error(&mut a, ErrorCode::NoSuchPeer).await;

    // A direct room takes two.
    let mut d = connect_ws(&server).await;
    send(
        &mut d,
        &ClientMsg::Join {
            room: "p2p".into(),
            name: "d".into(),
            role: Default::default(),
            mode: Mode::Direct,
            token: None,
            host_token: None,
        },
    )
    .await;
    let msg = expect_error(&mut d, ErrorCode::RoomFull).await;
    assert!(msg.contains("direct"), "{msg}");

    // Paths are announced to the others and listed by the API.
    send(
        &mut a,
        &ClientMsg::Path {
            path: Path::Direct,
            reason: "direct path delivers media".into(),
        },
    )
    .await;
    match next(&mut b).await {
        Some(ServerMsg::PeerPath {
            id,
            path: Path::Direct,
            reason,
        }) => {
            assert_eq!(id, a_id);
            assert!(reason.contains("direct"));
        }
        other => panic!("expected peerPath, got {other:?}"),
    }
    let (status, body) = https_get(&server, "/api/rooms").await;
    assert_eq!(status, 200);
    let rooms: serde_json::Value = serde_json::from_str(&body).unwrap();
    let p2p = rooms
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "p2p")
        .expect("room listed");
    assert_eq!(p2p["mode"], "direct");
    assert_eq!(p2p["capacity"], 2);
    let pa = p2p["participants"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["id"] == a_id)
        .unwrap();
    assert_eq!(pa["path"], "direct");
    assert_eq!(pa["relayConnected"], false);
    assert_eq!(https_get(&server, "/api/rooms/nope").await.0, 404);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relayed_legs_are_measured_by_the_server() {
    // The legs' addresses are shown to the operator only (tests/api-visibility.rs).
    let mut config = lanrelay::Config::loopback(common::temp_dir("measured"));
    config.operator_token = Some("op".into());
    let server = lanrelay::start(config).await.unwrap();
    let a = TestPeer::join(&server, "measured", "a").await;
    let b = TestPeer::join(&server, "measured", "b").await;
    b.wait_for("a's video", Duration::from_secs(15), |s| {
        s.frames
            .get(&("a".into(), MediaKind::Video))
            .copied()
            .unwrap_or(0)
            > 20
    })
    .await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let (status, _, body) = common::https_get_with(
        &server,
        "/api/rooms/measured",
        &[("Authorization", "Bearer op")],
    )
    .await;
    assert_eq!(status, 200);
    let room: serde_json::Value = serde_json::from_str(&body).unwrap();
    let parts = room["participants"].as_array().unwrap();
    assert_eq!(parts.len(), 2);
    for p in parts {
        assert_eq!(p["relayConnected"], true, "{p}");
        assert_eq!(p["upTracks"], 2, "{p}");
        assert_eq!(p["downTracks"], 2, "{p}");
        let relay = &p["relay"];
        let up = relay["upBps"].as_f64().unwrap();
        let down = relay["downBps"].as_f64().unwrap();
        // The test peers send about 3000 bytes * 30 fps of video plus audio.
        assert!(up > 200_000.0 && up < 5_000_000.0, "up {up}");
        assert!(down > 200_000.0 && down < 5_000_000.0, "down {down}");
        assert!(
            relay["remote"].as_str().unwrap().starts_with("127.0.0.1:"),
            "{relay}"
        );
        assert_eq!(
            relay["local"].as_str().unwrap(),
            server.candidates[0].to_string()
        );
    }
    a.leave().await;
    b.leave().await;
    server.shutdown().await;
}

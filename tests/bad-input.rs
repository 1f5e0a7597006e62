//! Bad input gets a clear error and disturbs nobody: malformed, unknown, oversized and
//! out-of-order signaling messages, invalid SDP, bad names, a full room, and garbage
//! datagrams on the media port while a call is running.

mod common;

use std::time::Duration;

use common::{connect_ws, expect_error, recv, send, start_server, TestPeer, Ws};
use futures_util::SinkExt;
use lanrelay::signaling::protocol::{ClientMsg, ErrorCode, ServerMsg};
use str0m::media::MediaKind;
use tokio_tungstenite::tungstenite::Message;

async fn send_raw(ws: &mut Ws, m: Message) {
    ws.send(m).await.unwrap();
}

fn join(room: &str, name: &str) -> ClientMsg {
    ClientMsg::Join {
        room: room.into(),
        name: name.into(),
        role: Default::default(),
        mode: Default::default(),
        token: None,
        host_token: None,
    }
}

#[tokio::test]
async fn malformed_messages_get_errors_and_the_socket_stays_usable() {
    let server = start_server(8).await;
    let mut ws = connect_ws(&server).await;

    send_raw(&mut ws, Message::text("{not json")).await;
    expect_error(&mut ws, ErrorCode::BadMessage).await;
    send_raw(&mut ws, Message::text(r#"{"type":"teleport","to":"mars"}"#)).await;
    expect_error(&mut ws, ErrorCode::BadMessage).await;
    send_raw(&mut ws, Message::text(r#"{"type":"join","room":5}"#)).await;
    expect_error(&mut ws, ErrorCode::BadMessage).await;
    send_raw(&mut ws, Message::binary(vec![1, 2, 3])).await;
    expect_error(&mut ws, ErrorCode::BadMessage).await;
    let huge = format!(r#"{{"type":"offer","sdp":"{}"}}"#, "a".repeat(100_000));
    send_raw(&mut ws, Message::text(huge)).await;
    let msg = expect_error(&mut ws, ErrorCode::TooLarge).await;
    assert!(msg.contains("limit"), "{msg}");
    send(&mut ws, &ClientMsg::Offer { sdp: "v=0".into() }).await;
    expect_error(&mut ws, ErrorCode::BadState).await;

    // After all that, joining works.
    send(&mut ws, &join("bad", "carol")).await;
    assert!(matches!(
        recv(&mut ws).await,
        Some(ServerMsg::Joined { .. })
    ));
    send(&mut ws, &join("bad", "carol")).await;
    expect_error(&mut ws, ErrorCode::BadState).await;

    // Invalid SDP: a clear error, and the participant stays in the room.
    send(
        &mut ws,
        &ClientMsg::Offer {
            sdp: "this is not sdp".into(),
        },
    )
    .await;
    expect_error(&mut ws, ErrorCode::BadSdp).await;
    send(
        &mut ws,
        &ClientMsg::Answer {
            sdp: "v=0\r\n".into(),
        },
    )
    .await;
    let m = recv(&mut ws).await;
    assert!(
        matches!(
            m,
            Some(ServerMsg::Error {
                code: ErrorCode::BadSdp | ErrorCode::BadState,
                ..
            })
        ),
        "{m:?}"
    );
    // An unparseable candidate is ignored, not fatal.
    send(
        &mut ws,
        &ClientMsg::Candidate {
            candidate: "candidate:garbage".into(),
            sdp_mid: None,
        },
    )
    .await;
    let status = server.engine.status().await.unwrap();
    assert_eq!(status.participants, 1);
    server.shutdown().await;
}

#[tokio::test]
async fn bad_names_are_refused() {
    let server = start_server(8).await;
    for (room, name) in [
        ("", "x"),
        ("room", "   "),
        ("r", &"n".repeat(65)),
        ("a\u{1}b", "x"),
    ] {
        let mut ws = connect_ws(&server).await;
        send(&mut ws, &join(room, name)).await;
        expect_error(&mut ws, ErrorCode::BadName).await;
        assert!(recv(&mut ws).await.is_none(), "the socket is closed");
    }
    server.shutdown().await;
}

#[tokio::test]
async fn a_full_room_refuses_the_next_participant() {
    let server = start_server(2).await;
    let mut a = connect_ws(&server).await;
    let mut b = connect_ws(&server).await;
    send(&mut a, &join("small", "a")).await;
    assert!(matches!(
        recv(&mut a).await,
        Some(ServerMsg::Joined { capacity: 2, .. })
    ));
    send(&mut b, &join("small", "b")).await;
    assert!(matches!(recv(&mut b).await, Some(ServerMsg::Joined { .. })));
    let mut c = connect_ws(&server).await;
    send(&mut c, &join("small", "c")).await;
    let msg = expect_error(&mut c, ErrorCode::RoomFull).await;
    assert!(msg.contains("full"), "{msg}");
    assert!(recv(&mut c).await.is_none(), "the refused socket is closed");
    // Another room is unaffected; a seat frees when someone leaves.
    let mut d = connect_ws(&server).await;
    send(&mut d, &join("other", "d")).await;
    assert!(matches!(recv(&mut d).await, Some(ServerMsg::Joined { .. })));
    send(&mut b, &ClientMsg::Leave).await;
    let mut e = connect_ws(&server).await;
    let mut joined = false;
    for _ in 0..20 {
        send(&mut e, &join("small", "e")).await;
        match recv(&mut e).await {
            Some(ServerMsg::Joined { .. }) => {
                joined = true;
                break;
            }
            _ => {
                tokio::time::sleep(Duration::from_millis(50)).await;
                e = connect_ws(&server).await;
            }
        }
    }
    assert!(joined, "a seat freed after a leave");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_datagrams_do_not_disturb_a_call() {
    let server = start_server(8).await;
    let alice = TestPeer::join(&server, "noise", "alice").await;
    let bob = TestPeer::join(&server, "noise", "bob").await;
    bob.wait_for("alice's video", Duration::from_secs(15), |s| {
        s.frames
            .get(&("alice".into(), MediaKind::Video))
            .copied()
            .unwrap_or(0)
            >= 10
    })
    .await;

    let media = server.candidates[0];
    let junk = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let mut stun = vec![0x00, 0x01, 0x00, 0x0c, 0x21, 0x12, 0xa4, 0x42];
    stun.extend_from_slice(&[9; 12]);
    stun.extend_from_slice(&[0x00, 0x06, 0x00, 0x08]);
    stun.extend_from_slice(b"nobody:x");
    let samples: Vec<Vec<u8>> = vec![
        vec![],
        vec![0xff; 1],
        vec![0x00; 20],
        stun,
        vec![0x16, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, 1, 0, 3, 1, 2, 3],
        [
            vec![0x80, 0x60, 0, 1, 0, 0, 0, 1, 0xde, 0xad, 0xbe, 0xef],
            vec![7; 1000],
        ]
        .concat(),
        (0..1400).map(|i| (i * 7) as u8).collect(),
    ];
    let before = alice
        .seen()
        .frames
        .get(&("bob".into(), MediaKind::Video))
        .copied()
        .unwrap_or(0);
    for round in 0..200 {
        for s in &samples {
            let _ = junk.send_to(s, media).await;
        }
        if round % 20 == 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    // The call carries on: more frames arrive on both sides, none corrupted.
    alice
        .wait_for("more of bob's video", Duration::from_secs(5), |s| {
            s.frames
                .get(&("bob".into(), MediaKind::Video))
                .copied()
                .unwrap_or(0)
                > before + 20
        })
        .await;
    assert_eq!(alice.seen().corrupt + bob.seen().corrupt, 0);
    let status = server.engine.status().await.unwrap();
    assert!(status.unroutable_datagrams >= 1000, "{status:?}");
    assert_eq!(status.participants, 2);
    alice.leave().await;
    bob.leave().await;
    server.shutdown().await;
}

/// The HTTPS port also takes ICE-TCP media: a connection whose first byte is not a
/// TLS handshake is media, and one that breaks the framing or does not start with a
/// STUN request for this server is closed at once; HTTPS carries on.
#[tokio::test]
async fn garbage_on_the_https_port_is_closed_and_https_carries_on() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let server = start_server(8).await;
    let attempts: [&[u8]; 4] = [
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", // plain HTTP on the TLS port
        &[0x00, 0x04, 0x80, 0x60, 0x00, 0x01], // a frame of RTP before any STUN
        &[0x00, 0x00],                        // an empty frame
        &[0x7f, 0xff, 0x00],                  // a frame over the limit
    ];
    for bytes in attempts {
        let mut tcp = tokio::net::TcpStream::connect(server.https_addr)
            .await
            .unwrap();
        tcp.write_all(bytes).await.unwrap();
        let mut buf = [0u8; 64];
        let read = tokio::time::timeout(Duration::from_secs(2), tcp.read(&mut buf)).await;
        assert!(
            matches!(read, Ok(Ok(0)) | Ok(Err(_))),
            "{bytes:?}: closed at once, got {read:?}"
        );
    }
    let (status, metrics) = common::https_get(&server, "/metrics").await;
    assert_eq!(status, 200, "HTTPS is served as before");
    assert!(
        metrics.contains("lanrelay_refused_total{limit=\"tcp_framing\"} 4\n"),
        "{metrics}"
    );
    server.shutdown().await;
}

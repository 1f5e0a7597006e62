//! The room's latest comparison report at `GET /api/rooms/ROOM/comparison`: a
//! participant sends it over the signaling socket, the server keeps it until the room
//! closes, and who may read it follows `/api/rooms/ROOM` (a protected room needs its
//! token or the operator's; without, it does not exist). Viewers may not send one;
//! something that is not a JSON object, or larger than 48 KiB, is refused.

// Tests read the clock.
#![allow(clippy::disallowed_methods)]

mod common;

use std::time::{Duration, Instant};

use common::{connect_ws, https_get_with, recv, send, Ws};
use lanrelay::signaling::protocol::{ClientMsg, ErrorCode, Mode, Role, ServerMsg};

const OPERATOR: &str = "op3rator";

/// GET `path` with `Authorization: Bearer token` (none when `None`); (status, body).
async fn get(server: &lanrelay::Server, path: &str, token: Option<&str>) -> (u16, String) {
    let auth = token.map(|t| format!("Bearer {t}"));
    let headers: Vec<(&str, &str)> = auth.iter().map(|a| ("Authorization", a.as_str())).collect();
    let (status, _, body) = https_get_with(server, path, &headers).await;
    (status, body)
}

async fn join(server: &lanrelay::Server, name: &str, role: Role) -> Ws {
    let mut ws = connect_ws(server).await;
    send(
        &mut ws,
        &ClientMsg::Join {
            room: "secret".into(),
            name: name.into(),
            role,
            mode: Mode::Auto,
            token: Some("s3cr3t".into()),
            host_token: None,
        },
    )
    .await;
    loop {
        match recv(&mut ws).await {
            Some(ServerMsg::Joined { .. }) => return ws,
            Some(ServerMsg::Error { message, .. }) => panic!("{name} not joined: {message}"),
            Some(_) => continue,
            None => panic!("{name}: socket closed"),
        }
    }
}

/// The next error message, skipping others (a viewer count, ...); expects `code`.
async fn expect_error(ws: &mut Ws, code: ErrorCode) -> String {
    loop {
        match recv(ws).await {
            Some(ServerMsg::Error { code: c, message }) if c == code => return message,
            Some(ServerMsg::Error { code: c, message }) => panic!("{c:?} {message}, want {code:?}"),
            Some(_) => continue,
            None => panic!("socket closed, want {code:?}"),
        }
    }
}

/// Polls `path` (with the room's token) until it answers 200; its body.
async fn kept(server: &lanrelay::Server, path: &str) -> String {
    let end = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, body) = get(server, path, Some("s3cr3t")).await;
        if status == 200 {
            return body;
        }
        assert!(Instant::now() < end, "never kept: {status} {body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rooms_last_report_is_kept_for_those_who_may_see_the_room() {
    let dir = common::temp_dir("comparison-report");
    let token_file = dir.join("operator-token");
    std::fs::write(&token_file, format!("{OPERATOR}\n")).unwrap();
    let mut config = lanrelay::Config::loopback(dir);
    config.room_tokens = vec![("secret".into(), "s3cr3t".into())];
    config.operator_token_file = Some(token_file);
    let server = lanrelay::start(config).await.unwrap();
    let path = "/api/rooms/secret/comparison";

    let mut alice = join(&server, "alice", Role::Participant).await;
    let (status, body) = get(&server, path, Some("s3cr3t")).await;
    assert_eq!(status, 404, "{body}");
    assert!(body.contains("no comparison has been run"), "{body}");

    let report = serde_json::json!({
        "verdict": {"better": "direct", "text": "Direct: 11 ms lower round trip (4 vs 15 ms)."},
        "paths": {"relay": {"summary": {"rttMs": 15.2}}, "direct": {"summary": {"rttMs": 4.1}}},
    });
    send(
        &mut alice,
        &ClientMsg::Comparison {
            report: report.clone(),
        },
    )
    .await;
    let body = kept(&server, path).await;
    let got: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(got, report);

    // A newer report replaces it.
    let newer = serde_json::json!({"verdict": {"better": "tie", "text": "No clear difference."}});
    send(
        &mut alice,
        &ClientMsg::Comparison {
            report: newer.clone(),
        },
    )
    .await;
    let end = Instant::now() + Duration::from_secs(10);
    while serde_json::from_str::<serde_json::Value>(&kept(&server, path).await).unwrap() != newer {
        assert!(
            Instant::now() < end,
            "the newer report never replaced the first"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The room's rules: its token (header or query) or the operator's; without, the
    // room does not exist.
    assert_eq!(get(&server, path, Some(OPERATOR)).await.0, 200);
    assert_eq!(
        get(&server, "/api/rooms/secret/comparison?token=s3cr3t", None)
            .await
            .0,
        200
    );
    for token in [None, Some("wrong")] {
        let (status, body) = get(&server, path, token).await;
        assert_eq!(status, 404, "{token:?}: {body}");
        assert!(body.contains("no such room"), "{body}");
        assert!(!body.contains("No clear difference"), "{body}");
    }

    // Refused: from a viewer, not an object, too large.
    let mut viewer = join(&server, "tv", Role::Viewer).await;
    send(
        &mut viewer,
        &ClientMsg::Comparison {
            report: report.clone(),
        },
    )
    .await;
    expect_error(&mut viewer, ErrorCode::BadState).await;
    send(
        &mut alice,
        &ClientMsg::Comparison {
            report: serde_json::json!([1, 2, 3]),
        },
    )
    .await;
    expect_error(&mut alice, ErrorCode::BadMessage).await;
    let big = serde_json::json!({"samples": "x".repeat(50 * 1024)});
    send(&mut alice, &ClientMsg::Comparison { report: big }).await;
    let message = expect_error(&mut alice, ErrorCode::TooLarge).await;
    assert!(message.contains("49152"), "{message}");
    let got: serde_json::Value = serde_json::from_str(&kept(&server, path).await).unwrap();
    assert_eq!(got, newer, "a refused report does not replace the kept one");

    // The report goes with the room.
    send(&mut alice, &ClientMsg::Leave).await;
    send(&mut viewer, &ClientMsg::Leave).await;
    let end = Instant::now() + Duration::from_secs(10);
    while get(&server, path, Some(OPERATOR)).await.0 != 404 {
        assert!(Instant::now() < end, "the room never closed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _bob = join(&server, "bob", Role::Participant).await;
    let (status, body) = get(&server, path, Some("s3cr3t")).await;
    assert_eq!(status, 404, "{body}");
    assert!(body.contains("no comparison has been run"), "{body}");
}

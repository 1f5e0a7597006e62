//! Who sees what on `/api/rooms`, `/healthz` and `/metrics`: anyone sees the open
//! rooms without addresses; a room's token shows that room too; the operator token
//! shows everything and is needed for `/metrics` when it is set.

// Tests read the clock.
#![allow(clippy::disallowed_methods)]

mod common;

use std::time::{Duration, Instant};

use common::{connect_ws, https_get_with, recv, send, TestPeer};
use lanrelay::signaling::protocol::{ClientMsg, Mode, Role, ServerMsg};

const OPERATOR: &str = "op3rator";

/// GET `path` with `Authorization: Bearer token` (none when `None`); (status, head, JSON
/// or text body).
async fn get(server: &lanrelay::Server, path: &str, token: Option<&str>) -> (u16, String, String) {
    let auth = token.map(|t| format!("Bearer {t}"));
    let headers: Vec<(&str, &str)> = auth.iter().map(|a| ("Authorization", a.as_str())).collect();
    https_get_with(server, path, &headers).await
}

fn room_names(body: &str) -> Vec<String> {
    let v: serde_json::Value = serde_json::from_str(body).expect("JSON");
    v.as_array()
        .expect("a list of rooms")
        .iter()
        .map(|r| r["name"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_caller_sees_what_its_token_opens() {
    let dir = common::temp_dir("api-visibility");
    let token_file = dir.join("operator-token");
    std::fs::write(&token_file, format!("{OPERATOR}\n")).unwrap();
    let mut config = lanrelay::Config::loopback(dir);
    config.room_tokens = vec![
        ("secret".into(), "s3cr3t".into()),
        ("board".into(), "b0ard".into()),
    ];
    config.operator_token_file = Some(token_file);
    let server = lanrelay::start(config).await.unwrap();

    // alice in an open room, with media through the server; bob in the protected room.
    let alice = TestPeer::join(&server, "open", "alice").await;
    let mut bob = connect_ws(&server).await;
    send(
        &mut bob,
        &ClientMsg::Join {
            room: "secret".into(),
            name: "bob".into(),
            role: Role::Viewer,
            mode: Mode::Auto,
            token: Some("s3cr3t".into()),
            host_token: None,
        },
    )
    .await;
    assert!(matches!(
        recv(&mut bob).await,
        Some(ServerMsg::Joined { .. })
    ));

    // The operator sees everything, addresses included (once alice's leg is up).
    let end = Instant::now() + Duration::from_secs(15);
    let operator_view = loop {
        let (status, _, body) = get(&server, "/api/rooms/open", Some(OPERATOR)).await;
        assert_eq!(status, 200, "{body}");
        let room: serde_json::Value = serde_json::from_str(&body).unwrap();
        if room["participants"][0]["relay"]["remote"].is_string() {
            break room;
        }
        assert!(
            Instant::now() < end,
            "alice's relay leg never came up: {body}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let remote = operator_view["participants"][0]["relay"]["remote"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(remote.starts_with("127.0.0.1:"), "{remote}");
    let (_, _, body) = get(&server, "/api/rooms", Some(OPERATOR)).await;
    let mut names = room_names(&body);
    names.sort();
    assert_eq!(names, ["open", "secret"]);
    assert!(body.contains("\"bob\""), "{body}");
    assert_eq!(
        get(&server, "/api/rooms/secret", Some(OPERATOR)).await.0,
        200
    );

    // Anyone: open rooms only, and no addresses anywhere.
    for (path, token) in [
        ("/api/rooms", None),
        ("/api/rooms", Some("wrong")),
        ("/api/rooms", Some("b0ard")),
    ] {
        let (status, _, body) = get(&server, path, token).await;
        assert_eq!(status, 200);
        assert_eq!(room_names(&body), ["open"], "{token:?}");
        assert!(!body.contains("bob"), "{token:?}: {body}");
        assert!(!body.contains("127.0.0.1"), "{token:?}: {body}");
        assert!(!body.contains(&remote), "{token:?}: {body}");
    }
    let (status, _, body) = get(&server, "/api/rooms/open", None).await;
    assert_eq!(status, 200);
    assert!(body.contains("\"alice\""), "{body}");
    assert!(!body.contains("127.0.0.1"), "{body}");
    // A protected room without its token does not exist.
    for token in [None, Some("wrong"), Some("b0ard")] {
        let (status, _, body) = get(&server, "/api/rooms/secret", token).await;
        assert_eq!(status, 404, "{token:?}: {body}");
        assert!(!body.contains("bob"), "{body}");
    }

    // The room's token shows that room (header or query), still without addresses.
    for (path, token) in [
        ("/api/rooms", Some("s3cr3t")),
        ("/api/rooms?token=s3cr3t", None),
    ] {
        let (status, _, body) = get(&server, path, token).await;
        assert_eq!(status, 200);
        let mut names = room_names(&body);
        names.sort();
        assert_eq!(names, ["open", "secret"], "{path} {token:?}");
        assert!(body.contains("\"bob\""), "{body}");
        assert!(!body.contains("127.0.0.1"), "{body}");
    }
    assert_eq!(
        get(&server, "/api/rooms/secret?token=s3cr3t", None).await.0,
        200
    );
    let (status, _, body) = get(&server, "/api/rooms/secret", Some("s3cr3t")).await;
    assert_eq!(status, 200);
    assert!(body.contains("\"bob\""), "{body}");

    // /healthz: counters only, for anyone.
    let (status, _, body) = get(&server, "/healthz", None).await;
    assert_eq!(status, 200);
    for secret in ["alice", "bob", "secret", "127.0.0.1"] {
        assert!(!body.contains(secret), "/healthz shows {secret}: {body}");
    }

    // /metrics: the operator's only, and no names or addresses even then.
    for token in [None, Some("wrong"), Some("s3cr3t")] {
        let (status, head, _) = get(&server, "/metrics", token).await;
        assert_eq!(status, 401, "{token:?}");
        assert!(
            head.to_ascii_lowercase()
                .contains("www-authenticate: bearer"),
            "{head}"
        );
    }
    let (status, _, body) = get(&server, "/metrics", Some(OPERATOR)).await;
    assert_eq!(status, 200);
    assert!(body.contains("lanrelay_participants "), "{body}");
    for secret in ["alice", "bob", "secret", "127.0.0.1"] {
        assert!(!body.contains(secret), "/metrics shows {secret}");
    }
    assert_eq!(
        get(&server, &format!("/metrics?token={OPERATOR}"), None)
            .await
            .0,
        200
    );

    alice.leave().await;
    server.shutdown().await;
}

#[tokio::test]
async fn a_bad_operator_token_stops_the_start() {
    let dir = common::temp_dir("api-bad-operator");
    let mut config = lanrelay::Config::loopback(dir.clone());
    config.operator_token_file = Some(dir.join("missing"));
    let e = format!("{:#}", lanrelay::start(config.clone()).await.err().unwrap());
    assert!(e.contains("--operator-token-file"), "{e}");
    std::fs::write(dir.join("empty"), "\n").unwrap();
    config.operator_token_file = Some(dir.join("empty"));
    let e = format!("{:#}", lanrelay::start(config.clone()).await.err().unwrap());
    assert!(
        e.contains("--operator-token-file") && e.contains("empty"),
        "{e}"
    );
    config.operator_token_file = None;
    config.operator_token = Some(String::new());
    let e = format!("{:#}", lanrelay::start(config).await.err().unwrap());
    assert!(e.contains("--operator-token"), "{e}");
}

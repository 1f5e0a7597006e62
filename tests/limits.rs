//! Server-wide limits: no client can make the server open rooms or seat sessions
//! without end. Over `--max-rooms` or `--max-sessions` a join is refused with a clear
//! error and the socket closes; what was refused is counted in `/metrics`; a seat
//! freed is taken again.

mod common;

use common::{connect_ws, recv, send, temp_dir, Ws};
use lanrelay::signaling::protocol::{ClientMsg, ErrorCode, Mode, Role, ServerMsg};

async fn join(server: &lanrelay::Server, room: &str) -> (Ws, Option<ServerMsg>) {
    let mut ws = connect_ws(server).await;
    let msg = ClientMsg::Join {
        room: room.into(),
        name: "someone".into(),
        role: Role::Participant,
        mode: Mode::Relay,
        token: None,
    };
    send(&mut ws, &msg).await;
    let answer = recv(&mut ws).await;
    (ws, answer)
}

/// A refusal for a limit: `unavailable`, with the limit in words.
fn expect_limit(answer: Option<ServerMsg>, words: &str) {
    match answer {
        Some(ServerMsg::Error {
            code: ErrorCode::Unavailable,
            message,
        }) => assert!(message.contains(words), "{message}"),
        other => panic!("expected a refusal naming \"{words}\", got {other:?}"),
    }
}

#[tokio::test]
async fn rooms_and_sessions_have_server_wide_limits() {
    let mut config = lanrelay::Config::loopback(temp_dir("certs"));
    config.max_rooms = 2;
    config.max_sessions = 3;
    let server = lanrelay::start(config).await.expect("server starts");

    let (_a1, joined) = join(&server, "a").await;
    assert!(
        matches!(joined, Some(ServerMsg::Joined { .. })),
        "{joined:?}"
    );
    let (_b1, joined) = join(&server, "b").await;
    assert!(
        matches!(joined, Some(ServerMsg::Joined { .. })),
        "{joined:?}"
    );
    // A third room is one too many.
    let (mut c1, refused) = join(&server, "c").await;
    expect_limit(refused, "maximum of 2 rooms");
    assert!(recv(&mut c1).await.is_none(), "the refused socket closes");
    // An existing room still takes people, up to the session limit.
    let (_a2, joined) = join(&server, "a").await;
    assert!(
        matches!(joined, Some(ServerMsg::Joined { .. })),
        "{joined:?}"
    );
    let (_a3, refused) = join(&server, "a").await;
    expect_limit(refused, "maximum of 3 participants");
    let (status, metrics) = common::https_get(&server, "/metrics").await;
    assert_eq!(status, 200);
    assert!(
        metrics.contains("lanrelay_refused_total{limit=\"rooms\"} 1\n")
            && metrics.contains("lanrelay_refused_total{limit=\"sessions\"} 1\n"),
        "{metrics}"
    );
    // Someone leaves: the seat is free again.
    drop(_b1);
    let mut taken = false;
    for _ in 0..50 {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        let (_ws, answer) = join(&server, "c").await;
        if matches!(answer, Some(ServerMsg::Joined { .. })) {
            taken = true;
            break;
        }
    }
    assert!(taken, "a freed seat (and room) is taken again");
    server.shutdown().await;
}

#[tokio::test]
async fn one_address_has_at_most_its_share() {
    let mut config = lanrelay::Config::loopback(temp_dir("certs"));
    config.max_per_address = 2;
    let server = lanrelay::start(config).await.expect("server starts");
    let (_one, joined) = join(&server, "x").await;
    assert!(
        matches!(joined, Some(ServerMsg::Joined { .. })),
        "{joined:?}"
    );
    let (_two, joined) = join(&server, "y").await;
    assert!(
        matches!(joined, Some(ServerMsg::Joined { .. })),
        "{joined:?}"
    );
    // A third session from 127.0.0.1 is one too many.
    let (mut three, refused) = join(&server, "x").await;
    expect_limit(refused, "already has 2 sessions");
    assert!(
        recv(&mut three).await.is_none(),
        "the refused socket closes"
    );
    let (_, metrics) = common::https_get(&server, "/metrics").await;
    assert!(
        metrics.contains("lanrelay_refused_total{limit=\"per_address\"} 1\n"),
        "{metrics}"
    );
    server.shutdown().await;
}

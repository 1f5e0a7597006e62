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
        host_token: None,
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
    // Someone leaves: the seat is free again. (A socket that merely drops keeps its
    // seat for the resume grace period: that participant is still in its call.)
    let mut b1 = _b1;
    send(&mut b1, &ClientMsg::Leave).await;
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

/// A raw request over TLS (its status line and headers, lower-cased), for the methods
/// and bodies `https_get` does not send.
async fn https_request(server: &lanrelay::Server, head: &str, body: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let connector = tokio_rustls::TlsConnector::from(common::tls_client(server));
    let tcp = tokio::net::TcpStream::connect(server.https_addr)
        .await
        .unwrap();
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let mut tls = connector.connect(name, tcp).await.unwrap();
    let req = format!(
        "{head}\r\nHost: 127.0.0.1\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    tls.write_all(req.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    let _ = tls.read_to_end(&mut buf).await;
    String::from_utf8_lossy(&buf).to_lowercase()
}

#[tokio::test]
async fn one_address_opens_a_bounded_number_of_sessions_per_minute() {
    let mut config = lanrelay::Config::loopback(temp_dir("certs"));
    config.max_joins_per_minute = 3;
    let server = lanrelay::start(config).await.expect("server starts");
    for room in ["a", "b", "c"] {
        let (ws, joined) = join(&server, room).await;
        assert!(
            matches!(joined, Some(ServerMsg::Joined { .. })),
            "{joined:?}"
        );
        drop(ws);
    }
    // Everyone left, but the minute's allowance is spent: churning is what it limits.
    let (mut ws, refused) = join(&server, "d").await;
    match refused {
        Some(ServerMsg::Error {
            code: ErrorCode::RateLimited,
            message,
        }) => assert!(
            message.contains("3 sessions in the last minute"),
            "{message}"
        ),
        other => panic!("expected rateLimited, got {other:?}"),
    }
    assert!(recv(&mut ws).await.is_none(), "the refused socket closes");
    let reply = https_request(
        &server,
        "POST /whip/d HTTP/1.1\r\nContent-Type: application/sdp",
        "v=0\r\n",
    )
    .await;
    assert!(reply.starts_with("http/1.1 429"), "{reply}");
    assert!(reply.contains("\r\nretry-after: "), "{reply}");
    let (_, metrics) = common::https_get(&server, "/metrics").await;
    assert!(
        metrics.contains("lanrelay_refused_total{limit=\"join_rate\"} 2\n"),
        "{metrics}"
    );
    server.shutdown().await;
}

/// Whether the server closes `tcp` (end of stream or a reset) within two seconds,
/// without being sent anything.
async fn closed_by_server(tcp: &mut tokio::net::TcpStream) -> bool {
    use tokio::io::AsyncReadExt;
    let mut byte = [0u8; 1];
    let read = tokio::time::timeout(std::time::Duration::from_secs(2), tcp.read(&mut byte)).await;
    matches!(read, Ok(Ok(0)) | Ok(Err(_)))
}

#[tokio::test]
async fn one_address_holds_a_bounded_number_of_connections() {
    use tokio::net::TcpStream;
    let mut config = lanrelay::Config::loopback(temp_dir("certs"));
    config.max_connections_per_address = 4;
    let server = lanrelay::start(config).await.expect("server starts");
    let helper = server.http_addr.expect("the helper listens");
    // Idle connections, as a slowloris holds them: three on HTTPS, one on the helper.
    let mut idle = Vec::new();
    for addr in [
        server.https_addr,
        server.https_addr,
        server.https_addr,
        helper,
    ] {
        idle.push(TcpStream::connect(addr).await.expect("connects"));
    }
    // The fifth, on either port, is closed at once.
    let mut fifth = TcpStream::connect(server.https_addr).await.unwrap();
    assert!(
        closed_by_server(&mut fifth).await,
        "over the limit on HTTPS"
    );
    let mut sixth = TcpStream::connect(helper).await.unwrap();
    assert!(closed_by_server(&mut sixth).await, "the helper counts too");
    assert!(
        !closed_by_server(&mut idle[0]).await,
        "the connections within the limit stay open"
    );
    // One closes: its place is free again, and a request gets through.
    drop(idle.pop());
    let mut status = 0;
    for _ in 0..20 {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        status = common::https_get(&server, "/healthz").await.0;
        if status == 200 {
            break;
        }
    }
    assert_eq!(status, 200, "a freed place is taken again");
    drop(idle);
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let (_, metrics) = common::https_get(&server, "/metrics").await;
    assert!(
        metrics.contains("lanrelay_refused_total{limit=\"connections\"} 2\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains("\nlanrelay_tcp_connections 1\n"),
        "only the scrape's own connection is open: {metrics}"
    );
    server.shutdown().await;
}

//! One participant cannot push another off the server, and one that stops reading
//! does not keep its seat: direct-call signals are rate-limited per sender (the excess
//! is refused with an error to the sender, never by dropping the receiver), and a
//! WebSocket the server cannot write to for a while ends its session.

#![allow(clippy::disallowed_methods)] // tests read the clock

mod common;

use std::time::{Duration, Instant};

use common::{connect_ws, recv, send, Ws};
use futures_util::StreamExt;
use lanrelay::signaling::protocol::{
    ClientMsg, DirectSignal, ErrorCode, Mode, PeerId, Role, ServerMsg,
};

async fn join(ws: &mut Ws, room: &str, name: &str) -> PeerId {
    let msg = ClientMsg::Join {
        room: room.into(),
        name: name.into(),
        role: Role::Participant,
        mode: Mode::Direct,
        token: None,
        host_token: None,
    };
    send(ws, &msg).await;
    match recv(ws).await {
        Some(ServerMsg::Joined { id, .. }) => id,
        other => panic!("{name}: expected joined, got {other:?}"),
    }
}

/// A big direct signal (an SDP-sized candidate, 60 KB).
fn big_signal(to: PeerId) -> ClientMsg {
    ClientMsg::Direct {
        to,
        signal: DirectSignal::Candidate {
            candidate: "x".repeat(60_000),
            sdp_mid: None,
            sdp_m_line_index: None,
        },
    }
}

#[tokio::test]
async fn a_direct_flood_does_not_disconnect_its_target() {
    // Read everything at once: this is about the limit on direct signals.
    let mut config = lanrelay::Config::loopback(common::temp_dir("certs"));
    config.signaling_rate = 1 << 30;
    let server = lanrelay::start(config).await.expect("server starts");
    let mut victim = connect_ws(&server).await;
    let victim_id = join(&mut victim, "flood", "victim").await;
    let mut attacker = connect_ws(&server).await;
    join(&mut attacker, "flood", "attacker").await;
    // The victim reads everything, as a browser does, and counts what it gets.
    let reader = tokio::spawn(async move {
        let mut got = 0u32;
        let end = Instant::now() + Duration::from_secs(6);
        while Instant::now() < end {
            match tokio::time::timeout(Duration::from_millis(200), victim.next()).await {
                Ok(Some(Ok(_))) => got += 1,
                Ok(_) => return (got, None),
                Err(_) => {}
            }
        }
        (got, Some(victim))
    });
    // 400 signals of 60 KB as fast as the socket takes them.
    for _ in 0..400 {
        send(&mut attacker, &big_signal(victim_id)).await;
    }
    let (got, victim) = reader.await.unwrap();
    let mut victim = victim.expect("the victim is still connected");
    assert!(
        got < 200,
        "the flood was limited: {got} signals reached the victim"
    );
    // The attacker was told, and the victim is still in the room and served.
    let mut refused = 0;
    while let Ok(Some(Ok(m))) =
        tokio::time::timeout(Duration::from_millis(300), attacker.next()).await
    {
        if m.to_text().unwrap_or("").contains("rateLimited") {
            refused += 1;
        }
    }
    assert!(
        refused > 100,
        "the sender heard its signals were refused: {refused}"
    );
    send(&mut victim, &ClientMsg::Leave).await;
    let status = server.engine.status().await.unwrap();
    assert!(status.direct_refused > 100, "{status:?}");
    server.shutdown().await;
}

#[tokio::test]
async fn a_client_that_stops_reading_is_dropped() {
    // A generous signal limit: this is about a receiver that reads nothing.
    let mut config = lanrelay::Config::loopback(common::temp_dir("certs"));
    config.direct_rate = 10_000;
    config.signaling_rate = 1 << 30;
    let server = lanrelay::start(config).await.expect("server starts");
    let mut sleeper = connect_ws(&server).await;
    let sleeper_id = join(&mut sleeper, "deaf", "sleeper").await;
    let mut talker = connect_ws(&server).await;
    join(&mut talker, "deaf", "talker").await;
    // The sleeper never reads again. 250 signals of 60 KB (15 MB) fill the connection's
    // buffers and then some, but not the session's queue of 256 messages: the session
    // is left waiting to write, with nothing more coming.
    let started = Instant::now();
    for _ in 0..250 {
        send(&mut talker, &big_signal(sleeper_id)).await;
    }
    let mut left = None;
    while started.elapsed() < Duration::from_secs(40) && left.is_none() {
        let Ok(Some(Ok(m))) = tokio::time::timeout(Duration::from_secs(1), talker.next()).await
        else {
            continue;
        };
        if let Ok(ServerMsg::PeerLeft { id, reason }) =
            serde_json::from_str::<ServerMsg>(m.to_text().unwrap_or(""))
        {
            if id == sleeper_id {
                left = Some((started.elapsed(), reason));
            }
        }
    }
    let (after, reason) = left.expect("the sleeper is removed");
    assert!(
        after < Duration::from_secs(30),
        "removed {after:?} after it stopped reading ({reason})"
    );
    assert_eq!(reason, "not reading");
    drop(sleeper);
    server.shutdown().await;
}

/// A client that sends faster than `--signaling-rate` is read more slowly and told so;
/// it keeps its seat, and everyone else is served as usual meanwhile.
#[tokio::test]
async fn a_client_sending_too_fast_is_read_more_slowly() {
    use futures_util::SinkExt;
    use tokio_tungstenite::tungstenite::Message;
    let mut config = lanrelay::Config::loopback(common::temp_dir("certs"));
    // 64 KiB a second, 256 KiB at once.
    config.signaling_rate = 64 * 1024;
    let server = lanrelay::start(config).await.expect("server starts");
    let mut fast = connect_ws(&server).await;
    join(&mut fast, "busy", "fast").await;
    // 512 KiB of valid messages (JSON allows the padding): twice the burst.
    let padded = format!(
        "{{\"type\":\"media\",\"audio\":true,\"video\":true}}{}",
        " ".repeat(8 * 1024 - 44)
    );
    for _ in 0..64 {
        fast.send(Message::text(padded.clone())).await.unwrap();
    }
    let flooded = Instant::now();
    // A message the server answers once it has read everything before it.
    fast.send(Message::text("{\"type\":\"nonsense\"}"))
        .await
        .unwrap();
    // Meanwhile another client is served at once.
    let mut other = connect_ws(&server).await;
    let started = Instant::now();
    join(&mut other, "busy", "other").await;
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "another client waited {:?}",
        started.elapsed()
    );
    let mut told = false;
    let answered = loop {
        match recv(&mut fast).await {
            Some(ServerMsg::Error {
                code: ErrorCode::RateLimited,
                message,
            }) => {
                assert!(message.contains("64 KiB"), "{message}");
                told = true;
            }
            Some(ServerMsg::Error {
                code: ErrorCode::BadMessage,
                ..
            }) => break flooded.elapsed(),
            Some(_) => continue,
            None => panic!("the fast client was disconnected"),
        }
    };
    assert!(told, "the client is told it is held back");
    // (512 - 256) KiB at 64 KiB/s: about 4 s.
    assert!(
        answered > Duration::from_millis(3000),
        "read at once ({answered:?}): not held to the rate"
    );
    let (_, metrics) = common::https_get(&server, "/metrics").await;
    assert!(
        !metrics.contains("lanrelay_refused_total{limit=\"signaling_rate\"} 0\n"),
        "{metrics}"
    );
    server.shutdown().await;
}

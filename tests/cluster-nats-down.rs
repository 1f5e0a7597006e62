//! NATS goes away under a running cluster (NATS on 127.0.0.1, two nodes): the viewer
//! an edge serves keeps receiving (the relay link does not need NATS), the origin
//! still takes participants of its room, and a new viewer on the edge, which only the
//! origin can admit, is refused with `unavailable` (a WHEP player with `503` and
//! `Retry-After`). NATS back: the edge places viewers again.
#![allow(clippy::disallowed_methods)] // tests read the clock

mod common;

use std::time::{Duration, Instant};

use common::cluster::{start_node, wait_for_nodes, Nats};
use common::{connect_ws, recv, send, tls_client, video_from, TestPeer};
use lanrelay::signaling::protocol::{ClientMsg, ErrorCode, Role, ServerMsg};
use lanrelay::Server;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn join(node: &Server, room: &str, role: Role) -> Option<ServerMsg> {
    let mut ws = connect_ws(node).await;
    send(
        &mut ws,
        &ClientMsg::Join {
            room: room.into(),
            name: "late".into(),
            role,
            mode: Default::default(),
            token: None,
            host_token: None,
        },
    )
    .await;
    recv(&mut ws).await
}

/// POSTs a WHEP offer to `node`; returns the response head.
async fn whep(node: &Server, room: &str) -> String {
    let connector = tokio_rustls::TlsConnector::from(tls_client(node));
    let tcp = tokio::net::TcpStream::connect(node.https_addr)
        .await
        .unwrap();
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let mut tls = connector.connect(name, tcp).await.unwrap();
    let body = "v=0\r\n";
    let req = format!(
        "POST /whep/{room} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/sdp\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    tls.write_all(req.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    let _ = tls.read_to_end(&mut buf).await;
    let text = String::from_utf8_lossy(&buf).to_string();
    text.split_once("\r\n\r\n")
        .map_or(text.clone(), |(h, _)| h.to_string())
}

async fn connected(node: &Server, want: bool) {
    let end = Instant::now() + Duration::from_secs(15);
    while node.engine.cluster().unwrap().figures().connected != want {
        assert!(
            Instant::now() < end,
            "the node sees NATS {}",
            if want { "back" } else { "gone" }
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_carry_on_without_nats_and_new_cross_node_placement_waits() {
    let mut nats = Nats::start();
    let a = start_node(&nats, "a", 100).await;
    let b = start_node(&nats, "b", 100).await;
    wait_for_nodes(&[&a, &b], 2).await;
    let publisher = TestPeer::join(&a, "talk", "pub").await;
    let viewer = TestPeer::join_as(&b, "talk", "v", Role::Viewer).await;
    viewer
        .wait_for("video through the edge", Duration::from_secs(20), |s| {
            video_from(s, "pub") >= 30
        })
        .await;

    nats.stop();
    connected(&b, false).await;
    let before = video_from(&viewer.seen(), "pub");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after = video_from(&viewer.seen(), "pub");
    println!(
        "without NATS the edge's viewer got {} more frames in 3 s",
        after - before
    );
    assert!(
        after >= before + 45,
        "the running stream goes on: {before} → {after}"
    );

    match join(&b, "talk", Role::Viewer).await {
        Some(ServerMsg::Error {
            code: ErrorCode::Unavailable,
            message,
        }) => println!("new viewer on the edge: {message}"),
        other => panic!("a new viewer on the edge is refused, got {other:?}"),
    }
    let head = whep(&b, "talk").await;
    assert!(head.starts_with("HTTP/1.1 503"), "{head}");
    assert!(
        head.to_ascii_lowercase().contains("retry-after: 5"),
        "{head}"
    );
    // The origin still serves its own room.
    match join(&a, "talk", Role::Participant).await {
        Some(ServerMsg::Joined { .. }) => {}
        other => panic!("the origin takes a participant of its room, got {other:?}"),
    }

    nats.resume();
    connected(&b, true).await;
    let again = TestPeer::join_as(&b, "talk", "v2", Role::Viewer).await;
    again
        .wait_for(
            "video through the edge again",
            Duration::from_secs(20),
            |s| video_from(s, "pub") >= 15,
        )
        .await;
    again.leave().await;
    viewer.leave().await;
    publisher.leave().await;
    a.shutdown().await;
    b.shutdown().await;
}
